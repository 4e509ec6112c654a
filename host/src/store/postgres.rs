//! The PostgreSQL backend: [`PostgresStore`], so that several hosts share
//! one queue.
//!
//! One database (or one schema of it) holds everything, module bytes
//! included, so every host sharing it sees the same jobs and modules.
//! Connections come from a `deadpool-postgres` pool; every verb is one
//! transaction on one pooled connection (statements prepared once per
//! connection), in PostgreSQL's default `READ COMMITTED` isolation with
//! row locks where a verb reads before it writes (`FOR UPDATE`), so
//! concurrent verbs from several hosts serialize where they must:
//!
//! - the claim is one statement that locks each queue's due jobs with
//!   `FOR UPDATE SKIP LOCKED` in claim order (so hosts claiming together
//!   never wait on each other nor take the same job), queues with a cap
//!   serialized by an advisory lock so a cap holds across hosts;
//! - an outcome, a cancel or a requeue locks its job's row first;
//! - a unique key is checked under an advisory lock on the key, so two
//!   submissions of one key store one job;
//! - a schedule's fire time is a compare-and-set of its `next_at`.
//!
//! Time is the caller's, as for every backend (`now` is a parameter of the
//! contract); [`JobStore::clock`] reads the database's clock so that every
//! host sharing it can follow one clock
//! ([`crate::clock::FollowedClock`]), and lease expiry never depends on
//! a host's own clock being right.
//!
//! Hosts wake each other with `LISTEN`/`NOTIFY` (`listen`), polling
//! being the fallback, and tell each other what they changed that the
//! others must act on (cancels, finished jobs, module changes: `signals`).
//! One host at a time leads (`leader`): it holds a session advisory lock
//! on a connection of its own, and loses it with that connection.
//!
//! Submodules mirror the SQLite backend's: `schema` (migrations under an
//! advisory lock), `rows` (row layouts), `jobs` and `outcomes` (job
//! writes), `graph` (dependencies and workflows), `read` (job reads),
//! `modules` (metadata and bytes), `schedules`, `history`, `retention`.

mod graph;
mod history;
mod jobs;
mod leader;
mod listen;
mod modules;
mod outcomes;
mod read;
mod retention;
mod rows;
mod schedules;
mod schema;
mod signals;

#[cfg(test)]
mod tests;

use super::{
    ClaimRequest, Claimed, Error, Fired, Insert, JobFilter, JobStore, Lease, LeaseFilter,
    LeasedJob, ModuleRecord, OnInsert, Outcome, Pruned, QueueStats, Recorded, Result, Retention,
    Signal, StateCounts, Tick, WorkflowFilter,
};
use crate::clock::Millis;
use crate::history::MinuteRow;
use crate::job::{
    Job, JobDetail, JobId, NewJob, NewWorkflow, Submitted, Workflow, WorkflowDetail, WorkflowId,
};
use crate::policy::Decision;
use crate::report::ModuleKind;
use crate::schedule::Schedule;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use outcomes::Require;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::IsolationLevel;

/// A transaction on a pooled connection, with its statement cache.
type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// The longest a statement waits for a lock (`lock_timeout`), except the
/// migrations' wait for another host migrating.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how [`PostgresStore`] keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A `postgres://user:password@host:port/database` URL (or the
    /// `key=value` form); plain TCP or a Unix socket, no TLS.
    pub url: String,
    /// The schema holding the tables, created if missing; the server's
    /// `search_path` (normally `public`) when `None`.
    pub schema: Option<String>,
    /// Connections the pool keeps at most.
    pub pool_size: usize,
    /// How long a verb waits for a free connection before failing.
    pub wait: Duration,
    /// The largest input, output or report the store accepts; larger ones
    /// are refused with [`Error::TooLarge`]. PostgreSQL's own limit is
    /// 1 GB per value.
    pub max_value_bytes: Option<usize>,
}

impl PostgresConfig {
    /// Enough connections for the API, the workers' claims and results
    /// and the scheduler at once, few enough that several hosts stay well
    /// under PostgreSQL's default `max_connections` (100).
    pub const DEFAULT_POOL_SIZE: usize = 8;
    /// A verb waiting this long for a connection means the database is
    /// down or overloaded.
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

