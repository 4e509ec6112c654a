//! Admission: a [`JobSpec`] (what a client, a schedule or a workflow step
//! asks for, every field optional) becomes a [`NewJob`] (what the store
//! keeps, every field decided), or an [`Invalid`] naming the field.

use super::{Backoff, Bound, Policy, RetryPolicy, UNIQUE_KEY_MAX, validate_queue_name};
use crate::clock::Millis;
use crate::job::{DEFAULT_QUEUE, Dependency, ModuleRef, NewJob, PRIORITY_LOW, TraceParent, Unique};
use crate::json::Json;
use crate::limits::Limits;
use serde::Deserialize;
use std::collections::HashSet;

/// A job as requested: the module (hash or name), the input, and whatever
/// the requester wants to set; unset fields take the defaults of the job's
/// queue (the operator's `[queues.NAME]`), then the host's.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    /// The queue to wait in; [`DEFAULT_QUEUE`] when absent.
    pub queue: Option<String>,
    /// The module's hash or name (a name picks the newest module with it).
    pub module: String,
    /// The input.
    pub input: Json,
    /// 0 (critical) to 10 (low).
    pub priority: Option<u8>,
    /// Attempts allowed in all.
    pub max_attempts: Option<u32>,
    /// Retry policy fields; unset ones take the operator's default policy.
    pub retry: RetrySpec,
    /// Limits of the first attempt; unset ones take the operator's defaults.
    pub limits: LimitsSpec,
    /// Run no earlier than this many milliseconds after admission.
    pub delay_ms: Option<u64>,
    /// At most one job with this key in the queue at a time.
    pub unique: Option<UniqueSpec>,
    /// Its prerequisites: it waits, `blocked`, until each is resolved.
    pub depends_on: Vec<Dependency>,
    /// Its name in its workflow, when it is a workflow's node.
    pub node: Option<String>,
    /// The grants of its module it runs with: a subset (it may narrow
    /// what its module has, never widen it); all of them when absent.
    pub grants: Option<Vec<String>>,
    /// Run no earlier than this time. A time in the past means now: a job
    /// cannot have waited before it existed (aging counts from it). With
    /// `delay_ms` too, the later of the two holds.
    pub run_at: Option<Millis>,
    /// The trace its attempts join (a submission's `traceparent`).
    pub trace: Option<TraceParent>,
}

impl JobSpec {
    /// A job of `module` with `input`, everything else defaulted.
    pub fn new(module: impl Into<String>, input: Json) -> JobSpec {
        JobSpec {
            queue: None,
            module: module.into(),
            input,
            priority: None,
            max_attempts: None,
            retry: RetrySpec::default(),
            limits: LimitsSpec::default(),
            delay_ms: None,
            unique: None,
            depends_on: Vec::new(),
            node: None,
            grants: None,
            run_at: None,
            trace: None,
        }
    }
}

/// A requested unique key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UniqueSpec {
    /// The key: 1 to 256 bytes.
    pub key: String,
    /// How long after the job with the key finished it still counts; 0
    /// when absent (only while it is not final).
    pub window_ms: Option<u64>,
}

/// Requested retry policy fields (in the config file, a queue's `retry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    /// How the delay grows.
    pub backoff: Option<Backoff>,
    /// The base delay in milliseconds.
    pub base_ms: Option<u64>,
    /// The largest delay in milliseconds.
    pub max_delay_ms: Option<u64>,
    /// Spread delays over `[delay/2, delay]`.
    pub jitter: Option<bool>,
}

impl RetrySpec {
    pub(super) fn over(self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            backoff: self.backoff.unwrap_or(base.backoff),
            base_ms: self.base_ms.unwrap_or(base.base_ms),
            max_delay_ms: self.max_delay_ms.unwrap_or(base.max_delay_ms),
            jitter: self.jitter.unwrap_or(base.jitter),
        }
    }
}

/// Requested limits (in the config file, a queue's `limits`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// Fuel budget.
    pub fuel: Option<u64>,
    /// Memory, bytes, summed over all memories.
    pub memory_bytes: Option<u64>,
    /// Wall-clock timeout, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Output size, bytes.
    pub output_bytes: Option<u64>,
    /// Log records kept.
    pub log_records: Option<u32>,
    /// Bytes of log messages kept.
    pub log_bytes: Option<u64>,
    /// Bytes kept from the end of stdout and of stderr.
    pub stdio_tail_bytes: Option<u64>,
}

