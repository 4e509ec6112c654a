//! The SQLite backend: [`SqliteStore`].
//!
//! One database file, `<data_dir>/wasmjob.db`, in WAL mode, with module
//! bytes beside it in `<data_dir>/modules/`. Writes go through one writer
//! thread that commits whatever is queued in one transaction (group
//! commit, `writer`); reads use a small pool of read connections on
//! tokio's blocking threads (`readers`). Nothing here blocks an async
//! runtime thread on SQLite or on the filesystem.
//!
//! Submodules, one concern each: `connection` (pragmas, error mapping),
//! `schema` (migrations), `writer` (group commit), `readers` (read pool),
//! `rows` (row layouts), `jobs` and `outcomes` (job writes), `read` (job
//! reads), `history` (per-minute history), `retention` (old finished jobs
//! deleted), `modules` (module metadata), `blobs` (module files).

mod blobs;
mod connection;
mod graph;
mod history;
mod jobs;
mod modules;
mod outcomes;
mod read;
mod readers;
mod retention;
mod rows;
mod schedules;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

use super::{
    ClaimRequest, Claimed, Error, Fired, Insert, JobFilter, JobStore, Lease, LeaseFilter,
    LeasedJob, ModuleRecord, OnInsert, Outcome, Pruned, QueueStats, Recorded, Result, Retention,
    StateCounts, Tick, WorkflowFilter, WriteObserver,
};
use crate::clock::Millis;
use crate::history::MinuteRow;
use crate::job::{
    Job, JobDetail, JobId, NewJob, NewWorkflow, Submitted, Workflow, WorkflowDetail, WorkflowId,
};
use crate::report::ModuleKind;
use crate::schedule::Schedule;
use blobs::Blobs;
use connection::{Role, Settings};
use outcomes::Require;
use readers::Readers;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use writer::{Durability, Writer};

/// The database's file name inside the data directory.
const DATABASE_FILE: &str = "wasmjob.db";
/// The module files' directory inside the data directory.
const MODULES_DIR: &str = "modules";
/// The file whose lock says a store has the data directory open.
const LOCK_FILE: &str = "wasmjob.lock";

/// Where and how [`SqliteStore`] keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The directory holding `wasmjob.db` and `modules/`; created if
    /// missing.
    pub data_dir: PathBuf,
    /// Idle read connections kept open.
    pub readers: usize,
    /// How long a statement waits for a lock another process holds (a
    /// backup, a second CLI) before failing.
    pub busy_timeout: Duration,
    /// The largest string or blob the database accepts (an input, an
    /// output, a report), when lower than SQLite's own limit of 1 GB. A
    /// larger value is refused with [`Error::TooLarge`].
    pub max_value_bytes: Option<usize>,
    /// When an acknowledged write reaches the disk [default: `Fsync`].
    pub durability: DurabilityMode,
}

/// When an acknowledged write reaches the disk (`store.durability`).
///
/// The database is in WAL mode either way, so a crash never corrupts it;
/// the modes differ only in how much recent work a power loss (or a kernel
/// crash) can take back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// Every acknowledged write is fsync'd first: a durable batch is
    /// answered after an fsync of the WAL that started after its commit
    /// (one fsync covers every batch committed while the one before it
    /// ran). Nothing acknowledged is lost, whatever happens to the
    /// machine.
    #[default]
    Fsync,
    /// Commits are written to the WAL without an fsync
    /// (`synchronous = NORMAL`) and the syncer thread fsyncs the WAL about
    /// once a second ([`SYNC_INTERVAL`]). An acknowledged write survives
    /// a crash or kill of the process (it is in the operating system's
    /// page cache); a power loss or kernel crash can undo about the last
    /// second of acknowledged writes, never more, and leaves a consistent
    /// database (SQLite's WAL frames are checksummed).
    Interval,
}

/// How often [`DurabilityMode::Interval`] makes the writes it acknowledged
/// durable: what a power loss can undo, the same bound as Redis's AOF
/// `everysec`.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

impl std::str::FromStr for DurabilityMode {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "fsync" => Ok(DurabilityMode::Fsync),
            "interval" => Ok(DurabilityMode::Interval),
            other => Err(format!(
                "unknown durability `{other}`: use fsync or interval"
            )),
        }
    }
}

