//! The client-store conformance suite on a real SQLite file.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use continuum_store::SystemClock;
use continuum_store_sqlite::SqliteStore;

struct Fixture {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fixture {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("test.db"), Arc::new(SystemClock)).unwrap();
    Fixture { store, _dir: dir }
}

continuum_store::clients_conformance_tests!(fixture());
