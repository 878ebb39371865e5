//! Search beyond the basics over HTTP, on SQLite and PostgreSQL: number and quantity prefixes, chains,
//! reverse chains, `_include`/`_revinclude` (with `:iterate`), compartment search, `$everything`,
//! `_elements`/`_summary`. Expected results are worked out by hand from the R4 search rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use serde_json::{json, Value};

fn obs(id: &str, patient: &str, loinc: &str, value: f64, unit: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": loinc,
                                 "display": if loinc == "8867-4" { "Heart rate" } else { "Glucose [Moles/volume] in Blood" }}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "effectiveDateTime": "2025-03-01T09:30:00Z",
           "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}})
}

async fn put(app: &TestApp, v: Value) {
    let path = format!(
        "{}/{}",
        v["resourceType"].as_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    let (s, body) = app.put(&path, &v).await;
    assert!(s == 201 || s == 200, "{path}: {s} {body}");
}

async fn population(app: &TestApp) {
    put(
        app,
        json!({"resourceType": "Organization", "id": "org1", "name": "Synthetic Clinic Alpha"}),
    )
    .await;
    put(app, json!({"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Medic", "given": ["Sam"]}]})).await;
    put(app, json!({"resourceType": "Patient", "id": "pa", "name": [{"family": "Alvarez"}], "gender": "female",
                    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Synthetic</div>"},
                    "generalPractitioner": [{"reference": "Practitioner/pr1"}],
                    "managingOrganization": {"reference": "Organization/org1"}})).await;
    put(app, json!({"resourceType": "Patient", "id": "pb", "name": [{"family": "Brooks"}], "gender": "male"})).await;
    put(app, obs("oa1", "pa", "8867-4", 72.0, "/min")).await;
    put(app, obs("oa2", "pa", "8867-4", 110.0, "/min")).await;
    put(app, obs("ob1", "pb", "8867-4", 65.0, "/min")).await;
    put(app, obs("glucose", "pa", "2339-0", 5.4, "mmol/L")).await;
    put(app, json!({"resourceType": "Provenance", "id": "prov1", "recorded": "2025-03-01T10:00:00Z",
                    "target": [{"reference": "Observation/oa1"}], "agent": [{"who": {"reference": "Practitioner/pr1"}}]})).await;
    for (id, p) in [("risk-low", 0.2), ("risk-high", 0.75)] {
        put(app, json!({"resourceType": "RiskAssessment", "id": id, "status": "final", "subject": {"reference": "Patient/pb"},
                        "prediction": [{"probabilityDecimal": p}]})).await;
    }
}

async fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let (s, b) = app.get(query).await;
    assert_eq!(s, 200, "{query}: {b}");
    let mut out: Vec<String> = b["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter(|e| e["search"]["mode"] != "outcome")
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn v(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

async fn quantity_and_number_prefixes(app: &TestApp) {
    population(app).await;
    assert_eq!(
        ids(app, "Observation?value-quantity=gt100").await,
        v(&["Observation/oa2"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=72|http://unitsofmeasure.org|/min"
        )
        .await,
        v(&["Observation/oa1"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=5.4|http://unitsofmeasure.org|mmol/L"
        )
        .await,
        v(&["Observation/glucose"])
    );
    assert_eq!(
        ids(app, "Observation?value-quantity=le72").await,
        v(&["Observation/oa1", "Observation/ob1", "Observation/glucose"])
    );
    assert_eq!(
        ids(app, "Observation?value-quantity=le72||/min").await,
        v(&["Observation/oa1", "Observation/ob1"])
    );
    assert_eq!(
        ids(app, "RiskAssessment?probability=gt0.5").await,
        v(&["RiskAssessment/risk-high"])
    );
    // 0.2 covers [0.15, 0.25)
    assert_eq!(
        ids(app, "RiskAssessment?probability=0.2").await,
        v(&["RiskAssessment/risk-low"])
    );
    assert!(ids(app, "RiskAssessment?probability=0.3").await.is_empty());
    let (s, _) = app.get("RiskAssessment?probability=lots").await;
    assert_eq!(s, 400);
}

async fn chains_and_reverse_chains(app: &TestApp) {
    population(app).await;
    let of_pa = v(&["Observation/oa1", "Observation/oa2", "Observation/glucose"]);
    assert_eq!(
        ids(app, "Observation?subject:Patient.name=alvarez").await,
        of_pa
    );
    assert_eq!(
        ids(app, "Observation?subject.name=brooks").await,
        v(&["Observation/ob1"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?subject:Patient.general-practitioner.name=medic"
        )
        .await,
        of_pa
    );
    assert!(ids(
        app,
        "Observation?subject:Patient.general-practitioner.name=nobody"
    )
    .await
    .is_empty());
    assert_eq!(
        ids(app, "Patient?_has:Observation:patient:code=2339-0").await,
        v(&["Patient/pa"])
    );
    // glucose 5.4 mmol/L is below 70 too: the unit is what tells the heart rates apart
    assert_eq!(
        ids(app, "Patient?_has:Observation:subject:value-quantity=lt70").await,
        v(&["Patient/pa", "Patient/pb"])
    );
    assert_eq!(
        ids(
            app,
            "Patient?_has:Observation:subject:value-quantity=lt70||/min"
        )
        .await,
        v(&["Patient/pb"])
    );
    assert!(ids(app, "Patient?_has:Observation:patient:code=0000-0")
        .await
        .is_empty());
    let (s, _) = app.get("Observation?code.name=x").await;
    assert_eq!(s, 400, "code is not a reference and cannot be chained");
}

async fn includes_and_revincludes(app: &TestApp) {
    population(app).await;
    let (_, b) = app
        .get("Observation?code=2339-0&_include=Observation:patient")
        .await;
    let modes: Vec<(String, String)> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["resource"]["id"].as_str().unwrap().to_string(),
                e["search"]["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            ("glucose".to_string(), "match".to_string()),
            ("pa".to_string(), "include".to_string())
        ]
    );
    assert_eq!(
        ids(app, "Observation?_id=oa1&_revinclude=Provenance:target").await,
        v(&["Observation/oa1", "Provenance/prov1"])
    );
    assert_eq!(
        ids(app, "Observation?_id=oa1&_include=Observation:patient&_include:iterate=Patient:general-practitioner").await,
        v(&["Observation/oa1", "Patient/pa", "Practitioner/pr1"])
    );
    // without :iterate the second hop is not followed
    assert_eq!(
        ids(app, "Observation?_id=oa1&_include=Observation:patient&_include=Patient:general-practitioner").await,
        v(&["Observation/oa1", "Patient/pa"])
    );
    let (s, _) = app.get("Observation?_include=Observation:nonsense").await;
    assert_eq!(s, 400);
}

async fn compartments_and_everything(app: &TestApp) {
    population(app).await;
    let of_pa = v(&["Observation/oa1", "Observation/oa2", "Observation/glucose"]);
    assert_eq!(ids(app, "Patient/pa/Observation").await, of_pa);
    assert_eq!(
        ids(app, "Patient/pa/Observation?code=8867-4").await,
        v(&["Observation/oa1", "Observation/oa2"])
    );
    assert_eq!(
        ids(app, "Patient/pb/Observation").await,
        v(&["Observation/ob1"])
    );
    assert!(
        ids(app, "Patient/pa/Organization").await.is_empty(),
        "Organization is not in the Patient compartment"
    );
    let mut everything = of_pa.clone();
    everything.push("Patient/pa".into());
    everything.sort();
    assert_eq!(ids(app, "Patient/pa/$everything").await, everything);
    assert_eq!(
        ids(app, "Patient/pb/$everything").await,
        v(&[
            "Patient/pb",
            "Observation/ob1",
            "RiskAssessment/risk-high",
            "RiskAssessment/risk-low"
        ])
    );
    // paged
    let (_, page) = app.get("Patient/pa/$everything?_count=2").await;
    assert_eq!(page["entry"].as_array().unwrap().len(), 2);
    assert!(page["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next"));
    let (s, _) = app.get("Patient/nobody/$everything").await;
    assert_eq!(s, 404);
    let (s, _) = app.get("Patient/pa/$unknown-op").await;
    assert_eq!(s, 404);
}

async fn elements_and_summary(app: &TestApp) {
    population(app).await;
    let (_, b) = app.get("Patient?_id=pa&_elements=name").await;
    let r = &b["entry"][0]["resource"];
    assert_eq!(r["name"][0]["family"], "Alvarez");
    assert!(r.get("gender").is_none());
    assert!(r["meta"]["tag"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["code"] == "SUBSETTED"));
    let (_, b) = app.get("Patient?_id=pa&_summary=data").await;
    let r = &b["entry"][0]["resource"];
    assert!(r.get("text").is_none());
    assert_eq!(r["gender"], "female");
    // summary elements of Patient per R4: identifier, active, name, telecom, gender, birthDate, deceased[x],
    // address, managingOrganization, link — not generalPractitioner, not text
    let (_, b) = app.get("Patient?_id=pa&_summary=true").await;
    let r = &b["entry"][0]["resource"];
    assert_eq!(r["gender"], "female");
    assert_eq!(r["managingOrganization"]["reference"], "Organization/org1");
    assert!(r.get("generalPractitioner").is_none());
    assert!(r.get("text").is_none());
    let (_, b) = app.get("Patient?_id=pa&_summary=text").await;
    let r = &b["entry"][0]["resource"];
    assert!(r.get("text").is_some());
    assert!(r.get("gender").is_none());
}

async fn sort_pages_follow_next_links(app: &TestApp) {
    population(app).await;
    let mut url = app.url("Observation?_sort=-value-quantity&_count=2");
    let mut order = Vec::new();
    loop {
        let (s, page) = common::status_json(app.client.get(&url).send().await.unwrap()).await;
        assert_eq!(s, 200, "{page}");
        for e in page["entry"].as_array().unwrap() {
            order.push(e["resource"]["id"].as_str().unwrap().to_string());
        }
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(l) => url = l["url"].as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(order, vec!["oa2", "oa1", "ob1", "glucose"]);
    let (_, b) = app.get("Patient?_sort=name").await;
    let names: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["pa", "pb"]);
    let (_, b) = app.get("Patient?_sort=-_id").await;
    let ids_desc: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids_desc, vec!["pb", "pa"]);
    let (s, _) = app.get("Patient?_sort=nonsense").await;
    assert_eq!(s, 400);
    let (s, _) = app.get("Patient?_cursor=not-a-cursor").await;
    assert_eq!(s, 400);
}

async fn token_text_reference_identifier_and_uri_modifiers(app: &TestApp) {
    population(app).await;
    let heart = v(&["Observation/oa1", "Observation/oa2", "Observation/ob1"]);
    assert_eq!(ids(app, "Observation?code:text=heart").await, heart);
    assert_eq!(
        ids(app, "Observation?code:text=H%C3%89ART").await,
        heart,
        "case and accents folded"
    );
    assert_eq!(
        ids(app, "Observation?code:text=glucose").await,
        v(&["Observation/glucose"])
    );
    let mut o = obs("by-id", "pb", "8867-4", 80.0, "/min");
    o["performer"] =
        json!([{"identifier": {"system": "urn:continuum:synthetic:staff", "value": "S-9"}}]);
    put(app, o).await;
    assert_eq!(
        ids(
            app,
            "Observation?performer:identifier=urn:continuum:synthetic:staff|S-9"
        )
        .await,
        v(&["Observation/by-id"])
    );
    assert!(ids(
        app,
        "Observation?performer:identifier=urn:continuum:synthetic:staff|S-10"
    )
    .await
    .is_empty());
    for (id, url) in [
        ("vs-a", "http://example.org/fhir/ValueSet/a"),
        ("vs-b", "http://example.org/other/b"),
    ] {
        put(
            app,
            json!({"resourceType": "ValueSet", "id": id, "url": url, "status": "active"}),
        )
        .await;
    }
    assert_eq!(
        ids(app, "ValueSet?url:below=http://example.org/fhir").await,
        v(&["ValueSet/vs-a"])
    );
    assert_eq!(
        ids(app, "ValueSet?url:below=http://example.org").await,
        v(&["ValueSet/vs-a", "ValueSet/vs-b"])
    );
    assert_eq!(
        ids(
            app,
            "ValueSet?url:above=http://example.org/fhir/ValueSet/a/_history/2"
        )
        .await,
        v(&["ValueSet/vs-a"])
    );
    assert_eq!(
        ids(app, "ValueSet?url=http://example.org/other/b").await,
        v(&["ValueSet/vs-b"])
    );
}

on_both_backends!(
    token_text_reference_identifier_and_uri_modifiers,
    sort_pages_follow_next_links,
    quantity_and_number_prefixes,
    chains_and_reverse_chains,
    includes_and_revincludes,
    compartments_and_everything,
    elements_and_summary,
);
