//! The API's views: how jobs, attempts, reports and modules look in JSON.
//!
//! Built from the domain types, which carry no wire format of their own;
//! the field names here are the API's contract (and the OpenAPI document's
//! schemas, whose names they keep). The store encodes the same things its
//! own way, so renaming a field here never needs a data migration.
//! `wasmjob exec` prints a [`ReportView`] too, so a local run and the API
//! show a report the same way.

use crate::clock::Millis;
use crate::job::{
    Attempt, Edge, Job, JobDetail, JobId, JobState, OnFailure, Workflow, WorkflowDetail,
    WorkflowId, WorkflowState,
};
use crate::json::Json;
use crate::limits::Limits;
use crate::policy::JobSpec;
use crate::policy::{Backoff, RetryPolicy};
use crate::queue::Live;
use crate::report::{
    AttemptReport, Failure, FailureKind, Frame, Level, LogRecord, ModuleKind, Progress, Report,
    Status, StdioTail,
};
use crate::schedule::{Cadence, Schedule};
use crate::store::{ModuleRecord, QueueStats};
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType};
use utoipa::{PartialSchema, ToSchema};

/// JSON passed through as it is stored: a job's input or output.
#[derive(Debug)]
pub struct RawJson(pub Json);

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.raw().serialize(serializer)
    }
}

impl PartialSchema for RawJson {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(Some(
                "Any JSON value: the JSON given (an input) or produced (an output); an \
                 output that was not JSON (a command module's plain text) is a string.",
            ))
            .into()
    }
}

impl ToSchema for RawJson {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Json")
    }
}

/// A job's state.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = JobState)]
pub enum StateView {
    /// Waiting for its prerequisites.
    Blocked,
    /// Waiting to be claimed.
    Pending,
    /// Claimed by a worker under a lease.
    Running,
    /// Waiting for a retry's backoff.
    Retrying,
    /// Succeeded. Final.
    Completed,
    /// The dead letter: out of attempts or failed fatally.
    Failed,
    /// Cancelled by a client, or because a prerequisite failed. Final.
    Cancelled,
}

impl From<JobState> for StateView {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Blocked => StateView::Blocked,
            JobState::Pending => StateView::Pending,
            JobState::Running => StateView::Running,
            JobState::Retrying => StateView::Retrying,
            JobState::Completed => StateView::Completed,
            JobState::Failed => StateView::Failed,
            JobState::Cancelled => StateView::Cancelled,
        }
    }
}

/// How the delay before a retry grows.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Backoff)]
pub enum BackoffView {
    /// `base × 2^(n−1)` after the n-th failed attempt.
    Exponential,
    /// `base × n`.
    Linear,
    /// `base` every time.
    Fixed,
    /// No retries: the first failure is final.
    None,
}

impl From<Backoff> for BackoffView {
    fn from(backoff: Backoff) -> Self {
        match backoff {
            Backoff::Exponential => BackoffView::Exponential,
            Backoff::Linear => BackoffView::Linear,
            Backoff::Fixed => BackoffView::Fixed,
            Backoff::None => BackoffView::None,
        }
    }
}

impl From<BackoffView> for Backoff {
    fn from(backoff: BackoffView) -> Self {
        match backoff {
            BackoffView::Exponential => Backoff::Exponential,
            BackoffView::Linear => Backoff::Linear,
            BackoffView::Fixed => Backoff::Fixed,
            BackoffView::None => Backoff::None,
        }
    }
}

/// A job's retry policy.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RetryPolicy)]
pub struct RetryView {
    /// How the delay grows.
    backoff: BackoffView,
    /// The base delay in milliseconds.
    base_ms: u64,
    /// The largest delay in milliseconds.
    max_delay_ms: u64,
    /// Delays spread randomly over `[delay/2, delay]`.
    jitter: bool,
}

impl From<&RetryPolicy> for RetryView {
    fn from(retry: &RetryPolicy) -> Self {
        RetryView {
            backoff: retry.backoff.into(),
            base_ms: retry.base_ms,
            max_delay_ms: retry.max_delay_ms,
            jitter: retry.jitter,
        }
    }
}

