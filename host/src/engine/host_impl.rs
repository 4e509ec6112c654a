//! The job world's `host` interface: bounded logging and progress, the
//! job's prerequisites, and follow-up jobs held until the attempt ends.

use super::DependencyState;
use super::bindings::{self, Level as WitLevel};
use super::state::ComponentState;
use crate::json::Json;
use crate::report::{FollowUp, Level, LogRecord, Progress};
use std::time::Instant;

/// Longest log message or progress note kept, in bytes; longer ones are
/// truncated so a single call cannot use the whole log budget.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;

/// The log records of one invocation, bounded in count and bytes.
#[derive(Debug)]
pub struct LogBook {
    max_records: u32,
    max_bytes: u64,
    bytes: u64,
    started: Instant,
    records: Vec<LogRecord>,
    dropped: u64,
}

impl LogBook {
    pub fn new(max_records: u32, max_bytes: u64, started: Instant) -> Self {
        LogBook {
            max_records,
            max_bytes,
            bytes: 0,
            started,
            records: Vec::new(),
            dropped: 0,
        }
    }

    /// Keeps the record if the bounds allow, else counts it as dropped.
    pub fn push(&mut self, level: Level, message: String) {
        let message = truncate(message, MAX_MESSAGE_BYTES);
        let size = message.len() as u64;
        if self.records.len() as u64 >= u64::from(self.max_records)
            || self.bytes + size > self.max_bytes
        {
            self.dropped += 1;
            return;
        }
        self.bytes += size;
        self.records.push(LogRecord {
            at_us: self.started.elapsed().as_micros() as u64,
            level,
            message,
        });
    }

    /// The records kept and the number dropped.
    pub fn into_parts(self) -> (Vec<LogRecord>, u64) {
        (self.records, self.dropped)
    }
}

/// The longest follow-up name, in bytes (a workflow node's).
const FOLLOW_UP_NAME_MAX: usize = 64;

/// The follow-up jobs of one invocation, bounded in count and in input
/// bytes (together).
#[derive(Debug)]
pub struct FollowUps {
    max_count: u32,
    max_bytes: u64,
    bytes: u64,
    list: Vec<FollowUp>,
    names: Vec<Option<String>>,
}

impl FollowUps {
    pub fn new(max_count: u32, max_bytes: u64) -> Self {
        FollowUps {
            max_count,
            max_bytes,
            bytes: 0,
            list: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Keeps a follow-up, or says why not; what is refused leaves no trace.
    pub fn submit(&mut self, job: bindings::FollowUp) -> Result<u32, String> {
        let index = self.list.len();
        if index >= self.max_count as usize {
            return Err(format!(
                "an attempt may submit at most {} follow-up jobs",
                self.max_count
            ));
        }
        let size = job.input.len() as u64;
        if self.bytes.saturating_add(size) > self.max_bytes {
            return Err(format!(
                "the follow-ups' inputs would take {} bytes, above the attempt's output limit of \
                 {} bytes",
                self.bytes.saturating_add(size),
                self.max_bytes
            ));
        }
        if job.module.is_empty() {
            return Err("module: a hash or a name is needed".to_owned());
        }
        let input = std::str::from_utf8(&job.input)
            .ok()
            .and_then(|text| Json::parse_str(text).ok())
            .ok_or_else(|| "input: not JSON text".to_owned())?;
        if let Some(name) = &job.name {
            check_name(name)?;
            if self.names.iter().flatten().any(|n| n == name) {
                return Err(format!("name: `{name}` names an earlier follow-up already"));
            }
        }
        let mut after = Vec::with_capacity(job.after.len());
        for name in &job.after {
            let position = self
                .names
                .iter()
                .position(|n| n.as_deref() == Some(name))
                .ok_or_else(|| format!("after: no earlier follow-up is named `{name}`"))?;
            if after.contains(&position) {
                return Err(format!("after: `{name}` is named twice"));
            }
            after.push(position);
        }
        self.bytes += size;
        self.names.push(job.name.clone());
        self.list.push(FollowUp {
            module: job.module,
            input,
            name: job.name,
            queue: job.queue,
            priority: job.priority,
            max_attempts: job.max_attempts,
            delay_ms: job.delay_ms,
            after,
        });
        Ok(index as u32)
    }

    /// The follow-ups kept, in order.
    pub fn into_list(self) -> Vec<FollowUp> {
        self.list
    }
}

/// A follow-up's name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= FOLLOW_UP_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name: `{name}` is not a name: use 1-{FOLLOW_UP_NAME_MAX} characters from \
             A-Z a-z 0-9 _ . -"
        ))
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl bindings::wasmjob::job::types::Host for ComponentState {}

impl bindings::JobHost for ComponentState {
    fn log(&mut self, level: WitLevel, message: String) {
        let level = match level {
            WitLevel::Trace => Level::Trace,
            WitLevel::Debug => Level::Debug,
            WitLevel::Info => Level::Info,
            WitLevel::Warn => Level::Warn,
            WitLevel::Error => Level::Error,
        };
        self.run.logs.push(level, message);
    }

    fn dependencies(&mut self) -> Vec<bindings::Dependency> {
        self.run
            .dependencies
            .iter()
            .map(|dependency| bindings::Dependency {
                name: dependency.name.clone(),
                job: u64::try_from(dependency.job).unwrap_or_default(),
                state: match dependency.state {
                    DependencyState::Completed => bindings::DependencyState::Completed,
                    DependencyState::Failed => bindings::DependencyState::Failed,
                    DependencyState::Cancelled => bindings::DependencyState::Cancelled,
                },
                output: dependency.output.clone(),
                error: dependency.error.clone(),
            })
            .collect()
    }

    fn secret(&mut self, name: String) -> Option<String> {
        self.run.capabilities.secrets.get(&name).cloned()
    }

    fn config(&mut self, name: String) -> Option<String> {
        self.run.capabilities.config.get(&name).cloned()
    }

    fn submit(&mut self, job: bindings::FollowUp) -> Result<u32, String> {
        self.run.follow_ups.submit(job)
    }

    fn progress(&mut self, percent: u8, note: String) {
        let progress = Progress {
            percent: percent.min(100),
            note: truncate(note, MAX_MESSAGE_BYTES),
        };
        if let Some(sink) = &self.run.progress_sink {
            sink(&progress);
        }
        self.run.progress = Some(progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_past_the_record_bound() {
        let mut book = LogBook::new(2, 1_000, Instant::now());
        for i in 0..5 {
            book.push(Level::Info, format!("line {i}"));
        }
        let (records, dropped) = book.into_parts();
        assert_eq!(records.len(), 2);
        assert_eq!(dropped, 3);
    }

    #[test]
    fn drops_past_the_byte_bound_and_truncates_long_messages() {
        let mut book = LogBook::new(100, 10, Instant::now());
        book.push(Level::Info, "12345678".to_owned());
        book.push(Level::Info, "abc".to_owned());
        let (records, dropped) = book.into_parts();
        assert_eq!(records.len(), 1);
        assert_eq!(dropped, 1);
        assert_eq!(truncate("é".repeat(10), 5).len(), 4);
    }
}
