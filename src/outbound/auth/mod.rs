//! How callbackd proves itself to a partner: one file per auth scheme behind
//! [`AuthConfig`]. Secrets come in (decrypted by [`super::credentials`]), headers go out.
//!
//! The JSON shape is the `auth` object of CONTRACT §2: `{"type": "...", ...fields}`.
//!
//! Two ways in:
//! - [`AuthConfig::apply`] for the schemes that only add headers to the request as built
//!   (bearer, API keys, basic, JWT, HMAC, SigV4: the signing ones sign exactly what is sent);
//! - [`AuthConfig::send`] for every scheme, which also runs the multi-exchange ones (Digest's
//!   challenge, OAuth2's token request and resend on a 401) with the per-endpoint state of
//!   [`AuthSessions`] that lives across deliveries.
//!
//! mTLS (`client_certificate`) changes the connection, not the request: the sender picks the
//! HTTP client for the endpoint's TLS identity ([`ClientCertificate::identity_key`]).

mod api_key;
mod aws_sigv4;
mod basic;
mod bearer;
mod client_certificate;
mod digest;
mod hmac;
mod jwt;
mod oauth2;
mod pem;
mod secret;
mod session;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::model::ValidationError;
pub use api_key::ApiKey;
pub use aws_sigv4::{AwsSigV4, SigningInput, sign_v4};
pub use basic::Basic;
pub use bearer::Bearer;
pub use client_certificate::ClientCertificate;
pub use digest::Digest;
pub use hmac::{Hmac, hmac_signature};
pub use jwt::{Jwt, JwtAlgorithm};
pub use oauth2::OAuth2;
pub use secret::Secret;
pub use session::{AuthSessions, Session, token_deadline};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "bearer")]
    Bearer(Bearer),
    #[serde(rename = "api_key")]
    ApiKey(ApiKey),
    #[serde(rename = "x_api_key")]
    XApiKey(ApiKey),
    #[serde(rename = "basic")]
    Basic(Basic),
    #[serde(rename = "digest")]
    Digest(Digest),
    #[serde(rename = "jwt")]
    Jwt(Jwt),
    #[serde(rename = "hmac")]
    Hmac(Hmac),
    #[serde(rename = "oauth2")]
    OAuth2(OAuth2),
    #[serde(rename = "aws_sigv4")]
    AwsSigV4(AwsSigV4),
    #[serde(rename = "client_certificate")]
    ClientCertificate(ClientCertificate),
}

/// Why a request could not be given its credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth: {0}")]
    Failed(String),
}

/// Why an authenticated exchange did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The credentials could not be produced or obtained (e.g. the OAuth2 token endpoint
    /// failed). The message starts with `auth:` and never contains a secret.
    #[error("{0}")]
    Auth(String),
    /// The callback request itself failed (connect, TLS, timeout, ...).
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

impl From<AuthError> for SendError {
    fn from(e: AuthError) -> Self {
        SendError::Auth(e.to_string())
    }
}

