//! `/v1/history`: per-minute history of the queues.

use super::error::ErrorBody;
use super::openapi::Unauthorized;
use super::{ApiError, AppState};
use crate::clock::Millis;
use crate::history::{HistoryMinute, MINUTE_MS, Percentiles};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// How far back a history read looks when `since` is absent: an hour.
pub const DEFAULT_SPAN_MS: Millis = 60 * MINUTE_MS;

/// Which minutes, of which queue.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// From this time (ms since the epoch; rounded down to its minute).
    /// An hour before `until` when absent.
    since: Option<Millis>,
    /// Up to before this time (ms since the epoch). Now when absent.
    until: Option<Millis>,
    /// Only this queue; every queue (a row per queue and minute) when
    /// absent.
    queue: Option<String>,
}

/// Minutes of history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// One per minute and queue in which a job's attempt ended; minutes
    /// without any are left out.
    minutes: Vec<MinuteView>,
}

/// One queue's minute.
#[derive(Debug, Serialize, ToSchema)]
pub struct MinuteView {
    /// The minute's start, ms since the epoch.
    at: Millis,
    /// The queue.
    queue: String,
    /// Jobs completed.
    completed: u64,
    /// Attempts that failed (then retried or dead-lettered).
    failed: u64,
    /// Attempts followed by a retry.
    retried: u64,
    /// Jobs moved to the dead letter.
    dead_lettered: u64,
    /// Jobs cancelled while they ran.
    cancelled: u64,
    /// Failed attempts by kind (`timeout`, `trap`…, `lost`, `host_failed`).
    failures: BTreeMap<String, u64>,
    /// From when each attempt was due to when it started.
    wait: PercentilesView,
    /// How long each attempt ran.
    run: PercentilesView,
}

/// Percentiles of a minute's durations, each within about 20% (they come
/// from log-scale buckets); `null` when there were none.
#[derive(Debug, Serialize, ToSchema)]
pub struct PercentilesView {
    /// How many durations.
    count: u64,
    /// Median, ms.
    #[schema(required = true)]
    p50_ms: Option<u64>,
    /// 95th percentile, ms.
    #[schema(required = true)]
    p95_ms: Option<u64>,
    /// 99th percentile, ms.
    #[schema(required = true)]
    p99_ms: Option<u64>,
}

impl From<Percentiles> for PercentilesView {
    fn from(p: Percentiles) -> Self {
        PercentilesView {
            count: p.count,
            p50_ms: p.p50_ms,
            p95_ms: p.p95_ms,
            p99_ms: p.p99_ms,
        }
    }
}

impl From<HistoryMinute> for MinuteView {
    fn from(m: HistoryMinute) -> Self {
        MinuteView {
            at: m.at,
            queue: m.queue,
            completed: m.completed,
            failed: m.failed,
            retried: m.retried,
            dead_lettered: m.dead_lettered,
            cancelled: m.cancelled,
            failures: m.failures,
            wait: m.wait.into(),
            run: m.run.into(),
        }
    }
}

/// Per-minute history: throughput, failures and latency by queue.
///
/// Counts of what ended in each minute, and wait (due to started) and
/// run percentiles. A host writes what it counted every few seconds
/// (`history.flush`); rows are kept for `history.keep`.
#[utoipa::path(
    get,
    path = "/v1/history",
    operation_id = "history",
    tag = "host",
    params(HistoryQuery),
    responses(
        (status = 200, description = "The minutes, oldest first.", body = History),
        (status = 400, description = "`invalid_query`: an unknown parameter or a time that \
            is not an integer; `invalid_request`: not a queue \
            name.", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Query(query) = query?;
    let until = query.until.unwrap_or_else(|| state.queue.now());
    let since = query
        .since
        .unwrap_or_else(|| until.saturating_sub(DEFAULT_SPAN_MS));
    if let Some(queue) = &query.queue {
        crate::policy::validate_queue_name(queue)
            .map_err(|invalid| ApiError::invalid(invalid.to_string()))?;
    }
    // `until` before `since` is an empty range: no minute lies in it.
    if until < since {
        return Ok(Json(History {
            minutes: Vec::new(),
        }));
    }
    let minutes = state
        .queue
        .history(since, until, query.queue.as_deref())
        .await?;
    Ok(Json(History {
        minutes: minutes.into_iter().map(MinuteView::from).collect(),
    }))
}
