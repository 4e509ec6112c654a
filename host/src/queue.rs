//! The queue: the one door to the jobs. The API (and through it the CLI),
//! the worker pool and the scheduler call it; it calls the store, the
//! engine and the policy.
//!
//! It owns the paths every caller shares: [`Queue::submit`] turns
//! [`JobSpec`]s into stored jobs (module resolved, the policy's defaults
//! and bounds applied, one durable commit), the module cache is kept in
//! step with uploads and deletions, workers are woken on submit, cancels
//! reach the jobs this host holds (through the worker pool's [`Registry`]),
//! and long polls ([`Queue::wait`]) and test signals ([`Queue::changes`])
//! hear about every change this host makes.
//!
//! It knows the store only through [`JobStore`] and wasmtime only through
//! [`Engine`]; it knows nothing of HTTP.

use crate::alerts::Alerts;
use crate::clock::{Clock, Millis};
use crate::engine::{Admission, Engine, LoadError, Module};
use crate::grants::{Capabilities, Grants};
use crate::history::{HistoryMinute, MinuteCounts, Tally, minute_of};
use crate::job::{
    Dependency, Job, JobDetail, JobId, JobState, ModuleRef, NewJob, NewWorkflow, OnFailure, Prereq,
    Submitted, TraceParent, Workflow, WorkflowDetail, WorkflowId,
};
use crate::metrics::{Metrics, PoolSnapshot, Snapshot, Stage};
use crate::policy::{Invalid, JobSpec, Policy, WorkflowSpec};
use crate::report::{FollowUp, Progress};
use crate::schedule::{Cadence, Schedule, ScheduleSpec};
use crate::store::{
    self, Fired, JobFilter, JobStore, ModuleRecord, Pruned, QueueStats, Retention, Signal,
    StateCounts, Tick, WorkflowFilter,
};
use crate::worker::{Offers, Registry, Scaling, Slots, Ticket};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The module was refused by the engine.
    #[error("{0}")]
    InvalidModule(#[from] LoadError),
    /// A request field is invalid; names the field.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    /// Job number `index` of a submission is invalid.
    #[error("job {index}: {invalid}")]
    InvalidJob {
        /// Its position in the submission, from 0.
        index: usize,
        /// What is wrong with it.
        invalid: Invalid,
    },
    /// Job number `index` of a submission names a module that does not
    /// exist.
    #[error("job {index}: no module `{reference}`: upload it first")]
    UnknownModule {
        /// Its position in the submission, from 0.
        index: usize,
        /// The hash or name it gave.
        reference: String,
    },
    /// From the store: not found, conflict, too large, or a failure.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The host failed (e.g. a task panicked).
    #[error("{0}")]
    Internal(String),
}

/// Why the follow-ups of an attempt were not admitted: the attempt fails
/// with this (a retryable guest error for a module that may yet be
/// uploaded, a fatal one for a job the policy will never admit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUpRefused {
    /// Which follow-up, and why.
    pub message: String,
    /// Whether the attempt is worth trying again.
    pub retryable: bool,
}

/// Most module references kept resolved; the cache starts over when full.
const RESOLVED_CACHE: usize = 1_024;

/// Queue behaviour that is not per job.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// This host's name, written as the lease owner.
    pub owner: String,
    /// How many jobs run at once.
    pub concurrency: usize,
    /// How long a lease lasts without renewal, in ms.
    pub lease_ms: i64,
    /// Aging: a due job waiting this long gains one priority step.
    pub aging_ms: i64,
    /// How long running jobs may take to finish at shutdown, in ms.
    pub shutdown_grace_ms: u64,
    /// The operator's rules for jobs: defaults, ceilings, escalation.
    pub policy: Policy,
    /// Queues with a concurrency cap (`[queues.NAME] concurrency`): at most
    /// this many of their jobs run at once.
    pub caps: BTreeMap<String, usize>,
    /// What modules may be granted (HTTP origins, secrets, configuration).
    pub grants: Arc<Grants>,
    /// The pool's size bounds, when it scales: `concurrency` is where it
    /// starts, within them. `None`: fixed at `concurrency`.
    pub scaling: Option<Scaling>,
    /// A running slot whose job is still out this long after its
    /// deadline is declared stuck, in ms.
    pub stuck_grace_ms: i64,
    /// How often the pool checks its slots (stuck ones, size), in ms.
    pub check_ms: u64,
    /// How long per-minute history is kept, in ms.
    pub history_keep_ms: i64,
    /// How often this host writes what it counted to the history, in ms.
    pub history_flush_ms: u64,
    /// What retention deletes; nothing when `None`.
    pub retention: Option<Retention>,
    /// How often retention looks for old jobs, in ms.
    pub retention_interval_ms: u64,
    /// Host memory for the reports of jobs in flight, in bytes (see
    /// [`ReportBudget`](crate::worker::ReportBudget)).
    pub report_memory_bytes: u64,
}

/// History is kept two days by default: a day to look back on, and a
/// margin for the day before.
pub const DEFAULT_HISTORY_KEEP_MS: i64 = 48 * 3_600_000;
/// History is flushed every ten seconds by default: charts lag at most
/// that, and a crash loses at most that.
pub const DEFAULT_HISTORY_FLUSH_MS: u64 = 10_000;

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            owner: "wasmjob".to_owned(),
            concurrency: 8,
            lease_ms: 30_000,
            aging_ms: 60_000,
            shutdown_grace_ms: 10_000,
            policy: Policy::default(),
            caps: BTreeMap::new(),
            grants: Arc::new(Grants::default()),
            scaling: None,
            stuck_grace_ms: DEFAULT_STUCK_GRACE_MS,
            check_ms: 1_000,
            history_keep_ms: DEFAULT_HISTORY_KEEP_MS,
            history_flush_ms: DEFAULT_HISTORY_FLUSH_MS,
            retention: None,
            retention_interval_ms: 60_000,
            report_memory_bytes: crate::worker::DEFAULT_REPORT_MEMORY_BYTES,
        }
    }
}

impl QueueConfig {
    /// The pool's size bounds: [`scaling`](Self::scaling), or fixed at
    /// `concurrency`.
    pub fn scaling(&self) -> Scaling {
        self.scaling
            .unwrap_or_else(|| Scaling::fixed(self.concurrency.max(1)))
    }
}

/// How long past its deadline a job's slot may stay out before it is
/// declared stuck: the engine ends a job at its deadline within
/// milliseconds, so a slot still out long after is held by the host, not
/// the job.
pub const DEFAULT_STUCK_GRACE_MS: i64 = 30_000;

/// What this host knows live about a job it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    /// Its latest progress.
    pub progress: Option<Progress>,
    /// When its current attempt started running.
    pub running_since: Option<Millis>,
}