impl AuthConfig {
    /// Parses and checks the `auth` object of an endpoint; errors name the field
    /// (`auth.token`, ...). Absent means `none`.
    pub fn from_json(value: Option<&serde_json::Value>) -> Result<Self, ValidationError> {
        let Some(value) = value else {
            return Ok(AuthConfig::None);
        };
        let Some(object) = value.as_object() else {
            return Err(ValidationError::new(
                "auth",
                "must be an object with a `type`",
            ));
        };
        let kind = match object.get("type") {
            Some(serde_json::Value::String(t)) => t.as_str(),
            Some(_) => return Err(ValidationError::new("auth.type", "must be a string")),
            None => return Err(ValidationError::new("auth.type", "required")),
        };
        // Each scheme's fields are read on their own (not through the tagged enum, which
        // buffers them and loses the path), so errors name the exact field.
        let mut fields = object.clone();
        fields.remove("type");
        let fields = serde_json::Value::Object(fields);
        let config = match kind {
            "none" => match fields.as_object().and_then(|f| f.keys().next()) {
                Some(extra) => {
                    return Err(ValidationError::new(
                        format!("auth.{extra}"),
                        "unknown field: type `none` takes no fields",
                    ));
                }
                None => AuthConfig::None,
            },
            "bearer" => AuthConfig::Bearer(fields_of(&fields)?),
            "api_key" => AuthConfig::ApiKey(fields_of(&fields)?),
            "x_api_key" => AuthConfig::XApiKey(fields_of(&fields)?),
            "basic" => AuthConfig::Basic(fields_of(&fields)?),
            "digest" => AuthConfig::Digest(fields_of(&fields)?),
            "jwt" => AuthConfig::Jwt(fields_of(&fields)?),
            "hmac" => AuthConfig::Hmac(fields_of(&fields)?),
            "oauth2" => AuthConfig::OAuth2(fields_of(&fields)?),
            "aws_sigv4" => AuthConfig::AwsSigV4(fields_of(&fields)?),
            "client_certificate" => AuthConfig::ClientCertificate(fields_of(&fields)?),
            other => {
                return Err(ValidationError::new(
                    "auth.type",
                    format!(
                        "unknown auth type {other:?}: one of none, bearer, api_key, x_api_key, basic, digest, jwt, hmac, oauth2, aws_sigv4, client_certificate"
                    ),
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            AuthConfig::None => Ok(()),
            AuthConfig::Bearer(b) => b.validate(),
            AuthConfig::ApiKey(k) | AuthConfig::XApiKey(k) => k.validate(),
            AuthConfig::Basic(b) => b.validate(),
            AuthConfig::Digest(d) => d.validate(),
            AuthConfig::Jwt(j) => j.validate(),
            AuthConfig::Hmac(h) => h.validate(),
            AuthConfig::OAuth2(o) => o.validate(),
            AuthConfig::AwsSigV4(a) => a.validate(),
            AuthConfig::ClientCertificate(c) => c.validate(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            AuthConfig::None => "none",
            AuthConfig::Bearer(_) => "bearer",
            AuthConfig::ApiKey(_) => "api_key",
            AuthConfig::XApiKey(_) => "x_api_key",
            AuthConfig::Basic(_) => "basic",
            AuthConfig::Digest(_) => "digest",
            AuthConfig::Jwt(_) => "jwt",
            AuthConfig::Hmac(_) => "hmac",
            AuthConfig::OAuth2(_) => "oauth2",
            AuthConfig::AwsSigV4(_) => "aws_sigv4",
            AuthConfig::ClientCertificate(_) => "client_certificate",
        }
    }

    /// What the API may show: the type and the fields that are not secret.
    pub fn public_view(&self) -> serde_json::Value {
        let mut view = match self {
            AuthConfig::Basic(b) => serde_json::json!({ "username": b.username }),
            AuthConfig::Digest(d) => serde_json::json!({ "username": d.username }),
            AuthConfig::Jwt(j) => j.public_fields(),
            AuthConfig::OAuth2(o) => o.public_fields(),
            AuthConfig::AwsSigV4(a) => a.public_fields(),
            AuthConfig::ClientCertificate(c) => c.public_fields(),
            _ => serde_json::json!({}),
        };
        let mut out = serde_json::Map::new();
        out.insert("type".into(), self.type_name().into());
        if let Some(fields) = view.as_object_mut() {
            out.append(fields);
        }
        serde_json::Value::Object(out)
    }

    /// Adds the credentials to a fully built request (URL, headers and body are final, so
    /// schemes that sign the request sign exactly what is sent). Digest and OAuth2 need
    /// exchanges with the partner and add nothing here: use [`AuthConfig::send`].
    pub fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        match self {
            AuthConfig::None | AuthConfig::ClientCertificate(_) => Ok(()),
            AuthConfig::Digest(_) | AuthConfig::OAuth2(_) => Ok(()),
            AuthConfig::Bearer(b) => b.apply(request),
            AuthConfig::ApiKey(k) => k.apply(request, "api-key"),
            AuthConfig::XApiKey(k) => k.apply(request, "x-api-key"),
            AuthConfig::Basic(b) => b.apply(request),
            AuthConfig::Jwt(j) => j.apply(request),
            AuthConfig::Hmac(h) => h.apply(request),
            AuthConfig::AwsSigV4(a) => a.apply(request),
        }
    }

    /// Sends `request` with these credentials through `client` and returns the final
    /// response: for Digest after answering the challenge, for OAuth2 after getting a token
    /// (and one fresh token and one resend on a 401). Only the final outcome counts as the
    /// attempt. `session` is this endpoint's state (see [`AuthSessions`]). Getting an
    /// OAuth2 token must end by `token_deadline` (see [`token_deadline`]).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        mut request: reqwest::Request,
        session: &Session,
        guard: TargetGuard,
        token_deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, SendError> {
        match self {
            AuthConfig::Digest(d) => d.send(client, request, &session.digest).await,
            AuthConfig::OAuth2(o) => {
                o.send(client, request, &session.oauth2, guard, token_deadline)
                    .await
            }
            _ => {
                self.apply(&mut request)?;
                Ok(client.execute(request).await?)
            }
        }
    }

    /// A digest of the whole configuration, to notice that an endpoint's auth changed.
    fn fingerprint(&self) -> [u8; 32] {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&bytes).into()
    }
}

/// Whether URLs that auth itself calls (the OAuth2 token URL) must be checked against
/// private targets, as the callback URLs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetGuard {
    PublicOnly,
    AllowPrivate,
}

/// One scheme's fields; errors name the field (`auth.token`, `auth.algorithm`, ...).
fn fields_of<T: serde::de::DeserializeOwned>(
    fields: &serde_json::Value,
) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if path == "." || path.is_empty() {
            field_from_message(&message)
        } else {
            format!("auth.{path}")
        };
        ValidationError::new(field, message)
    })
}

/// "missing field `token`" / "unknown field `tokn`, ..." → `auth.token` / `auth.tokn`.
fn field_from_message(message: &str) -> String {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(name) = rest.split('`').next()
        {
            return format!("auth.{name}");
        }
    }
    "auth".to_string()
}

/// A header value from a secret, marked sensitive so that debug output of the request
/// never shows it.
pub(crate) fn sensitive_header(value: &str) -> Result<reqwest::header::HeaderValue, AuthError> {
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| AuthError::Failed("credential is not a valid header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Checks a secret that goes into a header as it is.
pub(crate) fn check_header_secret(value: &str, field: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.chars().any(|c| c.is_control() || c == ' ') || !value.is_ascii() {
        return Err(ValidationError::new(
            field,
            "must be printable ASCII without spaces or control characters",
        ));
    }
    Ok(())
}

/// A required text field that is not a secret.
pub(crate) fn check_non_empty(value: &str, field: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The path and query exactly as they go on the request line (`/cb?x=1`).
pub(crate) fn path_and_query(url: &url::Url) -> &str {
    &url[url::Position::BeforePath..url::Position::AfterQuery]
}

/// The bytes of the request body (empty for none). Bodies built by [`super::request`] are
/// always in memory.
pub(crate) fn body_bytes(request: &reqwest::Request) -> Result<&[u8], AuthError> {
    match request.body() {
        None => Ok(&[]),
        Some(b) => b
            .as_bytes()
            .ok_or_else(|| AuthError::Failed("the request body is not in memory".into())),
    }
}

#[cfg(test)]
mod tests;
