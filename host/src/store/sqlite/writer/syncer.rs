//! The WAL's fsyncs, off the writer thread.
//!
//! The writer commits every batch without an fsync (`synchronous =
//! NORMAL`: the frames are in the WAL file, in the operating system's
//! page cache) and, in [`DurabilityMode::Fsync`](super::DurabilityMode),
//! hands a batch with a durable command to the syncer thread, which
//! fsyncs the WAL file and only then answers the batch's commands. The
//! writer goes on to the next batch while the disk works, and one fsync
//! covers every batch committed before it started: while one fsync runs,
//! the batches committed meanwhile queue up for the next.
//!
//! Why this is as durable as `synchronous = FULL`: the WAL is written in
//! order and each frame's checksum chains to the one before, so an fsync
//! that starts after a commit returned makes that commit, and everything
//! before it, survive a power loss; recovery keeps the longest valid
//! prefix, so a later commit never survives without an earlier one. A
//! checkpoint syncs the WAL itself before it copies frames into the
//! database, and the WAL is only rewritten from its start after a
//! checkpoint copied all of it.
//!
//! What differs: another connection can read a commit a moment (one
//! fsync) before it is durable, and a lazy command (a claim) committed
//! after a durable one is answered at once. Nothing is *acknowledged*
//! before it is durable, and a power loss in that moment takes back the
//! later commits with it.

use super::{Command, Failure, WriteObserver};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The WAL file, opened once and kept open for its fsyncs.
pub(super) struct Wal {
    path: PathBuf,
    file: Option<File>,
    syncs: Arc<AtomicU64>,
    observer: Arc<OnceLock<Arc<dyn WriteObserver>>>,
    failure: Arc<OnceLock<String>>,
}

impl Wal {
    pub(super) fn new(
        path: PathBuf,
        syncs: Arc<AtomicU64>,
        observer: Arc<OnceLock<Arc<dyn WriteObserver>>>,
    ) -> Wal {
        Wal {
            path,
            file: None,
            syncs,
            observer,
            failure: Arc::new(OnceLock::new()),
        }
    }

    /// The first fsync failure, for good: once an fsync of the WAL failed,
    /// the kernel may have dropped the pages it could not write and a
    /// later fsync succeeds without them, so nothing written since can be
    /// called durable either. Every later [`sync`](Self::sync) fails
    /// with it, and the writer refuses every write, until the store is
    /// opened again (by a new process, which reads the WAL afresh).
    pub(super) fn failure(&self) -> Arc<OnceLock<String>> {
        Arc::clone(&self.failure)
    }

    /// Fsyncs the WAL file: every frame SQLite wrote to it so far (through
    /// any descriptor of the file) reaches the disk. A WAL not created yet
    /// has nothing to sync. The file stays open: SQLite only deletes it
    /// when the last connection closes, after the writer's.
    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        if let Some(failure) = self.failure.get() {
            return Err(std::io::Error::other(failure.clone()));
        }
        self.sync_file().map_err(|error| {
            let failure = format!("an fsync of the WAL failed ({error})");
            let _ = self.failure.set(failure.clone());
            std::io::Error::new(error.kind(), failure)
        })
    }

    fn sync_file(&mut self) -> std::io::Result<()> {
        let file = match &self.file {
            Some(file) => file,
            None => match File::open(&self.path) {
                Ok(file) => self.file.insert(file),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(error),
            },
        };
        let started = Instant::now();
        if fsync_failure_injected() {
            return Err(std::io::Error::other(
                "input/output error (injected by WASMJOB_TEST_FSYNC_FAILS)",
            ));
        }
        // On Apple platforms the standard library asks for F_FULLFSYNC.
        file.sync_data()?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = self.observer.get() {
            observer.synced(started.elapsed());
        }
        Ok(())
    }

    /// [`sync`](Self::sync), with a failure logged rather than returned
    /// (the timed syncs of interval mode have nobody to tell).
    pub(super) fn sync_logged(&mut self) {
        let failed_before = self.failure.get().is_some();
        if let Err(error) = self.sync()
            && !failed_before
        {
            tracing::error!(%error, wal = %self.path.display(), "fsync of the WAL failed");
        }
    }
}

