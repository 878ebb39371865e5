//! `continuum reindex` as an operator runs it: the real binary on a seeded SQLite file and PostgreSQL database
//! reports the index state, rebuilds every live resource with --force, and leaves searches answering the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;

use continuum_store::search::{Filter, IndexTable, Predicate, SearchQuery, TokenSystem};
use continuum_store::{ResourceStore, SystemClock};
use continuum_store_postgres::PostgresStore;
use continuum_store_sqlite::SqliteStore;

fn continuum(database: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .args(["--database", database])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "continuum {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number before `needle` in `text` (`"reindexed 1234 resources"` → 1234).
fn number_before(text: &str, needle: &str) -> u64 {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("no '{needle}' in:\n{text}"));
    text[..at]
        .split_whitespace()
        .last()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap()
}

fn open(database: &str) -> Box<dyn ResourceStore> {
    let clock = Arc::new(SystemClock);
    match database.strip_prefix("sqlite://") {
        Some(path) => Box::new(SqliteStore::open(path, clock).unwrap()),
        None => Box::new(PostgresStore::open(database, clock).unwrap()),
    }
}

/// Live resources, counted by the store itself.
fn live(database: &str) -> u64 {
    open(database).count_live(i64::MIN).unwrap()
}

/// Totals of a few searches over the index tables (token, reference, string, date).
fn answers(database: &str) -> Vec<u64> {
    let store = open(database);
    let patients = store
        .search(&SearchQuery {
            resource_type: Some("Patient".into()),
            count: 1,
            ..Default::default()
        })
        .unwrap();
    let patient = patients.matches[0].id.clone();
    let searches = [
        (
            "Observation",
            Predicate::Token {
                param: "category".into(),
                system: TokenSystem::Any,
                code: "vital-signs".into(),
                negate: false,
            },
        ),
        (
            "Encounter",
            Predicate::Reference {
                param: "patient".into(),
                target_type: Some("Patient".into()),
                target_id: patient,
            },
        ),
        (
            "Practitioner",
            Predicate::Missing {
                param: "name".into(),
                table: IndexTable::String,
                missing: false,
            },
        ),
    ];
    searches
        .into_iter()
        .map(|(ty, p)| {
            store
                .search(&SearchQuery {
                    resource_type: Some(ty.into()),
                    filters: vec![Filter::one(p)],
                    count: 0,
                    total: true,
                    ..Default::default()
                })
                .unwrap()
                .total
                .unwrap()
        })
        .collect()
}

fn reindex_round_trip(database: &str) {
    let seeded = continuum(
        database,
        &["seed", "--patients", "3", "--now", "2026-01-01"],
    );
    assert!(continuum(database, &["reindex", "--status"]).contains("the search index is current"));
    let answers_before = answers(database);
    assert!(answers_before.iter().all(|&n| n > 0), "{answers_before:?}");

    let out = continuum(database, &["reindex"]);
    assert!(out.contains("is current (use --force"), "{out}");

    let out = continuum(database, &["reindex", "--force", "--batch", "97"]);
    let reindexed = number_before(&out, "resources in");
    let loaded = number_before(&seeded, "resources");
    // the seed's count includes Slots written twice (booked after being created free)
    assert!(
        reindexed > 0 && reindexed <= loaded,
        "seed said:\n{seeded}\nreindex said:\n{out}"
    );
    assert_eq!(reindexed, live(database), "every live resource, once");
    assert!(out.contains("the search index is current"), "{out}");
    assert!(continuum(database, &["reindex", "--status"]).contains("the search index is current"));
    assert_eq!(answers(database), answers_before);

    let out = continuum(database, &["reindex", "--recount"]);
    assert!(out.contains("every count is exact"), "{out}");
}

#[test]
fn reindex_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("r.db").display());
    reindex_round_trip(&database);
}

#[test]
fn reindex_on_postgres() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    reindex_round_trip(&url);
}
