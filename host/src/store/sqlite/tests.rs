//! The SQLite backend's tests: the store contract's conformance suite, and
//! what is particular to this backend (files on disk, query plans, group
//! commit, the data directory's lock), on real SQLite files in temporary
//! directories.

mod disk;

use super::{SqliteStore, StoreConfig};
use crate::store::JobStore;
use crate::store::conformance::{Fixture, Opened, Options};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tempfile::TempDir;

/// A fresh store in a fresh temporary directory.
fn open(options: Options) -> Pin<Box<dyn Future<Output = Opened> + Send>> {
    Box::pin(async move {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            max_value_bytes: options.max_value_bytes,
            ..StoreConfig::new(dir.path())
        };
        let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(config).unwrap());
        Opened {
            store,
            keep: Box::new(dir),
        }
    })
}

mod conformance {
    crate::store::conformance::conformance_tests!(super::open);
}

/// A SQLite store with the suite's fixture over it, and its directory.
struct Sqlite {
    dir: TempDir,
    store: Arc<SqliteStore>,
    f: Fixture,
}

async fn sqlite() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(StoreConfig::new(dir.path())).unwrap());
    let f = Fixture::new(Opened {
        store: store.clone(),
        keep: Box::new(()),
    })
    .await;
    Sqlite { dir, store, f }
}

impl Sqlite {
    fn module_file(&self, hash: &str) -> std::path::PathBuf {
        self.dir.path().join("modules").join(format!("{hash}.wasm"))
    }

    fn connect(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("wasmjob.db")).unwrap()
    }
}