    /// The defaults, with the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: None,
            pool_size: Self::DEFAULT_POOL_SIZE,
            wait: Self::DEFAULT_WAIT,
            max_value_bytes: None,
        }
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or
/// `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The job store on PostgreSQL. See the module docs.
///
/// [`JobStore::list`] returns 100 jobs when the filter's `limit` is 0 and
/// never more than 1,000, like SQLite's.
pub struct PostgresStore {
    pool: Pool,
    max_value_bytes: Option<usize>,
    /// The listener's connection settings.
    listen_config: tokio_postgres::Config,
    /// Told of other hosts' notifications (see `listen`).
    observers: Arc<listen::Observers>,
    /// The listener task, started by the first `watch_jobs`.
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This host's notifications, at most one per interval.
    throttle: listen::Throttle,
    /// What this host changed that the others must hear of.
    outbox: Arc<signals::Outbox>,
    /// The task sending the outbox.
    sender: tokio::task::JoinHandle<()>,
    /// The leader's lock, held or tried.
    leader: leader::Leader,
}

impl PostgresStore {
    /// Connects to the database and brings its schema up to date (under
    /// an advisory lock, so hosts starting together migrate it once).
    pub async fn open(config: PostgresConfig) -> Result<PostgresStore> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| Error::Database(format!("the database URL is not valid: {e}")))?;
        // A verb waiting this long on a lock fails (and its caller
        // retries) rather than hang: the backstop behind the one lock
        // order every verb keeps (jobs by id). No JIT: before a table has
        // statistics the planner can cost the claim high enough to compile
        // it on every run, some 20 ms each, which cut a host's throughput
        // to a twentieth.
        let mut options = format!("-c lock_timeout={} -c jit=off", LOCK_TIMEOUT.as_millis());
        if let Some(schema) = &config.schema {
            options.push_str(&format!(" -c search_path={}", quote_ident(schema)));
        }
        pg.options(options);
        let listen_config = pg.clone();
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(config.wait))
            .create_timeout(Some(config.wait))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Database(format!("cannot create the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(pool_error)?;
        if let Some(schema) = &config.schema {
            // Under an advisory lock: two hosts creating the schema together
            // would otherwise collide on the catalog's unique index.
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL lock_timeout = 0").await?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('wasmjob schema ' || $1, 0))",
                &[schema],
            )
            .await?;
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            ))
            .await?;
            tx.commit().await?;
        }
        schema::migrate(&mut client).await?;
        drop(client);
        // This store's name among the hosts, fresh for each process: its
        // own signals come back to it and are dropped by it.
        let me = format!("{:016x}", fastrand::u64(..));
        let outbox = signals::Outbox::new();
        let sender = tokio::spawn(Arc::clone(&outbox).run(pool.clone(), me.clone()));
        Ok(PostgresStore {
            pool,
            max_value_bytes: config.max_value_bytes,
            leader: leader::Leader::new(listen_config.clone()),
            listen_config,
            observers: Arc::new(listen::Observers::new(me)),
            listener: std::sync::Mutex::new(None),
            throttle: listen::Throttle::new(),
            outbox,
            sender,
        })
    }

    /// Closes the pool (later verbs fail, connections are closed as they
    /// come back) and stops the listener.
    pub fn close(&self) {
        self.pool.close();
        if let Some(listener) = self.listener_slot().take() {
            listener.abort();
        }
        self.sender.abort();
        self.leader.close();
    }

    /// Starts the listener, once, when there is a runtime to run it on
    /// (without one the workers' polling still finds every job).
    fn listen(&self) {
        let mut listener = self.listener_slot();
        if listener.is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let run = listen::run(self.listen_config.clone(), Arc::clone(&self.observers));
            *listener = Some(runtime.spawn(run));
        }
    }

    fn listener_slot(&self) -> std::sync::MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.listener.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the other hosts, when `db`'s transaction commits (at once
    /// outside one), that jobs may be due (at most once per `listen::MIN_INTERVAL`).
    async fn notify(&self, db: &impl GenericClient) -> Result<()> {
        if self.throttle.take() {
            rows::execute(
                db,
                "SELECT pg_notify($1, current_schema())",
                &[&listen::CHANNEL],
            )
            .await?;
        }
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Refuses a value larger than the store accepts.
    fn check_size(&self, what: &str, len: usize) -> Result<()> {
        match self.max_value_bytes {
            Some(max) if len > max => Err(Error::TooLarge(format!(
                "the {what} is {len} bytes, more than the store keeps ({max})"
            ))),
            _ => Ok(()),
        }
    }
}

