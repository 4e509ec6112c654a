//! Reading back what a job logged and reported, in a native unit test of
//! its logic (not on `wasm32`, where the host keeps them in the report).
//!
//! ```
//! use wasmjob_sdk::testing::{self, Recorded};
//!
//! fn work() {
//!     wasmjob_sdk::info!("step {}", 1);
//!     wasmjob_sdk::progress(100, "done");
//! }
//!
//! testing::take(); // start from nothing
//! work();
//! assert_eq!(
//!     testing::take(),
//!     [
//!         Recorded::Log { level: wasmjob_sdk::Level::Info, message: "step 1".into() },
//!         Recorded::Progress { percent: 100, note: "done".into() },
//!     ]
//! );
//! ```

use crate::{Dependency, FollowUp, Level};
use std::cell::RefCell;

/// A log record or a progress report, as the job made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// From [`log()`](crate::log) or the logging macros.
    Log {
        /// Its level.
        level: Level,
        /// Its message.
        message: String,
    },
    /// From [`progress()`](crate::progress).
    Progress {
        /// The percentage.
        percent: u8,
        /// The note.
        note: String,
    },
}

thread_local! {
    static RECORDED: RefCell<Vec<Recorded>> = const { RefCell::new(Vec::new()) };
    static DEPENDENCIES: RefCell<Vec<Dependency>> = const { RefCell::new(Vec::new()) };
    static FOLLOW_UPS: RefCell<Vec<FollowUp>> = const { RefCell::new(Vec::new()) };
}

/// The host's default bound on follow-ups per attempt, which the test
/// double enforces too.
const MAX_FOLLOW_UPS: usize = 100;

/// Keeps a follow-up as the host would, refusing what it would refuse
/// inside the sandbox (count, names, `after`).
pub(crate) fn submit(job: FollowUp) -> Result<u32, String> {
    FOLLOW_UPS.with(|all| {
        let mut all = all.borrow_mut();
        if all.len() >= MAX_FOLLOW_UPS {
            return Err(format!(
                "follow-up refused: an attempt may submit at most {MAX_FOLLOW_UPS} follow-up jobs"
            ));
        }
        let named = |name: &str| all.iter().any(|f| f.name.as_deref() == Some(name));
        if let Some(name) = &job.name
            && named(name)
        {
            return Err(format!(
                "follow-up refused: name: `{name}` names an earlier follow-up already"
            ));
        }
        if let Some(missing) = job.after.iter().find(|name| !named(name)) {
            return Err(format!(
                "follow-up refused: after: no earlier follow-up is named `{missing}`"
            ));
        }
        all.push(job);
        Ok(u32::try_from(all.len() - 1).unwrap_or(u32::MAX))
    })
}

/// The follow-ups this thread submitted since the last call, in order
/// (and a fresh start for the next attempt's).
///
/// ```
/// use wasmjob_sdk::FollowUp;
///
/// wasmjob_sdk::submit(FollowUp::new("resize", &640).name("small")).unwrap();
/// let submitted = wasmjob_sdk::testing::take_follow_ups();
/// assert_eq!(submitted[0].module, "resize");
/// assert_eq!(submitted[0].input.as_deref(), Ok("640"));
/// ```
pub fn take_follow_ups() -> Vec<FollowUp> {
    FOLLOW_UPS.with(|all| std::mem::take(&mut *all.borrow_mut()))
}

/// Sets what [`dependencies()`](crate::dependencies()) returns on this
/// thread, as the host would for a job with these prerequisites.
///
/// ```
/// use wasmjob_sdk::Dependency;
///
/// wasmjob_sdk::testing::set_dependencies(vec![Dependency::completed("payment", 7, &42)]);
/// let paid: u32 = wasmjob_sdk::dependency_output("payment").unwrap();
/// assert_eq!(paid, 42);
/// assert!(wasmjob_sdk::dependency_output::<u32>("stock").unwrap_err().is_fatal());
/// ```
pub fn set_dependencies(dependencies: Vec<Dependency>) {
    DEPENDENCIES.with(|all| *all.borrow_mut() = dependencies);
}

/// What [`set_dependencies`] set on this thread.
pub(crate) fn dependencies() -> Vec<Dependency> {
    DEPENDENCIES.with(|all| all.borrow().clone())
}

/// Keeps what the job just logged or reported, on this thread.
pub(crate) fn record(recorded: Recorded) {
    RECORDED.with(|all| all.borrow_mut().push(recorded));
}

/// Everything this thread logged and reported since the last call, oldest
/// first. Each test runs on a thread of its own, so tests do not see each
/// other's records.
pub fn take() -> Vec<Recorded> {
    RECORDED.with(|all| std::mem::take(&mut *all.borrow_mut()))
}
