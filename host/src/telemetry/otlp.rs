//! Spans over OTLP/HTTP (the `otel` feature): the SDK's batch processor
//! exports from its own thread through a blocking ureq agent, so the
//! export never runs on, or waits for, the host's async runtime.

use crate::job::TraceParent;
use bytes::Bytes;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing::Span;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// How long one export may take before it is given up (and retried by the
/// SDK's policy).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest collector answer read.
const ANSWER_MAX: u64 = 1 << 20;

/// The tracer provider exporting to `endpoint` (a base URL), or to where
/// the `OTEL_EXPORTER_OTLP_*` variables say. The protocol is protobuf
/// unless `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`; the service name is
/// `wasmjob` unless `OTEL_SERVICE_NAME` says otherwise.
pub(super) fn provider(endpoint: Option<&str>) -> Result<SdkTracerProvider, String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(EXPORT_TIMEOUT))
        // The exporter reads the status itself.
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Agent(agent))
        .with_timeout(EXPORT_TIMEOUT);
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let exporter = exporter
        .build()
        .map_err(|e| format!("the OTLP span exporter: {e}"))?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("wasmjob");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The layer turning the host's info-level spans into OpenTelemetry
/// spans, whatever the log's filter.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("wasmjob"))
        .with_threads(false)
        .with_filter(Targets::new().with_target("wasmjob", LevelFilter::INFO))
}

/// Makes `span` a child of the remote span `parent`.
pub(super) fn set_parent(span: &Span, parent: TraceParent) {
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    // Fails only when the span is not exported (no layer) or already
    // started: then there is nothing to link.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// `span`'s own context, when it is exported.
pub(super) fn context_of(span: &Span) -> Option<TraceParent> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| TraceParent {
        trace_id: own.trace_id().to_bytes(),
        parent_id: own.span_id().to_bytes(),
        flags: own.trace_flags().to_u8(),
    })
}

/// The exporter's HTTP client: ureq, blocking, called from the SDK's
/// export thread.
#[derive(Debug)]
struct Agent(ureq::Agent);

#[async_trait::async_trait]
impl HttpClient for Agent {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, body.to_vec());
        let answer = self.0.run(request)?;
        let (parts, mut body) = answer.into_parts();
        let bytes = body.with_config().limit(ANSWER_MAX).read_to_vec()?;
        Ok(http::Response::from_parts(parts, Bytes::from(bytes)))
    }
}
