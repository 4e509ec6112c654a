//! The dashboard's pages and actions: each handler reads the queue, builds
//! a view (plain strings and numbers, already formatted) and renders its
//! template. A page with live parts renders only them for
//! `?fragment=live`, which htmx asks for on every `change` event.

use super::auth::Session;
use super::charts::{self, Activity, Bucket};
use super::format;
use crate::api::{ApiError, AppState};
use crate::clock::Millis;
use crate::job::{Job, JobDetail, JobId, JobState};
use crate::json::Json;
use crate::queue::{self, Live};
use crate::report::{AttemptReport, Status};
use crate::schedule::Cadence;
use crate::store::JobFilter;
use crate::worker::Phase;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::{BTreeMap, HashMap};

/// What every full page shows around its content: the navigation and the
/// session's CSRF token for the logout form.
pub struct Chrome {
    /// The page, to mark it in the navigation.
    pub page: &'static str,
    /// The session's CSRF token; empty without a session.
    pub csrf: String,
    /// Whether to offer a logout.
    pub login: bool,
    /// The change count the page was rendered at (see [`Session::version`]).
    pub version: u64,
}

impl Chrome {
    fn of(page: &'static str, session: &Session) -> Chrome {
        Chrome {
            page,
            csrf: session.csrf.clone(),
            login: session.login,
            version: session.version,
        }
    }

    /// Chrome for a page seen without a session (the login, an error).
    pub fn anonymous(page: &'static str) -> Chrome {
        Chrome {
            page,
            csrf: String::new(),
            login: false,
            version: 0,
        }
    }
}

/// Renders a template as an HTML response with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a dashboard page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
        }
    }
}

/// An error as a page: a 4xx names the problem, a 5xx is generic.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    chrome: Chrome,
    status: u16,
    title: String,
    message: String,
}

impl ErrorPage {
    /// A page for `status` with a title and a message.
    pub fn new(status: StatusCode, title: &str, message: &str) -> ErrorPage {
        ErrorPage {
            chrome: Chrome::anonymous("error"),
            status: status.as_u16(),
            title: title.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        render(status, &self)
    }
}

impl From<queue::Error> for ErrorPage {
    fn from(error: queue::Error) -> ErrorPage {
        // The API's mapping decides the status and hides server errors.
        let (status, _, message) = ApiError::from(error).parts();
        let title = status.canonical_reason().unwrap_or("Error");
        ErrorPage::new(status, title, &message)
    }
}

type PageResult = Result<Response, ErrorPage>;

fn is_live(query: &Option<String>) -> bool {
    query.as_deref() == Some("fragment=live")
}

fn module_label(job: &Job) -> String {
    job.module
        .name
        .clone()
        .unwrap_or_else(|| job.module.short_hash().to_owned())
}

fn pretty(json: &Json) -> String {
    serde_json::to_string_pretty(&json.value()).unwrap_or_else(|_| json.as_str().to_owned())
}

// ---- overview ----

/// How many finished jobs of each kind the charts read when built from
/// the job list.
const CHART_JOBS: usize = 1_000;

/// One state and how many jobs are in it.
pub struct StateCount {
    state: &'static str,
    count: String,
}

/// A queue's depth.
pub struct QueueRow {
    name: String,
    paused: bool,
    blocked: u64,
    pending: u64,
    retrying: u64,
    running: u64,
    waited: String,
}

/// A job running on this host.
pub struct RunningRow {
    id: JobId,
    module: String,
    queue: String,
    since: String,
    progress: Option<(u8, String)>,
}

/// A job that failed lately.
pub struct FailureRow {
    id: JobId,
    module: String,
    queue: String,
    state: &'static str,
    error: String,
    attempts: String,
}

/// The three charts of one time span.
pub struct ChartSet {
    span: &'static str,
    throughput: String,
    failure_rate: String,
    latency: String,
    completed: String,
    failed: String,
    rate: String,
}

/// Everything the overview shows.
pub struct OverviewView {
    counts: Vec<StateCount>,
    total: String,
    queues: Vec<QueueRow>,
    priorities: Vec<(u8, u64)>,
    priorities_partial: bool,
    concurrency: usize,
    busy: usize,
    buffered: usize,
    running: Vec<RunningRow>,
    failures: Vec<FailureRow>,
    charts: Vec<ChartSet>,
    chart_source: String,
}

/// The overview page.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    v: OverviewView,
}

