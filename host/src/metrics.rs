//! Prometheus metrics: what this host counts and measures, and their text
//! exposition.
//!
//! One [`Metrics`] per queue (so per host; tests run several in one
//! process), each with its own `prometheus-client` registry, never a global
//! one. Counters and histograms are updated where things happen (a
//! submission admitted, an outcome written, a lease rescued, a commit);
//! the gauges that describe the store (jobs by queue and state, the oldest
//! wait) and the pool are read when scraped, from a [`Snapshot`] the queue
//! gathers, so they are exact at scrape time and cost nothing between
//! scrapes.
//!
//! Names follow Prometheus conventions: `wasmjob_` prefix, base units
//! (`_seconds`, `_bytes`), counters end in `_total` (the library appends
//! it). Label values are bounded by what the operator controls: queue
//! names, module names (or a short hash), failure kinds.

use crate::alerts::AlertCounts;
use crate::job::{Job, ModuleRef};
use crate::policy::Decision;
use crate::report::AttemptReport;
use crate::store::{Outcome, QueueStats, WriteObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text
/// format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// A queue and a job state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    queue: String,
    state: &'static str,
}

/// A queue and a module.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    module: String,
}

/// A queue, a module and how an attempt failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    queue: String,
    module: String,
    kind: &'static str,
}

/// A worker state (`busy`, `idle`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    state: &'static str,
}

/// Why a lease was taken back.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RescueLabels {
    reason: &'static str,
}

/// How alert deliveries went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    outcome: &'static str,
}

/// Why the pool changed size, and which way.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScalingLabels {
    direction: &'static str,
    reason: &'static str,
}

/// A stage of a job's way through this host.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// The stages of one job's way through this host, timed with the
/// monotonic clock for `wasmjob_job_stage_seconds{stage}`: where the time
/// of a job goes, stage by stage (the suite's latency breakdown reads
/// them). Each is measured where it happens, on its own; they are not
/// tied to one job, so on a busy host they overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A submission (`POST /v1/jobs`, `/v1/jobs/batch`) in the queue:
    /// admission and the durable commit; the HTTP request's parsing and
    /// its answer are not included.
    Submit,
    /// A store commit (a batch of writes), without its fsync.
    Commit,
    /// An fsync of the store's log, which makes every commit before it
    /// durable (answered after it when durable writes wait on it).
    Fsync,
    /// From a wake-up (a job made due) to the idle dispatcher claiming.
    Wake,
    /// One claim in the store, to the jobs in the dispatcher's hands.
    Claim,
    /// From a submission's commit, which claimed its job for an idle slot,
    /// to the job in the dispatcher's hands (in place of a wake-up and a
    /// claim).
    Handoff,
    /// From the claim's answer to the attempt beginning in its slot.
    Start,
    /// The attempt in the sandbox: instantiation to the end.
    Run,
    /// From the attempt's end to its outcome committed.
    Record,
    /// From an outcome committed (or a start) to a long poll waiting on
    /// the job having read it again.
    Notify,
}

impl Stage {
    /// Every stage, in the order of a job's way.
    pub const ALL: [Stage; 10] = [
        Stage::Submit,
        Stage::Commit,
        Stage::Fsync,
        Stage::Wake,
        Stage::Claim,
        Stage::Handoff,
        Stage::Start,
        Stage::Run,
        Stage::Record,
        Stage::Notify,
    ];

    /// The `stage` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Submit => "submit",
            Stage::Fsync => "fsync",
            Stage::Commit => "commit",
            Stage::Wake => "wake",
            Stage::Claim => "claim",
            Stage::Handoff => "handoff",
            Stage::Start => "start",
            Stage::Run => "run",
            Stage::Record => "record",
            Stage::Notify => "notify",
        }
    }
}

/// Why a lease was taken back from its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rescue {
    /// Its lease expired (the holder stopped renewing it).
    Expired,
    /// This host found it still leased at start-up (a crash before).
    Startup,
}

/// The pool's state at a scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolSnapshot {
    /// Slots running a job.
    pub busy: usize,
    /// Slots waiting for one.
    pub idle: usize,
    /// Slots declared stuck (abandoned, awaiting replacement).
    pub stuck: usize,
    /// How many slots the pool aims for now.
    pub target: usize,
}

