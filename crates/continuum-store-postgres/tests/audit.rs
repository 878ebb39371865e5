//! The audit log on a real PostgreSQL database (one fresh database per test in a throwaway cluster): the audit
//! conformance suite, and what an attacker with a database connection can and cannot do unseen. Without
//! PostgreSQL installed the tests skip with a loud notice, except under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_store::audit::{verify, Problem};
use continuum_store::audit_conformance::record;
use continuum_store::{AuditStore, SystemClock};
use continuum_store_postgres::PostgresStore;
use postgres::{Client, NoTls};

struct Fixture {
    store: PostgresStore,
    url: String,
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
    Some(Fixture { store, url })
}

// The `return` leaves the generated test function early when PostgreSQL is not installed.
continuum_store::audit_conformance_tests!(match fixture_or_skip() {
    Some(f) => f,
    None => return,
});

/// A store holding `n` sealed rows; returns it, their seqs (oldest first) and a raw connection to its database.
fn sealed_or_skip(n: i64) -> Option<(Fixture, Vec<i64>, Client)> {
    let f = fixture_or_skip()?;
    let records: Vec<_> = (0..n)
        .map(|i| record("u1", Some("p1"), 1_000 + i))
        .collect();
    f.append_audit(&records).unwrap();
    assert_eq!(f.seal_audit(100).unwrap(), n as usize);
    assert!(f.audit_unsealed(10).unwrap().is_empty());
    let seqs: Vec<i64> = f
        .audit_chain(0, 100)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let client = Client::connect(&f.url, NoTls).unwrap();
    Some((f, seqs, client))
}

