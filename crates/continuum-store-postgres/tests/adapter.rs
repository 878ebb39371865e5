//! Behaviour specific to the PostgreSQL adapter, beyond the shared conformance suite: retry on racing
//! creates, transactions whose closure swallowed a database error, delete expectations, pool reporting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use continuum_store::{Expect, ResourceStore, StoreError, SystemClock, WriteTx};
use continuum_store_postgres::{PgOptions, PostgresStore};
use serde_json::json;

fn store_or_skip() -> Option<PostgresStore> {
    let url = continuum_testkit::pg::fresh_database_or_skip()?;
    Some(
        PostgresStore::open_with(
            &url,
            Arc::new(SystemClock),
            PgOptions {
                max_connections: 8,
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

fn patient(id: &str) -> serde_json::Value {
    json!({"resourceType": "Patient", "id": id})
}

#[test]
fn racing_creates_of_one_new_id_have_one_winner() {
    let Some(store) = store_or_skip() else { return };
    let store = &store;
    let (created, exists) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..6 {
            let (created, exists) = (&created, &exists);
            s.spawn(move || {
                let res = store.write(&mut |tx: &mut dyn WriteTx| {
                    tx.put(&mut patient("same"), Expect::Absent)?;
                    // Hold the row a moment so the other creates queue up on the unique index.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    Ok(())
                });
                match res {
                    Ok(()) => created.fetch_add(1, Ordering::SeqCst),
                    Err(StoreError::AlreadyExists(..)) => exists.fetch_add(1, Ordering::SeqCst),
                    Err(e) => panic!("unexpected {e:?}"),
                };
            });
        }
    });
    assert_eq!(created.load(Ordering::SeqCst), 1);
    assert_eq!(exists.load(Ordering::SeqCst), 5);
    assert_eq!(store.read("Patient", "same").unwrap().unwrap().version, 1);
}

#[test]
fn racing_upserts_of_one_new_id_all_succeed_in_sequence() {
    let Some(store) = store_or_skip() else { return };
    let store = &store;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                store
                    .write(&mut |tx: &mut dyn WriteTx| {
                        tx.put(&mut patient("up"), Expect::Any)?;
                        Ok(())
                    })
                    .unwrap();
            });
        }
    });
    let versions: Vec<i64> = store
        .history(&continuum_store::HistoryQuery {
            count: 10,
            ..Default::default()
        })
        .unwrap()
        .entries
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec![4, 3, 2, 1]);
}

#[test]
fn a_swallowed_database_error_does_not_commit_silently() {
    let Some(store) = store_or_skip() else { return };
    let res = store.write(&mut |tx: &mut dyn WriteTx| {
        tx.put(&mut patient("a"), Expect::Absent)?;
        // PostgreSQL rejects NUL in text, so this read fails in the database and aborts the transaction.
        assert!(tx.read("Patient", "bad\0id").is_err());
        Ok(())
    });
    assert!(matches!(res, Err(StoreError::Backend(_))), "{res:?}");
    assert!(store.read("Patient", "a").unwrap().is_none());
    // the connection is usable again afterwards
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            tx.put(&mut patient("a"), Expect::Absent)?;
            Ok(())
        })
        .unwrap();
    assert!(store.read("Patient", "a").unwrap().is_some());
}

#[test]
fn delete_checks_the_expected_version() {
    let Some(store) = store_or_skip() else { return };
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            tx.put(&mut patient("d"), Expect::Absent)?;
            Ok(())
        })
        .unwrap();
    let del = |expect| {
        let mut out = None;
        store
            .write(&mut |tx: &mut dyn WriteTx| {
                out = tx.delete("Patient", "d", expect)?;
                Ok(())
            })
            .map(|()| out)
    };
    assert!(matches!(
        del(Expect::Version(7)),
        Err(StoreError::VersionConflict {
            expected: 7,
            current: Some(1)
        })
    ));
    assert_eq!(del(Expect::Version(1)).unwrap(), Some(2));
    assert!(matches!(
        del(Expect::Version(2)),
        Err(StoreError::VersionConflict { current: None, .. })
    ));
    assert_eq!(del(Expect::Any).unwrap(), None);
}

