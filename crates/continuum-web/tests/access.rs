//! The access policy over the FHIR API, as users meet it: every (user, type, patient, interaction) case of
//! `access_matrix.tsv` (written by `tools/gen_access_matrix.py` from the policy stated in plain terms) run
//! against a real server; proxy age bands at the birthday boundaries; hidden resources staying hidden through
//! includes, chains, `_has`, counts, history, `$everything` and error messages; and the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::TestApp;
use continuum_auth::{Account, AccountKind};
use continuum_core::access::{ProxyBasis, ProxyGrant};
use serde_json::{json, Value};

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const CONF: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

on_both_backends!(
    authorisation_matrix,
    proxy_age_bands_at_the_birthday_boundaries,
    hidden_resources_stay_hidden_everywhere,
    every_access_is_audited,
    requests_without_a_valid_token_are_refused,
    break_the_glass_opens_a_record_with_a_reason_and_an_alert,
);

/// `years` years and `days` days before today, as a FHIR date.
fn born(years: i32, days: i64) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let mut d = today
        .replace_year(today.year() - years)
        .unwrap_or_else(|_| {
            today
                .replace_day(28)
                .unwrap()
                .replace_year(today.year() - years)
                .unwrap()
        });
    d -= time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

struct Fixture {
    /// name → Patient id
    patients: HashMap<&'static str, String>,
    /// (type name as in the matrix, target) → stored resource
    resources: HashMap<(String, String), Value>,
    orgs: HashMap<&'static str, String>,
    dr_a: String,
    nurse_b: String,
    role_a: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let mut orgs = HashMap::new();
    for name in ["A", "B"] {
        let o = app
            .create(&json!({"resourceType": "Organization", "name": format!("Synthetic Clinic {name}")}))
            .await;
        orgs.insert(name, o["id"].as_str().unwrap().to_string());
    }
    let dr_a = app
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Synthetic", "given": ["Ada"]}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let nurse_b = app
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Synthetic", "given": ["Bo"]}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let role_a = app
        .create(&json!({"resourceType": "PractitionerRole", "practitioner": {"reference": format!("Practitioner/{dr_a}")}, "organization": {"reference": format!("Organization/{}", orgs["A"])}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.create(&json!({"resourceType": "PractitionerRole", "practitioner": {"reference": format!("Practitioner/{nurse_b}")}, "organization": {"reference": format!("Organization/{}", orgs["B"])}}))
        .await;
    let people: [(&str, String, &str); 5] = [
        ("sponsor", born(41, 30), "A"),
        ("child8", born(8, 10), "A"),
        ("teen14", born(14, 10), "A"),
        ("adult19", born(19, 10), "A"),
        ("other", born(35, 3), "B"),
    ];
    let mut patients = HashMap::new();
    let mut resources = HashMap::new();
    for (name, birth, org) in people {
        let mut p = json!({
            "resourceType": "Patient",
            "name": [{"family": "Synthetic", "given": [name]}],
            "birthDate": birth,
            "managingOrganization": {"reference": format!("Organization/{}", orgs[org])}
        });
        if org == "A" {
            p["generalPractitioner"] = json!([{"reference": format!("PractitionerRole/{role_a}")}]);
        }
        let p = app.create(&p).await;
        let id = p["id"].as_str().unwrap().to_string();
        resources.insert(("Patient".to_string(), name.to_string()), p);
        for (kind, body) in [
            ("Observation", observation(&id)),
            ("Condition", condition(&id, false)),
            ("SensitiveCondition", condition(&id, true)),
            ("Appointment", appointment(&id)),
        ] {
            let r = app.create(&body).await;
            resources.insert((kind.to_string(), name.to_string()), r);
        }
        patients.insert(name, id);
    }
    let dr = app.get(&format!("Practitioner/{dr_a}")).await.1;
    resources.insert(("Practitioner".into(), "-".into()), dr);
    Fixture {
        patients,
        resources,
        orgs,
        dr_a,
        nurse_b,
        role_a,
    }
}

fn observation(patient: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 95, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    })
}

fn condition(patient: &str, sensitive: bool) -> Value {
    let mut c = json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": if sensitive { "F32.9" } else { "J06.9" }}]},
        "subject": {"reference": format!("Patient/{patient}")}
    });
    if sensitive {
        c["meta"] = json!({"security": [
            {"system": ACT_CODE, "code": "PSY"},
            {"system": CONF, "code": "R"}
        ]});
    }
    c
}

