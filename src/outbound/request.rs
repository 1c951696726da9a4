//! Builds the callback request of CONTRACT §3 from a claimed delivery.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::model::Method;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (a space is
/// `%20`, never `+`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const USER_AGENT: &str = concat!("callbackd/", env!("CARGO_PKG_VERSION"));

/// The endpoint URL with `proposal`, `status` and `identifier` appended to whatever query
/// it already has (`identifier=` empty when the notification had none).
pub fn proposal_status_url(
    endpoint_url: &str,
    proposal: Uuid,
    status: i16,
    identifier: Option<&str>,
) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(endpoint_url)?;
    let ours = format!(
        "proposal={}&status={}&identifier={}",
        proposal,
        status,
        utf8_percent_encode(identifier.unwrap_or(""), QUERY_VALUE)
    );
    let query = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{ours}"),
        _ => ours,
    };
    url.set_query(Some(&query));
    Ok(url)
}

/// What goes into one callback request before auth is applied.
pub struct CallbackRequest<'a> {
    pub url: url::Url,
    pub method: Method,
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub event_type: &'a str,
    pub unix_time: i64,
    pub body: Option<&'a str>,
    /// `X-Callback-Sequence`, for endpoints that order deliveries.
    pub sequence: Option<i64>,
}

impl CallbackRequest<'_> {
    pub fn build(self) -> reqwest::Request {
        let method = match self.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        };
        let mut request = reqwest::Request::new(method, self.url);
        let headers = request.headers_mut();
        let mut set = |name: &'static str, value: String| {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::try_from(value).expect("ASCII header value"),
            );
        };
        set("user-agent", USER_AGENT.to_string());
        set("x-callback-id", self.delivery_id.to_string());
        set("x-callback-attempt", self.attempt.to_string());
        set("x-callback-event", self.event_type.to_string());
        set("x-callback-timestamp", self.unix_time.to_string());
        if let Some(sequence) = self.sequence {
            set("x-callback-sequence", sequence.to_string());
        }
        if self.method.has_body() {
            match self.body {
                Some(body) => {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    *request.body_mut() = Some(body.to_owned().into());
                }
                None => {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                    *request.body_mut() = Some(reqwest::Body::from(Vec::new()));
                }
            }
        }
        request
    }
}

/// Adds the Standard Webhooks headers over the request as built (its body is final):
/// `webhook-id` is the `X-Callback-Id`, `webhook-timestamp` the `X-Callback-Timestamp`.
pub fn sign_standard_webhooks(
    request: &mut reqwest::Request,
    keys: &super::signing::SigningKeys,
    id: Uuid,
    unix_time: i64,
) {
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default();
    let signature = keys.signature(&id.to_string(), unix_time, body, chrono::Utc::now());
    let headers = request.headers_mut();
    for (name, value) in [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", unix_time.to_string()),
        ("webhook-signature", signature),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::try_from(value).expect("ASCII header value"),
        );
    }
}

/// The W3C `traceparent` of an endpoint that asked for trace context (an ASCII value made
/// by [`crate::telemetry::traceparent`]).
pub fn set_traceparent(request: &mut reqwest::Request, value: String) {
    request.headers_mut().insert(
        HeaderName::from_static("traceparent"),
        HeaderValue::try_from(value).expect("ASCII header value"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";

    #[test]
    fn query_is_appended_and_encoded() {
        let p: Uuid = P.parse().unwrap();
        let u = proposal_status_url("https://p.example/cb", p, 9, Some("OP 1/2&x=é")).unwrap();
        assert_eq!(
            u.as_str(),
            format!(
                "https://p.example/cb?proposal={P}&status=9&identifier=OP%201%2F2%26x%3D%C3%A9"
            )
        );
        let u = proposal_status_url("https://p.example/cb?token=abc&env=prd", p, 0, None).unwrap();
        assert_eq!(
            u.as_str(),
            format!("https://p.example/cb?token=abc&env=prd&proposal={P}&status=0&identifier=")
        );
        let u = proposal_status_url("https://p.example/cb?", p, 11, None).unwrap();
        assert_eq!(
            u.query(),
            Some(&*format!("proposal={P}&status=11&identifier="))
        );
    }
}
