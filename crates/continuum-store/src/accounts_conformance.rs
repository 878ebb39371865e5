//! Conformance cases of the [`crate::AccountStore`] port: behaviour every backend must show, run by each
//! adapter's tests through [`accounts_conformance_tests!`](crate::accounts_conformance_tests) against a real,
//! empty database.
//!
//! Expected values are written from the port's contract, not read off an implementation. The concurrency cases
//! use real threads on the real store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

use crate::{AccountRow, AccountStore, Attempt, OutboxRow, ResourceStore, StoreError, TokenRow};

/// Generates one `#[test]` per case. `$make` builds a fresh fixture that derefs to a store.
#[macro_export]
macro_rules! accounts_conformance_tests {
    ($make:expr) => {
        $crate::accounts_conformance_tests!(@each $make;
            accounts_create_and_read, accounts_duplicates_are_refused, accounts_update,
            accounts_list_in_pages, login_lockout_and_expiry, login_window_slides,
            login_expired_lock_with_full_window_locks_again, login_succeeded_resets,
            login_attempts_on_unknown_account, login_race_allows_exactly_max, throttle_counts_within_window,
            throttle_race_counts_every_hit, tokens_insert_read_expire_touch, take_token_consumes_once,
            take_token_race_has_one_winner, delete_account_tokens_by_kind, outbox_in_order_until_sent);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let fixture = $make;
                $crate::accounts_conformance::$name(&*fixture);
            }
        )*
    };
}

const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;
/// An arbitrary "now" (2023-11-14): time is passed in, never read from a clock.
const NOW: i64 = 1_700_000_000 * SEC;

