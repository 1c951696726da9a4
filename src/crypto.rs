//! Partner credentials at rest: AES-256-GCM under `CALLBACKD_SECRET_KEY`.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext+tag`. The row's id is bound in as
//! associated data, so a sealed blob copied onto another row does not open there.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
/// Used when no key is configured, so a first start works; `app` warns loudly about it.
const DEV_KEY: &[u8; 32] = b"callbackd-dev-key-not-for-prod!!";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "CALLBACKD_SECRET_KEY must be 32 bytes encoded in base64 (e.g. the output of `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error("a stored secret could not be decrypted: wrong CALLBACKD_SECRET_KEY or corrupted data")]
    Open,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    is_dev_key: bool,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key>)")
    }
}

impl SecretBox {
    /// From the `secret_key` setting: base64 of 32 bytes, or empty for the development key.
    pub fn from_setting(setting: &str) -> Result<Self, CryptoError> {
        let setting = setting.trim();
        if setting.is_empty() {
            return Ok(Self {
                cipher: Aes256Gcm::new(DEV_KEY.into()),
                is_dev_key: true,
            });
        }
        // The decoded key is wiped as soon as the cipher holds its own schedule.
        let key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(setting)
                .map_err(|_| CryptoError::BadKey)?,
        );
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            cipher,
            is_dev_key: false,
        })
    }

    pub fn is_dev_key(&self) -> bool {
        self.is_dev_key
    }

    pub fn seal(&self, plaintext: &[u8], bound_to: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: bound_to,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// The plaintext comes back in a `Zeroizing` buffer: decrypted credentials are wiped when
    /// the caller is done parsing them, not left in a freed allocation.
    pub fn open(&self, sealed: &[u8], bound_to: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::from(<[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| CryptoError::Open)?);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: bound_to,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let sb = SecretBox::from_setting(&key).unwrap();
        let sealed = sb.seal(b"s3cret", b"row-1");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(sb.open(&sealed, b"row-1").unwrap().as_slice(), b"s3cret");
        assert!(sb.open(&sealed, b"row-2").is_err(), "bound to its row");
        let other = SecretBox::from_setting("").unwrap();
        assert!(other.is_dev_key());
        assert!(
            other.open(&sealed, b"row-1").is_err(),
            "another key does not open it"
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(SecretBox::from_setting("not base64!").is_err());
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(SecretBox::from_setting(&short).is_err());
    }
}
