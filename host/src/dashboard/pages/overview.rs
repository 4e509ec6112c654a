//! The overview: jobs per state, depth by queue and priority, the
//! workers, recent failures and the activity charts.

use super::{Chrome, PageResult, QueueRow, is_live, list, module_label, render};
use crate::api::AppState;
use crate::clock::Millis;
use crate::dashboard::auth::Session;
use crate::dashboard::charts::{self, Activity, Bucket};
use crate::dashboard::format;
use crate::history::{MINUTE_MS, MinuteCounts};
use crate::job::{Job, JobId, JobState};
use crate::queue;
use crate::worker::Phase;
use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use std::collections::{BTreeMap, HashMap};

/// One state and how many jobs are in it.
pub struct StateCount {
    state: &'static str,
    count: String,
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
    wait: String,
    completed: String,
    failed: String,
    dead_lettered: String,
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
    /// Slots declared stuck.
    stuck: usize,
    /// The pool's bounds, when it scales (`min`, `max`).
    scaling: Option<(usize, usize)>,
    /// The latest resizes, newest first: (when, from, to, why).
    resizes: Vec<(String, usize, usize, &'static str)>,
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
    let slots = queue.slots().counts();
    let scaling = queue.config().scaling();
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
        concurrency: slots.target,
        busy: running.len(),
        buffered,
        stuck: slots.stuck,
        scaling: (!scaling.is_fixed()).then_some((scaling.min, scaling.max)),
        resizes: queue
            .slots()
            .changes()
            .into_iter()
            .rev()
            .take(3)
            .map(|r| (format::millis(now - r.at), r.from, r.to, r.reason))
            .collect(),
        running,
        failures,
        charts,
        chart_source,
    })
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

/// The last hour per minute and the last day per 15 minutes, from the
/// queue's per-minute history.
async fn chart_sets(
    state: &AppState,
    now: Millis,
) -> Result<(Vec<ChartSet>, String), queue::Error> {
    let spans = [
        ("last hour", MINUTE_MS, 60),
        ("last day", 15 * MINUTE_MS, 96),
    ];
    let mut charts = Vec::new();
    for (span, width, n) in spans {
        // The buckets end with the one holding now.
        let end = (now / width + 1) * width;
        let start = end - width * n as Millis;
        let counts = state.queue.history_spans(start, end, width).await?;
        let activity = Activity {
            start,
            width_ms: width,
            buckets: counts.iter().map(bucket_of).collect(),
        };
        let dead_lettered: u64 = counts.iter().map(|c| c.dead_lettered).sum();
        charts.push(ChartSet {
            span,
            throughput: charts::throughput(&activity),
            failure_rate: charts::failure_rate(&activity),
            latency: charts::latency(&activity),
            wait: charts::wait(&activity),
            completed: format::count(activity.completed()),
            failed: format::count(activity.failed()),
            dead_lettered: format::count(dead_lettered),
            rate: activity
                .failure_rate()
                .map_or_else(|| "–".to_owned(), |r| format!("{r:.1}%")),
        });
    }
    let flush = format::millis(state.queue.config().history_flush_ms as i64);
    let source = format!(
        "From the per-minute history of every queue: jobs completed and attempts failed \
         (retried or dead-lettered), run time from start to end of each attempt, wait from \
         due to started. This host writes what it counted every {flush}; percentiles are \
         within about 20%."
    );
    Ok((charts, source))
}

/// A chart bucket from a span of history.
fn bucket_of(counts: &MinuteCounts) -> Bucket {
    let ms = |h: &crate::history::Histogram, q: f64| h.quantile_ms(q).map(|v| v as f64);
    Bucket {
        completed: counts.completed,
        failed: counts.failed,
        p50_ms: ms(&counts.run, 0.5),
        p95_ms: ms(&counts.run, 0.95),
        wait_p50_ms: ms(&counts.wait, 0.5),
        wait_p95_ms: ms(&counts.wait, 0.95),
    }
}