/// The overview's live part.
#[derive(Template)]
#[template(path = "overview_live.html")]
pub struct OverviewLive {
    v: OverviewView,
}

/// `GET /`.
pub async fn overview(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let v = overview_view(&state).await?;
    if is_live(&query) {
        return Ok(render(StatusCode::OK, &OverviewLive { v }));
    }
    Ok(render(
        StatusCode::OK,
        &OverviewPage {
            chrome: Chrome::of("overview", &session),
            v,
        },
    ))
}

async fn overview_view(state: &AppState) -> Result<OverviewView, queue::Error> {
    let queue = &state.queue;
    let now = queue.now();
    let counts = queue.counts().await?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let queues = queue
        .queues()
        .await?
        .into_iter()
        .map(|q| QueueRow {
            waited: q
                .oldest_due
                .map_or_else(String::new, |at| format::millis(now - at)),
            name: q.name,
            paused: q.paused,
            blocked: q.blocked,
            pending: q.pending,
            retrying: q.retrying,
            running: q.running,
        })
        .collect();
    let (priorities, priorities_partial) = waiting_by_priority(state).await?;
    let held = queue.registry().snapshot();
    let running_jobs: HashMap<JobId, Job> = list(state, Some(JobState::Running), 1_000)
        .await?
        .into_iter()
        .map(|job| (job.id, job))
        .collect();
    let mut running = Vec::new();
    let mut buffered = 0;
    for held in held {
        match held.phase {
            Phase::Running { since } => {
                let job = running_jobs.get(&held.id);
                running.push(RunningRow {
                    id: held.id,
                    module: job.map(module_label).unwrap_or_default(),
                    queue: job.map(|j| j.queue.clone()).unwrap_or_default(),
                    since: format::millis(now - since),
                    progress: held.progress.map(|p| (p.percent, p.note)),
                });
            }
            Phase::Buffered => buffered += 1,
            Phase::Recording => {}
        }
    }
    running.sort_by_key(|r| r.id);
    let mut failed = list(state, Some(JobState::Failed), 10).await?;
    failed.extend(list(state, Some(JobState::Retrying), 10).await?);
    failed.sort_by_key(|job| std::cmp::Reverse(job.id));
    failed.truncate(10);
    let failures = failed
        .iter()
        .map(|job| FailureRow {
            id: job.id,
            module: module_label(job),
            queue: job.queue.clone(),
            state: job.state.as_str(),
            error: job.last_error.clone().unwrap_or_default(),
            attempts: format!("{}/{}", job.attempt, job.max_attempts),
        })
        .collect();
    let (charts, chart_source) = chart_sets(state, now).await?;
    Ok(OverviewView {
        counts: counts
            .iter()
            .map(|&(state, n)| StateCount {
                state: state.as_str(),
                count: format::count(n),
            })
            .collect(),
        total: format::count(total),
        queues,
        priorities,
        priorities_partial,
        concurrency: queue.config().concurrency,
        busy: running.len(),
        buffered,
        running,
        failures,
        charts,
        chart_source,
    })
}

async fn list(
    state: &AppState,
    job_state: Option<JobState>,
    limit: usize,
) -> Result<Vec<Job>, queue::Error> {
    state
        .queue
        .list(JobFilter {
            state: job_state,
            limit,
            ..JobFilter::default()
        })
        .await
}

/// Waiting jobs (pending and retrying) by priority, from up to 1000 of
/// each; `true` when there were more (the figures are then a sample).
async fn waiting_by_priority(state: &AppState) -> Result<(Vec<(u8, u64)>, bool), queue::Error> {
    const SAMPLE: usize = 1_000;
    let mut by_priority: BTreeMap<u8, u64> = BTreeMap::new();
    let mut partial = false;
    for job_state in [JobState::Pending, JobState::Retrying] {
        let jobs = list(state, Some(job_state), SAMPLE).await?;
        partial |= jobs.len() == SAMPLE;
        for job in jobs {
            *by_priority.entry(job.priority).or_default() += 1;
        }
    }
    Ok((by_priority.into_iter().collect(), partial))
}

