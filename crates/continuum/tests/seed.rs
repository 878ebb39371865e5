//! `continuum seed` as a user runs it: the real binary loads a synthetic population into SQLite and
//! PostgreSQL (counts read back through the store match the generator and the printed summary), refuses to
//! load the same population twice, and writes NDJSON that `continuum import` loads; `continuum demo` seeds on
//! first start, reuses after, and prints the showcase family.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use continuum_seed::{Population, SynthConfig};
use continuum_store::search::{Filter, Predicate, SearchQuery};
use continuum_store::{ResourceStore, SystemClock};
use time::macros::datetime;

const PATIENTS: u64 = 12;
const NOW: &str = "2026-01-01";

fn continuum(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), format!("{stdout}\n{stderr}"))
}

fn count(store: &dyn ResourceStore, ty: &str, filters: Vec<Predicate>) -> u64 {
    store
        .search(&SearchQuery {
            resource_type: Some(ty.into()),
            filters: filters.into_iter().map(Filter::one).collect(),
            count: 0,
            total: true,
            ..Default::default()
        })
        .unwrap()
        .total
        .unwrap()
}

/// Resources per type the generator produces for the test population (a busy Slot is the same Slot).
fn expected() -> BTreeMap<String, u64> {
    let cfg = SynthConfig {
        seed: 3,
        now: datetime!(2026-01-01 00:00:00 UTC),
        ..SynthConfig::default()
    };
    let mut by_type = BTreeMap::new();
    for chunk in Population::new(&cfg, PATIENTS) {
        for e in chunk.bundle["entry"].as_array().unwrap() {
            if e["request"]["method"] == "PUT" && e["resource"]["resourceType"] == "Slot" {
                continue;
            }
            let t = e["resource"]["resourceType"].as_str().unwrap().to_string();
            *by_type.entry(t).or_insert(0) += 1;
        }
    }
    by_type
}

/// The per-type lines of a summary (`  Type   123`).
fn summary_counts(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (t, n) = (parts.next()?, parts.next()?);
            let starts_upper = t.chars().next()?.is_ascii_uppercase();
            (l.starts_with("  ") && starts_upper && parts.next().is_none())
                .then(|| Some((t.to_string(), n.parse().ok()?)))
                .flatten()
        })
        .collect()
}

fn check_seed(database: &str, open: impl Fn() -> Arc<dyn ResourceStore>) {
    let n = PATIENTS.to_string();
    let args = [
        "--database",
        database,
        "seed",
        "--patients",
        &n,
        "--seed",
        "3",
        "--now",
        NOW,
    ];
    let (ok, out) = continuum(&args);
    assert!(ok, "{out}");
    assert!(
        out.contains("resources/s") && out.contains("synthetic"),
        "{out}"
    );
    let store = open();
    let expected = expected();
    for (ty, n) in &expected {
        assert_eq!(count(store.as_ref(), ty, vec![]), *n, "{ty}: {out}");
    }
    assert_eq!(expected["Patient"], PATIENTS);
    // The summary counts every write: the busy slots twice (created free, then booked).
    let printed = summary_counts(&out);
    for (ty, n) in &expected {
        let extra = if ty == "Slot" {
            expected["Appointment"]
        } else {
            0
        };
        assert_eq!(
            printed.get(ty).copied(),
            Some(n + extra),
            "{ty} in {printed:?}"
        );
    }
    let busy = count(
        store.as_ref(),
        "Slot",
        vec![Predicate::Token {
            param: "status".into(),
            system: continuum_store::search::TokenSystem::Any,
            code: "busy".into(),
            negate: false,
        }],
    );
    assert_eq!(busy, expected["Appointment"]);
    // Loading the same population again is refused rather than duplicated.
    let (ok, again) = continuum(&args);
    assert!(!ok && again.contains("already holds"), "{again}");
    assert_eq!(count(open().as_ref(), "Patient", vec![]), PATIENTS);
}

