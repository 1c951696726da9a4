//! Why an attempt failed, in two forms: an [`ErrorKind`] for machines (the attempt log's
//! `error_kind`, metrics, alerts, hints) and a one-line, secret-free message for people (the
//! attempt log's `error`, which starts with a word for the kind).
//!
//! The kind of a failed request is read from the *types* in the error's source chain, never
//! from the wording of a library's message (a reworded hyper or rustls message must not change
//! a partner's `error_kind`):
//!
//! | in the chain | kind |
//! |---|---|
//! | reqwest says `is_timeout` (its connect timeout, an `io::ErrorKind::TimedOut`) | `timeout` |
//! | [`netguard::ForbiddenTarget`] (the guarded resolver refused the address) | `forbidden_target` |
//! | reqwest says `is_dns` (its resolver wrapper tags every resolver failure) | `dns` |
//! | a `rustls::Error`, or the peer closing (`UnexpectedEof`) while connecting: only the TLS handshake reads then | `tls` |
//! | reqwest says `is_connect`; `ConnectionReset` / `BrokenPipe`; hyper's incomplete message (closed before an answer) | `connect` |
//! | anything else (`response: …` when reading the body failed, `request: …` otherwise) | `other` |

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use crate::model::ErrorKind;
use crate::netguard;

/// A failed attempt (or a failed step before it: credentials, URL): its kind and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// No complete answer within the endpoint's timeout.
    pub fn timeout(timeout: Duration) -> Self {
        Failure::new(
            ErrorKind::Timeout,
            format!(
                "timeout: no complete answer within {} ms",
                timeout.as_millis()
            ),
        )
    }

    /// A request that failed (connect, TLS, an answer cut short, ...), within `timeout`.
    pub fn of_request(e: &reqwest::Error, timeout: Duration) -> Self {
        let (kind, word) = classify(e);
        if kind == ErrorKind::Timeout {
            return Failure::timeout(timeout);
        }
        // The innermost cause says most (e.g. "Connection refused (os error 111)").
        let mut detail = None;
        let mut source = e.source();
        while let Some(s) = source {
            detail = Some(s);
            source = s.source();
        }
        let detail = detail.map_or_else(|| e.to_string(), ToString::to_string);
        Failure::new(kind, format!("{word}: {detail}"))
    }
}

/// The kind of a failed request and the word its message starts with.
fn classify(e: &reqwest::Error) -> (ErrorKind, &'static str) {
    if e.is_timeout() {
        return (ErrorKind::Timeout, "timeout");
    }
    let chain = causes(e);
    let io_kind = |wanted: &[io::ErrorKind]| {
        chain
            .iter()
            .filter_map(|c| c.downcast_ref::<io::Error>())
            .any(|io| wanted.contains(&io.kind()))
    };
    if chain.iter().any(|c| c.is::<netguard::ForbiddenTarget>()) {
        (ErrorKind::ForbiddenTarget, "forbidden target")
    } else if e.is_dns() {
        (ErrorKind::Dns, "dns")
    } else if chain.iter().any(|c| c.is::<rustls::Error>())
        || (e.is_connect() && io_kind(&[io::ErrorKind::UnexpectedEof]))
    {
        // tokio-rustls reports a peer that hangs up mid-handshake as `UnexpectedEof`; a plain
        // TCP connect never reads, so while connecting that can only be the handshake.
        (ErrorKind::Tls, "tls")
    } else if e.is_connect()
        || io_kind(&[io::ErrorKind::ConnectionReset, io::ErrorKind::BrokenPipe])
        || chain
            .iter()
            .filter_map(|c| c.downcast_ref::<hyper::Error>())
            .any(hyper::Error::is_incomplete_message)
    {
        // Refused, or accepted and then reset/closed without an answer.
        (ErrorKind::Connect, "connect")
    } else if e.is_body() || e.is_decode() {
        (ErrorKind::Other, "response")
    } else {
        (ErrorKind::Other, "request")
    }
}

/// Every error in `e`'s chain, including the ones an `io::Error` wraps: `io::Error::source`
/// skips the error it carries (it returns that error's own source), and hyper-rustls wraps
/// the `rustls::Error` of a failed handshake in two `io::Error`s.
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    out
}

#[cfg(test)]
mod tests;