fn account(id: &str, username: &str, cert_id: Option<&str>) -> AccountRow {
    AccountRow {
        id: id.to_string(),
        username: username.to_string(),
        cert_id: cert_id.map(str::to_string),
        locked_until: None,
        body: format!(r#"{{"roles":["clinician"],"id":"{id}"}}"#).into_bytes(),
    }
}

fn create(
    accounts: &dyn AccountStore,
    id: &str,
    username: &str,
    cert_id: Option<&str>,
) -> AccountRow {
    let a = account(id, username, cert_id);
    accounts.create_account(&a).expect("create account");
    AccountRow {
        username: username.to_lowercase(),
        ..a
    }
}

fn token(hash: &str, kind: &str, account_id: &str, expires: i64) -> TokenRow {
    TokenRow {
        hash: hash.to_string(),
        kind: kind.to_string(),
        account_id: account_id.to_string(),
        created: NOW,
        last_used: NOW,
        expires,
        data: br#"{"scope":"patient/*.read"}"#.to_vec(),
    }
}

fn mail(n: i64) -> OutboxRow {
    OutboxRow {
        seq: 0,
        created: NOW + n,
        recipient: format!("user{n}@example.org"),
        subject: format!("Subject {n}"),
        body: format!("Body {n}: https://example.org/reset?t=abc"),
    }
}

fn allowed(count: u32) -> Attempt {
    Attempt::Allowed { count }
}

fn locked_until(accounts: &dyn AccountStore, id: &str) -> Option<i64> {
    accounts
        .account_by_id(id)
        .unwrap()
        .expect("account exists")
        .locked_until
}

pub fn accounts_create_and_read(store: &dyn ResourceStore) {
    let acc = store.accounts();
    let alice = create(acc, "a1", "Alice.Smith", Some("CERT-1"));
    assert_eq!(alice.username, "alice.smith");
    assert_eq!(acc.account_by_id("a1").unwrap(), Some(alice.clone()));
    assert_eq!(
        acc.account_by_username("alice.smith").unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        acc.account_by_username("ALICE.Smith").unwrap(),
        Some(alice.clone()),
        "usernames compare lower-cased"
    );
    assert_eq!(acc.account_by_cert("CERT-1").unwrap(), Some(alice.clone()));
    assert_eq!(acc.account_by_id("nope").unwrap(), None);
    assert_eq!(acc.account_by_username("bob").unwrap(), None);
    assert_eq!(acc.account_by_cert("CERT-2").unwrap(), None);
    // several accounts without a certificate
    let bob = create(acc, "a2", "bob", None);
    let carol = create(acc, "a3", "carol", None);
    assert_eq!(acc.account_by_id("a2").unwrap(), Some(bob));
    assert_eq!(acc.account_by_id("a3").unwrap(), Some(carol));
}

pub fn accounts_duplicates_are_refused(store: &dyn ResourceStore) {
    let acc = store.accounts();
    let alice = create(acc, "a1", "alice", Some("CERT-1"));
    match acc.create_account(&account("a2", "ALICE", None)) {
        Err(StoreError::AlreadyExists(what, name)) => {
            assert_eq!((what.as_str(), name.as_str()), ("Account", "alice"));
        }
        other => panic!("duplicate username: {other:?}"),
    }
    match acc.create_account(&account("a3", "bob", Some("CERT-1"))) {
        Err(StoreError::AlreadyExists(what, name)) => {
            assert_eq!((what.as_str(), name.as_str()), ("Account", "bob"));
        }
        other => panic!("duplicate certificate: {other:?}"),
    }
    assert!(matches!(
        acc.create_account(&account("a1", "someone-else", None)),
        Err(StoreError::AlreadyExists(..))
    ));
    assert_eq!(acc.account_by_id("a2").unwrap(), None);
    assert_eq!(acc.account_by_id("a3").unwrap(), None);
    assert_eq!(acc.account_by_username("bob").unwrap(), None);
    assert_eq!(acc.account_by_id("a1").unwrap(), Some(alice));
    // the refusals left the store usable
    create(acc, "a4", "bob", Some("CERT-2"));
}

pub fn accounts_update(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", Some("CERT-1"));
    create(acc, "a2", "bob", None);
    // lock a1 so that the update's handling of the lock shows
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW, MIN, 1, 10 * MIN)
            .unwrap(),
        allowed(1)
    );
    let changed = AccountRow {
        id: "a1".into(),
        username: "Alice.Jones".into(),
        cert_id: Some("CERT-9".into()),
        locked_until: None,
        body: br#"{"roles":["admin"]}"#.to_vec(),
    };
    acc.update_account(&changed).unwrap();
    let read = acc.account_by_id("a1").unwrap().unwrap();
    assert_eq!(read.username, "alice.jones");
    assert_eq!(read.cert_id.as_deref(), Some("CERT-9"));
    assert_eq!(read.body, changed.body);
    assert_eq!(
        read.locked_until,
        Some(NOW + 10 * MIN),
        "update leaves the lock alone"
    );
    assert_eq!(acc.account_by_username("alice").unwrap(), None);
    assert_eq!(acc.account_by_cert("CERT-1").unwrap(), None);
    assert_eq!(
        acc.account_by_username("ALICE.JONES").unwrap(),
        Some(read.clone())
    );
    assert_eq!(acc.account_by_cert("CERT-9").unwrap(), Some(read.clone()));

    // renaming onto a taken username or certificate is refused and changes nothing
    let clash = AccountRow {
        username: "BOB".into(),
        ..changed.clone()
    };
    assert!(matches!(
        acc.update_account(&clash),
        Err(StoreError::AlreadyExists(..))
    ));
    let clash = AccountRow {
        id: "a2".into(),
        username: "bob".into(),
        cert_id: Some("CERT-9".into()),
        ..changed.clone()
    };
    assert!(matches!(
        acc.update_account(&clash),
        Err(StoreError::AlreadyExists(..))
    ));
    assert_eq!(acc.account_by_id("a1").unwrap(), Some(read));
    assert_eq!(acc.account_by_id("a2").unwrap().unwrap().cert_id, None);

    // dropping the certificate
    acc.update_account(&AccountRow {
        cert_id: None,
        ..changed.clone()
    })
    .unwrap();
    assert_eq!(acc.account_by_cert("CERT-9").unwrap(), None);

    match acc.update_account(&account("ghost", "ghost", None)) {
        Err(StoreError::NotFound(..)) => {}
        other => panic!("update of a missing account: {other:?}"),
    }
    assert_eq!(acc.account_by_username("ghost").unwrap(), None);
}