/// What one retention pass ([`Queue::prune_finished`]) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneRun {
    /// Jobs and workflows deleted.
    pub pruned: Pruned,
    /// Store calls (write transactions) it took.
    pub batches: u64,
    /// The longest of them, from call to answer (measured, for reports and
    /// logs; nothing depends on it).
    pub longest_batch: Duration,
}

/// Module references already resolved, and how many times modules have
/// changed (a read that started before a change is not cached).
#[derive(Default)]
struct Resolved {
    generation: u64,
    records: HashMap<String, ModuleRecord>,
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn JobStore>,
    engine: Engine,
    clock: Arc<dyn Clock>,
    config: QueueConfig,
    registry: Arc<Registry>,
    wake: Notify,
    /// When the first [`Queue::wake`] since the dispatcher's last claim
    /// was, in ns after `epoch` plus one (0: none).
    woken_at: AtomicU64,
    /// The origin of `woken_at`.
    epoch: std::time::Instant,
    /// The earliest due time of a delayed job stored since the dispatcher
    /// last looked (`i64::MAX`: none), see [`Queue::take_due_hint`].
    due_hint: AtomicI64,
    /// The idle dispatcher's offer to the next submission (see
    /// `worker::handoff`).
    offers: Offers,
    /// Callers of [`Queue::wait`], by job: told when the job may have
    /// changed state.
    waiters: Mutex<HashMap<JobId, Vec<oneshot::Sender<std::time::Instant>>>>,
    /// Callers of [`Queue::wait`] on a `blocked` job: it changes when
    /// another job ends (which this host may not know leads to it), so
    /// they are told of every change.
    blocked_waiters: Mutex<Vec<oneshot::Sender<std::time::Instant>>>,
    /// Told when a schedule changes (see [`Queue::schedules_changed`]).
    schedules_changed: Notify,
    /// What a module without grants may reach: nothing.
    no_capabilities: Arc<Capabilities>,
    /// Counts the changes this host made, for [`Queue::changes`].
    changes: watch::Sender<u64>,
    /// This host's Prometheus metrics.
    metrics: Arc<Metrics>,
    /// The pool's slots (the pool uses them; the API shows them).
    slots: Arc<Slots>,
    /// Host memory for the reports of jobs in flight.
    budget: crate::worker::ReportBudget,
    /// Module references (hash or name) already resolved. Per host: this
    /// host's queue clears it whenever it changes modules, and whenever
    /// another host sharing the store says it did
    /// ([`Signal::ModulesChanged`]).
    resolved: Mutex<Resolved>,
    /// What this host counted for the history since its last flush.
    tally: Mutex<Tally>,
    /// The operator's alert webhooks, once set.
    alerts: std::sync::OnceLock<Alerts>,
}

impl Inner {
    /// Wakes the idle dispatcher (see [`Queue::wake`]).
    fn wake(&self) {
        // The first wake-up since the last claim is the one timed.
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let _ = self
            .woken_at
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        // The pool's one dispatcher waits: woken now if it waits, or it
        // finds the permit when it next rests (a wake-up during a claim
        // means another claim). Waking waiters *and* storing a permit, as
        // this once did, cost an empty claim after every wake-up.
        self.wake.notify_one();
    }

    /// Wakes the dispatcher for what `jobs` made due: at once if one can
    /// run now; if they are only due later, it learns their first due time
    /// (ending its rest then) without claiming now, which would find
    /// nothing. Jobs blocked on prerequisites wake nobody: their release
    /// does.
    /// Jobs in `claimed` (claimed with the insert) wake nobody either.
    fn wake_for(&self, jobs: &[Submitted], claimed: &[JobId], now: Millis) {
        let mut first_due = i64::MAX;
        for submitted in jobs
            .iter()
            .filter(|s| s.created && !claimed.contains(&s.job.id))
        {
            let job = &submitted.job;
            match job.state {
                JobState::Pending if job.run_at <= now => return self.wake(),
                JobState::Pending => first_due = first_due.min(job.run_at),
                _ => {}
            }
        }
        if first_due < i64::MAX {
            self.due_hint.fetch_min(first_due, Ordering::Relaxed);
            self.wake.notify_one();
        }
    }
}

