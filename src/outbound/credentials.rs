//! An endpoint's decrypted credentials (auth object, Standard Webhooks keys), cached per
//! endpoint while its `updated_at` is unchanged, so the AES-GCM open and the JSON parse happen
//! once per endpoint change, not once per delivery.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use uuid::Uuid;

use super::auth::AuthConfig;
use super::failure::Failure;
use super::signing::{self, SigningKeys};
use crate::crypto::SecretBox;
use crate::model::ErrorKind;
use crate::store::Claimed;

pub struct Credentials {
    pub auth: Arc<AuthConfig>,
    pub signing: Option<SigningKeys>,
}

/// The endpoint's `updated_at` when its credentials were decrypted, and them.
type Entry = (DateTime<Utc>, Arc<Credentials>);

#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<Uuid, Entry>>,
}

impl CredentialCache {
    pub fn get(&self, secrets: &SecretBox, c: &Claimed) -> Result<Arc<Credentials>, Failure> {
        let mut entries = self.entries.lock();
        if let Some((at, creds)) = entries.get(&c.endpoint_id)
            && *at == c.endpoint_updated_at
        {
            return Ok(creds.clone());
        }
        let creds = Arc::new(open(
            secrets,
            c.endpoint_id,
            &c.auth_sealed,
            c.signing_sealed.as_deref(),
        )?);
        entries.insert(c.endpoint_id, (c.endpoint_updated_at, creds.clone()));
        Ok(creds)
    }
}

/// Opens an endpoint's sealed auth object and signing keys. An auth object that cannot be
/// opened is an `auth` failure; signing keys that cannot be opened are `other` (the partner's
/// auth is fine, callbackd's own signing is not).
pub fn open(
    secrets: &SecretBox,
    endpoint_id: Uuid,
    auth_sealed: &[u8],
    signing_sealed: Option<&[u8]>,
) -> Result<Credentials, Failure> {
    let auth_failed = |m: String| Failure::new(ErrorKind::Auth, format!("auth: {m}"));
    let signing_failed = |m: String| Failure::new(ErrorKind::Other, format!("signing: {m}"));
    let plain = secrets
        .open(auth_sealed, endpoint_id.as_bytes())
        .map_err(|e| auth_failed(e.to_string()))?;
    let auth: AuthConfig = serde_json::from_slice(&plain)
        .map_err(|_| auth_failed("stored auth configuration is unreadable".into()))?;
    let signing = match signing_sealed {
        None => None,
        Some(sealed) => {
            let plain = secrets
                .open(sealed, &signing::binding(endpoint_id))
                .map_err(|e| signing_failed(e.to_string()))?;
            Some(
                serde_json::from_slice(&plain)
                    .map_err(|_| signing_failed("stored keys are unreadable".into()))?,
            )
        }
    };
    Ok(Credentials {
        auth: Arc::new(auth),
        signing,
    })
}
