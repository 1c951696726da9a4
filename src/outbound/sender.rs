//! Sends one attempt and describes its outcome precisely: status, the head of the answer,
//! and for a failure its message and [`ErrorKind`] (see [`super::failure`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::auth::{AuthConfig, AuthSessions, SendError, TargetGuard};
use super::clients::GuardedClients;
use super::failure::Failure;
use super::retry_after::parse_retry_after;
use crate::model::ErrorKind;
use crate::netguard;

/// The first bytes of a response that are kept in the attempt log.
pub const RESPONSE_BODY_LIMIT: usize = 4096;

#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub status_code: Option<u16>,
    /// For people: what went wrong, starting with a word for its kind. `None` for a 2xx.
    pub error: Option<String>,
    /// For machines: the kind of `error` (CONTRACT §7). `None` exactly when `error` is.
    pub error_kind: Option<ErrorKind>,
    pub response_body: Option<String>,
    /// `response_body` is not byte for byte what the partner sent (see
    /// [`crate::model::text_from_bytes`]).
    pub response_body_lossy: bool,
    pub retry_after: Option<Duration>,
}

impl AttemptResult {
    /// An attempt that failed before any answer (started now, took no time).
    pub fn failed(failure: Failure) -> Self {
        AttemptResult {
            started_at: Utc::now(),
            duration: Duration::ZERO,
            status_code: None,
            error: Some(failure.message),
            error_kind: Some(failure.kind),
            response_body: None,
            response_body_lossy: false,
            retry_after: None,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Sends one callback (a delivery attempt or a test) through the guarded clients, with the
/// endpoint's auth and its per-endpoint auth state, and describes the outcome.
#[derive(Clone)]
pub struct CallbackSender {
    clients: GuardedClients,
    /// Per-endpoint auth state (Digest nonce and count, OAuth2 token) across deliveries.
    sessions: Arc<AuthSessions>,
}

impl CallbackSender {
    pub fn new(allow_private_targets: bool) -> Result<Self, reqwest::Error> {
        Ok(Self {
            clients: GuardedClients::new(allow_private_targets)?,
            sessions: Arc::default(),
        })
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
        let token_deadline = super::auth::token_deadline(tokio::time::Instant::now(), timeout);
        let outcome = async {
            let guard = if self.clients.allow_private_targets() {
                TargetGuard::AllowPrivate
            } else {
                netguard::check_literal(request.url()).map_err(|e| {
                    Failure::new(ErrorKind::ForbiddenTarget, format!("forbidden target: {e}"))
                })?;
                TargetGuard::PublicOnly
            };
            let client = self.clients.client_for(auth)?;
            let session = self.sessions.session_for(endpoint_id, auth);
            let sent = tokio::time::timeout(timeout, async {
                let response = auth
                    .send(&client, request, &session, guard, token_deadline)
                    .await?;
                Ok::<_, SendError>(read_head(response).await?)
            })
            .await;
            match sent {
                Err(_) => Err(Failure::timeout(timeout)),
                // Every message of the auth schemes starts with `auth:`.
                Ok(Err(SendError::Auth(message))) => Err(Failure::new(ErrorKind::Auth, message)),
                Ok(Err(SendError::Http(e))) => Err(Failure::of_request(&e, timeout)),
                Ok(Ok(head)) => Ok(head),
            }
        }
        .await;
        let duration = clock.elapsed();
        match outcome {
            Ok(head) => {
                // 401/403 on an endpoint with auth: the partner refused our credentials.
                let kind = ErrorKind::of_status(head.status, !matches!(auth, AuthConfig::None));
                let error = kind.map(|kind| match kind {
                    ErrorKind::Redirect => format!(
                        "redirect: {} to {} (redirects are not followed)",
                        head.status,
                        head.location.as_deref().unwrap_or("(no Location)")
                    ),
                    ErrorKind::AuthRejected => format!("auth rejected: http {}", head.status),
                    _ => format!("http {}", head.status),
                });
                AttemptResult {
                    started_at,
                    duration,
                    status_code: Some(head.status),
                    error,
                    error_kind: kind,
                    response_body: Some(head.body),
                    response_body_lossy: head.body_lossy,
                    retry_after: head.retry_after,
                }
            }
            Err(failure) => AttemptResult {
                started_at,
                duration,
                ..AttemptResult::failed(failure)
            },
        }
    }
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
