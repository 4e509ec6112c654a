//! Group commit: the one thread that writes to the database.
//!
//! Callers send a command (a closure over the write connection) and await
//! its reply. The thread takes every command already queued (up to
//! [`MAX_BATCH`]), applies them in one transaction, each inside its own
//! savepoint, commits once (one fsync for the batch) and only then replies
//! to each. A command that fails (an unknown job, a conflict) rolls back to
//! its savepoint and gets its error; the rest of the batch still commits.
//! If the commit itself fails, every command in the batch gets that error
//! and nothing of the batch is kept.
//!
//! Every batch commits without an fsync (`synchronous = NORMAL`). A batch
//! with a [`Durability::Durable`] command goes on to the [`syncer`] thread,
//! which fsyncs the WAL and only then answers it, while this thread
//! commits the next batch. A batch of [`Durability::Lazy`] commands only
//! (claims, lease renewals) is answered at once: it survives a process
//! crash, since the WAL is in the OS's hands, and the next fsync covers it
//! too; only a power loss before that can undo it, which for a claim means
//! the job runs again (delivery is at least once anyway).
//!
//! Faults: a batch that finds the database locked by another process
//! waits for it (each `BEGIN` waits the busy timeout, and is tried again
//! for up to [`MAX_LOCK_WAIT`]); a batch that finds the disk full fails at
//! once, with [`Error::Full`]. Either way [`Writer::trouble`] says so until
//! a batch commits again (`/readyz` reports it as degraded).
//!
//! In [`DurabilityMode::Interval`] every batch is answered at once, and
//! the syncer fsyncs the WAL at most [`SYNC_INTERVAL`] after the first
//! commit not yet synced (off this thread, which never waits for it).
//! SQLite also syncs the WAL before each checkpoint and the database
//! after it, so the frames appended since the last sync are the only ones
//! a power loss can take.
//!
//! Knows nothing of jobs or modules: commands are opaque closures.

mod syncer;

use super::{DurabilityMode, SYNC_INTERVAL};
use crate::store::{Error, Result, WriteObserver};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use syncer::{LAZY_SYNC, Syncer, Wal};
use tokio::sync::oneshot;

/// How long a batch keeps trying to take the write lock from another
/// process before its commands fail with [`Error::Busy`]: a backup or an
/// operator's `sqlite3` session holding the lock for a few seconds delays
/// writes instead of failing them.
pub(super) const MAX_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Why writes are failing for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trouble {
    /// The disk (or quota) is full.
    Full,
    /// Another process holds the database's lock.
    Busy,
    /// An fsync of the WAL failed: what was acknowledged may not be on
    /// disk, and the writer refuses every write until the store is opened
    /// again (see [`Wal::failure`](syncer::Wal::failure)).
    Unsynced,
}

impl Trouble {
    fn of(error: &Error) -> Option<Trouble> {
        match error {
            Error::Full(_) => Some(Trouble::Full),
            Error::Busy(_) => Some(Trouble::Busy),
            _ => None,
        }
    }
}

/// The writer's last trouble, shared with the store's handle.
#[derive(Debug, Default)]
struct Health(AtomicU8);

impl Health {
    fn set(&self, trouble: Option<Trouble>) {
        let code = match trouble {
            None => 0,
            Some(Trouble::Full) => 1,
            Some(Trouble::Busy) => 2,
            Some(Trouble::Unsynced) => 3,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    fn get(&self) -> Option<Trouble> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(Trouble::Full),
            2 => Some(Trouble::Busy),
            3 => Some(Trouble::Unsynced),
            _ => None,
        }
    }
}

/// Why a whole batch did not commit, given to each of its commands.
struct Failure {
    trouble: Option<Trouble>,
    message: String,
}

impl Failure {
    fn error(&self) -> Error {
        let message = self.message.clone();
        match self.trouble {
            Some(Trouble::Full) => Error::Full(message),
            Some(Trouble::Busy) => Error::Busy(message),
            Some(Trouble::Unsynced) => Error::Unavailable(message),
            None => Error::Database(message),
        }
    }
}

/// Most commands committed together: bounds how long the first command of
/// a burst waits for the others.
pub(super) const MAX_BATCH: usize = 256;

/// Whether a write must be on disk before its caller hears back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Durability {
    /// Answered after an fsync of the WAL: survives a power loss once
    /// answered.
    Durable,
    /// Answered once committed: survives a process crash; made durable by
    /// the next fsync.
    Lazy,
}

