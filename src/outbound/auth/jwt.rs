//! `Authorization: Bearer <JWT>`, a token minted for each request with `jsonwebtoken`
//! (aws-lc-rs backend): HS256 with a shared secret, RS256 with an RSA private key (PEM,
//! PKCS#8 or PKCS#1), ES256 with a P-256 private key (PEM, PKCS#8 or SEC1).
//! Claims: the configured extra `claims`, then `iat`, `exp` (`iat + ttl_seconds`), `jti`
//! (a fresh UUID) and `iss`/`aud` when configured — ours win over extra claims of the same
//! name.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::pem::{self, KeyKind};
use super::{AuthError, Secret, check_non_empty, sensitive_header};
use crate::model::ValidationError;

pub const DEFAULT_TTL_SECONDS: u64 = 300;
const MAX_TTL_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    pub algorithm: JwtAlgorithm,
    /// The HMAC secret (HS256) or the PEM private key (RS256, ES256).
    pub key: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Extra claims, as an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// Optional `kid` header, so the partner can pick the right public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Jwt {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        if let Some(i) = &self.issuer {
            check_non_empty(i, "auth.issuer")?;
        }
        if let Some(a) = &self.audience {
            check_non_empty(a, "auth.audience")?;
        }
        if let Some(k) = &self.key_id {
            check_non_empty(k, "auth.key_id")?;
        }
        if let Some(ttl) = self.ttl_seconds
            && !(1..=MAX_TTL_SECONDS).contains(&ttl)
        {
            return Err(ValidationError::new(
                "auth.ttl_seconds",
                format!("must be between 1 and {MAX_TTL_SECONDS}"),
            ));
        }
        let key = self.encoding_key()?;
        // Prove that this key can sign with this algorithm, now rather than at send time.
        self.mint(&key, 0).map_err(|e| {
            ValidationError::new("auth.key", format!("cannot sign with this key: {e}"))
        })?;
        Ok(())
    }

    pub(super) fn public_fields(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "algorithm": self.algorithm,
            "ttl_seconds": self.ttl(),
        });
        let o = v.as_object_mut().expect("object");
        if let Some(i) = &self.issuer {
            o.insert("issuer".into(), i.clone().into());
        }
        if let Some(a) = &self.audience {
            o.insert("audience".into(), a.clone().into());
        }
        if let Some(k) = &self.key_id {
            o.insert("key_id".into(), k.clone().into());
        }
        if let Some(c) = &self.claims {
            o.insert("claims".into(), c.clone().into());
        }
        v
    }

    fn ttl(&self) -> u64 {
        self.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS)
    }

    /// The signing key, or a 422 naming `auth.key` (does not parse) or `auth.algorithm`
    /// (a key of another kind).
    fn encoding_key(&self) -> Result<EncodingKey, ValidationError> {
        let raw = self.key.expose();
        let bad_key = |m: String| ValidationError::new("auth.key", m);
        let wrong_alg = |m: &str| ValidationError::new("auth.algorithm", m.to_string());
        match self.algorithm {
            JwtAlgorithm::HS256 => {
                if raw.is_empty() {
                    return Err(bad_key("must not be empty".into()));
                }
                if raw.contains("-----BEGIN") {
                    return Err(wrong_alg(
                        "HS256 takes a shared secret, not a PEM key: use RS256 or ES256",
                    ));
                }
                Ok(EncodingKey::from_secret(raw.as_bytes()))
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                if !raw.contains("-----BEGIN") {
                    return Err(bad_key(format!(
                        "{:?} needs a PEM private key (PKCS#8, or PKCS#1/SEC1)",
                        self.algorithm
                    )));
                }
                let (kind, der) = pem::private_key(raw).map_err(bad_key)?;
                match (self.algorithm, kind) {
                    (JwtAlgorithm::RS256, KeyKind::Rsa) => {
                        EncodingKey::from_rsa_pem(raw.as_bytes())
                            .map_err(|e| bad_key(format!("RSA private key does not parse: {e}")))
                    }
                    (JwtAlgorithm::ES256, KeyKind::EcPkcs8) => Ok(EncodingKey::from_ec_der(&der)),
                    (JwtAlgorithm::ES256, KeyKind::EcSec1) => {
                        Ok(EncodingKey::from_ec_der(&pem::sec1_p256_to_pkcs8(&der)))
                    }
                    (JwtAlgorithm::RS256, _) => Err(wrong_alg(
                        "RS256 needs an RSA private key; this key is not RSA",
                    )),
                    (_, _) => Err(wrong_alg(
                        "ES256 needs an EC P-256 private key; this key is not EC",
                    )),
                }
            }
        }
    }

    fn mint(&self, key: &EncodingKey, now: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let mut claims = self.claims.clone().unwrap_or_default();
        claims.insert("iat".into(), now.into());
        let ttl = i64::try_from(self.ttl()).unwrap_or(i64::MAX);
        claims.insert("exp".into(), now.saturating_add(ttl).into());
        claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        if let Some(i) = &self.issuer {
            claims.insert("iss".into(), i.clone().into());
        }
        if let Some(a) = &self.audience {
            claims.insert("aud".into(), a.clone().into());
        }
        let mut header = Header::new(match self.algorithm {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        });
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, key)
    }

    /// A fresh token for this request.
    pub fn token(&self) -> Result<String, AuthError> {
        let key = self
            .encoding_key()
            .map_err(|e| AuthError::Failed(format!("jwt: {}", e.message)))?;
        self.mint(&key, chrono::Utc::now().timestamp())
            .map_err(|e| AuthError::Failed(format!("jwt: signing failed: {e}")))
    }

    pub(super) fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        let value = sensitive_header(&format!("Bearer {}", self.token()?))?;
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, value);
        Ok(())
    }
}
