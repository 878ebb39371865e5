//! Query plans on PostgreSQL (what `continuum explain` prints): shapes whose speed depends on the planner
//! keeping them, checked so a change of SQL or of PostgreSQL version that loses them fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::conformance::{chain_walk_fixture, check_chain_walk_page};
use continuum_store::{ResourceStore, SystemClock};
use continuum_store_postgres::PostgresStore;

/// An unsorted chained search first walks the type's resources in key order and tests each one's own
/// reference against the chain's targets, built once as a hashed set: neither a join that collects every
/// match nor a probe per member of the set.
#[test]
fn a_chained_page_walks_in_key_order_against_a_hashed_set() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
    let query = chain_walk_fixture(&store);
    let plan = store.explain(&query).unwrap();
    let walk = plan.split("-- then").next().unwrap();
    assert!(walk.contains("a walk"), "{plan}");
    assert!(walk.contains("hashed SubPlan"), "{plan}");
    assert!(walk.contains("resource_type_pk on resource r"), "{plan}");
    // one sort only: the page's own rows (at most 21) after their bodies are joined
    assert_eq!(
        walk.matches("Sort Key").count(),
        1,
        "the walk sorts:\n{plan}"
    );
    check_chain_walk_page(&store, &query);
}
