//! `API-Key: <key>` (type `api_key`) and `X-API-Key: <key>` (type `x_api_key`): the same
//! configuration, a different header name.

use serde::{Deserialize, Serialize};

use super::{AuthError, Secret, check_header_secret, sensitive_header};
use crate::model::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub key: Secret,
}

impl ApiKey {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        check_header_secret(self.key.expose(), "auth.key")
    }

    pub(super) fn apply(
        &self,
        request: &mut reqwest::Request,
        header: &'static str,
    ) -> Result<(), AuthError> {
        let value = sensitive_header(self.key.expose())?;
        request
            .headers_mut()
            .insert(reqwest::header::HeaderName::from_static(header), value);
        Ok(())
    }
}