/// What a scrape reads from outside the registry.
#[derive(Debug)]
pub struct Snapshot {
    /// Every queue's counts and oldest due job.
    pub queues: Vec<QueueStats>,
    /// This host's pool.
    pub pool: PoolSnapshot,
    /// When the snapshot was taken, ms since the epoch.
    pub now: i64,
    /// The alert webhooks' counters, when alerts are configured.
    pub alerts: Option<AlertCounts>,
}

/// This host's metrics. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    /// Serialises scrapes: a scrape resets the store gauges, then encodes.
    scrape: Mutex<()>,
    jobs: Family<StateLabels, Gauge>,
    oldest_wait: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    queue_paused: Family<QueueLabels, Gauge>,
    submitted: Family<JobLabels, Counter>,
    completed: Family<JobLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    retried: Family<JobLabels, Counter>,
    dead_lettered: Family<JobLabels, Counter>,
    cancelled: Family<JobLabels, Counter>,
    queue_wait: Family<QueueLabels, Histogram>,
    run_duration: Family<QueueLabels, Histogram>,
    fuel: Family<QueueLabels, Histogram>,
    peak_memory: Family<QueueLabels, Histogram>,
    workers: Family<WorkerLabels, Gauge>,
    workers_target: Gauge,
    leader: Gauge,
    clock_offset: Gauge<f64, AtomicU64>,
    rescued: Family<RescueLabels, Counter>,
    leases_lost: Counter,
    worker_panics: Counter,
    workers_stuck_total: Counter,
    scaling: Family<ScalingLabels, Counter>,
    commit_seconds: Histogram,
    commit_batch: Histogram,
    /// One histogram per [`Stage`], in [`Stage::ALL`]'s order.
    stages: Vec<Histogram>,
    alerts: Family<AlertLabels, Counter>,
    /// The alert counters as of the last scrape (they are counted by the
    /// alerts' own thread; a scrape adds what is new).
    alerts_seen: Mutex<AlertCounts>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Seconds: 1 ms to about 15 minutes, ×2.5 apart.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 16))
}

