//! The dashboard's pages and actions: each handler reads the queue, builds
//! a view (plain strings and numbers, already formatted) and renders its
//! template. A page with live parts renders only them for
//! `?fragment=live`, which htmx asks for on every `change` event.

mod job;
mod lists;
mod overview;

pub use job::job;
pub use lists::{
    dead_letter, modules, pause, purge_all, purge_one, queues, requeue, resume, schedules,
};
pub use overview::overview;

use super::auth::Session;
use crate::api::{ApiError, AppState};
use crate::job::{Job, JobId, JobState};
use crate::json::Json;
use crate::queue;
use crate::store::JobFilter;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

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

pub(crate) fn is_live(query: &Option<String>) -> bool {
    query.as_deref() == Some("fragment=live")
}

fn module_label(job: &Job) -> String {
    job.module
        .name
        .clone()
        .unwrap_or_else(|| job.module.short_hash().to_owned())
}

/// Indented, or as stored when it nests past serde_json's recursion limit
/// (a guest's output may).
fn pretty(json: &Json) -> String {
    serde_json::from_str::<serde_json::Value>(json.as_str())
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| json.as_str().to_owned())
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