/// A queued write: applied inside a savepoint, answered after the commit.
trait Command: Send {
    /// Whether its batch must be fsync'd.
    fn durability(&self) -> Durability;

    /// Runs the command; `false` when it failed and its savepoint must be
    /// rolled back.
    fn apply(&mut self, conn: &Connection) -> bool;

    /// Whether the command failed for a full disk or a held lock.
    fn trouble(&self) -> Option<Trouble>;

    /// Sends the command's result, or `failed` when the batch did not
    /// commit (or its fsync failed).
    fn reply(self: Box<Self>, failed: Option<&Failure>);

    /// Runs right after its batch committed, before any fsync, when the
    /// command succeeded.
    fn on_commit(&mut self) {}
}

/// An empty command answered after an fsync: [`Writer::durable`].
struct Barrier(oneshot::Sender<Result<()>>);

impl Command for Barrier {
    fn durability(&self) -> Durability {
        Durability::Durable
    }

    fn apply(&mut self, _: &Connection) -> bool {
        true
    }

    fn trouble(&self) -> Option<Trouble> {
        None
    }

    fn reply(self: Box<Self>, failed: Option<&Failure>) {
        let _ = self.0.send(failed.map_or(Ok(()), |why| Err(why.error())));
    }
}

/// A command made of a closure and the channel its caller waits on.
struct Call<T, F> {
    durability: Durability,
    op: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    /// Run once committed, before the answer (see [`Writer::call_then`]).
    then: Option<OnCommit<T>>,
}

/// What a command does with its result once committed, on the writer
/// thread (it may take parts of it: the caller gets what it leaves).
pub(super) type OnCommit<T> = Box<dyn FnOnce(&mut T) + Send>;

impl<T, F> Command for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let result = op(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn trouble(&self) -> Option<Trouble> {
        match &self.result {
            Some(Err(error)) => Trouble::of(error),
            _ => None,
        }
    }

    fn reply(self: Box<Self>, failed: Option<&Failure>) {
        let result = match (self.result, failed) {
            // A failed command's error stands: nothing of it was applied
            // either way.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Some(why)) | (None, Some(why)) => Err(why.error()),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(Error::Database("the command was not applied".to_owned())),
        };
        // The caller may have stopped waiting; the write stands regardless.
        let _ = self.reply.send(result);
    }

    fn on_commit(&mut self) {
        if let Some(Ok(value)) = &mut self.result
            && let Some(then) = self.then.take()
        {
            then(value);
        }
    }
}

/// The handle on the writer thread.
pub(super) struct Writer {
    sender: Mutex<Option<mpsc::Sender<Box<dyn Command>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    batches: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    observer: Arc<OnceLock<Arc<dyn WriteObserver>>>,
    health: Arc<Health>,
    /// The WAL's first fsync failure (see [`Writer::sync_failure`]).
    sync_failure: Arc<OnceLock<String>>,
    /// The syncer thread, in [`DurabilityMode::Fsync`].
    syncer: Option<Arc<Syncer>>,
}

/// What the writer thread owns besides its connection.
struct Thread {
    conn: Connection,
    /// Who fsyncs the WAL: the syncer thread for each durable batch
    /// ([`DurabilityMode::Fsync`]), or this thread on its timer
    /// ([`DurabilityMode::Interval`]).
    sync: Syncing,
    batches: Arc<AtomicU64>,
    observer: Arc<OnceLock<Arc<dyn WriteObserver>>>,
    health: Arc<Health>,
    /// The WAL's first fsync failure: from then on every batch is refused.
    sync_failure: Arc<OnceLock<String>>,
}

/// Who fsyncs the WAL, by [`DurabilityMode`]: the syncer thread either
/// way.
enum Syncing {
    /// Before it answers a durable batch; lazy ones within [`LAZY_SYNC`].
    EachDurableBatch(Arc<Syncer>),
    /// Every batch answered at its commit, fsync'd within
    /// [`SYNC_INTERVAL`].
    Interval(Arc<Syncer>),
}

impl Syncing {
    fn syncer(&self) -> &Syncer {
        match self {
            Syncing::EachDurableBatch(syncer) | Syncing::Interval(syncer) => syncer,
        }
    }
}

impl Writer {
    /// Starts the writer thread (and in [`DurabilityMode::Fsync`] the
    /// syncer thread); it owns `conn` until [`close`](Self::close). `wal`
    /// is the database's WAL file, which the threads fsync themselves.
    pub(super) fn start(conn: Connection, mode: DurabilityMode, wal: PathBuf) -> Result<Writer> {
        Writer::start_with(conn, mode, wal, LAZY_SYNC)
    }