fn appointment(patient: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "participant": [{"actor": {"reference": format!("Patient/{patient}")}, "status": "accepted"}]
    })
}

fn staff(username: &str, role: &str, practitioner: Option<&str>) -> Account {
    let mut a = Account::new(AccountKind::Staff, username, username);
    a.roles = vec![role.to_string()];
    a.practitioner = practitioner.map(str::to_string);
    a
}

fn patient_account(username: &str, patient: &str, level: &str, proxies: &[&str]) -> Account {
    let mut a = Account::new(AccountKind::Patient, username, username);
    a.patient = Some(patient.to_string());
    a.level = Some(level.to_string());
    a.proxies = proxies
        .iter()
        .map(|p| ProxyGrant {
            patient: p.to_string(),
            basis: ProxyBasis::Parent,
            expires: None,
            revoked: false,
        })
        .collect();
    a
}

async fn users(app: &TestApp, f: &Fixture) -> HashMap<String, reqwest::Client> {
    let p = &f.patients;
    let mut out = HashMap::new();
    out.insert("service".to_string(), app.client.clone());
    let accounts = vec![
        (
            "physician_a",
            staff("physician_a", "physician", Some(&f.dr_a)),
        ),
        ("nurse_b", staff("nurse_b", "nurse", Some(&f.nurse_b))),
        ("pharmacist", staff("pharmacist", "pharmacist", None)),
        ("scheduler", staff("scheduler", "scheduler", None)),
        (
            "readiness",
            staff("readiness", "readiness-coordinator", None),
        ),
        (
            "public_health",
            staff("public_health", "public-health-officer", None),
        ),
        (
            "administrator",
            staff("administrator", "administrator", None),
        ),
        (
            "sponsor",
            patient_account(
                "sponsor",
                &p["sponsor"],
                "premium",
                &[&p["child8"], &p["teen14"], &p["adult19"]],
            ),
        ),
        (
            "teen",
            patient_account("teen", &p["teen14"], "premium", &[]),
        ),
        (
            "adult_basic",
            patient_account("adult_basic", &p["adult19"], "basic", &[]),
        ),
    ];
    for (name, account) in accounts {
        out.insert(name.to_string(), app.client_for(account).await);
    }
    out
}

/// A new resource of the row's type about `target` (for create).
fn new_resource(f: &Fixture, ty: &str, target: &str) -> Value {
    let id = f.patients.get(target).cloned().unwrap_or_default();
    match ty {
        "Patient" => {
            let org = if target == "other" { "B" } else { "A" };
            json!({"resourceType": "Patient", "name": [{"family": "Synthetic", "given": ["New"]}],
                   "managingOrganization": {"reference": format!("Organization/{}", f.orgs[org])}})
        }
        "Observation" => observation(&id),
        "Condition" => condition(&id, false),
        "SensitiveCondition" => condition(&id, true),
        "Appointment" => appointment(&id),
        "Practitioner" => {
            json!({"resourceType": "Practitioner", "name": [{"family": "Synthetic", "given": ["New"]}]})
        }
        other => panic!("no template for {other}"),
    }
}

fn fhir_type(t: &str) -> &str {
    if t == "SensitiveCondition" {
        "Condition"
    } else {
        t
    }
}

