//! The HTTP clients callbacks go through. Every one of them never follows redirects, uses no
//! proxy, and (unless private targets are allowed) resolves names only to public addresses
//! (`netguard::GuardedResolver`, so the SSRF check happens on the very addresses the
//! connection uses). One shared client, plus one per TLS client identity (mTLS endpoints).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::auth::{AuthConfig, ClientCertificate};
use super::failure::Failure;
use crate::model::ErrorKind;
use crate::netguard;

/// HTTP clients with a TLS client identity (mTLS), one per distinct identity.
type IdentityClients = Mutex<HashMap<[u8; 32], reqwest::Client>>;

#[derive(Clone)]
pub struct GuardedClients {
    shared: reqwest::Client,
    allow_private_targets: bool,
    by_identity: Arc<IdentityClients>,
}

impl GuardedClients {
    pub fn new(allow_private_targets: bool) -> Result<Self, reqwest::Error> {
        Ok(Self {
            shared: builder(allow_private_targets).build()?,
            allow_private_targets,
            by_identity: Arc::default(),
        })
    }

    pub fn allow_private_targets(&self) -> bool {
        self.allow_private_targets
    }

    /// The client to send with: the shared one, or the one of the endpoint's TLS identity
    /// (built once per identity and reused).
    pub fn client_for(&self, auth: &AuthConfig) -> Result<reqwest::Client, Failure> {
        let AuthConfig::ClientCertificate(cert) = auth else {
            return Ok(self.shared.clone());
        };
        let key = cert.identity_key();
        let mut clients = self.by_identity.lock();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = identity_client(cert, self.allow_private_targets)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// The settings every client shares: no redirects, no proxy, the guarded resolver.
fn builder(allow_private_targets: bool) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10));
    if !allow_private_targets {
        builder = builder.dns_resolver(Arc::new(netguard::GuardedResolver));
    }
    builder
}

fn identity_client(
    cert: &ClientCertificate,
    allow_private_targets: bool,
) -> Result<reqwest::Client, Failure> {
    let fail = |m: String| Failure::new(ErrorKind::Auth, format!("auth: client_certificate: {m}"));
    cert.configure(builder(allow_private_targets))
        .map_err(|(_, m)| fail(m))?
        .build()
        .map_err(|e| fail(e.to_string()))
}