pub fn accounts_list_in_pages(store: &dyn ResourceStore) {
    let acc = store.accounts();
    for (i, name) in ["delta", "Alpha", "echo", "charlie", "BRAVO"]
        .iter()
        .enumerate()
    {
        create(acc, &format!("id{i}"), name, None);
    }
    let names = |rows: Vec<AccountRow>| rows.into_iter().map(|a| a.username).collect::<Vec<_>>();
    assert_eq!(
        names(acc.list_accounts(None, 100).unwrap()),
        ["alpha", "bravo", "charlie", "delta", "echo"]
    );
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = names(acc.list_accounts(after.as_deref(), 2).unwrap());
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().cloned();
        pages.push(page);
    }
    assert_eq!(
        pages,
        [
            vec!["alpha", "bravo"],
            vec!["charlie", "delta"],
            vec!["echo"]
        ]
    );
    assert_eq!(
        names(acc.list_accounts(Some("BRAVO"), 10).unwrap()),
        ["charlie", "delta", "echo"],
        "`after` is compared lower-cased"
    );
    assert_eq!(
        names(acc.list_accounts(Some("c"), 1).unwrap()),
        ["charlie"],
        "`after` need not be an existing username"
    );
    assert!(acc.list_accounts(None, 0).unwrap().is_empty());
    assert!(acc.list_accounts(Some("echo"), 10).unwrap().is_empty());
    let full = acc.list_accounts(Some("alpha"), 1).unwrap();
    assert_eq!(full, vec![acc.account_by_id("id4").unwrap().unwrap()]);
}

pub fn login_lockout_and_expiry(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let (window, max, lock_for) = (10 * MIN, 5, 30 * MIN);
    for i in 0..5 {
        assert_eq!(
            acc.reserve_login_attempt("a1", NOW + i * SEC, window, max, lock_for)
                .unwrap(),
            allowed(i as u32 + 1)
        );
    }
    // the attempt that reached max set the lock
    let until = NOW + 4 * SEC + lock_for;
    assert_eq!(locked_until(acc, "a1"), Some(until));
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW + 5 * SEC, window, max, lock_for)
            .unwrap(),
        Attempt::Locked { until }
    );
    assert_eq!(
        acc.reserve_login_attempt("a1", until - 1, window, max, lock_for)
            .unwrap(),
        Attempt::Locked { until },
        "locked until the last microsecond"
    );
    assert_eq!(
        locked_until(acc, "a1"),
        Some(until),
        "refused attempts do not extend the lock"
    );
    // at `until` the lock no longer holds; the counted attempts have left the window, and the refused ones
    // were never counted
    assert_eq!(
        acc.reserve_login_attempt("a1", until, window, max, lock_for)
            .unwrap(),
        allowed(1)
    );
    assert_eq!(
        acc.reserve_login_attempt("a1", until + SEC, window, max, lock_for)
            .unwrap(),
        allowed(2)
    );
}

pub fn login_window_slides(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let (window, max, lock_for) = (60 * SEC, 5, 5 * MIN);
    let reserve = |at: i64| {
        acc.reserve_login_attempt("a1", at, window, max, lock_for)
            .unwrap()
    };
    assert_eq!(reserve(NOW), allowed(1));
    assert_eq!(reserve(NOW), allowed(2));
    assert_eq!(reserve(NOW), allowed(3));
    assert_eq!(reserve(NOW + 30 * SEC), allowed(4));
    // exactly `window` later the attempts at NOW are out of it (only attempts after now - window count)
    assert_eq!(reserve(NOW + window), allowed(2));
    assert_eq!(reserve(NOW + window + SEC), allowed(3));
    assert_eq!(reserve(NOW + window + 2 * SEC), allowed(4));
    assert_eq!(locked_until(acc, "a1"), None);
    assert_eq!(reserve(NOW + window + 3 * SEC), allowed(5));
    assert_eq!(
        locked_until(acc, "a1"),
        Some(NOW + window + 3 * SEC + lock_for)
    );
    // a different account has its own count
    create(acc, "a2", "bob", None);
    assert_eq!(
        acc.reserve_login_attempt("a2", NOW + window, window, max, lock_for)
            .unwrap(),
        allowed(1)
    );
}

