//! Group commit under concurrency: what each writer was told matches what is stored, whatever the others did.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use continuum_store::search::SearchQuery;
use continuum_store::{Expect, ResourceStore, StoreError, SystemClock, WriteTx};
use continuum_store_sqlite::SqliteStore;
use serde_json::json;

#[test]
fn concurrent_writers_failures_and_panics_stay_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("g.db"), Arc::new(SystemClock)).unwrap();
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..12 {
            let (store, ok) = (&store, &ok);
            s.spawn(move || {
                for i in 0..40 {
                    let id = format!("t{t}-{i}");
                    let fail = i % 7 == 3;
                    let explode = t == 5 && i == 11;
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        store.write(&mut |tx: &mut dyn WriteTx| {
                            tx.put(&mut json!({"resourceType": "Basic", "id": id, "code": {"text": "synthetic"}}), Expect::Absent)?;
                            if explode {
                                panic!("a writer panics mid-transaction");
                            }
                            if fail {
                                return Err(StoreError::Aborted);
                            }
                            Ok(())
                        })
                    }));
                    match result {
                        Ok(Ok(())) => {
                            assert!(!fail && !explode);
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Err(StoreError::Aborted)) => assert!(fail),
                        Ok(Err(e)) => panic!("unexpected {e:?}"),
                        Err(_) => assert!(explode),
                    }
                }
            });
        }
    });
    let stored = store
        .search(&SearchQuery {
            resource_type: Some("Basic".into()),
            count: 0,
            total: true,
            ..Default::default()
        })
        .unwrap()
        .total
        .unwrap();
    assert_eq!(
        stored as usize,
        ok.load(Ordering::SeqCst),
        "exactly the acknowledged writes are stored"
    );
    // 12 writers x 40, minus the failing ones (i % 7 == 3: 6 per writer) and the one panic
    assert_eq!(stored, 12 * 40 - 12 * 6 - 1);
    for t in 0..12 {
        for i in 0..40 {
            let present = store.read("Basic", &format!("t{t}-{i}")).unwrap().is_some();
            assert_eq!(present, !(i % 7 == 3 || (t == 5 && i == 11)), "t{t}-{i}");
        }
    }
}
