//! How the store encodes attempt reports: its own format, apart from the
//! API's, so that renaming a field of the API never needs a data
//! migration, and changing this format always comes with one (schema
//! version 2 introduced it).
//!
//! A stored report is JSON tagged by how the attempt ended:
//! `{"ran": {...engine report...}}`, `{"host_failed": {"message",
//! "retryable"}}` or `{"lost": {"owner", "message"}}`. The engine's report
//! is kept without its output, which is stored once, with the job.
//! Shared by every backend.

use super::{Error, Result};
use crate::limits::Limits;
use crate::report::{
    AttemptReport, Failure, FailureKind, Frame, FuelUsage, HttpRequest, Level, LogRecord,
    MemoryUsage, ModuleKind, Progress, Report, Status, StdioTail,
};
use serde::{Deserialize, Serialize};

/// Encodes `report` for storage.
pub(crate) fn encode(report: &AttemptReport) -> Result<String> {
    let stored = match report {
        AttemptReport::Ran(report) => Stored::Ran(Box::new(StoredReport::from(report.as_ref()))),
        AttemptReport::HostFailed { message, retryable } => Stored::HostFailed {
            message: message.clone(),
            retryable: *retryable,
        },
        AttemptReport::Lost { owner, message } => Stored::Lost {
            owner: owner.clone(),
            message: message.clone(),
        },
    };
    serde_json::to_string(&stored).map_err(|e| Error::Database(format!("encoding a report: {e}")))
}

