//! mTLS: a real TLS server (rustls) that requires a client certificate issued by a test CA
//! made with rcgen, and refuses a handshake without one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, server::WebPkiClientVerifier};

use super::common::{deliver, endpoint, only_attempt};
use crate::support::app::spawn_app;

struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca("callbackd test CA");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "callbackd client");
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_cert: server.der().clone(),
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Counts TLS handshakes that succeeded and failed.
#[derive(Default)]
struct Handshakes {
    ok: AtomicU32,
    failed: AtomicU32,
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<Handshakes>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => {
                    assert!(
                        tls.get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty())
                    );
                    self.handshakes.ok.fetch_add(1, Ordering::SeqCst);
                    return (tls, addr);
                }
                Err(_) => {
                    self.handshakes.failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS server on 127.0.0.1 requiring a client certificate from the test CA.
async fn start_server(p: &Pki) -> (String, Arc<Handshakes>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(p.ca_der.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![p.server_cert.clone()], p.server_key.clone_key())
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", tcp.local_addr().unwrap());
    let handshakes: Arc<Handshakes> = Arc::default();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        handshakes: handshakes.clone(),
    };
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, handshakes)
}

#[tokio::test]
async fn client_certificate_is_presented_and_required() {
    let p = pki();
    let (base, handshakes) = start_server(&p).await;
    let app = spawn_app().await;
    let auth = json!({"type": "client_certificate", "certificate_pem": p.client_cert_pem,
                      "private_key_pem": p.client_key_pem, "ca_pem": p.ca_pem});
    let (partner, endpoint_id) = endpoint(&app, &format!("{base}/cb"), auth, 1).await;
    for _ in 0..2 {
        let d = deliver(&app, partner, "delivered").await;
        assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");
    }
    assert_eq!(
        handshakes.ok.load(Ordering::SeqCst),
        1,
        "the identity's client (and its pooled connection) is reused"
    );
    let shown = app
        .get(&format!("/v1/endpoints/{endpoint_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");

    // Without a client certificate the server refuses the handshake.
    let root = reqwest::Certificate::from_pem(p.ca_pem.as_bytes()).unwrap();
    let plain = reqwest::Client::builder()
        .add_root_certificate(root)
        .no_proxy()
        .build()
        .unwrap();
    let refused = plain.get(format!("{base}/cb")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(handshakes.failed.load(Ordering::SeqCst), 1);

    // An endpoint without auth gets the same refusal as a failed attempt (tls).
    let (partner, _) = endpoint(&app, &format!("{base}/cb"), json!({"type": "none"}), 1).await;
    let d = deliver(&app, partner, "dead").await;
    let error = only_attempt(&d)["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("tls"), "{error}");

    // A certificate from another CA is refused as well.
    let other = ca("some other CA");
    let k = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "intruder");
    let c = params.signed_by(&k, &other).unwrap();
    let auth = json!({"type": "client_certificate", "certificate_pem": c.pem(),
                      "private_key_pem": k.serialize_pem(), "ca_pem": p.ca_pem});
    let (partner, _) = endpoint(&app, &format!("{base}/cb"), auth, 1).await;
    let d = deliver(&app, partner, "dead").await;
    assert!(only_attempt(&d)["status_code"].is_null(), "{d:#}");
    assert!(handshakes.failed.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn bad_pem_is_refused_at_registration() {
    let p = pki();
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let stranger = KeyPair::generate().unwrap().serialize_pem();
    let cases = [
        (
            json!({"type": "client_certificate", "certificate_pem": p.client_cert_pem,
                   "private_key_pem": stranger}),
            "auth.private_key_pem",
        ),
        (
            json!({"type": "client_certificate", "certificate_pem": "nope", "private_key_pem": p.client_key_pem}),
            "auth.certificate_pem",
        ),
        (
            json!({"type": "client_certificate", "certificate_pem": p.client_cert_pem, "private_key_pem": "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----"}),
            "auth.private_key_pem",
        ),
        (
            json!({"type": "client_certificate", "certificate_pem": p.client_cert_pem, "private_key_pem": p.client_key_pem, "ca_pem": "x"}),
            "auth.ca_pem",
        ),
        (
            json!({"type": "client_certificate", "certificate_pem": p.client_cert_pem}),
            "auth.private_key_pem",
        ),
    ];
    for (auth, field) in cases {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "homologation", "url": "https://127.0.0.1:9/cb", "method": "POST", "auth": auth}),
            )
            .await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}
