//! FHIR `decimal` values survive a transaction Bundle: what a client reads back is the number it sent.
//!
//! R4 datatypes (§2.24.0.1, decimal): "the precision of the decimal value has significance" and servers must
//! not change it. Continuum keeps decimals as JSON numbers (f64), so a value that is the shortest form of its
//! double must come back written the same way. Synthea writes coordinates and life-years with 17 significant
//! digits; serde_json's default float parser is not correctly rounded and moved such values by one ulp
//! (42.344208879766036 came back as 42.34420887976603), which `float_roundtrip` in the workspace fixes.
//! Trailing zeros (`1.50` → `1.5`) are a known, separate limitation and not tested here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_core::{Fhir, Prefer};
use continuum_store::SystemClock;
use continuum_store_sqlite::SqliteStore;
use serde_json::Value;

/// Decimals with 16–17 significant digits, each the shortest representation of its f64.
const VALUES: [&str; 6] = [
    "42.344208879766036",
    "-71.05754049770718",
    "5.094457744614097",
    "0.10919156311726752",
    "2270.5040000000004",
    "-73.69320323593962",
];

#[test]
fn decimals_in_a_transaction_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("decimals.db"), Arc::new(SystemClock)).unwrap();
    let fhir = Fhir::new(Arc::new(store));

    let extensions: Vec<String> = VALUES
        .iter()
        .enumerate()
        .map(|(i, v)| format!(r#"{{"url":"http://example.org/d{i}","valueDecimal":{v}}}"#))
        .collect();
    // Parsed from text, as every door (REST body, `continuum import` file) does.
    let text = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{
            "fullUrl":"urn:uuid:0b6f3c1e-5a3d-4f7e-9a43-2a1c6d1e8f00",
            "resource":{{"resourceType":"Patient","extension":[{}]}},
            "request":{{"method":"POST","url":"Patient"}}}}]}}"#,
        extensions.join(",")
    );
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let resp: Value = serde_json::from_slice(
        &fhir
            .bundle("http://x/fhir", bundle, Prefer::Minimal)
            .unwrap(),
    )
    .unwrap();
    let location = resp["entry"][0]["response"]["location"].as_str().unwrap();
    let id = location.split('/').nth(1).unwrap();

    let stored = String::from_utf8(fhir.read("Patient", id).unwrap().body).unwrap();
    for v in VALUES {
        assert!(
            stored.contains(&format!(r#""valueDecimal":{v}}}"#)),
            "{v} not read back as written: {stored}"
        );
    }
}
