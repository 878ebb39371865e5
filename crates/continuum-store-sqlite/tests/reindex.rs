//! Reindexing on a real SQLite file: rows removed behind the store's back (as a definition change would leave
//! them missing) come back exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::conformance::{
    recount_sets_drifted_counts_right, reindex_rebuilds_lost_rows, RawIndex,
};
use continuum_store::sql::ALL_INDEX_TABLES;
use continuum_store::SystemClock;
use continuum_store_sqlite::SqliteStore;
use rusqlite::Connection;

struct Raw(Connection);

impl RawIndex for Raw {
    fn drop_all_rows(&mut self) {
        for t in ALL_INDEX_TABLES {
            self.0
                .execute(&format!("DELETE FROM {}", t.name()), [])
                .unwrap();
        }
        // the counts kept beside the token rows are part of the index
        self.0.execute("DELETE FROM token_count", []).unwrap();
    }

    fn row_counts(&mut self) -> Vec<i64> {
        ALL_INDEX_TABLES
            .iter()
            .map(|t| {
                self.0
                    .query_row(&format!("SELECT count(*) FROM {}", t.name()), [], |r| {
                        r.get(0)
                    })
                    .unwrap()
            })
            .collect()
    }

    fn execute(&mut self, sql: &str) {
        self.0.execute(sql, []).unwrap();
    }

    fn scalar(&mut self, sql: &str) -> i64 {
        self.0.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// A store on a new file and a raw connection to the same file.
fn fixture() -> (tempfile::TempDir, SqliteStore, Raw) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let store = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    (dir, store, Raw(conn))
}

#[test]
fn reindex_rebuilds_lost_rows_on_sqlite() {
    let (_dir, store, mut raw) = fixture();
    reindex_rebuilds_lost_rows(&store, &mut raw);
}

#[test]
fn recount_sets_drifted_counts_right_on_sqlite() {
    let (_dir, store, mut raw) = fixture();
    recount_sets_drifted_counts_right(&store, &mut raw);
}