/// The last hour per minute and the last day per 15 minutes.
async fn chart_sets(
    state: &AppState,
    now: Millis,
) -> Result<(Vec<ChartSet>, String), queue::Error> {
    const MINUTE: Millis = 60_000;
    let mut finished = list(state, Some(JobState::Completed), CHART_JOBS).await?;
    let failed = list(state, Some(JobState::Failed), CHART_JOBS).await?;
    let partial = finished.len() == CHART_JOBS || failed.len() == CHART_JOBS;
    finished.extend(failed);
    let spans = [("last hour", MINUTE, 60), ("last day", 15 * MINUTE, 96)];
    let charts = spans
        .into_iter()
        .map(|(span, width, n)| {
            let activity = activity_of(&finished, now, width, n);
            ChartSet {
                span,
                throughput: charts::throughput(&activity),
                failure_rate: charts::failure_rate(&activity),
                latency: charts::latency(&activity),
                completed: format::count(activity.completed()),
                failed: format::count(activity.failed()),
                rate: activity
                    .failure_rate()
                    .map_or_else(|| "–".to_owned(), |r| format!("{r:.1}%")),
            }
        })
        .collect();
    let mut source = "Jobs by the time they finished: completed, or failed into the dead letter \
                      (retried attempts are not counted); run time from start to finish of the \
                      last attempt."
        .to_owned();
    if partial {
        source.push_str(&format!(
            " Drawn from the latest {CHART_JOBS} completed and {CHART_JOBS} failed jobs only."
        ));
    }
    Ok((charts, source))
}

/// Buckets of `width` ending at the one holding `now`, filled from the
/// finished jobs.
fn activity_of(jobs: &[Job], now: Millis, width: Millis, n: usize) -> Activity {
    let end = (now / width + 1) * width;
    let start = end - width * n as Millis;
    let mut buckets = vec![Bucket::default(); n];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); n];
    for job in jobs {
        let Some(finished) = job.finished_at else {
            continue;
        };
        if finished < start || finished >= end {
            continue;
        }
        let i = ((finished - start) / width) as usize;
        match job.state {
            JobState::Completed => buckets[i].completed += 1,
            JobState::Failed => buckets[i].failed += 1,
            _ => continue,
        }
        if let Some(started) = job.started_at {
            runs[i].push((finished - started).max(0) as f64);
        }
    }
    for (bucket, runs) in buckets.iter_mut().zip(&mut runs) {
        bucket.p50_ms = charts::quantile(runs, 0.5);
        bucket.p95_ms = charts::quantile(runs, 0.95);
    }
    Activity {
        start,
        width_ms: width,
        buckets,
    }
}

// ---- job ----

/// One log record.
pub struct LogRow {
    at: String,
    level: &'static str,
    message: String,
}

/// One attempt, as the timeline shows it.
pub struct AttemptRow {
    number: u32,
    outcome: &'static str,
    kind: String,
    message: String,
    started: String,
    duration: String,
    fuel: String,
    memory: String,
    left: f64,
    width: f64,
    logs: Vec<LogRow>,
    logs_dropped: u64,
    stdout: String,
    stdout_total: String,
    stderr: String,
    stderr_total: String,
    trap: String,
    backtrace: Vec<String>,
    requests: Vec<String>,
}

