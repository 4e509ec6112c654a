//! The list pages and their actions: the dead letter (requeue, purge),
//! queues (pause, resume), schedules and modules.

use super::{
    Chrome, ErrorPage, PageResult, QueueRow, is_live, list, module_label, parse_id, render,
};
use crate::api::AppState;
use crate::dashboard::auth::Session;
use crate::dashboard::format;
use crate::job::{JobId, JobState};
use crate::schedule::Cadence;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};

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
                            .map(|at| c.local(at).replacen('T', " ", 1))
                            .collect()
                    })
                    .unwrap_or_default(),
                next: cadence.as_ref().map_or_else(
                    || format::time(s.next_at),
                    |c| c.local(s.next_at).replacen('T', " ", 1),
                ),
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
