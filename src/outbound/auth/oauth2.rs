//! OAuth 2.0 client-credentials grant (RFC 6749 §4.4) against the partner's token URL,
//! then `Authorization: Bearer <access_token>`.
//!
//! - The token request is form-encoded; the client authenticates with HTTP Basic
//!   (`form-urlencode(client_id):form-urlencode(client_secret)`, RFC 6749 §2.3.1); `scope`
//!   and `audience` go in the form when configured.
//! - The token is cached per endpoint until shortly before `expires_in` runs out (5 minutes
//!   when the server gives none or an unreadable one; at most 24 hours, whatever it says:
//!   see [`answer`]). The cache is behind an async mutex held during the token
//!   request, so concurrent deliveries share one token request.
//! - A 401 on the callback gets one fresh token (unless another delivery already replaced
//!   the refused one) and one resend.
//! - A failing token endpoint fails the attempt with `auth: oauth2 token endpoint ...`;
//!   neither the client secret nor a token ever goes into that message.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod answer;

use super::{Secret, SendError, TargetGuard, basic, check_non_empty, sensitive_header};
use crate::model::ValidationError;
use crate::netguard;

/// A token answer larger than this is refused.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// The endpoint's current token.
#[derive(Default)]
pub(crate) struct TokenCache {
    current: tokio::sync::Mutex<Option<Token>>,
}

impl OAuth2 {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        let url = url::Url::parse(&self.token_url).map_err(|e| {
            ValidationError::new("auth.token_url", format!("not a valid absolute URL: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(ValidationError::new(
                "auth.token_url",
                "must be an http or https URL with a host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ValidationError::new(
                "auth.token_url",
                "credentials in the URL are not accepted: use client_id and client_secret",
            ));
        }
        check_non_empty(&self.client_id, "auth.client_id")?;
        if self.client_secret.expose().is_empty() {
            return Err(ValidationError::new(
                "auth.client_secret",
                "must not be empty",
            ));
        }
        if let Some(s) = &self.scope {
            check_non_empty(s, "auth.scope")?;
        }
        if let Some(a) = &self.audience {
            check_non_empty(a, "auth.audience")?;
        }
        Ok(())
    }

    pub(super) fn public_fields(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "token_url": self.token_url,
            "client_id": self.client_id,
        });
        let o = v.as_object_mut().expect("object");
        if let Some(s) = &self.scope {
            o.insert("scope".into(), s.clone().into());
        }
        if let Some(a) = &self.audience {
            o.insert("audience".into(), a.clone().into());
        }
        v
    }

    pub(super) async fn send(
        &self,
        client: &reqwest::Client,
        mut request: reqwest::Request,
        cache: &TokenCache,
        guard: TargetGuard,
        token_deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, SendError> {
        let resend = request.try_clone().ok_or_else(|| {
            SendError::Auth("auth: oauth2: the request body cannot be sent twice".into())
        })?;
        let token = self
            .token(client, cache, None, guard, token_deadline)
            .await?;
        set_bearer(&mut request, &token)?;
        let response = client.execute(request).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        drop(response);
        let fresh = self
            .token(client, cache, Some(&token), guard, token_deadline)
            .await?;
        let mut request = resend;
        set_bearer(&mut request, &fresh)?;
        Ok(client.execute(request).await?)
    }

    /// The cached token, or a new one when there is none, it is about to expire, or it is
    /// `refused` (a token the partner answered 401 to). Waiting for another delivery's
    /// token request counts too. Past `deadline` this is an `auth` failure: a token server
    /// that never finishes its answer must not pass for a callback timeout.
    async fn token(
        &self,
        client: &reqwest::Client,
        cache: &TokenCache,
        refused: Option<&Secret>,
        guard: TargetGuard,
        deadline: tokio::time::Instant,
    ) -> Result<Secret, SendError> {
        let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
        let get = async {
            let mut current = cache.current.lock().await;
            if let Some(t) = current.as_ref()
                && Instant::now() < t.refresh_at
                && refused.is_none_or(|r| r != &t.value)
            {
                return Ok(t.value.clone());
            }
            *current = None;
            let token = self.request_token(client, guard).await?;
            let value = token.value.clone();
            *current = Some(token);
            Ok(value)
        };
        tokio::time::timeout_at(deadline, get)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Auth(format!(
                    "auth: oauth2 token endpoint: timeout: no token within {} ms",
                    budget.as_millis()
                )))
            })
    }

    async fn request_token(
        &self,
        client: &reqwest::Client,
        guard: TargetGuard,
    ) -> Result<Token, SendError> {
        let fail = |m: String| SendError::Auth(format!("auth: oauth2 token endpoint: {m}"));
        let url = url::Url::parse(&self.token_url).map_err(|e| fail(format!("bad URL: {e}")))?;
        if guard == TargetGuard::PublicOnly {
            netguard::check_literal(&url).map_err(|e| fail(format!("forbidden target: {e}")))?;
        }
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(s) = &self.scope {
                form.append_pair("scope", s);
            }
            if let Some(a) = &self.audience {
                form.append_pair("audience", a);
            }
            form.finish()
        };
        let basic = basic::header_value(&enc(&self.client_id), &enc(self.client_secret.expose()));
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        let headers = request.headers_mut();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            sensitive_header(&basic).map_err(|e| fail(e.to_string()))?,
        );
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            reqwest::header::USER_AGENT,
            reqwest::header::HeaderValue::from_static(crate::outbound::USER_AGENT),
        );
        *request.body_mut() = Some(form.into());

        let started = Instant::now();
        let mut response = client
            .execute(request)
            .await
            .map_err(|e| fail(describe(&e)))?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_TOKEN_RESPONSE as u64)
        {
            return Err(fail("answer larger than 64 KiB".into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(describe(&e)))? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                return Err(fail("answer larger than 64 KiB".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let granted = answer::read(status, &body, |s| self.scrub(s)).map_err(fail)?;
        let keep = granted
            .lifetime
            .saturating_sub(refresh_margin(granted.lifetime));
        Ok(Token {
            value: Secret::from(granted.access_token.as_str()),
            // Cannot overflow once the lifetime is clamped; if it did, the token would
            // serve this request only.
            refresh_at: started.checked_add(keep).unwrap_or(started),
        })
    }

    /// Text from the token endpoint, shortened and without our secret, should a server
    /// echo it back.
    fn scrub(&self, s: &str) -> String {
        let mut s: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
        let secret = self.client_secret.expose();
        if !secret.is_empty() {
            s = s.replace(secret, "<redacted>");
        }
        s
    }
}

/// How long before expiry a token is renewed: 30 s, or a fifth of a short lifetime.
fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(30))
}

fn set_bearer(request: &mut reqwest::Request, token: &Secret) -> Result<(), SendError> {
    let value = sensitive_header(&format!("Bearer {}", token.expose())).map_err(|_| {
        SendError::Auth("auth: oauth2: the access_token is not a valid header value".into())
    })?;
    request
        .headers_mut()
        .insert(reqwest::header::AUTHORIZATION, value);
    Ok(())
}

/// A one-line description of a failed token request (no URL query, no secret).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    format!("{kind}: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }
}
