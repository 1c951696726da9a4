//! Each kind from a real failure on 127.0.0.1, through the sender as a delivery uses it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use super::*;
use crate::outbound::auth::AuthConfig;
use crate::outbound::{AttemptResult, CallbackSender};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn attempt(allow_private: bool, url: &str, timeout: Duration) -> AttemptResult {
    let sender = CallbackSender::new(allow_private).unwrap();
    let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
    sender
        .attempt(request, Uuid::new_v4(), &AuthConfig::None, timeout)
        .await
}

fn assert_failed(result: &AttemptResult, kind: ErrorKind, prefix: &str) {
    assert_eq!(result.error_kind, Some(kind), "{result:?}");
    let error = result.error.as_deref().unwrap();
    assert!(error.starts_with(prefix), "{error}");
}

/// What the test server does with each connection.
#[derive(Clone)]
enum Then {
    /// Once the request is read: write these bytes and close.
    Answer(String),
    /// Once the request is read: close cleanly (FIN).
    Close,
    /// Once the request is read: reset the connection (RST).
    Reset,
    /// Once the request is read: say nothing until the client gives up.
    Hold,
    /// A TLS server with this certificate, nothing more.
    Tls(tokio_rustls::TlsAcceptor),
}

fn answer(status: u16, body_length: usize, body: &str) -> Then {
    Then::Answer(format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {body_length}\r\n\r\n{body}"
    ))
}

/// A server on 127.0.0.1 doing `then` with every connection; its address.
async fn server(then: Then) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let then = then.clone();
            tokio::spawn(async move {
                if let Then::Tls(acceptor) = then {
                    let _ = acceptor.accept(socket).await;
                    return;
                }
                read_request(&mut socket).await;
                match then {
                    Then::Answer(bytes) => {
                        let _ = socket.write_all(bytes.as_bytes()).await;
                    }
                    Then::Close => {
                        let _ = socket.shutdown().await;
                    }
                    Then::Reset => socket.set_zero_linger().unwrap(),
                    Then::Hold => {
                        let _ = socket.read(&mut [0u8; 1]).await;
                    }
                    Then::Tls(_) => unreachable!(),
                }
            });
        }
    });
    addr
}

/// Reads the request head, or (for an https URL) the TLS ClientHello, whose first byte is
/// 0x16, the handshake record type: after that the client waits for the server.
async fn read_request(socket: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.first() != Some(&0x16) && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    // A port that was just free: nothing listens on it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let result = attempt(true, &format!("http://{addr}/cb"), TIMEOUT).await;
    assert_failed(&result, ErrorKind::Connect, "connect: ");
    assert_eq!(result.status_code, None);
}

/// A server that misbehaves after reading the request: the kind, whatever the wording.
#[tokio::test]
async fn each_misbehaving_server_gives_its_kind() {
    let cases = [
        // Closed (FIN) or reset (RST) before an answer.
        ("http", Then::Close, ErrorKind::Connect, "connect: "),
        ("http", Then::Reset, ErrorKind::Connect, "connect: "),
        // Hung up during the TLS handshake: tokio-rustls says UnexpectedEof.
        ("https", Then::Close, ErrorKind::Tls, "tls: "),
        // An https URL on a plain HTTP port: any rustls error is `tls`. (Before the kinds
        // were typed this one was `connect`: its message, "received corrupt message",
        // happened not to contain "tls" or "certificate".)
        ("https", answer(400, 0, ""), ErrorKind::Tls, "tls: "),
        // An answer cut off mid-body.
        (
            "http",
            answer(200, 100, "not all of it"),
            ErrorKind::Other,
            "response: ",
        ),
    ];
    for (scheme, then, kind, prefix) in cases {
        let addr = server(then).await;
        let result = attempt(true, &format!("{scheme}://{addr}/cb"), TIMEOUT).await;
        assert_failed(&result, kind, prefix);
        assert_eq!(result.status_code, None, "{result:?}");
    }
}

#[tokio::test]
async fn a_self_signed_certificate_is_tls() {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(["127.0.0.1".to_string()]).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| {
        b.with_no_client_auth().with_single_cert(
            vec![cert.der().clone()],
            signing_key.serialize_der().try_into().unwrap(),
        )
    })
    .unwrap();
    let addr = server(Then::Tls(Arc::new(tls).into())).await;
    let result = attempt(true, &format!("https://{addr}/cb"), TIMEOUT).await;
    assert_failed(&result, ErrorKind::Tls, "tls: ");
    assert!(
        result.error.as_deref().unwrap().contains("certificate"),
        "the message still says why: {result:?}"
    );
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_a_forbidden_target() {
    let addr = server(answer(200, 0, "")).await;
    let by_name = format!("http://localhost:{}/cb", addr.port());
    // The guarded resolver refuses the name; the sender refuses the literal itself.
    let refused = attempt(false, &by_name, TIMEOUT).await;
    assert_failed(&refused, ErrorKind::ForbiddenTarget, "forbidden target: ");
    let literal = attempt(false, &format!("http://{addr}/cb"), TIMEOUT).await;
    assert_failed(&literal, ErrorKind::ForbiddenTarget, "forbidden target: ");
    // The same server, private targets allowed: delivered, no kind.
    let allowed = attempt(true, &by_name, TIMEOUT).await;
    assert!(allowed.succeeded(), "{allowed:?}");
    assert_eq!((allowed.error, allowed.error_kind), (None, None));
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout() {
    let addr = server(Then::Hold).await;
    let result = attempt(
        true,
        &format!("http://{addr}/cb"),
        Duration::from_millis(300),
    )
    .await;
    assert_failed(
        &result,
        ErrorKind::Timeout,
        "timeout: no complete answer within 300 ms",
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_dns() {
    // `.invalid` never resolves (RFC 6761); with and without the guarded resolver.
    for allow_private in [false, true] {
        let result = attempt(allow_private, "http://no-such-partner.invalid/cb", TIMEOUT).await;
        assert_failed(&result, ErrorKind::Dns, "dns: ");
    }
}

#[tokio::test]
async fn http_answers_take_their_kind_from_the_status() {
    for (status, kind, prefix) in [
        (
            302,
            Some(ErrorKind::Redirect),
            "redirect: 302 to (no Location)",
        ),
        (404, Some(ErrorKind::Http4xx), "http 404"),
        (401, Some(ErrorKind::Http4xx), "http 401"),
        (413, Some(ErrorKind::BodyTooLarge), "http 413"),
        (503, Some(ErrorKind::Http5xx), "http 503"),
        (204, None, ""),
    ] {
        let addr = server(answer(status, 0, "")).await;
        let result = attempt(true, &format!("http://{addr}/cb"), TIMEOUT).await;
        assert_eq!(result.status_code, Some(status));
        assert_eq!(result.error_kind, kind, "{result:?}");
        assert!(
            result.error.as_deref().unwrap_or("").starts_with(prefix),
            "{result:?}"
        );
    }
}