impl StoreConfig {
    /// Enough idle readers for the API, the workers and the scheduler to
    /// read at once; a burst beyond it opens (and then closes) more.
    pub const DEFAULT_READERS: usize = 4;
    /// Other processes hold the lock only for a short transaction; five
    /// seconds of waiting means something is wrong.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            readers: Self::DEFAULT_READERS,
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            max_value_bytes: None,
            durability: DurabilityMode::Fsync,
        }
    }
}

/// The job store on SQLite. See the module docs.
///
/// [`JobStore::list`] returns 100 jobs when the filter's `limit` is 0 and
/// never more than 1,000.
pub struct SqliteStore {
    data_dir: PathBuf,
    /// Holds the data directory's exclusive lock until closed or dropped.
    lock: std::sync::Mutex<Option<std::fs::File>>,
    writer: Writer,
    readers: Arc<Readers>,
    blobs: Blobs,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `config.data_dir` and brings
    /// its schema up to date. Blocks briefly (file creation, migrations):
    /// call it before serving, or from a blocking thread.
    ///
    /// One store at a time may have a data directory open, in this process
    /// or any other: a second open fails, naming the directory, until the
    /// first store is closed or dropped. So every lease in the database belongs to
    /// this store's host or to a previous process that is gone, which is
    /// what makes rescuing every running job at start-up safe (see
    /// `scheduler::recover`).
    pub fn open(config: StoreConfig) -> Result<SqliteStore> {
        std::fs::create_dir_all(&config.data_dir)?;
        let lock = lock(&config.data_dir)?;
        let blobs = Blobs::open(config.data_dir.join(MODULES_DIR))?;
        let path = config.data_dir.join(DATABASE_FILE);
        let settings = Settings {
            busy_timeout: config.busy_timeout,
            max_value_bytes: config.max_value_bytes,
        };
        let mut conn = connection::open(&path, Role::Writer, &settings)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            data_dir: config.data_dir,
            lock: std::sync::Mutex::new(Some(lock)),
            writer: Writer::start(conn, config.durability, wal_path(&path))?,
            readers: Readers::new(path, config.readers, settings),
            blobs,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Write batches committed (or attempted) since open: compared with the
    /// number of writes, it shows how much group commit is batching.
    pub fn batches(&self) -> u64 {
        self.writer.batches()
    }

    /// Fsyncs of the WAL since open: about one per durable batch in
    /// [`DurabilityMode::Fsync`], one per [`SYNC_INTERVAL`] of writes in
    /// [`DurabilityMode::Interval`].
    pub fn wal_syncs(&self) -> u64 {
        self.writer.syncs()
    }

    /// Shuts the store down: writes already queued are committed, later
    /// calls fail, and the writer thread is joined (its connection closed,
    /// the WAL checkpointed). Dropping the store without closing it is safe
    /// too (every acknowledged write is already durable) but does not wait.
    pub async fn close(&self) {
        self.readers.close();
        if let Some(thread) = self.writer.close() {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the store's writer thread panicked");
            }
        }
        // The directory is free for the next store once the writer is done.
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(lock);
    }
}

