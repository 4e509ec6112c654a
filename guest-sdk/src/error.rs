//! [`JobError`]: why a job failed, and whether the host should retry it.

use std::fmt;

/// Why a job failed, and whether trying again could help.
///
/// A job function returns `Result<T, JobError>`. Any [`std::error::Error`]
/// converts into a **retryable** `JobError` with `?`, so transient failures
/// (I/O, timeouts, a busy service) are retried by default. Mark a permanent
/// failure with [`JobError::fatal`] or [`ResultExt::fatal`](crate::ResultExt::fatal):
/// the host then gives up at once instead of spending the remaining attempts.
///
/// Like `anyhow::Error`, `JobError` implements [`Debug`](fmt::Debug) and
/// [`Display`](fmt::Display) but not [`std::error::Error`]: that is what lets
/// the blanket `From` conversion exist.
///
/// ```
/// use wasmjob_sdk::JobError;
///
/// fn parse(s: &str) -> Result<u64, JobError> {
///     Ok(s.parse::<u64>()?) // a `ParseIntError` becomes a retryable error
/// }
/// let err = parse("x").unwrap_err();
/// assert!(!err.is_fatal());
/// assert_eq!(err.to_string(), "invalid digit found in string");
/// assert!(JobError::fatal("bad config").is_fatal());
/// ```
pub struct JobError {
    fatal: bool,
    message: String,
}

impl JobError {
    /// A transient failure: the host retries the job if attempts are left.
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError {
            fatal: false,
            message: message.into(),
        }
    }

    /// A permanent failure: the host does not retry the job.
    pub fn fatal(message: impl Into<String>) -> Self {
        JobError {
            fatal: true,
            message: message.into(),
        }
    }

    /// Whether this error stops the job without further attempts.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Whether the host may retry the job after this error.
    pub fn is_retryable(&self) -> bool {
        !self.fatal
    }

    /// The error's message, as the host records it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether it is fatal, and the message.
    pub(crate) fn into_parts(self) -> (bool, String) {
        (self.fatal, self.message)
    }

    /// The same message, marked fatal.
    pub fn into_fatal(self) -> Self {
        JobError::fatal(self.message)
    }

    /// The same message, marked retryable.
    pub fn into_retryable(self) -> Self {
        JobError::retryable(self.message)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.fatal { "fatal" } else { "retryable" };
        write!(f, "JobError::{kind}({:?})", self.message)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any standard error converts into a **retryable** [`JobError`], its
/// message followed by those of its sources (`outer: inner`).
impl<E: std::error::Error> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::retryable(message_with_sources(&error))
    }
}

/// `error`'s message, then each source's that it does not already contain.
fn message_with_sources(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Marks the error of a `Result` as fatal or retryable, converting it into
/// a [`JobError`].
///
/// Works for any error type that implements [`Display`](fmt::Display),
/// including `String`, `&str`, `anyhow::Error` and `JobError` itself.
///
/// ```
/// use wasmjob_sdk::{JobError, ResultExt};
///
/// fn load(path: &str) -> Result<String, JobError> {
///     let config = std::fs::read_to_string(path).fatal()?; // never retried
///     let value: Result<u8, String> = Err("busy".to_string());
///     value.retryable()?; // retried
///     Ok(config)
/// }
/// assert!(load("/no/such/file").unwrap_err().is_fatal());
/// ```
pub trait ResultExt<T> {
    /// Converts the error into a fatal [`JobError`]: the job is not retried.
    fn fatal(self) -> Result<T, JobError>;

    /// Converts the error into a retryable [`JobError`].
    fn retryable(self) -> Result<T, JobError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn fatal(self) -> Result<T, JobError> {
        self.map_err(|e| JobError::fatal(e.to_string()))
    }

    fn retryable(self) -> Result<T, JobError> {
        self.map_err(|e| JobError::retryable(e.to_string()))
    }
}
