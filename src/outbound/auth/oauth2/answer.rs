//! Reading a token endpoint's answer (RFC 6749 §5.1 and §5.2) without trusting any of it:
//! the body may be anything (binary, not JSON, numbers no machine type holds).
//!
//! `expires_in` is clamped to [0, [`MAX_LIFETIME`]]: a token that "never expires"
//! (`1e19`, `1e400`, 2^64) is renewed daily, a negative or zero one is used for this request
//! only, and one that is missing or unreadable (`"abc"`, `null`) lives [`DEFAULT_LIFETIME`].

use std::collections::HashMap;
use std::time::Duration;

use serde_json::value::RawValue;

/// Used when the token response has no readable `expires_in`.
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// The longest a token is kept, whatever the server says.
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a successful answer grants.
#[derive(Debug, PartialEq)]
pub(super) struct Granted {
    pub access_token: String,
    pub lifetime: Duration,
}

/// The token, or why there is none (a message for the attempt log, with every text the
/// server sent passed through `scrub`).
pub(super) fn read(
    status: reqwest::StatusCode,
    body: &[u8],
    scrub: impl Fn(&str) -> String,
) -> Result<Granted, String> {
    // Each member kept as raw JSON text: a number out of every machine range (`1e400`)
    // must not make the whole answer unreadable.
    let members: Option<HashMap<String, Box<RawValue>>> = serde_json::from_slice(body).ok();
    let text = |k: &str| {
        members
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    };
    if !status.is_success() {
        let mut m = format!("answered {}", status.as_u16());
        if let Some(e) = text("error") {
            m.push_str(&format!(": {}", scrub(&e)));
        }
        if let Some(d) = text("error_description") {
            m.push_str(&format!(" ({})", scrub(&d)));
        }
        return Err(m);
    }
    let Some(members) = &members else {
        return Err(format!(
            "answered {} without a JSON object",
            status.as_u16()
        ));
    };
    let Some(access_token) = text("access_token") else {
        return Err("the answer has no access_token".into());
    };
    if access_token.is_empty() {
        return Err("the answer has an empty access_token".into());
    }
    if let Some(t) = text("token_type")
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "token_type {:?} is not supported (only Bearer)",
            scrub(&t)
        ));
    }
    Ok(Granted {
        access_token,
        lifetime: lifetime(members.get("expires_in").map(|raw| raw.get())),
    })
}

/// `expires_in` (raw JSON: a number, or a string holding one), clamped; see the module.
fn lifetime(raw: Option<&str>) -> Duration {
    let Some(raw) = raw else {
        return DEFAULT_LIFETIME;
    };
    let text = match serde_json::from_str::<String>(raw) {
        Ok(s) => s,
        Err(_) => raw.to_string(),
    };
    let text = text.trim();
    // Only what a JSON number is made of: Rust would also read "NaN", "inf" and "infinity".
    let numeric = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    let Some(secs) = text.parse::<f64>().ok().filter(|s| numeric && !s.is_nan()) else {
        return DEFAULT_LIFETIME;
    };
    // Infinity (`1e400`) clamps to the maximum too; the conversion cannot fail afterwards.
    let secs = secs.clamp(0.0, MAX_LIFETIME.as_secs_f64());
    Duration::try_from_secs_f64(secs).unwrap_or(DEFAULT_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(body: &str) -> Result<Granted, String> {
        read(reqwest::StatusCode::OK, body.as_bytes(), str::to_string)
    }

    fn lifetime_of(expires_in: &str) -> Duration {
        let body = format!(r#"{{"access_token": "t", "expires_in": {expires_in}}}"#);
        granted(&body).unwrap().lifetime
    }

    #[test]
    fn expires_in_is_clamped_to_a_day_and_to_zero() {
        let day = MAX_LIFETIME;
        for (expires_in, want) in [
            ("3600", Duration::from_secs(3600)),
            ("\"3600\"", Duration::from_secs(3600)),
            ("\" 60 \"", Duration::from_secs(60)),
            ("59.5", Duration::from_millis(59_500)),
            ("0", Duration::ZERO),
            ("-5", Duration::ZERO),
            ("-1e400", Duration::ZERO),
            ("1e19", day),
            ("1e400", day),
            ("18446744073709551616", day),
            ("\"18446744073709551616\"", day),
            ("99999999999999999999999999999999999999999999", day),
            ("86401", day),
            ("\"abc\"", DEFAULT_LIFETIME),
            ("\"NaN\"", DEFAULT_LIFETIME),
            ("\"inf\"", DEFAULT_LIFETIME),
            ("\"-infinity\"", DEFAULT_LIFETIME),
            ("\"\"", DEFAULT_LIFETIME),
            ("null", DEFAULT_LIFETIME),
            ("true", DEFAULT_LIFETIME),
            ("[1]", DEFAULT_LIFETIME),
            ("{\"s\": 1}", DEFAULT_LIFETIME),
        ] {
            assert_eq!(lifetime_of(expires_in), want, "expires_in {expires_in}");
        }
        assert_eq!(
            granted(r#"{"access_token": "t"}"#).unwrap().lifetime,
            DEFAULT_LIFETIME
        );
    }

    #[test]
    fn hostile_bodies_are_clear_errors() {
        let ok = reqwest::StatusCode::OK;
        let no_json = |body: &[u8]| read(ok, body, str::to_string).unwrap_err();
        assert_eq!(no_json(b""), "answered 200 without a JSON object");
        assert_eq!(
            no_json(b"\0\xff\xfe{"),
            "answered 200 without a JSON object"
        );
        assert_eq!(no_json(b"[1, 2]"), "answered 200 without a JSON object");
        assert_eq!(
            no_json(b"{\"access_token\": \"t\xff\"}"),
            "answered 200 without a JSON object",
            "invalid UTF-8 inside a string"
        );
        assert_eq!(no_json(b"{}"), "the answer has no access_token");
        assert_eq!(
            no_json(br#"{"access_token": 12}"#),
            "the answer has no access_token"
        );
        assert_eq!(
            no_json(br#"{"access_token": ""}"#),
            "the answer has an empty access_token"
        );
        assert_eq!(
            no_json(br#"{"access_token": "t", "token_type": "mac"}"#),
            r#"token_type "mac" is not supported (only Bearer)"#
        );
        // A token with a NUL is granted here; it is refused when it goes into a header.
        assert_eq!(
            granted(r#"{"access_token": "a\u0000b"}"#)
                .unwrap()
                .access_token,
            "a\0b"
        );
    }

    #[test]
    fn refusals_show_the_error_fields_scrubbed() {
        let m = read(
            reqwest::StatusCode::UNAUTHORIZED,
            br#"{"error": "invalid_client", "error_description": "bad secret s3cret", "x": 1e400}"#,
            |s| s.replace("s3cret", "<redacted>"),
        )
        .unwrap_err();
        assert_eq!(m, "answered 401: invalid_client (bad secret <redacted>)");
        let m = read(
            reqwest::StatusCode::BAD_GATEWAY,
            b"\0<html>",
            str::to_string,
        );
        assert_eq!(m.unwrap_err(), "answered 502");
    }
}