/// When the lock is shorter than the window, the attempts that caused it are still in the window when it
/// expires: the next attempt finds `max` counted and locks again without a password check.
pub fn login_expired_lock_with_full_window_locks_again(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let (window, max, lock_for) = (10 * MIN, 2, MIN);
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW, window, max, lock_for)
            .unwrap(),
        allowed(1)
    );
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW, window, max, lock_for)
            .unwrap(),
        allowed(2)
    );
    let later = NOW + lock_for;
    assert_eq!(
        acc.reserve_login_attempt("a1", later, window, max, lock_for)
            .unwrap(),
        Attempt::Locked {
            until: later + lock_for
        }
    );
    assert_eq!(locked_until(acc, "a1"), Some(later + lock_for));
    // once the window has passed, attempts are allowed again
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW + window, window, max, lock_for)
            .unwrap(),
        allowed(1)
    );
}

pub fn login_succeeded_resets(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let (window, max, lock_for) = (10 * MIN, 5, 30 * MIN);
    for i in 1..=4 {
        assert_eq!(
            acc.reserve_login_attempt("a1", NOW, window, max, lock_for)
                .unwrap(),
            allowed(i)
        );
    }
    acc.login_succeeded("a1").unwrap();
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW + SEC, window, max, lock_for)
            .unwrap(),
        allowed(1),
        "a success forgets the counted attempts"
    );
    for i in 2..=5 {
        assert_eq!(
            acc.reserve_login_attempt("a1", NOW + SEC, window, max, lock_for)
                .unwrap(),
            allowed(i)
        );
    }
    assert!(matches!(
        acc.reserve_login_attempt("a1", NOW + 2 * SEC, window, max, lock_for)
            .unwrap(),
        Attempt::Locked { .. }
    ));
    acc.unlock("a1").unwrap();
    assert_eq!(locked_until(acc, "a1"), None);
    assert_eq!(
        acc.reserve_login_attempt("a1", NOW + 3 * SEC, window, max, lock_for)
            .unwrap(),
        allowed(1),
        "unlock clears the lock and the count"
    );
    acc.login_succeeded("a1").unwrap();
    assert_eq!(locked_until(acc, "a1"), None);
}

pub fn login_attempts_on_unknown_account(store: &dyn ResourceStore) {
    let acc = store.accounts();
    assert!(matches!(
        acc.reserve_login_attempt("ghost", NOW, MIN, 5, MIN),
        Err(StoreError::NotFound(..))
    ));
    assert!(matches!(
        acc.login_succeeded("ghost"),
        Err(StoreError::NotFound(..))
    ));
}

/// 200 threads try the same account at the same instant: exactly `max` get a password check.
pub fn login_race_allows_exactly_max(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let (window, max, lock_for) = (10 * MIN, 5u32, 30 * MIN);
    let threads = 200;
    let barrier = Barrier::new(threads);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (barrier, outcomes) = (&barrier, &outcomes);
            s.spawn(move || {
                barrier.wait();
                let outcome = acc
                    .reserve_login_attempt("a1", NOW, window, max, lock_for)
                    .unwrap();
                outcomes.lock().unwrap().push(outcome);
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    assert_eq!(outcomes.len(), threads);
    let mut counts: Vec<u32> = outcomes
        .iter()
        .filter_map(|o| match o {
            Attempt::Allowed { count } => Some(*count),
            Attempt::Locked { .. } => None,
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2, 3, 4, 5], "exactly max attempts allowed");
    for o in &outcomes {
        if let Attempt::Locked { until } = o {
            assert_eq!(*until, NOW + lock_for);
        }
    }
    assert_eq!(locked_until(acc, "a1"), Some(NOW + lock_for));
}

pub fn throttle_counts_within_window(store: &dyn ResourceStore) {
    let acc = store.accounts();
    let window = 10 * SEC;
    assert_eq!(acc.throttle_hit("ip:10.0.0.1", NOW, window).unwrap(), 1);
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.1", NOW + SEC, window).unwrap(),
        2
    );
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.1", NOW + 2 * SEC, window)
            .unwrap(),
        3
    );
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.2", NOW + 2 * SEC, window)
            .unwrap(),
        1
    );
    // exactly `window` after NOW the first hit no longer counts
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.1", NOW + window, window)
            .unwrap(),
        3
    );
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.1", NOW + 100 * SEC, window)
            .unwrap(),
        1
    );
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.1", NOW + 100 * SEC, window)
            .unwrap(),
        2
    );
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.2", NOW + 100 * SEC, window)
            .unwrap(),
        1
    );
    // a wider window on the same key sees hits a narrower one would not
    assert_eq!(
        acc.throttle_hit("ip:10.0.0.1", NOW + 101 * SEC, 1000 * SEC)
            .unwrap(),
        3
    );
}

