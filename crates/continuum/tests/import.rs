//! `continuum import` as a user runs it: the real binary on synthetic Synthea-like bundles, on SQLite and
//! PostgreSQL, read back through the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use continuum_store::search::{Filter, Predicate, SearchQuery, TokenSystem};
use continuum_store::{ResourceStore, SystemClock};
use continuum_testkit::synth::{patient_bundles, provider_bundle, SynthConfig};
use serde_json::Value;

fn write_dataset(dir: &Path, patients: u64) -> (usize, Vec<Value>) {
    let cfg = SynthConfig::default();
    std::fs::write(
        dir.join("practitionerInformation1.json"),
        provider_bundle(&cfg).to_string(),
    )
    .unwrap();
    let mut bundles = Vec::new();
    let mut entries = 0;
    for (i, b) in patient_bundles(&cfg, patients).enumerate() {
        entries += b["entry"].as_array().unwrap().len();
        std::fs::write(dir.join(format!("patient-{i:03}.json")), b.to_string()).unwrap();
        bundles.push(b);
    }
    (entries, bundles)
}

fn import(database: &str, path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .args(["--database", database, "import"])
        .arg(path)
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

fn check_round_trip(database: &str, open: impl Fn() -> Arc<dyn ResourceStore>) {
    let dir = tempfile::tempdir().unwrap();
    let (entries, bundles) = write_dataset(dir.path(), 3);
    let (ok, out) = import(database, dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("resources/s"), "summary printed: {out}");
    let store = open();
    // every patient bundle's resources are there, once
    let patients = count(store.as_ref(), "Patient", vec![]);
    assert_eq!(patients, 3, "{out}");
    let imported: u64 = [
        "Encounter",
        "Observation",
        "Condition",
        "Immunization",
        "MedicationRequest",
        "DiagnosticReport",
    ]
    .iter()
    .map(|t| count(store.as_ref(), t, vec![]))
    .sum();
    assert!(imported > 0);
    let expected_obs: usize = bundles
        .iter()
        .map(|b| {
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["resource"]["resourceType"] == "Observation")
                .count()
        })
        .sum();
    assert_eq!(
        count(store.as_ref(), "Observation", vec![]),
        expected_obs as u64
    );
    // urn:uuid references were rewritten to the stored ids
    let some_patient = store
        .search(&SearchQuery {
            resource_type: Some("Patient".into()),
            count: 1,
            ..Default::default()
        })
        .unwrap()
        .matches
        .remove(0);
    let of_patient = count(
        store.as_ref(),
        "Encounter",
        vec![Predicate::Reference {
            param: "subject".into(),
            target_type: Some("Patient".into()),
            target_id: some_patient.id.clone(),
        }],
    );
    assert!(of_patient > 0, "encounters reference the stored patient id");
    let total_before: u64 = store
        .history(&continuum_store::HistoryQuery {
            count: 1,
            total: true,
            ..Default::default()
        })
        .unwrap()
        .total
        .unwrap();
    assert!(
        total_before as usize >= entries,
        "{total_before} versions for {entries} entries"
    );

    // importing the same files again must not duplicate what is conditionally created
    let (ok, out) = import(database, dir.path());
    assert!(ok, "{out}");
    let store = open();
    assert_eq!(
        count(store.as_ref(), "Patient", vec![]),
        3,
        "Patient entries use ifNoneExist"
    );
    let practitioners = count(store.as_ref(), "Practitioner", vec![]);
    let provider = provider_bundle(&SynthConfig::default());
    let expected_practitioners = provider["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Practitioner")
        .count();
    assert_eq!(practitioners, expected_practitioners as u64);
    let npi = provider["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Practitioner")
        .unwrap()["resource"]["identifier"][0]
        .clone();
    let by_npi = count(
        store.as_ref(),
        "Practitioner",
        vec![Predicate::Token {
            param: "identifier".into(),
            system: TokenSystem::Is(npi["system"].as_str().unwrap().into()),
            code: npi["value"].as_str().unwrap().into(),
            negate: false,
        }],
    );
    assert_eq!(by_npi, 1);
}

#[test]
fn import_synthetic_bundles_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("import.db");
    let url = format!("sqlite://{}", db.display());
    check_round_trip(&url, || {
        Arc::new(continuum_store_sqlite::SqliteStore::open(&db, Arc::new(SystemClock)).unwrap())
    });
}

#[test]
fn import_synthetic_bundles_postgres() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    check_round_trip(&url, || {
        Arc::new(
            continuum_store_postgres::PostgresStore::open(&url, Arc::new(SystemClock)).unwrap(),
        )
    });
}

#[test]
fn import_ndjson_and_report_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut lines = String::new();
    for i in 0..1200 {
        lines.push_str(&format!(
            "{{\"resourceType\":\"Patient\",\"id\":\"nd-{i}\",\"gender\":\"female\"}}\n"
        ));
    }
    std::fs::write(data.join("Patient.ndjson"), &lines).unwrap();
    std::fs::write(
        data.join("Broken.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"ok-1\"}\nnot json\n",
    )
    .unwrap();
    let db = dir.path().join("nd.db");
    let url = format!("sqlite://{}", db.display());
    let (ok, out) = import(&url, &data);
    assert!(!ok, "a bad line makes the import exit non-zero: {out}");
    assert!(
        out.contains("Broken.ndjson line 2"),
        "errors name file and line: {out}"
    );
    let store = continuum_store_sqlite::SqliteStore::open(&db, Arc::new(SystemClock)).unwrap();
    assert_eq!(count(&store, "Patient", vec![]), 1201);
    // NDJSON ids are kept: importing again updates rather than duplicates
    let (_, _) = import(&url, &data);
    assert_eq!(count(&store, "Patient", vec![]), 1201);
    assert_eq!(store.read("Patient", "nd-7").unwrap().unwrap().version, 2);
}