async fn outcome(app: &TestApp, client: &reqwest::Client, f: &Fixture, row: &[&str]) -> String {
    let (ty, target, interaction) = (row[1], row[2], row[3]);
    let stored = &f.resources[&(ty.to_string(), target.to_string())];
    let id = stored["id"].as_str().unwrap();
    let t = fhir_type(ty);
    let resp = match interaction {
        "read" => client
            .get(app.url(&format!("{t}/{id}")))
            .send()
            .await
            .unwrap(),
        "search" => {
            let r = client
                .get(app.url(&format!("{t}?_id={id}")))
                .send()
                .await
                .unwrap();
            let (status, body) = common::status_json(r).await;
            if status != 200 {
                return status.to_string();
            }
            let n = body["entry"]
                .as_array()
                .map(|e| e.iter().filter(|e| e["search"]["mode"] == "match").count())
                .unwrap_or(0);
            return n.to_string();
        }
        "create" => client
            .post(app.url(t))
            .header("content-type", "application/fhir+json")
            .body(new_resource(f, ty, target).to_string())
            .send()
            .await
            .unwrap(),
        "update" => {
            let mut body = stored.clone();
            if let Some(m) = body.get_mut("meta").and_then(Value::as_object_mut) {
                m.remove("versionId");
                m.remove("lastUpdated");
                if m.is_empty() {
                    body.as_object_mut().unwrap().remove("meta");
                }
            }
            client
                .put(app.url(&format!("{t}/{id}")))
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
        other => panic!("unknown interaction {other}"),
    };
    resp.status().as_u16().to_string()
}

async fn authorisation_matrix(app: &TestApp) {
    let f = fixture(app).await;
    let clients = users(app, &f).await;
    let matrix = include_str!("access_matrix.tsv");
    let mut failures = Vec::new();
    let mut cases = 0;
    for line in matrix.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let row: Vec<&str> = line.split('\t').collect();
        let client = &clients[row[0]];
        let got = outcome(app, client, &f, &row).await;
        cases += 1;
        if got != row[4] {
            failures.push(format!("{line}\tgot {got}"));
        }
    }
    assert!(cases > 1000, "the matrix has its cases ({cases})");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases differ from the policy (user, type, target, interaction, expected, got):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A parent reads a child's sensitive Condition; which answer they get depends on the child's age today.
async fn proxy_age_bands_at_the_birthday_boundaries(app: &TestApp) {
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Synthetic Clinic"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let parent = app
        .create(&json!({"resourceType": "Patient", "birthDate": born(40, 0), "managingOrganization": {"reference": format!("Organization/{org}")}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // (birth date, sees the child at all, sees the sensitive Condition)
    let cases = [
        ("11 years 364 days", born(12, -1), true, true),
        ("12 years", born(12, 0), true, false),
        ("17 years 364 days", born(18, -1), true, false),
        ("18 years", born(18, 0), false, false),
    ];
    let mut children = Vec::new();
    for (label, birth, _, _) in &cases {
        let child = app
            .create(&json!({"resourceType": "Patient", "birthDate": birth, "name": [{"family": "Synthetic", "given": [label]}]}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let plain = app.create(&condition(&child, false)).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let sensitive = app.create(&condition(&child, true)).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        children.push((child, plain, sensitive));
    }
    let proxies: Vec<&str> = children.iter().map(|c| c.0.as_str()).collect();
    let client = app
        .client_for(patient_account("parent", &parent, "premium", &proxies))
        .await;
    for ((label, _, sees_child, sees_sensitive), (child, plain, sensitive)) in
        cases.iter().zip(&children)
    {
        let status = |path: String| {
            let client = client.clone();
            let url = app.url(&path);
            async move { client.get(url).send().await.unwrap().status().as_u16() }
        };
        let expect = |b: bool| if b { 200 } else { 404 };
        assert_eq!(
            status(format!("Patient/{child}")).await,
            expect(*sees_child),
            "{label}: the child's Patient"
        );
        assert_eq!(
            status(format!("Condition/{plain}")).await,
            expect(*sees_child),
            "{label}: an ordinary Condition"
        );
        assert_eq!(
            status(format!("Condition/{sensitive}")).await,
            expect(*sees_sensitive),
            "{label}: a sensitive Condition"
        );
    }
}

async fn get_as(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, Value) {
    common::status_json(client.get(app.url(path)).send().await.unwrap()).await
}

fn ids_in(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A parent of a 14-year-old must not learn of the teen's sensitive Condition through any door.
async fn hidden_resources_stay_hidden_everywhere(app: &TestApp) {
    let f = fixture(app).await;
    let teen = f.patients["teen14"].clone();
    let secret = f.resources[&("SensitiveCondition".to_string(), "teen14".to_string())]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let plain = f.resources[&("Condition".to_string(), "teen14".to_string())]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sponsor = app
        .client_for(patient_account(
            "sponsor",
            &f.patients["sponsor"],
            "premium",
            &[&teen],
        ))
        .await;

    // read: the same answer as for an id that never existed
    let (s1, hidden) = get_as(app, &sponsor, &format!("Condition/{secret}")).await;
    let (s2, missing) = get_as(app, &sponsor, "Condition/no-such-condition").await;
    assert_eq!((s1, s2), (404, 404));
    assert_eq!(
        hidden["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .replace(&secret, "X"),
        missing["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .replace("no-such-condition", "X"),
        "the error message does not tell hidden from absent"
    );
    // search and counts
    let (_, b) = get_as(
        app,
        &sponsor,
        &format!("Condition?patient={teen}&_total=accurate"),
    )
    .await;
    assert_eq!(ids_in(&b), vec![plain.clone()]);
    assert_eq!(b["total"], 1, "the count leaves the hidden one out: {b}");
    let (_, b) = get_as(
        app,
        &sponsor,
        "Condition?code=http://hl7.org/fhir/sid/icd-10-cm|F32.9&_total=accurate",
    )
    .await;
    assert_eq!(ids_in(&b).len(), 1, "only the sponsor's own: {b}");
    assert_eq!(
        b["total"], 1,
        "a count of one code leaves the hidden one out: {b}"
    );
    // a whole type's count is what the proxy may see, never the kept count of every Condition
    let (_, all) = get_as(app, &sponsor, "Condition?_count=500").await;
    let (_, b) = get_as(app, &sponsor, "Condition?_summary=count").await;
    assert_eq!(
        b["total"],
        ids_in(&all).len(),
        "the count of a type is what the proxy sees: {b}"
    );
    // _revinclude and _include
    let (_, b) = get_as(
        app,
        &sponsor,
        &format!("Patient?_id={teen}&_revinclude=Condition:subject"),
    )
    .await;
    let ids = ids_in(&b);
    assert!(ids.contains(&plain) && !ids.contains(&secret), "{ids:?}");
    // :iterate never follows a hidden resource: a Practitioner only the hidden Condition names stays out
    let asserter = app
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Synthetic", "given": ["Only"]}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut named = condition(&teen, true);
    named["asserter"] = json!({"reference": format!("Practitioner/{asserter}")});
    let named = app.create(&named).await["id"].as_str().unwrap().to_string();
    let (_, b) = get_as(
        app,
        &sponsor,
        &format!(
            "Patient?_id={teen}&_revinclude=Condition:subject&_include:iterate=Condition:asserter"
        ),
    )
    .await;
    let ids = ids_in(&b);
    assert!(
        ids.contains(&plain) && !ids.contains(&named) && !ids.contains(&asserter),
        "{ids:?}"
    );
    // _has: a reverse chain on the hidden Condition's code must not select the teen
    let (_, b) = get_as(
        app,
        &sponsor,
        "Patient?_has:Condition:subject:code=http://hl7.org/fhir/sid/icd-10-cm|F32.9",
    )
    .await;
    assert!(!ids_in(&b).contains(&teen), "_has leaked the teen: {b}");
    // chain from the hidden side: Conditions whose subject is the teen, by name
    let (_, b) = get_as(app, &sponsor, "Condition?subject:Patient.given=teen14").await;
    assert_eq!(ids_in(&b), vec![plain.clone()]);
    // history and vread of the hidden resource
    assert_eq!(
        get_as(app, &sponsor, &format!("Condition/{secret}/_history"))
            .await
            .0,
        404
    );
    assert_eq!(
        get_as(app, &sponsor, &format!("Condition/{secret}/_history/1"))
            .await
            .0,
        404
    );
    // type and system history would show everyone's: refused outright
    assert_eq!(get_as(app, &sponsor, "Condition/_history").await.0, 403);
    assert_eq!(get_as(app, &sponsor, "_history").await.0, 403);
    // $everything
    let (s, b) = get_as(
        app,
        &sponsor,
        &format!("Patient/{teen}/$everything?_count=500"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let ids = ids_in(&b);
    assert!(ids.contains(&plain) && !ids.contains(&secret), "{ids:?}");
    // compartment search
    let (_, b) = get_as(app, &sponsor, &format!("Patient/{teen}/Condition")).await;
    assert_eq!(ids_in(&b), vec![plain.clone()]);
    // writes cannot probe it either: an update answers like an unknown id, a delete like an absent one
    let mut body = f.resources[&("SensitiveCondition".to_string(), "teen14".to_string())].clone();
    body["note"] = json!([{"text": "probe"}]);
    let r = sponsor
        .put(app.url(&format!("Condition/{secret}")))
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "patients may not update Conditions at all"
    );
    // the system still has it, unchanged
    let (s, c) = app.get(&format!("Condition/{secret}")).await;
    assert_eq!((s, c["meta"]["versionId"].as_str()), (200, Some("1")));
    // the teen sees their own
    let teen_client = app
        .client_for(patient_account("teen", &teen, "premium", &[]))
        .await;
    assert_eq!(
        get_as(app, &teen_client, &format!("Condition/{secret}"))
            .await
            .0,
        200
    );
    // another patient's record is invisible as a whole, searching by it gives nothing
    let other = f.patients["other"].clone();
    let (_, b) = get_as(app, &sponsor, &format!("Observation?patient={other}")).await;
    assert!(ids_in(&b).is_empty());
    assert_eq!(
        get_as(app, &sponsor, &format!("Patient/{other}/$everything"))
            .await
            .0,
        404
    );
    // a system-wide search could cross every type at once: refused for people
    assert_eq!(get_as(app, &sponsor, "?_type=Condition").await.0, 403);
    let _ = (&f.role_a, &f.nurse_b);
}

async fn every_access_is_audited(app: &TestApp) {
    let f = fixture(app).await;
    let teen = f.patients["teen14"].clone();
    let physician = staff("doc", "physician", Some(&f.dr_a));
    let client = app.client_for(physician).await;
    let auth = app.auth.clone();
    let doc = tokio::task::spawn_blocking(move || auth.by_username("doc").unwrap().unwrap())
        .await
        .unwrap();
    let obs = f.resources[&("Observation".to_string(), "teen14".to_string())]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_as(app, &client, &format!("Observation/{obs}")).await.0,
        200
    );
    let other_obs = f.resources[&("Observation".to_string(), "other".to_string())]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get_as(app, &client, &format!("Observation/{other_obs}"))
            .await
            .0,
        404
    );
    assert_eq!(
        get_as(app, &client, &format!("Condition?patient={teen}"))
            .await
            .0,
        200
    );
    let store = app.store.clone();
    let doc_id = doc.id.clone();
    let teen2 = teen.clone();
    let rows = tokio::task::spawn_blocking(move || {
        store
            .audit()
            .audit_search(&continuum_store::AuditQuery {
                agent: Some(doc_id),
                limit: 50,
                ..Default::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    let read_ok = rows.iter().any(|r| {
        r.record.subtype == "read"
            && r.record.outcome == "0"
            && r.record.patient.as_deref() == Some(teen2.as_str())
    });
    let refused = rows
        .iter()
        .any(|r| r.record.subtype == "read" && r.record.outcome == "4");
    let searched = rows.iter().any(|r| {
        r.record.subtype == "search-type" && r.record.patient.as_deref() == Some(teen2.as_str())
    });
    assert!(read_ok && refused && searched, "{rows:#?}");
    // the records are AuditEvents naming the user and the patient
    let row = rows.iter().find(|r| r.record.subtype == "read").unwrap();
    let ev: Value = serde_json::from_slice(&row.record.body).unwrap();
    assert_eq!(ev["resourceType"], "AuditEvent");
    assert_eq!(ev["agent"][0]["who"]["identifier"]["value"], doc.id);
    // writes are audited in their own transaction
    let before = rows.len();
    let created = client
        .post(app.url("Observation"))
        .header("content-type", "application/fhir+json")
        .body(observation(&teen).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let store = app.store.clone();
    let doc_id = doc.id.clone();
    let rows = tokio::task::spawn_blocking(move || {
        store
            .audit()
            .audit_search(&continuum_store::AuditQuery {
                agent: Some(doc_id),
                limit: 100,
                ..Default::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    assert!(rows.len() > before);
    assert!(rows
        .iter()
        .any(|r| r.record.subtype == "create" && r.record.action == "C"));
    // and the log verifies once sealed
    let store = app.store.clone();
    let report = tokio::task::spawn_blocking(move || {
        while store.audit().seal_audit(1000).unwrap() > 0 {}
        continuum_store::audit::verify(store.audit(), 1000).unwrap()
    })
    .await
    .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.links > 0);
}

async fn requests_without_a_valid_token_are_refused(app: &TestApp) {
    let r = app.anonymous.get(app.url("Patient")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let forged = common::client_with_token("not-a-real-token-0123456789abcdefghijklmnopq");
    let r = forged.get(app.url("Patient")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // the capability statement stays public
    let r = app.anonymous.get(app.url("metadata")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

async fn break_the_glass_opens_a_record_with_a_reason_and_an_alert(app: &TestApp) {
    let f = fixture(app).await;
    let other = f.patients["other"].clone();
    let obs = f.resources[&("Observation".to_string(), "other".to_string())]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = app
        .client_for(staff("er_doc", "physician", Some(&f.dr_a)))
        .await;
    assert_eq!(
        get_as(app, &doc, &format!("Observation/{obs}")).await.0,
        404
    );
    let btg = |client: reqwest::Client, reason: &'static str| {
        let url = app.url(&format!("Patient/{other}/$break-the-glass"));
        async move {
            let body = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": reason}]});
            client
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(btg(doc.clone(), "why").await, 400, "a reason is required");
    let pharmacist = app
        .client_for(staff("btg_pharmacist", "pharmacist", None))
        .await;
    assert_eq!(
        btg(pharmacist, "unconscious patient in the emergency room").await,
        403,
        "only clinicians break the glass"
    );
    assert_eq!(
        btg(doc.clone(), "unconscious patient in the emergency room").await,
        200
    );
    assert_eq!(
        get_as(app, &doc, &format!("Observation/{obs}")).await.0,
        200
    );
    let store = app.store.clone();
    let other2 = other.clone();
    let (rows, mail) = tokio::task::spawn_blocking(move || {
        let rows = store
            .audit()
            .audit_search(&continuum_store::AuditQuery {
                patient: Some(other2),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        (rows, store.accounts().pending_mail(10).unwrap())
    })
    .await
    .unwrap();
    let ev = rows
        .iter()
        .find(|r| r.record.subtype == "break-glass")
        .expect("a break-the-glass audit record");
    let body: Value = serde_json::from_slice(&ev.record.body).unwrap();
    assert_eq!(body["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
    assert!(mail
        .iter()
        .any(|m| m.subject.contains("Break-the-glass") && m.body.contains("emergency room")));
}
