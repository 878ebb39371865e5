//! `continuum_core::reindex` on a real SQLite file: a stale or unrecorded index is reported, a run stopped
//! part-way resumes after the last committed batch and does each resource once, and a completed run records
//! the current definitions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::ControlFlow;
use std::sync::Arc;

use continuum_core::reindex::{self, IndexState, CURSOR_KEY, FINGERPRINT_KEY};
use continuum_store::{Expect, ResourceStore, SystemClock};
use continuum_store_sqlite::SqliteStore;
use serde_json::json;

fn store_with(n: usize) -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("r.db"), Arc::new(SystemClock)).unwrap();
    reindex::adopt_if_empty(&store).unwrap();
    store
        .write(&mut |tx| {
            for i in 0..n {
                tx.put(
                    &mut json!({"resourceType": "Patient", "id": format!("p{i}"),
                                "name": [{"family": format!("Synthetic{i}")}]}),
                    Expect::Absent,
                )?;
            }
            Ok(())
        })
        .unwrap();
    (store, dir)
}

#[test]
fn a_new_database_is_current_and_an_unrecorded_one_is_stale() {
    let (store, _dir) = store_with(3);
    assert_eq!(reindex::state(&store).unwrap(), IndexState::Current);
    // a database from before fingerprints were recorded, or indexed by another release
    store
        .write(&mut |tx| tx.set_setting(FINGERPRINT_KEY, None))
        .unwrap();
    assert_eq!(
        reindex::state(&store).unwrap(),
        IndexState::Stale { built_with: None }
    );
    store
        .write(&mut |tx| tx.set_setting(FINGERPRINT_KEY, Some("1-0000000000000000")))
        .unwrap();
    assert_eq!(
        reindex::state(&store).unwrap(),
        IndexState::Stale {
            built_with: Some("1-0000000000000000".into())
        }
    );
    // adopting never overrides a recorded fingerprint, and never marks a populated database current
    reindex::adopt_if_empty(&store).unwrap();
    assert_ne!(reindex::state(&store).unwrap(), IndexState::Current);
    store
        .write(&mut |tx| tx.set_setting(FINGERPRINT_KEY, None))
        .unwrap();
    reindex::adopt_if_empty(&store).unwrap();
    assert_eq!(
        reindex::state(&store).unwrap(),
        IndexState::Stale { built_with: None }
    );
}

#[test]
fn a_stopped_run_resumes_where_it_stopped() {
    let (store, _dir) = store_with(25);
    store
        .write(&mut |tx| tx.set_setting(FINGERPRINT_KEY, Some("old")))
        .unwrap();

    let mut steps = Vec::new();
    let first = reindex::run(&store, 10, &mut |p| {
        steps.push(p);
        ControlFlow::Break(())
    })
    .unwrap();
    assert!(!first.completed);
    assert_eq!(first.resources, 10);
    assert_eq!(first.resumed_after, None);
    assert_eq!(steps.len(), 1);
    assert_eq!((steps[0].done, steps[0].total), (10, 25));
    let IndexState::Interrupted { done_through } = reindex::state(&store).unwrap() else {
        panic!("a stopped run leaves the index interrupted");
    };

    let mut steps = Vec::new();
    let second = reindex::run(&store, 10, &mut |p| {
        steps.push(p);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(second.completed);
    assert_eq!(second.resumed_after, Some(done_through));
    assert_eq!(second.resources, 15, "only what the first run had not done");
    assert_eq!(
        steps.iter().map(|p| (p.done, p.total)).collect::<Vec<_>>(),
        vec![(10, 15), (15, 15)]
    );
    assert_eq!(reindex::state(&store).unwrap(), IndexState::Current);
    assert_eq!(store.setting(CURSOR_KEY).unwrap(), None);
    assert_eq!(
        store.setting(FINGERPRINT_KEY).unwrap(),
        Some(continuum_fhir::index_fingerprint())
    );
}

#[test]
fn a_cursor_of_other_definitions_is_not_resumed() {
    let (store, _dir) = store_with(5);
    store
        .write(&mut |tx| {
            tx.set_setting(FINGERPRINT_KEY, Some("old"))?;
            tx.set_setting(CURSOR_KEY, Some("other-definitions@3"))
        })
        .unwrap();
    assert_eq!(
        reindex::state(&store).unwrap(),
        IndexState::Stale {
            built_with: Some("old".into())
        }
    );
    let summary = reindex::run(&store, 100, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(summary.resumed_after, None);
    assert_eq!(summary.resources, 5);
    assert_eq!(reindex::state(&store).unwrap(), IndexState::Current);
}
