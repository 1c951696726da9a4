use super::wire_enum;

/// Where a delivery stands. `pending` covers both "due later" and "claimed by a worker now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
    Canceled,
}

wire_enum!(DeliveryState, "delivery state", {
    Pending => "pending",
    Delivered => "delivered",
    Dead => "dead",
    Canceled => "canceled",
});

/// Why a series of attempts was started (CONTRACT §7): the enqueue, an operator's replay
/// (API with the operator token, bulk replay, CLI), a partner's replay (partner token), or
/// the automatic replay after the endpoint recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Initial,
    Operator,
    Partner,
    AutoRecovery,
}

wire_enum!(Trigger, "trigger", {
    Initial => "initial",
    Operator => "operator",
    Partner => "partner",
    AutoRecovery => "auto_recovery",
});

/// The kind of a failed attempt (CONTRACT §7, and the rows of [`super::hints`]): for
/// machines (filters, metrics, alerts, hints), while the attempt's `error` text is for people.
///
/// It is decided where the failure happens, from types and never from a message's wording:
/// the outbound sender from the HTTP status or the error's source chain
/// (`crate::outbound::failure`), the worker for a panicked attempt, the completion for an
/// outcome the database refused, the reaper for a lost worker. It is stored as its own column
/// of `delivery_attempts` and `endpoint_tests`, whose CHECK lists the same names
/// (migrations/0018_error_kind.sql).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No complete answer within the endpoint's `timeout_ms` (or the connect timeout).
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// Nothing accepted the connection, or it was reset or closed before an answer.
    Connect,
    /// The TLS handshake or the TLS layer failed (e.g. the certificate does not verify).
    Tls,
    /// A 3xx answer: redirects are not followed.
    Redirect,
    /// A 4xx answer other than 413 (and other than 401/403 on an endpoint with auth).
    Http4xx,
    /// A 5xx answer.
    Http5xx,
    /// 401 or 403 on an endpoint that has an auth scheme.
    AuthRejected,
    /// A 413 answer.
    BodyTooLarge,
    /// The target resolves to (or is) a private or loopback address.
    ForbiddenTarget,
    /// The credentials could not be produced or obtained (OAuth2 token URL, key, certificate).
    Auth,
    /// callbackd itself failed: a panic, a lost worker, an outcome that could not be written.
    Internal,
    /// Anything else (an answer cut off mid-body, an unusable endpoint URL, ...).
    Other,
}

wire_enum!(ErrorKind, "error kind", {
    Timeout => "timeout",
    Dns => "dns",
    Connect => "connect",
    Tls => "tls",
    Redirect => "redirect",
    Http4xx => "http_4xx",
    Http5xx => "http_5xx",
    AuthRejected => "auth_rejected",
    BodyTooLarge => "body_too_large",
    ForbiddenTarget => "forbidden_target",
    Auth => "auth",
    Internal => "internal",
    Other => "other",
});

impl ErrorKind {
    /// The kind of an HTTP answer with `status`; `None` for a 2xx (a success).
    /// `with_auth`: the endpoint has an auth scheme, so a 401/403 refuses our credentials.
    pub fn of_status(status: u16, with_auth: bool) -> Option<ErrorKind> {
        Some(match status {
            200..=299 => return None,
            300..=399 => ErrorKind::Redirect,
            401 | 403 if with_auth => ErrorKind::AuthRejected,
            413 => ErrorKind::BodyTooLarge,
            400..=499 => ErrorKind::Http4xx,
            500..=599 => ErrorKind::Http5xx,
            _ => ErrorKind::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_the_contract_kinds() {
        let kind = |s, auth| ErrorKind::of_status(s, auth).map(ErrorKind::as_str);
        assert_eq!(kind(200, true), None);
        assert_eq!(kind(204, false), None);
        assert_eq!(kind(302, false), Some("redirect"));
        assert_eq!(kind(401, true), Some("auth_rejected"));
        assert_eq!(kind(403, true), Some("auth_rejected"));
        assert_eq!(
            kind(401, false),
            Some("http_4xx"),
            "no auth scheme: a plain 4xx"
        );
        assert_eq!(kind(413, true), Some("body_too_large"));
        assert_eq!(kind(404, true), Some("http_4xx"));
        assert_eq!(kind(429, false), Some("http_4xx"));
        assert_eq!(kind(503, false), Some("http_5xx"));
        assert_eq!(kind(600, false), Some("other"));
    }
}
