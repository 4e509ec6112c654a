//! Shared fixtures for wasmjob's integration tests and benchmarks: the
//! example jobs compiled by `build.rs`, and small helpers to load and run
//! them with real engines.

use std::time::Duration;
use wasmjob::engine::{Engine, EngineConfig, Invocation, Module};
use wasmjob::limits::Limits;
use wasmjob::report::Report;

/// Paths of the example jobs, built for `wasm32-wasip2` by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Reads a guest's bytes.
pub fn guest_bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading guest {path}: {e}"))
}

/// An engine for tests: small pool, default limits.
pub fn engine() -> Engine {
    engine_with(EngineConfig {
        concurrency: 4,
        ..EngineConfig::default()
    })
}

/// An engine with a given configuration.
pub fn engine_with(config: EngineConfig) -> Engine {
    Engine::new(config).expect("engine")
}

/// Loads a guest from its path.
pub fn load(engine: &Engine, path: &str) -> Module {
    engine
        .load(&guest_bytes(path))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Limits for tests: small enough that runaway guests stop fast.
pub fn test_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 32 * 1024 * 1024,
        timeout_ms: 60_000,
        ..Limits::default()
    }
}

/// Runs one invocation to completion on a fresh current-thread runtime.
pub fn run(engine: &Engine, module: &Module, invocation: Invocation) -> Report {
    runtime()
        .block_on(engine.execute(module, invocation))
        .expect("the host ran the job")
}

/// Runs `module` with JSON `input` and [`test_limits`].
pub fn run_json(engine: &Engine, module: &Module, input: serde_json::Value) -> Report {
    let invocation = Invocation::new(input.to_string()).with_limits(test_limits());
    run(engine, module, invocation)
}

/// A current-thread runtime with timers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A generous bound for tests that wait on something that must happen:
/// reaching it means the behaviour under test is broken, not slow.
pub const HANG: Duration = Duration::from_secs(60);

/// A whole host in-process: real SQLite store on a temp dir, real engine,
/// real worker pool, driven by a [`TestClock`](wasmjob::clock::TestClock).
///
/// Waits are on the queue's own change signal ([`Queue::changes`]), never
/// on a timer: a wait returns as soon as the host changed what it waits
/// for, and fails after [`HANG`] only when that never happens.
///
/// [`Queue::changes`]: wasmjob::queue::Queue::changes
pub mod host {
    use super::HANG;
    use std::future::Future;
    use std::sync::Arc;
    use wasmjob::clock::TestClock;
    use wasmjob::engine::{Engine, EngineConfig};
    use wasmjob::job::{Job, JobDetail, JobId, JobState};
    use wasmjob::json::Json;
    use wasmjob::policy::{JobSpec, LimitsSpec};
    use wasmjob::queue::{Queue, QueueConfig};
    use wasmjob::store::{SqliteStore, StoreConfig};
    use wasmjob::worker::Pool;

    /// Where the test clock starts: 2026-01-01.
    pub const T0: i64 = 1_767_225_600_000;

    /// A running in-process host.
    pub struct Host {
        /// The queue.
        pub queue: Queue,
        /// The store under the queue.
        pub store: Arc<SqliteStore>,
        /// The clock the queue reads.
        pub clock: TestClock,
        /// The data directory.
        pub dir: tempfile::TempDir,
        pool: Option<Pool>,
    }

    impl Host {
        /// Opens a store in a fresh temp dir and builds the queue, without
        /// starting workers.
        pub fn new(config: QueueConfig) -> Host {
            Self::with_store(config, |dir| StoreConfig::new(dir))
        }

        /// Like [`new`](Self::new), with the store configured by `store`
        /// (given the data directory).
        pub fn with_store(
            config: QueueConfig,
            store: impl FnOnce(&std::path::Path) -> StoreConfig,
        ) -> Host {
            Self::with_parts(config, store, |engine| engine)
        }

        /// Like [`new`](Self::new), with the engine configured by `engine`
        /// (given the test host's engine configuration).
        pub fn with_engine(
            config: QueueConfig,
            engine: impl FnOnce(EngineConfig) -> EngineConfig,
        ) -> Host {
            Self::with_parts(config, |dir| StoreConfig::new(dir), engine)
        }

        fn with_parts(
            config: QueueConfig,
            store: impl FnOnce(&std::path::Path) -> StoreConfig,
            engine: impl FnOnce(EngineConfig) -> EngineConfig,
        ) -> Host {
            let dir = tempfile::tempdir().expect("temp dir");
            let clock = TestClock::stepping(T0, 1);
            let store = Arc::new(SqliteStore::open(store(dir.path())).expect("store"));
            let engine = Engine::new(engine(EngineConfig {
                concurrency: config.scaling().max as u32,
                cache_dir: Some(dir.path().join("artifacts")),
                ..EngineConfig::default()
            }))
            .expect("engine");
            let queue = Queue::new(store.clone(), engine, Arc::new(clock.clone()), config);
            Host {
                queue,
                store,
                clock,
                dir,
                pool: None,
            }
        }