/// Runs `$body` (which may `.await` and `?`) in a read-write transaction on
/// a pooled connection, committed when it succeeds and rolled back (on
/// drop) when it fails.
macro_rules! in_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let $tx = client.transaction().await?;
        let out = $body;
        $tx.commit().await?;
        Ok(out)
    }};
}

/// Runs `$body` in a read-only transaction that sees one snapshot.
macro_rules! in_snapshot {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let $tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let out = $body;
        $tx.commit().await?;
        Ok(out)
    }};
}

#[async_trait::async_trait]
impl JobStore for PostgresStore {
    async fn put_module(
        &self,
        hash: &str,
        kind: ModuleKind,
        bytes: &[u8],
        name: Option<&str>,
        now: Millis,
    ) -> Result<ModuleRecord> {
        if !modules::is_hash(hash) || blake3::hash(bytes).to_hex().as_str() != hash {
            return Err(Error::Conflict(format!(
                "the module's bytes do not hash to {hash}"
            )));
        }
        let record: Result<ModuleRecord> =
            in_tx!(self, |tx| modules::put(&tx, hash, kind, bytes, name, now)
                .await?);
        if record.is_ok() && name.is_some() {
            // The name may have moved to this hash.
            self.outbox.put(Signal::ModulesChanged(Vec::new()));
        }
        record
    }

    async fn module(&self, hash_or_name: &str) -> Result<Option<ModuleRecord>> {
        in_snapshot!(self, |tx| modules::lookup(&tx, hash_or_name).await?)
    }

    async fn module_bytes(&self, hash: &str) -> Result<Vec<u8>> {
        let bytes: Result<Vec<u8>> = in_snapshot!(self, |tx| modules::bytes(&tx, hash).await?);
        let bytes = bytes?;
        if blake3::hash(&bytes).to_hex().as_str() != hash {
            return Err(Error::Corrupt(hash.to_owned()));
        }
        Ok(bytes)
    }

    async fn modules(&self) -> Result<Vec<ModuleRecord>> {
        in_snapshot!(self, |tx| modules::all(&tx).await?)
    }

    async fn delete_module_unless_needed(&self, hash: &str) -> Result<()> {
        let deleted: Result<()> = in_tx!(self, |tx| modules::delete(&tx, hash).await?);
        if deleted.is_ok() {
            self.outbox
                .put(Signal::ModulesChanged(vec![hash.to_owned()]));
        }
        deleted
    }

    async fn set_module_grants(
        &self,
        hash_or_name: &str,
        grants: Vec<String>,
    ) -> Result<ModuleRecord> {
        let record: Result<ModuleRecord> =
            in_tx!(self, |tx| modules::set_grants(&tx, hash_or_name, &grants)
                .await?);
        if record.is_ok() {
            self.outbox.put(Signal::ModulesChanged(Vec::new()));
        }
        record
    }