impl Metrics {
    /// Fresh metrics in a registry of their own.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wasmjob");
        let jobs = Family::<StateLabels, Gauge>::default();
        registry.register(
            "jobs",
            "Jobs in the store, by queue and state (waiting and running states)",
            jobs.clone(),
        );
        let oldest_wait = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "queue_oldest_wait",
            "How long the oldest due job of the queue has waited",
            Unit::Seconds,
            oldest_wait.clone(),
        );
        let queue_paused = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_paused",
            "1 while the queue is paused",
            queue_paused.clone(),
        );
        let submitted = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs_submitted",
            "Jobs admitted by this host (submissions, workflows, follow-ups, schedules)",
            submitted.clone(),
        );
        let completed = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs_completed",
            "Jobs that succeeded on this host",
            completed.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "attempt_failures",
            "Failed attempts recorded by this host, by failure kind",
            failures.clone(),
        );
        let retried = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs_retried",
            "Failed attempts followed by a retry",
            retried.clone(),
        );
        let dead_lettered = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs_dead_lettered",
            "Jobs moved to the dead letter",
            dead_lettered.clone(),
        );
        let cancelled = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs_cancelled_running",
            "Running jobs stopped by a cancel",
            cancelled.clone(),
        );
        let queue_wait = Family::<QueueLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "queue_wait",
            "Time from when a job was due to when its attempt started",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let run_duration = Family::<QueueLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "job_duration",
            "Execution time of an attempt in the sandbox",
            Unit::Seconds,
            run_duration.clone(),
        );
        let fuel = Family::<QueueLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1e3, 10.0, 11))) as fn() -> Histogram,
        );
        registry.register(
            "job_fuel_consumed",
            "Fuel (wasm instructions, roughly) an attempt consumed",
            fuel.clone(),
        );
        let peak_memory = Family::<QueueLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(65_536.0, 4.0, 10))) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "job_peak_memory",
            "Largest linear memory an attempt had",
            Unit::Bytes,
            peak_memory.clone(),
        );
        let workers = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "workers",
            "This host's worker slots, by state (busy, idle, stuck)",
            workers.clone(),
        );
        let workers_target = Gauge::default();
        registry.register(
            "workers_target",
            "How many worker slots the pool aims for now",
            workers_target.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this host leads the hosts sharing the store (it alone rescues expired \
             leases, ages waiting jobs and prunes), else 0",
            leader.clone(),
        );
        let clock_offset = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "clock_offset_seconds",
            "The store's clock minus this host's, as last measured (0 for a store held alone)",
            clock_offset.clone(),
        );
        let rescued = Family::<RescueLabels, Counter>::default();
        registry.register(
            "leases_rescued",
            "Jobs taken back from a holder that stopped renewing its lease (expired) or crashed (startup)",
            rescued.clone(),
        );
        let leases_lost = Counter::default();
        registry.register(
            "leases_lost",
            "Jobs this host was running whose lease the store no longer gave it",
            leases_lost.clone(),
        );
        let worker_panics = Counter::default();
        registry.register(
            "worker_panics",
            "Host-side panics caught while running a job (the slot was replaced)",
            worker_panics.clone(),
        );
        let workers_stuck_total = Counter::default();
        registry.register(
            "workers_stuck",
            "Slots declared stuck (past their job's deadline and grace) and replaced",
            workers_stuck_total.clone(),
        );
        let scaling = Family::<ScalingLabels, Counter>::default();
        registry.register(
            "pool_scaling_decisions",
            "Pool size changes, by direction and reason",
            scaling.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register_with_unit(
            "store_commit",
            "Time of one store commit (a batch of writes)",
            Unit::Seconds,
            commit_seconds.clone(),
        );
        let stage_family = Family::<StageLabels, Histogram>::new_with_constructor(
            // 10 µs to about 1.3 s, doubling.
            (|| Histogram::new(exponential_buckets(1e-5, 2.0, 18))) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "job_stage",
            "Time of each stage of a job's way through this host (submit, commit, \
             fsync, wake, claim, handoff, start, run, record, notify), each measured on its own",
            Unit::Seconds,
            stage_family.clone(),
        );
        let stages = Stage::ALL
            .iter()
            .map(|stage| {
                stage_family
                    .get_or_create(&StageLabels {
                        stage: stage.as_str(),
                    })
                    .clone()
            })
            .collect();
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "store_commit_batch_size",
            "Writes committed together in one store commit",
            commit_batch.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alert webhook deliveries: delivered, failed (gave up after retries), dropped (queue full), retried",
            alerts.clone(),
        );
        Metrics {
            registry,
            alerts,
            alerts_seen: Mutex::new(AlertCounts::default()),
            scrape: Mutex::new(()),
            jobs,
            oldest_wait,
            queue_paused,
            submitted,
            completed,
            failures,
            retried,
            dead_lettered,
            cancelled,
            queue_wait,
            run_duration,
            fuel,
            peak_memory,
            workers,
            workers_target,
            leader,
            clock_offset,
            rescued,
            leases_lost,
            worker_panics,
            workers_stuck_total,
            scaling,
            commit_seconds,
            commit_batch,
            stages,
        }
    }

    /// A job created in `queue` running `module`.
    pub fn submitted(&self, queue: &str, module: &ModuleRef) {
        self.submitted
            .get_or_create(&JobLabels {
                queue: queue.to_owned(),
                module: module_label(module),
            })
            .inc();
    }

    /// An outcome of `job` this host wrote (and the store applied).
    pub fn recorded(&self, job: &Job, outcome: &Outcome) {
        let labels = job_labels(job);
        let queue = QueueLabels {
            queue: job.queue.clone(),
        };
        if let Some(attempt) = &outcome.attempt {
            let due = job.run_at.max(job.created_at);
            let waited = attempt.started_at.saturating_sub(due).max(0);
            self.queue_wait
                .get_or_create(&queue)
                .observe(waited as f64 / 1e3);
            let kind = match &attempt.report {
                AttemptReport::Ran(report) => {
                    self.stage(Stage::Run, Duration::from_micros(report.duration_us));
                    self.run_duration
                        .get_or_create(&queue)
                        .observe(report.duration_us as f64 / 1e6);
                    if let Some(consumed) = report.fuel.consumed {
                        self.fuel.get_or_create(&queue).observe(consumed as f64);
                    }
                    self.peak_memory
                        .get_or_create(&queue)
                        .observe(report.memory.peak_bytes as f64);
                    report.failure.as_ref().map(|f| f.kind.as_str())
                }
                AttemptReport::HostFailed { .. } => Some("host_failed"),
                AttemptReport::Lost { .. } => Some("lost"),
            };
            if let Some(kind) = kind {
                self.failures
                    .get_or_create(&FailureLabels {
                        queue: labels.queue.clone(),
                        module: labels.module.clone(),
                        kind,
                    })
                    .inc();
            }
        }
        match outcome.decision {
            Decision::Complete => self.completed.get_or_create(&labels).inc(),
            Decision::Retry { .. } => self.retried.get_or_create(&labels).inc(),
            Decision::DeadLetter => self.dead_lettered.get_or_create(&labels).inc(),
            Decision::Cancelled => self.cancelled.get_or_create(&labels).inc(),
            Decision::Release => return,
        };
    }

    /// One pass through `stage` took `took`.
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stages[stage as usize].observe(took.as_secs_f64());
    }

    /// Jobs taken back from their holder.
    pub fn rescued(&self, why: Rescue, jobs: usize) {
        let reason = match why {
            Rescue::Expired => "expired",
            Rescue::Startup => "startup",
        };
        self.rescued
            .get_or_create(&RescueLabels { reason })
            .inc_by(jobs as u64);
    }

    /// Whether this host leads the hosts sharing the store now.
    pub fn set_leader(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    /// Whether this host led at the last look.
    pub fn leads(&self) -> bool {
        self.leader.get() == 1
    }

    /// The store's clock minus this host's, ms, as last measured.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        self.clock_offset.set(offset_ms as f64 / 1e3);
    }

    /// The clock offset last measured, ms.
    pub fn clock_offset_ms(&self) -> i64 {
        (self.clock_offset.get() * 1e3).round() as i64
    }

    /// Leases this host held that the store no longer gives it.
    pub fn leases_lost(&self, jobs: usize) {
        self.leases_lost.inc_by(jobs as u64);
    }

    /// A host-side panic caught while running a job.
    pub fn worker_panicked(&self) {
        self.worker_panics.inc();
    }

    /// A slot declared stuck and replaced.
    pub fn worker_stuck(&self) {
        self.workers_stuck_total.inc();
    }

    /// The pool changed its target size.
    pub fn scaled(&self, up: bool, reason: &'static str) {
        let direction = if up { "up" } else { "down" };
        self.scaling
            .get_or_create(&ScalingLabels { direction, reason })
            .inc();
    }

    /// The text exposition, with the store and pool gauges set from
    /// `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        // Queues that are gone must not keep their last values.
        self.jobs.clear();
        self.oldest_wait.clear();
        self.queue_paused.clear();
        for stats in &snapshot.queues {
            for (state, n) in [
                ("blocked", stats.blocked),
                ("pending", stats.pending),
                ("retrying", stats.retrying),
                ("running", stats.running),
            ] {
                self.jobs
                    .get_or_create(&StateLabels {
                        queue: stats.name.clone(),
                        state,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let queue = QueueLabels {
                queue: stats.name.clone(),
            };
            let waited = stats
                .oldest_due
                .map_or(0, |due| snapshot.now.saturating_sub(due).max(0));
            self.oldest_wait
                .get_or_create(&queue)
                .set(waited as f64 / 1e3);
            self.queue_paused
                .get_or_create(&queue)
                .set(i64::from(stats.paused));
        }
        let pool = snapshot.pool;
        for (state, n) in [
            ("busy", pool.busy),
            ("idle", pool.idle),
            ("stuck", pool.stuck),
        ] {
            self.workers
                .get_or_create(&WorkerLabels { state })
                .set(n as i64);
        }
        self.workers_target.set(pool.target as i64);
        if let Some(now) = snapshot.alerts {
            let mut seen = self.alerts_seen.lock().unwrap_or_else(|e| e.into_inner());
            for (outcome, total, before) in [
                ("delivered", now.delivered, seen.delivered),
                ("failed", now.failed, seen.failed),
                ("dropped", now.dropped, seen.dropped),
                ("retried", now.retried, seen.retried),
            ] {
                self.alerts
                    .get_or_create(&AlertLabels { outcome })
                    .inc_by(total.saturating_sub(before));
            }
            *seen = now;
        }
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl WriteObserver for Metrics {
    fn committed(&self, writes: usize, took: Duration) {
        self.stage(Stage::Commit, took);
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_batch.observe(writes as f64);
    }

    fn synced(&self, took: Duration) {
        self.stage(Stage::Fsync, took);
    }
}

fn job_labels(job: &Job) -> JobLabels {
    JobLabels {
        queue: job.queue.clone(),
        module: module_label(&job.module),
    }
}

/// A module's name, or its short hash when it has none.
fn module_label(module: &ModuleRef) -> String {
    match &module.name {
        Some(name) => name.clone(),
        None => module.short_hash().to_owned(),
    }
}
