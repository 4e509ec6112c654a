//! This process's logs and traces: the `tracing` subscriber (human or JSON
//! lines on stderr, filtered by `RUST_LOG`), the spans of a job's life and
//! the trace context they carry, and, with the `otel` cargo feature, the
//! export of those spans over OTLP/HTTP.
//!
//! A submission's W3C `traceparent` is stored with its jobs
//! ([`crate::job::TraceParent`]); each attempt's `job` span descends from
//! it, so a job's attempts appear in the trace of the request that
//! submitted it, however much later and on whichever host they run. Jobs
//! that a job submits carry its span on. Without the feature the context
//! is still kept and each span logs its `trace_id`, so logs can be joined
//! to a trace.

#[cfg(feature = "otel")]
mod otlp;

use crate::job::{Job, TraceParent};
use tracing::Span;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for a person.
    Human,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Where spans go besides the log.
#[derive(Clone, Debug, Default)]
pub struct Export {
    /// The OTLP/HTTP collector's base URL (`/v1/traces` is appended), as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub otlp_endpoint: Option<String>,
    /// Export even without `otlp_endpoint`: the exporter's own
    /// `OTEL_EXPORTER_OTLP_*` environment variables say where.
    pub otlp_from_environment: bool,
}

impl Export {
    /// The export the environment asks for: an OTLP endpoint in the
    /// standard variables turns it on.
    pub fn from_environment(otlp_endpoint: Option<String>) -> Export {
        let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        Export {
            otlp_endpoint,
            otlp_from_environment: set("OTEL_EXPORTER_OTLP_ENDPOINT")
                || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        }
    }

    #[cfg(feature = "otel")]
    fn wanted(&self) -> bool {
        self.otlp_endpoint.is_some() || self.otlp_from_environment
    }
}

/// Keeps the exporter running; dropping it sends the spans still
/// buffered (at most the exporter's timeout).
#[must_use = "dropping the guard stops the export"]
pub struct Guard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("wasmjob: sending the last spans failed: {error}");
        }
    }
}

/// Installs the process's subscriber: `tracing` events to stderr in
/// `format`, filtered by `RUST_LOG` (default `warn`), and spans to an
/// OTLP collector when `export` asks for one. The export sees the host's
/// info-level spans whatever `RUST_LOG` says. Fails (with a message for
/// the operator) when export is asked of a build without the `otel`
/// feature, or the exporter cannot be built.
pub fn init(format: LogFormat, export: &Export) -> Result<Guard, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let log = match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(log.with_filter(filter));
    #[cfg(feature = "otel")]
    {
        let (layer, provider) = if export.wanted() {
            let provider = otlp::provider(export.otlp_endpoint.as_deref())?;
            (Some(otlp::layer(&provider)), Some(provider))
        } else {
            (None, None)
        };
        registry.with(layer).init();
        Ok(Guard { provider })
    }
    #[cfg(not(feature = "otel"))]
    {
        if export.otlp_endpoint.is_some() {
            return Err(
                "--otlp-endpoint: this wasmjob was built without the `otel` feature \
                 (build it with `cargo build --release -p wasmjob --features otel`)"
                    .to_owned(),
            );
        }
        registry.init();
        Ok(Guard {})
    }
}

/// The span of a submission: its jobs' attempts descend from it (or, when
/// spans are not exported, from `incoming` directly).
pub fn submit_span(incoming: Option<TraceParent>) -> Span {
    let span = tracing::info_span!("submit", trace_id = tracing::field::Empty);
    if let Some(parent) = incoming {
        descend(&span, parent);
    }
    span
}

/// The span of one attempt of `job` in worker slot `slot`, from its start
/// until its outcome is recorded.
pub fn job_span(job: &Job, slot: u64) -> Span {
    let span = tracing::info_span!(
        "job",
        job_id = job.id,
        queue = %job.queue,
        module = %job.module,
        // Signed: OpenTelemetry's integers are i64 (a u64 field becomes a
        // string there).
        attempt = i64::from(job.attempt),
        slot = i64::try_from(slot).unwrap_or(i64::MAX),
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = job.trace {
        descend(&span, parent);
    }
    span
}

/// The trace context to store with jobs created within `span`: the
/// exported span itself when there is one, so the jobs descend from it;
/// otherwise what `span` descends from, `inherited`.
pub fn carried(span: &Span, inherited: Option<TraceParent>) -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    if let Some(exported) = otlp::context_of(span) {
        return Some(exported);
    }
    let _ = span;
    inherited
}

/// Makes `span` a child of `parent` and records the trace id in its
/// fields.
fn descend(span: &Span, parent: TraceParent) {
    if span.is_disabled() {
        return;
    }
    span.record("trace_id", parent.trace_id_hex());
    #[cfg(feature = "otel")]
    otlp::set_parent(span, parent);
}
