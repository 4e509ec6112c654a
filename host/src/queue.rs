//! The queue: what the API and the CLI call. It validates requests, keeps
//! the engine's module cache in step with the store, wakes the workers on
//! submit, and reaches running jobs (cancel, progress).
//!
//! It knows the store only through [`JobStore`] and wasmtime only through
//! [`Engine`]; it knows nothing of HTTP.

use crate::clock::{Clock, Millis};
use crate::engine::{CancelToken, Engine, LoadError, Module};
use crate::job::{Escalation, Job, JobId, NewJob, RetryPolicy};
use crate::report::Progress;
use crate::store::{self, JobDetail, JobFilter, JobStore, ModuleRecord};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The module was refused by the engine.
    #[error("{0}")]
    InvalidModule(#[from] LoadError),
    /// A request field is invalid; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// From the store: not found, conflict, or a failure.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The host failed (e.g. a task panicked).
    #[error("{0}")]
    Internal(String),
}

/// Most module references kept resolved; the cache starts over when full.
const RESOLVED_CACHE: usize = 1_024;

/// Queue behaviour that is not per job.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Name written as the lease owner.
    pub owner: String,
    /// How many jobs run at once.
    pub concurrency: usize,
    /// How long a lease lasts without renewal, in ms.
    pub lease_ms: i64,
    /// Limit escalation after out_of_fuel, memory_limit or timeout.
    pub escalation: Escalation,
    /// Aging: a due job waiting this long gains one priority step.
    pub aging_ms: i64,
    /// How long running jobs may take to finish at shutdown, in ms.
    pub shutdown_grace_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            owner: "wasmjob".to_owned(),
            concurrency: 8,
            lease_ms: 30_000,
            escalation: Escalation::default(),
            aging_ms: 60_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// A job this process holds the lease of: claimed and waiting in the
/// worker's local buffer, or running.
pub(crate) struct Running {
    pub cancel: CancelToken,
    pub token: String,
    pub progress: Arc<Mutex<Option<Progress>>>,
    /// Whether it has left the buffer and is running.
    pub started: bool,
}

/// Module references already resolved, and how many times modules have
/// changed (a read that started before a change is not cached).
#[derive(Default)]
pub(crate) struct Resolved {
    generation: u64,
    records: HashMap<String, ModuleRecord>,
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn JobStore>,
    pub engine: Engine,
    pub clock: Arc<dyn Clock>,
    pub config: QueueConfig,
    pub wake: Notify,
    pub running: Mutex<HashMap<JobId, Running>>,
    /// Callers of [`Queue::wait`], by job: told when the job may have
    /// changed state.
    pub waiters: Mutex<HashMap<JobId, Vec<oneshot::Sender<()>>>>,
    /// Module references (hash or name) already resolved. Only this queue
    /// changes modules, and it clears the cache whenever it does, so an
    /// entry is never stale.
    pub resolved: Mutex<Resolved>,
    pub shutting_down: AtomicBool,
}

