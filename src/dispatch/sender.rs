//! Sends one attempt and describes its outcome precisely. The HTTP client never follows
//! redirects, uses no proxy, and (unless private targets are allowed) resolves names only
//! to public addresses.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use uuid::Uuid;

use super::schedule::parse_retry_after;
use crate::auth::{AuthConfig, AuthSessions, ClientCertificate, SendError, TargetGuard};
use crate::netguard;

/// The first bytes of a response that are kept in the attempt log.
pub const RESPONSE_BODY_LIMIT: usize = 4096;

#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    /// `response_body` is not byte for byte what the partner sent (see
    /// [`crate::model::text_from_bytes`]).
    pub response_body_lossy: bool,
    pub retry_after: Option<Duration>,
}

impl AttemptResult {
    /// An attempt that failed before any answer (started now, took no time).
    pub fn failed(error: String) -> Self {
        AttemptResult {
            started_at: Utc::now(),
            duration: Duration::ZERO,
            status_code: None,
            error: Some(error),
            response_body: None,
            response_body_lossy: false,
            retry_after: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// HTTP clients with a TLS client identity (mTLS), one per distinct identity.
type IdentityClients = Mutex<HashMap<[u8; 32], reqwest::Client>>;

#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private_targets: bool,
    /// Per-endpoint auth state (Digest nonce and count, OAuth2 token) across deliveries.
    sessions: Arc<AuthSessions>,
    identity_clients: Arc<IdentityClients>,
}

impl Sender {
    pub fn new(allow_private_targets: bool) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: Self::builder(allow_private_targets).build()?,
            allow_private_targets,
            sessions: Arc::default(),
            identity_clients: Arc::default(),
        })
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

    /// The client to send with: the shared one, or the one of the endpoint's TLS identity
    /// (built once per identity and reused).
    fn client_for(&self, auth: &AuthConfig) -> Result<reqwest::Client, String> {
        let AuthConfig::ClientCertificate(cert) = auth else {
            return Ok(self.client.clone());
        };
        let key = cert.identity_key();
        let mut clients = self.identity_clients.lock();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = build_identity_client(cert, self.allow_private_targets)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Applies `auth` (with the endpoint's auth state, through the client of its TLS
    /// identity when it has one), sends, and reads at most [`RESPONSE_BODY_LIMIT`] bytes of
    /// the answer, all within `timeout`. The exchanges an auth scheme needs (Digest
    /// challenge, OAuth2 token) are part of the attempt and of its time.
    pub async fn attempt(
        &self,
        request: reqwest::Request,
        endpoint_id: Uuid,
        auth: &AuthConfig,
        timeout: Duration,
    ) -> AttemptResult {
        let started_at = Utc::now();
        let clock = Instant::now();
        let token_deadline = crate::auth::token_deadline(tokio::time::Instant::now(), timeout);
        let outcome = async {
            let guard = if self.allow_private_targets {
                TargetGuard::AllowPrivate
            } else {
                netguard::check_literal(request.url())
                    .map_err(|e| format!("forbidden target: {e}"))?;
                TargetGuard::PublicOnly
            };
            let client = self.client_for(auth)?;
            let session = self.sessions.session_for(endpoint_id, auth);
            let sent = tokio::time::timeout(timeout, async {
                let response = auth
                    .send(&client, request, &session, guard, token_deadline)
                    .await?;
                Ok::<_, SendError>(read_head(response).await?)
            })
            .await;
            match sent {
                Err(_) => Err(format!(
                    "timeout: no complete answer within {} ms",
                    timeout.as_millis()
                )),
                Ok(Err(SendError::Auth(message))) => Err(message),
                Ok(Err(SendError::Http(e))) => Err(describe(&e, timeout)),
                Ok(Ok(head)) => Ok(head),
            }
        }
        .await;
        let duration = clock.elapsed();
        match outcome {
            Ok(head) => {
                let error = match head.status {
                    200..=299 => None,
                    300..=399 => Some(format!(
                        "redirect: {} to {} (redirects are not followed)",
                        head.status,
                        head.location.as_deref().unwrap_or("(no Location)")
                    )),
                    // The partner refused our credentials: CONTRACT §7's `auth_rejected`.
                    401 | 403 if !matches!(auth, AuthConfig::None) => {
                        Some(format!("auth rejected: http {}", head.status))
                    }
                    code => Some(format!("http {code}")),
                };
                AttemptResult {
                    started_at,
                    duration,
                    status_code: Some(head.status),
                    error,
                    response_body: Some(head.body),
                    response_body_lossy: head.body_lossy,
                    retry_after: head.retry_after,
                }
            }
            Err(error) => AttemptResult {
                started_at,
                duration,
                ..AttemptResult::failed(error)
            },
        }
    }
}

fn build_identity_client(
    cert: &ClientCertificate,
    allow_private_targets: bool,
) -> Result<reqwest::Client, String> {
    cert.configure(Sender::builder(allow_private_targets))
        .map_err(|(_, m)| format!("auth: client_certificate: {m}"))?
        .build()
        .map_err(|e| format!("auth: client_certificate: {e}"))
}

struct Head {
    status: u16,
    location: Option<String>,
    retry_after: Option<Duration>,
    body: String,
    body_lossy: bool,
}

async fn read_head(mut response: reqwest::Response) -> Result<Head, reqwest::Error> {
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header(reqwest::header::LOCATION);
    let retry_after = match status {
        429 | 503 => header(reqwest::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(&v, SystemTime::now())),
        _ => None,
    };
    // Keep only the head of the body: a huge answer costs neither memory nor time.
    let mut body = Vec::with_capacity(256);
    while body.len() < RESPONSE_BODY_LIMIT {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(RESPONSE_BODY_LIMIT);
    // A character cut in two by the limit is not the partner's fault: drop its first half.
    if let Err(e) = std::str::from_utf8(&body)
        && e.error_len().is_none()
    {
        body.truncate(e.valid_up_to());
    }
    let (body, body_lossy) = crate::model::text_from_bytes(&body);
    Ok(Head {
        status,
        location,
        retry_after,
        body,
        body_lossy,
    })
}

/// A one-line, secret-free description that starts with the kind of failure.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "timeout: no complete answer within {} ms",
            timeout.as_millis()
        );
    }
    let mut chain = Vec::new();
    let mut forbidden = false;
    let mut source = e.source();
    while let Some(s) = source {
        forbidden |= s.is::<netguard::ForbiddenTarget>();
        chain.push(s.to_string());
        source = s.source();
    }
    let detail = chain.last().cloned().unwrap_or_else(|| e.to_string());
    let all = chain.join(": ").to_lowercase();
    let kind = if forbidden {
        "forbidden target"
    } else if all.contains("dns error")
        || all.contains("failed to lookup")
        || all.contains("name or service")
    {
        "dns"
    } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        "tls"
    } else if e.is_connect()
        || all.contains("connection reset")
        || all.contains("connection closed before message completed")
        || all.contains("broken pipe")
    {
        // Refused, or accepted and then reset/closed without an answer.
        "connect"
    } else if e.is_body() || e.is_decode() {
        "response"
    } else {
        "request"
    };
    format!("{kind}: {detail}")
}