/// A job of the workflow, indented by its depth in the graph.
pub struct NodeRow {
    id: JobId,
    node: String,
    state: &'static str,
    module: String,
    depth: usize,
    after: Vec<(JobId, String, &'static str)>,
    current: bool,
}

/// The workflow a job belongs to.
pub struct WorkflowView {
    id: i64,
    name: String,
    state: &'static str,
    nodes: Vec<NodeRow>,
}

/// Everything the job page shows.
pub struct JobView {
    id: JobId,
    state: &'static str,
    queue: String,
    module: String,
    module_hash: String,
    priority: u8,
    attempts_used: String,
    fields: Vec<(&'static str, String)>,
    last_error: String,
    progress: Option<(u8, String)>,
    input: String,
    output: Option<String>,
    attempts: Vec<AttemptRow>,
    depends_on: Vec<(JobId, String)>,
    parent: Option<JobId>,
    workflow: Option<WorkflowView>,
    can_requeue: bool,
}

/// The job page.
#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    chrome: Chrome,
    v: JobView,
}

/// The job page's live part.
#[derive(Template)]
#[template(path = "job_live.html")]
pub struct JobLive {
    chrome: Chrome,
    v: JobView,
}

/// `GET /jobs/{id}`.
pub async fn job(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let id = parse_id(&id)?;
    let (detail, live) = state.queue.job(id).await?;
    let workflow = match detail.job.workflow {
        Some(workflow) => Some(state.queue.workflow(workflow).await?),
        None => None,
    };
    let v = job_view(&state, detail, live, workflow);
    let page = JobPage {
        chrome: Chrome::of("job", &session),
        v,
    };
    if is_live(&query) {
        let JobPage { chrome, v } = page;
        return Ok(render(StatusCode::OK, &JobLive { chrome, v }));
    }
    Ok(render(StatusCode::OK, &page))
}

fn parse_id(text: &str) -> Result<JobId, ErrorPage> {
    match text.parse::<JobId>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ErrorPage::new(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            &format!("`{text}` is not a job id: a job id is a positive whole number"),
        )),
    }
}

