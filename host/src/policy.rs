//! Job policy: the one owner of the rules that decide a job's fate.
//!
//! - **Admission** ([`Policy::admit`]): a [`JobSpec`] becomes a
//!   [`NewJob`](crate::job::NewJob) with the operator's [`Defaults`]
//!   applied and every client-settable field checked against its
//!   [`Bound`]s: a floor where a smaller value could only fail, and the
//!   operator's [`Ceilings`]. Asking for more than a ceiling is refused
//!   naming the field and the ceiling, never silently clamped. Every path
//!   that creates jobs (the API, the CLI through it, and later schedules,
//!   workflow steps and jobs that submit jobs) goes through
//!   [`Queue::submit`](crate::queue::Queue::submit), which calls this.
//! - **Decisions** ([`decide`]): how an attempt ended becomes the job's
//!   next state: worker results, lost attempts (rescued leases), module
//!   load failures, interruptions and cancels all go through it.
//! - **Retries** ([`RetryPolicy`]) and **escalation** ([`Escalation`]):
//!   the arithmetic both of them use.
//!
//! Plain data and pure functions: no I/O, no clock (time is a parameter).

mod admit;
mod decide;
mod escalation;
mod retry;
mod workflow;

pub use admit::{Invalid, JobSpec, LimitsSpec, RetrySpec, UniqueSpec};
pub use decide::{Decision, Ending, decide};
pub use escalation::Escalation;
pub use retry::{Backoff, DEFAULT_RETRY_BASE_MS, DEFAULT_RETRY_MAX_DELAY_MS, RetryPolicy};
pub use workflow::{
    NodeEdge, NodeSpec, Plan, WORKFLOW_JOBS_MAX, WORKFLOW_NAME_MAX, WorkflowSpec, plan,
};

use crate::clock::Millis;
use crate::job::{DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, Job};
use crate::limits::Limits;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a job gets for each field it does not set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defaults {
    /// Limits of the first attempt.
    pub limits: Limits,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Priority, 0 (critical) to 10 (low).
    pub priority: u8,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            priority: DEFAULT_PRIORITY,
        }
    }
}

/// A queue's own defaults over the host's: in the config file, the job
/// fields of a `[queues.NAME]` section. Every field left out is the host's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueDefaults {
    /// Priority of its jobs, 0 (critical) to 10 (low).
    pub priority: Option<u8>,
    /// Attempts in all.
    pub max_attempts: Option<u32>,
    /// Limits of the first attempt.
    pub limits: LimitsSpec,
    /// Retry policy.
    pub retry: RetrySpec,
}

impl QueueDefaults {
    /// These defaults over `host`'s.
    fn over(&self, host: &Defaults) -> Defaults {
        Defaults {
            limits: self.limits.over(host.limits),
            retry: self.retry.over(host.retry),
            max_attempts: self.max_attempts.unwrap_or(host.max_attempts),
            priority: self.priority.unwrap_or(host.priority),
        }
    }
}

/// The longest queue name.
pub const QUEUE_NAME_MAX: usize = 64;

/// What a queue name looks like (ECMA-262, as the OpenAPI document states
/// it): 1 to [`QUEUE_NAME_MAX`] characters from A-Z a-z 0-9 `_ . -`.
pub fn queue_name_pattern() -> String {
    format!("^[A-Za-z0-9_.-]{{1,{QUEUE_NAME_MAX}}}$")
}

/// Checks a queue name (see [`queue_name_pattern`]).
pub fn validate_queue_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= QUEUE_NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "queue",
            format!(
                "invalid queue name `{name}`: use 1-{QUEUE_NAME_MAX} characters from \
                 A-Z a-z 0-9 _ . -"
            ),
        ))
    }
}

