//! The pool of read connections.
//!
//! WAL mode lets readers run beside the writer, each on a consistent
//! snapshot. Reads run on tokio's blocking threads, never on the async
//! runtime's. The pool keeps up to `size` idle connections and opens another
//! when all are busy, so a burst of reads never waits for a connection.

use super::connection::{Role, Settings, open};
use crate::store::{Error, Result};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Read connections to one database.
pub(super) struct Readers {
    path: PathBuf,
    settings: Settings,
    size: usize,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// A pool for the database at `path`; connections open on first use.
    pub(super) fn new(path: PathBuf, size: usize, settings: Settings) -> Arc<Readers> {
        Arc::new(Readers {
            path,
            settings,
            size: size.max(1),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `read` on a pooled connection on a blocking thread.
    pub(super) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = read(&conn);
            readers.give_back(conn);
            result
        })
        .await
        .map_err(|e| Error::Database(format!("a read task failed: {e}")))?
    }

    fn take(&self) -> Result<Connection> {
        match self.lock().pop() {
            Some(conn) => Ok(conn),
            None => open(&self.path, Role::Reader, &self.settings),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.lock();
        if idle.len() < self.size {
            idle.push(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the idle connections.
    pub(super) fn close(&self) {
        self.lock().clear();
    }
}
