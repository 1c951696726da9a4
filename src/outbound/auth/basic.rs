//! `Authorization: Basic base64(username:password)` (RFC 7617, UTF-8).

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{AuthError, Secret, check_non_empty, sensitive_header};
use crate::model::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basic {
    pub username: String,
    pub password: Secret,
}

impl Basic {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        check_non_empty(&self.username, "auth.username")?;
        if self.username.contains(':') {
            return Err(ValidationError::new(
                "auth.username",
                "must not contain ':' (RFC 7617)",
            ));
        }
        if self.password.expose().chars().any(char::is_control) {
            return Err(ValidationError::new(
                "auth.password",
                "must not contain control characters",
            ));
        }
        Ok(())
    }

    pub(super) fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        let value = header_value(&self.username, self.password.expose());
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, sensitive_header(&value)?);
        Ok(())
    }
}

/// `Basic base64(user:pass)`; also used for OAuth2 client authentication.
pub(crate) fn header_value(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc7617_example() {
        assert_eq!(
            super::header_value("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
