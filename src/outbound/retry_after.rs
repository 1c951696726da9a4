//! `Retry-After` (RFC 9110 §10.2.3) as a partner answers it with a 429 or 503. It comes from
//! the partner, so it is read without trusting its size: a delta-seconds too large for a
//! `u64` or a date centuries ahead is returned as such, and the worker's retry policy caps it.

use std::time::{Duration, SystemTime};

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP date (a date in the
/// past means now). Delta-seconds too large for a `u64` saturate (the policy caps them);
/// anything else unreadable is `None` (the header is ignored).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: a parse error can only be an overflow.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 20:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 20:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 19:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
