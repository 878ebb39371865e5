//! The client-store conformance suite on a real PostgreSQL database (one fresh database per test in a
//! throwaway cluster). Without PostgreSQL installed the tests skip with a loud notice, except under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::SystemClock;
use continuum_store_postgres::PostgresStore;

struct Fixture {
    store: PostgresStore,
}

impl std::ops::Deref for Fixture {
    type Target = PostgresStore;
    fn deref(&self) -> &PostgresStore {
        &self.store
    }
}

fn fixture_or_skip() -> Option<Fixture> {
    let url = continuum_testkit::pg::fresh_database_or_skip()?;
    let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
    Some(Fixture { store })
}

// The `return` leaves the generated test function early when PostgreSQL is not installed.
continuum_store::clients_conformance_tests!(match fixture_or_skip() {
    Some(f) => f,
    None => return,
});
