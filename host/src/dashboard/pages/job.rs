//! A job's page: its fields, attempts as a timeline with their reports,
//! input, output and workflow.

use super::{Chrome, PageResult, is_live, module_label, parse_id, pretty, render};
use crate::api::AppState;
use crate::clock::Millis;
use crate::dashboard::auth::Session;
use crate::dashboard::format;
use crate::job::{JobDetail, JobId, JobState, WorkflowDetail};
use crate::queue::Live;
use crate::report::{AttemptReport, Status};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use std::collections::HashMap;

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

fn job_view(
    state: &AppState,
    detail: JobDetail,
    live: Live,
    workflow: Option<WorkflowDetail>,
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
            let (left, width) = bar(
                attempt.started_at - span_start,
                attempt.finished_at - attempt.started_at,
                span,
            );
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

/// Where an attempt's bar sits on the timeline, in percent of `span`:
/// its left edge and its width, at least a sliver wide and never past the
/// end.
fn bar(offset: Millis, duration: Millis, span: f64) -> (f64, f64) {
    const SLIVER: f64 = 0.8;
    let left = (100.0 * offset.max(0) as f64 / span).clamp(0.0, 100.0 - SLIVER);
    let width = (100.0 * duration.max(0) as f64 / span)
        .max(SLIVER)
        .min(100.0 - left);
    (left, width)
}

/// The workflow's jobs in id order (prerequisites are stored before their
/// dependents), each indented one step deeper than its deepest
/// prerequisite.
fn workflow_view(detail: WorkflowDetail, current: JobId) -> WorkflowView {
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

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_stay_on_the_timeline() {
        assert_eq!(bar(0, 50, 100.0), (0.0, 50.0));
        // A sliver at least (to float precision), never past the end.
        let on_it = |(left, width): (f64, f64)| left + width <= 100.0 && width > 0.79;
        assert!(on_it(bar(99, 1, 100.0)), "{:?}", bar(99, 1, 100.0));
        assert!(on_it(bar(100, 0, 100.0)), "{:?}", bar(100, 0, 100.0));
        // Instants past the span (a clock step) stay on it too.
        let (left, width) = bar(250, 10, 100.0);
        assert!(left + width <= 100.0 + 1e-9, "{left} {width}");
        assert_eq!(bar(-5, -5, 100.0).0, 0.0);
    }
}
