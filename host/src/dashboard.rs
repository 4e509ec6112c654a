//! The web dashboard: server-rendered HTML pages over the queue, served by
//! the same router as the API (part of the HTTP layer, next to [`api`]).
//!
//! Pages are askama templates compiled into the binary
//! (`dashboard/templates/`); the CSS, htmx and htmx's SSE extension are
//! files in `dashboard/static/`, included with `include_bytes!` and served
//! with a cache header, so the dashboard works offline and needs no build
//! step. Charts are SVG drawn on the server ([`charts`]).
//!
//! Live updates: every page holding live parts connects to
//! `GET /dashboard/events?since=N` (N: the queue's change count the page
//! was rendered at), a server-sent event stream that says `change` (at
//! most every [`DEBOUNCE`]) whenever the queue's change signal ticks;
//! htmx then fetches the page's live fragment (`?fragment=live`) again.
//!
//! Authentication (`dashboard/auth.rs`): with a token configured the
//! dashboard asks for it once and keeps a signed session cookie; every
//! state-changing action is a POST form carrying a CSRF token bound to
//! the session, and cross-origin POSTs are refused. The `/v1` API's
//! bearer-token rule is unchanged. Like the API, this module sees only
//! the queue.
//!
//! [`api`]: crate::api

mod auth;
pub mod charts;
mod format;
mod pages;

pub use auth::Sessions;

use crate::api::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use std::convert::Infallible;
use std::time::Duration;

/// The shortest time between two `change` events of one stream: a burst of
/// changes (a batch of jobs finishing) costs the browser one refresh.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// How long one event stream lasts before the server ends it. The browser
/// reconnects at once (the stream asks for a 500 ms retry) and the new
/// stream's first event refreshes the page, so nothing is missed; the
/// bound keeps a graceful shutdown from waiting on open dashboards longer
/// than this.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(10);

/// The dashboard's routes, to merge into the app's router.
///
/// Public: `/login` and `/dashboard/static/*`. Everything else needs a
/// session when the host has a token.
pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/jobs/{id}", get(pages::job))
        .route("/dead-letter", get(pages::dead_letter))
        .route("/dead-letter/purge", post(pages::purge_all))
        .route("/dead-letter/{id}/requeue", post(pages::requeue))
        .route("/dead-letter/{id}/purge", post(pages::purge_one))
        .route("/queues", get(pages::queues))
        .route("/queues/{queue}/pause", post(pages::pause))
        .route("/queues/{queue}/resume", post(pages::resume))
        .route("/schedules", get(pages::schedules))
        .route("/modules", get(pages::modules))
        .route("/logout", post(auth::logout))
        .route("/dashboard/events", get(events))
        .route_layer(middleware::from_fn_with_state(state, auth::require));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/dashboard/static/{file}", get(asset))
        .merge(pages)
}

/// Where a page's event stream starts: the change count the page was
/// rendered at.
#[derive(serde::Deserialize)]
struct Since {
    since: Option<u64>,
}

/// The change stream: a `change` event (its id the queue's change count)
/// after every change of the queue, at most every [`DEBOUNCE`], for
/// [`STREAM_LIFETIME`]. A page gives the count it was rendered at
/// (`?since=`), a reconnecting browser the last id it saw
/// (`Last-Event-ID`): when the queue changed since, the first event comes
/// at once, so nothing between the render and the stream is missed.
async fn events(
    State(state): State<AppState>,
    Query(since): Query<Since>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut changes = state.queue.changes();
    let seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or(since.since);
    let current = *changes.borrow_and_update();
    let behind = seen.is_some_and(|seen| seen != current);
    let end = tokio::time::Instant::now() + STREAM_LIFETIME;
    let stream = futures_util::stream::unfold(
        (changes, behind, true),
        move |(mut changes, behind, first)| async move {
            let event = |version: u64| {
                Event::default()
                    .event("change")
                    .id(version.to_string())
                    .retry(Duration::from_millis(500))
                    .data(version.to_string())
            };
            if behind {
                let version = *changes.borrow_and_update();
                return Some((Ok(event(version)), (changes, false, false)));
            }
            if !first {
                // Changes during the pause are remembered by the receiver
                // and answered by one event after it.
                let pause = tokio::time::Instant::now() + DEBOUNCE;
                tokio::time::sleep_until(end.min(pause)).await;
            }
            match tokio::time::timeout_at(end, changes.changed()).await {
                Ok(Ok(())) => {
                    let version = *changes.borrow_and_update();
                    Some((Ok(event(version)), (changes, false, false)))
                }
                Ok(Err(_)) | Err(_) => None,
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A vendored file: bytes, content type.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The static files, each under its own versioned name so a long cache
/// lifetime is safe.
const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard-1.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("dashboard/static/dashboard-1.css"),
    },
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("dashboard/static/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "htmx-ext-sse-2.2.4.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("dashboard/static/htmx-ext-sse-2.2.4.min.js"),
    },
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    // The names carry the version: a changed file is a new name.
                    HeaderValue::from_static("public, max-age=86400, immutable"),
                ),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(format!("no static file `{}`", format::escape(&file))),
        )
            .into_response(),
    }
}