/// What one attempt may use.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Limits)]
pub struct LimitsView {
    /// Fuel budget (roughly one unit per wasm instruction).
    fuel: u64,
    /// Maximum linear memory in bytes, summed over all memories.
    memory_bytes: u64,
    /// Wall-clock timeout in milliseconds.
    timeout_ms: u64,
    /// Maximum size of the job's output in bytes.
    output_bytes: u64,
    /// Maximum number of log records kept.
    log_records: u32,
    /// Maximum total bytes of log messages kept.
    log_bytes: u64,
    /// Bytes kept from the end of stdout and of stderr.
    stdio_tail_bytes: u64,
}

impl From<&Limits> for LimitsView {
    fn from(l: &Limits) -> Self {
        LimitsView {
            fuel: l.fuel,
            memory_bytes: l.memory_bytes,
            timeout_ms: l.timeout_ms,
            output_bytes: l.output_bytes,
            log_records: l.log_records,
            log_bytes: l.log_bytes,
            stdio_tail_bytes: l.stdio_tail_bytes,
        }
    }
}

/// A job, as listings show it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobSummary {
    /// Its id.
    #[schema(value_type = i64)]
    id: JobId,
    /// The queue it waits in.
    queue: String,
    /// The module's blake3 hash (hex).
    module: String,
    /// The module's name: the one it was submitted by, or the module's
    /// name at submission; `null` when it has none.
    #[schema(required = true)]
    module_name: Option<String>,
    /// Where it is in its life.
    state: StateView,
    /// 0 (critical) to 10 (low), as submitted.
    priority: u8,
    /// Attempts started so far.
    attempt: u32,
    /// Attempts allowed in all.
    max_attempts: u32,
    /// How to retry.
    retry: RetryView,
    /// Limits for the next (or current) attempt.
    limits: LimitsView,
    /// Not run before this time.
    #[schema(value_type = i64)]
    run_at: Millis,
    /// When it was submitted.
    #[schema(value_type = i64)]
    created_at: Millis,
    /// When its latest attempt started running (for a job running on this
    /// host, its current attempt; otherwise the latest finished one).
    #[schema(value_type = Option<i64>, required = true)]
    started_at: Option<Millis>,
    /// When it reached a final state.
    #[schema(value_type = Option<i64>, required = true)]
    finished_at: Option<Millis>,
    /// The last failure message.
    #[schema(required = true)]
    last_error: Option<String>,
    /// Its unique key, if it has one.
    #[schema(required = true)]
    unique_key: Option<String>,
    /// The workflow it belongs to, if any.
    #[schema(value_type = Option<i64>, required = true)]
    workflow: Option<WorkflowId>,
    /// Its name in that workflow.
    #[schema(required = true)]
    node: Option<String>,
    /// The job whose attempt submitted it, if one did.
    #[schema(value_type = Option<i64>, required = true)]
    parent: Option<JobId>,
    /// The cron schedule that created it, if one did.
    #[schema(required = true)]
    schedule: Option<String>,
    /// The grants of its module it runs with; `null`: all of them.
    #[schema(required = true)]
    grants: Option<Vec<String>>,
    /// The W3C trace context its attempts' spans descend from: the
    /// submitting request's `traceparent` (or, with span export on, the
    /// host's submission span), or its parent job's attempt. Absent when
    /// none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        nullable = false,
        pattern = "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )]
    traceparent: Option<String>,
}

impl JobSummary {
    /// The view of `job`, with `running_since` (when this host runs it)
    /// as its start.
    pub fn new(job: Job, running_since: Option<Millis>) -> JobSummary {
        JobSummary {
            id: job.id,
            queue: job.queue,
            module: job.module.hash,
            module_name: job.module.name,
            state: job.state.into(),
            priority: job.priority,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            retry: (&job.retry).into(),
            limits: (&job.limits).into(),
            run_at: job.run_at,
            created_at: job.created_at,
            started_at: running_since.or(job.started_at),
            finished_at: job.finished_at,
            last_error: job.last_error,
            unique_key: job.unique_key,
            workflow: job.workflow,
            node: job.node,
            parent: job.parent,
            schedule: job.schedule,
            grants: job.grants,
            traceparent: job.trace.map(|trace| trace.to_string()),
        }
    }
}

