//! Query plans on PostgreSQL (what `continuum explain` prints): shapes whose speed depends on the planner
//! keeping them, checked so a change of SQL or of PostgreSQL version that loses them fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::conformance::{chain_front_plan, chain_walk_fixture, check_chain_walk_page};
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

/// When the walk does not fill the page, the next try finds the chain's targets first (a materialised CTE)
/// and reads their references from a reference index, keeping the first few keys in a top-N sort.
#[test]
fn a_chained_page_then_reads_the_first_references_to_its_targets() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
    let query = chain_walk_fixture(&store);
    let plan = store.explain(&query).unwrap();
    let front = chain_front_plan(&plan);
    assert!(front.contains("CTE chained"), "{plan}");
    // the targets' references are looked up by target, not read whole and filtered
    let (_, references) = front
        .split_once("CTE Scan on chained")
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        references.contains("Index Cond: ((target_id = (chained.id)::text)"),
        "{plan}"
    );
    assert!(!references.contains("Seq Scan on idx_reference"), "{plan}");
    check_chain_walk_page(&store, &query);
}

/// A search bounded to one patient's record is prepared once per connection, and PostgreSQL may switch it to a
/// generic plan after five calls: the answers stay exact for patients of very different sizes, called again
/// and again on one connection. A clinic's search is planned with its values every time.
#[test]
fn patient_searches_are_prepared_once_and_stay_exact() {
    use continuum_store::search::{
        Filter, IndexTable, Predicate, SearchQuery, SortBy, SortKey, TokenSystem,
    };
    use continuum_store::{Expect, WriteTx};
    use serde_json::json;

    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
    // patient k has 3k heart rates (one a day from 2024-01-01) and k temperatures
    let sizes = [0usize, 1, 2, 5, 13, 40];
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            for (k, n) in sizes.iter().enumerate() {
                tx.put(
                    &mut json!({"resourceType": "Patient", "id": format!("p{k}")}),
                    Expect::Absent,
                )?;
                for i in 0..3 * n + n {
                    let code = if i < 3 * n { "8867-4" } else { "8310-5" };
                    tx.put(
                        &mut json!({"resourceType": "Observation", "id": format!("o{k}-{i}"),
                            "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                            "subject": {"reference": format!("Patient/p{k}")},
                            "effectiveDateTime": format!("2024-01-{:02}", 1 + i % 28)}),
                        Expect::Absent,
                    )?;
                }
            }
            Ok(())
        })
        .unwrap();
    let latest = |k: usize| SearchQuery {
        resource_type: Some("Observation".into()),
        filters: vec![
            Filter::one(Predicate::Reference {
                param: "patient".into(),
                target_type: None,
                target_id: format!("p{k}"),
            }),
            Filter::one(Predicate::Token {
                param: "code".into(),
                system: TokenSystem::Is("http://loinc.org".into()),
                code: "8867-4".into(),
                negate: false,
            }),
        ],
        count: 5,
        sort: vec![SortKey {
            by: SortBy::Param {
                param: "date".into(),
                table: IndexTable::Date,
            },
            descending: true,
        }],
        total: true,
        ..Default::default()
    };
    let plan = store.explain(&latest(1)).unwrap();
    assert!(plan.contains("prepared once per connection"), "{plan}");
    // the generic plan is shown too: its conditions compare with parameters, not values
    let generic = plan
        .split("-- the generic plan it may keep instead:")
        .nth(1)
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(generic.contains("$1") || generic.contains("$2"), "{plan}");
    assert!(!generic.contains("'p1'"), "{plan}");
    // the code is probed per reference row in both plans, never merged with every row of the code
    for shown in [&plan[..], generic] {
        assert!(
            shown.contains("Index Cond: ((res_pk = xa.res_pk)"),
            "{plan}"
        );
        assert!(!shown.contains("idx_token_sys_code"), "{plan}");
    }
    for round in 0..4 {
        for (k, n) in sizes.iter().enumerate() {
            let page = store.search(&latest(k)).unwrap();
            assert_eq!(page.total, Some(3 * *n as u64), "round {round}, p{k}");
            // the latest dates first: day 1 + i % 28 for i < 3n
            let mut days: Vec<usize> = (0..3 * n).map(|i| 1 + i % 28).collect();
            days.sort_unstable_by(|a, b| b.cmp(a));
            let got: Vec<usize> = page
                .matches
                .iter()
                .map(|m| {
                    let i: usize = m.id.rsplit('-').next().unwrap().parse().unwrap();
                    1 + i % 28
                })
                .collect();
            assert_eq!(got, days[..days.len().min(5)], "round {round}, p{k}");
        }
    }
    // explaining again leaves the connection's prepared searches and planning as they were
    store.explain(&latest(5)).unwrap();
    assert_eq!(store.search(&latest(5)).unwrap().total, Some(3 * 40));
    let clinic = SearchQuery {
        resource_type: Some("Observation".into()),
        filters: vec![Filter::one(Predicate::Reference {
            param: "performer".into(),
            target_type: Some("Organization".into()),
            target_id: "c1".into(),
        })],
        count: 5,
        ..Default::default()
    };
    assert!(!store
        .explain(&clinic)
        .unwrap()
        .contains("prepared once per connection"));
}
