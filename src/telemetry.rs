//! Logs and traces.
//!
//! Logs: human-readable text by default, one JSON object per line with `--log-format json`.
//! The level comes from `RUST_LOG` (default `info`; `warn` for the demo).
//!
//! Traces: with `otlp_endpoint` set, callbackd's own spans (one per delivery attempt) are
//! exported as OpenTelemetry traces over OTLP/HTTP (protobuf) through our one reqwest client.
//! `RUST_LOG` does not thin them out: a quieter log must not lose traces.

use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::model::TraceParent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How long one export may take, and how long the last flush may hold a stopping process.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The trace exporter of this process; [`Traces::shutdown`] sends what is still buffered.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Flushes the spans not yet exported and stops the exporter (at most a few seconds).
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK blocks while its export thread sends; keep that off the runtime's workers,
        // which the export itself needs (see [`ExportClient`]).
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "traces: the last export did not complete");
        }
    }
}

/// Installs the log (and, with `otlp_endpoint`, the trace exporter) for this process.
/// `default_filter` (an `EnvFilter` directive) applies when `RUST_LOG` is unset or empty.
/// Must run inside the Tokio runtime when `otlp_endpoint` is given.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Option<Traces>> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let log = match format {
        LogFormat::Text => fmt::layer().boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    }
    .with_filter(filter);
    let provider = otlp_endpoint.map(tracer_provider).transpose()?;
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("callbackd"))
            .with_threads(false)
            // Only callbackd's spans: a library's spans (or the exporter's own requests)
            // are not what an operator follows, and could feed back into the exporter.
            .with_filter(Targets::new().with_target("callbackd", tracing::Level::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init();
    Ok(provider.map(|provider| Traces { provider }))
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let client = reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ExportClient {
            client,
            runtime: tokio::runtime::Handle::current(),
        })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("callbackd")
                .build(),
        )
        .build())
}

/// `<base>/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT is read by every OTLP/HTTP exporter.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// The exporter's HTTP client: our reqwest client, on our runtime. The SDK exports from a
/// thread of its own (no Tokio there), so each request is run on the runtime and awaited.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// The most of a collector's answer that is read (the exporter only needs its status).
const ANSWER_LIMIT: usize = 64 * 1024;

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let mut response = client.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > ANSWER_LIMIT {
                    body.truncate(ANSWER_LIMIT);
                    break;
                }
            }
            Ok::<_, HttpError>(answer.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

/// Links `span` to the trace context of `traceparent` (as stored with the notification):
/// a link, not a parent, because the attempt happens later than the platform's request,
/// maybe several times. Nothing when there is none or no trace is being recorded.
pub fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(t) = traceparent.and_then(|t| TraceParent::parse(t.as_bytes())) {
        span.add_link(SpanContext::new(
            TraceId::from_bytes(t.trace_id),
            SpanId::from_bytes(t.span_id),
            TraceFlags::new(t.flags),
            true,
            TraceState::default(),
        ));
    }
}

/// The `traceparent` header value naming `span` itself, or None when it is not recorded
/// (traces are not exported).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        TraceParent {
            trace_id: span_context.trace_id().to_bytes(),
            span_id: span_context.span_id().to_bytes(),
            flags: span_context.trace_flags().to_u8(),
        }
        .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_traces_url_follows_the_otlp_convention() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/base/"),
            "https://otel.example/base/v1/traces"
        );
    }

    #[test]
    fn the_otlp_endpoint_is_empty_or_an_http_url() {
        assert_eq!(Settings::defaults().otlp_endpoint(), None);
        let env = [("CALLBACKD_OTLP_ENDPOINT", "http://127.0.0.1:4318")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let s = Settings::load_with_env(None, env).unwrap();
        assert_eq!(s.otlp_endpoint(), Some("http://127.0.0.1:4318"));
        for bad in ["127.0.0.1:4318", "ftp://h/", "http://", "\u{0}"] {
            let env = [("CALLBACKD_OTLP_ENDPOINT".to_string(), bad.to_string())];
            let err = Settings::load_with_env(None, env).unwrap_err().to_string();
            assert!(err.contains("otlp_endpoint"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_span_is_linked_and_named_only_while_traces_are_recorded() {
        // No trace exporter in unit tests: no header to send, and a link is a no-op.
        let span = tracing::info_span!("attempt");
        link(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        link(&span, Some("garbage"));
        assert_eq!(traceparent(&span), None);
    }
}