impl From<Job> for JobSummary {
    fn from(job: Job) -> Self {
        JobSummary::new(job, None)
    }
}

/// A job with what is stored about it, as the API shows it: the job's
/// fields, then its input, output, live progress and attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    job: JobSummary,
    /// The input: the JSON submitted.
    input: RawJson,
    /// The output, once completed: the JSON the job returned (a command
    /// module's plain-text output is a string).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    output: Option<RawJson>,
    /// The latest progress, while it runs on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    progress: Option<ProgressView>,
    /// Its prerequisites.
    depends_on: Vec<DependencyView>,
    /// Every finished attempt's report, oldest first.
    attempts: Vec<AttemptView>,
}

impl JobView {
    /// The view of a stored job and what this host knows live about it.
    pub fn new(detail: JobDetail, live: Live) -> JobView {
        JobView {
            job: JobSummary::new(detail.job, live.running_since),
            input: RawJson(detail.input),
            output: detail.output.map(RawJson),
            progress: live.progress.as_ref().map(ProgressView::from),
            depends_on: detail.depends_on.iter().map(DependencyView::from).collect(),
            attempts: detail.attempts.into_iter().map(AttemptView::from).collect(),
        }
    }
}

/// What a dependent does when a prerequisite fails or is cancelled.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OnFailure)]
pub enum OnFailureView {
    /// It is cancelled, and the jobs waiting for it after it.
    Cancel,
    /// It runs anyway once its other prerequisites are resolved (and sees
    /// how this one ended).
    Continue,
}

impl From<OnFailure> for OnFailureView {
    fn from(on_failure: OnFailure) -> Self {
        match on_failure {
            OnFailure::Cancel => OnFailureView::Cancel,
            OnFailure::Continue => OnFailureView::Continue,
        }
    }
}

impl From<OnFailureView> for OnFailure {
    fn from(on_failure: OnFailureView) -> Self {
        match on_failure {
            OnFailureView::Cancel => OnFailure::Cancel,
            OnFailureView::Continue => OnFailure::Continue,
        }
    }
}

/// A prerequisite of a job.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Dependency)]
pub struct DependencyView {
    /// The job waited for.
    #[schema(value_type = i64)]
    job: JobId,
    /// The name the dependent knows its output by.
    name: String,
    /// What happens if it fails or is cancelled.
    on_failure: OnFailureView,
}

impl From<&Edge> for DependencyView {
    fn from(edge: &Edge) -> Self {
        DependencyView {
            job: edge.prereq,
            name: edge.name.clone(),
            on_failure: edge.on_failure.into(),
        }
    }
}

/// Where a workflow is.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = WorkflowState)]
pub enum WorkflowStateView {
    /// A job is not final yet.
    Running,
    /// Every job completed.
    Completed,
    /// Every job is final and one failed.
    Failed,
    /// Every job is final, one was cancelled and none failed.
    Cancelled,
}

impl From<WorkflowState> for WorkflowStateView {
    fn from(state: WorkflowState) -> Self {
        match state {
            WorkflowState::Running => WorkflowStateView::Running,
            WorkflowState::Completed => WorkflowStateView::Completed,
            WorkflowState::Failed => WorkflowStateView::Failed,
            WorkflowState::Cancelled => WorkflowStateView::Cancelled,
        }
    }
}

/// A workflow, as listings show it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Workflow)]
pub struct WorkflowSummary {
    /// Its id.
    #[schema(value_type = i64)]
    id: WorkflowId,
    /// Its name, if it was given one.
    #[schema(required = true)]
    name: Option<String>,
    /// Where it is, from its jobs' states.
    state: WorkflowStateView,
    /// When it was submitted.
    #[schema(value_type = i64)]
    created_at: Millis,
    /// Its jobs in each state.
    jobs: super::host_info::JobCounts,
}

