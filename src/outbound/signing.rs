//! Standard Webhooks signatures (https://www.standardwebhooks.com): every request of an
//! endpoint with a signing secret also carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>`, so partners
//! can verify with the official libraries. During a rotation the old secret signs too, until
//! its grace period ends (the header then holds two space-separated signatures).

use ::hmac::{KeyInit, Mac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::ValidationError;

const PREFIX: &str = "whsec_";

/// The secrets an endpoint signs with: the current one, and older ones until they expire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SigningKey {
    secret: String,
    expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} keys, <redacted>)", self.keys.len())
    }
}

/// Checks a `whsec_…` secret: the prefix, then base64 of 24 to 64 bytes.
pub fn validate_secret(secret: &str) -> Result<(), ValidationError> {
    let bad = |m: &str| ValidationError::new("signing_secret", m);
    let encoded = secret
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("must start with whsec_"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| bad("after whsec_ comes the key in base64"))?;
    if !(24..=64).contains(&key.len()) {
        return Err(bad("the key must be 24 to 64 bytes"));
    }
    Ok(())
}

/// What an endpoint's sealed keys are bound to: its id and "signing" (its auth object is
/// bound to the id alone), so the two sealed blobs cannot be swapped.
pub fn binding(endpoint_id: uuid::Uuid) -> Vec<u8> {
    let mut bound = endpoint_id.as_bytes().to_vec();
    bound.extend_from_slice(b"signing");
    bound
}

/// A fresh secret of 32 random bytes.
pub fn generate_secret() -> String {
    format!("{PREFIX}{}", STANDARD.encode(rand::random::<[u8; 32]>()))
}

impl SigningKeys {
    pub fn new(secret: String) -> Self {
        SigningKeys {
            keys: vec![SigningKey {
                secret,
                expires_at: None,
            }],
        }
    }

    /// `secret` becomes current; the previous current one keeps signing until
    /// `now + grace`. Keys already expired are dropped.
    pub fn rotate(mut self, secret: String, now: DateTime<Utc>, grace: chrono::Duration) -> Self {
        self.keys.retain(|k| k.expires_at.is_none_or(|t| t > now));
        for k in &mut self.keys {
            if k.expires_at.is_none() {
                k.expires_at = Some(
                    now.checked_add_signed(grace)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                );
            }
        }
        self.keys.insert(
            0,
            SigningKey {
                secret,
                expires_at: None,
            },
        );
        self
    }

    /// The `webhook-signature` value for one message, signed by every key still valid at `now`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8], now: DateTime<Utc>) -> String {
        self.keys
            .iter()
            .filter(|k| k.expires_at.is_none_or(|t| t > now))
            .map(|k| format!("v1,{}", sign(&k.secret, id, timestamp, body)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// base64 of HMAC-SHA256 over `id.timestamp.body` with the key inside `whsec_…`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix(PREFIX).unwrap_or(secret))
        .unwrap_or_default();
    let mut mac = <::hmac::Hmac<Sha256>>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_test_vector() {
        // From the Standard Webhooks specification and its reference libraries.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_both_until_the_grace_ends() {
        let t0 = Utc::now();
        let keys = SigningKeys::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let new = generate_secret();
        validate_secret(&new).unwrap();
        let keys = keys.rotate(new.clone(), t0, chrono::Duration::seconds(60));
        let both = keys.signature("id", 1, b"{}", t0);
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.starts_with(&format!("v1,{}", sign(&new, "id", 1, b"{}"))));
        let later = keys.signature("id", 1, b"{}", t0 + chrono::Duration::seconds(61));
        assert_eq!(later, format!("v1,{}", sign(&new, "id", 1, b"{}")));
    }

    #[test]
    fn bad_secrets() {
        assert!(validate_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(validate_secret("whsec_!!!").is_err());
        assert!(validate_secret("whsec_AAAA").is_err());
        assert!(!format!("{:?}", SigningKeys::new(generate_secret())).contains("whsec_"));
    }
}
