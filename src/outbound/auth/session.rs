//! The per-endpoint auth state that lives across deliveries (Digest nonce and count, OAuth2
//! token), and the time an OAuth2 token request may take out of an attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use uuid::Uuid;

use super::{AuthConfig, digest, oauth2};

/// One endpoint's auth state across deliveries: the Digest nonce and its count, the
/// OAuth2 token. Starts empty; reset when the endpoint's auth configuration changes.
#[derive(Default)]
pub struct Session {
    pub(super) digest: digest::DigestState,
    pub(super) oauth2: oauth2::TokenCache,
}

/// When the OAuth2 token request of an attempt that may take `timeout` from `start` must
/// have ended: a little before the attempt does (a tenth of it, at most 250 ms), so that a
/// token server that never finishes is reported as an `auth` failure and not mistaken for
/// a slow callback receiver.
pub fn token_deadline(start: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    let margin = (timeout / 10).min(Duration::from_millis(250));
    // Endpoint timeouts are at most minutes; the day bound only keeps the sum representable.
    let budget = timeout
        .min(Duration::from_secs(86_400))
        .saturating_sub(margin);
    start.checked_add(budget).unwrap_or(start)
}

/// A session and the fingerprint of the configuration it was made for.
type FingerprintedSession = ([u8; 32], Arc<Session>);

/// The [`Session`] of every endpoint this process sends to, keyed by endpoint id.
#[derive(Default)]
pub struct AuthSessions {
    by_endpoint: Mutex<HashMap<Uuid, FingerprintedSession>>,
}

impl AuthSessions {
    /// The endpoint's session; a fresh one when its auth configuration is new or changed
    /// (after a PATCH, the old nonce or token must not be used with the new credentials).
    pub fn session_for(&self, endpoint_id: Uuid, auth: &AuthConfig) -> Arc<Session> {
        let stateful = matches!(auth, AuthConfig::Digest(_) | AuthConfig::OAuth2(_));
        let mut map = self.by_endpoint.lock();
        if !stateful {
            map.remove(&endpoint_id);
            return Arc::new(Session::default());
        }
        let fingerprint = auth.fingerprint();
        match map.get(&endpoint_id) {
            Some((f, s)) if *f == fingerprint => s.clone(),
            _ => {
                let s = Arc::new(Session::default());
                map.insert(endpoint_id, (fingerprint, s.clone()));
                s
            }
        }
    }
}