impl From<Workflow> for WorkflowSummary {
    fn from(workflow: Workflow) -> Self {
        WorkflowSummary {
            id: workflow.id,
            state: workflow.state().into(),
            jobs: super::host_info::JobCounts::from_counts(&workflow.counts),
            name: workflow.name,
            created_at: workflow.created_at,
        }
    }
}

/// A workflow with every job and edge.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowView {
    #[serde(flatten)]
    workflow: WorkflowSummary,
    /// Its jobs, by id (prerequisites before the jobs that wait for them),
    /// each with its prerequisites.
    nodes: Vec<WorkflowNode>,
}

/// A job of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowNode {
    #[serde(flatten)]
    job: JobSummary,
    /// Its prerequisites.
    depends_on: Vec<DependencyView>,
}

impl From<WorkflowDetail> for WorkflowView {
    fn from(detail: WorkflowDetail) -> Self {
        let mut edges: std::collections::HashMap<JobId, Vec<DependencyView>> =
            std::collections::HashMap::new();
        for edge in &detail.edges {
            edges.entry(edge.job).or_default().push(edge.into());
        }
        let nodes = detail
            .jobs
            .into_iter()
            .map(|job| WorkflowNode {
                depends_on: edges.remove(&job.id).unwrap_or_default(),
                job: job.into(),
            })
            .collect();
        WorkflowView {
            workflow: detail.workflow.into(),
            nodes,
        }
    }
}

/// One finished attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    /// Its number, from 1 (never reused, even after a requeue).
    attempt: u32,
    /// When it started running.
    #[schema(value_type = i64)]
    started_at: Millis,
    /// When its result was recorded.
    #[schema(value_type = i64)]
    finished_at: Millis,
    /// The engine's report, or the host's when the engine never reported.
    report: AttemptReportView,
}

impl From<Attempt> for AttemptView {
    fn from(attempt: Attempt) -> Self {
        AttemptView {
            attempt: attempt.number,
            started_at: attempt.started_at,
            finished_at: attempt.finished_at,
            report: attempt.report.into(),
        }
    }
}

/// An attempt's report: the engine's; or the host's when it could not run
/// the attempt (`host_failed`) or the attempt's host went away (`lost`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = AttemptReport)]
pub enum AttemptReportView {
    /// The engine ran it to an outcome.
    Ran(Box<ReportView>),
    /// The host could not run it, e.g. its module failed to load.
    HostFailed {
        /// Always `"host_failed"`.
        #[schema(pattern = "^host_failed$", example = "host_failed")]
        status: &'static str,
        /// What failed and why.
        message: String,
        /// Whether another attempt could succeed.
        retryable: bool,
    },
    /// Its host went away without a result (the lease expired, or the host
    /// restarted).
    Lost {
        /// Always `"lost"`.
        #[schema(pattern = "^lost$", example = "lost")]
        status: &'static str,
        /// Who held the lease.
        #[schema(required = true)]
        owner: Option<String>,
        /// One line.
        message: String,
    },
}

impl From<AttemptReport> for AttemptReportView {
    fn from(report: AttemptReport) -> Self {
        match report {
            AttemptReport::Ran(report) => AttemptReportView::Ran(Box::new((*report).into())),
            AttemptReport::HostFailed { message, retryable } => AttemptReportView::HostFailed {
                status: "host_failed",
                message,
                retryable,
            },
            AttemptReport::Lost { owner, message } => AttemptReportView::Lost {
                status: "lost",
                owner,
                message,
            },
        }
    }
}

/// Whether the invocation succeeded.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Status)]
pub enum StatusView {
    /// The job returned output.
    Success,
    /// The job failed; `failure` says how.
    Failure,
}

