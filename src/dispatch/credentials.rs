//! An endpoint's decrypted credentials (auth object, Standard Webhooks keys), cached per
//! endpoint while its `updated_at` is unchanged, so the AES-GCM open and the JSON parse happen
//! once per endpoint change, not once per delivery.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::auth::AuthConfig;
use crate::crypto::SecretBox;
use crate::signing::SigningKeys;
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
    pub fn get(&self, secrets: &SecretBox, c: &Claimed) -> Result<Arc<Credentials>, String> {
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

/// Opens an endpoint's sealed auth object and signing keys.
pub fn open(
    secrets: &SecretBox,
    endpoint_id: Uuid,
    auth_sealed: &[u8],
    signing_sealed: Option<&[u8]>,
) -> Result<Credentials, String> {
    let plain = secrets
        .open(auth_sealed, endpoint_id.as_bytes())
        .map_err(|e| format!("auth: {e}"))?;
    let auth: AuthConfig = serde_json::from_slice(&plain)
        .map_err(|_| "auth: stored auth configuration is unreadable".to_string())?;
    let signing = match signing_sealed {
        None => None,
        Some(sealed) => {
            let plain = secrets
                .open(sealed, &crate::signing::binding(endpoint_id))
                .map_err(|e| format!("signing: {e}"))?;
            Some(
                serde_json::from_slice(&plain)
                    .map_err(|_| "signing: stored keys are unreadable".to_string())?,
            )
        }
    };
    Ok(Credentials {
        auth: Arc::new(auth),
        signing,
    })
}
