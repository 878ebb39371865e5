//! The patients of a stored body found by parsing only the members the Patient compartment reads must be
//! exactly those found by parsing the whole resource.

use continuum_core::access::{patients_of, patients_of_body};
use serde_json::{json, Value};

fn both(body: &Value) -> (Vec<String>, Vec<String>) {
    let ty = body["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (patients_of(&ty, body), patients_of_body(&ty, &bytes))
}

#[test]
fn hand_written_members_give_the_same_patients() {
    let cases = [
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Testperson"}]}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"text": "x"}, "valueQuantity": {"value": 1},
               "subject": {"reference": "Patient/p1"},
               "performer": [{"reference": "Practitioner/d1"}, {"reference": "Patient/p2"}]}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "x"},
               "subject": {"reference": "Group/g1"}}),
        json!({"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p3"},
               "asserter": {"reference": "Patient/p4"}, "recorder": {"reference": "Practitioner/d1"}}),
        json!({"resourceType": "Provenance", "id": "v1", "target": [{"reference": "Patient/p5"}],
               "recorded": "2026-01-01T00:00:00Z",
               "agent": [{"who": {"reference": "Patient/p6"}}]}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
               "class": {"code": "AMB"}, "subject": {"reference": "Patient/p7"},
               "_status": {"extension": [{"url": "urn:x", "valueString": "y"}]}}),
        json!({"resourceType": "Organization", "id": "org1", "name": "A clinic"}),
        json!({"resourceType": "Immunization", "id": "i1", "status": "completed",
               "vaccineCode": {"text": "x"}, "occurrenceDateTime": "2026-01-01",
               "patient": {"reference": "Patient/p8"}}),
    ];
    let mut found = 0;
    for body in &cases {
        let (full, partial) = both(body);
        assert_eq!(full, partial, "{body}");
        found += full.len();
    }
    // R4 puts a Provenance in the compartment through its target, not its agent
    assert_eq!(found, 8);
}

/// Every resource of a few synthetic patients' records (their `urn:uuid:` references made local first).
#[test]
fn synthetic_records_give_the_same_patients() {
    let cfg = continuum_seed::SynthConfig::default();
    let mut compared = 0;
    let mut with_patients = 0;
    for bundle in continuum_seed::patient_bundles(&cfg, 3) {
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        let mut text = bundle.to_string();
        for (i, e) in entries.iter().enumerate() {
            let (Some(url), Some(ty)) = (
                e["fullUrl"].as_str(),
                e["resource"]["resourceType"].as_str(),
            ) else {
                continue;
            };
            text = text.replace(&format!("\"{url}\""), &format!("\"{ty}/r{i}\""));
        }
        let local: Value = serde_json::from_str(&text).unwrap_or_default();
        for e in local["entry"].as_array().into_iter().flatten() {
            let mut body = e["resource"].clone();
            if body["resourceType"] == "Patient" {
                body["id"] = json!("the-patient");
            }
            let (full, partial) = both(&body);
            assert_eq!(full, partial, "{body}");
            compared += 1;
            with_patients += usize::from(!full.is_empty());
        }
    }
    assert!(compared > 500, "{compared}");
    assert!(
        with_patients * 10 > compared * 9,
        "{with_patients} of {compared}"
    );
}