/// Why an invocation failed. The names are part of the API.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = FailureKind)]
pub enum FailureKindView {
    /// The fuel budget ran out.
    OutOfFuel,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The wall-clock timeout passed.
    Timeout,
    /// The wasm call stack overflowed.
    StackOverflow,
    /// Any other trap: a panic, an out-of-bounds access, a division by zero.
    Trap,
    /// The guest returned a retryable error.
    GuestError,
    /// The guest returned a fatal error: retrying cannot help.
    FatalError,
    /// The invocation was cancelled from outside.
    Cancelled,
    /// The output was larger than the limit.
    OutputLimit,
    /// A command module exited with a non-zero exit code.
    ExitCode,
}

impl From<FailureKind> for FailureKindView {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::OutOfFuel => FailureKindView::OutOfFuel,
            FailureKind::MemoryLimit => FailureKindView::MemoryLimit,
            FailureKind::Timeout => FailureKindView::Timeout,
            FailureKind::StackOverflow => FailureKindView::StackOverflow,
            FailureKind::Trap => FailureKindView::Trap,
            FailureKind::GuestError => FailureKindView::GuestError,
            FailureKind::FatalError => FailureKindView::FatalError,
            FailureKind::Cancelled => FailureKindView::Cancelled,
            FailureKind::OutputLimit => FailureKindView::OutputLimit,
            FailureKind::ExitCode => FailureKindView::ExitCode,
        }
    }
}

/// How a module is run.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ModuleKind)]
pub enum KindView {
    /// A component implementing the `wasmjob:job` world.
    Component,
    /// A WASI preview 1 command module: input on stdin, output on stdout.
    Command,
}

impl From<ModuleKind> for KindView {
    fn from(kind: ModuleKind) -> Self {
        match kind {
            ModuleKind::Component => KindView::Component,
            ModuleKind::Command => KindView::Command,
        }
    }
}

/// Severity of a guest log record.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Level)]
pub enum LevelView {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal information.
    Info,
    /// Something unexpected that the job handled.
    Warn,
    /// An error the job reports.
    Error,
}

impl From<Level> for LevelView {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => LevelView::Trace,
            Level::Debug => LevelView::Debug,
            Level::Info => LevelView::Info,
            Level::Warn => LevelView::Warn,
            Level::Error => LevelView::Error,
        }
    }
}

/// Everything known about one invocation.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Report)]
pub struct ReportView {
    /// Success or failure.
    status: StatusView,
    /// The output, on success, in `wasmjob exec`'s report only: a job's
    /// output is the job's `output`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    output: Option<RawJson>,
    /// How the invocation failed, present on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    failure: Option<FailureView>,
    /// The module that ran (blake3 hash, hex).
    module: String,
    /// How the module ran.
    kind: KindView,
    /// The limits this invocation ran with.
    limits: LimitsView,
    /// Fuel consumed and budget.
    fuel: FuelView,
    /// Peak memory and limit.
    memory: MemoryView,
    /// Wall-clock time from instantiation to the end, in microseconds.
    duration_us: u64,
    /// Log records kept, oldest first.
    logs: Vec<LogRecordView>,
    /// Log records dropped because a bound was reached.
    logs_dropped: u64,
    /// The last progress the guest reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    progress: Option<ProgressView>,
    /// What the guest wrote to stdout (for a command module, the output).
    stdout: StdioTailView,
    /// What the guest wrote to stderr (a Rust panic message lands here).
    stderr: StdioTailView,
    /// Its outbound HTTP requests, in order (at most 100 listed).
    requests: Vec<HttpRequestView>,
    /// Requests made past the listed ones.
    requests_dropped: u64,
}

