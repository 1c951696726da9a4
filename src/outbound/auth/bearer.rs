//! `Authorization: Bearer <token>`.

use serde::{Deserialize, Serialize};

use super::{AuthError, Secret, sensitive_header};
use crate::model::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bearer {
    pub token: Secret,
}

impl Bearer {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        let t = self.token.expose();
        if t.is_empty() {
            return Err(ValidationError::new("auth.token", "must not be empty"));
        }
        if t.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ValidationError::new(
                "auth.token",
                "must not contain spaces or control characters",
            ));
        }
        Ok(())
    }

    pub(super) fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        let value = sensitive_header(&format!("Bearer {}", self.token.expose()))?;
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        Ok(())
    }
}