    /// [`start`](Self::start), with lazy commits fsync'd within
    /// `lazy_sync` in [`DurabilityMode::Fsync`].
    fn start_with(
        conn: Connection,
        mode: DurabilityMode,
        wal: PathBuf,
        lazy_sync: Duration,
    ) -> Result<Writer> {
        let (sender, receiver) = mpsc::channel();
        let batches = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let observer = Arc::new(OnceLock::new());
        let health = Arc::new(Health::default());
        let wal = Wal::new(wal, Arc::clone(&syncs), Arc::clone(&observer));
        let sync_failure = wal.failure();
        let (sync, syncer) = match mode {
            DurabilityMode::Fsync => {
                let syncer = Arc::new(Syncer::start(wal, lazy_sync)?);
                (Syncing::EachDurableBatch(Arc::clone(&syncer)), Some(syncer))
            }
            DurabilityMode::Interval => (
                Syncing::Interval(Arc::new(Syncer::start(wal, SYNC_INTERVAL)?)),
                None,
            ),
        };
        let state = Thread {
            conn,
            sync,
            batches: Arc::clone(&batches),
            observer: Arc::clone(&observer),
            health: Arc::clone(&health),
            sync_failure: Arc::clone(&sync_failure),
        };
        let thread = std::thread::Builder::new()
            .name("wasmjob-store-writer".to_owned())
            .spawn(move || run(state, receiver))?;
        Ok(Writer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            batches,
            syncs,
            observer,
            health,
            syncer,
            sync_failure,
        })
    }

    /// Why the last batch failed (a full disk, a lock held by another
    /// process), or `None` once a batch committed; also set while a batch
    /// waits for a lock. After an fsync of the WAL failed, that, for good.
    pub(super) fn trouble(&self) -> Option<Trouble> {
        if self.sync_failure.get().is_some() {
            return Some(Trouble::Unsynced);
        }
        self.health.get()
    }

    /// The WAL's first fsync failure, if one failed: the writer has
    /// refused every write since.
    pub(super) fn sync_failure(&self) -> Option<String> {
        self.sync_failure.get().cloned()
    }

    /// Tells `observer` of every commit from now on. The first observer
    /// stays; later ones are ignored.
    pub(super) fn observe(&self, observer: Arc<dyn WriteObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Runs `op` on the write connection as part of the next batch; resolves
    /// once the batch is committed and, in [`DurabilityMode::Fsync`], the WAL
    /// fsync'd after it.
    pub(super) async fn call<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.call_with(Durability::Durable, op).await
    }

    /// Runs `op` as part of the next batch; resolves once the batch is
    /// committed, and fsync'd or not as `durability` says.
    pub(super) async fn call_with<T, F>(&self, durability: Durability, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.send(durability, op)?.await.map_err(|_| closed())?
    }

    /// Like [`call_with`](Self::call_with), and once `op` succeeded and its
    /// batch committed the writer thread runs `then` on its result, before
    /// any fsync: what must happen as soon as other connections can see
    /// the write (waking the workers that will claim a job just inserted).
    pub(super) async fn call_then<T, F>(
        &self,
        durability: Durability,
        op: F,
        then: OnCommit<T>,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(durability, op, Some(then))?
            .await
            .map_err(|_| closed())?
    }

    /// Resolves once every commit another connection may have read so far
    /// is durable: at once when they are, else after an fsync of the WAL,
    /// on the caller's own thread while the syncer thread is idle (a long
    /// poll on an idle host costs no hand-off to it and back).
    /// What was answered lazily (a claim, an outcome) is durable after
    /// this; in [`DurabilityMode::Interval`] it promises nothing more than
    /// the mode does and returns at once.
    pub(super) async fn durable(&self) -> Result<()> {
        let Some(syncer) = &self.syncer else {
            return Ok(());
        };
        let visible = syncer.visible();
        // A commit under way when this was called is not covered by an
        // fsync that starts before it finishes: then ask again.
        while !syncer.covers(visible) {
            if let Some(synced) = syncer.sync_now() {
                synced.map_err(|why| why.error())?;
                continue;
            }
            let (reply, answer) = oneshot::channel();
            syncer.after_sync(vec![Box::new(Barrier(reply))]);
            answer.await.map_err(|_| closed())??;
        }
        Ok(())
    }

    /// Whether durable writes are answered after an fsync
    /// ([`DurabilityMode::Fsync`]).
    pub(super) fn syncs_each_durable_batch(&self) -> bool {
        self.syncer.is_some()
    }

    /// Whether every commit a reader may have seen is durable already.
    #[cfg(test)]
    fn is_durable(&self) -> bool {
        self.syncer
            .as_ref()
            .is_none_or(|syncer| syncer.covers(syncer.visible()))
    }

    /// Queues `op`; the receiver gets its result after the commit.
    fn send<T, F>(&self, durability: Durability, op: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.queue(durability, op, None)
    }

    fn queue<T, F>(
        &self,
        durability: Durability,
        op: F,
        then: Option<OnCommit<T>>,
    ) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let command = Box::new(Call {
            durability,
            op: Some(op),
            result: None,
            reply,
            then,
        });
        match &*lock(&self.sender) {
            Some(sender) if sender.send(command).is_ok() => Ok(answer),
            _ => Err(closed()),
        }
    }

    /// Batches committed (or attempted) since the start.
    pub(super) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Fsyncs of the WAL since the start: one per durable batch (or run of
    /// batches committed during one fsync) in [`DurabilityMode::Fsync`],
    /// about one per [`SYNC_INTERVAL`] of writes in
    /// [`DurabilityMode::Interval`].
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Whether the thread is still taking commands.
    pub(super) fn is_running(&self) -> bool {
        lock(&self.sender).is_some()
            && lock(&self.thread)
                .as_ref()
                .is_some_and(|thread| !thread.is_finished())
    }

    /// Stops taking commands, lets the thread finish the ones queued and
    /// waits for it to close the connection.
    pub(super) fn close(&self) -> Option<JoinHandle<()>> {
        lock(&self.sender).take();
        lock(&self.thread).take()
    }
}

