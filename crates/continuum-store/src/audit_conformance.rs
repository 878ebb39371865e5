//! Conformance cases of the [`crate::AuditStore`] port: behaviour every backend's audit log must show, run by
//! each adapter's tests through [`audit_conformance_tests!`](crate::audit_conformance_tests) against a real,
//! empty database.
//!
//! Expected values are written from the port's contract (`audit.rs`), not read off an implementation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::json;

use crate::audit::{link_hash, verify, AuditQuery, AuditRecord, AuditRow, GENESIS};
use crate::{Expect, ResourceStore, StoreError, WriteTx};

/// Generates one `#[test]` per audit conformance case. `$make` builds a fresh fixture that derefs to a store.
#[macro_export]
macro_rules! audit_conformance_tests {
    ($make:expr) => {
        $crate::audit_conformance_tests!(@each $make;
            audit_append_and_search, audit_search_pages_newest_first, audit_append_in_write_commits_with_it,
            audit_append_in_failed_write_leaves_nothing, audit_seal_chains_everything_once,
            audit_seal_continues_the_chain, audit_concurrent_appends_are_chained_once,
            audit_a_patients_rows_are_found_sealed_or_not);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::audit_conformance::$name(&*fixture);
            }
        )*
    };
}

/// An audit record of a read by `agent`, about `patient`, at `recorded` µs; the body names all three.
pub fn record(agent: &str, patient: Option<&str>, recorded: i64) -> AuditRecord {
    let body = json!({"resourceType": "AuditEvent", "recorded": recorded, "agent": agent, "patient": patient});
    AuditRecord {
        recorded,
        agent: agent.to_string(),
        patient: patient.map(str::to_string),
        action: "R".into(),
        subtype: "read".into(),
        outcome: "0".into(),
        body: serde_json::to_vec(&body).unwrap(),
    }
}

/// Every row, newest first.
fn all_rows(store: &dyn ResourceStore) -> Vec<AuditRow> {
    store
        .audit()
        .audit_search(&AuditQuery {
            limit: 100_000,
            ..AuditQuery::default()
        })
        .unwrap()
}

fn search(store: &dyn ResourceStore, query: AuditQuery) -> Vec<AuditRow> {
    store.audit().audit_search(&query).unwrap()
}