/// The WAL file SQLite keeps beside the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Takes the data directory's exclusive lock (released when the file is
/// closed, including when the process dies).
fn lock(data_dir: &Path) -> Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
            "{} is in use by another wasmjob host (it holds {})",
            data_dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
    }
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn put_module(
        &self,
        hash: &str,
        kind: ModuleKind,
        bytes: &[u8],
        name: Option<&str>,
        now: Millis,
    ) -> Result<ModuleRecord> {
        let hash = hash.to_owned();
        let bytes: Arc<[u8]> = bytes.into();
        let name = name.map(str::to_owned);
        // Hash and write the file first, off the writer thread: metadata
        // is only recorded for bytes that are on disk.
        let blobs = self.blobs.clone();
        let (h, b) = (hash.clone(), Arc::clone(&bytes));
        tokio::task::spawn_blocking(move || {
            if !blobs::is_hash(&h) || blake3::hash(&b).to_hex().as_str() != h {
                return Err(Error::Conflict(format!(
                    "the module's bytes do not hash to {h}"
                )));
            }
            blobs.ensure(&h, &b)
        })
        .await
        .map_err(task_failed)??;
        let blobs = self.blobs.clone();
        self.writer
            .call(move |conn| {
                let module = modules::NewModule {
                    hash: &hash,
                    kind,
                    bytes: &bytes,
                    name: name.as_deref(),
                };
                modules::put(conn, &blobs, module, now)
            })
            .await
    }

    async fn module(&self, hash_or_name: &str) -> Result<Option<ModuleRecord>> {
        let key = hash_or_name.to_owned();
        self.readers
            .read(move |conn| modules::lookup(conn, &key))
            .await
    }

    async fn module_bytes(&self, hash: &str) -> Result<Vec<u8>> {
        if !blobs::is_hash(hash) {
            return Err(Error::module_not_found(hash));
        }
        let hash = hash.to_owned();
        let blobs = self.blobs.clone();
        self.readers
            .read(move |conn| {
                if !modules::exists(conn, &hash)? {
                    return Err(Error::module_not_found(&hash));
                }
                blobs.read(&hash)
            })
            .await
    }

    async fn modules(&self) -> Result<Vec<ModuleRecord>> {
        self.readers.read(modules::all).await
    }

    async fn set_module_grants(
        &self,
        hash_or_name: &str,
        grants: Vec<String>,
    ) -> Result<ModuleRecord> {
        let key = hash_or_name.to_owned();
        self.writer
            .call(move |conn| modules::set_grants(conn, &key, &grants))
            .await
    }

    async fn delete_module_unless_needed(&self, hash: &str) -> Result<()> {
        if !blobs::is_hash(hash) {
            return Err(Error::module_not_found(hash));
        }
        let h = hash.to_owned();
        self.writer
            .call(move |conn| modules::delete(conn, &h))
            .await?;
        // The file goes once the delete is committed, unless the module
        // was uploaded again meanwhile.
        let (h, blobs) = (hash.to_owned(), self.blobs.clone());
        self.writer
            .call(move |conn| modules::remove_unused_file(conn, &blobs, &h))
            .await
    }

    async fn insert_jobs(&self, jobs: Vec<NewJob>, now: Millis) -> Result<Vec<Submitted>> {
        self.insert_jobs_then(jobs, now, Insert::default(), Box::new(|_, _| ()))
            .await
    }

    async fn insert_jobs_then(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        how: Insert,
        committed: OnInsert,
    ) -> Result<Vec<Submitted>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let durability = match how.at_commit {
            true => Durability::Lazy,
            false => Durability::Durable,
        };
        // Workers may claim the jobs as soon as they are committed, while
        // the fsync that lets this call answer runs; a claim made here
        // takes them in the same commit (one transaction, and the pages
        // the insert dirtied written once).
        let claim = how.claim.filter(|_| self.claims_with_insert());
        let (submitted, _) = self
            .writer
            .call_then(
                durability,
                move |conn| {
                    let submitted = jobs::insert(conn, &jobs, now, jobs::Origin::default())?;
                    let claimed = match claim {
                        Some(request) if request.limit > 0 => jobs::claim(conn, &request, now)?,
                        _ => Vec::new(),
                    };
                    Ok((submitted, claimed))
                },
                Box::new(
                    move |(submitted, claimed): &mut (Vec<Submitted>, Vec<Claimed>)| {
                        committed(submitted, std::mem::take(claimed))
                    },
                ),
            )
            .await?;
        Ok(submitted)
    }

    /// With `fsync` durability: the answer waits for an fsync anyway,
    /// and the claim rewrites the pages the insert dirtied. With
    /// `interval` the answer comes at the commit, which a claim would
    /// only delay.
    fn claims_with_insert(&self) -> bool {
        self.writer.syncs_each_durable_batch()
    }

    async fn insert_workflow(
        &self,
        workflow: NewWorkflow,
        now: Millis,
    ) -> Result<(WorkflowId, Vec<Job>)> {
        self.writer
            .call(move |conn| {
                let id = graph::insert_workflow(conn, workflow.name.as_deref(), now)?;
                let origin = jobs::Origin {
                    workflow: Some(id),
                    ..jobs::Origin::default()
                };
                let stored = jobs::insert(conn, &workflow.jobs, now, origin)?;
                Ok((id, stored.into_iter().map(|s| s.job).collect()))
            })
            .await
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowDetail>> {
        self.readers
            .read(move |conn| graph::workflow(conn, id))
            .await
    }

    async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>> {
        self.readers
            .read(move |conn| graph::workflows(conn, &filter))
            .await
    }

    async fn cancel_workflow(
        &self,
        id: WorkflowId,
        reason: String,
        now: Millis,
    ) -> Result<Vec<JobId>> {
        self.writer
            .call(move |conn| {
                let mut cancelled = Vec::new();
                // Newest first: dependents come after their prerequisites,
                // so each job is cancelled for the workflow's reason, not
                // by the cascade of a prerequisite's cancel.
                for job in graph::unfinished(conn, id)?.into_iter().rev() {
                    // A job outside the workflow may have cascaded to it.
                    match jobs::cancel(conn, job, Some(&reason), now) {
                        Ok(_) => cancelled.push(job),
                        Err(Error::Conflict(_)) => {}
                        Err(other) => return Err(other),
                    }
                }
                Ok(cancelled)
            })
            .await
    }

    async fn claim_due(&self, request: ClaimRequest, now: Millis) -> Result<Vec<Claimed>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        // Lazy: a claim that a power loss undoes only means the job runs
        // again (see `writer`).
        self.writer
            .call_with(Durability::Lazy, move |conn| {
                jobs::claim(conn, &request, now)
            })
            .await
    }

    async fn renew_held_leases(&self, leases: Vec<Lease>, until: Millis) -> Result<Vec<JobId>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .call_with(Durability::Lazy, move |conn| {
                jobs::renew(conn, &leases, until)
            })
            .await
    }

    async fn record_if_leased(&self, outcomes: Vec<Outcome>) -> Result<Vec<Result<Recorded>>> {
        // Answered at commit: the recorder goes on while the fsync runs
        // (within LAZY_SYNC, or with the next durable batch); a long poll
        // reporting the outcome waits for `durable` first.
        self.apply(outcomes, Require::Held, Durability::Lazy).await
    }

    async fn leased_jobs(&self, filter: LeaseFilter, limit: usize) -> Result<Vec<LeasedJob>> {
        self.readers
            .read(move |conn| outcomes::leased(conn, filter, limit))
            .await
    }

    async fn rescue_if_expired(
        &self,
        outcomes: Vec<Outcome>,
        now: Millis,
    ) -> Result<Vec<Result<Recorded>>> {
        self.apply(outcomes, Require::ExpiredBefore(now), Durability::Durable)
            .await
    }

    async fn cancel_unless_final(&self, id: JobId, now: Millis) -> Result<Job> {
        self.writer
            .call(move |conn| jobs::cancel(conn, id, None, now))
            .await
    }

    async fn requeue_if_failed(&self, id: JobId, now: Millis) -> Result<Job> {
        self.writer
            .call(move |conn| jobs::requeue(conn, id, now))
            .await
    }

    async fn purge_failed(&self, ids: Vec<JobId>) -> Result<u64> {
        self.writer.call(move |conn| jobs::purge(conn, &ids)).await
    }

    async fn age_waiting(&self, after_ms: i64, now: Millis) -> Result<u64> {
        self.writer
            .call(move |conn| jobs::age(conn, after_ms, now))
            .await
    }

    async fn job(&self, id: JobId) -> Result<Option<JobDetail>> {
        self.readers.read(move |conn| read::job(conn, id)).await
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>> {
        self.readers
            .read(move |conn| read::list(conn, &filter))
            .await
    }

    async fn counts(&self) -> Result<StateCounts> {
        self.readers.read(read::counts).await
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        self.readers.read(read::next_due).await
    }

    async fn queues(&self, now: Millis) -> Result<Vec<QueueStats>> {
        self.readers.read(move |conn| read::queues(conn, now)).await
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool, now: Millis) -> Result<()> {
        let queue = queue.to_owned();
        self.writer
            .call(move |conn| jobs::set_paused(conn, &queue, paused, now))
            .await
    }

    async fn put_schedule(&self, schedule: Schedule, replace: bool) -> Result<Schedule> {
        self.writer
            .call(move |conn| schedules::put(conn, &schedule, replace))
            .await
    }

    async fn schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let name = name.to_owned();
        self.readers
            .read(move |conn| schedules::get(conn, &name))
            .await
    }

    async fn schedules(&self) -> Result<Vec<Schedule>> {
        self.readers.read(schedules::all).await
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next_at: Millis,
        now: Millis,
    ) -> Result<Schedule> {
        let name = name.to_owned();
        self.writer
            .call(move |conn| schedules::set_paused(conn, &name, paused, next_at, now))
            .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .call(move |conn| schedules::delete(conn, &name))
            .await
    }

    async fn due_schedules(&self, now: Millis, limit: usize) -> Result<Vec<Schedule>> {
        self.readers
            .read(move |conn| schedules::due(conn, now, limit))
            .await
    }

    async fn next_schedule_at(&self) -> Result<Option<Millis>> {
        self.readers.read(schedules::next_at).await
    }

    async fn fire_schedule(&self, tick: Tick, now: Millis) -> Result<Fired> {
        self.writer
            .call(move |conn| schedules::fire(conn, &tick, now))
            .await
    }

    async fn prune_finished(&self, retention: Retention, now: Millis) -> Result<Pruned> {
        // Lazy: rows a power loss brings back are deleted again.
        self.writer
            .call_with(Durability::Lazy, move |conn| {
                retention::prune(conn, &retention, now)
            })
            .await
    }

    async fn add_history(&self, rows: Vec<MinuteRow>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // Lazy: a flush a power loss undoes costs only statistics.
        self.writer
            .call_with(Durability::Lazy, move |conn| history::add(conn, &rows))
            .await
    }

    async fn history(
        &self,
        since: Millis,
        until: Millis,
        queue: Option<String>,
    ) -> Result<Vec<MinuteRow>> {
        self.readers
            .read(move |conn| history::read(conn, since, until, queue.as_deref()))
            .await
    }

    async fn prune_history(&self, before: Millis) -> Result<u64> {
        self.writer
            .call_with(Durability::Lazy, move |conn| history::prune(conn, before))
            .await
    }

    async fn ping(&self) -> Result<()> {
        if !self.writer.is_running() {
            return Err(Error::Database(
                "the store's writer is not running".to_owned(),
            ));
        }
        if let Some(failure) = self.writer.sync_failure() {
            return Err(Error::Unavailable(unsynced(&failure)));
        }
        self.readers.read(read::ping).await
    }

    fn write_trouble(&self) -> Option<String> {
        self.writer.trouble().map(|trouble| match trouble {
            writer::Trouble::Full => "storage full: writes fail until space returns (submissions \
                 are refused with 507; finished attempts are kept in memory and written then)"
                .to_owned(),
            writer::Trouble::Busy => {
                "database locked by another process: writes are waiting for it".to_owned()
            }
            writer::Trouble::Unsynced => unsynced(&self.writer.sync_failure().unwrap_or_default()),
        })
    }

    fn observe_writes(&self, observer: Arc<dyn WriteObserver>) {
        self.writer.observe(observer);
    }

    async fn durable(&self) -> Result<()> {
        self.writer.durable().await
    }
}