fn job_view(
    state: &AppState,
    detail: JobDetail,
    live: Live,
    workflow: Option<crate::job::WorkflowDetail>,
) -> JobView {
    let now = state.queue.now();
    let job = &detail.job;
    let time_or_dash = |at: Option<Millis>| at.map_or_else(|| "–".to_owned(), format::time);
    let mut fields = vec![
        (
            "submitted",
            format!(
                "{} ({})",
                format::time(job.created_at),
                format::relative(now, job.created_at)
            ),
        ),
        ("run at", format::time(job.run_at)),
        ("started", time_or_dash(job.started_at)),
        ("finished", time_or_dash(job.finished_at)),
        (
            "limits",
            format!(
                "fuel {}, memory {}, timeout {}",
                format::count(job.limits.fuel),
                format::bytes(job.limits.memory_bytes),
                format::millis(job.limits.timeout_ms as i64)
            ),
        ),
    ];
    if let Some(since) = live.running_since {
        fields.push(("running for", format::millis(now - since)));
    }
    if let Some(key) = &job.unique_key {
        fields.push(("unique key", key.clone()));
    }
    if let Some(schedule) = &job.schedule {
        fields.push(("schedule", schedule.clone()));
    }
    // The timeline spans from submission to the last attempt's end (or now).
    let span_start = job.created_at;
    let span_end = detail
        .attempts
        .iter()
        .map(|a| a.finished_at)
        .chain(job.finished_at)
        .max()
        .unwrap_or(now)
        .max(span_start + 1);
    let span = (span_end - span_start) as f64;
    let attempts = detail
        .attempts
        .iter()
        .map(|attempt| {
            let left = 100.0 * (attempt.started_at - span_start).max(0) as f64 / span;
            let width = (100.0 * (attempt.finished_at - attempt.started_at).max(0) as f64 / span)
                .clamp(0.8, 100.0 - left.min(99.2));
            let mut row = AttemptRow {
                number: attempt.number,
                outcome: "ok",
                kind: String::new(),
                message: String::new(),
                started: format::time(attempt.started_at),
                duration: format::millis(attempt.finished_at - attempt.started_at),
                fuel: String::new(),
                memory: String::new(),
                left,
                width,
                logs: Vec::new(),
                logs_dropped: 0,
                stdout: String::new(),
                stdout_total: String::new(),
                stderr: String::new(),
                stderr_total: String::new(),
                trap: String::new(),
                backtrace: Vec::new(),
                requests: Vec::new(),
            };
            match &attempt.report {
                AttemptReport::Ran(report) => {
                    if report.status == Status::Success {
                        row.kind = "completed".to_owned();
                    } else {
                        row.outcome = "failed";
                    }
                    if let Some(failure) = &report.failure {
                        row.kind = failure.kind.as_str().to_owned();
                        row.message = failure.message.clone();
                        let mut trap = Vec::new();
                        if let Some(code) = &failure.trap_code {
                            trap.push(format!("trap: {code}"));
                        }
                        if let Some(code) = failure.exit_code {
                            trap.push(format!("exit code {code}"));
                        }
                        row.trap = trap.join(", ");
                        row.backtrace = failure
                            .backtrace
                            .iter()
                            .map(|frame| {
                                format!(
                                    "{} {}",
                                    frame.module.as_deref().unwrap_or("?"),
                                    frame.function.clone().unwrap_or_else(|| format!(
                                        "<func {}>",
                                        frame.function_index
                                    ))
                                )
                            })
                            .collect();
                    }
                    row.duration = format::micros(report.duration_us);
                    row.fuel = match report.fuel.consumed {
                        Some(used) => format!(
                            "{} of {}",
                            format::count(used),
                            format::count(report.fuel.limit)
                        ),
                        None => "not metered".to_owned(),
                    };
                    row.memory = format!(
                        "{} of {}",
                        format::bytes(report.memory.peak_bytes),
                        format::bytes(report.memory.limit_bytes)
                    );
                    row.logs = report
                        .logs
                        .iter()
                        .map(|log| LogRow {
                            at: format::micros(log.at_us),
                            level: log.level.as_str(),
                            message: log.message.clone(),
                        })
                        .collect();
                    row.logs_dropped = report.logs_dropped;
                    row.stdout = report.stdout.tail.clone();
                    row.stdout_total = format::bytes(report.stdout.total_bytes);
                    row.stderr = report.stderr.tail.clone();
                    row.stderr_total = format::bytes(report.stderr.total_bytes);
                    row.requests = report
                        .requests
                        .iter()
                        .map(|r| {
                            format!(
                                "{} {} → {}",
                                r.method,
                                r.url,
                                r.status.map_or_else(
                                    || r.error.clone().unwrap_or_default(),
                                    |s| s.to_string()
                                )
                            )
                        })
                        .collect();
                }
                AttemptReport::HostFailed { message, .. } => {
                    row.outcome = "failed";
                    row.kind = "host_failed".to_owned();
                    row.message = message.clone();
                }
                AttemptReport::Lost { message, .. } => {
                    row.outcome = "lost";
                    row.kind = "lost".to_owned();
                    row.message = message.clone();
                }
            }
            row
        })
        .collect();
    let workflow = workflow.map(|detail| workflow_view(detail, job.id));
    JobView {
        id: job.id,
        state: job.state.as_str(),
        queue: job.queue.clone(),
        module: module_label(job),
        module_hash: job.module.hash.clone(),
        priority: job.priority,
        attempts_used: format!("{} of {}", job.attempt, job.max_attempts),
        fields,
        last_error: job.last_error.clone().unwrap_or_default(),
        progress: live.progress.map(|p| (p.percent, p.note)),
        input: pretty(&detail.input),
        output: detail.output.as_ref().map(pretty),
        attempts,
        depends_on: detail
            .depends_on
            .iter()
            .map(|edge| (edge.prereq, edge.name.clone()))
            .collect(),
        parent: job.parent,
        workflow,
        can_requeue: job.state == JobState::Failed,
    }
}

