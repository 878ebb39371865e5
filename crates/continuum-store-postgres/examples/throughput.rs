//! Store-level write throughput on PostgreSQL, printed, not asserted (the import target is 5,000 resources/s
//! on two cores): `cargo run -p continuum-store-postgres --release --example throughput`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use continuum_store::{Expect, ResourceStore, SystemClock, WriteTx};
use continuum_store_postgres::PostgresStore;
use serde_json::{json, Value};

const TOTAL: usize = 20_000;
const PER_TX: usize = 100;

fn patient(i: usize) -> Value {
    json!({"resourceType": "Patient", "id": format!("p{i}"), "active": true, "gender": "female",
           "birthDate": "1980-02-03",
           "name": [{"family": format!("Family{}", i % 977), "given": ["Test", "Person"]}],
           "identifier": [{"system": "urn:example:dodid", "value": format!("ID-{i}")}],
           "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
           "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}]})
}

fn observation(i: usize) -> Value {
    json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
           "subject": {"reference": format!("Patient/p{}", i % 1000)},
           "effectiveDateTime": "2024-05-01T10:00:00Z",
           "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

type Make = fn(usize) -> Value;

/// Resources per second writing `make(0..TOTAL)` with `writers` threads.
fn run(store: &PostgresStore, writers: usize, make: Make) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                let mut batch = w;
                while batch * PER_TX < TOTAL {
                    store
                        .write(&mut |tx: &mut dyn WriteTx| {
                            for i in batch * PER_TX..(batch + 1) * PER_TX {
                                tx.put(&mut make(i), Expect::Any)?;
                            }
                            Ok(())
                        })
                        .unwrap();
                    batch += writers;
                }
            });
        }
    });
    TOTAL as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let kinds: [(&str, Make); 2] = [("Patient", patient), ("Observation", observation)];
    for (name, make) in kinds {
        let index_rows =
            continuum_store::sql::index_rows(name, &continuum_fhir::extract_index(&make(1))).len();
        for writers in [1, 2] {
            let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
                return;
            };
            let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
            let created = run(&store, writers, make);
            let updated = run(&store, writers, make);
            println!(
                "postgres: {TOTAL} {name}s ({index_rows} index rows each), {PER_TX} per transaction, {writers} writer(s): \
                 {created:.0}/s created, {updated:.0}/s updated"
            );
        }
    }
}
