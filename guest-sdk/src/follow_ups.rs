//! Jobs that submit jobs: a running job asks for follow-up jobs, which
//! the host creates only if the attempt completes, in the same
//! transaction as its result. A failed, retried, timed-out or cancelled
//! attempt leaves none behind; a retry asks again.
//!
//! On targets other than wasm32 (unit tests of a job's logic) there is no
//! host: [`submit`] keeps the follow-ups on the current thread, and
//! [`testing::take_follow_ups`](crate::testing::take_follow_ups) reads them
//! back.

use crate::JobError;
use serde::Serialize;
use std::time::Duration;

#[cfg(target_arch = "wasm32")]
use crate::__private::wasmjob::job::{host as wit_host, types as wit_types};

/// A follow-up job: the module to run and its input, and optionally a
/// name (for later follow-ups to wait for), a queue, a priority, attempts,
/// a delay and the earlier follow-ups it waits for.
///
/// ```
/// use wasmjob_sdk::FollowUp;
///
/// let charge = FollowUp::new("charge", &serde_json::json!({"cents": 1200}))
///     .name("charge")
///     .priority(1);
/// let email = FollowUp::new("email", &"receipt").after("charge").queue("emails");
/// assert_eq!(wasmjob_sdk::submit(charge).unwrap(), 0);
/// assert_eq!(wasmjob_sdk::submit(email).unwrap(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    /// The module to run: a hash or a name.
    pub module: String,
    /// Its input as JSON text, or why the value did not encode.
    pub input: Result<String, String>,
    /// Its name among this attempt's follow-ups.
    pub name: Option<String>,
    /// The queue to wait in; `default` when `None`.
    pub queue: Option<String>,
    /// 0 (critical) to 10 (low); the default when `None`.
    pub priority: Option<u8>,
    /// Attempts allowed in all; the default when `None`.
    pub max_attempts: Option<u32>,
    /// Not before this long after it is created.
    pub delay: Option<Duration>,
    /// The names of earlier follow-ups it waits for.
    pub after: Vec<String>,
}

impl FollowUp {
    /// A follow-up running `module` (a hash or a name) on `input`, encoded
    /// as JSON.
    pub fn new(module: &str, input: &impl Serialize) -> FollowUp {
        FollowUp {
            module: module.to_owned(),
            input: serde_json::to_string(input).map_err(|e| e.to_string()),
            name: None,
            queue: None,
            priority: None,
            max_attempts: None,
            delay: None,
            after: Vec::new(),
        }
    }

    /// Names it (1 to 64 of `A-Z a-z 0-9 _ . -`), so later follow-ups can
    /// wait for it; the workflow view shows it by this name.
    pub fn name(mut self, name: &str) -> FollowUp {
        self.name = Some(name.to_owned());
        self
    }

    /// The queue it waits in.
    pub fn queue(mut self, queue: &str) -> FollowUp {
        self.queue = Some(queue.to_owned());
        self
    }

    /// Its priority: 0 (critical) to 10 (low).
    pub fn priority(mut self, priority: u8) -> FollowUp {
        self.priority = Some(priority);
        self
    }

    /// The attempts it may use in all.
    pub fn max_attempts(mut self, attempts: u32) -> FollowUp {
        self.max_attempts = Some(attempts);
        self
    }

    /// Runs no earlier than `delay` after it is created.
    pub fn delay(mut self, delay: Duration) -> FollowUp {
        self.delay = Some(delay);
        self
    }

    /// Waits for the earlier follow-up named `name`: it runs after that
    /// one completed, and reads its output with
    /// [`dependency_output`](crate::dependency_output)`(name)`; it is
    /// cancelled if that one fails. Call once per follow-up it waits for.
    pub fn after(mut self, name: &str) -> FollowUp {
        self.after.push(name.to_owned());
        self
    }
}

/// Asks the host for a follow-up job, created only if this attempt
/// completes. Returns its number among this attempt's follow-ups (from 0).
///
/// A refusal is a fatal [`JobError`] saying why (the same attempt would
/// ask the same again): past the host's bound on follow-ups per attempt
/// (100 by default) or on their input bytes (the attempt's output limit),
/// input that does not encode, a bad or repeated name, or `after` naming no
/// earlier follow-up. The host checks the rest (the module exists, the
/// queue's bounds) when the attempt completes: a follow-up it refuses then
/// fails the attempt, and none of its follow-ups is created.
pub fn submit(job: FollowUp) -> Result<u32, JobError> {
    let input = job
        .input
        .clone()
        .map_err(|e| JobError::fatal(format!("the follow-up's input does not encode: {e}")))?;
    #[cfg(target_arch = "wasm32")]
    {
        let FollowUp {
            module,
            name,
            queue,
            priority,
            max_attempts,
            delay,
            after,
            ..
        } = job;
        wit_host::submit(&wit_types::FollowUp {
            module,
            input: input.into_bytes(),
            name,
            queue,
            priority,
            max_attempts,
            delay_ms: delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            after,
        })
        .map_err(|why| JobError::fatal(format!("follow-up refused: {why}")))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = input;
        crate::testing::submit(job).map_err(JobError::fatal)
    }
}