#[test]
fn reports_backend_ping_and_pool() {
    let Some(store) = store_or_skip() else { return };
    assert_eq!(store.backend(), "postgres");
    store.ping().unwrap();
    let status = store.pool_status();
    assert_eq!(status.max, 8);
    assert!(
        status.connections >= 1 && status.idle <= status.connections,
        "{status:?}"
    );
}

#[test]
fn writes_in_one_transaction_share_its_timestamp() {
    let Some(store) = store_or_skip() else { return };
    let mut stamps = Vec::new();
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            stamps.clear();
            for id in ["t1", "t2", "t3"] {
                stamps.push(tx.put(&mut patient(id), Expect::Any)?.last_updated);
            }
            assert_eq!(tx.now(), stamps[0]);
            Ok(())
        })
        .unwrap();
    assert!(stamps.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        store.read("Patient", "t3").unwrap().unwrap().last_updated,
        stamps[0]
    );
}

/// Writes wait in a buffer until commit or the next read; whatever the interleaving, the outcome is the
/// same as writing each at once.
#[test]
fn buffered_writes_are_exact_whatever_the_interleaving() {
    let Some(store) = store_or_skip() else { return };
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            // created, updated and deleted before anything reaches the database
            tx.put(&mut patient("a"), Expect::Absent)?;
            tx.put(&mut patient("a"), Expect::Version(1))?;
            assert_eq!(tx.delete("Patient", "a", Expect::Version(2))?, Some(3));
            assert!(matches!(
                tx.put(&mut patient("a"), Expect::Version(3)),
                Err(StoreError::VersionConflict { current: None, .. })
            ));
            // created, then flushed by a read, then updated (an update of a stored row now)
            tx.put(&mut patient("b"), Expect::Absent)?;
            assert_eq!(tx.read("Patient", "b")?.unwrap().version, 1);
            tx.put(&mut patient("b"), Expect::Any)?;
            assert!(matches!(
                tx.put(&mut patient("b"), Expect::Absent),
                Err(StoreError::AlreadyExists(..))
            ));
            // looked at but never written, across a flush
            assert!(tx.delete("Patient", "ghost", Expect::Any)?.is_none());
            tx.search(&continuum_store::SearchQuery {
                resource_type: Some("Patient".into()),
                count: 10,
                ..Default::default()
            })?;
            tx.put(&mut patient("ghost"), Expect::Absent)?;
            Ok(())
        })
        .unwrap();
    let a = store.read("Patient", "a").unwrap().unwrap();
    assert!(a.deleted && a.version == 3);
    assert_eq!(store.read("Patient", "b").unwrap().unwrap().version, 2);
    assert_eq!(store.read("Patient", "ghost").unwrap().unwrap().version, 1);
    let history: Vec<String> = store
        .history(&continuum_store::HistoryQuery {
            count: 10,
            ..Default::default()
        })
        .unwrap()
        .entries
        .iter()
        .map(|e| format!("{}/{}", e.id, e.version))
        .collect();
    assert_eq!(history, ["ghost/1", "b/2", "b/1", "a/3", "a/2", "a/1"]);
    for v in 1..=3 {
        assert!(store.vread("Patient", "a", v).unwrap().is_some());
    }
}

#[test]
fn large_transactions_flush_on_their_own() {
    let Some(store) = store_or_skip() else { return };
    let n = 2_500;
    store
        .write(&mut |tx: &mut dyn WriteTx| {
            for i in 0..n {
                tx.put(&mut json!({"resourceType": "Patient", "id": format!("p{i}"), "gender": "male"}), Expect::Any)?;
            }
            tx.put(&mut patient("p0"), Expect::Version(1))?;
            Ok(())
        })
        .unwrap();
    let page = store
        .search(&continuum_store::SearchQuery {
            resource_type: Some("Patient".into()),
            count: 10,
            total: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.total, Some(n));
    assert_eq!(store.read("Patient", "p0").unwrap().unwrap().version, 2);
}
