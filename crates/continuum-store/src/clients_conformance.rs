//! Conformance cases of the [`crate::ClientStore`] port: behaviour every backend must show, run by each adapter's
//! tests through [`clients_conformance_tests!`](crate::clients_conformance_tests) against a real, empty database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Barrier, Mutex};

use crate::{ClientRow, ResourceStore, ServerKeyRow, StoreError};

/// Generates one `#[test]` per case. `$make` builds a fresh fixture that derefs to a store.
#[macro_export]
macro_rules! clients_conformance_tests {
    ($make:expr) => {
        $crate::clients_conformance_tests!(@each $make;
            clients_create_read_update, clients_duplicates_are_refused, clients_update_unknown_is_not_found,
            clients_list_in_pages, server_key_first_one_stays, server_key_race_has_one_winner);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::clients_conformance::$name(&*fixture);
            }
        )*
    };
}

const SEC: i64 = 1_000_000;
/// An arbitrary "now" (2023-11-14).
const NOW: i64 = 1_700_000_000 * SEC;

fn client(id: &str, body: &str) -> ClientRow {
    ClientRow {
        client_id: id.to_string(),
        created: NOW,
        updated: NOW,
        body: body.as_bytes().to_vec(),
    }
}

pub fn clients_create_read_update(store: &dyn ResourceStore) {
    let clients = store.clients();
    assert_eq!(clients.client("growth-chart").unwrap(), None);
    let c = client("growth-chart", r#"{"name":"Growth chart"}"#);
    clients.create_client(&c).unwrap();
    assert_eq!(clients.client("growth-chart").unwrap(), Some(c.clone()));
    // ids are compared exactly
    assert_eq!(clients.client("Growth-Chart").unwrap(), None);
    let changed = ClientRow {
        created: NOW + 99 * SEC,
        updated: NOW + 5 * SEC,
        body: br#"{"name":"Growth chart","revoked":true}"#.to_vec(),
        ..c.clone()
    };
    clients.update_client(&changed).unwrap();
    let read = clients.client("growth-chart").unwrap().unwrap();
    assert_eq!(read.created, NOW, "created is kept");
    assert_eq!(read.updated, NOW + 5 * SEC);
    assert_eq!(read.body, changed.body);
}

pub fn clients_duplicates_are_refused(store: &dyn ResourceStore) {
    let clients = store.clients();
    clients.create_client(&client("app", "{}")).unwrap();
    match clients.create_client(&client("app", r#"{"other":1}"#)) {
        Err(StoreError::AlreadyExists(what, id)) => {
            assert_eq!(what, "Client");
            assert_eq!(id, "app");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(clients.client("app").unwrap().unwrap().body, b"{}");
}

pub fn clients_update_unknown_is_not_found(store: &dyn ResourceStore) {
    match store.clients().update_client(&client("nobody", "{}")) {
        Err(StoreError::NotFound(what, _)) => assert_eq!(what, "Client"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub fn clients_list_in_pages(store: &dyn ResourceStore) {
    let clients = store.clients();
    for id in ["c", "a", "B", "b", "d"] {
        clients.create_client(&client(id, "{}")).unwrap();
    }
    let ids = |rows: Vec<ClientRow>| rows.into_iter().map(|r| r.client_id).collect::<Vec<_>>();
    assert_eq!(ids(clients.list_clients(None, 3).unwrap()), ["B", "a", "b"]);
    assert_eq!(ids(clients.list_clients(Some("b"), 3).unwrap()), ["c", "d"]);
    assert!(clients.list_clients(Some("d"), 3).unwrap().is_empty());
}

pub fn server_key_first_one_stays(store: &dyn ResourceStore) {
    let clients = store.clients();
    assert_eq!(clients.server_key("signing").unwrap(), None);
    let first = ServerKeyRow {
        name: "signing".into(),
        created: NOW,
        body: b"first".to_vec(),
    };
    assert_eq!(clients.server_key_or_insert(&first).unwrap(), first);
    let second = ServerKeyRow {
        created: NOW + SEC,
        body: b"second".to_vec(),
        ..first.clone()
    };
    assert_eq!(clients.server_key_or_insert(&second).unwrap(), first);
    let other = ServerKeyRow {
        name: "other".into(),
        created: NOW,
        body: b"other".to_vec(),
    };
    assert_eq!(clients.server_key_or_insert(&other).unwrap(), other);
    assert_eq!(clients.server_key("signing").unwrap(), Some(first));
    assert_eq!(clients.server_key("other").unwrap(), Some(other));
}

pub fn server_key_race_has_one_winner(store: &dyn ResourceStore) {
    const THREADS: usize = 8;
    let barrier = Barrier::new(THREADS);
    let seen = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for i in 0..THREADS {
            let (barrier, seen) = (&barrier, &seen);
            s.spawn(move || {
                barrier.wait();
                let key = store
                    .clients()
                    .server_key_or_insert(&ServerKeyRow {
                        name: "signing".into(),
                        created: NOW,
                        body: format!("key {i}").into_bytes(),
                    })
                    .unwrap();
                seen.lock().unwrap().push(key.body);
            });
        }
    });
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), THREADS);
    assert!(
        seen.iter().all(|b| *b == seen[0]),
        "every caller gets the same key"
    );
}