fn seqs(rows: &[AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

/// Seal until nothing is left; returns how many were sealed.
fn seal_all(store: &dyn ResourceStore) -> usize {
    let mut total = 0;
    loop {
        let n = store.audit().seal_audit(50).unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// The chain is well formed, link by link, as the port documents it; returns the sealed seqs in chain order.
fn check_chain(store: &dyn ResourceStore) -> Vec<i64> {
    let links = store.audit().audit_chain(0, 100_000).unwrap();
    let mut prev = GENESIS.to_string();
    for (i, link) in links.iter().enumerate() {
        assert_eq!(
            link.pos,
            i as i64 + 1,
            "positions run 1, 2, 3... without gaps"
        );
        assert_eq!(link.prev_hash, prev, "link {} follows on", link.pos);
        let row = link.row.as_ref().expect("the sealed row is there");
        assert_eq!(row.seq, link.seq);
        assert_eq!(link.hash, link_hash(&link.prev_hash, row));
        prev = link.hash.clone();
    }
    links.iter().map(|l| l.seq).collect()
}

pub fn audit_append_and_search(store: &dyn ResourceStore) {
    let audit = store.audit();
    assert!(all_rows(store).is_empty());
    let mut refused = record("u1", Some("p1"), 1_000);
    refused.outcome = "4".into();
    refused.action = "E".into();
    refused.subtype = "search".into();
    let records = vec![
        record("u1", Some("p1"), 1_000), // seq a
        record("u2", Some("p1"), 2_000), // b
        record("u1", Some("p2"), 3_000), // c
        record("system", None, 4_000),   // d
        refused,                         // e
    ];
    audit.append_audit(&records[..3]).unwrap();
    audit.append_audit(&records[3..]).unwrap();
    audit.append_audit(&[]).unwrap();

    let all = all_rows(store);
    assert_eq!(all.len(), 5);
    // newest first, seq increasing in append order, records round trip unchanged
    let rev: Vec<AuditRecord> = all.iter().rev().map(|r| r.record.clone()).collect();
    assert_eq!(rev, records);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq));
    let s: Vec<i64> = seqs(&all).into_iter().rev().collect();
    let (a, b, c, d, e) = (s[0], s[1], s[2], s[3], s[4]);

    let by_agent = search(
        store,
        AuditQuery {
            agent: Some("u1".into()),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&by_agent), [e, c, a]);
    let by_patient = search(
        store,
        AuditQuery {
            patient: Some("p1".into()),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&by_patient), [e, b, a]);
    let both = search(
        store,
        AuditQuery {
            agent: Some("u1".into()),
            patient: Some("p1".into()),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&both), [e, a]);
    assert_eq!(both[0].record.outcome, "4");
    // period: from inclusive, to exclusive
    let period = search(
        store,
        AuditQuery {
            from: Some(2_000),
            to: Some(4_000),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&period), [c, b]);
    let from = search(
        store,
        AuditQuery {
            from: Some(3_000),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&from), [d, c]);
    let to = search(
        store,
        AuditQuery {
            to: Some(1_001),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&to), [e, a]);
    let none = search(
        store,
        AuditQuery {
            agent: Some("nobody".into()),
            ..AuditQuery::default()
        },
    );
    assert!(none.is_empty());
    let system = search(
        store,
        AuditQuery {
            agent: Some("system".into()),
            ..AuditQuery::default()
        },
    );
    assert_eq!(seqs(&system), [d]);
    assert_eq!(system[0].record.patient, None);
}

pub fn audit_search_pages_newest_first(store: &dyn ResourceStore) {
    let records: Vec<AuditRecord> = (0..130)
        .map(|i| {
            record(
                if i % 2 == 0 { "even" } else { "odd" },
                Some("p1"),
                1_000 + i,
            )
        })
        .collect();
    store.audit().append_audit(&records).unwrap();
    // limit 0: a default page, not everything and not nothing
    let default_page = search(store, AuditQuery::default());
    assert!(
        !default_page.is_empty() && default_page.len() < 130,
        "default limit gave {}",
        default_page.len()
    );
    // page backwards through one agent's rows with before_seq
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = search(
            store,
            AuditQuery {
                agent: Some("even".into()),
                before_seq: before,
                limit: 20,
                ..AuditQuery::default()
            },
        );
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 20);
        before = page.last().map(|r| r.seq);
        pages.push(page);
    }
    assert_eq!(pages.len(), 4, "65 rows in pages of 20");
    let paged: Vec<i64> = pages.iter().flat_map(|p| seqs(p)).collect();
    let expected: Vec<i64> = all_rows(store)
        .iter()
        .filter(|r| r.record.agent == "even")
        .map(|r| r.seq)
        .collect();
    assert_eq!(paged, expected);
    let recorded: Vec<i64> = pages.iter().flatten().map(|r| r.record.recorded).collect();
    let want: Vec<i64> = (0..130)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| 1_000 + i)
        .collect();
    assert_eq!(recorded, want);
}

pub fn audit_append_in_write_commits_with_it(store: &dyn ResourceStore) {
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            let mut p = json!({"resourceType": "Patient", "id": "p1"});
            tx.put(&mut p, Expect::Absent)?;
            tx.append_audit(&record("u1", Some("p1"), 10))?;
            tx.append_audit(&record("u1", Some("p1"), 11))?;
            Ok(())
        })
        .unwrap();
    assert!(store.read("Patient", "p1").unwrap().is_some());
    let rows = all_rows(store);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].record, record("u1", Some("p1"), 11));
    assert_eq!(rows[1].record, record("u1", Some("p1"), 10));
    // an audit record with no resource write is a write of its own
    store
        .write(&mut |tx: &mut dyn WriteTx| tx.append_audit(&record("u2", None, 12)))
        .unwrap();
    assert_eq!(all_rows(store).len(), 3);
}

pub fn audit_append_in_failed_write_leaves_nothing(store: &dyn ResourceStore) {
    let res = store.write(&mut |tx: &mut dyn WriteTx| {
        let mut p = json!({"resourceType": "Patient", "id": "p1"});
        tx.put(&mut p, Expect::Absent)?;
        tx.append_audit(&record("u1", Some("p1"), 10))?;
        Err(StoreError::Aborted)
    });
    assert!(matches!(res, Err(StoreError::Aborted)), "{res:?}");
    // audit row first, then a refused write
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            let mut p = json!({"resourceType": "Patient", "id": "p2"});
            tx.put(&mut p, Expect::Absent)?;
            Ok(())
        })
        .unwrap();
    let res = store.write(&mut |tx: &mut dyn WriteTx| {
        tx.append_audit(&record("u1", Some("p2"), 11))?;
        let mut p = json!({"resourceType": "Patient", "id": "p2"});
        tx.put(&mut p, Expect::Absent)?;
        Ok(())
    });
    assert!(matches!(res, Err(StoreError::AlreadyExists(..))), "{res:?}");
    assert!(store.read("Patient", "p1").unwrap().is_none());
    assert!(all_rows(store).is_empty());
    assert!(store.audit().audit_unsealed(10).unwrap().is_empty());
    assert_eq!(store.audit().seal_audit(10).unwrap(), 0);
    // the store still works afterwards
    store
        .audit()
        .append_audit(&[record("u1", None, 12)])
        .unwrap();
    assert_eq!(all_rows(store).len(), 1);
}