/// Concurrent hits on one key are each counted once: the answers are 1..=n.
pub fn throttle_race_counts_every_hit(store: &dyn ResourceStore) {
    let acc = store.accounts();
    let threads = 32;
    let barrier = Barrier::new(threads);
    let counts = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (barrier, counts) = (&barrier, &counts);
            s.spawn(move || {
                barrier.wait();
                let n = acc.throttle_hit("ip:10.9.9.9", NOW, MIN).unwrap();
                counts.lock().unwrap().push(n);
            });
        }
    });
    let mut counts = counts.into_inner().unwrap();
    counts.sort_unstable();
    assert_eq!(counts, (1..=threads as u32).collect::<Vec<_>>());
}

pub fn tokens_insert_read_expire_touch(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let expires = NOW + 60 * MIN;
    let t = token("hash-session-1", "session", "a1", expires);
    acc.insert_token(&t).unwrap();
    assert_eq!(
        acc.token("hash-session-1", "session", NOW).unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        acc.token("hash-session-1", "session", expires - 1).unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        acc.token("hash-session-1", "session", expires).unwrap(),
        None,
        "expired at `expires`"
    );
    assert_eq!(
        acc.token("hash-session-1", "reset", NOW).unwrap(),
        None,
        "kind must match"
    );
    assert_eq!(acc.token("hash-unknown", "session", NOW).unwrap(), None);
    // the account of a live token, in one step, under the same rules
    let alice = acc.account_by_id("a1").unwrap();
    assert!(alice.is_some());
    assert_eq!(
        acc.account_by_token("hash-session-1", "session", expires - 1)
            .unwrap(),
        alice
    );
    assert_eq!(
        acc.account_by_token("hash-session-1", "session", expires)
            .unwrap(),
        None
    );
    assert_eq!(
        acc.account_by_token("hash-session-1", "reset", NOW)
            .unwrap(),
        None
    );
    assert_eq!(
        acc.account_by_token("hash-unknown", "session", NOW)
            .unwrap(),
        None
    );
    assert!(matches!(
        acc.insert_token(&token("hash-session-1", "api", "a1", expires)),
        Err(StoreError::AlreadyExists(..))
    ));
    assert_eq!(
        acc.token("hash-session-1", "session", NOW).unwrap(),
        Some(t.clone())
    );

    acc.touch_token("hash-session-1", NOW + 5 * MIN).unwrap();
    let touched = acc
        .token("hash-session-1", "session", NOW + 5 * MIN)
        .unwrap()
        .unwrap();
    assert_eq!(
        touched,
        TokenRow {
            last_used: NOW + 5 * MIN,
            ..t.clone()
        }
    );
    acc.touch_token("hash-unknown", NOW).unwrap();

    acc.delete_token("hash-session-1").unwrap();
    assert_eq!(acc.token("hash-session-1", "session", NOW).unwrap(), None);
    acc.delete_token("hash-session-1").unwrap();
}

