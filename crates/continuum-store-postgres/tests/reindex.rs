//! Reindexing on a real PostgreSQL database: rows removed behind the store's back (as a definition change
//! would leave them missing) come back exactly once, and concurrent readers never miss a resource.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::conformance::{
    recount_sets_drifted_counts_right, reindex_rebuilds_lost_rows, RawIndex,
};
use continuum_store::sql::ALL_INDEX_TABLES;
use continuum_store::SystemClock;
use continuum_store_postgres::PostgresStore;
use postgres::{Client, NoTls};

struct Raw(Client);

impl RawIndex for Raw {
    fn drop_all_rows(&mut self) {
        for t in ALL_INDEX_TABLES {
            self.0
                .batch_execute(&format!("DELETE FROM {}", t.name()))
                .unwrap();
        }
        // the counts kept beside the token rows are part of the index
        self.0.batch_execute("DELETE FROM token_count").unwrap();
    }

    fn row_counts(&mut self) -> Vec<i64> {
        ALL_INDEX_TABLES
            .iter()
            .map(|t| {
                self.0
                    .query_one(&format!("SELECT count(*) FROM {}", t.name()), &[])
                    .unwrap()
                    .get(0)
            })
            .collect()
    }

    fn execute(&mut self, sql: &str) {
        self.0.batch_execute(sql).unwrap();
    }

    fn scalar(&mut self, sql: &str) -> i64 {
        self.0.query_one(sql, &[]).unwrap().get(0)
    }
}

/// A store on a fresh database and a raw connection to it; `None` when PostgreSQL is not available.
fn fixture() -> Option<(PostgresStore, Raw)> {
    let url = continuum_testkit::pg::fresh_database_or_skip()?;
    let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
    let client = Client::connect(&url, NoTls).unwrap();
    Some((store, Raw(client)))
}

#[test]
fn reindex_rebuilds_lost_rows_on_postgres() {
    if let Some((store, mut raw)) = fixture() {
        reindex_rebuilds_lost_rows(&store, &mut raw);
    }
}

#[test]
fn recount_sets_drifted_counts_right_on_postgres() {
    if let Some((store, mut raw)) = fixture() {
        recount_sets_drifted_counts_right(&store, &mut raw);
    }
}
