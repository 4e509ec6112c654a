//! What happened when one invocation ran: the [`Report`].
//!
//! A report is data, never an error: every trap, limit, timeout and guest
//! error of a job ends up here with the figures needed to understand it. The
//! engine produces reports; the queue stores one per attempt; the API and the
//! CLI print them.

use crate::limits::Limits;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a module is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component implementing the `wasmjob:job` world.
    Component,
    /// A WASI preview 1 command module: input on stdin, output on stdout.
    Command,
}

impl fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModuleKind::Component => "component",
            ModuleKind::Command => "command",
        })
    }
}

/// Whether the invocation succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The job returned output.
    Success,
    /// The job failed; [`Report::failure`] says how.
    Failure,
}

/// Why an invocation failed. The names are part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Frame {
    /// The function's name from the module's name section, demangled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub function: Option<String>,
    /// The function's index in its core module.
    pub function_index: u32,
    /// The core module's name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub module: Option<String>,
    /// Byte offset of the instruction in the module, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub offset: Option<usize>,
}

/// How an invocation failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// The failure's classification.
    pub kind: FailureKind,
    /// One human-readable line.
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
    /// The wasm trap code (e.g. `unreachable`), when the guest trapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub trap_code: Option<String>,
    /// The exit code of a command module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exit_code: Option<i32>,
    /// The wasm backtrace at the trap, innermost frame first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backtrace: Vec<Frame>,
}

/// Severity of a guest log record.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
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

/// A log record written by the guest through the host's `log` import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogRecord {
    /// Microseconds since the invocation started.
    pub at_us: u64,
    /// Severity.
    pub level: Level,
    /// The message, truncated to the per-record bound.
    pub message: String,
}

/// The latest progress the guest reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// The guest's note, truncated to the per-record bound.
    pub note: String,
}

/// Fuel figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FuelUsage {
    /// Fuel consumed by the invocation; `None` when fuel metering is off.
    #[schema(required = true)]
    pub consumed: Option<u64>,
    /// The fuel budget it ran with.
    pub limit: u64,
}

/// Memory figures, summed over all linear memories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryUsage {
    /// The largest total size the memories reached, in bytes.
    pub peak_bytes: u64,
    /// The memory limit it ran with, in bytes.
    pub limit_bytes: u64,
}

/// What was captured of stdout or stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StdioTail {
    /// Total bytes the guest wrote.
    pub total_bytes: u64,
    /// The last bytes written (lossy UTF-8), at most the configured tail.
    pub tail: String,
}

/// Everything known about one invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// Success or failure.
    pub status: Status,
    /// The output, present on success. JSON by convention: shown as JSON
    /// when it parses, as a string otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub output: Option<Output>,
    /// How the invocation failed, present on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub progress: Option<Progress>,
    /// What the guest wrote to stdout (for a command module, the output).
    pub stdout: StdioTail,
    /// What the guest wrote to stderr (a Rust panic message lands here).
    pub stderr: StdioTail,
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
}

/// A job's output bytes.
///
/// Serialized as the JSON value they contain when they are valid JSON, and
/// as a (lossy UTF-8) string otherwise; stores keep the raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Output(pub Vec<u8>);

impl Output {
    /// The output parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.0).ok()
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Output({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for Output {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.json() {
            Some(value) => value.serialize(serializer),
            None => String::from_utf8_lossy(&self.0).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        serde_json::to_vec(&value)
            .map(Output)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_serializes_as_json_when_it_is_json() {
        let json = serde_json::to_string(&Output(br#"{"a":1}"#.to_vec())).unwrap();
        assert_eq!(json, r#"{"a":1}"#);
        let text = serde_json::to_string(&Output(b"plain text\n".to_vec())).unwrap();
        assert_eq!(text, r#""plain text\n""#);
    }

    #[test]
    fn only_fatal_and_cancelled_are_final() {
        assert!(!FailureKind::FatalError.is_retryable());
        assert!(!FailureKind::Cancelled.is_retryable());
        assert!(FailureKind::OutOfFuel.is_retryable());
        assert!(FailureKind::ExitCode.is_retryable());
    }
}
