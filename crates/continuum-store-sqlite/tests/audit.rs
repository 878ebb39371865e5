//! The audit log on a real SQLite file: the audit conformance suite, and what an attacker with the database file
//! in hand can and cannot do unseen (through a raw connection, bypassing the store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use continuum_store::audit::{verify, Problem};
use continuum_store::audit_conformance::record;
use continuum_store::{AuditStore, SystemClock};
use continuum_store_sqlite::SqliteStore;
use rusqlite::Connection;

struct Fixture {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fixture {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("test.db"), Arc::new(SystemClock)).unwrap();
    Fixture { store, _dir: dir }
}

continuum_store::audit_conformance_tests!(fixture());

/// A store holding `n` sealed rows; returns it, their seqs (oldest first) and a raw connection to its file.
fn sealed(n: i64) -> (Fixture, Vec<i64>, Connection) {
    let f = fixture();
    let records: Vec<_> = (0..n)
        .map(|i| record("u1", Some("p1"), 1_000 + i))
        .collect();
    f.append_audit(&records).unwrap();
    assert_eq!(f.seal_audit(100).unwrap(), n as usize);
    assert!(f.audit_unsealed(10).unwrap().is_empty());
    let mut seqs: Vec<i64> = f
        .audit_chain(0, 100)
        .unwrap()
        .iter()
        .map(|l| l.seq)
        .collect();
    seqs.sort_unstable();
    let path: PathBuf = continuum_store_sqlite::audit_path(f.path());
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    (f, seqs, conn)
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn update_and_delete_are_refused() {
    let (f, seqs, conn) = sealed(3);
    for sql in [
        "UPDATE audit_event SET body = x'00' WHERE seq = ?1",
        "UPDATE audit_event SET agent = 'someone else' WHERE seq = ?1",
        "DELETE FROM audit_event WHERE seq = ?1",
        "UPDATE audit_chain SET hash = 'x' WHERE seq = ?1",
        "DELETE FROM audit_chain WHERE seq = ?1",
    ] {
        let err = conn.execute(sql, [seqs[1]]).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    for sql in ["DELETE FROM audit_event", "DELETE FROM audit_chain"] {
        assert!(conn.execute(sql, []).is_err(), "{sql}");
    }
    assert_eq!(count(&conn, "audit_event"), 3);
    assert_eq!(count(&conn, "audit_chain"), 3);
    let report = verify(&*f, 10).unwrap();
    assert_eq!(report.links, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn an_altered_row_is_named() {
    let (f, seqs, conn) = sealed(5);
    // an attacker with the file drops the trigger, then edits
    conn.execute_batch("DROP TRIGGER audit_event_no_update")
        .unwrap();
    conn.execute(
        "UPDATE audit_event SET body = CAST('{\"edited\":true}' AS BLOB) WHERE seq = ?1",
        [seqs[2]],
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
    let (f, seqs, conn) = sealed(5);
    conn.execute_batch("DROP TRIGGER audit_event_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_event WHERE seq = ?1", [seqs[3]])
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
    // the newest row removed: its seq is not handed out again
    conn.execute("DELETE FROM audit_event WHERE seq = ?1", [seqs[4]])
        .unwrap();
    f.append_audit(&[record("u2", None, 9)]).unwrap();
    let fresh = f.audit_unsealed(10).unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].seq > seqs[4]);
    let report = verify(&*f, 10).unwrap();
    assert_eq!(
        report.problems,
        [
            Problem::MissingRow {
                pos: 4,
                seq: seqs[3]
            },
            Problem::MissingRow {
                pos: 5,
                seq: seqs[4]
            }
        ]
    );
}

#[test]
fn a_removed_link_is_reported() {
    let (f, seqs, conn) = sealed(5);
    conn.execute_batch("DROP TRIGGER audit_chain_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_chain WHERE pos = 3", [])
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
    // the first link removed: the chain no longer starts at 1
    conn.execute("DELETE FROM audit_chain WHERE pos = 1", [])
        .unwrap();
    let report = verify(&*f, 10).unwrap();
    assert!(report.problems.contains(&Problem::Gap {
        after_pos: 0,
        next_pos: 2,
        seq: seqs[1]
    }));
    assert!(report.problems.contains(&Problem::Unchained {
        seq: seqs[0],
        newest_sealed: seqs[4]
    }));
}

#[test]
fn a_replaced_link_is_reported() {
    let (f, seqs, conn) = sealed(4);
    conn.execute_batch("DROP TRIGGER audit_chain_no_update")
        .unwrap();
    // rewrite link 2 with a made-up hash: the link no longer matches its row, and link 3 no longer follows on
    conn.execute(
        "UPDATE audit_chain SET hash = ?1 WHERE pos = 2",
        [continuum_store::audit::GENESIS],
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

/// `PRAGMA data_version` of a connection to the clinical file: it changes exactly when another connection
/// has committed to that file since, which is when SQLite empties the connection's page cache.
fn data_version(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .unwrap()
}

/// The audit log lives in its own file, so the audit record every read writes leaves the clinical file (and the
/// page caches of the connections reading it) untouched; clinical writes still change it.
#[test]
fn audit_records_do_not_touch_the_clinical_file() {
    use continuum_store::{Expect, ResourceStore, WriteTx};
    let f = fixture();
    let clinical = Connection::open(f.path()).unwrap();
    let before = data_version(&clinical);
    f.append_audit(&[record("u1", Some("p1"), 1)]).unwrap();
    f.seal_audit(10).unwrap();
    assert_eq!(
        data_version(&clinical),
        before,
        "an audit commit changed the clinical file"
    );
    let has_audit: bool = clinical
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'audit_event')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!has_audit, "the clinical file still has the audit tables");
    f.write(&mut |tx: &mut dyn WriteTx| {
        tx.put(
            &mut serde_json::json!({"resourceType": "Patient", "id": "p1"}),
            Expect::Absent,
        )?;
        tx.append_audit(&record("u1", Some("p1"), 2))
    })
    .unwrap();
    assert_ne!(
        data_version(&clinical),
        before,
        "a clinical write did not commit"
    );
    assert_eq!(f.audit_unsealed(10).unwrap().len(), 1);
}

/// A database from before the audit file (its audit tables in the clinical file, sealed) is upgraded on open:
/// every row and link moves to the audit file, the chain still verifies, and the clinical file loses the
/// tables.
#[test]
fn an_older_database_moves_its_audit_log_to_the_audit_file() {
    use continuum_store::audit::{link_hash, GENESIS};
    use continuum_store::{AuditQuery, AuditRow};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // the schema as migration 0008 left it
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);")
            .unwrap();
        for (version, name, sql) in continuum_store_sqlite::MIGRATIONS.iter().take(8) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                rusqlite::params![version, name],
            )
            .unwrap();
        }
        let mut prev = GENESIS.to_string();
        for i in 1..=4_i64 {
            let r = record("u1", Some("p1"), 1_000 + i);
            conn.execute(
                "INSERT INTO audit_event (recorded, agent, patient, action, subtype, outcome, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![r.recorded, r.agent, r.patient, r.action, r.subtype, r.outcome, r.body],
            )
            .unwrap();
            let seq = conn.last_insert_rowid();
            // the fourth row is left unsealed
            if i < 4 {
                let hash = link_hash(&prev, &AuditRow { seq, record: r });
                conn.execute(
                    "INSERT INTO audit_chain VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![i, seq, prev, hash],
                )
                .unwrap();
                prev = hash;
            }
        }
    }
    let store = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
    let report = verify(&store, 10).unwrap();
    assert_eq!(report.links, 3);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(store.audit_unsealed(10).unwrap().len(), 1);
    let rows = store
        .audit_search(&AuditQuery {
            patient: Some("p1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 4);
    // new rows follow the moved ones, and seal onto the moved chain
    store.append_audit(&[record("u2", None, 2_000)]).unwrap();
    assert_eq!(store.seal_audit(10).unwrap(), 2);
    let report = verify(&store, 10).unwrap();
    assert_eq!(report.links, 5);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let clinical = Connection::open(&path).unwrap();
    assert_eq!(
        count(
            &clinical,
            "sqlite_schema WHERE name IN ('audit_event', 'audit_chain')"
        ),
        0
    );
    drop(store);
    // opening again changes nothing
    let store = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
    assert_eq!(verify(&store, 10).unwrap().links, 5);
}

/// A database refuses to open with an audit file that is not its own: deleted (a new, empty log would start)
/// or swapped for another database's. With its own file back, it opens again.
#[test]
fn a_missing_or_foreign_audit_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| SqliteStore::open(dir.path().join(name), Arc::new(SystemClock));
    let a = dir.path().join("a.db");
    {
        let store = open("a.db").unwrap();
        store.append_audit(&[record("u1", Some("p1"), 1)]).unwrap();
        store.seal_audit(10).unwrap();
    }
    drop(open("b.db").unwrap());
    let a_log = continuum_store_sqlite::audit_path(&a);
    let b_log = continuum_store_sqlite::audit_path(&dir.path().join("b.db"));
    let saved = dir.path().join("a-audit.saved");
    std::fs::rename(&a_log, &saved).unwrap();
    let err = open("a.db").err().expect("opened without its audit file");
    assert!(err.to_string().contains("not the audit log"), "{err}");
    std::fs::remove_file(&a_log).unwrap();
    std::fs::copy(&b_log, &a_log).unwrap();
    let err = open("a.db")
        .err()
        .expect("opened with another database's audit file");
    assert!(err.to_string().contains("not the audit log"), "{err}");
    std::fs::remove_file(&a_log).unwrap();
    std::fs::rename(&saved, &a_log).unwrap();
    let store = open("a.db").unwrap();
    assert_eq!(verify(&store, 10).unwrap().links, 1);
}

/// The sealer files each row under its patient; an entry removed behind the store's back (the trigger dropped
/// first) hides that access from the patient's "who viewed my record", and `verify` names the row.
#[test]
fn a_removed_patient_entry_is_named() {
    use continuum_store::AuditQuery;
    let (f, seqs, conn) = sealed(4);
    let by_patient = || {
        f.audit_search(&AuditQuery {
            patient: Some("p1".into()),
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(count(&conn, "audit_patient"), 4);
    assert_eq!(by_patient(), 4);
    assert!(conn
        .execute("DELETE FROM audit_patient WHERE seq = ?1", [seqs[1]])
        .unwrap_err()
        .to_string()
        .contains("append-only"));
    conn.execute_batch("DROP TRIGGER audit_patient_no_delete")
        .unwrap();
    conn.execute("DELETE FROM audit_patient WHERE seq = ?1", [seqs[1]])
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
    let text = report.problems[0].to_string();
    assert!(text.contains(&format!("row {}", seqs[1])), "{text}");
}

/// An audit file from before the patients' list (migration 0012): its sealed rows are filed when it is
/// opened, its unsealed ones when they are sealed, and its patient index on the rows goes.
#[test]
fn an_older_audit_file_files_its_sealed_rows_by_patient() {
    use continuum_store::AuditQuery;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let store = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
        let records: Vec<_> = (0..6)
            .map(|i| record("u1", Some(if i % 2 == 0 { "p1" } else { "p2" }), 1_000 + i))
            .collect();
        store.append_audit(&records[..4]).unwrap();
        assert_eq!(store.seal_audit(10).unwrap(), 4);
        store.append_audit(&records[4..]).unwrap();
    }
    {
        // back to the audit file's schema before 0012
        let conn = Connection::open(continuum_store_sqlite::audit_path(&path)).unwrap();
        conn.execute_batch(
            "DROP TABLE audit_patient; CREATE INDEX audit_event_patient ON audit_event (patient, seq); \
             DELETE FROM schema_migrations WHERE version = 2;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
    let conn = Connection::open(continuum_store_sqlite::audit_path(&path)).unwrap();
    assert_eq!(count(&conn, "audit_patient"), 4);
    assert_eq!(
        count(&conn, "sqlite_schema WHERE name = 'audit_event_patient'"),
        0
    );
    let found = |patient: &str| {
        store
            .audit_search(&AuditQuery {
                patient: Some(patient.into()),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.record.recorded)
            .collect::<Vec<_>>()
    };
    assert_eq!(found("p1"), [1_004, 1_002, 1_000]);
    assert_eq!(found("p2"), [1_005, 1_003, 1_001]);
    assert_eq!(store.seal_audit(10).unwrap(), 2);
    assert_eq!(count(&conn, "audit_patient"), 6);
    assert_eq!(found("p1"), [1_004, 1_002, 1_000]);
    let report = verify(&store, 10).unwrap();
    assert_eq!(report.links, 6);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Two processes on one database seal at once (each its own store, as two servers would): each reads and
/// hashes off the writer, so one may find the chain moved on when it comes to append. Every row ends up
/// chained and filed exactly once, and no seal fails.
#[test]
fn two_stores_sealing_one_log_chain_each_row_once() {
    use continuum_store::AuditQuery;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
    let b = SqliteStore::open(&path, Arc::new(SystemClock)).unwrap();
    std::thread::scope(|s| {
        for (n, store) in [&a, &b].into_iter().enumerate() {
            s.spawn(move || {
                for i in 0..40_i64 {
                    let records: Vec<_> = (0..30)
                        .map(|j| {
                            record(
                                "u1",
                                Some(&format!("p{}", j % 7)),
                                (n as i64) << 32 | i << 8 | j,
                            )
                        })
                        .collect();
                    store.append_audit(&records).unwrap();
                    store.seal_audit(45).unwrap();
                }
            });
        }
    });
    while a.seal_audit(1_000).unwrap() > 0 {}
    let report = verify(&a, 100).unwrap();
    assert_eq!(report.links, 2 * 40 * 30);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let conn = Connection::open(continuum_store_sqlite::audit_path(&path)).unwrap();
    assert_eq!(count(&conn, "audit_patient"), 2 * 40 * 30);
    let p3 = b
        .audit_search(&AuditQuery {
            patient: Some("p3".into()),
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p3.len(), 2 * 40 * 4);
}