pub fn audit_seal_chains_everything_once(store: &dyn ResourceStore) {
    let audit = store.audit();
    // nothing to seal, nothing to verify
    assert_eq!(audit.seal_audit(10).unwrap(), 0);
    assert!(audit.audit_chain(0, 10).unwrap().is_empty());
    let empty = verify(audit, 10).unwrap();
    assert_eq!(empty.links, 0);
    assert!(empty.problems.is_empty());

    let records: Vec<AuditRecord> = (0..25)
        .map(|i| record(&format!("u{}", i % 3), Some("p1"), 100 + i))
        .collect();
    audit.append_audit(&records).unwrap();
    let unsealed = audit.audit_unsealed(100).unwrap();
    assert_eq!(unsealed.len(), 25);
    assert!(
        unsealed.windows(2).all(|w| w[0].seq < w[1].seq),
        "oldest first"
    );
    assert_eq!(audit.audit_unsealed(5).unwrap(), unsealed[..5]);
    assert_eq!(audit.seal_audit(0).unwrap(), 0);

    assert_eq!(audit.seal_audit(10).unwrap(), 10);
    // the oldest ten, in seq order
    let first: Vec<i64> = audit
        .audit_chain(0, 100)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert_eq!(first, seqs(&unsealed[..10]));
    assert_eq!(audit.audit_unsealed(100).unwrap(), unsealed[10..]);
    assert_eq!(audit.seal_audit(100).unwrap(), 15);
    assert_eq!(audit.seal_audit(100).unwrap(), 0);
    assert!(audit.audit_unsealed(100).unwrap().is_empty());

    let chained = check_chain(store);
    assert_eq!(chained, seqs(&unsealed));
    let links = audit.audit_chain(0, 100).unwrap();
    assert_eq!(links[0].prev_hash, GENESIS);
    for (link, row) in links.iter().zip(&unsealed) {
        assert_eq!(link.row.as_ref(), Some(row));
    }
    // paging through the chain
    let page = audit.audit_chain(7, 5).unwrap();
    assert_eq!(
        page.iter().map(|l| l.pos).collect::<Vec<_>>(),
        [8, 9, 10, 11, 12]
    );
    assert!(audit.audit_chain(25, 5).unwrap().is_empty());

    for batch in [0, 1, 4, 25, 1000] {
        let report = verify(audit, batch).unwrap();
        assert_eq!(report.links, 25, "batch {batch}");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
    // verify seals nothing
    audit.append_audit(&[record("u9", None, 999)]).unwrap();
    let report = verify(audit, 10).unwrap();
    assert!(report.problems.is_empty(), "a new row is not a problem");
    assert_eq!(audit.audit_unsealed(10).unwrap().len(), 1);
}

pub fn audit_seal_continues_the_chain(store: &dyn ResourceStore) {
    let audit = store.audit();
    audit
        .append_audit(&[record("u1", None, 1), record("u1", None, 2)])
        .unwrap();
    assert_eq!(audit.seal_audit(100).unwrap(), 2);
    let head = audit.audit_chain(0, 10).unwrap();
    store
        .write(&mut |tx: &mut dyn WriteTx| tx.append_audit(&record("u2", Some("p9"), 3)))
        .unwrap();
    audit.append_audit(&[record("u3", None, 4)]).unwrap();
    assert_eq!(audit.seal_audit(100).unwrap(), 2);
    let links = audit.audit_chain(0, 10).unwrap();
    assert_eq!(links.len(), 4);
    assert_eq!(links[..2], head[..], "sealed links never change");
    assert_eq!(links[2].prev_hash, head[1].hash);
    assert_eq!(
        links[2].row.as_ref().map(|r| r.record.clone()),
        Some(record("u2", Some("p9"), 3))
    );
    check_chain(store);
    let report = verify(audit, 3).unwrap();
    assert_eq!(report.links, 4);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

pub fn audit_concurrent_appends_are_chained_once(store: &dyn ResourceStore) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 20;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                let agent = format!("u{t}");
                for i in 0..PER_THREAD {
                    let r = record(&agent, Some("p1"), (t * 1_000 + i) as i64);
                    if i % 2 == 0 {
                        store.audit().append_audit(&[r]).unwrap();
                    } else {
                        store
                            .write(&mut |tx: &mut dyn WriteTx| tx.append_audit(&r))
                            .unwrap();
                    }
                }
            });
        }
        // two sealers racing the writers and each other
        for _ in 0..2 {
            s.spawn(move || {
                for _ in 0..10 {
                    store.audit().seal_audit(7).unwrap();
                    std::thread::yield_now();
                }
            });
        }
    });
    seal_all(store);
    let rows = all_rows(store);
    assert_eq!(rows.len(), THREADS * PER_THREAD);
    let chained = check_chain(store);
    assert_eq!(chained.len(), rows.len(), "every row chained once");
    let chained_set: BTreeSet<i64> = chained.iter().copied().collect();
    assert_eq!(chained_set.len(), chained.len(), "no row chained twice");
    assert_eq!(
        chained_set,
        seqs(&rows).into_iter().collect::<BTreeSet<_>>()
    );
    for t in 0..THREADS {
        let mine = search(
            store,
            AuditQuery {
                agent: Some(format!("u{t}")),
                ..AuditQuery::default()
            },
        );
        assert_eq!(mine.len(), PER_THREAD);
    }
    let report = verify(store.audit(), 16).unwrap();
    assert_eq!(report.links, (THREADS * PER_THREAD) as u64);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(store.audit().audit_unsealed(10).unwrap().is_empty());
}

