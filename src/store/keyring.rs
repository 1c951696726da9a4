//! Proves at start that CALLBACKD_SECRET_KEY is the key the stored secrets were sealed with,
//! so a wrong key is a clear error at start and never a stream of garbage requests.

use super::{Result, StoreError};
use crate::crypto::{CryptoError, SecretBox};
use crate::store::{Db, db};

const CHECK_PLAINTEXT: &[u8] = b"callbackd key check v1";
const CHECK_AAD: &[u8] = b"keyring";

pub async fn verify_or_init_key(pool: &Db, secrets: &SecretBox) -> Result<()> {
    let sealed = secrets.seal(CHECK_PLAINTEXT, CHECK_AAD);
    db::query("INSERT INTO keyring (id, key_check) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
        .bind(sealed)
        .execute(pool)
        .await?;
    let stored: Vec<u8> = db::query_scalar("SELECT key_check FROM keyring WHERE id = 1")
        .fetch_one(pool)
        .await?;
    match secrets.open(&stored, CHECK_AAD) {
        Ok(p) if p.as_slice() == CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::Crypto(CryptoError::Open)),
    }
}
