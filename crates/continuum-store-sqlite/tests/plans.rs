//! Query plans: patient-scoped searches start from the index of the patient's references and never scan the
//! resource table (the plan is what `continuum explain` prints).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::search::{
    Filter, IndexTable, Predicate, SearchQuery, SortBy, SortKey, TokenSystem,
};
use continuum_store::{Expect, ResourceStore, SystemClock, WriteTx};
use continuum_store_sqlite::SqliteStore;
use serde_json::json;

#[test]
fn patient_scoped_searches_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("p.db"), Arc::new(SystemClock)).unwrap();
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            for i in 0..200 {
                tx.put(
                    &mut json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": if i % 2 == 0 { "4548-4" } else { "8867-4" }}]},
                        "subject": {"reference": format!("Patient/p{}", i % 20)},
                        "effectiveDateTime": format!("2024-01-{:02}", 1 + i % 28)}),
                    Expect::Absent,
                )?;
            }
            Ok(())
        })
        .unwrap();
    let query = SearchQuery {
        resource_type: Some("Observation".into()),
        filters: vec![
            Filter::one(Predicate::Reference {
                param: "patient".into(),
                target_type: Some("Patient".into()),
                target_id: "p3".into(),
            }),
            Filter::one(Predicate::Token {
                param: "code".into(),
                system: TokenSystem::Is("http://loinc.org".into()),
                code: "4548-4".into(),
                negate: false,
            }),
        ],
        sort: vec![SortKey {
            by: SortBy::Param {
                param: "date".into(),
                table: IndexTable::Date,
            },
            descending: true,
        }],
        count: 10,
        ..Default::default()
    };
    let plan = store.explain(&query).unwrap();
    let steps: Vec<&str> = plan.lines().skip(1).collect();
    assert!(!steps.is_empty(), "{plan}");
    for step in &steps {
        let whole_table = step.starts_with("SCAN r")
            || step.starts_with("SCAN resource")
            || step.starts_with("SCAN v");
        assert!(!whole_table, "a step scans a whole table:\n{plan}");
    }
    assert!(plan.contains("idx_reference"), "{plan}");
    // the sort value is looked up per resource, not by walking every date of the parameter
    assert!(plan.contains("idx_date_res (res_pk=?)"), "{plan}");
    // and the query answers correctly
    let page = store.search(&query).unwrap();
    assert!(page
        .matches
        .iter()
        .all(|m| m.id.trim_start_matches('o').parse::<usize>().unwrap() % 20 == 3));
}
