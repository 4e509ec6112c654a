//! Test doubles for the host, in a native unit test of a job's logic (not
//! on `wasm32`, where the host answers): read back what the job logged,
//! reported, submitted and sent; set its prerequisites, secrets,
//! configuration and HTTP answers. Everything is per thread, and each test
//! runs on a thread of its own, so tests do not see each other's.
//!
//! ```
//! use wasmjob_sdk::testing::{self, Recorded};
//!
//! fn work() {
//!     wasmjob_sdk::info!("step {}", 1);
//!     wasmjob_sdk::progress(100, "done");
//! }
//!
//! testing::take(); // start from nothing
//! work();
//! assert_eq!(
//!     testing::take(),
//!     [
//!         Recorded::Log { level: wasmjob_sdk::Level::Info, message: "step 1".into() },
//!         Recorded::Progress { percent: 100, note: "done".into() },
//!     ]
//! );
//! ```

use crate::http::{self, Request, Response};
use crate::{Dependency, FollowUp, Level};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A log record or a progress report, as the job made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// From [`log()`](crate::log) or the logging macros.
    Log {
        /// Its level.
        level: Level,
        /// Its message.
        message: String,
    },
    /// From [`progress()`](crate::progress).
    Progress {
        /// The percentage.
        percent: u8,
        /// The note.
        note: String,
    },
}

thread_local! {
    static RECORDED: RefCell<Vec<Recorded>> = const { RefCell::new(Vec::new()) };
    static DEPENDENCIES: RefCell<Vec<Dependency>> = const { RefCell::new(Vec::new()) };
    static FOLLOW_UPS: RefCell<Vec<FollowUp>> = const { RefCell::new(Vec::new()) };
    static SECRETS: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static HTTP: RefCell<Option<Rc<HttpHandler>>> = const { RefCell::new(None) };
    static REQUESTS: RefCell<Vec<Request>> = const { RefCell::new(Vec::new()) };
}

/// What answers requests in place of the network.
type HttpHandler = dyn Fn(&Request) -> Result<Response, http::Error>;

/// The host's default bound on follow-ups per attempt, which the test
/// double enforces too.
const MAX_FOLLOW_UPS: usize = 100;

/// Keeps a follow-up as the host would, refusing what it would refuse
/// inside the sandbox (count, names, `after`).
pub(crate) fn submit(job: FollowUp) -> Result<u32, String> {
    FOLLOW_UPS.with(|all| {
        let mut all = all.borrow_mut();
        if all.len() >= MAX_FOLLOW_UPS {
            return Err(format!(
                "follow-up refused: an attempt may submit at most {MAX_FOLLOW_UPS} follow-up jobs"
            ));
        }
        let named = |name: &str| all.iter().any(|f| f.name.as_deref() == Some(name));
        if let Some(name) = &job.name
            && named(name)
        {
            return Err(format!(
                "follow-up refused: name: `{name}` names an earlier follow-up already"
            ));
        }
        if let Some(missing) = job.after.iter().find(|name| !named(name)) {
            return Err(format!(
                "follow-up refused: after: no earlier follow-up is named `{missing}`"
            ));
        }
        all.push(job);
        Ok(u32::try_from(all.len() - 1).unwrap_or(u32::MAX))
    })
}

/// The follow-ups this thread submitted since the last call, in order
/// (and a fresh start for the next attempt's).
///
/// ```
/// use wasmjob_sdk::FollowUp;
///
/// wasmjob_sdk::submit(FollowUp::new("resize", &640).name("small")).unwrap();
/// let submitted = wasmjob_sdk::testing::take_follow_ups();
/// assert_eq!(submitted[0].module, "resize");
/// assert_eq!(submitted[0].input.as_deref(), Ok("640"));
/// ```
pub fn take_follow_ups() -> Vec<FollowUp> {
    FOLLOW_UPS.with(|all| std::mem::take(&mut *all.borrow_mut()))
}

/// Sets what [`dependencies()`](crate::dependencies()) returns on this
/// thread, as the host would for a job with these prerequisites.
///
/// ```
/// use wasmjob_sdk::Dependency;
///
/// wasmjob_sdk::testing::set_dependencies(vec![Dependency::completed("payment", 7, &42)]);
/// let paid: u32 = wasmjob_sdk::dependency_output("payment").unwrap();
/// assert_eq!(paid, 42);
/// assert!(wasmjob_sdk::dependency_output::<u32>("stock").unwrap_err().is_fatal());
/// ```
pub fn set_dependencies(dependencies: Vec<Dependency>) {
    DEPENDENCIES.with(|all| *all.borrow_mut() = dependencies);
}

