//! Query plans on PostgreSQL (what `continuum explain` prints): shapes whose speed depends on the planner
//! keeping them, checked so a change of SQL or of PostgreSQL version that loses them fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::search::{Filter, Predicate, SearchQuery, StringMode};
use continuum_store::{Expect, ResourceStore, SystemClock, WriteTx};
use continuum_store_postgres::PostgresStore;
use serde_json::json;

/// An unsorted chained search first walks the type's resources in key order and tests each one's own
/// reference against the chain's targets, built once as a hashed set: neither a join that collects every
/// match nor a probe per member of the set.
#[test]
fn a_chained_page_walks_in_key_order_against_a_hashed_set() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            tx.put(
                &mut json!({"resourceType": "Organization", "id": "o1", "name": "Walk Clinic"}),
                Expect::Absent,
            )?;
            for p in 0..10 {
                tx.put(
                    &mut json!({"resourceType": "Patient", "id": format!("p{p}"),
                        "managingOrganization": {"reference": "Organization/o1"}}),
                    Expect::Absent,
                )?;
            }
            for i in 0..300 {
                tx.put(
                    &mut json!({"resourceType": "Encounter", "id": format!("e{i}"), "status": "finished",
                        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                        "subject": {"reference": format!("Patient/p{}", i % 20)}}),
                    Expect::Absent,
                )?;
            }
            Ok(())
        })
        .unwrap();
    store.analyze().unwrap();
    let query = SearchQuery {
        resource_type: Some("Encounter".into()),
        filters: vec![Filter::one(Predicate::Chain {
            param: "patient".into(),
            targets: vec![(
                "Patient".into(),
                vec![Filter::one(Predicate::Chain {
                    param: "organization".into(),
                    targets: vec![(
                        "Organization".into(),
                        vec![Filter::one(Predicate::String {
                            param: "name".into(),
                            value: "walk clinic".into(),
                            mode: StringMode::Start,
                        })],
                    )],
                })],
            )],
        })],
        count: 20,
        ..Default::default()
    };
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
    // patients p0..p9 have the clinic; encounters of p10..p19 do not
    let page = store.search(&query).unwrap();
    let want: Vec<String> = (0..300)
        .filter(|i| i % 20 < 10)
        .take(20)
        .map(|i| format!("e{i}"))
        .collect();
    let got: Vec<String> = page.matches.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, want);
    assert!(page.next.is_some());
}