/// Default fuel ceiling: 10^13 units, the order of the timeout ceiling's
/// hour at the rates of `limits::DEFAULT_FUEL`; a job needing more belongs
/// outside a job queue.
pub const CEILING_FUEL: u64 = 10_000_000_000_000;
/// Default memory ceiling: 1 GiB. It is also the size of a sandbox slot,
/// so it is reserved (as address space) once per concurrent job.
pub const CEILING_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// Default timeout ceiling: one hour; a job holds a worker slot that long.
pub const CEILING_TIMEOUT_MS: u64 = 3_600_000;
/// Default output ceiling: 16 MiB. Outputs are stored with the job and
/// held in host memory until recorded.
pub const CEILING_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;
/// Default ceiling on log records kept per attempt.
pub const CEILING_LOG_RECORDS: u64 = 100_000;
/// Default ceiling on log bytes kept per attempt: 16 MiB.
pub const CEILING_LOG_BYTES: u64 = 16 * 1024 * 1024;
/// Default ceiling on the stdout and stderr tails kept per attempt: 1 MiB.
pub const CEILING_STDIO_TAIL_BYTES: u64 = 1024 * 1024;
/// Default ceiling on attempts: 100. Every attempt keeps its report.
pub const CEILING_MAX_ATTEMPTS: u64 = 100;
/// A requeue gives a job a fresh attempt budget, but every attempt keeps
/// its report: a job may have at most this many times
/// `ceilings.max_attempts` attempts in its life (see
/// [`Ceilings::attempts_per_job`]); past that, submit it again.
pub const REQUEUE_ROUNDS: u64 = 10;
/// Default ceiling on a retry's base delay: one day.
pub const CEILING_RETRY_BASE_MS: u64 = 86_400_000;
/// Default ceiling on a retry's largest delay: one week.
pub const CEILING_RETRY_MAX_DELAY_MS: u64 = 7 * 86_400_000;
/// Default ceiling on a submission's delay: 366 days.
pub const CEILING_DELAY_MS: u64 = 366 * 86_400_000;
/// Default ceiling on a unique key's window after its job finished: 30
/// days.
pub const CEILING_UNIQUE_WINDOW_MS: u64 = 30 * 86_400_000;
/// The longest unique key.
pub const UNIQUE_KEY_MAX: usize = 256;

/// The operator's ceilings on what a job may ask for: the `[ceilings]`
/// section of the config. A request above one is refused (HTTP 400 naming
/// the field and the ceiling). The defaults and the escalation ceilings
/// must lie within them (checked at start-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ceilings {
    /// Largest fuel budget.
    pub fuel: u64,
    /// Largest memory limit, bytes; also the engine's sandbox slot size.
    pub memory_bytes: u64,
    /// Largest timeout, ms.
    pub timeout_ms: u64,
    /// Largest output, bytes.
    pub output_bytes: u64,
    /// Most log records kept.
    pub log_records: u64,
    /// Most log bytes kept.
    pub log_bytes: u64,
    /// Largest stdout/stderr tail, bytes.
    pub stdio_tail_bytes: u64,
    /// Most attempts.
    pub max_attempts: u64,
    /// Largest retry base delay, ms.
    pub retry_base_ms: u64,
    /// Largest retry delay, ms.
    pub retry_max_delay_ms: u64,
    /// Largest delay of a submission, ms.
    pub delay_ms: u64,
    /// Longest a unique job's key counts after it finished, ms.
    pub unique_window_ms: u64,
}

impl Default for Ceilings {
    fn default() -> Self {
        Ceilings {
            fuel: CEILING_FUEL,
            memory_bytes: CEILING_MEMORY_BYTES,
            timeout_ms: CEILING_TIMEOUT_MS,
            output_bytes: CEILING_OUTPUT_BYTES,
            log_records: CEILING_LOG_RECORDS,
            log_bytes: CEILING_LOG_BYTES,
            stdio_tail_bytes: CEILING_STDIO_TAIL_BYTES,
            max_attempts: CEILING_MAX_ATTEMPTS,
            retry_base_ms: CEILING_RETRY_BASE_MS,
            retry_max_delay_ms: CEILING_RETRY_MAX_DELAY_MS,
            delay_ms: CEILING_DELAY_MS,
            unique_window_ms: CEILING_UNIQUE_WINDOW_MS,
        }
    }
}

impl Ceilings {
    /// The most attempts one job may have in its life, requeues included:
    /// [`REQUEUE_ROUNDS`] times `max_attempts`.
    pub fn attempts_per_job(&self) -> u64 {
        self.max_attempts.saturating_mul(REQUEUE_ROUNDS)
    }

    /// The largest limits a job may have: every limit at its ceiling.
    pub fn largest_limits(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory_bytes: self.memory_bytes,
            timeout_ms: self.timeout_ms,
            output_bytes: self.output_bytes,
            log_records: u32::try_from(self.log_records).unwrap_or(u32::MAX),
            log_bytes: self.log_bytes,
            stdio_tail_bytes: self.stdio_tail_bytes,
        }
    }
}