/// The workflow's jobs in id order (prerequisites are stored before their
/// dependents), each indented one step deeper than its deepest
/// prerequisite.
fn workflow_view(detail: crate::job::WorkflowDetail, current: JobId) -> WorkflowView {
    let mut jobs = detail.jobs;
    jobs.sort_by_key(|job| job.id);
    let names: HashMap<JobId, (String, &'static str)> = jobs
        .iter()
        .map(|job| {
            let name = job.node.clone().unwrap_or_else(|| format!("#{}", job.id));
            (job.id, (name, job.state.as_str()))
        })
        .collect();
    let mut depth: HashMap<JobId, usize> = HashMap::new();
    let nodes = jobs
        .iter()
        .map(|job| {
            let prereqs: Vec<JobId> = detail
                .edges
                .iter()
                .filter(|edge| edge.job == job.id)
                .map(|edge| edge.prereq)
                .collect();
            let d = prereqs
                .iter()
                .filter_map(|p| depth.get(p))
                .max()
                .map_or(0, |d| d + 1);
            depth.insert(job.id, d);
            NodeRow {
                id: job.id,
                node: names[&job.id].0.clone(),
                state: job.state.as_str(),
                module: module_label(job),
                depth: d,
                after: prereqs
                    .iter()
                    .map(|p| {
                        let (name, state) = names
                            .get(p)
                            .cloned()
                            .unwrap_or_else(|| (format!("#{p}"), ""));
                        (*p, name, state)
                    })
                    .collect(),
                current: job.id == current,
            }
        })
        .collect();
    WorkflowView {
        id: detail.workflow.id,
        name: detail.workflow.name.clone().unwrap_or_default(),
        state: detail.workflow.state().as_str(),
        nodes,
    }
}

// ---- dead letter ----

/// A dead-lettered job.
pub struct DeadRow {
    id: JobId,
    module: String,
    queue: String,
    error: String,
    attempts: String,
    finished: String,
}

/// The dead letter page.
#[derive(Template)]
#[template(path = "dead_letter.html")]
pub struct DeadLetterPage {
    chrome: Chrome,
    rows: Vec<DeadRow>,
    total: u64,
}

/// The dead letter's live part.
#[derive(Template)]
#[template(path = "dead_letter_live.html")]
pub struct DeadLetterLive {
    chrome: Chrome,
    rows: Vec<DeadRow>,
    total: u64,
}

/// How many dead-lettered jobs the page lists.
const DEAD_LETTER_PAGE: usize = 200;

/// `GET /dead-letter`.
pub async fn dead_letter(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let now = state.queue.now();
    let total = state
        .queue
        .counts()
        .await?
        .iter()
        .find(|(s, _)| *s == JobState::Failed)
        .map_or(0, |(_, n)| *n);
    let rows: Vec<DeadRow> = list(&state, Some(JobState::Failed), DEAD_LETTER_PAGE)
        .await?
        .iter()
        .map(|job| DeadRow {
            id: job.id,
            module: module_label(job),
            queue: job.queue.clone(),
            error: job.last_error.clone().unwrap_or_default(),
            attempts: format!("{}/{}", job.attempt, job.max_attempts),
            finished: job
                .finished_at
                .map_or_else(String::new, |at| format::relative(now, at)),
        })
        .collect();
    let chrome = || Chrome::of("dead-letter", &session);
    if is_live(&query) {
        return Ok(render(
            StatusCode::OK,
            &DeadLetterLive {
                chrome: chrome(),
                rows,
                total,
            },
        ));
    }
    Ok(render(
        StatusCode::OK,
        &DeadLetterPage {
            chrome: chrome(),
            rows,
            total,
        },
    ))
}

/// `POST /dead-letter/{id}/requeue`: back to pending, then to the job.
pub async fn requeue(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&id)?;
    state.queue.requeue(id).await?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

/// `POST /dead-letter/{id}/purge`: deletes one dead-lettered job.
pub async fn purge_one(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&id)?;
    let purged = state.queue.purge(vec![id]).await?;
    if purged == 0 {
        return Err(ErrorPage::new(
            StatusCode::NOT_FOUND,
            "Not Found",
            &format!("job {id} is not in the dead letter"),
        ));
    }
    Ok(Redirect::to("/dead-letter").into_response())
}

/// `POST /dead-letter/purge`: deletes every dead-lettered job.
pub async fn purge_all(State(state): State<AppState>) -> PageResult {
    state.queue.purge(Vec::new()).await?;
    Ok(Redirect::to("/dead-letter").into_response())
}

// ---- queues ----

/// A queue and its controls.
pub struct QueueControl {
    row: QueueRow,
    cap: String,
}

/// The queues page.
#[derive(Template)]
#[template(path = "queues.html")]
pub struct QueuesPage {
    chrome: Chrome,
    queues: Vec<QueueControl>,
}

/// The queues page's live part.
#[derive(Template)]
#[template(path = "queues_live.html")]
pub struct QueuesLive {
    chrome: Chrome,
    queues: Vec<QueueControl>,
}