#[test]
fn seed_loads_a_population_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("seed.db");
    let url = format!("sqlite://{}", db.display());
    check_seed(&url, || {
        Arc::new(continuum_store_sqlite::SqliteStore::open(&db, Arc::new(SystemClock)).unwrap())
    });
}

#[test]
fn seed_loads_a_population_into_postgres() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    check_seed(&url, || {
        Arc::new(
            continuum_store_postgres::PostgresStore::open(&url, Arc::new(SystemClock)).unwrap(),
        )
    });
}

#[test]
fn seed_writes_ndjson_that_import_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("ndjson");
    let n = PATIENTS.to_string();
    let (ok, out) = continuum(&[
        "seed",
        "--patients",
        &n,
        "--seed",
        "3",
        "--now",
        NOW,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let expected = expected();
    for (ty, n) in &expected {
        let lines = std::fs::read_to_string(out_dir.join(format!("{ty}.ndjson")))
            .unwrap()
            .lines()
            .count() as u64;
        assert_eq!(lines, *n, "{ty}.ndjson");
    }
    let db = dir.path().join("import.db");
    let url = format!("sqlite://{}", db.display());
    let (ok, out) = continuum(&["--database", &url, "import", out_dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    let store = continuum_store_sqlite::SqliteStore::open(&db, Arc::new(SystemClock)).unwrap();
    for (ty, n) in &expected {
        assert_eq!(count(&store, ty, vec![]), *n, "{ty} after import");
    }
}

/// Starts the demo, returns its stdout up to the "running" line, then stops it.
fn run_demo(dir: &Path, port: u16) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .current_dir(dir)
        .args([
            "demo",
            "--patients",
            "6",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("CONTINUUM_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            let done = line.starts_with("Continuum is running");
            text.push_str(&line);
            text.push('\n');
            if done {
                break;
            }
        }
        let _ = tx.send(text);
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    let text = loop {
        if let Ok(t) = rx.recv_timeout(Duration::from_millis(200)) {
            break t;
        }
        assert!(Instant::now() < deadline, "the demo did not start");
    };
    let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listening, "the demo server listens");
    text
}

#[test]
fn demo_seeds_on_first_start_and_reuses_after() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = run_demo(dir.path(), port);
    assert!(first.contains("First start: seeding"), "{first}");
    assert!(first.contains("SYNTHETIC"), "{first}");
    assert!(dir.path().join("continuum-demo.db").exists());
    for label in [
        "sponsor (active duty)",
        "child, 14 years",
        "nurse",
        "pharmacist",
        "scheduler",
    ] {
        let line = first
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("{label}: {first}"));
        assert!(
            line.contains("/fhir/") && !line.contains("not found"),
            "{line}"
        );
    }
    assert!(first.contains("Authorization: Bearer"), "{first}");
    assert!(
        first.contains("continuum --database sqlite://continuum-demo.db admin totp-code"),
        "{first}"
    );
    // demo logins: a sponsor with children in every age band, patients and staff, each with a second factor
    for user in [
        "sponsor",
        "spouse",
        "teen",
        "pcm",
        "nurse",
        "pharmacist",
        "scheduler",
        "admin",
    ] {
        assert!(
            first.contains(&format!("user {user:<12} TOTP secret ")),
            "login {user}: {first}"
        );
    }
    let code = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .current_dir(dir.path())
        .args([
            "--database",
            "sqlite://continuum-demo.db",
            "admin",
            "totp-code",
            "--username",
            "sponsor",
        ])
        .env_remove("CONTINUUM_DATABASE_URL")
        .output()
        .unwrap();
    let code = String::from_utf8(code.stdout).unwrap();
    assert!(
        code.trim().len() == 6 && code.trim().chars().all(|c| c.is_ascii_digit()),
        "{code}"
    );
    let second = run_demo(dir.path(), port);
    assert!(second.contains("already in"), "{second}");
    assert!(!second.contains("First start"), "{second}");
}