    async fn insert_jobs(&self, jobs: Vec<NewJob>, now: Millis) -> Result<Vec<Submitted>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        for job in &jobs {
            self.check_size("input", job.input.len())?;
        }
        in_tx!(self, |tx| {
            let stored = jobs::insert(&tx, &jobs, now, jobs::Origin::default()).await?;
            self.notify(&tx).await?;
            stored
        })
    }

    /// The claim runs in the insert's transaction, after it (its advisory
    /// locks on capped queues held to the commit, as `claim_due`'s are);
    /// `committed` runs once the commit answered, which with
    /// `synchronous_commit` is durable, so `at_commit` changes nothing.
    async fn insert_jobs_then(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        how: Insert,
        committed: OnInsert,
    ) -> Result<Vec<Submitted>> {
        let request = how.claim.filter(|r| r.limit > 0 && !jobs.is_empty());
        let Some(request) = request else {
            let stored = self.insert_jobs(jobs, now).await?;
            committed(&stored, Vec::new());
            return Ok(stored);
        };
        for job in &jobs {
            self.check_size("input", job.input.len())?;
        }
        let result: Result<_> = in_tx!(self, |tx| {
            let stored = jobs::insert(&tx, &jobs, now, jobs::Origin::default()).await?;
            let claimed = jobs::claim(&tx, &request, now).await?;
            self.notify(&tx).await?;
            (stored, claimed)
        });
        let (stored, claimed) = result?;
        committed(&stored, claimed);
        Ok(stored)
    }

    fn claims_with_insert(&self) -> bool {
        true
    }

    async fn insert_workflow(
        &self,
        workflow: NewWorkflow,
        now: Millis,
    ) -> Result<(WorkflowId, Vec<Job>)> {
        for job in &workflow.jobs {
            self.check_size("input", job.input.len())?;
        }
        in_tx!(self, |tx| {
            let id = graph::insert_workflow(&tx, workflow.name.as_deref(), now).await?;
            let origin = jobs::Origin {
                workflow: Some(id),
                ..jobs::Origin::default()
            };
            let stored = jobs::insert(&tx, &workflow.jobs, now, origin).await?;
            self.notify(&tx).await?;
            (id, stored.into_iter().map(|s| s.job).collect())
        })
    }

    async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowDetail>> {
        in_snapshot!(self, |tx| graph::workflow(&tx, id).await?)
    }

    async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>> {
        in_snapshot!(self, |tx| graph::workflows(&tx, &filter).await?)
    }

    async fn cancel_workflow(
        &self,
        id: WorkflowId,
        reason: String,
        now: Millis,
    ) -> Result<Vec<JobId>> {
        let cancelled: Result<Vec<JobId>> = in_tx!(self, |tx| {
            let mut cancelled = Vec::new();
            // Newest first: dependents come after their prerequisites, so
            // each job is cancelled for the workflow's reason, not by the
            // cascade of a prerequisite's cancel.
            for job in graph::unfinished(&tx, id).await?.into_iter().rev() {
                // A job outside the workflow may have cascaded to it.
                match jobs::cancel(&tx, job, Some(&reason), now).await {
                    Ok(_) => cancelled.push(job),
                    Err(Error::Conflict(_)) => {}
                    Err(other) => return Err(other),
                }
            }
            cancelled
        });
        if let Ok(ids) = &cancelled {
            self.outbox.put(Signal::Cancelled(ids.clone()));
        }
        cancelled
    }

    async fn claim_due(&self, request: ClaimRequest, now: Millis) -> Result<Vec<Claimed>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        if request.caps.is_empty() {
            // One statement in its own transaction: no BEGIN and COMMIT
            // round trips on the busiest path.
            let client = self.client().await?;
            return jobs::claim(&client, &request, now).await;
        }
        // Capped queues are claimed under advisory locks held to the end.
        in_tx!(self, |tx| jobs::claim(&tx, &request, now).await?)
    }

    async fn renew_held_leases(&self, leases: Vec<Lease>, until: Millis) -> Result<Vec<JobId>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        // One statement in its own transaction.
        let client = self.client().await?;
        jobs::renew(&client, &leases, until).await
    }

    async fn record_if_leased(&self, outcomes: Vec<Outcome>) -> Result<Vec<Result<Recorded>>> {
        self.apply(outcomes, Require::Held).await
    }

    async fn leased_jobs(&self, filter: LeaseFilter, limit: usize) -> Result<Vec<LeasedJob>> {
        in_snapshot!(self, |tx| outcomes::leased(&tx, filter, limit).await?)
    }

    async fn rescue_if_expired(
        &self,
        outcomes: Vec<Outcome>,
        now: Millis,
    ) -> Result<Vec<Result<Recorded>>> {
        self.apply(outcomes, Require::ExpiredBefore(now)).await
    }

    async fn cancel_unless_final(&self, id: JobId, now: Millis) -> Result<Job> {
        let job: Result<Job> = in_tx!(self, |tx| jobs::cancel(&tx, id, None, now).await?);
        if job.is_ok() {
            self.outbox.put(Signal::Cancelled(vec![id]));
        }
        job
    }

    async fn requeue_if_failed(&self, id: JobId, now: Millis) -> Result<Job> {
        let job: Result<Job> = in_tx!(self, |tx| {
            let job = jobs::requeue(&tx, id, now).await?;
            self.notify(&tx).await?;
            job
        });
        if job.is_ok() {
            self.outbox.put(Signal::Changed(vec![id]));
        }
        job
    }

    async fn purge_failed(&self, ids: Vec<JobId>) -> Result<u64> {
        let purged: Result<u64> = in_tx!(self, |tx| jobs::purge(&tx, &ids).await?);
        if matches!(purged, Ok(n) if n > 0) {
            self.outbox.put(if ids.is_empty() {
                Signal::ChangedMany
            } else {
                Signal::Changed(ids)
            });
        }
        purged
    }

    async fn age_waiting(&self, after_ms: i64, now: Millis) -> Result<u64> {
        if after_ms <= 0 {
            return Ok(0);
        }
        in_tx!(self, |tx| jobs::age(&tx, after_ms, now).await?)
    }

    async fn job(&self, id: JobId) -> Result<Option<JobDetail>> {
        in_snapshot!(self, |tx| read::job(&tx, id).await?)
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>> {
        in_snapshot!(self, |tx| read::list(&tx, &filter).await?)
    }

    async fn counts(&self) -> Result<StateCounts> {
        in_snapshot!(self, |tx| read::counts(&tx).await?)
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        in_snapshot!(self, |tx| read::next_due(&tx).await?)
    }

    async fn queues(&self, now: Millis) -> Result<Vec<QueueStats>> {
        in_snapshot!(self, |tx| read::queues(&tx, now).await?)
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool, now: Millis) -> Result<()> {
        in_tx!(self, |tx| jobs::set_paused(&tx, queue, paused, now).await?)
    }

    async fn put_schedule(&self, schedule: Schedule, replace: bool) -> Result<Schedule> {
        let stored: Result<Schedule> =
            in_tx!(self, |tx| schedules::put(&tx, &schedule, replace).await?);
        self.outbox.put(Signal::SchedulesChanged);
        stored
    }

    async fn schedule(&self, name: &str) -> Result<Option<Schedule>> {
        in_snapshot!(self, |tx| schedules::get(&tx, name).await?)
    }

    async fn schedules(&self) -> Result<Vec<Schedule>> {
        in_snapshot!(self, |tx| schedules::all(&tx).await?)
    }

    async fn set_schedule_paused(
        &self,
        name: &str,
        paused: bool,
        next_at: Millis,
        now: Millis,
    ) -> Result<Schedule> {
        let changed: Result<Schedule> = in_tx!(self, |tx| schedules::set_paused(
            &tx, name, paused, next_at, now
        )
        .await?);
        self.outbox.put(Signal::SchedulesChanged);
        changed
    }

    async fn delete_schedule(&self, name: &str) -> Result<()> {
        let deleted: Result<()> = in_tx!(self, |tx| schedules::delete(&tx, name).await?);
        self.outbox.put(Signal::SchedulesChanged);
        deleted
    }

    async fn due_schedules(&self, now: Millis, limit: usize) -> Result<Vec<Schedule>> {
        in_snapshot!(self, |tx| schedules::due(&tx, now, limit).await?)
    }

    async fn next_schedule_at(&self) -> Result<Option<Millis>> {
        in_snapshot!(self, |tx| schedules::next_at(&tx).await?)
    }

    async fn fire_schedule(&self, tick: Tick, now: Millis) -> Result<Fired> {
        if let Some(job) = &tick.job {
            self.check_size("input", job.input.len())?;
        }
        in_tx!(self, |tx| {
            let fired = schedules::fire(&tx, &tick, now).await?;
            if let Fired::Created(_) = fired {
                self.notify(&tx).await?;
            }
            fired
        })
    }

    async fn prune_finished(&self, retention: Retention, now: Millis) -> Result<Pruned> {
        in_tx!(self, |tx| retention::prune(&tx, &retention, now).await?)
    }

    async fn add_history(&self, rows: Vec<MinuteRow>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        in_tx!(self, |tx| history::add(&tx, &rows).await?)
    }

    async fn history(
        &self,
        since: Millis,
        until: Millis,
        queue: Option<String>,
    ) -> Result<Vec<MinuteRow>> {
        in_snapshot!(self, |tx| history::read(
            &tx,
            since,
            until,
            queue.as_deref()
        )
        .await?)
    }

    async fn prune_history(&self, before: Millis) -> Result<u64> {
        in_tx!(self, |tx| history::prune(&tx, before).await?)
    }

    fn watch_jobs(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.observers.add(wake);
        self.listen();
    }

    fn watch_signals(&self, observer: Arc<dyn Fn(Signal) + Send + Sync>) {
        self.observers.add_signals(observer);
        self.listen();
    }

    async fn lead(&self) -> Result<bool> {
        self.leader.lead().await
    }

    async fn clock(&self) -> Result<Option<Millis>> {
        let client = self.client().await?;
        // Truncated to the millisecond, as a local clock reads: a cast
        // alone rounds, up to half a millisecond into the future.
        let statement = client
            .prepare_cached("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8")
            .await?;
        let now: i64 = client.query_one(&statement, &[]).await?.try_get(0)?;
        Ok(Some(now))
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}

impl PostgresStore {
    /// Applies outcomes, each on its own: one that fails is answered with
    /// its error, the others stand. Plain completions (the bulk of a busy
    /// host's outcomes) go first in one statement, its own transaction;
    /// the rest (stale, cancelled, with dependents or follow-ups, a second
    /// outcome for one job, or all of them if that statement fails) in
    /// one transaction with a savepoint each.
    async fn apply(
        &self,
        outcomes: Vec<Outcome>,
        require: Require,
    ) -> Result<Vec<Result<Recorded>>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let mut results: Vec<Option<Result<Recorded>>> = outcomes.iter().map(|_| None).collect();
        // In job id order, the order every verb locking several jobs
        // keeps (renewals too), so two batches never deadlock; answered in
        // the caller's order.
        let mut order: Vec<usize> = (0..outcomes.len()).collect();
        order.sort_by_key(|&i| outcomes[i].lease.id);
        let mut seen = std::collections::HashSet::new();
        let plain: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| {
                outcomes::plain_completion(&outcomes[i], require)
                    && self.check_outcome(&outcomes[i]).is_ok()
                    && seen.insert(outcomes[i].lease.id)
            })
            .collect();
        if !plain.is_empty() {
            let batch: Vec<&Outcome> = plain.iter().map(|&i| &outcomes[i]).collect();
            match outcomes::complete_many(&client, &batch).await {
                Ok(done) => {
                    let done: std::collections::HashSet<JobId> = done.into_iter().collect();
                    for &i in &plain {
                        if done.contains(&outcomes[i].lease.id) {
                            results[i] = Some(Ok(Recorded::Applied));
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "completing a batch at once failed; one by one");
                }
            }
        }
        let rest: Vec<usize> = order
            .into_iter()
            .filter(|&i| results[i].is_none())
            .collect();
        if !rest.is_empty() {
            self.apply_one_by_one(&mut client, &outcomes, &rest, require, &mut results)
                .await?;
        }
        let results: Vec<Result<Recorded>> = results
            .into_iter()
            .map(|r| r.expect("every outcome answered"))
            .collect();
        // A release or a completion (its dependents, its follow-ups) may
        // leave jobs due for another host; told after the commits.
        let freed = outcomes.iter().zip(&results).any(|(outcome, result)| {
            matches!(result, Ok(recorded) if recorded.is_applied())
                && matches!(outcome.decision, Decision::Release | Decision::Complete)
        });
        if freed {
            self.notify(&client).await?;
        }
        let changed: Vec<JobId> = outcomes
            .iter()
            .zip(&results)
            .filter(|(_, result)| matches!(result, Ok(recorded) if recorded.is_applied()))
            .map(|(outcome, _)| outcome.lease.id)
            .collect();
        if !changed.is_empty() {
            self.outbox.put(Signal::Changed(changed));
        }
        Ok(results)
    }

    /// Applies `outcomes[i]` for each `i` of `indexes` (in job id order)
    /// in one transaction, each inside its own savepoint: one that fails
    /// is rolled back and answered with its error, the others stand.
    async fn apply_one_by_one(
        &self,
        client: &mut deadpool_postgres::Object,
        outcomes: &[Outcome],
        indexes: &[usize],
        require: Require,
        results: &mut [Option<Result<Recorded>>],
    ) -> Result<()> {
        let mut tx = client.transaction().await?;
        // Every row locked first, in id order: what follows locks nothing
        // out of that order.
        let ids: Vec<JobId> = indexes.iter().map(|&i| outcomes[i].lease.id).collect();
        rows::execute(
            &tx,
            "SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
        for &i in indexes {
            let outcome = &outcomes[i];
            if let Err(error) = self.check_outcome(outcome) {
                results[i] = Some(Err(error));
                continue;
            }
            let savepoint = tx.savepoint("outcome").await?;
            match outcomes::apply(&savepoint, outcome, require).await {
                Ok(recorded) => {
                    savepoint.commit().await?;
                    results[i] = Some(Ok(recorded));
                }
                Err(error) => {
                    savepoint.rollback().await?;
                    results[i] = Some(Err(error));
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Refuses an outcome with a value larger than the store accepts.
    fn check_outcome(&self, outcome: &Outcome) -> Result<()> {
        if let Some(output) = &outcome.output {
            self.check_size("output", output.len())?;
        }
        if let Some(attempt) = &outcome.attempt {
            let encoded = super::encoding::encode(&attempt.report)?;
            self.check_size("attempt's report", encoded.len())?;
        }
        for job in &outcome.follow_ups {
            self.check_size("follow-up's input", job.input.len())?;
        }
        Ok(())
    }
}

/// An identifier quoted for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        // The server's message, with its detail, is more useful than the
        // client's summary ("db error").
        match error.as_db_error() {
            Some(db) => {
                let message = match db.detail() {
                    Some(detail) => format!("{}: {detail}", db.message()),
                    None => db.message().to_owned(),
                };
                classify(db.code().code(), message)
            }
            // No answer from the server: the connection broke or never was.
            None if reaches_no_server(&error) => Error::Unavailable(error.to_string()),
            None => Error::Database(error.to_string()),
        }
    }
}

/// Whether a client-side error means the server could not be reached or
/// went away (as opposed to a row that did not convert).
fn reaches_no_server(error: &tokio_postgres::Error) -> bool {
    let text = error.to_string();
    error.is_closed()
        || std::error::Error::source(error).is_some_and(|cause| cause.is::<std::io::Error>())
        || text.starts_with("error connecting to server")
        || text.starts_with("timeout waiting for server")
}

/// The store error for a server error of SQLSTATE `code`: what a retry
/// later can cure (contention, a full disk, a server going away) is told
/// apart from a failure.
fn classify(code: &str, message: String) -> Error {
    match code {
        // disk_full
        "53100" => Error::Full(message),
        // lock_not_available (lock_timeout), deadlock_detected,
        // serialization_failure, query_canceled (statement_timeout)
        "55P03" | "40P01" | "40001" | "57014" => Error::Busy(message),
        // too_many_connections, admin_shutdown, crash_shutdown,
        // cannot_connect_now, and every connection exception (class 08)
        "53300" | "57P01" | "57P02" | "57P03" => Error::Unavailable(message),
        code if code.starts_with("08") => Error::Unavailable(message),
        _ => Error::Database(message),
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(error) => error.into(),
        error => Error::Unavailable(format!("no database connection: {error}")),
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(listener) = self.listener_slot().take() {
            listener.abort();
        }
        self.sender.abort();
        self.leader.close();
    }
}

#[cfg(test)]
impl PostgresStore {
    /// Resolves once this store listens for other hosts' notifications.
    pub(crate) async fn listening(&self) {
        self.observers.listening().await;
    }
}