/// One outbound HTTP request of an attempt.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HttpRequest)]
pub struct HttpRequestView {
    /// The method.
    method: String,
    /// `scheme://host[:port]/path`, without the query string.
    url: String,
    /// The response's status, when one came.
    #[schema(required = true)]
    status: Option<u16>,
    /// Why there was no response (denied, timeout, ...), or why its body
    /// was cut.
    #[schema(required = true)]
    error: Option<String>,
    /// From the request to its end, in microseconds.
    duration_us: u64,
    /// Request body bytes sent.
    bytes_up: u64,
    /// Response body bytes received.
    bytes_down: u64,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        ReportView {
            status: match r.status {
                Status::Success => StatusView::Success,
                Status::Failure => StatusView::Failure,
            },
            output: r.output.map(RawJson),
            failure: r.failure.map(FailureView::from),
            module: r.module,
            kind: r.kind.into(),
            limits: (&r.limits).into(),
            fuel: FuelView {
                consumed: r.fuel.consumed,
                limit: r.fuel.limit,
            },
            memory: MemoryView {
                peak_bytes: r.memory.peak_bytes,
                limit_bytes: r.memory.limit_bytes,
            },
            duration_us: r.duration_us,
            logs: r.logs.into_iter().map(LogRecordView::from).collect(),
            logs_dropped: r.logs_dropped,
            progress: r.progress.as_ref().map(ProgressView::from),
            stdout: r.stdout.into(),
            stderr: r.stderr.into(),
            requests: r
                .requests
                .into_iter()
                .map(|q| HttpRequestView {
                    method: q.method,
                    url: q.url,
                    status: q.status,
                    error: q.error,
                    duration_us: q.duration_us,
                    bytes_up: q.bytes_up,
                    bytes_down: q.bytes_down,
                })
                .collect(),
            requests_dropped: r.requests_dropped,
        }
    }
}

/// How an invocation failed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Failure)]
pub struct FailureView {
    /// The failure's classification.
    kind: FailureKindView,
    /// One human-readable line.
    message: String,
    /// Whether another attempt could succeed.
    retryable: bool,
    /// The wasm trap code (e.g. `unreachable`), when the guest trapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    trap_code: Option<String>,
    /// The exit code of a command module.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    exit_code: Option<i32>,
    /// The wasm backtrace at the trap, innermost frame first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    backtrace: Vec<FrameView>,
    /// The length in bytes of the guest's own error message, when
    /// `message` is only its first 4 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    message_bytes: Option<u64>,
}

impl From<Failure> for FailureView {
    fn from(f: Failure) -> Self {
        FailureView {
            kind: f.kind.into(),
            message: f.message,
            retryable: f.retryable,
            trap_code: f.trap_code,
            exit_code: f.exit_code,
            backtrace: f.backtrace.into_iter().map(FrameView::from).collect(),
            message_bytes: f.message_bytes,
        }
    }
}

/// One frame of a wasm backtrace, innermost first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Frame)]
pub struct FrameView {
    /// The function's name from the module's name section, demangled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    function: Option<String>,
    /// The function's index in its core module.
    function_index: u32,
    /// The core module's name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    module: Option<String>,
    /// Byte offset of the instruction in the module, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    offset: Option<usize>,
}

impl From<Frame> for FrameView {
    fn from(f: Frame) -> Self {
        FrameView {
            function: f.function,
            function_index: f.function_index,
            module: f.module,
            offset: f.offset,
        }
    }
}

/// A log record written by the guest.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = LogRecord)]
pub struct LogRecordView {
    /// Microseconds since the invocation started.
    at_us: u64,
    /// Severity.
    level: LevelView,
    /// The message, truncated to the per-record bound.
    message: String,
}

impl From<LogRecord> for LogRecordView {
    fn from(log: LogRecord) -> Self {
        LogRecordView {
            at_us: log.at_us,
            level: log.level.into(),
            message: log.message,
        }
    }
}

/// The latest progress the guest reported.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Progress)]
pub struct ProgressView {
    /// 0 to 100.
    percent: u8,
    /// The guest's note, truncated to the per-record bound.
    note: String,
}

impl From<&Progress> for ProgressView {
    fn from(p: &Progress) -> Self {
        ProgressView {
            percent: p.percent,
            note: p.note.clone(),
        }
    }
}

/// Fuel figures.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FuelUsage)]
pub struct FuelView {
    /// Fuel consumed by the invocation; `null` when fuel metering is off.
    #[schema(required = true)]
    consumed: Option<u64>,
    /// The fuel budget it ran with.
    limit: u64,
}

/// Memory figures, summed over all linear memories.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MemoryUsage)]
pub struct MemoryView {
    /// The largest total size the memories reached, in bytes.
    peak_bytes: u64,
    /// The memory limit it ran with, in bytes.
    limit_bytes: u64,
}

