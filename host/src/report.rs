//! What happened when one invocation ran: the [`Report`].
//!
//! A report is data, never an error: every trap, limit, timeout and guest
//! error of a job ends up here with the figures needed to understand it. The
//! engine produces reports; the queue stores one per attempt (an
//! [`AttemptReport`], which is the engine's report or one the host made when
//! it could not run the attempt); the API and the CLI show them.
//!
//! Plain data: the store keeps its own encoding of reports and the API its
//! own view, so neither format leaks into the other.

use crate::json::Json;
use crate::limits::Limits;
use std::fmt;

/// How a module is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// A component implementing the `wasmjob:job` world.
    Component,
    /// A WASI preview 1 command module: input on stdin, output on stdout.
    Command,
}

impl ModuleKind {
    /// Both kinds.
    pub const ALL: [ModuleKind; 2] = [ModuleKind::Component, ModuleKind::Command];

    /// The snake_case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Component => "component",
            ModuleKind::Command => "command",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<ModuleKind> {
        ModuleKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the invocation succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The job returned output.
    Success,
    /// The job failed; [`Report::failure`] says how.
    Failure,
}

/// Why an invocation failed. The names are part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The fuel budget ran out.
    OutOfFuel,
    /// The guest tried to grow its memory past the limit (it may then have
    /// aborted or looped: the refused growth is what counts).
    MemoryLimit,
    /// The wall-clock timeout passed.
    Timeout,
    /// The wasm call stack overflowed.
    StackOverflow,
    /// Any other trap: a panic, an out-of-bounds access, a division by zero.
    Trap,
    /// The guest returned a retryable error.
    GuestError,
    /// The guest returned a fatal error: retrying cannot help.
    FatalError,
    /// The invocation was cancelled from outside.
    Cancelled,
    /// The output was larger than the limit.
    OutputLimit,
    /// A command module exited with a non-zero exit code.
    ExitCode,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 10] = [
        FailureKind::OutOfFuel,
        FailureKind::MemoryLimit,
        FailureKind::Timeout,
        FailureKind::StackOverflow,
        FailureKind::Trap,
        FailureKind::GuestError,
        FailureKind::FatalError,
        FailureKind::Cancelled,
        FailureKind::OutputLimit,
        FailureKind::ExitCode,
    ];

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether another attempt could succeed. Fatal errors and cancellations
    /// are final; everything else may be transient.
    pub fn is_retryable(self) -> bool {
        !matches!(self, FailureKind::FatalError | FailureKind::Cancelled)
    }

    /// The snake_case name used in the API and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out_of_fuel",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::Timeout => "timeout",
            FailureKind::StackOverflow => "stack_overflow",
            FailureKind::Trap => "trap",
            FailureKind::GuestError => "guest_error",
            FailureKind::FatalError => "fatal_error",
            FailureKind::Cancelled => "cancelled",
            FailureKind::OutputLimit => "output_limit",
            FailureKind::ExitCode => "exit_code",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One frame of a wasm backtrace, innermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The function's name from the module's name section, demangled.
    pub function: Option<String>,
    /// The function's index in its core module.
    pub function_index: u32,
    /// The core module's name, when it has one.
    pub module: Option<String>,
    /// Byte offset of the instruction in the module, when known.
    pub offset: Option<usize>,
}

/// How an invocation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The failure's classification.
    pub kind: FailureKind,
    /// One human-readable line.
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
    /// The wasm trap code (e.g. `unreachable`), when the guest trapped.
    pub trap_code: Option<String>,
    /// The exit code of a command module.
    pub exit_code: Option<i32>,
    /// The wasm backtrace at the trap, innermost frame first.
    pub backtrace: Vec<Frame>,
    /// The length in bytes of the guest's own message when `message` is
    /// only its first [`ERROR_MESSAGE_BYTES`](crate::limits::ERROR_MESSAGE_BYTES).
    pub message_bytes: Option<u64>,
}

/// Severity of a guest log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal information.
    Info,
    /// Something unexpected that the job handled.
    Warn,
    /// An error the job reports.
    Error,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 5] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ];

    /// The snake_case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// A log record written by the guest through the host's `log` import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Microseconds since the invocation started.
    pub at_us: u64,
    /// Severity.
    pub level: Level,
    /// The message, truncated to the per-record bound.
    pub message: String,
}

/// The latest progress the guest reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// The guest's note, truncated to the per-record bound.
    pub note: String,
}

/// A job the attempt asked the host to create after it (the `submit`
/// host function): created only if the attempt completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUp {
    /// Module hash or name.
    pub module: String,
    /// Its input.
    pub input: Json,
    /// Its name among the attempt's follow-ups.
    pub name: Option<String>,
    /// Its queue; `default` when absent.
    pub queue: Option<String>,
    /// Its priority; the default when absent.
    pub priority: Option<u8>,
    /// Attempts allowed; the default when absent.
    pub max_attempts: Option<u32>,
    /// Not before this long after it is created.
    pub delay_ms: Option<u64>,
    /// The earlier follow-ups it waits for, by position.
    pub after: Vec<usize>,
}

/// One outbound HTTP request an attempt made (or tried to make).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: String,
    /// `scheme://host[:port]/path`: the query string is dropped (it may
    /// carry credentials).
    pub url: String,
    /// The response's status, when one came.
    pub status: Option<u16>,
    /// Why there was no response, or why its body was cut.
    pub error: Option<String>,
    /// From the request to its end (the last byte read, or the error).
    pub duration_us: u64,
    /// Request body bytes sent.
    pub bytes_up: u64,
    /// Response body bytes received.
    pub bytes_down: u64,
}