/// Batches committed and waiting for an fsync, each command with its
/// result.
pub(super) type Committed = Vec<Box<dyn Command>>;

/// A test hook, as `WASMJOB_TEST_DISK_FULL` is for commits: while the
/// file named by the environment variable `WASMJOB_TEST_FSYNC_FAILS`
/// exists, every fsync of the WAL fails as a failing disk's would. Not a
/// setting: unset, it costs one check of a cached `None`.
fn fsync_failure_injected() -> bool {
    static FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();
    FLAG.get_or_init(|| std::env::var_os("WASMJOB_TEST_FSYNC_FAILS").map(Into::into))
        .as_ref()
        .is_some_and(|flag| flag.exists())
}

/// How soon after a lazy commit (one answered before its fsync: a claim,
/// an outcome) the syncer fsyncs it when no durable batch came to share
/// an fsync with it. What a power loss can take back of what was
/// answered lazily: the jobs claimed or finished in that last moment run
/// again.
pub(crate) const LAZY_SYNC: Duration = Duration::from_millis(1);

/// What the writer thread and the store's handle share with the syncer.
/// The counters let a reader's [`Syncer::covers`] tell whether what it
/// may have read is durable without asking the syncer.
#[derive(Default)]
struct Shared {
    /// Commits begun so far (counted before `COMMIT`: a reader may see a
    /// commit from then on).
    begun: AtomicU64,
    /// Commits finished so far (counted after `COMMIT`).
    finished: AtomicU64,
    /// How many of the finished commits an fsync has made durable.
    covered: AtomicU64,
    /// Whether the syncer has been told of a lazy commit not yet covered
    /// by an fsync it started.
    marked: AtomicBool,
}

/// The handle on the syncer thread.
pub(super) struct Syncer {
    sender: Mutex<Option<mpsc::Sender<Committed>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    /// Held by whoever fsyncs: the thread, or a caller in
    /// [`sync_now`](Self::sync_now).
    wal: Arc<Mutex<Wal>>,
}