/// Decodes a stored report.
pub(crate) fn decode(text: &str) -> Result<AttemptReport> {
    let stored: Stored = serde_json::from_str(text)
        .map_err(|e| Error::Database(format!("decoding a stored report: {e}")))?;
    Ok(match stored {
        Stored::Ran(report) => AttemptReport::Ran(Box::new(report.into_report()?)),
        Stored::HostFailed { message, retryable } => {
            AttemptReport::HostFailed { message, retryable }
        }
        Stored::Lost { owner, message } => AttemptReport::Lost { owner, message },
    })
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stored {
    Ran(Box<StoredReport>),
    HostFailed {
        message: String,
        retryable: bool,
    },
    Lost {
        owner: Option<String>,
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredReport {
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<StoredFailure>,
    module: String,
    kind: String,
    limits: StoredLimits,
    fuel: StoredFuel,
    memory: StoredMemory,
    duration_us: u64,
    logs: Vec<StoredLog>,
    logs_dropped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    progress: Option<StoredProgress>,
    stdout: StoredTail,
    stderr: StoredTail,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    requests: Vec<StoredRequest>,
    #[serde(default, skip_serializing_if = "is_zero")]
    requests_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
struct StoredRequest {
    method: String,
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    duration_us: u64,
    bytes_up: u64,
    bytes_down: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredFailure {
    kind: String,
    message: String,
    retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trap_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    backtrace: Vec<StoredFrame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_bytes: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct StoredFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<String>,
    function_index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct StoredLimits {
    fuel: u64,
    memory_bytes: u64,
    timeout_ms: u64,
    output_bytes: u64,
    log_records: u32,
    log_bytes: u64,
    stdio_tail_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredFuel {
    consumed: Option<u64>,
    limit: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredMemory {
    peak_bytes: u64,
    limit_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredLog {
    at_us: u64,
    level: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct StoredProgress {
    percent: u8,
    note: String,
}

#[derive(Serialize, Deserialize)]
struct StoredTail {
    total_bytes: u64,
    tail: String,
}

impl From<&Report> for StoredReport {
    fn from(r: &Report) -> Self {
        StoredReport {
            status: match r.status {
                Status::Success => "success",
                Status::Failure => "failure",
            }
            .to_owned(),
            failure: r.failure.as_ref().map(|f| StoredFailure {
                kind: f.kind.as_str().to_owned(),
                message: f.message.clone(),
                retryable: f.retryable,
                trap_code: f.trap_code.clone(),
                exit_code: f.exit_code,
                backtrace: f
                    .backtrace
                    .iter()
                    .map(|frame| StoredFrame {
                        function: frame.function.clone(),
                        function_index: frame.function_index,
                        module: frame.module.clone(),
                        offset: frame.offset,
                    })
                    .collect(),
                message_bytes: f.message_bytes,
            }),
            module: r.module.clone(),
            kind: r.kind.as_str().to_owned(),
            limits: StoredLimits {
                fuel: r.limits.fuel,
                memory_bytes: r.limits.memory_bytes,
                timeout_ms: r.limits.timeout_ms,
                output_bytes: r.limits.output_bytes,
                log_records: r.limits.log_records,
                log_bytes: r.limits.log_bytes,
                stdio_tail_bytes: r.limits.stdio_tail_bytes,
            },
            fuel: StoredFuel {
                consumed: r.fuel.consumed,
                limit: r.fuel.limit,
            },
            memory: StoredMemory {
                peak_bytes: r.memory.peak_bytes,
                limit_bytes: r.memory.limit_bytes,
            },
            duration_us: r.duration_us,
            logs: r
                .logs
                .iter()
                .map(|log| StoredLog {
                    at_us: log.at_us,
                    level: log.level.as_str().to_owned(),
                    message: log.message.clone(),
                })
                .collect(),
            logs_dropped: r.logs_dropped,
            progress: r.progress.as_ref().map(|p| StoredProgress {
                percent: p.percent,
                note: p.note.clone(),
            }),
            stdout: StoredTail {
                total_bytes: r.stdout.total_bytes,
                tail: r.stdout.tail.clone(),
            },
            stderr: StoredTail {
                total_bytes: r.stderr.total_bytes,
                tail: r.stderr.tail.clone(),
            },
            requests: r
                .requests
                .iter()
                .map(|q| StoredRequest {
                    method: q.method.clone(),
                    url: q.url.clone(),
                    status: q.status,
                    error: q.error.clone(),
                    duration_us: q.duration_us,
                    bytes_up: q.bytes_up,
                    bytes_down: q.bytes_down,
                })
                .collect(),
            requests_dropped: r.requests_dropped,
        }
    }
}

fn unknown(what: &str, name: &str) -> Error {
    Error::Database(format!("a stored report has an unknown {what} `{name}`"))
}

impl StoredReport {
    fn into_report(self) -> Result<Report> {
        let failure = match self.failure {
            None => None,
            Some(f) => Some(Failure {
                kind: FailureKind::parse(&f.kind)
                    .ok_or_else(|| unknown("failure kind", &f.kind))?,
                message: f.message,
                retryable: f.retryable,
                trap_code: f.trap_code,
                exit_code: f.exit_code,
                backtrace: f
                    .backtrace
                    .into_iter()
                    .map(|frame| Frame {
                        function: frame.function,
                        function_index: frame.function_index,
                        module: frame.module,
                        offset: frame.offset,
                    })
                    .collect(),
                message_bytes: f.message_bytes,
            }),
        };
        let logs = self
            .logs
            .into_iter()
            .map(|log| {
                Ok(LogRecord {
                    at_us: log.at_us,
                    level: Level::parse(&log.level).ok_or_else(|| unknown("level", &log.level))?,
                    message: log.message,
                })
            })
            .collect::<Result<_>>()?;
        let l = self.limits;
        Ok(Report {
            status: match self.status.as_str() {
                "success" => Status::Success,
                "failure" => Status::Failure,
                other => return Err(unknown("status", other)),
            },
            // Kept with the job (the output) or as jobs (the follow-ups).
            output: None,
            follow_ups: Vec::new(),
            requests: self
                .requests
                .into_iter()
                .map(|q| HttpRequest {
                    method: q.method,
                    url: q.url,
                    status: q.status,
                    error: q.error,
                    duration_us: q.duration_us,
                    bytes_up: q.bytes_up,
                    bytes_down: q.bytes_down,
                })
                .collect(),
            requests_dropped: self.requests_dropped,
            failure,
            module: self.module,
            kind: ModuleKind::parse(&self.kind).ok_or_else(|| unknown("kind", &self.kind))?,
            limits: Limits {
                fuel: l.fuel,
                memory_bytes: l.memory_bytes,
                timeout_ms: l.timeout_ms,
                output_bytes: l.output_bytes,
                log_records: l.log_records,
                log_bytes: l.log_bytes,
                stdio_tail_bytes: l.stdio_tail_bytes,
            },
            fuel: FuelUsage {
                consumed: self.fuel.consumed,
                limit: self.fuel.limit,
            },
            memory: MemoryUsage {
                peak_bytes: self.memory.peak_bytes,
                limit_bytes: self.memory.limit_bytes,
            },
            duration_us: self.duration_us,
            logs,
            logs_dropped: self.logs_dropped,
            progress: self.progress.map(|p| Progress {
                percent: p.percent,
                note: p.note,
            }),
            stdout: StdioTail {
                total_bytes: self.stdout.total_bytes,
                tail: self.stdout.tail,
            },
            stderr: StdioTail {
                total_bytes: self.stderr.total_bytes,
                tail: self.stderr.tail,
            },
        })
    }
}

// Per-minute history rows (both backends keep histograms as text).

/// A histogram as its non-zero buckets, `bucket:count` separated by spaces.
pub(crate) fn encode_histogram(histogram: &crate::history::Histogram) -> String {
    let pairs: Vec<String> = histogram
        .counts()
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| format!("{i}:{n}"))
        .collect();
    pairs.join(" ")
}

/// A histogram from [`encode_histogram`]'s text.
pub(crate) fn decode_histogram(text: &str) -> Result<crate::history::Histogram> {
    let mut histogram = crate::history::Histogram::default();
    for (bucket, count) in pairs(text)? {
        let i: usize = bucket.parse().map_err(|_| corrupt(text))?;
        histogram.set(i, count);
    }
    Ok(histogram)
}

/// Counts by name as `name:count` separated by spaces.
pub(crate) fn encode_map(map: &std::collections::BTreeMap<String, u64>) -> String {
    let pairs: Vec<String> = map.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    pairs.join(" ")
}

/// Counts by name from [`encode_map`]'s text.
pub(crate) fn decode_map(text: &str) -> Result<std::collections::BTreeMap<String, u64>> {
    Ok(pairs(text)?
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect())
}

fn pairs(text: &str) -> Result<Vec<(&str, u64)>> {
    text.split_whitespace()
        .map(|pair| {
            let (key, count) = pair.rsplit_once(':').ok_or_else(|| corrupt(text))?;
            Ok((key, count.parse().map_err(|_| corrupt(text))?))
        })
        .collect()
}

fn corrupt(text: &str) -> Error {
    Error::Database(format!("a history row does not decode: `{text}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;

    #[test]
    fn every_report_round_trips_without_its_output() {
        let mut ran = Report::empty_for_tests();
        ran.output = Some(Json::parse_str(r#"{"big": "output"}"#).unwrap());
        ran.failure = Some(Failure {
            trap_code: Some("unreachable".to_owned()),
            backtrace: vec![Frame {
                function: Some("f".to_owned()),
                function_index: 3,
                module: None,
                offset: Some(9),
            }],
            message_bytes: Some(123_456),
            ..Failure::new(FailureKind::Trap, "boom")
        });
        ran.status = Status::Failure;
        ran.logs.push(LogRecord {
            at_us: 5,
            level: Level::Warn,
            message: "careful".to_owned(),
        });
        ran.progress = Some(Progress {
            percent: 40,
            note: "n".to_owned(),
        });
        let text = encode(&AttemptReport::Ran(Box::new(ran.clone()))).unwrap();
        assert!(!text.contains("output\""), "{text}");
        assert!(text.starts_with(r#"{"ran":"#), "{text}");
        let mut expected = ran;
        expected.output = None;
        assert_eq!(
            decode(&text).unwrap(),
            AttemptReport::Ran(Box::new(expected))
        );
        for other in [
            AttemptReport::HostFailed {
                message: "compile timed out".to_owned(),
                retryable: true,
            },
            AttemptReport::Lost {
                owner: Some("host-a".to_owned()),
                message: "lost".to_owned(),
            },
        ] {
            assert_eq!(decode(&encode(&other).unwrap()).unwrap(), other);
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_not_a_panic() {
        let text = r#"{"ran": {"status": "maybe"}}"#;
        assert!(decode(text).is_err());
    }
}

/// Encodes a schedule's job template for storage: the fields it sets, as
/// tagged JSON of the store's own (the template is admitted again by the
/// policy each time it fires).
pub(crate) fn encode_template(spec: &crate::policy::JobSpec) -> Result<String> {
    let stored = StoredTemplate {
        queue: spec.queue.clone(),
        module: spec.module.clone(),
        input: serde_json::value::RawValue::from_string(spec.input.as_str().to_owned())
            .map_err(|e| Error::Database(format!("encoding a template's input: {e}")))?,
        priority: spec.priority,
        max_attempts: spec.max_attempts,
        backoff: spec.retry.backoff.map(|b| b.as_str().to_owned()),
        retry_base_ms: spec.retry.base_ms,
        retry_max_delay_ms: spec.retry.max_delay_ms,
        retry_jitter: spec.retry.jitter,
        fuel: spec.limits.fuel,
        memory_bytes: spec.limits.memory_bytes,
        timeout_ms: spec.limits.timeout_ms,
        output_bytes: spec.limits.output_bytes,
        log_records: spec.limits.log_records,
        log_bytes: spec.limits.log_bytes,
        stdio_tail_bytes: spec.limits.stdio_tail_bytes,
        unique_key: spec.unique.as_ref().map(|u| u.key.clone()),
        unique_window_ms: spec.unique.as_ref().and_then(|u| u.window_ms),
        grants: spec.grants.clone(),
    };
    serde_json::to_string(&stored).map_err(|e| Error::Database(format!("encoding a template: {e}")))
}

/// Decodes a stored job template.
pub(crate) fn decode_template(text: &str) -> Result<crate::policy::JobSpec> {
    use crate::policy::{Backoff, JobSpec, LimitsSpec, RetrySpec, UniqueSpec};
    let stored: StoredTemplate = serde_json::from_str(text)
        .map_err(|e| Error::Database(format!("decoding a stored template: {e}")))?;
    let backoff = match stored.backoff.as_deref() {
        None => None,
        Some(name) => Some(
            Backoff::parse(name)
                .ok_or_else(|| Error::Database(format!("unknown stored backoff {name}")))?,
        ),
    };
    Ok(JobSpec {
        queue: stored.queue,
        priority: stored.priority,
        max_attempts: stored.max_attempts,
        retry: RetrySpec {
            backoff,
            base_ms: stored.retry_base_ms,
            max_delay_ms: stored.retry_max_delay_ms,
            jitter: stored.retry_jitter,
        },
        limits: LimitsSpec {
            fuel: stored.fuel,
            memory_bytes: stored.memory_bytes,
            timeout_ms: stored.timeout_ms,
            output_bytes: stored.output_bytes,
            log_records: stored.log_records,
            log_bytes: stored.log_bytes,
            stdio_tail_bytes: stored.stdio_tail_bytes,
        },
        unique: stored.unique_key.map(|key| UniqueSpec {
            key,
            window_ms: stored.unique_window_ms,
        }),
        grants: stored.grants,
        ..JobSpec::new(
            stored.module,
            crate::json::Json::from_stored(stored.input.get().to_owned()),
        )
    })
}

#[derive(Serialize, Deserialize)]
struct StoredTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    module: String,
    input: Box<serde_json::value::RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_base_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_max_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_jitter: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_records: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stdio_tail_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique_window_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grants: Option<Vec<String>>,
}