/// What [`set_dependencies`] set on this thread.
pub(crate) fn dependencies() -> Vec<Dependency> {
    DEPENDENCIES.with(|all| all.borrow().clone())
}

/// Keeps what the job just logged or reported, on this thread.
pub(crate) fn record(recorded: Recorded) {
    RECORDED.with(|all| all.borrow_mut().push(recorded));
}

/// Everything this thread logged and reported since the last call, oldest
/// first. Each test runs on a thread of its own, so tests do not see each
/// other's records.
pub fn take() -> Vec<Recorded> {
    RECORDED.with(|all| std::mem::take(&mut *all.borrow_mut()))
}

/// Grants the secret `name` with `value` on this thread: what
/// [`secret()`](crate::secret()) returns for it. Secrets not set read as
/// not granted.
///
/// ```
/// wasmjob_sdk::testing::set_secret("api_token", "t0ps3cret");
/// assert_eq!(wasmjob_sdk::secret("api_token").as_deref(), Some("t0ps3cret"));
/// assert_eq!(wasmjob_sdk::secret("other"), None);
/// ```
pub fn set_secret(name: &str, value: &str) {
    SECRETS.with(|all| all.borrow_mut().insert(name.to_owned(), value.to_owned()));
}

/// Grants the configuration value `name` with `value` on this thread:
/// what [`config()`](crate::config()) returns for it.
pub fn set_config(name: &str, value: &str) {
    CONFIG.with(|all| all.borrow_mut().insert(name.to_owned(), value.to_owned()));
}

/// What [`set_secret`] set on this thread.
pub(crate) fn secret(name: &str) -> Option<String> {
    SECRETS.with(|all| all.borrow().get(name).cloned())
}

/// What [`set_config`] set on this thread.
pub(crate) fn config(name: &str) -> Option<String> {
    CONFIG.with(|all| all.borrow().get(name).cloned())
}

/// Answers this thread's HTTP requests with `handler`, in place of the
/// network (replacing any handler set before). It gets each request that
/// passed the checks the host would make (URL, headers, body encoding),
/// and returns the response, or the error the job should see.
///
/// ```
/// use wasmjob_sdk::http::{self, Error, ErrorKind, Response};
///
/// wasmjob_sdk::testing::set_http(|request| match request.url() {
///     "https://api.example/ok" => Ok(Response::new(200).with_body("fine")),
///     _ => Err(Error::new(ErrorKind::Timeout, "request to https://api.example failed: timed out")),
/// });
/// assert_eq!(http::get("https://api.example/ok").unwrap().text(), "fine");
/// assert!(http::get("https://api.example/slow").unwrap_err().is_retryable());
/// ```
pub fn set_http(handler: impl Fn(&Request) -> Result<Response, http::Error> + 'static) {
    HTTP.with(|slot| *slot.borrow_mut() = Some(Rc::new(handler)));
}

/// The requests this thread sent since the last call, oldest first,
/// whether or not they got an answer (but not those refused before
/// leaving: a bad URL or header).
///
/// ```
/// use wasmjob_sdk::http::{self, Method};
///
/// wasmjob_sdk::testing::set_http(|_| Ok(http::Response::new(204)));
/// http::post_json("https://hooks.example/in", &serde_json::json!({"n": 1})).unwrap();
/// let sent = wasmjob_sdk::testing::take_requests();
/// assert_eq!(sent.len(), 1);
/// assert_eq!(sent[0].method(), Method::Post);
/// assert_eq!(sent[0].body_json::<serde_json::Value>().unwrap()["n"], 1);
/// ```
pub fn take_requests() -> Vec<Request> {
    REQUESTS.with(|all| std::mem::take(&mut *all.borrow_mut()))
}

/// Keeps `request` and answers it with the handler of this thread; without
/// one, the request is denied, as the host denies an origin not granted.
pub(crate) fn send(request: &Request, origin: &str) -> Result<Response, http::Error> {
    REQUESTS.with(|all| all.borrow_mut().push(request.clone()));
    // The handler is called with no borrow held: it may send requests too.
    match HTTP.with(|slot| slot.borrow().clone()) {
        Some(handler) => handler(request),
        None => Err(http::Error::new(
            http::ErrorKind::Denied,
            format!(
                "request to {origin} denied: no network in native tests: set a handler with testing::set_http"
            ),
        )),
    }
}
