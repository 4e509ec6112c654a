//! Store tests on real SQLite files in temporary directories, through the
//! [`JobStore`] trait. Time is driven with explicit `now` values; nothing
//! sleeps.

mod aging;
mod claiming;
mod durability;
mod module_files;
mod recovery;
mod results;

use super::{SqliteStore, StoreConfig};
use crate::clock::Millis;
use crate::job::{Backoff, Job, JobId, NewJob, RetryPolicy};
use crate::limits::Limits;
use crate::report::{
    Failure, FailureKind, FuelUsage, MemoryUsage, ModuleKind, Output, Report, Status, StdioTail,
};
use crate::store::{AttemptResult, ClaimRequest, Claimed, JobStore, Lease, Next, Recorded};
use tempfile::TempDir;

/// A time well after the epoch, so that offsets stay positive.
const T0: Millis = 1_700_000_000_000;
/// Lease length used by the tests.
const LEASE_MS: i64 = 30_000;

/// A store in a fresh directory, with one module uploaded.
struct Fixture {
    dir: TempDir,
    store: SqliteStore,
    module: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(StoreConfig::new(dir.path())).unwrap();
    let bytes = b"\0asm\x01\0\0\0".to_vec();
    let module = blake3::hash(&bytes).to_hex().to_string();
    store
        .put_module(&module, ModuleKind::Command, &bytes, Some("test"), T0)
        .await
        .unwrap();
    Fixture { dir, store, module }
}

impl Fixture {
    /// A job of the fixture's module: priority 5, three attempts, a fixed
    /// one-second backoff without jitter, due at `run_at`.
    fn job(&self, priority: u8, run_at: Millis) -> NewJob {
        NewJob {
            module: self.module.clone(),
            input: format!("input {priority} {run_at}").into_bytes(),
            priority,
            max_attempts: 3,
            retry: RetryPolicy {
                backoff: Backoff::Fixed,
                base_ms: 1_000,
                max_delay_ms: 1_000,
                jitter: false,
            },
            limits: Limits::default(),
            run_at,
        }
    }

    /// Submits one job and returns it.
    async fn submit(&self, job: NewJob) -> Job {
        self.store.submit(vec![job], T0).await.unwrap().remove(0)
    }

    /// Claims up to `limit` jobs at `now` as `worker-1`.
    async fn claim(&self, limit: usize, now: Millis) -> Vec<Claimed> {
        let request = ClaimRequest {
            owner: "worker-1".to_owned(),
            limit,
            lease_ms: LEASE_MS,
        };
        self.store.claim(request, now).await.unwrap()
    }

    /// Records one result for `claimed`.
    async fn record(
        &self,
        claimed: &Claimed,
        report: Option<Report>,
        next: Next,
        now: Millis,
    ) -> Recorded {
        let result = AttemptResult {
            lease: lease(claimed),
            report,
            next,
            finished_at: now,
        };
        self.store.record(vec![result]).await.unwrap()[0]
    }

    /// The job's stored state.
    async fn get(&self, id: JobId) -> crate::store::JobDetail {
        self.store.job(id).await.unwrap().unwrap()
    }
}

fn lease(claimed: &Claimed) -> Lease {
    Lease {
        id: claimed.job.id,
        token: claimed.token.clone(),
    }
}

/// An engine report: success with `output`, or failure with `message`.
fn report(outcome: std::result::Result<&str, &str>) -> Report {
    let (status, output, failure) = match outcome {
        Ok(output) => (
            Status::Success,
            Some(Output(output.as_bytes().to_vec())),
            None,
        ),
        Err(message) => (
            Status::Failure,
            None,
            Some(Failure {
                kind: FailureKind::GuestError,
                message: message.to_owned(),
                retryable: true,
                trap_code: None,
                exit_code: None,
                backtrace: Vec::new(),
            }),
        ),
    };
    Report {
        status,
        output,
        failure,
        module: "m".to_owned(),
        kind: ModuleKind::Command,
        limits: Limits::default(),
        fuel: FuelUsage {
            consumed: Some(1),
            limit: 2,
        },
        memory: MemoryUsage {
            peak_bytes: 3,
            limit_bytes: 4,
        },
        duration_us: 5,
        logs: Vec::new(),
        logs_dropped: 0,
        progress: None,
        stdout: StdioTail::default(),
        stderr: StdioTail::default(),
    }
}