impl Queue {
    /// A queue over `store`, running jobs with `engine`.
    pub fn new(
        store: Arc<dyn JobStore>,
        engine: Engine,
        clock: Arc<dyn Clock>,
        config: QueueConfig,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        store.observe_writes(metrics.clone());
        let scaling = config.scaling();
        let size = config
            .concurrency
            .clamp(scaling.min, scaling.max.max(scaling.min));
        let slots = Arc::new(Slots::new(size, clock.now()));
        let budget = crate::worker::ReportBudget::new(config.report_memory_bytes);
        let queue = Queue {
            inner: Arc::new(Inner {
                metrics,
                slots,
                budget,
                store,
                engine,
                clock,
                config,
                registry: Arc::new(Registry::new()),
                wake: Notify::new(),
                woken_at: AtomicU64::new(0),
                due_hint: AtomicI64::new(i64::MAX),
                offers: Offers::default(),
                epoch: std::time::Instant::now(),
                waiters: Mutex::new(HashMap::new()),
                blocked_waiters: Mutex::new(Vec::new()),
                schedules_changed: Notify::new(),
                no_capabilities: Capabilities::none(),
                changes: watch::Sender::new(0),
                resolved: Mutex::new(Resolved::default()),
                tally: Mutex::new(Tally::default()),
                alerts: std::sync::OnceLock::new(),
            }),
        };
        // Jobs another host made due wake this host's idle workers too.
        let weak = Arc::downgrade(&queue.inner);
        queue.inner.store.watch_jobs(Arc::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.wake();
            }
        }));
        // What other hosts did that this one must act on.
        let weak = Arc::downgrade(&queue.inner);
        queue.inner.store.watch_signals(Arc::new(move |signal| {
            if let Some(inner) = weak.upgrade() {
                Queue { inner }.heard(signal);
            }
        }));
        queue
    }

    /// Acts on what another host sharing the store did: stops the jobs it
    /// cancelled that run here, answers long polls on the jobs it changed,
    /// forgets module names it may have moved and unloads modules it
    /// deleted.
    fn heard(&self, signal: Signal) {
        match signal {
            Signal::Cancelled(ids) => {
                for &id in &ids {
                    self.inner.registry.cancel(id);
                }
                self.changed(ids);
            }
            Signal::Changed(ids) => self.changed(ids),
            Signal::ChangedMany => {
                let ids: Vec<JobId> = self.waiters().keys().copied().collect();
                self.changed(ids);
            }
            Signal::ModulesChanged(deleted) => {
                self.forget_resolved();
                for hash in deleted {
                    if let Ok(hash) = blake3::Hash::from_hex(&hash) {
                        self.inner.engine.unload(&hash);
                    }
                }
            }
            Signal::SchedulesChanged => self.inner.schedules_changed.notify_one(),
        }
    }

    /// The pool's slots.
    pub fn slots(&self) -> &Arc<Slots> {
        &self.inner.slots
    }

    /// Host memory reserved for the reports of jobs in flight.
    pub fn report_budget(&self) -> &crate::worker::ReportBudget {
        &self.inner.budget
    }

    /// This host's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The Prometheus text exposition of this host's metrics, with the
    /// queues' depths and oldest waits read from the store now.
    pub async fn render_metrics(&self) -> Result<String, Error> {
        let now = self.now();
        let queues = self.inner.store.queues(now).await?;
        let counts = self.inner.slots.counts();
        let pool = PoolSnapshot {
            busy: counts.busy,
            idle: counts.idle,
            stuck: counts.stuck,
            target: counts.target,
        };
        let alerts = self.alerts().map(|alerts| alerts.stats().snapshot());
        let snapshot = Snapshot {
            queues,
            pool,
            now,
            alerts,
        };
        Ok(self.inner.metrics.render(&snapshot))
    }

    /// The store (for the worker pool and the scheduler).
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The queue's configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// The operator's rules for jobs.
    pub fn policy(&self) -> &Policy {
        &self.inner.config.policy
    }

    /// The jobs this host holds (owned by the worker pool).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// The current time by the queue's clock.
    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Wakes idle workers (after a submit, or after a test moved the clock).
    pub fn wake(&self) {
        self.inner.wake();
    }

    /// How long ago the first [`wake`](Self::wake) since the last call
    /// was, if there was one (the dispatcher's wake-up stage).
    pub(crate) fn take_wake(&self) -> Option<Duration> {
        let at = self.inner.woken_at.swap(0, Ordering::Relaxed);
        (at != 0).then(|| {
            let now = self.inner.epoch.elapsed().as_nanos() as u64 + 1;
            Duration::from_nanos(now.saturating_sub(at))
        })
    }

    /// The earliest due time of the delayed jobs stored since the last
    /// call, if any were: a wake-up that only carries this ends the
    /// dispatcher's rest then, not now.
    pub(crate) fn take_due_hint(&self) -> Option<Millis> {
        let due = self.inner.due_hint.swap(i64::MAX, Ordering::Relaxed);
        (due < i64::MAX).then_some(due)
    }

    /// The idle dispatcher's offer to submissions.
    pub(crate) fn offers(&self) -> &Offers {
        &self.inner.offers
    }

    /// A claim of at most `limit` jobs for this host's workers.
    pub(crate) fn claim_request(&self, limit: usize) -> store::ClaimRequest {
        let config = &self.inner.config;
        store::ClaimRequest {
            owner: config.owner.clone(),
            limit,
            lease_ms: config.lease_ms,
            caps: config.caps.clone(),
        }
    }

    /// The offer, for a submission with a job due now (one that is not
    /// cannot be claimed with its insert), if the store claims with an
    /// insert.
    fn take_offer(&self, jobs: &[NewJob], now: Millis) -> Option<(usize, Ticket)> {
        let due = jobs
            .iter()
            .any(|job| job.depends_on.is_empty() && job.run_at <= now);
        if !due || !self.inner.store.claims_with_insert() {
            return None;
        }
        self.inner
            .offers
            .take(&self.inner.slots, &self.inner.registry)
    }

    /// Resolves when [`wake`](Self::wake) is called, or a delayed job is
    /// stored (see [`take_due_hint`](Self::take_due_hint)).
    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await
    }

    // ---- modules ----

    /// Validates `bytes` with the engine (compiling them, off the async
    /// threads) and stores them. Idempotent. Refused as busy
    /// ([`LoadError::Busy`]) when the engine already compiles as many
    /// modules as it may.
    pub async fn upload(
        &self,
        bytes: Vec<u8>,
        name: Option<String>,
    ) -> Result<ModuleRecord, Error> {
        if let Some(name) = &name {
            validate_name(name)?;
        }
        let engine = self.inner.engine.clone();
        let (module, bytes) = tokio::task::spawn_blocking(move || {
            let module = engine.load_with(&bytes, Admission::Refuse);
            (module, bytes)
        })
        .await
        .map_err(|e| Error::Internal(format!("compiler task failed: {e}")))?;
        let module = module?;
        let hash = module.hash().to_hex().to_string();
        let record = self
            .inner
            .store
            .put_module(&hash, module.kind(), &bytes, name.as_deref(), self.now())
            .await;
        // A name may now resolve to this module.
        self.forget_resolved();
        Ok(record?)
    }

    /// A module by hash or name.
    pub async fn module(&self, reference: &str) -> Result<ModuleRecord, Error> {
        Ok(self
            .inner
            .store
            .module(reference)
            .await?
            .ok_or_else(|| store::Error::module_not_found(reference))?)
    }

    /// A module's wasm bytes, as uploaded.
    pub async fn module_wasm(&self, reference: &str) -> Result<Vec<u8>, Error> {
        let record = self.module(reference).await?;
        Ok(self.inner.store.module_bytes(&record.hash).await?)
    }

    /// Every module, newest first.
    pub async fn modules(&self) -> Result<Vec<ModuleRecord>, Error> {
        Ok(self.inner.store.modules().await?)
    }

    /// Deletes a module (by hash or name) that no waiting or running job
    /// needs; returns its record.
    pub async fn delete_module(&self, reference: &str) -> Result<ModuleRecord, Error> {
        let record = self.module(reference).await?;
        let deleted = self
            .inner
            .store
            .delete_module_unless_needed(&record.hash)
            .await;
        self.forget_resolved();
        deleted?;
        if let Ok(hash) = blake3::Hash::from_hex(&record.hash) {
            self.inner.engine.unload(&hash);
        }
        Ok(record)
    }

    /// Deletes the compiled artifacts no stored module needs (deleted
    /// modules', another wasmtime version's); returns how many. Run at
    /// start-up.
    pub async fn collect_artifacts(&self) -> Result<usize, Error> {
        let keep: std::collections::HashSet<String> = self
            .inner
            .store
            .modules()
            .await?
            .into_iter()
            .map(|module| module.hash)
            .collect();
        let engine = self.inner.engine.clone();
        tokio::task::spawn_blocking(move || engine.collect_artifacts(&keep))
            .await
            .map_err(|e| Error::Internal(format!("artifact collection failed: {e}")))
    }

    fn forget_resolved(&self) {
        let mut resolved = self.inner.resolved.lock().expect("resolved modules");
        resolved.generation += 1;
        resolved.records.clear();
    }

    /// Gives a module (hash or name) exactly these grants of the host's
    /// config (replacing what it had); its jobs' next attempts get them.
    pub async fn set_module_grants(
        &self,
        reference: &str,
        grants: Vec<String>,
    ) -> Result<ModuleRecord, Error> {
        self.inner
            .config
            .grants
            .check(&grants)
            .map_err(|why| Invalid::new("grants", why))?;
        let mut grants = grants;
        grants.sort();
        grants.dedup();
        let record = self
            .inner
            .store
            .set_module_grants(reference, grants)
            .await?;
        self.forget_resolved();
        Ok(record)
    }

    /// The operator's grants.
    pub fn grants(&self) -> &Grants {
        &self.inner.config.grants
    }

    /// What a job of module `hash` may reach: the union of the module's
    /// grants, or of those of them the job narrowed itself to (nothing for
    /// a module without any).
    pub async fn capabilities(
        &self,
        hash: &str,
        narrowed: Option<&[String]>,
    ) -> Result<Arc<Capabilities>, Error> {
        let record = self.resolve(hash).await?;
        let grants: Vec<String> = match narrowed {
            // The module may have lost some since: the job keeps only what
            // both still have.
            Some(names) => record
                .grants
                .iter()
                .filter(|g| names.contains(g))
                .cloned()
                .collect(),
            None => record.grants,
        };
        if grants.is_empty() {
            return Ok(self.inner.no_capabilities.clone());
        }
        Ok(Arc::new(self.inner.config.grants.capabilities(&grants)))
    }

    /// The loaded module for `hash`, loading it from the store if this
    /// host has not yet.
    pub async fn loaded(&self, hash: &str) -> Result<Module, Error> {
        if let Ok(parsed) = blake3::Hash::from_hex(hash)
            && let Some(module) = self.inner.engine.get(&parsed)
        {
            return Ok(module);
        }
        let bytes = self.inner.store.module_bytes(hash).await?;
        let engine = self.inner.engine.clone();
        let module = tokio::task::spawn_blocking(move || engine.load(&bytes))
            .await
            .map_err(|e| Error::Internal(format!("compiler task failed: {e}")))??;
        Ok(module)
    }

    /// Resolves a module reference (hash or name) to its record; after the
    /// first time, from memory.
    pub async fn resolve(&self, reference: &str) -> Result<ModuleRecord, Error> {
        let generation = {
            let resolved = self.inner.resolved.lock().expect("resolved modules");
            if let Some(record) = resolved.records.get(reference) {
                return Ok(record.clone());
            }
            resolved.generation
        };
        let record = self
            .inner
            .store
            .module(reference)
            .await?
            .ok_or_else(|| store::Error::module_not_found(reference))?;
        let mut resolved = self.inner.resolved.lock().expect("resolved modules");
        // Modules changed while we read: what we read may be stale.
        if resolved.generation == generation {
            if resolved.records.len() >= RESOLVED_CACHE {
                resolved.records.clear();
            }
            resolved
                .records
                .insert(reference.to_owned(), record.clone());
        }
        Ok(record)
    }

    // ---- jobs ----

    /// Submits jobs: resolves each one's module, applies the policy (the
    /// operator's defaults, every bound), and stores them all in one
    /// durable commit, or none (a unique job whose key is held returns
    /// the holder instead). Every way of creating jobs goes through here.
    pub async fn submit(&self, specs: Vec<JobSpec>) -> Result<Vec<Submitted>, Error> {
        self.submit_with(specs, false).await
    }

    /// Submits one job as [`submit`](Self::submit) does, then waits up to
    /// `wait` for it to be final, as [`wait`](Self::wait) does (for the
    /// holder of its unique key, if one is returned). The submission is
    /// stored at its commit and made durable with the job's outcome, by
    /// one fsync, before this returns: what it returns is durable either
    /// way.
    pub async fn submit_and_wait(
        &self,
        spec: JobSpec,
        wait: Duration,
    ) -> Result<(Submitted, JobDetail, Live), Error> {
        let submitted = self.submit_with(vec![spec], true).await?.remove(0);
        match self.wait(submitted.job.id, wait).await {
            Ok((detail, live)) => Ok((submitted, detail, live)),
            Err(error) => {
                // Stored all the same: durable before anyone is told.
                self.inner.store.durable().await?;
                Err(error)
            }
        }
    }

    /// [`submit`](Self::submit), answered at the commit when `at_commit`
    /// (the caller makes it durable before acknowledging it).
    async fn submit_with(
        &self,
        specs: Vec<JobSpec>,
        at_commit: bool,
    ) -> Result<Vec<Submitted>, Error> {
        let started = std::time::Instant::now();
        let now = self.now();
        let mut jobs = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            jobs.push(self.admit(spec, index, now).await?);
        }
        // Idle workers get the jobs claimed with the insert, in its commit.
        let (claim, ticket) = match self.take_offer(&jobs, now) {
            Some((limit, ticket)) => (Some(self.claim_request(limit)), Some(ticket)),
            None => (None, None),
        };
        let how = store::Insert { claim, at_commit };
        // Logged (in the caller's span), handed off or woken at the
        // commit, before the fsync that lets the store answer: a worker
        // may start the jobs meanwhile, and its log lines come after the
        // submission's.
        let inner = Arc::clone(&self.inner);
        let span = tracing::Span::current();
        let committed = Box::new(move |jobs: &[Submitted], claimed: Vec<store::Claimed>| {
            let _entered = span.enter();
            for submitted in jobs.iter().filter(|s| s.created) {
                let job = &submitted.job;
                tracing::info!(job_id = job.id, queue = %job.queue, module = %job.module, "submitted");
            }
            let taken: Vec<JobId> = claimed.iter().map(|c| c.job.id).collect();
            if let Some(ticket) = ticket {
                ticket.deliver(claimed);
            }
            inner.wake_for(jobs, &taken, now);
        });
        let jobs = self
            .inner
            .store
            .insert_jobs_then(jobs, now, how, committed)
            .await?;
        for submitted in jobs.iter().filter(|s| s.created) {
            let job = &submitted.job;
            self.inner.metrics.submitted(&job.queue, &job.module);
        }
        self.changed(jobs.iter().map(|submitted| submitted.job.id));
        self.inner.metrics.stage(Stage::Submit, started.elapsed());
        Ok(jobs)
    }

    /// Submits a workflow: checks its graph (names, edges, no cycle),
    /// then each job as [`submit`](Self::submit) does, and stores the
    /// workflow and all its jobs in one durable commit, or nothing. Errors
    /// name a job by its index in the request.
    pub async fn submit_workflow(
        &self,
        spec: WorkflowSpec,
    ) -> Result<(WorkflowId, Vec<Job>), Error> {
        let plan = crate::policy::plan(spec)?;
        let now = self.now();
        let mut jobs = Vec::with_capacity(plan.jobs.len());
        for (spec, &index) in plan.jobs.into_iter().zip(&plan.request_index) {
            jobs.push(self.admit(spec, index, now).await?);
        }
        let workflow = NewWorkflow {
            name: plan.name,
            jobs,
        };
        let (id, jobs) = self.inner.store.insert_workflow(workflow, now).await?;
        for job in &jobs {
            self.inner.metrics.submitted(&job.queue, &job.module);
        }
        self.wake();
        self.changed(jobs.iter().map(|job| job.id));
        Ok((id, jobs))
    }

    /// Job `index` of a submission: its module resolved and the policy
    /// applied.
    async fn admit(&self, spec: JobSpec, index: usize, now: Millis) -> Result<NewJob, Error> {
        let record = match self.resolve(&spec.module).await {
            Ok(record) => record,
            Err(Error::Store(store::Error::NotFound(_))) => {
                return Err(Error::UnknownModule {
                    index,
                    reference: spec.module,
                });
            }
            Err(other) => return Err(other),
        };
        let name = if spec.module == record.hash {
            record.name.clone()
        } else {
            Some(spec.module.clone())
        };
        let module = ModuleRef {
            hash: record.hash,
            name,
        };
        self.policy()
            .admit(spec, module, &record.grants, now)
            .map_err(|invalid| Error::InvalidJob { index, invalid })
    }

    /// The follow-up jobs of a completed attempt, admitted as a
    /// submission's jobs are (module resolved, the policy's defaults and
    /// bounds), each waiting for the earlier ones it names. The store
    /// creates them with the attempt's result. A follow-up refused here
    /// fails the attempt (see [`FollowUpRefused`]), so none is created.
    pub async fn admit_follow_ups(
        &self,
        follow_ups: Vec<FollowUp>,
        trace: Option<TraceParent>,
        now: Millis,
    ) -> Result<Vec<NewJob>, FollowUpRefused> {
        let names: Vec<Option<String>> = follow_ups.iter().map(|f| f.name.clone()).collect();
        let mut jobs = Vec::with_capacity(follow_ups.len());
        for (index, follow_up) in follow_ups.into_iter().enumerate() {
            let what = match &follow_up.name {
                Some(name) => format!("follow-up {index} (`{name}`)"),
                None => format!("follow-up {index}"),
            };
            let depends_on = follow_up
                .after
                .iter()
                .map(|&earlier| Dependency {
                    on: Prereq::Earlier(earlier),
                    name: names[earlier].clone().unwrap_or_default(),
                    on_failure: OnFailure::Cancel,
                })
                .collect();
            let spec = JobSpec {
                queue: follow_up.queue,
                priority: follow_up.priority,
                max_attempts: follow_up.max_attempts,
                delay_ms: follow_up.delay_ms,
                depends_on,
                node: follow_up.name,
                trace,
                ..JobSpec::new(follow_up.module, follow_up.input)
            };
            match self.admit(spec, index, now).await {
                Ok(job) => jobs.push(job),
                Err(Error::InvalidJob { invalid, .. }) => {
                    return Err(FollowUpRefused {
                        message: format!("{what}: {invalid}"),
                        retryable: false,
                    });
                }
                Err(Error::UnknownModule { reference, .. }) => {
                    return Err(FollowUpRefused {
                        message: format!("{what}: no module `{reference}`"),
                        retryable: true,
                    });
                }
                Err(other) => {
                    return Err(FollowUpRefused {
                        message: format!("{what}: {other}"),
                        retryable: true,
                    });
                }
            }
        }
        Ok(jobs)
    }

    // ---- schedules ----

    /// Stores a schedule (a new one, or with `replace` over the one of
    /// that name): its name, expression and time zone checked, its job
    /// template admitted by the policy as a submission would be (so a
    /// template that could never create a job is refused now), its next
    /// fire time computed from now. The scheduler hears of it at once.
    pub async fn put_schedule(&self, spec: ScheduleSpec, replace: bool) -> Result<Schedule, Error> {
        crate::schedule::validate_name(&spec.name)?;
        let timezone = spec
            .timezone
            .unwrap_or_else(|| crate::schedule::DEFAULT_TIMEZONE.to_owned());
        let cadence = Cadence::parse(&spec.cron, &timezone)?;
        if !spec.job.depends_on.is_empty() || spec.job.run_at.is_some() {
            return Err(Invalid::new("job", "a schedule's job has no depends_on or run_at").into());
        }
        let now = self.now();
        match self.admit(spec.job.clone(), 0, now).await {
            Ok(_) => {}
            Err(Error::InvalidJob { invalid, .. }) => return Err(invalid.under("job").into()),
            Err(other) => return Err(other),
        }
        let next_at = cadence
            .next_after(now)
            .ok_or_else(|| Invalid::new("cron", format!("`{}` never fires again", spec.cron)))?;
        let schedule = Schedule {
            name: spec.name,
            cron: spec.cron,
            timezone,
            job: spec.job,
            missed: spec.missed,
            paused: spec.paused,
            next_at,
            last_fired_at: None,
            last_job: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        let stored = self.inner.store.put_schedule(schedule, replace).await?;
        self.inner.schedules_changed.notify_one();
        Ok(stored)
    }

    /// One schedule.
    pub async fn schedule(&self, name: &str) -> Result<Schedule, Error> {
        self.inner
            .store
            .schedule(name)
            .await?
            .ok_or_else(|| store::Error::NotFound(format!("schedule `{name}` not found")).into())
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, Error> {
        Ok(self.inner.store.schedules().await?)
    }

    /// Pauses a schedule, or resumes it: its next fire time is then the
    /// first after now (the fire times it was paused through are not made
    /// up).
    pub async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<Schedule, Error> {
        let schedule = self.schedule(name).await?;
        let now = self.now();
        let cadence = Cadence::parse(&schedule.cron, &schedule.timezone)?;
        let next_at = cadence.next_after(now).unwrap_or(schedule.next_at);
        let stored = self
            .inner
            .store
            .set_schedule_paused(name, paused, next_at, now)
            .await?;
        self.inner.schedules_changed.notify_one();
        Ok(stored)
    }

    /// Deletes a schedule; the jobs it created stay.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), Error> {
        self.inner.store.delete_schedule(name).await?;
        self.inner.schedules_changed.notify_one();
        Ok(())
    }

    /// Told whenever a schedule is stored, paused, resumed or deleted: the
    /// scheduler's sleep until the next fire time ends early.
    pub fn schedules_changed(&self) -> &Notify {
        &self.inner.schedules_changed
    }

    /// One scheduler pass at the clock's now: every due schedule creates
    /// at most one job (see [`crate::schedule::plan`]) and moves on to its
    /// next fire time, each in one transaction that only applies if no
    /// other scheduler fired it first. Returns the jobs created.
    pub async fn fire_due_schedules(&self) -> Result<Vec<Job>, Error> {
        const PAGE: usize = 100;
        let now = self.now();
        let mut created = Vec::new();
        loop {
            let due = self.inner.store.due_schedules(now, PAGE).await?;
            let full = due.len() == PAGE;
            let mut moved = false;
            for schedule in due {
                let tick = self.tick(&schedule, now).await;
                let fired = match self.inner.store.fire_schedule(tick.clone(), now).await {
                    Ok(fired) => fired,
                    Err(error) if !error.is_transient() => {
                        // The job could not be stored (its module went
                        // away meanwhile): move on, and say why.
                        let skipped = Tick {
                            job: None,
                            error: Some(format!("the job was not created: {error}")),
                            ..tick
                        };
                        self.inner.store.fire_schedule(skipped, now).await?
                    }
                    Err(error) => return Err(error.into()),
                };
                match fired {
                    Fired::Created(submitted) => {
                        moved = true;
                        let job = &submitted.job;
                        self.inner.metrics.submitted(&job.queue, &job.module);
                        created.push(submitted.job);
                    }
                    Fired::Advanced => moved = true,
                    Fired::Lost => {}
                }
            }
            if !full || !moved {
                break;
            }
        }
        if !created.is_empty() {
            self.wake();
            self.changed(created.iter().map(|job| job.id));
        }
        Ok(created)
    }

    /// What one pass does with a due schedule.
    async fn tick(&self, schedule: &Schedule, now: Millis) -> Tick {
        let stop = |error: String| Tick {
            schedule: schedule.name.clone(),
            expected_next_at: schedule.next_at,
            // Far enough not to come back (a definition that no longer
            // parses or fires is replaced or deleted by its owner).
            next_at: Millis::MAX,
            fired_at: now,
            job: None,
            error: Some(error),
        };
        let cadence = match Cadence::parse(&schedule.cron, &schedule.timezone) {
            Ok(cadence) => cadence,
            Err(invalid) => return stop(invalid.to_string()),
        };
        let Some(plan) = crate::schedule::plan(schedule, &cadence, now) else {
            return stop(format!("`{}` never fires again", schedule.cron));
        };
        let (job, error) = match plan.fire {
            None => (
                None,
                Some(format!(
                    "fire time {} was missed (the scheduler was not running) and skipped",
                    cadence.local(schedule.next_at)
                )),
            ),
            Some(fire) => match self.admit(schedule.job.clone(), 0, now).await {
                Ok(job) => {
                    let note = fire.catch_up.then(|| {
                        format!(
                            "made up for fire times from {} missed while the scheduler was \
                             not running",
                            cadence.local(schedule.next_at)
                        )
                    });
                    (Some(job), note)
                }
                Err(error) => (None, Some(format!("the job was not created: {error}"))),
            },
        };
        Tick {
            schedule: schedule.name.clone(),
            expected_next_at: schedule.next_at,
            next_at: plan.next_at,
            fired_at: plan.fire.map_or(now, |fire| fire.tick),
            job,
            error,
        }
    }

    /// One workflow with its jobs and edges.
    pub async fn workflow(&self, id: WorkflowId) -> Result<WorkflowDetail, Error> {
        self.inner
            .store
            .workflow(id)
            .await?
            .ok_or_else(|| store::Error::NotFound(format!("workflow {id} not found")).into())
    }

    /// Workflows, newest first.
    pub async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>, Error> {
        Ok(self.inner.store.workflows(filter).await?)
    }

    /// Cancels every job of a workflow that is not final (those this host
    /// runs are stopped at once); returns the workflow after.
    pub async fn cancel_workflow(&self, id: WorkflowId) -> Result<WorkflowDetail, Error> {
        let reason = format!("workflow {id} was cancelled");
        let cancelled = self
            .inner
            .store
            .cancel_workflow(id, reason, self.now())
            .await?;
        for &job in &cancelled {
            self.inner.registry.cancel(job);
        }
        self.changed(cancelled);
        self.workflow(id).await
    }

    /// Cancels a job; one this host runs is stopped at once.
    pub async fn cancel(&self, id: JobId) -> Result<Job, Error> {
        let job = self.inner.store.cancel_unless_final(id, self.now()).await?;
        self.inner.registry.cancel(id);
        self.changed([id]);
        Ok(job)
    }

    /// Moves a dead-lettered job back to pending, unless its attempts so
    /// far and a fresh budget would pass
    /// [`Ceilings::attempts_per_job`](crate::policy::Ceilings::attempts_per_job)
    /// (a conflict: every attempt keeps its report).
    pub async fn requeue(&self, id: JobId) -> Result<Job, Error> {
        let (detail, _) = self.job(id).await?;
        let so_far = detail.attempts.last().map_or(0, |a| u64::from(a.number));
        let most = self.policy().ceilings().attempts_per_job();
        if detail.job.state == JobState::Failed
            && so_far + u64::from(detail.job.max_attempts) > most
        {
            return Err(store::Error::Conflict(format!(
                "job {id} has had {so_far} attempts: a requeue would allow more than the \
                 {most} a job may have (ten times ceilings.max_attempts); submit it again instead"
            ))
            .into());
        }
        let job = self.inner.store.requeue_if_failed(id, self.now()).await?;
        self.wake();
        self.changed([id]);
        Ok(job)
    }

    /// Deletes dead-lettered jobs (these, or all when `ids` is empty);
    /// returns how many.
    pub async fn purge(&self, ids: Vec<JobId>) -> Result<u64, Error> {
        let purged = self.inner.store.purge_failed(ids.clone()).await?;
        self.changed(ids);
        Ok(purged)
    }

    /// One job with everything stored about it, plus what this host knows
    /// live (progress, when its running attempt started).
    pub async fn job(&self, id: JobId) -> Result<(JobDetail, Live), Error> {
        let detail = self
            .inner
            .store
            .job(id)
            .await?
            .ok_or_else(|| store::Error::job_not_found(id))?;
        Ok((detail, self.live(id)))
    }

    /// Like [`job`](Self::job), but first waits up to `wait` for the job
    /// to be final (completed, failed or cancelled). Returns the job as it
    /// is when it becomes final or the wait ends, whichever is first. The
    /// wait is wall-clock time: it bounds an HTTP request, not a job.
    ///
    /// Its registrations go when it ends, however it ends: also when the
    /// future is dropped (the client went away), so abandoned long polls
    /// leave nothing behind.
    pub async fn wait(&self, id: JobId, wait: Duration) -> Result<(JobDetail, Live), Error> {
        let deadline = tokio::time::Instant::now() + wait;
        let _registered = Registered { queue: self, id };
        // Whether the last read found the job blocked.
        let mut blocked = false;
        // When the last change this waiter was told of happened.
        let mut told_at: Option<std::time::Instant> = None;
        loop {
            // Register before reading, so a change between the read and
            // the wait is not missed.
            let (told, changed) = oneshot::channel();
            if blocked {
                self.blocked_waiters().push(told);
            } else {
                self.waiters().entry(id).or_default().push(told);
            }
            let found = self.job(id).await;
            if let Some(at) = told_at.take() {
                self.inner.metrics.stage(Stage::Notify, at.elapsed());
            }
            let waited = match &found {
                Ok((detail, _)) if detail.job.state == JobState::Blocked && !blocked => {
                    // Listen to every change instead, and read again.
                    blocked = true;
                    continue;
                }
                Ok((detail, _)) if !detail.job.state.is_final() => {
                    blocked = detail.job.state == JobState::Blocked;
                    match tokio::time::timeout_at(deadline, changed).await {
                        Ok(Ok(at)) => {
                            told_at = Some(at);
                            true
                        }
                        Ok(Err(_)) => true,
                        Err(_) => false,
                    }
                }
                _ => {
                    drop(changed);
                    false
                }
            };
            if !waited {
                let found = if tokio::time::Instant::now() >= deadline {
                    self.job(id).await
                } else {
                    found
                };
                // An outcome may be read before it is durable (the store
                // answers outcomes at commit): it is reported once it is.
                self.inner.store.durable().await?;
                return found;
            }
        }
    }

    /// Lists jobs.
    pub async fn list(&self, filter: JobFilter) -> Result<Vec<Job>, Error> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// Jobs per state, in the whole store.
    pub async fn counts(&self) -> Result<StateCounts, Error> {
        Ok(self.inner.store.counts().await?)
    }

    // ---- queues ----

    /// Every queue: those in use, and those the configuration declares
    /// (with defaults or a cap of their own) even before their first job.
    pub async fn queues(&self) -> Result<Vec<QueueStats>, Error> {
        let now = self.now();
        let mut queues = self.inner.store.queues(now).await?;
        let declared = self
            .policy()
            .queues()
            .map(str::to_owned)
            .chain(self.inner.config.caps.keys().cloned());
        for name in declared {
            if !queues.iter().any(|q| q.name == name) {
                queues.push(QueueStats {
                    name,
                    paused: false,
                    created_at: now,
                    blocked: 0,
                    pending: 0,
                    retrying: 0,
                    running: 0,
                    oldest_due: None,
                });
            }
        }
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(queues)
    }

    /// One queue; [`store::Error::NotFound`] for one neither in use nor
    /// declared.
    pub async fn queue(&self, name: &str) -> Result<QueueStats, Error> {
        self.queues()
            .await?
            .into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| store::Error::NotFound(format!("queue `{name}` not found")).into())
    }

    /// Pauses (it accepts jobs and starts none) or resumes a queue in use
    /// or declared.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<QueueStats, Error> {
        self.queue(name).await?;
        self.inner
            .store
            .set_queue_paused(name, paused, self.now())
            .await?;
        if !paused {
            self.wake();
        }
        self.queue(name).await
    }

    /// The concurrency cap of `queue`, if it has one.
    pub fn cap(&self, queue: &str) -> Option<usize> {
        self.inner.config.caps.get(queue).copied()
    }

    /// Succeeds when the store answers.
    pub async fn ready(&self) -> Result<(), Error> {
        Ok(self.inner.store.ping().await?)
    }

    /// Why the store's writes are failing for now (a full disk, a lock
    /// held by another process), until one commits again.
    pub fn write_trouble(&self) -> Option<String> {
        self.inner.store.write_trouble()
    }

    /// Ids of the jobs running on this host (not those claimed ahead and
    /// waiting for a slot).
    pub fn running(&self) -> Vec<JobId> {
        self.inner
            .registry
            .snapshot()
            .into_iter()
            .filter(|held| matches!(held.phase, crate::worker::Phase::Running { .. }))
            .map(|held| held.id)
            .collect()
    }

    /// Whether this host still holds job `id`: claimed ahead, running, or
    /// finished with its outcome being written. An outcome is counted
    /// (metrics, history tally, alerts) just after its commit, before the
    /// job leaves: a reader can see the job final a moment before.
    pub fn holds(&self, id: JobId) -> bool {
        self.inner.registry.holds(id)
    }

    /// What this host knows live about job `id`.
    pub fn live(&self, id: JobId) -> Live {
        Live {
            progress: self.inner.registry.progress(id),
            running_since: self.inner.registry.running_since(id),
        }
    }

    // ---- history ----

    /// Counts an outcome the store applied in this host's metrics and
    /// history tally, and raises its alert (`job` as claimed). Written to the store by
    /// [`flush_history`](Self::flush_history).
    pub(crate) fn note_outcome(&self, job: &Job, outcome: &store::Outcome) {
        self.inner.metrics.recorded(job, outcome);
        self.tally().note(job, outcome);
        if outcome.decision == crate::policy::Decision::DeadLetter
            && let Some(alerts) = self.inner.alerts.get()
        {
            let error = outcome.attempt.as_ref().and_then(|a| a.report.error());
            alerts.dead_letter(job, error, outcome.at);
        }
    }

    /// Gives the queue the operator's alert webhooks: dead-lettered jobs
    /// are posted to them from then on. Set once; a second call is
    /// ignored.
    pub fn set_alerts(&self, alerts: Alerts) {
        let _ = self.inner.alerts.set(alerts);
    }

    /// The alert webhooks, if set.
    pub fn alerts(&self) -> Option<&Alerts> {
        self.inner.alerts.get()
    }

    /// Writes what this host counted since the last flush to the store,
    /// in one write. If the write fails, the counts are kept for the next
    /// flush. Returns how many rows (minutes × queues) were written.
    pub async fn flush_history(&self) -> Result<usize, Error> {
        let rows = self.tally().take();
        if rows.is_empty() {
            return Ok(0);
        }
        let written = rows.len();
        if let Err(error) = self.inner.store.add_history(rows.clone()).await {
            self.tally().restore(rows);
            return Err(error.into());
        }
        Ok(written)
    }

    /// The history of every queue from `since` to before `until`, each
    /// span of `width` ms (a whole number of minutes) summed over its
    /// minutes and queues into one [`MinuteCounts`], oldest first: `n`
    /// spans where `n = (until - since) / width`, empty ones included. The
    /// duration buckets are summed too, so percentiles over a span are
    /// exact to the bucket (the dashboard's charts read this).
    pub async fn history_spans(
        &self,
        since: Millis,
        until: Millis,
        width: Millis,
    ) -> Result<Vec<MinuteCounts>, Error> {
        if width < crate::history::MINUTE_MS {
            return Err(Invalid::new("width", "must be at least a minute").into());
        }
        if until < since {
            return Err(Invalid::new("until", "must not be before `since`").into());
        }
        let since = minute_of(since);
        let n = ((until - since) / width).max(0) as usize;
        let mut spans = vec![MinuteCounts::default(); n];
        let rows = self.inner.store.history(since, until, None).await?;
        for row in rows {
            let i = ((row.at - since) / width) as usize;
            if let Some(span) = spans.get_mut(i) {
                span.merge(&row.counts);
            }
        }
        Ok(spans)
    }

    /// Deletes history older than the keep age
    /// ([`QueueConfig::history_keep_ms`]); returns how many rows.
    pub async fn prune_history(&self) -> Result<u64, Error> {
        let before = minute_of(self.now().saturating_sub(self.inner.config.history_keep_ms));
        Ok(self.inner.store.prune_history(before).await?)
    }

    /// Per-minute history of `queue` (or of every queue, one row per queue
    /// and minute) for the minutes that start from `since` (rounded down
    /// to its minute) up to before `until`, oldest first. Only minutes in
    /// which something ended have a row. What this host counted since its
    /// last flush is not in it yet (see
    /// [`QueueConfig::history_flush_ms`]).
    pub async fn history(
        &self,
        since: Millis,
        until: Millis,
        queue: Option<&str>,
    ) -> Result<Vec<HistoryMinute>, Error> {
        if until < since {
            return Err(Invalid::new("until", "must not be before `since`").into());
        }
        let rows = self
            .inner
            .store
            .history(minute_of(since), until, queue.map(str::to_owned))
            .await?;
        Ok(rows.into_iter().map(HistoryMinute::from).collect())
    }

    // ---- retention ----

    /// Deletes finished jobs past their age as `retention` says, one
    /// batch (one short write) at a time, yielding between batches so
    /// other writes go first, until a batch comes back short. Returns what
    /// was deleted and the longest batch took.
    pub async fn prune_finished(&self, retention: Retention) -> Result<PruneRun, Error> {
        let mut run = PruneRun::default();
        loop {
            let started = std::time::Instant::now();
            let pruned = self
                .inner
                .store
                .prune_finished(retention, self.now())
                .await?;
            run.longest_batch = run.longest_batch.max(started.elapsed());
            run.batches += 1;
            run.pruned.jobs += pruned.jobs;
            run.pruned.workflows += pruned.workflows;
            if pruned.jobs < retention.batch as u64 {
                return Ok(run);
            }
            tokio::task::yield_now().await;
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.inner.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- signals ----

    /// Tells long polls and [`changes`](Self::changes) subscribers that
    /// these jobs may have changed.
    pub(crate) fn changed(&self, ids: impl IntoIterator<Item = JobId>) {
        let now = std::time::Instant::now();
        {
            let mut waiters = self.waiters();
            if !waiters.is_empty() {
                for id in ids {
                    for told in waiters.remove(&id).into_iter().flatten() {
                        let _ = told.send(now);
                    }
                }
            }
        }
        for told in std::mem::take(&mut *self.blocked_waiters()) {
            let _ = told.send(now);
        }
        // Counted even while nobody listens: the count is a version a
        // reader compares later (the dashboard's event stream does).
        self.inner.changes.send_modify(|n| *n += 1);
    }

    /// A signal that ticks whenever this host changes a job: a submit, a
    /// job starting, a lease renewed, an outcome written, a cancel, a
    /// requeue, a purge, a rescue. Tests wait on it instead of sleeping.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// How many long-poll registrations this host holds, on any job, live
    /// or abandoned (each [`wait`](Self::wait) holds at most one).
    pub fn long_poll_registrations(&self) -> usize {
        let by_job: usize = self.waiters().values().map(Vec::len).sum();
        by_job + self.blocked_waiters().len()
    }

    /// How many long polls ([`wait`](Self::wait)) are waiting on job `id`.
    pub fn long_polls(&self, id: JobId) -> usize {
        self.waiters().get(&id).map_or(0, |list| {
            list.iter().filter(|told| !told.is_closed()).count()
        })
    }

    fn waiters(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<JobId, Vec<oneshot::Sender<std::time::Instant>>>> {
        self.inner.waiters.lock().expect("waiters map")
    }

    fn blocked_waiters(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<oneshot::Sender<std::time::Instant>>> {
        self.inner.blocked_waiters.lock().expect("blocked waiters")
    }

    /// Drops the registrations of callers that stopped waiting.
    fn forget_waiters(&self, id: JobId) {
        self.blocked_waiters().retain(|told| !told.is_closed());
        let mut waiters = self.waiters();
        if let Some(list) = waiters.get_mut(&id) {
            list.retain(|told| !told.is_closed());
            if list.is_empty() {
                waiters.remove(&id);
            }
        }
    }
}

/// A [`Queue::wait`] in progress: its registrations are dropped with it,
/// whether it returned or was dropped (its client disconnected).
struct Registered<'a> {
    queue: &'a Queue,
    id: JobId,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.queue.forget_waiters(self.id);
    }
}

/// The longest module name.
pub const MODULE_NAME_MAX: usize = 128;

/// The characters a module name may use, besides ASCII letters and digits.
const MODULE_NAME_PUNCTUATION: [char; 4] = ['-', '_', '.', '/'];

/// What a module name looks like, as a regular expression (ECMA-262, as
/// the OpenAPI document states it): 1 to [`MODULE_NAME_MAX`] characters
/// from A-Z a-z 0-9 `- _ . /`, and not 64 lowercase hex digits (a hash).
pub fn module_name_pattern() -> String {
    format!("^(?![0-9a-f]{{64}}$){}$", name_characters())
}

/// What a module reference (a hash or a name) looks like: the name's
/// characters, a hash included.
pub fn module_reference_pattern() -> String {
    format!("^{}$", name_characters())
}

/// `[A-Za-z0-9_./-]{1,128}`: the class lists the punctuation with `-`
/// last, so that nothing needs escaping in any regex dialect.
fn name_characters() -> String {
    let mut punctuation: Vec<char> = MODULE_NAME_PUNCTUATION.to_vec();
    punctuation.sort_by_key(|c| *c == '-');
    let punctuation: String = punctuation.into_iter().collect();
    format!("[A-Za-z0-9{punctuation}]{{1,{MODULE_NAME_MAX}}}")
}

/// Checks a module name: short, printable, not a hash (see
/// [`module_name_pattern`]).
pub fn validate_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= MODULE_NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || MODULE_NAME_PUNCTUATION.contains(&c));
    if !ok {
        return Err(Invalid::new(
            "name",
            format!(
                "invalid module name `{name}`: use 1-{MODULE_NAME_MAX} characters from \
                 A-Z a-z 0-9 - _ . /"
            ),
        ));
    }
    if is_hash(name) {
        return Err(Invalid::new(
            "name",
            "invalid module name: it looks like a hash",
        ));
    }
    Ok(())
}

/// Whether `text` is a module hash as the host writes it: 64 lowercase
/// hex digits.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_pattern_states_the_names_validate_name_accepts() {
        assert_eq!(
            module_name_pattern(),
            "^(?![0-9a-f]{64}$)[A-Za-z0-9_./-]{1,128}$"
        );
        assert!(validate_name("team/resize-v2.1_b").is_ok());
        assert!(validate_name(&"n".repeat(MODULE_NAME_MAX)).is_ok());
        for bad in [
            "",
            "a b",
            "é",
            &"n".repeat(MODULE_NAME_MAX + 1),
            &"ab".repeat(32),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        // Upper-case hex is a name, not a hash.
        assert!(validate_name(&"AB".repeat(32)).is_ok());
    }
}
