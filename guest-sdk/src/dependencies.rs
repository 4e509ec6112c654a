//! What a job receives from the jobs it waited for: its prerequisites,
//! each with how it ended and, when it completed, its output.
//!
//! On targets other than wasm32 (unit tests of a job's logic) there is no
//! host: [`testing::set_dependencies`](crate::testing::set_dependencies)
//! sets what [`dependencies()`] returns on the current thread.

use crate::JobError;
use serde::de::DeserializeOwned;
use std::fmt;

#[cfg(target_arch = "wasm32")]
use crate::__private::wasmjob::job::{host as wit_host, types as wit_types};

/// How a prerequisite ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DependencyState {
    /// It completed: its output is there.
    Completed,
    /// It failed; the job runs anyway because its edge says `continue`.
    Failed,
    /// It was cancelled; the job runs anyway because its edge says
    /// `continue`.
    Cancelled,
}

impl fmt::Display for DependencyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DependencyState::Completed => "completed",
            DependencyState::Failed => "failed",
            DependencyState::Cancelled => "cancelled",
        })
    }
}

/// A prerequisite of the running job: a job it waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The name the job knows it by: its name in the workflow, or the name
    /// the job's `depends_on` gave it (its id when none was given).
    pub name: String,
    /// Its job id.
    pub job: u64,
    /// How it ended.
    pub state: DependencyState,
    /// Its output (JSON), when it completed.
    pub output: Option<Vec<u8>>,
    /// Why it failed or was cancelled, when it did not complete.
    pub error: Option<String>,
}

impl Dependency {
    /// A completed prerequisite with `output` as its JSON output.
    pub fn completed(name: &str, job: u64, output: &impl serde::Serialize) -> Dependency {
        Dependency {
            name: name.to_owned(),
            job,
            state: DependencyState::Completed,
            output: Some(serde_json::to_vec(output).expect("the output serializes")),
            error: None,
        }
    }

    /// A prerequisite that failed with `error` (for a dependent behind an
    /// `on_failure: continue` edge).
    pub fn failed(name: &str, job: u64, error: &str) -> Dependency {
        Dependency {
            name: name.to_owned(),
            job,
            state: DependencyState::Failed,
            output: None,
            error: Some(error.to_owned()),
        }
    }

    /// Whether it completed.
    pub fn is_completed(&self) -> bool {
        self.state == DependencyState::Completed
    }

    /// Its output, decoded from JSON into `T`. A prerequisite that did not
    /// complete has none, and an output that does not decode names the
    /// field: both are fatal errors (trying again would not change them).
    pub fn output<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        let Some(output) = &self.output else {
            return Err(JobError::fatal(format!(
                "prerequisite `{}` (job {}) {}: it has no output",
                self.name, self.job, self.state
            )));
        };
        let mut deserializer = serde_json::Deserializer::from_slice(output);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            JobError::fatal(format!(
                "the output of prerequisite `{}` does not decode: {e}",
                self.name
            ))
        })
    }
}

/// The running job's prerequisites, by name; empty for a job that waited
/// for none.
pub fn dependencies() -> Vec<Dependency> {
    #[cfg(target_arch = "wasm32")]
    {
        wit_host::dependencies()
            .into_iter()
            .map(|d| Dependency {
                name: d.name,
                job: d.job,
                state: match d.state {
                    wit_types::DependencyState::Completed => DependencyState::Completed,
                    wit_types::DependencyState::Failed => DependencyState::Failed,
                    wit_types::DependencyState::Cancelled => DependencyState::Cancelled,
                },
                output: d.output,
                error: d.error,
            })
            .collect()
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::dependencies()
}

/// The prerequisite named `name`, if the job has one.
pub fn dependency(name: &str) -> Option<Dependency> {
    dependencies().into_iter().find(|d| d.name == name)
}

/// The output of the prerequisite named `name`, decoded from JSON into
/// `T`: `let payment: Payment = dependency_output("payment")?;`.
///
/// No prerequisite of that name, one that did not complete, or an output
/// that does not decode is a fatal error naming it.
pub fn dependency_output<T: DeserializeOwned>(name: &str) -> Result<T, JobError> {
    dependency(name)
        .ok_or_else(|| JobError::fatal(format!("the job has no prerequisite named `{name}`")))?
        .output()
}