impl LimitsSpec {
    pub(super) fn over(self, base: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            output_bytes: self.output_bytes.unwrap_or(base.output_bytes),
            log_records: self.log_records.unwrap_or(base.log_records),
            log_bytes: self.log_bytes.unwrap_or(base.log_bytes),
            stdio_tail_bytes: self.stdio_tail_bytes.unwrap_or(base.stdio_tail_bytes),
        }
    }
}

/// A request the policy refuses: the field (as the API names it, e.g.
/// `limits.fuel`, prefixed with `jobs[3].` in a batch) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field, as the API names it.
    pub field: String,
    /// What is wrong with it, naming the allowed range.
    pub message: String,
}

impl Invalid {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same refusal for a field of an object: `job.priority`.
    pub fn under(self, object: &str) -> Invalid {
        Invalid {
            field: format!("{object}.{}", self.field),
            ..self
        }
    }

    /// The same refusal for an item of a list: `jobs[3].priority`.
    pub fn within(self, list: &str, index: usize) -> Invalid {
        Invalid {
            field: format!("{list}[{index}].{}", self.field),
            ..self
        }
    }
}

impl Policy {
    /// Turns `spec`, whose module resolved to `module` (its hash, and the
    /// name to show for it), into the job to store: the operator's
    /// defaults applied, every field checked against its bounds.
    pub fn admit(
        &self,
        spec: JobSpec,
        module: ModuleRef,
        module_grants: &[String],
        now: Millis,
    ) -> Result<NewJob, Invalid> {
        let depth = spec.input.depth();
        if depth > crate::json::MAX_DEPTH {
            return Err(Invalid::new(
                "input",
                format!(
                    "nests {depth} levels of arrays and objects deep; at most {} are accepted",
                    crate::json::MAX_DEPTH
                ),
            ));
        }
        let grants = narrow(spec.grants, module_grants)?;
        let queue = spec.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        validate_queue_name(&queue)?;
        let defaults = self.defaults_for(&queue);
        let priority = spec.priority.unwrap_or(defaults.priority);
        if priority > PRIORITY_LOW {
            return Err(Invalid::new(
                "priority",
                format!("{priority} is out of range: use 0 (critical) to {PRIORITY_LOW} (low)"),
            ));
        }
        let max_attempts = spec.max_attempts.unwrap_or(defaults.max_attempts);
        let retry = spec.retry.over(defaults.retry);
        let limits = spec.limits.over(defaults.limits);
        let delay_ms = spec.delay_ms.unwrap_or(0);
        let unique = spec
            .unique
            .map(|unique| {
                if unique.key.is_empty() || unique.key.len() > UNIQUE_KEY_MAX {
                    return Err(Invalid::new(
                        "unique.key",
                        format!("must be 1 to {UNIQUE_KEY_MAX} bytes long"),
                    ));
                }
                Ok(Unique {
                    key: unique.key,
                    window_ms: unique.window_ms.unwrap_or(0),
                })
            })
            .transpose()?;
        if unique.is_some() && spec.node.is_some() {
            return Err(Invalid::new(
                "unique",
                "a workflow's job cannot have a unique key",
            ));
        }
        check_dependencies(&spec.depends_on)?;
        let values = Values {
            limits: &limits,
            max_attempts,
            retry: &retry,
            delay_ms,
            unique_window_ms: unique.as_ref().map_or(0, |u| u.window_ms),
        };
        for bound in self.bounds() {
            bound.check(values.get(bound.field))?;
        }
        Ok(NewJob {
            queue,
            module,
            input: spec.input,
            priority,
            max_attempts,
            retry,
            limits,
            unique,
            depends_on: spec.depends_on,
            node: spec.node,
            grants,
            trace: spec.trace,
            // Both are "not before": the later one holds.
            run_at: now
                .saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX))
                .max(spec.run_at.unwrap_or(now)),
        })
    }
}