/// Fuel figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuelUsage {
    /// Fuel consumed by the invocation; `None` when fuel metering is off.
    pub consumed: Option<u64>,
    /// The fuel budget it ran with.
    pub limit: u64,
}

/// Memory figures, summed over all linear memories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The largest total size the memories reached, in bytes.
    pub peak_bytes: u64,
    /// The memory limit it ran with, in bytes.
    pub limit_bytes: u64,
}

/// What was captured of stdout or stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StdioTail {
    /// Total bytes the guest wrote.
    pub total_bytes: u64,
    /// The last bytes written (lossy UTF-8), at most the configured tail.
    pub tail: String,
}

/// Everything known about one invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Success or failure.
    pub status: Status,
    /// The output, present on success. JSON by convention: shown as JSON
    /// when it parses, as a string otherwise.
    pub output: Option<Json>,
    /// How the invocation failed, present on failure.
    pub failure: Option<Failure>,
    /// The module that ran (blake3 hash, hex).
    pub module: String,
    /// How the module ran.
    pub kind: ModuleKind,
    /// The limits this invocation ran with.
    pub limits: Limits,
    /// Fuel consumed and budget.
    pub fuel: FuelUsage,
    /// Peak memory and limit.
    pub memory: MemoryUsage,
    /// Wall-clock time from instantiation to the end, in microseconds.
    pub duration_us: u64,
    /// Log records kept, oldest first.
    pub logs: Vec<LogRecord>,
    /// Log records dropped because a bound was reached.
    pub logs_dropped: u64,
    /// The last progress the guest reported.
    pub progress: Option<Progress>,
    /// What the guest wrote to stdout (for a command module, the output).
    pub stdout: StdioTail,
    /// What the guest wrote to stderr (a Rust panic message lands here).
    pub stderr: StdioTail,
    /// Its outbound HTTP requests, in order, up to a bound.
    pub requests: Vec<HttpRequest>,
    /// Requests made past the bound of the list (counted, not listed).
    pub requests_dropped: u64,
    /// The follow-up jobs it asked for, in order; only a successful
    /// report carries them (the worker takes them out and the store
    /// creates them with the result, as it keeps the output with the job).
    pub follow_ups: Vec<FollowUp>,
}

impl Failure {
    /// A failure of `kind` with `message`; retryable as the kind is, no
    /// trap details.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            retryable: kind.is_retryable(),
            trap_code: None,
            exit_code: None,
            backtrace: Vec::new(),
            message_bytes: None,
        }
    }
}

impl Report {
    /// Whether the invocation succeeded.
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }

    /// The failure kind, if it failed.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        self.failure.as_ref().map(|f| f.kind)
    }

    /// A successful report with empty figures, for tests.
    #[cfg(test)]
    pub(crate) fn empty_for_tests() -> Report {
        Report {
            status: Status::Success,
            output: Some(Json::null()),
            failure: None,
            module: "0".repeat(64),
            kind: ModuleKind::Component,
            limits: Limits::default(),
            fuel: FuelUsage {
                consumed: Some(0),
                limit: 0,
            },
            memory: MemoryUsage {
                peak_bytes: 0,
                limit_bytes: 0,
            },
            duration_us: 0,
            logs: Vec::new(),
            logs_dropped: 0,
            progress: None,
            stdout: StdioTail::default(),
            stderr: StdioTail::default(),
            requests: Vec::new(),
            requests_dropped: 0,
            follow_ups: Vec::new(),
        }
    }
}

/// What is kept of one attempt: the engine's report, or one the host made
/// because the engine never reported.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptReport {
    /// The engine ran the attempt to an outcome. The output is kept with
    /// the job, not here.
    Ran(Box<Report>),
    /// The host could not run the attempt: e.g. the job's module failed to
    /// load. Made by the worker that tried.
    HostFailed {
        /// One line: what failed and why.
        message: String,
        /// Whether another attempt could succeed.
        retryable: bool,
    },
    /// The attempt's host went away without a result (its lease expired,
    /// or it restarted). Made by the rescuer.
    Lost {
        /// Who held the lease.
        owner: Option<String>,
        /// One line.
        message: String,
    },
}

impl AttemptReport {
    /// The failure message, when the attempt failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            AttemptReport::Ran(report) => report.failure.as_ref().map(|f| f.message.as_str()),
            AttemptReport::HostFailed { message, .. } | AttemptReport::Lost { message, .. } => {
                Some(message)
            }
        }
    }

    /// The engine's failure kind, when the engine ran the attempt and it
    /// failed.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            AttemptReport::Ran(report) => report.failure_kind(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::parse(kind.as_str()), Some(kind));
        }
        for level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
        for kind in ModuleKind::ALL {
            assert_eq!(ModuleKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn only_fatal_and_cancelled_are_final() {
        for kind in FailureKind::ALL {
            let retryable = !matches!(kind, FailureKind::FatalError | FailureKind::Cancelled);
            assert_eq!(kind.is_retryable(), retryable, "{kind}");
            assert_eq!(Failure::new(kind, "m").retryable, retryable, "{kind}");
        }
    }
}