/// What was captured of stdout or stderr.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StdioTail)]
pub struct StdioTailView {
    /// Total bytes the guest wrote.
    total_bytes: u64,
    /// The last bytes written (lossy UTF-8), at most the configured tail.
    tail: String,
}

impl From<StdioTail> for StdioTailView {
    fn from(t: StdioTail) -> Self {
        StdioTailView {
            total_bytes: t.total_bytes,
            tail: t.tail,
        }
    }
}

/// A module's metadata.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ModuleRecord)]
pub struct ModuleView {
    /// blake3 hash of the bytes, hex.
    hash: String,
    /// Component or command module.
    kind: KindView,
    /// Size in bytes.
    size: u64,
    /// The name given to it last; submitting by name picks the newest
    /// module with that name.
    #[schema(required = true)]
    name: Option<String>,
    /// When it was first uploaded.
    #[schema(value_type = i64)]
    created_at: Millis,
    /// The grants of the host's config it has: what its jobs may reach
    /// beyond the sandbox (HTTP origins, secrets, configuration).
    grants: Vec<String>,
}

impl From<ModuleRecord> for ModuleView {
    fn from(m: ModuleRecord) -> Self {
        ModuleView {
            hash: m.hash,
            kind: m.kind.into(),
            size: m.size,
            name: m.name,
            created_at: m.created_at,
            grants: m.grants,
        }
    }
}

/// A queue, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Queue)]
pub struct QueueView {
    /// Its name.
    name: String,
    /// Paused: it accepts jobs and starts none.
    paused: bool,
    /// At most this many of its jobs run at once; `null`: no cap of its own.
    #[schema(required = true)]
    concurrency: Option<usize>,
    /// Jobs waiting for their prerequisites.
    blocked: u64,
    /// Jobs waiting to run for the first time (due or not).
    pending: u64,
    /// Jobs waiting for a retry's backoff.
    retrying: u64,
    /// Jobs claimed and running.
    running: u64,
    /// How long its oldest due waiting job has waited, in milliseconds;
    /// `null` when none is due.
    #[schema(required = true)]
    oldest_wait_ms: Option<Millis>,
}

impl QueueView {
    /// The view of `stats` at `now`, with the queue's cap.
    pub fn new(stats: QueueStats, concurrency: Option<usize>, now: Millis) -> QueueView {
        QueueView {
            name: stats.name,
            paused: stats.paused,
            concurrency,
            blocked: stats.blocked,
            pending: stats.pending,
            retrying: stats.retrying,
            running: stats.running,
            oldest_wait_ms: stats.oldest_due.map(|due| (now - due).max(0)),
        }
    }
}

/// The job a schedule creates: the fields it sets (`null`: the operator's
/// default when it fires).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleJobView {
    /// The queue; `null`: `default`.
    #[schema(required = true)]
    queue: Option<String>,
    /// Module hash or name, resolved each time it fires.
    module: String,
    /// The input.
    input: RawJson,
    /// The priority.
    #[schema(required = true)]
    priority: Option<u8>,
    /// Attempts allowed.
    #[schema(required = true)]
    max_attempts: Option<u32>,
    /// Retry fields it sets.
    retry: serde_json::Map<String, serde_json::Value>,
    /// Limits it sets.
    limits: serde_json::Map<String, serde_json::Value>,
    /// Its unique key, keeping runs from overlapping.
    #[schema(value_type = Option<Object>, required = true)]
    unique: Option<serde_json::Value>,
}

