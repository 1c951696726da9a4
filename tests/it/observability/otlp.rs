//! OpenTelemetry traces: an OTLP/HTTP receiver inside the test decodes what callbackd
//! exports (protobuf `ExportTraceServiceRequest`) and checks the attempt spans, their
//! attributes and their link to the enqueue request's `traceparent`; callbacks carry a
//! `traceparent` only for endpoints that opt in; a malformed one is ignored and not stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Attr;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Api;
use crate::support::app::{TestDb, spawn_app};
use crate::support::process::{self, TOKEN};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn platform_traceparent() -> String {
    format!("00-{TRACE_ID}-{SPAN_ID}-01")
}

/// An OTLP/HTTP collector on 127.0.0.1 that keeps every span it is sent.
struct Collector {
    base: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let kept = kept.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut kept = kept.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            kept.extend(scope.spans);
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { base, spans }
    }

    /// The attempt spans of `delivery`, once there are `n`, ordered by attempt.
    async fn attempts(&self, delivery: &str, n: usize, within: Duration) -> Vec<Span> {
        let what = format!("{n} attempt spans of {delivery} to be exported");
        wait_until(&what, within, async || {
            let mut got: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.name == "attempt" && attr(s, "delivery_id") == Some(str(delivery)))
                .cloned()
                .collect();
            if got.len() < n {
                return Err(format!("{} exported", got.len()));
            }
            got.sort_by_key(|s| match attr(s, "attempt") {
                Some(Attr::IntValue(i)) => i,
                _ => 0,
            });
            Ok(got)
        })
        .await
    }
}

fn attr(span: &Span, key: &str) -> Option<Attr> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn str(s: &str) -> Attr {
    Attr::StringValue(s.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Enqueues one status change for `partner` with these extra headers; its delivery id.
async fn enqueue(api: &Api<'_>, partner: &str, headers: &[(&str, &str)]) -> String {
    let mut request = api
        .client
        .post(api.proc.api("/v1/notifications"))
        .bearer_auth(TOKEN)
        .json(&json!({"partner_id": partner, "environment": "production",
                      "event_type": "proposal.status",
                      "proposal": uuid::Uuid::new_v4(), "status": 9}));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
    let n: Value = response.json().await.unwrap();
    n["deliveries"][0]["id"].as_str().unwrap().to_string()
}

/// Two attempts (500, then 200) of a notification enqueued with a traceparent: two attempt
/// spans with the delivery's ids, their attempt, status and error kind, each linked to the
/// platform's span; the partner sees no traceparent. Once the endpoint opts in, it gets the
/// attempt span's own context (the attempt's trace, not the platform's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_spans_are_exported_linked_to_the_enqueue_and_propagated_only_on_opt_in() {
    let db = TestDb::create().await;
    let collector = Collector::start().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(500), Reply::status(200)]);
    let proc = process::start(
        &db.url,
        "all",
        &[
            ("CALLBACKD_OTLP_ENDPOINT", &collector.base),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let api = Api::of(&proc);
    let (partner, endpoint) = api
        .partner_with_endpoint("Traced", &format!("{}/cb", rx.base), 5)
        .await;

    let delivery = enqueue(&api, &partner, &[("traceparent", &platform_traceparent())]).await;
    api.wait_state(&delivery, "delivered").await;
    let spans = collector
        .attempts(&delivery, 2, Duration::from_secs(20))
        .await;
    assert_eq!(spans.len(), 2, "one span per attempt");
    for (span, (attempt, status, kind)) in spans
        .iter()
        .zip([(1, 500, Some("http_5xx")), (2, 200, None)])
    {
        assert_eq!(attr(span, "delivery_id"), Some(str(&delivery)));
        assert_eq!(attr(span, "partner_id"), Some(str(&partner)));
        assert_eq!(attr(span, "endpoint_id"), Some(str(&endpoint)));
        assert_eq!(attr(span, "attempt"), Some(Attr::IntValue(attempt)));
        assert_eq!(attr(span, "status_code"), Some(Attr::IntValue(status)));
        assert_eq!(attr(span, "error_kind"), kind.map(str), "attempt {attempt}");
        assert_eq!(span.links.len(), 1, "attempt {attempt}: {:?}", span.links);
        assert_eq!(hex(&span.links[0].trace_id), TRACE_ID);
        assert_eq!(hex(&span.links[0].span_id), SPAN_ID);
        // A link, not a parent: the attempt is its own trace.
        assert_ne!(hex(&span.trace_id), TRACE_ID);
        assert!(
            span.parent_span_id.is_empty(),
            "attempt {attempt} has a parent"
        );
    }
    let seen = rx.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        seen.iter().all(|r| r.header("traceparent").is_none()),
        "an endpoint that did not opt in got a traceparent"
    );

    let changed = api
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/endpoints/{endpoint}"),
            Some(json!({"propagate_trace_context": true})),
        )
        .await;
    assert_eq!(changed["propagate_trace_context"], true);
    let delivery = enqueue(&api, &partner, &[("traceparent", &platform_traceparent())]).await;
    api.wait_state(&delivery, "delivered").await;
    let span = collector
        .attempts(&delivery, 1, Duration::from_secs(20))
        .await
        .remove(0);
    let seen = rx.wait_for(3, Duration::from_secs(10)).await;
    let sent = seen[2]
        .header("traceparent")
        .expect("a traceparent once opted in");
    assert_eq!(
        sent,
        format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id)),
        "the attempt span's context"
    );
    assert_eq!(span.links.len(), 1);
    assert_eq!(hex(&span.links[0].trace_id), TRACE_ID);
}