fn count(client: &mut Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

#[test]
fn update_delete_and_truncate_are_refused() {
    let Some((f, seqs, mut client)) = sealed_or_skip(3) else {
        return;
    };
    for sql in [
        "UPDATE audit_event SET body = '\\x00' WHERE seq = $1",
        "UPDATE audit_event SET agent = 'someone else' WHERE seq = $1",
        "DELETE FROM audit_event WHERE seq = $1",
        "UPDATE audit_chain SET hash = 'x' WHERE seq = $1",
        "DELETE FROM audit_chain WHERE seq = $1",
    ] {
        let err = client.execute(sql, &[&seqs[1]]).unwrap_err();
        let msg = err.as_db_error().map(|d| d.message().to_string());
        assert!(
            msg.as_deref().is_some_and(|m| m.contains("append-only")),
            "{sql}: {err:?}"
        );
    }
    for sql in [
        "DELETE FROM audit_event",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_event",
        "TRUNCATE audit_chain",
        "TRUNCATE audit_event, audit_chain",
    ] {
        assert!(client.batch_execute(sql).is_err(), "{sql}");
    }
    assert_eq!(count(&mut client, "audit_event"), 3);
    assert_eq!(count(&mut client, "audit_chain"), 3);
    let report = verify(&*f, 10).unwrap();
    assert_eq!(report.links, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn an_altered_row_is_named() {
    let Some((f, seqs, mut client)) = sealed_or_skip(5) else {
        return;
    };
    // an attacker with the application's database role drops the trigger, then edits
    client
        .batch_execute("DROP TRIGGER audit_event_no_update ON audit_event")
        .unwrap();
    client
        .execute(
            "UPDATE audit_event SET body = convert_to('{\"edited\":true}', 'UTF8') WHERE seq = $1",
            &[&seqs[2]],
        )
        .unwrap();
    let report = verify(&*f, 2).unwrap();
    assert_eq!(report.links, 5);
    assert_eq!(
        report.problems,
        [Problem::Altered {
            pos: 3,
            seq: seqs[2]
        }]
    );
    let text = report.problems[0].to_string();
    assert!(text.contains(&format!("row {}", seqs[2])), "{text}");
    assert!(text.contains("altered"), "{text}");
}

#[test]
fn a_removed_row_is_named() {
    let Some((f, seqs, mut client)) = sealed_or_skip(5) else {
        return;
    };
    client
        .batch_execute("DROP TRIGGER audit_event_no_delete ON audit_event")
        .unwrap();
    client
        .execute("DELETE FROM audit_event WHERE seq = $1", &[&seqs[3]])
        .unwrap();
    let report = verify(&*f, 10).unwrap();
    assert_eq!(report.links, 5);
    assert_eq!(
        report.problems,
        [Problem::MissingRow {
            pos: 4,
            seq: seqs[3]
        }]
    );
    assert!(report.problems[0]
        .to_string()
        .contains(&format!("row {}", seqs[3])));
}

#[test]
fn a_removed_link_is_reported() {
    let Some((f, seqs, mut client)) = sealed_or_skip(5) else {
        return;
    };
    client
        .batch_execute("DROP TRIGGER audit_chain_no_delete ON audit_chain")
        .unwrap();
    client
        .execute("DELETE FROM audit_chain WHERE pos = 3", &[])
        .unwrap();
    let report = verify(&*f, 10).unwrap();
    assert_eq!(report.links, 4);
    assert_eq!(
        report.problems,
        [
            Problem::Gap {
                after_pos: 2,
                next_pos: 4,
                seq: seqs[3]
            },
            Problem::Unchained {
                seq: seqs[2],
                newest_sealed: seqs[4]
            },
        ]
    );
    assert!(report.problems[1]
        .to_string()
        .contains(&format!("row {}", seqs[2])));
}

#[test]
fn a_replaced_link_is_reported() {
    let Some((f, seqs, mut client)) = sealed_or_skip(4) else {
        return;
    };
    client
        .batch_execute("DROP TRIGGER audit_chain_no_update ON audit_chain")
        .unwrap();
    client
        .execute(
            "UPDATE audit_chain SET hash = $1 WHERE pos = 2",
            &[&continuum_store::audit::GENESIS],
        )
        .unwrap();
    let report = verify(&*f, 10).unwrap();
    assert_eq!(
        report.problems,
        [
            Problem::Altered {
                pos: 2,
                seq: seqs[1]
            },
            Problem::BrokenLink {
                pos: 3,
                seq: seqs[2]
            },
        ]
    );
}

#[test]
fn the_sealer_waits_for_the_lock() {
    let Some(f) = fixture_or_skip() else {
        return;
    };
    f.append_audit(&[record("u1", None, 1), record("u1", None, 2)])
        .unwrap();
    // another server's sealer holds the lock
    let mut other = Client::connect(&f.url, NoTls).unwrap();
    let mut held = other.transaction().unwrap();
    held.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&0x434F_4E54_4155_4454_i64],
    )
    .unwrap();
    let sealed = std::thread::scope(|s| {
        let h = s.spawn(|| f.seal_audit(10).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!h.is_finished(), "sealing must wait for the lock");
        held.rollback().unwrap();
        h.join().unwrap()
    });
    assert_eq!(sealed, 2);
    assert!(verify(&*f, 10).unwrap().problems.is_empty());
}

/// The sealer files each row under its patient; an entry removed behind the store's back (the trigger dropped
/// first) hides that access from the patient's "who viewed my record", and `verify` names the row.
#[test]
fn a_removed_patient_entry_is_named() {
    use continuum_store::AuditQuery;
    let Some((f, seqs, mut client)) = sealed_or_skip(4) else {
        return;
    };
    let by_patient = || {
        f.audit_search(&AuditQuery {
            patient: Some("p1".into()),
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(count(&mut client, "audit_patient"), 4);
    assert_eq!(by_patient(), 4);
    let err = client
        .execute("DELETE FROM audit_patient WHERE seq = $1", &[&seqs[1]])
        .unwrap_err();
    assert!(err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"));
    client
        .batch_execute("DROP TRIGGER audit_patient_no_delete ON audit_patient")
        .unwrap();
    client
        .execute("DELETE FROM audit_patient WHERE seq = $1", &[&seqs[1]])
        .unwrap();
    assert_eq!(by_patient(), 3);
    let report = verify(&*f, 10).unwrap();
    assert_eq!(
        report.problems,
        [Problem::Unfiled {
            pos: 2,
            seq: seqs[1]
        }]
    );
}