/// `GET /queues`.
pub async fn queues(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let now = state.queue.now();
    let queues: Vec<QueueControl> = state
        .queue
        .queues()
        .await?
        .into_iter()
        .map(|q| QueueControl {
            cap: state
                .queue
                .cap(&q.name)
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            row: QueueRow {
                waited: q
                    .oldest_due
                    .map_or_else(String::new, |at| format::millis(now - at)),
                name: q.name,
                paused: q.paused,
                blocked: q.blocked,
                pending: q.pending,
                retrying: q.retrying,
                running: q.running,
            },
        })
        .collect();
    let chrome = Chrome::of("queues", &session);
    let live = is_live(&query);
    Ok(if live {
        render(StatusCode::OK, &QueuesLive { chrome, queues })
    } else {
        render(StatusCode::OK, &QueuesPage { chrome, queues })
    })
}

/// `POST /queues/{queue}/pause`.
pub async fn pause(State(state): State<AppState>, Path(name): Path<String>) -> PageResult {
    state.queue.set_paused(&name, true).await?;
    Ok(Redirect::to("/queues").into_response())
}

/// `POST /queues/{queue}/resume`.
pub async fn resume(State(state): State<AppState>, Path(name): Path<String>) -> PageResult {
    state.queue.set_paused(&name, false).await?;
    Ok(Redirect::to("/queues").into_response())
}

// ---- schedules ----

/// A schedule and its next fire times.
pub struct ScheduleRow {
    name: String,
    cron: String,
    timezone: String,
    module: String,
    paused: bool,
    next: String,
    next_in: String,
    upcoming: Vec<String>,
    last_fired: String,
    last_job: Option<JobId>,
    last_error: String,
}

/// The schedules page.
#[derive(Template)]
#[template(path = "schedules.html")]
pub struct SchedulesPage {
    chrome: Chrome,
    schedules: Vec<ScheduleRow>,
}

/// `GET /schedules`.
pub async fn schedules(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let now = state.queue.now();
    let schedules = state
        .queue
        .schedules()
        .await?
        .into_iter()
        .map(|s| {
            let cadence = Cadence::parse(&s.cron, &s.timezone).ok();
            ScheduleRow {
                upcoming: cadence
                    .as_ref()
                    .map(|c| {
                        c.upcoming(s.next_at, 4)
                            .into_iter()
                            .map(|at| c.local(at))
                            .collect()
                    })
                    .unwrap_or_default(),
                next: cadence
                    .as_ref()
                    .map_or_else(|| format::time(s.next_at), |c| c.local(s.next_at)),
                next_in: format::relative(now, s.next_at),
                last_fired: s
                    .last_fired_at
                    .map_or_else(|| "never".to_owned(), |at| format::relative(now, at)),
                module: s.job.module.clone(),
                name: s.name,
                cron: s.cron,
                timezone: s.timezone,
                paused: s.paused,
                last_job: s.last_job,
                last_error: s.last_error.unwrap_or_default(),
            }
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &SchedulesPage {
            chrome: Chrome::of("schedules", &session),
            schedules,
        },
    ))
}

// ---- modules ----

/// An uploaded module.
pub struct ModuleRow {
    hash: String,
    short: String,
    name: String,
    kind: &'static str,
    size: String,
    uploaded: String,
    grants: String,
}

/// The modules page.
#[derive(Template)]
#[template(path = "modules.html")]
pub struct ModulesPage {
    chrome: Chrome,
    modules: Vec<ModuleRow>,
}

/// `GET /modules`.
pub async fn modules(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let now = state.queue.now();
    let modules = state
        .queue
        .modules()
        .await?
        .into_iter()
        .map(|m| ModuleRow {
            short: m.hash.chars().take(12).collect(),
            name: m.name.unwrap_or_default(),
            kind: m.kind.as_str(),
            size: format::bytes(m.size),
            uploaded: format::relative(now, m.created_at),
            grants: m.grants.join(", "),
            hash: m.hash,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ModulesPage {
            chrome: Chrome::of("modules", &session),
            modules,
        },
    ))
}