pub fn take_token_consumes_once(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    let t = token("hash-reset-1", "reset", "a1", NOW + 15 * MIN);
    acc.insert_token(&t).unwrap();
    assert_eq!(
        acc.take_token("hash-reset-1", "auth_code", NOW).unwrap(),
        None,
        "kind must match"
    );
    assert_eq!(
        acc.token("hash-reset-1", "reset", NOW).unwrap(),
        Some(t.clone()),
        "a take of the wrong kind leaves the token"
    );
    assert_eq!(
        acc.take_token("hash-reset-1", "reset", NOW).unwrap(),
        Some(t)
    );
    assert_eq!(acc.take_token("hash-reset-1", "reset", NOW).unwrap(), None);
    assert_eq!(acc.token("hash-reset-1", "reset", NOW).unwrap(), None);

    let old = token("hash-reset-2", "reset", "a1", NOW + MIN);
    acc.insert_token(&old).unwrap();
    assert_eq!(
        acc.take_token("hash-reset-2", "reset", NOW + MIN).unwrap(),
        None,
        "an expired token is not returned"
    );
    assert_eq!(acc.take_token("hash-reset-2", "reset", NOW).unwrap(), None);
}

/// 16 threads consume the same one-time token: exactly one gets it.
pub fn take_token_race_has_one_winner(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    for round in 0..5 {
        let hash = format!("hash-code-{round}");
        acc.insert_token(&token(&hash, "auth_code", "a1", NOW + MIN))
            .unwrap();
        let threads = 16;
        let barrier = Barrier::new(threads);
        let wins = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                let (barrier, wins, hash) = (&barrier, &wins, &hash);
                s.spawn(move || {
                    barrier.wait();
                    if let Some(t) = acc.take_token(hash, "auth_code", NOW).unwrap() {
                        assert_eq!(&t.hash, hash);
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
    }
}

pub fn delete_account_tokens_by_kind(store: &dyn ResourceStore) {
    let acc = store.accounts();
    create(acc, "a1", "alice", None);
    create(acc, "a2", "bob", None);
    let exp = NOW + MIN;
    for t in [
        token("h1", "session", "a1", exp),
        token("h2", "session", "a1", exp),
        token("h3", "api", "a1", exp),
        token("h4", "session", "a2", exp),
    ] {
        acc.insert_token(&t).unwrap();
    }
    assert_eq!(acc.delete_account_tokens("a1", Some("session")).unwrap(), 2);
    assert_eq!(acc.token("h1", "session", NOW).unwrap(), None);
    assert_eq!(acc.token("h2", "session", NOW).unwrap(), None);
    assert!(acc.token("h3", "api", NOW).unwrap().is_some());
    assert!(
        acc.token("h4", "session", NOW).unwrap().is_some(),
        "another account's tokens stay"
    );
    assert_eq!(acc.delete_account_tokens("a1", Some("session")).unwrap(), 0);
    assert_eq!(acc.delete_account_tokens("a1", None).unwrap(), 1);
    assert_eq!(acc.token("h3", "api", NOW).unwrap(), None);
    assert_eq!(acc.delete_account_tokens("a1", None).unwrap(), 0);
    assert_eq!(acc.delete_account_tokens("a2", None).unwrap(), 1);
}

pub fn outbox_in_order_until_sent(store: &dyn ResourceStore) {
    let acc = store.accounts();
    assert!(acc.pending_mail(10).unwrap().is_empty());
    let seqs: Vec<i64> = (1..=3)
        .map(|n| acc.enqueue_mail(&mail(n)).unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq grows: {seqs:?}");
    let expected: Vec<OutboxRow> = (1..=3)
        .zip(&seqs)
        .map(|(n, seq)| OutboxRow {
            seq: *seq,
            ..mail(n)
        })
        .collect();
    assert_eq!(acc.pending_mail(10).unwrap(), expected);
    assert_eq!(acc.pending_mail(2).unwrap(), expected[..2]);
    acc.mark_mail_sent(seqs[0], NOW + 10 * SEC).unwrap();
    assert_eq!(acc.pending_mail(10).unwrap(), expected[1..]);
    acc.mark_mail_sent(seqs[2], NOW + 11 * SEC).unwrap();
    assert_eq!(acc.pending_mail(10).unwrap(), expected[1..2]);
    let fourth = acc.enqueue_mail(&mail(4)).unwrap();
    assert!(fourth > seqs[2]);
    assert_eq!(
        acc.pending_mail(10)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>(),
        [seqs[1], fourth]
    );
    assert!(matches!(
        acc.mark_mail_sent(fourth + 1000, NOW),
        Err(StoreError::NotFound(..))
    ));
    assert!(acc.pending_mail(0).unwrap().is_empty());
}
