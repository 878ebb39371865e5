//! The FHIR REST API over HTTP against a real server, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{status_json, TestApp};
use serde_json::{json, Value};

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Synthetic"]}], "gender": "female",
           "birthDate": "1988-04-12", "identifier": [{"system": "urn:continuum:synthetic:dodid", "value": format!("D-{family}")}]})
}

fn observation(patient_id: &str, value: f64) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
           "subject": {"reference": format!("Patient/{patient_id}")},
           "effectiveDateTime": "2025-03-01T09:30:00Z",
           "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn create_read_vread_headers(app: &TestApp) {
    let r = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Patient", "id": "client-chosen", "meta": {"versionId": "77"}, "gender": "male"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(r.headers().get("last-modified").is_some());
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    let (_, body) = status_json(r).await;
    let id = id_of(&body);
    assert_ne!(id, "client-chosen", "create assigns the id");
    assert_eq!(
        body["meta"]["versionId"], "1",
        "meta.versionId is the server's"
    );
    assert_eq!(location, format!("{}/Patient/{id}/_history/1", app.base));

    let r = app
        .client
        .get(app.url(&format!("Patient/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    let (_, read) = status_json(r).await;
    assert_eq!(read, body);
    let (s, v1) = app.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(s, 200);
    assert_eq!(v1["gender"], "male");
    let (s, oo) = app.get(&format!("Patient/{id}/_history/2")).await;
    assert_eq!(s, 404);
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let (s, _) = app.get("Patient/does-not-exist").await;
    assert_eq!(s, 404);
}

async fn update_if_match_and_create_on_update(app: &TestApp) {
    let p = app.create(&patient("Update")).await;
    let id = id_of(&p);
    let mut changed = p.clone();
    changed["gender"] = json!("other");
    let r = app
        .client
        .put(app.url(&format!("Patient/{id}")))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"1\"")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    // stale If-Match
    let r = app
        .client
        .put(app.url(&format!("Patient/{id}")))
        .header("content-type", "application/fhir+json")
        .header("if-match", "W/\"1\"")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let (_, oo) = status_json(r).await;
    assert_eq!(oo["resourceType"], "OperationOutcome");
    // create on update with a client id
    let (s, created) = app
        .put(
            "Patient/synthetic-client-id",
            &json!({"resourceType": "Patient", "id": "synthetic-client-id"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(created["meta"]["versionId"], "1");
    // id mismatch and missing id are 400
    let (s, _) = app
        .put(
            "Patient/other-id",
            &json!({"resourceType": "Patient", "id": "synthetic-client-id"}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app
        .put("Patient/other-id", &json!({"resourceType": "Patient"}))
        .await;
    assert_eq!(s, 400);
}

async fn delete_then_gone_and_history(app: &TestApp) {
    let p = app.create(&patient("Delete")).await;
    let id = id_of(&p);
    assert_eq!(app.delete(&format!("Patient/{id}")).await, 204);
    let (s, oo) = app.get(&format!("Patient/{id}")).await;
    assert_eq!(s, 410);
    assert_eq!(oo["issue"][0]["code"], "deleted");
    assert_eq!(
        app.delete(&format!("Patient/{id}")).await,
        204,
        "delete is idempotent"
    );
    let (s, old) = app.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(s, 200);
    assert_eq!(old["name"][0]["family"], "Delete");
    let (s, h) = app.get(&format!("Patient/{id}/_history")).await;
    assert_eq!(s, 200);
    assert_eq!(h["type"], "history");
    assert_eq!(h["total"], 2);
    assert_eq!(h["entry"][0]["request"]["method"], "DELETE");
    assert!(h["entry"][0].get("resource").is_none());
    assert_eq!(h["entry"][1]["request"]["method"], "POST");
    assert_eq!(h["entry"][1]["resource"]["id"], id.as_str());
    // searches no longer find it
    let (_, b) = app.get(&format!("Patient?_id={id}")).await;
    assert!(b.get("entry").is_none());
}

async fn conditional_create_update_delete(app: &TestApp) {
    let ident = "identifier=urn:continuum:synthetic:dodid|D-Cond";
    let body = patient("Cond").to_string();
    let send = |ine: &'static str| {
        app.client
            .post(app.url("Patient"))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", ine)
            .body(body.clone())
            .send()
    };
    let r = send("identifier=urn:continuum:synthetic:dodid|D-Cond")
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, first) = status_json(r).await;
    let r = send("identifier=urn:continuum:synthetic:dodid|D-Cond")
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the existing match is returned");
    let (_, second) = status_json(r).await;
    assert_eq!(first["id"], second["id"]);
    // conditional update of the single match
    let mut changed = patient("Cond");
    changed["gender"] = json!("unknown");
    let (s, upd) = app.put(&format!("Patient?{ident}"), &changed).await;
    assert_eq!(s, 200);
    assert_eq!(upd["id"], first["id"]);
    assert_eq!(upd["meta"]["versionId"], "2");
    // conditional update with no match creates
    let (s, _) = app
        .put(
            "Patient?identifier=urn:continuum:synthetic:dodid|D-New",
            &patient("New"),
        )
        .await;
    assert_eq!(s, 201);
    // several matches: 412 for create and update
    app.create(&patient("Twin")).await;
    app.create(&patient("Twin")).await;
    let (s, _) = app
        .put(
            "Patient?identifier=urn:continuum:synthetic:dodid|D-Twin",
            &patient("Twin"),
        )
        .await;
    assert_eq!(s, 412);
    assert_eq!(
        app.delete("Patient?identifier=urn:continuum:synthetic:dodid|D-Twin")
            .await,
        412
    );
    // conditional delete of one
    assert_eq!(app.delete(&format!("Patient?{ident}")).await, 204);
    let (s, _) = app
        .get(&format!("Patient/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 410);
    // criteria that cannot be evaluated are refused, never ignored
    let (s, _) = app.put("Patient?unknown-param=1", &patient("X")).await;
    assert_eq!(s, 400);
}

async fn concurrent_conditional_creates_make_one(app: &TestApp) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let url = app.url("Patient");
        let body = patient("Race").to_string();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/fhir+json")
                .header(
                    "if-none-exist",
                    "identifier=urn:continuum:synthetic:dodid|D-Race",
                )
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 201, "status {s}");
        if s == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let (_, b) = app
        .get("Patient?identifier=urn:continuum:synthetic:dodid|D-Race&_total=accurate")
        .await;
    assert_eq!(b["total"], 1);
}

async fn json_patch(app: &TestApp) {
    let p = app.create(&patient("Patch")).await;
    let id = id_of(&p);
    let patch = json!([{"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "/active", "value": true}]);
    let r = app
        .client
        .patch(app.url(&format!("Patient/{id}")))
        .header("content-type", "application/json-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = status_json(r).await;
    assert_eq!(v["gender"], "male");
    assert_eq!(v["active"], true);
    assert_eq!(v["meta"]["versionId"], "2");
    // a failing test op is 422, and nothing changes
    let bad = json!([{"op": "test", "path": "/gender", "value": "female"}]);
    let r = app
        .client
        .patch(app.url(&format!("Patient/{id}")))
        .header("content-type", "application/json-patch+json")
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let (_, v) = app.get(&format!("Patient/{id}")).await;
    assert_eq!(v["meta"]["versionId"], "2");
}

async fn search_compartment_and_paging(app: &TestApp) {
    let a = id_of(&app.create(&patient("SearchA")).await);
    let b = id_of(&app.create(&patient("SearchB")).await);
    for i in 0..5 {
        app.create(&observation(&a, 60.0 + f64::from(i))).await;
    }
    app.create(&observation(&b, 99.0)).await;
    let (s, bundle) = app
        .get(&format!(
            "Observation?subject=Patient/{a}&_count=2&_total=accurate"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["total"], 5);
    let mut seen: Vec<String> = Vec::new();
    let mut page = bundle;
    loop {
        for e in page["entry"].as_array().unwrap() {
            assert_eq!(e["search"]["mode"], "match");
            assert_eq!(
                e["resource"]["subject"]["reference"],
                format!("Patient/{a}")
            );
            seen.push(e["resource"]["id"].as_str().unwrap().to_string());
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(url) => {
                let r = app.client.get(url).send().await.unwrap();
                page = status_json(r).await.1;
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    let (_, by_patient) = app.get(&format!("Observation?patient={b}")).await;
    assert_eq!(by_patient["entry"].as_array().unwrap().len(), 1);
    let (_, by_id) = app.get(&format!("Patient?_id={a},{b}")).await;
    assert_eq!(by_id["entry"].as_array().unwrap().len(), 2);
    let (_, future) = app.get("Patient?_lastUpdated=gt2100-01-01").await;
    assert!(future.get("entry").is_none());
    let (_, past) = app
        .get("Patient?_lastUpdated=ge2020-01-01&_summary=count")
        .await;
    assert_eq!(past["total"], 2);
    assert!(past.get("entry").is_none());
    // strict handling refuses what lenient handling reports as ignored
    let (s, lenient) = app.get("Patient?nonsense=1").await;
    assert_eq!(s, 200);
    assert_eq!(
        lenient["entry"].as_array().unwrap().last().unwrap()["search"]["mode"],
        "outcome"
    );
    let r = app
        .client
        .get(app.url("Patient?nonsense=1"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // a system-wide search with _type
    let (_, sys) = app.get("?_type=Observation&_count=100").await;
    assert_eq!(sys["entry"].as_array().unwrap().len(), 6);
}

async fn history_levels_and_paging(app: &TestApp) {
    let p = app.create(&patient("Hist")).await;
    let id = id_of(&p);
    let mut v = p.clone();
    for g in ["male", "other"] {
        v["gender"] = json!(g);
        app.put(&format!("Patient/{id}"), &v).await;
    }
    app.create(&json!({"resourceType": "Basic", "code": {"text": "synthetic"}}))
        .await;
    let (_, inst) = app.get(&format!("Patient/{id}/_history?_count=2")).await;
    assert_eq!(inst["entry"].as_array().unwrap().len(), 2);
    assert_eq!(inst["entry"][0]["resource"]["meta"]["versionId"], "3");
    let next = inst["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, rest) = status_json(app.client.get(next).send().await.unwrap()).await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 1);
    assert_eq!(rest["entry"][0]["resource"]["meta"]["versionId"], "1");
    let (_, ty) = app.get("Patient/_history").await;
    assert_eq!(ty["entry"].as_array().unwrap().len(), 3);
    let (_, sys) = app.get("_history").await;
    assert_eq!(sys["entry"].as_array().unwrap().len(), 4);
    let (_, since) = app.get("_history?_since=2100-01-01T00:00:00Z").await;
    assert!(since.get("entry").is_none());
    let (s, _) = app.get("_history?_since=not-a-date").await;
    assert_eq!(s, 400);
}

async fn transaction_resolves_references_atomically(app: &TestApp) {
    app.create(&json!({"resourceType": "Practitioner", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999900001"}]})).await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:continuum:synthetic:dodid", "value": "TX-1"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:continuum:synthetic:dodid|TX-1"}},
        {"fullUrl": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Encounter", "status": "finished", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                      "subject": {"reference": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000001"},
                      "participant": [{"individual": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999900001"}}]},
         "request": {"method": "POST", "url": "Encounter"}},
        {"fullUrl": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000003",
         "resource": {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                      "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "synthetic"}}],
                      "medicationReference": {"reference": "#med"},
                      "subject": {"reference": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000001"},
                      "encounter": {"reference": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000002"}},
         "request": {"method": "POST", "url": "MedicationRequest"}},
        {"resource": {"resourceType": "Provenance", "recorded": "2025-01-01T00:00:00Z",
                      "target": [{"reference": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000002"}],
                      "contained": [{"resourceType": "Patient", "id": "c1", "link": [{"other": {"reference": "urn:uuid:6a5f1a2e-0000-4000-8000-000000000001"}, "type": "seealso"}]}],
                      "agent": [{"who": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999900001"}}]},
         "request": {"method": "POST", "url": "Provenance"}}
    ]});
    let (s, resp) = app.post("", &bundle).await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["type"], "transaction-response");
    let entries = resp["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    for e in entries {
        assert_eq!(e["response"]["status"], "201 Created");
        assert!(e["response"]["etag"].as_str().unwrap().starts_with("W/"));
    }
    let loc = |i: usize| {
        entries[i]["response"]["location"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let patient_ref = loc(0).split("/_history").next().unwrap().to_string();
    let enc_ref = loc(1).split("/_history").next().unwrap().to_string();
    let (_, enc) = app.get(&loc(1)).await;
    assert_eq!(enc["subject"]["reference"], patient_ref.as_str());
    assert!(enc["participant"][0]["individual"]["reference"]
        .as_str()
        .unwrap()
        .starts_with("Practitioner/"));
    let (_, mr) = app.get(&loc(2)).await;
    assert_eq!(mr["encounter"]["reference"], enc_ref.as_str());
    assert_eq!(mr["medicationReference"]["reference"], "#med");
    let (_, prov) = app.get(&loc(3)).await;
    assert_eq!(
        prov["contained"][0]["link"][0]["other"]["reference"],
        patient_ref.as_str(),
        "contained references rewritten"
    );
    // the same bundle again: the conditional create finds the patient
    let (_, again) = app.post("", &bundle).await;
    assert_eq!(again["entry"][0]["response"]["status"], "200 OK");
    let (_, n) = app
        .get("Patient?identifier=urn:continuum:synthetic:dodid|TX-1&_summary=count")
        .await;
    assert_eq!(n["total"], 1);

    // all or nothing: a failing entry leaves no trace
    let failing = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6a5f1a2e-0000-4000-8000-0000000000aa",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:continuum:synthetic:dodid", "value": "TX-ROLLBACK"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "Patient?identifier=urn:none|nobody"}},
         "request": {"method": "POST", "url": "Observation"}}
    ]});
    let (s, oo) = app.post("", &failing).await;
    assert_eq!(s, 412, "{oo}");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let (_, n) = app
        .get("Patient?identifier=urn:continuum:synthetic:dodid|TX-ROLLBACK&_summary=count")
        .await;
    assert_eq!(n["total"], 0);
}

async fn transaction_processing_order(app: &TestApp) {
    let p = app.create(&patient("Order")).await;
    let id = id_of(&p);
    // GET runs after the PUT and DELETE runs before the POST, whatever the entry order
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{id}")}},
        {"resource": {"resourceType": "Patient", "id": id, "gender": "male"}, "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"1\""}},
        {"request": {"method": "DELETE", "url": "Patient?identifier=urn:continuum:synthetic:dodid|D-Order-none"}}
    ]});
    let (s, resp) = app.post("", &bundle).await;
    assert_eq!(s, 200, "{resp}");
    assert_eq!(resp["entry"][1]["response"]["status"], "200 OK");
    assert_eq!(resp["entry"][2]["response"]["status"], "204 No Content");
    let r = app
        .client
        .post(app.base.clone())
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=representation")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let (s, resp) = status_json(r).await;
    assert_eq!(s, 412, "stale ifMatch fails the whole transaction: {resp}");
}

async fn batch_reports_each_entry(app: &TestApp) {
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Practitioner", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999900002"}]},
         "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=http://hl7.org/fhir/sid/us-npi|9999900002"}},
        {"request": {"method": "GET", "url": "Patient/not-there"}},
        {"resource": {"resourceType": "Organization", "name": "Synthetic Clinic"}, "request": {"method": "POST", "url": "Organization"}}
    ]});
    let (s, resp) = app.post("", &bundle).await;
    assert_eq!(s, 200);
    assert_eq!(resp["type"], "batch-response");
    assert_eq!(resp["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(resp["entry"][1]["response"]["status"], "404");
    assert_eq!(
        resp["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(resp["entry"][2]["response"]["status"], "201 Created");
    let (_, again) = app.post("", &bundle).await;
    assert_eq!(again["entry"][0]["response"]["status"], "200 OK");
}

async fn errors_are_operation_outcomes(app: &TestApp) {
    let raw = |method: reqwest::Method, path: &str, ct: Option<&str>, body: &str| {
        let mut rb = app.client.request(method, app.url(path));
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        rb.body(body.to_string()).send()
    };
    let cases: Vec<(reqwest::Method, &str, Option<&str>, String, u16)> = vec![
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+json"),
            "{not json".into(),
            400,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+json"),
            json!({"resourceType": "Observation"}).to_string(),
            400,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+json"),
            json!({"name": []}).to_string(),
            400,
        ),
        (
            reqwest::Method::POST,
            "NotAType",
            Some("application/fhir+json"),
            json!({"resourceType": "NotAType"}).to_string(),
            404,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+xml"),
            "<Patient/>".into(),
            415,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("text/plain"),
            "x".into(),
            415,
        ),
        (
            reqwest::Method::POST,
            "Patient/123",
            Some("application/fhir+json"),
            "{}".into(),
            405,
        ),
        (
            reqwest::Method::DELETE,
            "metadata",
            None,
            String::new(),
            405,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+json"),
            json!({"resourceType": "Patient", "unknownElement": 1}).to_string(),
            422,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+json"),
            json!({"resourceType": "Patient", "birthDate": "1990-13-45"}).to_string(),
            422,
        ),
        (
            reqwest::Method::POST,
            "Patient",
            Some("application/fhir+json"),
            json!({"resourceType": "Patient", "active": "yes"}).to_string(),
            422,
        ),
        (
            reqwest::Method::PUT,
            "Patient/bad_id!",
            Some("application/fhir+json"),
            json!({"resourceType": "Patient", "id": "bad_id!"}).to_string(),
            422,
        ),
        (
            reqwest::Method::GET,
            "Patient?birthdate=notadate",
            None,
            String::new(),
            400,
        ),
        (
            reqwest::Method::GET,
            "Patient?_count=many",
            None,
            String::new(),
            400,
        ),
    ];
    for (method, path, ct, body, expected) in cases {
        let r = raw(method.clone(), path, ct, &body).await.unwrap();
        let status = r.status().as_u16();
        let (_, v) = status_json(r).await;
        assert_eq!(status, expected, "{method} {path} {body}: {v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{method} {path}");
        assert!(v["issue"][0]["diagnostics"].as_str().is_some());
    }
    // XML asked for
    for (header, query) in [
        ("application/fhir+xml", ""),
        ("application/fhir+json", "?_format=xml"),
    ] {
        let r = app
            .client
            .get(app.url(&format!("metadata{query}")))
            .header("accept", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 406);
        let (_, v) = status_json(r).await;
        assert_eq!(v["resourceType"], "OperationOutcome");
    }
    // unknown endpoint
    let r = app
        .client
        .get(format!("{}/nowhere/at/all/really", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

async fn prefer_return_and_pretty(app: &TestApp) {
    let send = |prefer: &'static str| {
        app.client
            .post(app.url("Patient"))
            .header("content-type", "application/fhir+json")
            .header("prefer", prefer)
            .body(patient("Prefer").to_string())
            .send()
    };
    let r = send("return=minimal").await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("location").is_some());
    assert!(r.text().await.unwrap().is_empty());
    let r = send("return=OperationOutcome").await.unwrap();
    let (_, v) = status_json(r).await;
    assert_eq!(v["resourceType"], "OperationOutcome");
    let r = send("return=representation").await.unwrap();
    let (_, v) = status_json(r).await;
    assert_eq!(v["resourceType"], "Patient");
    let text = app
        .client
        .get(app.url("metadata?_pretty=true"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\n  "), "pretty output is indented");
    let r = app
        .client
        .get(app.url("metadata?_format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn metadata_and_operations(app: &TestApp) {
    let (s, cs) = app.get("metadata").await;
    assert_eq!(s, 200);
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 146, "every R4 resource type");
    let obs = resources
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    assert!(obs["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "_id"));
    for path in ["healthz", "readyz", "metrics"] {
        let r = app
            .client
            .get(format!("{}/{path}", app.root))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let m = app
        .client
        .get(format!("{}/metrics", app.root))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("http_requests_total{"));
    assert!(m.contains("route=\"/fhir/metadata\""));
    assert!(m.contains("http_request_duration_seconds_bucket"));
    assert!(m.contains("db_pool_connections"));
}

async fn every_resource_type_is_accepted(app: &TestApp) {
    for ty in continuum_fhir::registry::registry().resource_types() {
        let (s, v) = app
            .put(
                &format!("{ty}/any-{}", ty.to_lowercase()),
                &json!({"resourceType": ty, "id": format!("any-{}", ty.to_lowercase())}),
            )
            .await;
        // Required elements make many empty resources invalid: a 422 with an OperationOutcome is the
        // right answer then; what must never happen is a 404/500 for a real R4 type.
        assert!(s == 201 || s == 422, "{ty}: {s} {v}");
        if s == 201 {
            let (s, _) = app.get(&format!("{ty}/any-{}", ty.to_lowercase())).await;
            assert_eq!(s, 200, "{ty}");
        }
    }
}

on_both_backends!(
    create_read_vread_headers,
    update_if_match_and_create_on_update,
    delete_then_gone_and_history,
    conditional_create_update_delete,
    concurrent_conditional_creates_make_one,
    json_patch,
    search_compartment_and_paging,
    history_levels_and_paging,
    transaction_resolves_references_atomically,
    transaction_processing_order,
    batch_reports_each_entry,
    errors_are_operation_outcomes,
    prefer_return_and_pretty,
    metadata_and_operations,
    every_resource_type_is_accepted,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let config = continuum_web::WebConfig {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let app = TestApp::start_with(common::Backend::Sqlite, config)
        .await
        .unwrap();
    let big = json!({"resourceType": "Basic", "code": {"text": "x".repeat(4096)}});
    let (s, v) = app.post("Basic", &big).await;
    assert_eq!(s, 413);
    assert_eq!(v["resourceType"], "OperationOutcome");
}