impl From<&JobSpec> for ScheduleJobView {
    fn from(spec: &JobSpec) -> Self {
        let mut retry = serde_json::Map::new();
        let put = |map: &mut serde_json::Map<_, _>, key: &str, value: Option<serde_json::Value>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        };
        put(
            &mut retry,
            "backoff",
            spec.retry.backoff.map(|b| b.as_str().into()),
        );
        put(&mut retry, "base_ms", spec.retry.base_ms.map(Into::into));
        put(
            &mut retry,
            "max_delay_ms",
            spec.retry.max_delay_ms.map(Into::into),
        );
        put(&mut retry, "jitter", spec.retry.jitter.map(Into::into));
        let mut limits = serde_json::Map::new();
        let l = &spec.limits;
        put(&mut limits, "fuel", l.fuel.map(Into::into));
        put(&mut limits, "memory_bytes", l.memory_bytes.map(Into::into));
        put(&mut limits, "timeout_ms", l.timeout_ms.map(Into::into));
        put(&mut limits, "output_bytes", l.output_bytes.map(Into::into));
        put(&mut limits, "log_records", l.log_records.map(Into::into));
        put(&mut limits, "log_bytes", l.log_bytes.map(Into::into));
        put(
            &mut limits,
            "stdio_tail_bytes",
            l.stdio_tail_bytes.map(Into::into),
        );
        ScheduleJobView {
            queue: spec.queue.clone(),
            module: spec.module.clone(),
            input: RawJson(spec.input.clone()),
            priority: spec.priority,
            max_attempts: spec.max_attempts,
            retry,
            limits,
            unique: spec
                .unique
                .as_ref()
                .map(|u| serde_json::json!({"key": u.key, "window_ms": u.window_ms.unwrap_or(0)})),
        }
    }
}

/// A fire time: when, and the same in the schedule's time zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireTime {
    /// Milliseconds since the epoch.
    #[schema(value_type = i64)]
    at: Millis,
    /// RFC 3339 in the schedule's time zone (`2026-03-08T03:00:00-04:00`).
    local: String,
}

/// A cron schedule.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Schedule)]
pub struct ScheduleView {
    /// Its name.
    name: String,
    /// The cron expression.
    cron: String,
    /// The IANA time zone it is read in.
    timezone: String,
    /// The job each fire time creates.
    job: ScheduleJobView,
    /// Fire times reached late: `skip` or `run_once`.
    missed: crate::api::schedules::MissedView,
    /// Paused: it fires nothing until resumed.
    paused: bool,
    /// Its next five fire times; none while paused.
    upcoming: Vec<FireTime>,
    /// When it last created a job.
    #[schema(value_type = Option<i64>, required = true)]
    last_fired_at: Option<Millis>,
    /// The job it created last.
    #[schema(value_type = Option<i64>, required = true)]
    last_job: Option<JobId>,
    /// Why its last fire time created no job, or made up for missed ones.
    #[schema(required = true)]
    last_error: Option<String>,
    /// When it was created.
    #[schema(value_type = i64)]
    created_at: Millis,
    /// When it was last changed.
    #[schema(value_type = i64)]
    updated_at: Millis,
}

impl ScheduleView {
    /// The view of `schedule`, its upcoming fire times counted from `now`.
    pub fn new(schedule: Schedule, now: Millis) -> ScheduleView {
        let upcoming = match (
            schedule.paused,
            Cadence::parse(&schedule.cron, &schedule.timezone),
        ) {
            (false, Ok(cadence)) => {
                // The stored next fire time first (it may be due already).
                let first = schedule
                    .next_at
                    .min(cadence.next_after(now).unwrap_or(Millis::MAX));
                let mut times = vec![first];
                times.extend(cadence.upcoming(first, 4));
                times
                    .into_iter()
                    .filter(|at| *at != Millis::MAX)
                    .map(|at| FireTime {
                        at,
                        local: cadence.local(at),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        ScheduleView {
            job: (&schedule.job).into(),
            name: schedule.name,
            cron: schedule.cron,
            timezone: schedule.timezone,
            missed: schedule.missed.into(),
            paused: schedule.paused,
            upcoming,
            last_fired_at: schedule.last_fired_at,
            last_job: schedule.last_job,
            last_error: schedule.last_error,
            created_at: schedule.created_at,
            updated_at: schedule.updated_at,
        }
    }
}

/// `Box<RawValue>` fields of requests are validated JSON.
pub(super) fn input(raw: Option<Box<RawValue>>) -> Json {
    raw.map_or_else(Json::null, Json::from_raw)
}
