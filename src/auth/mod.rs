//! How callbackd proves itself to a partner: one file per auth scheme behind
//! [`AuthConfig`]. Secrets come in (decrypted by the dispatcher), headers go out.
//!
//! The JSON shape is the `auth` object of CONTRACT §2: `{"type": "...", ...fields}`.

mod bearer;
mod secret;

use serde::{Deserialize, Serialize};

use crate::model::ValidationError;
pub use bearer::Bearer;
pub use secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    None,
    Bearer(Bearer),
}

/// Why a request could not be given its credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth: {0}")]
    Failed(String),
}

impl AuthConfig {
    /// Parses and checks the `auth` object of an endpoint; errors name the field
    /// (`auth.token`, ...). Absent means `none`.
    pub fn from_json(value: Option<&serde_json::Value>) -> Result<Self, ValidationError> {
        let Some(value) = value else {
            return Ok(AuthConfig::None);
        };
        let config: AuthConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                "auth".to_string()
            } else {
                format!("auth.{path}")
            };
            ValidationError::new(field, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            AuthConfig::None => Ok(()),
            AuthConfig::Bearer(b) => b.validate(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            AuthConfig::None => "none",
            AuthConfig::Bearer(_) => "bearer",
        }
    }

    /// What the API may show: the type and the fields that are not secret.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({ "type": self.type_name() })
    }

    /// Adds the credentials to a fully built request (URL, headers and body are final, so
    /// schemes that sign the request sign exactly what is sent).
    pub fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        match self {
            AuthConfig::None => Ok(()),
            AuthConfig::Bearer(b) => b.apply(request),
        }
    }
}

/// A header value from a secret, marked sensitive so that debug output of the request
/// never shows it.
pub(crate) fn sensitive_header(value: &str) -> Result<reqwest::header::HeaderValue, AuthError> {
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| AuthError::Failed("credential is not a valid header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_and_refuse() {
        assert_eq!(AuthConfig::from_json(None).unwrap(), AuthConfig::None);
        assert_eq!(
            AuthConfig::from_json(Some(&json!({"type": "none"}))).unwrap(),
            AuthConfig::None
        );
        let b = AuthConfig::from_json(Some(&json!({"type": "bearer", "token": "t"}))).unwrap();
        assert_eq!(b.type_name(), "bearer");
        assert_eq!(b.public_view(), json!({"type": "bearer"}));

        let missing = AuthConfig::from_json(Some(&json!({"type": "bearer"}))).unwrap_err();
        assert!(missing.field.starts_with("auth"), "{missing:?}");
        assert!(missing.message.contains("token"), "{missing:?}");
        let empty =
            AuthConfig::from_json(Some(&json!({"type": "bearer", "token": ""}))).unwrap_err();
        assert_eq!(empty.field, "auth.token");
        let unknown = AuthConfig::from_json(Some(&json!({"type": "kerberos"}))).unwrap_err();
        assert!(unknown.field.starts_with("auth"), "{unknown:?}");
        let extra =
            AuthConfig::from_json(Some(&json!({"type": "bearer", "token": "t", "tokn": "x"})));
        assert!(extra.is_err(), "unknown fields are refused");
    }
}