/// The smallest memory limit: one 64 KiB wasm page.
pub const MIN_MEMORY_BYTES: u64 = 64 * 1024;

/// The range allowed for one client-settable field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The field as the API names it (`limits.fuel`).
    pub field: &'static str,
    /// The smallest value allowed.
    pub min: u64,
    /// Why the floor is where it is (shown when a value is below it).
    pub why_min: &'static str,
    /// The largest value allowed: the operator's ceiling.
    pub max: u64,
}

/// The operator's rules for jobs. Built once at start-up by
/// [`Policy::new`], which refuses an inconsistent configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    defaults: Defaults,
    /// Queues with defaults of their own, resolved over the host's.
    queues: BTreeMap<String, Defaults>,
    ceilings: Ceilings,
    escalation: Escalation,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(
            Defaults::default(),
            Ceilings::default(),
            Escalation::default(),
        )
        .expect("the built-in policy is consistent")
    }
}

impl Policy {
    /// A policy from its parts, or every problem with them: a default
    /// outside its bounds, an escalation ceiling above the matching
    /// ceiling, a ceiling the store cannot hold.
    pub fn new(
        defaults: Defaults,
        ceilings: Ceilings,
        escalation: Escalation,
    ) -> Result<Policy, Vec<String>> {
        let policy = Policy {
            defaults,
            queues: BTreeMap::new(),
            ceilings,
            escalation,
        };
        let mut problems = Vec::new();
        // Stored as signed 64-bit integers.
        for bound in policy.bounds() {
            if bound.max > i64::MAX as u64 {
                problems.push(format!(
                    "ceilings: {} ({}) is above the largest value the store keeps ({})",
                    bound.field,
                    bound.max,
                    i64::MAX
                ));
            }
        }
        let values = admit::Values {
            limits: &defaults.limits,
            max_attempts: defaults.max_attempts,
            retry: &defaults.retry,
            delay_ms: 0,
            unique_window_ms: 0,
        };
        for bound in policy.bounds() {
            if let Err(invalid) = bound.check(values.get(bound.field)) {
                problems.push(format!("default {invalid}"));
            }
        }
        if defaults.priority > crate::job::PRIORITY_LOW {
            problems.push(format!(
                "default priority {} is above 10",
                defaults.priority
            ));
        }
        for (name, value, ceiling, field) in [
            ("max_fuel", escalation.max_fuel, ceilings.fuel, "fuel"),
            (
                "max_memory_bytes",
                escalation.max_memory_bytes,
                ceilings.memory_bytes,
                "memory_bytes",
            ),
            (
                "max_timeout_ms",
                escalation.max_timeout_ms,
                ceilings.timeout_ms,
                "timeout_ms",
            ),
        ] {
            if value > ceiling {
                problems.push(format!(
                    "escalation.{name} ({value}) is above ceilings.{field} ({ceiling})"
                ));
            }
        }
        if escalation.factor.is_nan() || escalation.factor < 1.0 {
            problems.push("escalation.factor must be at least 1.0".to_owned());
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }

    /// The same policy with queues that have defaults of their own
    /// (`[queues.NAME]`), or every problem with them.
    pub fn with_queues(
        mut self,
        queues: impl IntoIterator<Item = (String, QueueDefaults)>,
    ) -> Result<Policy, Vec<String>> {
        let mut problems = Vec::new();
        for (name, own) in queues {
            if let Err(invalid) = validate_queue_name(&name) {
                problems.push(format!("queues: {}", invalid.message));
                continue;
            }
            let defaults = own.over(&self.defaults);
            problems.extend(self.check_defaults(&format!("queues.{name}:"), &defaults));
            self.queues.insert(name, defaults);
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }

    /// Problems of `defaults` against the bounds, each prefixed with
    /// `what`.
    fn check_defaults(&self, what: &str, defaults: &Defaults) -> Vec<String> {
        let values = admit::Values {
            limits: &defaults.limits,
            max_attempts: defaults.max_attempts,
            retry: &defaults.retry,
            delay_ms: 0,
            unique_window_ms: 0,
        };
        let mut problems: Vec<String> = self
            .bounds()
            .iter()
            .filter_map(|bound| bound.check(values.get(bound.field)).err())
            .map(|invalid| format!("{what} {invalid}"))
            .collect();
        if defaults.priority > crate::job::PRIORITY_LOW {
            problems.push(format!("{what} priority {} is above 10", defaults.priority));
        }
        problems
    }

    /// Defaults of fields a job does not set, for jobs of queues without
    /// defaults of their own.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// Defaults of fields a job of `queue` does not set.
    pub fn defaults_for(&self, queue: &str) -> &Defaults {
        self.queues.get(queue).unwrap_or(&self.defaults)
    }

    /// The queues with defaults of their own.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.queues.keys().map(String::as_str)
    }

    /// The operator's ceilings.
    pub fn ceilings(&self) -> &Ceilings {
        &self.ceilings
    }

    /// How limits grow after an attempt hits one.
    pub fn escalation(&self) -> &Escalation {
        &self.escalation
    }

    /// The allowed range of every bounded field a job can set. The API
    /// document states the same ranges.
    pub fn bounds(&self) -> [Bound; 12] {
        let c = &self.ceilings;
        let bound = |field, min, why_min, max| Bound {
            field,
            min,
            why_min,
            max,
        };
        let any = "";
        [
            bound(
                "limits.fuel",
                1,
                "a job without fuel cannot run one instruction",
                c.fuel,
            ),
            bound(
                "limits.memory_bytes",
                MIN_MEMORY_BYTES,
                "one 64 KiB wasm page",
                c.memory_bytes,
            ),
            bound(
                "limits.timeout_ms",
                1,
                "a job needs some time",
                c.timeout_ms,
            ),
            bound("limits.output_bytes", 0, any, c.output_bytes),
            bound("limits.log_records", 0, any, c.log_records),
            bound("limits.log_bytes", 0, any, c.log_bytes),
            bound("limits.stdio_tail_bytes", 0, any, c.stdio_tail_bytes),
            bound("max_attempts", 1, "a job needs one attempt", c.max_attempts),
            bound(
                "retry.base_ms",
                1,
                "a backoff needs a base",
                c.retry_base_ms,
            ),
            bound("retry.max_delay_ms", 0, any, c.retry_max_delay_ms),
            bound("delay_ms", 0, any, c.delay_ms),
            bound("unique.window_ms", 0, any, c.unique_window_ms),
        ]
    }

    /// [`decide`] with this policy's escalation and a random jitter.
    pub fn decide(&self, job: &Job, ending: Ending<'_>, now: Millis) -> Decision {
        decide(job, ending, now, &self.escalation, fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ModuleRef;
    use crate::json::Json;

    const NOW: Millis = 1_700_000_000_000;

    fn module() -> ModuleRef {
        ModuleRef {
            hash: "abc".to_owned(),
            name: Some("hello".to_owned()),
        }
    }

    fn admit(policy: &Policy, spec: JobSpec) -> Result<crate::job::NewJob, Invalid> {
        policy.admit(spec, module(), &[], NOW)
    }

    fn spec() -> JobSpec {
        JobSpec::new("hello", Json::null())
    }

    #[test]
    fn unset_fields_take_the_operators_defaults() {
        let defaults = Defaults {
            limits: Limits {
                fuel: 123,
                ..Limits::default()
            },
            retry: RetryPolicy {
                backoff: Backoff::Linear,
                base_ms: 50,
                max_delay_ms: 500,
                jitter: true,
            },
            max_attempts: 7,
            priority: 4,
        };
        let policy = Policy::new(defaults, Ceilings::default(), Escalation::default()).unwrap();
        let mut spec = spec();
        spec.retry.base_ms = Some(100);
        spec.limits.timeout_ms = Some(9);
        spec.delay_ms = Some(1_000);
        let job = admit(&policy, spec).unwrap();
        assert_eq!((job.priority, job.max_attempts), (4, 7));
        assert_eq!((job.limits.fuel, job.limits.timeout_ms), (123, 9));
        assert_eq!(
            job.retry,
            RetryPolicy {
                base_ms: 100,
                ..defaults.retry
            },
            "a partial policy keeps the operator's other fields"
        );
        assert_eq!(job.run_at, NOW + 1_000);
        assert_eq!(job.module, module());
    }

    #[test]
    fn every_ceiling_is_enforced_naming_the_field_and_the_ceiling() {
        let ceilings = Ceilings {
            fuel: 200_000_000_000,
            memory_bytes: 128 << 20,
            timeout_ms: 60_000,
            output_bytes: 2 << 20,
            log_records: 2_000,
            log_bytes: 1 << 20,
            stdio_tail_bytes: 32 << 10,
            max_attempts: 5,
            retry_base_ms: 10_000,
            retry_max_delay_ms: 3_600_000,
            delay_ms: 86_400_000,
            unique_window_ms: 60_000,
        };
        let escalation = Escalation {
            max_fuel: 200_000_000_000,
            max_memory_bytes: 128 << 20,
            max_timeout_ms: 60_000,
            ..Escalation::default()
        };
        let policy = Policy::new(Defaults::default(), ceilings, escalation).unwrap();
        type Set = fn(&mut JobSpec, u64);
        let cases: [(&str, u64, Set); 12] = [
            ("limits.fuel", ceilings.fuel, |s, v| s.limits.fuel = Some(v)),
            ("limits.memory_bytes", ceilings.memory_bytes, |s, v| {
                s.limits.memory_bytes = Some(v)
            }),
            ("limits.timeout_ms", ceilings.timeout_ms, |s, v| {
                s.limits.timeout_ms = Some(v)
            }),
            ("limits.output_bytes", ceilings.output_bytes, |s, v| {
                s.limits.output_bytes = Some(v)
            }),
            ("limits.log_records", ceilings.log_records, |s, v| {
                s.limits.log_records = Some(v as u32)
            }),
            ("limits.log_bytes", ceilings.log_bytes, |s, v| {
                s.limits.log_bytes = Some(v)
            }),
            (
                "limits.stdio_tail_bytes",
                ceilings.stdio_tail_bytes,
                |s, v| s.limits.stdio_tail_bytes = Some(v),
            ),
            ("max_attempts", ceilings.max_attempts, |s, v| {
                s.max_attempts = Some(v as u32)
            }),
            ("retry.base_ms", ceilings.retry_base_ms, |s, v| {
                s.retry.base_ms = Some(v);
                s.retry.max_delay_ms = Some(v);
            }),
            ("retry.max_delay_ms", ceilings.retry_max_delay_ms, |s, v| {
                s.retry.max_delay_ms = Some(v)
            }),
            ("delay_ms", ceilings.delay_ms, |s, v| s.delay_ms = Some(v)),
            ("unique.window_ms", ceilings.unique_window_ms, |s, v| {
                s.unique = Some(UniqueSpec {
                    key: "k".to_owned(),
                    window_ms: Some(v),
                })
            }),
        ];
        for (field, ceiling, set) in cases {
            let mut at = spec();
            set(&mut at, ceiling);
            assert!(
                admit(&policy, at).is_ok(),
                "{field} at its ceiling is accepted"
            );
            let mut above = spec();
            set(&mut above, ceiling + 1);
            let invalid = admit(&policy, above).unwrap_err();
            assert_eq!(invalid.field, field);
            assert!(
                invalid.message.contains(&format!("ceiling of {ceiling}")),
                "{invalid}"
            );
        }
    }

    #[test]
    fn floors_and_ranges_are_enforced() {
        let policy = Policy::default();
        type Case = (fn(&mut JobSpec), &'static str);
        let cases: [Case; 6] = [
            (|s| s.priority = Some(11), "priority"),
            (|s| s.max_attempts = Some(0), "max_attempts"),
            (|s| s.limits.timeout_ms = Some(0), "limits.timeout_ms"),
            (|s| s.limits.fuel = Some(0), "limits.fuel"),
            (
                |s| s.limits.memory_bytes = Some(65_535),
                "limits.memory_bytes",
            ),
            (|s| s.retry.base_ms = Some(0), "retry.base_ms"),
        ];
        for (set, field) in cases {
            let mut spec = spec();
            set(&mut spec);
            assert_eq!(admit(&policy, spec).unwrap_err().field, field);
        }
        // A largest delay below the base caps every delay: no conflict.
        let mut capped = spec();
        capped.retry.base_ms = Some(2_000);
        capped.retry.max_delay_ms = Some(1_000);
        let job = admit(&policy, capped).unwrap();
        assert_eq!(job.retry.delay_ms(3, 0.0), Some(1_000));
    }

    #[test]
    fn a_queue_has_defaults_of_its_own_over_the_hosts() {
        let emails = QueueDefaults {
            priority: Some(8),
            max_attempts: Some(10),
            limits: LimitsSpec {
                timeout_ms: Some(5_000),
                ..LimitsSpec::default()
            },
            retry: RetrySpec {
                backoff: Some(Backoff::Fixed),
                ..RetrySpec::default()
            },
        };
        let policy = Policy::default()
            .with_queues([("emails".to_owned(), emails)])
            .unwrap();
        let mut spec = spec();
        spec.queue = Some("emails".to_owned());
        let job = admit(&policy, spec.clone()).unwrap();
        assert_eq!(job.queue, "emails");
        assert_eq!((job.priority, job.max_attempts), (8, 10));
        assert_eq!(job.limits.timeout_ms, 5_000);
        assert_eq!(job.limits.fuel, Limits::default().fuel, "the host's");
        assert_eq!(
            (job.retry.backoff, job.retry.base_ms),
            (Backoff::Fixed, RetryPolicy::default().base_ms)
        );
        // A job's own fields still win; other queues take the host's.
        spec.priority = Some(1);
        assert_eq!(admit(&policy, spec).unwrap().priority, 1);
        let other = admit(&policy, JobSpec::new("m", Json::null())).unwrap();
        assert_eq!((other.queue.as_str(), other.priority), ("default", 5));
    }

    #[test]
    fn queue_names_and_queue_defaults_are_checked() {
        let mut bad = spec();
        bad.queue = Some("no spaces".to_owned());
        assert_eq!(admit(&Policy::default(), bad).unwrap_err().field, "queue");
        let too_much = QueueDefaults {
            max_attempts: Some(1_000),
            ..QueueDefaults::default()
        };
        let problems = Policy::default()
            .with_queues([
                ("big".to_owned(), too_much),
                ("bad name".to_owned(), QueueDefaults::default()),
            ])
            .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("queues.big: max_attempts: 1000 is above"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("invalid queue name `bad name`"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_absolute_run_at_is_kept_and_one_in_the_past_is_now() {
        let mut later = spec();
        later.run_at = Some(NOW + 90_000);
        assert_eq!(
            admit(&Policy::default(), later).unwrap().run_at,
            NOW + 90_000
        );
        let mut past = spec();
        past.run_at = Some(NOW - 86_400_000);
        assert_eq!(admit(&Policy::default(), past).unwrap().run_at, NOW);
        // Both are "not before": the later holds.
        let mut both = spec();
        both.run_at = Some(NOW + 10);
        both.delay_ms = Some(1_000);
        assert_eq!(
            admit(&Policy::default(), both.clone()).unwrap().run_at,
            NOW + 1_000
        );
        both.run_at = Some(NOW + 5_000);
        assert_eq!(admit(&Policy::default(), both).unwrap().run_at, NOW + 5_000);
    }

    #[test]
    fn a_batch_item_is_named_by_its_index() {
        let invalid = Invalid::new("priority", "bad").within("jobs", 3);
        assert_eq!(invalid.to_string(), "jobs[3].priority: bad");
    }

    #[test]
    fn an_inconsistent_configuration_lists_every_problem() {
        let defaults = Defaults {
            limits: Limits {
                fuel: 20,
                ..Limits::default()
            },
            ..Defaults::default()
        };
        let ceilings = Ceilings {
            fuel: 10,
            memory_bytes: 256 << 20,
            ..Ceilings::default()
        };
        let escalation = Escalation {
            max_fuel: 10,
            max_memory_bytes: 512 << 20,
            factor: 0.5,
            ..Escalation::default()
        };
        let problems = Policy::new(defaults, ceilings, escalation).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("default limits.fuel: 20 is above"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .contains("escalation.max_memory_bytes (536870912) is above ceilings.memory_bytes"),
            "{problems:?}"
        );
        assert!(problems[2].contains("escalation.factor"), "{problems:?}");
        let huge = Ceilings {
            fuel: u64::MAX,
            ..Ceilings::default()
        };
        let problems = Policy::new(Defaults::default(), huge, Escalation::default()).unwrap_err();
        assert!(
            problems[0].contains("largest value the store keeps"),
            "{problems:?}"
        );
    }
}