impl Syncer {
    /// Starts the thread that fsyncs `wal` for the batches it is given,
    /// and a lazy commit within `window` (see [`committed`](Self::committed)).
    pub(super) fn start(wal: Wal, window: Duration) -> std::io::Result<Syncer> {
        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let wal = Arc::new(Mutex::new(wal));
        let thread = std::thread::Builder::new()
            .name("wasmjob-store-sync".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                let wal = Arc::clone(&wal);
                move || run(&wal, &shared, receiver, window)
            })?;
        Ok(Syncer {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            shared,
            wal,
        })
    }

    /// Fsyncs the WAL on the caller's thread, covering every commit
    /// finished so far, unless the thread is fsyncing (then `None`: hand
    /// the batch to [`after_sync`](Self::after_sync), whose next fsync
    /// serves every batch that waits). What a lone write on an idle host
    /// does instead of two hand-offs between threads.
    pub(super) fn sync_now(&self) -> Option<Result<(), Failure>> {
        let mut wal = match self.wal.try_lock() {
            Ok(wal) => wal,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(sync_covering(&mut wal, &self.shared).map_or(Ok(()), Err))
    }

    /// Answers `batch` once an fsync that starts after now has finished.
    pub(super) fn after_sync(&self, batch: Committed) {
        let unsent = match &*lock(&self.sender) {
            Some(sender) => sender.send(batch).err().map(|e| e.0),
            None => Some(batch),
        };
        // The thread is gone (it panicked, or the store closed): the writes
        // are committed but nobody can say they are durable.
        if let Some(batch) = unsent {
            let why = Failure {
                trouble: None,
                message: "the WAL's fsync thread has stopped".to_owned(),
            };
            for command in batch {
                command.reply(Some(&why));
            }
        }
    }

    /// Holds the WAL as the thread does while it fsyncs (tests).
    #[cfg(test)]
    pub(super) fn hold_wal(&self) -> std::sync::MutexGuard<'_, Wal> {
        lock(&self.wal)
    }

    /// Called by the writer before each `COMMIT`.
    pub(super) fn committing(&self) {
        self.shared.begun.fetch_add(1, Ordering::SeqCst);
    }

    /// Called by the writer after each `COMMIT`. A `lazy` one (answered
    /// without waiting for an fsync) gets an fsync within the syncer's
    /// window, or sooner with a durable batch.
    pub(super) fn committed(&self, lazy: bool) {
        self.shared.finished.fetch_add(1, Ordering::SeqCst);
        if lazy
            && !self.shared.marked.swap(true, Ordering::SeqCst)
            && let Some(sender) = &*lock(&self.sender)
        {
            // An empty batch: the mark. A closed channel has nobody to
            // sync for; closing syncs anyway.
            let _ = sender.send(Vec::new());
        }
    }

    /// Commits a reader may have seen so far: [`covers`](Self::covers)
    /// says when they are all durable.
    pub(super) fn visible(&self) -> u64 {
        self.shared.begun.load(Ordering::SeqCst)
    }

    /// Whether the first `commits` commits are durable.
    pub(super) fn covers(&self, commits: u64) -> bool {
        self.shared.covered.load(Ordering::SeqCst) >= commits
    }

    /// Stops the thread once it has answered every batch handed over, and
    /// waits for it.
    pub(super) fn close(&self) {
        lock(&self.sender).take();
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            tracing::error!("the store's fsync thread panicked");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The syncer thread: one fsync for everything queued, then the answers;
/// a lazy commit marked and not covered since gets its fsync after
/// `window` (none when a caller's own fsync covered it meanwhile).
fn run(wal: &Mutex<Wal>, shared: &Shared, receiver: mpsc::Receiver<Committed>, window: Duration) {
    // When the oldest lazy commit not covered yet was marked.
    let mut marked_at: Option<Instant> = None;
    loop {
        let received = match marked_at {
            None => receiver
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(at) => receiver.recv_timeout(window.saturating_sub(at.elapsed())),
        };
        let mut waiting = match received {
            // The mark of a lazy commit: wait for company, or the timeout.
            Ok(batch) if batch.is_empty() => {
                marked_at.get_or_insert_with(Instant::now);
                continue;
            }
            Ok(batch) => batch,
            Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        while let Ok(more) = receiver.try_recv() {
            waiting.extend(more);
        }
        // Lazy commits made from here on are marked again.
        shared.marked.store(false, Ordering::SeqCst);
        marked_at = None;
        if waiting.is_empty()
            && shared.covered.load(Ordering::SeqCst) >= shared.finished.load(Ordering::SeqCst)
        {
            // A caller's fsync covered the lazy commits already.
            continue;
        }
        let failed = sync_covering(&mut lock(wal), shared);
        for command in waiting {
            command.reply(failed.as_ref());
        }
    }
    if marked_at.is_some() || shared.marked.load(Ordering::SeqCst) {
        lock(wal).sync_logged();
    }
}

/// Fsyncs the WAL and counts every commit finished before it as covered;
/// says why when it failed.
fn sync_covering(wal: &mut Wal, shared: &Shared) -> Option<Failure> {
    let covering = shared.finished.load(Ordering::SeqCst);
    let failed_before = wal.failure.get().is_some();
    let failed = wal.sync().err().map(|error| {
        if !failed_before {
            tracing::error!(%error, wal = %wal.path.display(), "fsync of the WAL failed");
        }
        // Committed, maybe not on disk: an error that does not say
        // "nothing was stored" (a refusal after it does).
        Failure {
            trouble: None,
            message: format!("the commit could not be made durable: {error}"),
        }
    });
    if failed.is_none() {
        shared.covered.fetch_max(covering, Ordering::SeqCst);
    }
    failed
}
