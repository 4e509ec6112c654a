//! What a job can ask of the host: logging, progress and its [`JobInfo`].
//!
//! On targets other than wasm32 (unit tests of a job's logic, doctests)
//! there is no host: log records and progress go to standard error instead.

use std::cell::RefCell;
use std::fmt;

#[cfg(target_arch = "wasm32")]
use crate::__private::wasmjob::job::{host as wit_host, types as wit_types};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Information useful when debugging the job.
    Debug,
    /// Normal progress of the job.
    Info,
    /// Something unexpected that the job could handle.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        })
    }
}

/// Records a log line in the invocation's report.
///
/// The host bounds how many records (and bytes) an invocation keeps; records
/// past the bounds are dropped, never an error for the job. The macros
/// [`info!`](crate::info!) and friends call this with a formatted message.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit_host::log(
        match level {
            Level::Trace => wit_types::Level::Trace,
            Level::Debug => wit_types::Level::Debug,
            Level::Info => wit_types::Level::Info,
            Level::Warn => wit_types::Level::Warn,
            Level::Error => wit_types::Level::Error,
        },
        message,
    );
    #[cfg(not(target_arch = "wasm32"))]
    {
        eprintln!("[{level}] {message}");
        crate::testing::record(crate::testing::Recorded::Log {
            level,
            message: message.to_owned(),
        });
    }
}

/// Reports progress: `percent` (clamped by the host to 0..=100) and a short
/// note on what the job is doing.
pub fn progress(percent: u8, note: &str) {
    #[cfg(target_arch = "wasm32")]
    wit_host::progress(percent, note);
    #[cfg(not(target_arch = "wasm32"))]
    {
        eprintln!("[progress {percent}%] {note}");
        crate::testing::record(crate::testing::Recorded::Progress {
            percent,
            note: note.to_owned(),
        });
    }
}

/// What the host told the job about the invocation it is running.
///
/// Get it with [`info()`](crate::info()).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The job's id, stable across attempts.
    pub id: String,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// The number of attempts the job may use in all.
    pub max_attempts: u32,
    /// The job's priority: 0 is critical, 10 is low.
    pub priority: u8,
}

/// Outside an invocation (say, a native unit test of the job's logic):
/// an empty id, first and only attempt, priority 0.
impl Default for JobInfo {
    fn default() -> Self {
        JobInfo {
            id: String::new(),
            attempt: 1,
            max_attempts: 1,
            priority: 0,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<JobInfo>> = const { RefCell::new(None) };
}

/// The running invocation's [`JobInfo`]: id, attempt number, attempts allowed
/// and priority.
///
/// Outside an invocation it returns [`JobInfo::default()`].
pub fn info() -> JobInfo {
    CURRENT.with(|current| current.borrow().clone().unwrap_or_default())
}

/// Runs `f` with `info` as the current [`JobInfo`], restoring the previous
/// one afterwards.
pub(crate) fn with_info<R>(info: JobInfo, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<JobInfo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|current| current.borrow_mut().replace(info));
    let _restore = Restore(previous);
    f()
}

/// Logs a formatted message at [`Level::Trace`]: `trace!("x = {x}")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log($crate::Level::Trace, &::std::format!($($arg)+)) };
}

/// Logs a formatted message at [`Level::Debug`]: `debug!("x = {x}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)+)) };
}

/// Logs a formatted message at [`Level::Info`]: `info!("x = {x}")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log($crate::Level::Info, &::std::format!($($arg)+)) };
}

/// Logs a formatted message at [`Level::Warn`]: `warn!("x = {x}")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)+)) };
}

/// Logs a formatted message at [`Level::Error`]: `error!("x = {x}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log($crate::Level::Error, &::std::format!($($arg)+)) };
}