/// A graceful stop sends the spans still buffered: with a schedule of one hour, the attempt
/// span reaches the collector only because SIGTERM flushed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_flushes_the_buffered_spans() {
    let db = TestDb::create().await;
    let collector = Collector::start().await;
    let rx = Receiver::start().await;
    let mut proc = process::start(
        &db.url,
        "all",
        &[
            ("CALLBACKD_OTLP_ENDPOINT", &collector.base),
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
        ],
    )
    .await;
    let api = Api::of(&proc);
    let (partner, _) = api
        .partner_with_endpoint("Flushed", &format!("{}/cb", rx.base), 5)
        .await;
    let delivery = enqueue(&api, &partner, &[]).await;
    api.wait_state(&delivery, "delivered").await;
    proc.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), proc.child.wait())
        .await
        .expect("callbackd stops")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", proc.output());
    let span = collector
        .attempts(&delivery, 1, Duration::from_secs(1))
        .await
        .remove(0);
    assert_eq!(attr(&span, "status_code"), Some(Attr::IntValue(200)));
    assert!(span.links.is_empty(), "no traceparent, no link");
}

/// What a traceparent header holds unless it is valid: nothing is stored, the enqueue is
/// accepted. A valid one is stored as sent, on the single call and on every batch item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_accepted_and_not_stored() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let body = |n: u8| {
        json!({"partner_id": partner, "environment": "production",
               "event_type": "proposal.status", "proposal": uuid::Uuid::new_v4(), "status": n})
    };
    let stored = |id: String| {
        let pool = app.pool.clone();
        async move {
            let id: uuid::Uuid = id.parse().unwrap();
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT traceparent FROM notifications WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let valid = platform_traceparent();
    let malformed: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        valid.as_bytes()[..54].to_vec(),
        format!("{valid}0").into_bytes(),
        format!("00-{}-{SPAN_ID}-01", "0".repeat(32)).into_bytes(),
        format!("00-{TRACE_ID}-{}-01", "0".repeat(16)).into_bytes(),
        valid.to_uppercase().into_bytes(),
        format!("ff-{TRACE_ID}-{SPAN_ID}-01").into_bytes(),
        valid.replace("4bf9", "4b\u{e9}").into_bytes(),
        [&valid.as_bytes()[..50], b"\xff\xfe\xfd\xfc\xfb"].concat(),
        "x".repeat(8000).into_bytes(),
    ];
    for value in &malformed {
        let response = raw_post(&app.address, "/v1/notifications", value, &body(9)).await;
        assert_eq!(
            response.0,
            202,
            "{}: {}",
            String::from_utf8_lossy(value),
            response.1
        );
        let id = serde_json::from_str::<Value>(&response.1).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(stored(id).await, None, "{}", String::from_utf8_lossy(value));
    }
    // A NUL byte cannot reach callbackd: the HTTP parser refuses the request itself, and
    // nothing is written.
    let before = app.row_counts().await;
    let nul = [&valid.as_bytes()[..20], b"\0", &valid.as_bytes()[21..]].concat();
    let (status, _) = raw_post(&app.address, "/v1/notifications", &nul, &body(9)).await;
    assert_eq!(status, 400);
    assert_eq!(app.row_counts().await, before);
    // Twice the same valid header is no trace context either.
    let twice = app
        .client
        .post(app.url("/v1/notifications"))
        .bearer_auth(&app.token)
        .header("traceparent", &valid)
        .header("traceparent", &valid)
        .json(&body(9))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 202);
    let id = twice.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stored(id).await, None);

    let (status, answer) = raw_post(
        &app.address,
        "/v1/notifications",
        valid.as_bytes(),
        &body(9),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stored(id).await, Some(valid.clone()));
    let batch = json!([body(1), body(2)]);
    let (status, answer) = raw_post(
        &app.address,
        "/v1/notifications/batch",
        valid.as_bytes(),
        &batch,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    for item in answer["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap().to_string();
        assert_eq!(stored(id).await, Some(valid.clone()));
    }
    let (status, answer) =
        raw_post(&app.address, "/v1/notifications/batch", b"garbage", &batch).await;
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    for item in answer["items"].as_array().unwrap() {
        assert_eq!(stored(item["id"].as_str().unwrap().to_string()).await, None);
    }
}

/// POSTs `body` with `traceparent: <value>` written byte for byte (no HTTP client would
/// send every one of these); (status, body).
async fn raw_post(address: &str, path: &str, value: &[u8], body: &Value) -> (u16, String) {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.to_string();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\
         traceparent: ",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(value);
    request.extend_from_slice(b"\r\n\r\n");
    request.extend_from_slice(body.as_bytes());
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