/// What the host says once an fsync of the WAL failed (`failure`).
fn unsynced(failure: &str) -> String {
    format!(
        "{failure}: writes acknowledged around it may not be on disk, so every write is refused; \
         check the disk, then restart the host (it recovers from the files)"
    )
}

impl SqliteStore {
    /// Applies outcomes in one command: all at once, no savepoint each,
    /// which is the common case. If one fails, that command is rolled back
    /// and the outcomes are applied again one savepoint each, so the one
    /// that cannot be written gets its error and the others stand.
    async fn apply(
        &self,
        outcomes: Vec<Outcome>,
        require: Require,
        durability: Durability,
    ) -> Result<Vec<Result<Recorded>>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = Arc::new(outcomes);
        let all = Arc::clone(&outcomes);
        let applied = self
            .writer
            .call_with(durability, move |conn| {
                outcomes::apply_all(conn, &all, require)
            })
            .await;
        match applied {
            Ok(results) => Ok(results),
            Err(error) => {
                tracing::warn!(%error, outcomes = outcomes.len(), "writing outcomes one by one");
                self.writer
                    .call_with(durability, move |conn| {
                        outcomes::apply_each(conn, &outcomes, require)
                    })
                    .await
            }
        }
    }
}

fn task_failed(error: tokio::task::JoinError) -> Error {
    Error::Database(format!("a store task failed: {error}"))
}