impl Drop for Writer {
    /// Dropping the sender stops the thread after the queued commands; it
    /// is not joined here, so dropping never blocks an async runtime.
    fn drop(&mut self) {
        lock(&self.sender).take();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn closed() -> Error {
    Error::Database("the store is closed".to_owned())
}

/// The writer thread: one batch per wake-up until every sender is gone.
fn run(thread: Thread, receiver: mpsc::Receiver<Box<dyn Command>>) {
    // Whether the last batch was a lone command: the writes come one at a
    // time, each soon after the last (see [`SPIN`]).
    let mut lone = false;
    loop {
        let spun = if lone { spin(&receiver) } else { None };
        let first = match spun {
            Some(command) => command,
            None => match receiver.recv() {
                Ok(command) => command,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        // Nothing written after a failed fsync could be called durable.
        if let Some(failure) = thread.sync_failure.get() {
            let why = Failure {
                trouble: Some(Trouble::Unsynced),
                message: format!("writes are refused since {failure}; nothing was stored"),
            };
            reply_all(batch, Some(&why));
            continue;
        }
        thread.batches.fetch_add(1, Ordering::Relaxed);
        // In interval mode every batch is answered at its commit.
        let durable = matches!(thread.sync, Syncing::EachDurableBatch(_))
            && batch.iter().any(|c| c.durability() == Durability::Durable);
        let writes = batch.len();
        lone = writes == 1;
        let started = Instant::now();
        let syncer = thread.sync.syncer();
        syncer.committing();
        let failed = commit_batch(&thread.conn, &mut batch, &thread.health);
        syncer.committed(!durable && failed.is_none());
        if let Some(observer) = thread.observer.get() {
            observer.committed(writes, started.elapsed());
        }
        if failed.is_none() {
            for command in &mut batch {
                command.on_commit();
            }
        }
        match failed {
            // Nothing of it was kept: nothing to wait for.
            Some(why) => reply_all(batch, Some(&why)),
            None if durable => syncer.after_sync(batch),
            None => reply_all(batch, None),
        }
    }
    // Closing the connection checkpoints the WAL (with fsyncs); the
    // syncer answers what it holds, and syncs what it was told of, first.
    thread.sync.syncer().close();
}

fn reply_all(batch: Vec<Box<dyn Command>>, failed: Option<&Failure>) {
    for command in batch {
        command.reply(failed);
    }
}

/// How long the thread polls for the next command after a lone command
/// before it sleeps on the channel. Writes that come one at a time (a
/// client submitting one job after another, then that job's claim and
/// outcome) find it awake, without the wake-up of a sleeping thread. After
/// a batch of several it does not poll: under concurrent load the polling
/// would take CPU time from the threads that make the writes.
const SPIN: Duration = Duration::from_micros(50);

/// The next command if one arrives within [`SPIN`].
fn spin(receiver: &mpsc::Receiver<Box<dyn Command>>) -> Option<Box<dyn Command>> {
    let start = Instant::now();
    loop {
        match receiver.try_recv() {
            Ok(command) => return Some(command),
            Err(mpsc::TryRecvError::Empty) if start.elapsed() < SPIN => std::hint::spin_loop(),
            Err(_) => return None,
        }
    }
}

/// Applies `batch` in one transaction; says why when it did not commit.
fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Command>],
    health: &Health,
) -> Option<Failure> {
    let failed = apply_all(conn, batch, health).err().map(|e| {
        let message = e.to_string();
        // A full disk may make SQLite roll the transaction back itself, so
        // the batch's own error (a savepoint gone) can hide the cause one
        // of its commands met.
        let trouble = Trouble::of(&Error::from(e))
            .or_else(|| batch.iter().find_map(|command| command.trouble()));
        Failure { trouble, message }
    });
    match &failed {
        Some(why) => {
            tracing::error!(error = %why.message, commands = batch.len(), "store batch not committed");
            health.set(why.trouble);
        }
        // Committed: a command that met a full disk was rolled back alone,
        // and says the disk is still full.
        None => health.set(batch.iter().find_map(|command| command.trouble())),
    }
    failed
}

/// Transaction control runs as cached prepared statements: a batch costs
/// no SQL parsing beyond its commands' own. A lone command needs no
/// savepoint: if it fails, rolling back the transaction undoes it alone,
/// where a savepoint would first copy every page it touches into the
/// statement journal.
fn apply_all(
    conn: &Connection,
    batch: &mut [Box<dyn Command>],
    health: &Health,
) -> rusqlite::Result<()> {
    begin(conn, health)?;
    let result = match batch {
        [command] => match command.apply(conn) {
            true => commit(conn),
            false => control(conn, "ROLLBACK"),
        },
        _ => apply_each(conn, batch).and_then(|()| commit(conn)),
    };
    if result.is_err() && !conn.is_autocommit() {
        // The batch is lost either way; were the rollback to fail too, the
        // next BEGIN would fail and report it.
        let _ = control(conn, "ROLLBACK");
    }
    result
}

fn commit(conn: &Connection) -> rusqlite::Result<()> {
    if disk_full_injected() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full (injected by WASMJOB_TEST_DISK_FULL)".to_owned()),
        ));
    }
    control(conn, "COMMIT")
}