/// "Who viewed my record": a patient's rows come newest first, with the other filters and paging, whether the
/// sealer has filed them under the patient yet or not, and never twice. Expected rows are read from the
/// unfiltered log (which does not go through the patients' list).
pub fn audit_a_patients_rows_are_found_sealed_or_not(store: &dyn ResourceStore) {
    let audit = store.audit();
    let patient_of = |i: i64| match i % 3 {
        0 => Some("p1"),
        1 => Some("p2"),
        _ => None,
    };
    let append = |from: i64, to: i64| {
        let records: Vec<AuditRecord> = (from..to)
            .map(|i| {
                record(
                    if i % 2 == 0 { "u1" } else { "u2" },
                    patient_of(i),
                    1_000 + i,
                )
            })
            .collect();
        audit.append_audit(&records).unwrap();
    };
    let check = |stage: &str| {
        let all = all_rows(store);
        for patient in ["p1", "p2", "p3"] {
            let want: Vec<&AuditRow> = all
                .iter()
                .filter(|r| r.record.patient.as_deref() == Some(patient))
                .collect();
            let got = search(
                store,
                AuditQuery {
                    patient: Some(patient.into()),
                    limit: 1_000,
                    ..AuditQuery::default()
                },
            );
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{stage}: {patient}");
            // pages of 4, backwards
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = search(
                    store,
                    AuditQuery {
                        patient: Some(patient.into()),
                        before_seq: before,
                        limit: 4,
                        ..AuditQuery::default()
                    },
                );
                assert!(page.len() <= 4, "{stage}");
                let Some(last) = page.last() else { break };
                before = Some(last.seq);
                paged.extend(seqs(&page));
            }
            assert_eq!(paged, seqs(&got), "{stage}: {patient} paged");
            // with an agent and a period
            let narrowed = search(
                store,
                AuditQuery {
                    patient: Some(patient.into()),
                    agent: Some("u2".into()),
                    from: Some(1_005),
                    to: Some(1_040),
                    ..AuditQuery::default()
                },
            );
            let want: Vec<i64> = want
                .iter()
                .filter(|r| r.record.agent == "u2" && (1_005..1_040).contains(&r.record.recorded))
                .map(|r| r.seq)
                .collect();
            assert_eq!(seqs(&narrowed), want, "{stage}: {patient} narrowed");
        }
    };
    append(0, 30);
    check("none sealed");
    assert_eq!(audit.seal_audit(13).unwrap(), 13);
    check("some sealed");
    append(30, 50);
    check("some sealed, more appended");
    seal_all(store);
    check("all sealed");
    assert!(!search(
        store,
        AuditQuery {
            patient: Some("p1".into()),
            ..AuditQuery::default()
        }
    )
    .is_empty());
    let report = verify(audit, 7).unwrap();
    assert_eq!(report.links, 50);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(audit.audit_chain(0, 100).unwrap().iter().all(|l| l.filed));
}