/// Most prerequisites one job may have (a fan-in of this many).
pub const DEPENDENCIES_MAX: usize = 100_000;
/// The longest name of a dependency.
pub const DEPENDENCY_NAME_MAX: usize = 128;

/// A job's prerequisites: at most [`DEPENDENCIES_MAX`], each named (1 to
/// [`DEPENDENCY_NAME_MAX`] bytes) and each name and job once.
fn check_dependencies(depends_on: &[Dependency]) -> Result<(), Invalid> {
    if depends_on.len() > DEPENDENCIES_MAX {
        return Err(Invalid::new(
            "depends_on",
            format!(
                "{} prerequisites is more than the {DEPENDENCIES_MAX} a job may have",
                depends_on.len()
            ),
        ));
    }
    let mut names = HashSet::with_capacity(depends_on.len());
    let mut jobs = HashSet::with_capacity(depends_on.len());
    for dependency in depends_on {
        if dependency.name.is_empty() || dependency.name.len() > DEPENDENCY_NAME_MAX {
            return Err(Invalid::new(
                "depends_on",
                format!(
                    "a dependency's name must be 1 to {DEPENDENCY_NAME_MAX} bytes long, not `{}`",
                    dependency.name
                ),
            ));
        }
        if !names.insert(dependency.name.as_str()) {
            return Err(Invalid::new(
                "depends_on",
                format!("two dependencies are named `{}`", dependency.name),
            ));
        }
        if !jobs.insert(dependency.on) {
            return Err(Invalid::new(
                "depends_on",
                format!(
                    "`{}` names a job that another dependency names too",
                    dependency.name
                ),
            ));
        }
    }
    Ok(())
}

/// The values of a job that have bounds, by the bounds' field names.
pub(super) struct Values<'a> {
    pub limits: &'a Limits,
    pub max_attempts: u32,
    pub retry: &'a RetryPolicy,
    pub delay_ms: u64,
    pub unique_window_ms: u64,
}

impl Values<'_> {
    pub(super) fn get(&self, field: &str) -> u64 {
        match field {
            "limits.fuel" => self.limits.fuel,
            "limits.memory_bytes" => self.limits.memory_bytes,
            "limits.timeout_ms" => self.limits.timeout_ms,
            "limits.output_bytes" => self.limits.output_bytes,
            "limits.log_records" => u64::from(self.limits.log_records),
            "limits.log_bytes" => self.limits.log_bytes,
            "limits.stdio_tail_bytes" => self.limits.stdio_tail_bytes,
            "max_attempts" => u64::from(self.max_attempts),
            "retry.base_ms" => self.retry.base_ms,
            "retry.max_delay_ms" => self.retry.max_delay_ms,
            "delay_ms" => self.delay_ms,
            "unique.window_ms" => self.unique_window_ms,
            other => unreachable!("no bounded field {other}"),
        }
    }
}

impl Bound {
    /// Checks `value`, naming the field and the allowed range.
    pub fn check(&self, value: u64) -> Result<(), Invalid> {
        if value < self.min {
            return Err(Invalid::new(
                self.field,
                format!(
                    "{value} is below the minimum of {} ({})",
                    self.min, self.why_min
                ),
            ));
        }
        if value > self.max {
            return Err(Invalid::new(
                self.field,
                format!("{value} is above this host's ceiling of {}", self.max),
            ));
        }
        Ok(())
    }
}

/// A job's grants: what it asked for, each one its module's (a job may
/// narrow its module's grants, never widen them); `None`: all of them.
fn narrow(asked: Option<Vec<String>>, module: &[String]) -> Result<Option<Vec<String>>, Invalid> {
    let Some(mut asked) = asked else {
        return Ok(None);
    };
    if let Some(extra) = asked.iter().find(|g| !module.contains(g)) {
        let has = if module.is_empty() {
            "none".to_owned()
        } else {
            module.join(", ")
        };
        return Err(Invalid::new(
            "grants",
            format!(
                "`{extra}` is not a grant of the job's module (it has {has}): a job may narrow \
                 its module's grants, never widen them"
            ),
        ));
    }
    asked.sort();
    asked.dedup();
    Ok(Some(asked))
}
