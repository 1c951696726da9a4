//! Builds and sends one callback: the URL and headers of CONTRACT §3, the body, the
//! partner's auth scheme, the Standard Webhooks signature, the endpoint's decrypted
//! credentials, and the SSRF-guarded HTTP clients that send it. Both the worker (every
//! delivery attempt) and the API (`POST /v1/endpoints/{id}/test`) send through here.
//!
//! ```text
//! credentials ─▶ request (URL, headers, body) ─▶ signing ─▶ sender ─▶ auth ─▶ clients
//!                                                              │
//!                                         AttemptResult (status, body, error + ErrorKind)
//! ```
//!
//! Nothing here knows about the queue: what an attempt's result means for the delivery
//! (retry, dead-letter) is the worker's business.

pub mod auth;
mod clients;
mod credentials;
mod failure;
mod request;
mod retry_after;
mod sender;
pub mod signing;
pub mod test_callback;

pub use credentials::{CredentialCache, Credentials, open as open_credentials};
pub use failure::Failure;
pub use request::{
    CallbackRequest, USER_AGENT, proposal_status_url, set_traceparent, sign_standard_webhooks,
};
pub use retry_after::parse_retry_after;
pub use sender::{AttemptResult, CallbackSender, RESPONSE_BODY_LIMIT};