/// A test hook, for machines where a test cannot mount a small
/// filesystem: while the file named by the environment variable
/// `WASMJOB_TEST_DISK_FULL` exists, every commit fails as SQLite's does
/// on a full disk. Not a setting: unset, it costs one check of a cached
/// `None`.
fn disk_full_injected() -> bool {
    static FLAG: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    FLAG.get_or_init(|| std::env::var_os("WASMJOB_TEST_DISK_FULL").map(Into::into))
        .as_ref()
        .is_some_and(|flag| flag.exists())
}

/// `BEGIN IMMEDIATE`, tried again while another process holds the lock,
/// for up to [`MAX_LOCK_WAIT`] (each try waits the busy timeout).
fn begin(conn: &Connection, health: &Health) -> rusqlite::Result<()> {
    let started = Instant::now();
    loop {
        match control(conn, "BEGIN IMMEDIATE") {
            Err(error) if is_busy(&error) && started.elapsed() < MAX_LOCK_WAIT => {
                if health.get() != Some(Trouble::Busy) {
                    tracing::warn!(%error, "the database is locked by another process; waiting");
                }
                health.set(Some(Trouble::Busy));
                // The busy timeout already waited; this only keeps a
                // zero timeout from spinning.
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn apply_each(conn: &Connection, batch: &mut [Box<dyn Command>]) -> rusqlite::Result<()> {
    for command in batch.iter_mut() {
        control(conn, "SAVEPOINT command")?;
        if !command.apply(conn) {
            control(conn, "ROLLBACK TO command")?;
        }
        control(conn, "RELEASE command")?;
    }
    Ok(())
}

fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::connection::{Role, Settings, open};

    fn writer(dir: &std::path::Path) -> Writer {
        writer_in(dir, DurabilityMode::Fsync)
    }

    fn writer_in(dir: &std::path::Path, mode: DurabilityMode) -> Writer {
        let path = dir.join("w.db");
        let conn = open(&path, Role::Writer, &Settings::default()).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        Writer::start(conn, mode, super::super::wal_path(&path)).unwrap()
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<i64> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(v)
        }
    }

    #[tokio::test]
    async fn queued_commands_commit_as_one_batch_and_a_failing_one_is_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(dir.path());
        // Hold the writer inside a first batch while four more commands
        // queue up behind it.
        let (release, wait) = mpsc::channel::<()>();
        let (entered, is_in) = oneshot::channel();
        let held = writer
            .send(Durability::Durable, move |_| {
                let _ = entered.send(());
                let _ = wait.recv();
                Ok(())
            })
            .unwrap();
        is_in.await.unwrap();
        let queued: Vec<_> = [1, 2, 1, 3]
            .into_iter()
            .map(|v| writer.send(Durability::Durable, insert(v)).unwrap())
            .collect();
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let mut results = Vec::new();
        for answer in queued {
            results.push(answer.await.unwrap());
        }
        assert!(matches!(results[0], Ok(1)), "{results:?}");
        assert!(matches!(results[1], Ok(2)), "{results:?}");
        assert!(matches!(results[2], Err(Error::Database(_))), "{results:?}");
        assert!(matches!(results[3], Ok(3)), "{results:?}");
        assert_eq!(writer.batches(), 2, "the held batch, then one for the rest");
        let count = writer
            .call(|conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(count, 3);
    }

    /// The poll after a lone command takes a command already queued, and
    /// gives up (to sleep on the channel, or stop) when none comes or every
    /// sender is gone.
    #[test]
    fn the_poll_takes_a_queued_command_and_gives_up_on_an_empty_channel() {
        let (sender, receiver) = mpsc::channel::<Box<dyn Command>>();
        let (reply, _answer) = oneshot::channel();
        let command: Box<dyn Command> = Box::new(Call {
            durability: Durability::Lazy,
            op: Some(insert(1)),
            result: None,
            reply,
            then: None,
        });
        sender.send(command).unwrap();
        let taken = spin(&receiver).expect("the queued command");
        assert_eq!(taken.durability(), Durability::Lazy);
        assert!(spin(&receiver).is_none(), "nothing queued");
        drop(sender);
        assert!(spin(&receiver).is_none(), "every sender gone");
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_commands_after_finishing_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(dir.path());
        let queued = writer.send(Durability::Durable, insert(7)).unwrap();
        let thread = writer.close().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 7);
        thread.join().unwrap();
        let err = writer.call(insert(8)).await.unwrap_err();
        assert_eq!(err.to_string(), "database error: the store is closed");
    }

    #[tokio::test]
    async fn a_lock_held_by_another_connection_is_waited_for_and_reported_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            busy_timeout: std::time::Duration::from_millis(20),
            ..Settings::default()
        };
        let path = dir.path().join("w.db");
        let conn = open(&path, Role::Writer, &settings).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        let writer =
            Writer::start(conn, DurabilityMode::Fsync, super::super::wal_path(&path)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let queued = writer.send(Durability::Durable, insert(1)).unwrap();
        // Many busy timeouts pass; the writer keeps trying and says why.
        while writer.trouble() != Some(Trouble::Busy) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 1);
        assert_eq!(writer.trouble(), None, "cleared by the commit");
    }

    fn synchronous(conn: &Connection) -> Result<i64> {
        Ok(conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?)
    }

    #[tokio::test]
    async fn a_durable_batch_is_answered_after_an_fsync_and_a_lazy_one_without() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(dir.path());
        // Commits never fsync themselves (1 is NORMAL).
        assert_eq!(
            writer
                .call_with(Durability::Durable, synchronous)
                .await
                .unwrap(),
            1
        );
        // Each durable call, awaited before the next, waited for an fsync
        // of its own (counted before the answer).
        let before = writer.syncs();
        for v in 0..3 {
            writer.call(insert(v)).await.unwrap();
        }
        assert_eq!(writer.syncs(), before + 3);
        // (That lazy writes wait for no fsync: the failed-fsync test.)
        // A lazy and a durable command in one batch: the batch waits.
        let (release, wait) = mpsc::channel::<()>();
        let (entered, is_in) = oneshot::channel();
        let held = writer
            .send(Durability::Lazy, move |_| {
                let _ = entered.send(());
                let _ = wait.recv();
                Ok(())
            })
            .unwrap();
        is_in.await.unwrap();
        let lazy = writer.send(Durability::Lazy, insert(10)).unwrap();
        let durable = writer.send(Durability::Durable, insert(11)).unwrap();
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let synced = writer.syncs();
        assert_eq!(lazy.await.unwrap().unwrap(), 10);
        assert!(writer.syncs() > synced, "answered after an fsync");
        assert_eq!(durable.await.unwrap().unwrap(), 11);
    }

    #[tokio::test]
    async fn interval_mode_commits_without_fsync_and_then_syncs_the_wal_itself() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_in(dir.path(), DurabilityMode::Interval);
        // Even a durable command commits with NORMAL (no fsync at commit).
        assert_eq!(
            writer
                .call_with(Durability::Durable, synchronous)
                .await
                .unwrap(),
            1
        );
        assert_eq!(writer.call(insert(1)).await.unwrap(), 1);
        // The thread fsyncs the WAL on its own within SYNC_INTERVAL; wait
        // for it with a generous deadline (a correctness check, no timing).
        let deadline = Instant::now() + SYNC_INTERVAL * 30;
        while writer.syncs() == 0 {
            assert!(Instant::now() < deadline, "the WAL was never fsync'd");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_lazy_commit_is_fsynced_soon_on_its_own_and_durable_waits_for_that() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(dir.path());
        writer.call(insert(0)).await.unwrap();
        let before = writer.syncs();
        // Everything answered so far is durable: nothing to wait for.
        writer.durable().await.unwrap();
        assert_eq!(writer.syncs(), before);
        writer.call_with(Durability::Lazy, insert(1)).await.unwrap();
        // Asked for, the fsync comes at once (or the timed one came
        // first)...
        writer.durable().await.unwrap();
        assert!(writer.is_durable());
        assert!(writer.syncs() > before);
        let synced = writer.syncs();
        writer.durable().await.unwrap();
        assert_eq!(writer.syncs(), synced, "nothing new to sync");
        // ...and unasked within LAZY_SYNC (a generous deadline: no timing).
        writer.call_with(Durability::Lazy, insert(2)).await.unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !writer.is_durable() {
            assert!(
                Instant::now() < deadline,
                "the lazy commit was never fsync'd"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let synced = writer.syncs();
        writer.durable().await.unwrap();
        assert_eq!(writer.syncs(), synced, "already covered");
    }

    /// Records which thread ran each fsync.
    #[derive(Default)]
    struct SyncThreads(Mutex<Vec<Option<String>>>);

    impl WriteObserver for SyncThreads {
        fn committed(&self, _: usize, _: std::time::Duration) {}

        fn synced(&self, _: std::time::Duration) {
            let name = std::thread::current().name().map(str::to_owned);
            lock(&self.0).push(name);
        }
    }

    #[tokio::test]
    async fn a_waiter_fsyncs_on_its_own_thread_while_the_syncer_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open(&path, Role::Writer, &Settings::default()).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        // No timed fsync of lazy commits during the test: every fsync is
        // one a caller asked for.
        let hour = std::time::Duration::from_secs(3600);
        let wal = super::super::wal_path(&path);
        let writer = Writer::start_with(conn, DurabilityMode::Fsync, wal, hour).unwrap();
        let threads = Arc::new(SyncThreads::default());
        writer.observe(Arc::clone(&threads) as Arc<dyn WriteObserver>);
        let syncer = Some("wasmjob-store-sync".to_owned());
        writer.call(insert(0)).await.unwrap();
        assert_eq!(lock(&threads.0).len(), 1, "a durable write's fsync");
        assert_eq!(lock(&threads.0)[0], syncer, "by the syncer");
        // While the syncer holds the WAL (as when it fsyncs), a waiter asks
        // the syncer for the next fsync.
        writer.call_with(Durability::Lazy, insert(1)).await.unwrap();
        let held = writer.syncer.as_ref().unwrap().hold_wal();
        let mut waiting = std::pin::pin!(writer.durable());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(waiting.as_mut().poll(&mut context).is_pending());
        drop(held);
        waiting.await.unwrap();
        assert!(writer.is_durable());
        assert_eq!(lock(&threads.0).as_slice(), [syncer.clone(), syncer]);
        // Idle, the syncer lets the waiter fsync: no hand-off to it and back.
        writer.call_with(Durability::Lazy, insert(2)).await.unwrap();
        writer.durable().await.unwrap();
        assert!(writer.is_durable());
        let here = std::thread::current().name().map(str::to_owned);
        assert_eq!(lock(&threads.0).len(), 3);
        assert_eq!(lock(&threads.0).last(), Some(&here), "the waiter's fsync");
    }

    #[tokio::test]
    async fn interval_mode_promises_nothing_more_when_asked_for_durability() {
        let dir = tempfile::tempdir().unwrap();
        // An fsync asked for here would fail: none is.
        let writer = writer_failing_fsync(dir.path(), DurabilityMode::Interval);
        writer.call_with(Durability::Lazy, insert(1)).await.unwrap();
        writer.durable().await.unwrap();
    }

    #[tokio::test]
    async fn what_follows_a_commit_sees_the_result_before_the_answer_and_not_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(dir.path());
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let then = |ran: &Arc<std::sync::atomic::AtomicUsize>| -> OnCommit<i64> {
            let ran = Arc::clone(ran);
            Box::new(move |value: &mut i64| {
                ran.fetch_add(*value as usize, Ordering::SeqCst);
                // What the hook leaves is the answer.
                *value += 1;
            })
        };
        let answer = writer
            .call_then(Durability::Durable, insert(5), then(&ran))
            .await
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 5);
        assert_eq!(answer, 6);
        // The unique value again: the command fails, nothing follows.
        writer
            .call_then(Durability::Durable, insert(5), then(&ran))
            .await
            .unwrap_err();
        assert_eq!(ran.load(Ordering::SeqCst), 5);
    }

    /// A writer on a fresh table whose "WAL" is a character device, which
    /// refuses an fsync (`EINVAL`) as a failing disk would.
    fn writer_failing_fsync(dir: &std::path::Path, mode: DurabilityMode) -> Writer {
        let path = dir.join("w.db");
        let conn = open(&path, Role::Writer, &Settings::default()).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        Writer::start(conn, mode, PathBuf::from("/dev/null")).unwrap()
    }

    fn stored(dir: &std::path::Path) -> Vec<i64> {
        let conn = open(&dir.join("w.db"), Role::Reader, &Settings::default()).unwrap();
        let mut select = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        select
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(|v| v.unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_its_batch_and_every_write_after_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_failing_fsync(dir.path(), DurabilityMode::Fsync);
        assert_eq!(writer.trouble(), None);
        // Committed, but not durable: the caller hears so (not that
        // nothing was stored).
        let error = writer.call(insert(1)).await.unwrap_err();
        assert!(
            matches!(&error, Error::Database(m) if m.contains("fsync of the WAL failed")),
            "{error:?}"
        );
        assert_eq!(writer.trouble(), Some(Trouble::Unsynced));
        assert!(writer.sync_failure().unwrap().contains("Invalid argument"));
        // Lazy or durable, nothing more is applied.
        for durability in [Durability::Lazy, Durability::Durable] {
            let error = writer.call_with(durability, insert(2)).await.unwrap_err();
            assert!(
                matches!(&error, Error::Unavailable(m) if m.contains("nothing was stored")),
                "{error:?}"
            );
        }
        writer.durable().await.unwrap_err();
        assert_eq!(stored(dir.path()), [1]);
    }

    #[tokio::test]
    async fn interval_mode_refuses_writes_once_its_timed_fsync_failed() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_failing_fsync(dir.path(), DurabilityMode::Interval);
        // Answered at the commit, as the mode promises.
        writer.call(insert(1)).await.unwrap();
        let deadline = Instant::now() + SYNC_INTERVAL * 30;
        while writer.sync_failure().is_none() {
            assert!(Instant::now() < deadline, "the WAL was never fsync'd");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let error = writer.call(insert(2)).await.unwrap_err();
        assert!(
            matches!(&error, Error::Unavailable(m) if m.contains("nothing was stored")),
            "{error:?}"
        );
        assert_eq!(writer.trouble(), Some(Trouble::Unsynced));
        assert_eq!(stored(dir.path()), [1]);
    }

    #[tokio::test]
    async fn a_closed_writer_answers_the_batches_waiting_for_their_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(dir.path());
        let queued: Vec<_> = (0..20)
            .map(|v| writer.send(Durability::Durable, insert(v)).unwrap())
            .collect();
        let thread = writer.close().unwrap();
        thread.join().unwrap();
        for (v, answer) in (0..20).zip(queued) {
            assert_eq!(answer.await.unwrap().unwrap(), v);
        }
        assert!(writer.syncs() >= 1);
    }
}