impl Queue {
    /// A queue over `store`, running jobs with `engine`.
    pub fn new(
        store: Arc<dyn JobStore>,
        engine: Engine,
        clock: Arc<dyn Clock>,
        config: QueueConfig,
    ) -> Self {
        Queue {
            inner: Arc::new(Inner {
                store,
                engine,
                clock,
                config,
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                waiters: Mutex::new(HashMap::new()),
                resolved: Mutex::new(Resolved::default()),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// The store.
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

    /// The current time by the queue's clock.
    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Wakes idle workers (after a submit, or after a test moved the clock).
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
        self.inner.wake.notify_one();
    }

    /// Validates `bytes` with the engine (compiling them, off the async
    /// threads) and stores them. Idempotent.
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
            let module = engine.load(&bytes);
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

    /// Deletes a module (by hash or name) that no waiting or running job
    /// needs; returns its record.
    pub async fn delete_module(&self, module: &str) -> Result<ModuleRecord, Error> {
        let record = self
            .inner
            .store
            .module(module)
            .await?
            .ok_or_else(|| store::Error::NotFound(format!("module `{module}` not found")))?;
        let deleted = self.inner.store.delete_module(&record.hash).await;
        self.forget_resolved();
        deleted?;
        if let Ok(hash) = blake3::Hash::from_hex(&record.hash) {
            self.inner.engine.unload(&hash);
        }
        Ok(record)
    }

    fn forget_resolved(&self) {
        let mut resolved = self.inner.resolved.lock().expect("resolved modules");
        resolved.generation += 1;
        resolved.records.clear();
    }

    /// The loaded module for `hash`, loading it from the store if this
    /// process has not yet.
    pub async fn module(&self, hash: &str) -> Result<Module, Error> {
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
    pub async fn resolve(&self, module: &str) -> Result<ModuleRecord, Error> {
        let generation = {
            let resolved = self.inner.resolved.lock().expect("resolved modules");
            if let Some(record) = resolved.records.get(module) {
                return Ok(record.clone());
            }
            resolved.generation
        };
        let record =
            self.inner.store.module(module).await?.ok_or_else(|| {
                Error::Invalid(format!("unknown module `{module}`: upload it first"))
            })?;
        let mut resolved = self.inner.resolved.lock().expect("resolved modules");
        // Modules changed while we read: what we read may be stale.
        if resolved.generation == generation {
            if resolved.records.len() >= RESOLVED_CACHE {
                resolved.records.clear();
            }
            resolved.records.insert(module.to_owned(), record.clone());
        }
        Ok(record)
    }

    /// Submits jobs in one durable commit and wakes the workers.
    pub async fn submit(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, Error> {
        for job in &jobs {
            validate_job(job)?;
        }
        let jobs = self.inner.store.submit(jobs, self.now()).await?;
        self.wake();
        Ok(jobs)
    }

    /// Cancels a job; a running one is stopped at once.
    pub async fn cancel(&self, id: JobId) -> Result<Job, Error> {
        let job = self.inner.store.cancel(id, self.now()).await?;
        if let Some(running) = self.inner.running.lock().expect("running map").get(&id) {
            running.cancel.cancel();
        }
        self.changed([id]);
        Ok(job)
    }

    /// Moves a dead-lettered job back to pending.
    pub async fn requeue(&self, id: JobId) -> Result<Job, Error> {
        let job = self.inner.store.requeue(id, self.now()).await?;
        self.wake();
        Ok(job)
    }

    /// One job with everything stored about it, plus live progress.
    pub async fn job(&self, id: JobId) -> Result<(JobDetail, Option<Progress>), Error> {
        let detail = self
            .inner
            .store
            .job(id)
            .await?
            .ok_or_else(|| store::Error::NotFound(format!("job {id}")))?;
        Ok((detail, self.progress(id)))
    }

    /// Like [`job`](Self::job), but first waits up to `wait` for the job
    /// to be final (completed, failed or cancelled). Returns the job as it
    /// is when it becomes final or the wait ends, whichever is first. The
    /// wait is wall-clock time: it bounds an HTTP request, not a job.
    pub async fn wait(
        &self,
        id: JobId,
        wait: Duration,
    ) -> Result<(JobDetail, Option<Progress>), Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register before reading, so a change between the read and
            // the wait is not missed.
            let (told, changed) = oneshot::channel();
            self.waiters().entry(id).or_default().push(told);
            let found = self.job(id).await;
            let waited = match &found {
                Ok((detail, _)) if !detail.job.state.is_final() => {
                    tokio::time::timeout_at(deadline, changed).await.is_ok()
                }
                _ => {
                    drop(changed);
                    false
                }
            };
            if !waited {
                self.forget_waiters(id);
                return if tokio::time::Instant::now() >= deadline {
                    self.job(id).await
                } else {
                    found
                };
            }
        }
    }

    /// Tells callers of [`wait`](Self::wait) that these jobs may have
    /// changed state.
    pub(crate) fn changed(&self, ids: impl IntoIterator<Item = JobId>) {
        let mut waiters = self.waiters();
        if waiters.is_empty() {
            return;
        }
        for id in ids {
            for told in waiters.remove(&id).into_iter().flatten() {
                let _ = told.send(());
            }
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Vec<oneshot::Sender<()>>>> {
        self.inner.waiters.lock().expect("waiters map")
    }

    /// Drops the registrations of callers that stopped waiting.
    fn forget_waiters(&self, id: JobId) {
        let mut waiters = self.waiters();
        if let Some(list) = waiters.get_mut(&id) {
            list.retain(|told| !told.is_closed());
            if list.is_empty() {
                waiters.remove(&id);
            }
        }
    }

    /// The latest progress of a job running in this process.
    pub fn progress(&self, id: JobId) -> Option<Progress> {
        let running = self.inner.running.lock().expect("running map");
        running
            .get(&id)
            .and_then(|r| r.progress.lock().expect("progress").clone())
    }

    /// Lists jobs.
    pub async fn list(&self, filter: JobFilter) -> Result<Vec<Job>, Error> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// Ids of the jobs running in this process (not those claimed and
    /// still waiting in the worker's buffer).
    pub fn running(&self) -> Vec<JobId> {
        let mut ids: Vec<_> = self
            .inner
            .running
            .lock()
            .expect("running map")
            .iter()
            .filter(|(_, r)| r.started)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }
}

/// Checks a module name: short, printable, not a hash.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok {
        return Err(Error::Invalid(format!(
            "invalid module name `{name}`: use 1-128 characters from A-Z a-z 0-9 - _ . /"
        )));
    }
    if blake3::Hash::from_hex(name).is_ok() {
        return Err(Error::Invalid(
            "invalid module name: it looks like a hash".to_owned(),
        ));
    }
    Ok(())
}

fn validate_job(job: &NewJob) -> Result<(), Error> {
    if job.priority > crate::job::PRIORITY_LOW {
        return Err(Error::Invalid(format!(
            "priority {} is out of range: use 0 (critical) to 10 (low)",
            job.priority
        )));
    }
    if job.max_attempts == 0 {
        return Err(Error::Invalid("max_attempts must be at least 1".to_owned()));
    }
    validate_retry(&job.retry)?;
    if job.limits.timeout_ms == 0 {
        return Err(Error::Invalid(
            "limits.timeout_ms must be greater than 0".to_owned(),
        ));
    }
    Ok(())
}

fn validate_retry(retry: &RetryPolicy) -> Result<(), Error> {
    retry.validate().map_err(Error::Invalid)
}
