//! mTLS: the endpoint's PEM certificate (chain) and private key are presented in the TLS
//! handshake; `ca_pem` optionally adds trusted roots for that endpoint's server.
//!
//! This changes the connection, not the request, so the sender keeps one HTTP client per
//! distinct identity ([`ClientCertificate::identity_key`]) and sends through it.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::pem;
use super::{Secret, hex};
use crate::model::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    pub certificate_pem: String,
    pub private_key_pem: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl ClientCertificate {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        pem::certificates(&self.certificate_pem)
            .map_err(|m| ValidationError::new("auth.certificate_pem", m))?;
        // The key kind is left to rustls (RSA, ECDSA, Ed25519), checked by the build below.
        pem::private_key(self.private_key_pem.expose())
            .map_err(|m| ValidationError::new("auth.private_key_pem", m))?;
        if let Some(ca) = &self.ca_pem {
            pem::certificates(ca).map_err(|m| ValidationError::new("auth.ca_pem", m))?;
        }
        // Prove that rustls accepts the identity and roots as a whole.
        self.configure(reqwest::Client::builder())
            .map_err(|(field, m)| ValidationError::new(field, m))?
            .build()
            .map_err(|e| {
                ValidationError::new(
                    "auth.private_key_pem",
                    format!("the certificate and key cannot be used for TLS: {e}"),
                )
            })?;
        Ok(())
    }

    pub(super) fn public_fields(&self) -> serde_json::Value {
        let fingerprint = pem::certificates(&self.certificate_pem)
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|der| hex(&Sha256::digest(&der)));
        serde_json::json!({
            "certificate_pem": self.certificate_pem,
            "certificate_sha256": fingerprint,
            "ca_pem": self.ca_pem,
        })
    }

    /// Tells apart distinct TLS identities (certificate, key and extra roots).
    pub fn identity_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            self.certificate_pem.as_str(),
            self.private_key_pem.expose(),
            self.ca_pem.as_deref().unwrap_or(""),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// Adds the identity and the extra roots to a client builder.
    pub fn configure(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, (&'static str, String)> {
        let mut bundle = self.certificate_pem.clone();
        if !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(self.private_key_pem.expose());
        let identity = reqwest::Identity::from_pem(bundle.as_bytes()).map_err(|e| {
            (
                "auth.private_key_pem",
                format!("certificate and key are not a usable identity: {e}"),
            )
        })?;
        let mut builder = builder.identity(identity);
        if let Some(ca) = &self.ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
                .map_err(|e| ("auth.ca_pem", format!("does not parse: {e}")))?;
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(builder)
    }
}