        /// Starts the worker pool.
        pub fn start_workers(&mut self) {
            self.pool = Some(Pool::start(self.queue.clone()).expect("pool"));
        }

        /// Starts the worker pool with `faults` injected into jobs' tasks.
        pub fn start_workers_with_faults(&mut self, faults: wasmjob::worker::FaultHook) {
            let pool = Pool::start_with_faults(self.queue.clone(), Some(faults)).expect("pool");
            self.pool = Some(pool);
        }

        /// Stops the worker pool gracefully.
        pub async fn stop_workers(&mut self) {
            if let Some(pool) = self.pool.take() {
                pool.shutdown().await;
            }
        }

        /// Uploads an example job; returns its hash.
        pub async fn upload(&self, path: &str) -> String {
            self.queue
                .upload(super::guest_bytes(path), None)
                .await
                .expect("upload")
                .hash
        }

        /// Uploads an example job under `name`; returns its hash.
        pub async fn upload_named(&self, path: &str, name: &str) -> String {
            self.queue
                .upload(super::guest_bytes(path), Some(name.to_owned()))
                .await
                .expect("upload")
                .hash
        }

        /// Submits one job.
        pub async fn submit(&self, job: JobSpec) -> Job {
            self.queue
                .submit(vec![job])
                .await
                .expect("submit")
                .remove(0)
                .job
        }

        /// A job of `module` with JSON `input` and [`test_limits`].
        ///
        /// [`test_limits`]: super::test_limits
        pub fn job(&self, module: &str, input: serde_json::Value) -> JobSpec {
            let limits = super::test_limits();
            JobSpec {
                limits: LimitsSpec {
                    fuel: Some(limits.fuel),
                    memory_bytes: Some(limits.memory_bytes),
                    timeout_ms: Some(limits.timeout_ms),
                    ..LimitsSpec::default()
                },
                ..JobSpec::new(module, Json::parse_str(&input.to_string()).expect("JSON"))
            }
        }

        /// One job's detail.
        pub async fn detail(&self, id: JobId) -> JobDetail {
            self.queue.job(id).await.expect("job").0
        }

        /// Waits until job `id` is in `state` (`running`: started in one of
        /// this host's slots; an attempt's end: counted by this host);
        /// panics after [`HANG`].
        pub async fn wait_for(&self, id: JobId, state: JobState) -> JobDetail {
            // A claim makes a job `running` in the store before a slot
            // starts it (a cancel meanwhile means no attempt at all), and
            // an attempt's end is visible a moment before this host has
            // counted it (metrics, history, alerts) and let the job go.
            let counted = matches!(
                state,
                JobState::Completed | JobState::Failed | JobState::Retrying
            );
            self.wait_job(id, |d| {
                d.job.state == state
                    && !(counted && self.queue.holds(id))
                    && (state != JobState::Running || self.queue.running().contains(&id))
            })
            .await
            .unwrap_or_else(|| panic!("job {id} never reached {state}"))
        }

        /// Waits until `check` holds for job `id`; `None` after [`HANG`].
        pub async fn wait_job(
            &self,
            id: JobId,
            check: impl Fn(&JobDetail) -> bool,
        ) -> Option<JobDetail> {
            let queue = self.queue.clone();
            let check = &check;
            wait_until(&self.queue, || {
                let queue = queue.clone();
                async move {
                    let detail = queue.job(id).await.expect("job").0;
                    check(&detail).then_some(detail)
                }
            })
            .await
        }
    }

    /// Calls `check` now and again each time `queue` signals a change,
    /// until it returns `Some`; `None` after [`HANG`] without it.
    ///
    /// For what the host does not signal (a long poll beginning), use
    /// [`eventually`].
    pub async fn wait_until<T, F, Fut>(queue: &Queue, mut check: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + HANG;
        let mut changes = queue.changes();
        loop {
            // Mark what was seen before looking, so a change made while
            // `check` runs wakes the wait below.
            changes.borrow_and_update();
            if let Some(value) = check().await {
                return Some(value);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Yields to the runtime until `check` holds, for a state the host
    /// reaches on its own without a signal (a request registering its long
    /// poll). Panics after [`HANG`].
    pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + HANG;
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::task::yield_now().await;
        }
    }

    /// Test-clock helpers.
    pub trait NowMs {
        /// The clock's time.
        fn now_ms(&self) -> i64;
    }

    impl NowMs for TestClock {
        fn now_ms(&self) -> i64 {
            use wasmjob::clock::Clock;
            self.now()
        }
    }

    /// Limits with a small fuel budget so runaway jobs end fast.
    pub fn small_fuel(fuel: u64) -> LimitsSpec {
        let limits = super::test_limits();
        LimitsSpec {
            fuel: Some(fuel),
            memory_bytes: Some(limits.memory_bytes),
            timeout_ms: Some(limits.timeout_ms),
            ..LimitsSpec::default()
        }
    }
}
