//! What one invocation of a job may use.
//!
//! [`Limits`] is plain data: the engine enforces it, the queue stores it per
//! job, and every report repeats the limits its attempt ran with. Each
//! default is a named constant with the reason for its value.

use serde::Deserialize;
use std::time::Duration;

/// Default fuel: 10^11 units, which agrees with the default timeout: on the
/// reference machine (`wasmjob exec`, one core, idle) call-heavy code burns
/// about 3.8 x 10^9 units a second and tight loops about 11 x 10^9, so a
/// CPU-bound job runs 9-26 s before either limit stops it, not a fraction
/// of a second of a 30 s timeout. A job's fuel is still its deterministic budget: set it
/// lower per job or per queue where a reproducible bound matters.
pub const DEFAULT_FUEL: u64 = 100_000_000_000;
/// Default memory: 64 MiB, summed over all linear memories of the instance,
/// large enough for typical data transforms and small enough that dozens of
/// concurrent jobs fit in RAM.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Default wall-clock timeout: 30 s, a backstop for time spent outside fuel
/// metering (host calls) and for a fuel budget set too generously.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default output cap: 1 MiB. Output is stored with the job, so it is kept
/// small; large results belong in external storage.
pub const DEFAULT_OUTPUT_BYTES: u64 = 1024 * 1024;
/// Default number of log records kept per invocation; more are counted and
/// dropped so a chatty guest cannot flood the host.
pub const DEFAULT_LOG_RECORDS: u32 = 1_000;
/// Default total bytes of log messages kept per invocation.
pub const DEFAULT_LOG_BYTES: u64 = 256 * 1024;
/// Default bytes kept from the end of stdout and of stderr for the report.
pub const DEFAULT_STDIO_TAIL_BYTES: u64 = 16 * 1024;
/// Bytes kept of a guest's own error message (its `job-error`): 4 KiB. A
/// failure message is a line for a person, stored with the attempt and as
/// the job's last error and shown in listings, so a guest must not be able
/// to make it as large as its memory; the report keeps the original length.
pub const ERROR_MESSAGE_BYTES: usize = 4 * 1024;

/// Limits for one invocation, with explicit units in the field names. In
/// the config file, the `[limits]` section (the defaults of a job).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel budget (roughly one unit per wasm instruction).
    pub fuel: u64,
    /// Maximum linear memory in bytes, summed over all memories.
    pub memory_bytes: u64,
    /// Wall-clock timeout in milliseconds.
    pub timeout_ms: u64,
    /// Maximum size of the job's output in bytes.
    pub output_bytes: u64,
    /// Maximum number of log records kept.
    pub log_records: u32,
    /// Maximum total bytes of log messages kept.
    pub log_bytes: u64,
    /// Bytes kept from the end of stdout and of stderr.
    pub stdio_tail_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            output_bytes: DEFAULT_OUTPUT_BYTES,
            log_records: DEFAULT_LOG_RECORDS,
            log_bytes: DEFAULT_LOG_BYTES,
            stdio_tail_bytes: DEFAULT_STDIO_TAIL_BYTES,
        }
    }
}

/// What one kept log record costs beside its message: its time, level
/// and the message's allocation header.
const LOG_RECORD_OVERHEAD_BYTES: u64 = 48;
/// What else a report keeps, at most: figures, a backtrace, the records
/// of outbound requests, follow-ups, a progress note.
const REPORT_OTHER_BYTES: u64 = 64 * 1024;

impl Limits {
    /// The most host memory a report of an attempt under these limits
    /// keeps: the output, the stdout and stderr tails, the log records,
    /// the error message and the rest. The host reserves this much before
    /// starting the attempt (see `queue.report_memory_bytes`).
    pub fn report_bytes(&self) -> u64 {
        self.output_bytes
            .saturating_add(self.stdio_tail_bytes.saturating_mul(2))
            .saturating_add(self.log_bytes)
            .saturating_add(u64::from(self.log_records).saturating_mul(LOG_RECORD_OVERHEAD_BYTES))
            .saturating_add(ERROR_MESSAGE_BYTES as u64)
            .saturating_add(REPORT_OTHER_BYTES)
    }

    /// The wall-clock timeout as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}
