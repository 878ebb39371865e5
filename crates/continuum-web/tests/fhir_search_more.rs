//! The rest of R4 search over HTTP, on SQLite and PostgreSQL: composite parameters (both components on the
//! same repeating element), token `:of-type`, `:in`/`:not-in` (ValueSets stored here), `:identifier`, and
//! paging backwards (`previous`/`first` links). Expected results are worked out by hand from the R4 search
//! rules (https://hl7.org/fhir/R4/search.html), never copied from the server's output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use serde_json::{json, Value};

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

async fn put(app: &TestApp, v: Value) {
    let path = format!(
        "{}/{}",
        v["resourceType"].as_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    let (s, body) = app.put(&path, &v).await;
    assert!(s == 201 || s == 200, "{path}: {s} {body}");
}

/// The ids of the matches, sorted (outcome entries left out).
async fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let (s, b) = app.get(query).await;
    assert_eq!(s, 200, "{query}: {b}");
    let mut out = page_ids(&b);
    out.sort();
    out
}

/// The ids of a page's matches, in the page's order.
fn page_ids(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn v(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

fn observation(id: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": coding(LOINC, code), "subject": {"reference": "Patient/p1"}})
}

fn mmhg(value: f64) -> Value {
    json!({"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"})
}

fn blood_pressure(id: &str, systolic: f64, diastolic: f64) -> Value {
    let mut o = observation(id, "85354-9");
    o["component"] = json!([
        {"code": coding(LOINC, "8480-6"), "valueQuantity": mmhg(systolic)},
        {"code": coding(LOINC, "8462-4"), "valueQuantity": mmhg(diastolic)}
    ]);
    o
}

/// Synthetic observations of every value type a composite pairs with a code.
async fn observations(app: &TestApp) {
    put(
        app,
        json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Synthetic"}]}),
    )
    .await;
    put(app, blood_pressure("bp-high-sys", 150.0, 85.0)).await;
    put(app, blood_pressure("bp-high-dia", 120.0, 95.0)).await;
    let mut weight = observation("weight", "29463-7");
    weight["valueQuantity"] = json!({"value": 80, "unit": "kg", "system": UCUM, "code": "kg"});
    put(app, weight).await;
    for (id, snomed) in [("ex-smoker", "8517006"), ("never-smoker", "266919005")] {
        let mut o = observation(id, "72166-2");
        o["valueCodeableConcept"] = coding(SNOMED, snomed);
        put(app, o).await;
    }
    let mut dated = observation("dated", "21112-8");
    dated["valueDateTime"] = json!("2024-05-01");
    put(app, dated).await;
    let mut note = observation("note", "8251-1");
    note["valueString"] = json!("Synthetic remark");
    put(app, note).await;
    let mut price = observation("price", "8251-1");
    price["valueString"] = json!("Price $5, or more");
    put(app, price).await;
}

async fn composite_quantities_stay_on_one_component(app: &TestApp) {
    observations(app).await;
    // systolic 150 > 140 in the same component
    assert_eq!(
        ids(
            app,
            "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt140"
        )
        .await,
        v(&["bp-high-sys"])
    );
    // bp-high-sys has a value below 100 (diastolic 85), but not on its systolic component
    assert!(ids(
        app,
        "Observation?component-code-value-quantity=8480-6$lt100"
    )
    .await
    .is_empty());
    assert_eq!(
        ids(app, "Observation?component-code-value-quantity=8462-4$gt90").await,
        v(&["bp-high-dia"])
    );
    // OR within a parameter, AND across repeats (each on its own component)
    assert_eq!(
        ids(
            app,
            "Observation?component-code-value-quantity=8462-4$gt90,8480-6$gt140"
        )
        .await,
        v(&["bp-high-dia", "bp-high-sys"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?component-code-value-quantity=8480-6$gt140&component-code-value-quantity=8462-4$lt90"
        )
        .await,
        v(&["bp-high-sys"])
    );
    assert!(ids(
        app,
        "Observation?component-code-value-quantity=8480-6$gt140&component-code-value-quantity=8462-4$gt90"
    )
    .await
    .is_empty());
    // units on the second component: value|system|code
    assert_eq!(
        ids(
            app,
            "Observation?component-code-value-quantity=8480-6$150|http://unitsofmeasure.org|mm[Hg]"
        )
        .await,
        v(&["bp-high-sys"])
    );
    assert!(ids(
        app,
        "Observation?component-code-value-quantity=8480-6$150|http://unitsofmeasure.org|kg"
    )
    .await
    .is_empty());
    // a code in another system, or without a system, is another token
    assert!(ids(
        app,
        "Observation?component-code-value-quantity=http://snomed.info/sct|8480-6$150"
    )
    .await
    .is_empty());
    assert!(
        ids(app, "Observation?component-code-value-quantity=|8480-6$150")
            .await
            .is_empty()
    );
    // system| (any code of the system) is not offered on a composite's first component: refused when strict
    let r = app
        .client
        .get(app.url("Observation?component-code-value-quantity=http://loinc.org|$ge95"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // code-value-quantity is Observation.code with Observation.value; the panel itself has no value
    assert_eq!(
        ids(
            app,
            "Observation?code-value-quantity=http://loinc.org|29463-7$ge80"
        )
        .await,
        v(&["weight"])
    );
    assert!(ids(app, "Observation?code-value-quantity=29463-7$gt80")
        .await
        .is_empty());
    // 80 means [79.5, 80.5)
    assert_eq!(
        ids(app, "Observation?code-value-quantity=29463-7$80").await,
        v(&["weight"])
    );
    assert!(ids(app, "Observation?code-value-quantity=85354-9$ge0")
        .await
        .is_empty());
    assert!(ids(app, "Observation?code-value-quantity=8480-6$150")
        .await
        .is_empty());
    // combo: the observation's own code and value, or a component's
    assert_eq!(
        ids(app, "Observation?combo-code-value-quantity=8480-6$150").await,
        v(&["bp-high-sys"])
    );
    assert_eq!(
        ids(app, "Observation?combo-code-value-quantity=29463-7$80").await,
        v(&["weight"])
    );
    assert!(ids(app, "Observation?combo-code-value-quantity=8462-4$150")
        .await
        .is_empty());
    // an update re-indexes the pairs
    put(app, blood_pressure("bp-high-sys", 118.0, 85.0)).await;
    assert!(ids(
        app,
        "Observation?component-code-value-quantity=8480-6$gt140"
    )
    .await
    .is_empty());
}

async fn composite_concepts_dates_strings_and_references(app: &TestApp) {
    observations(app).await;
    assert_eq!(
        ids(
            app,
            "Observation?code-value-concept=http://loinc.org|72166-2$http://snomed.info/sct|8517006"
        )
        .await,
        v(&["ex-smoker"])
    );
    assert_eq!(
        ids(app, "Observation?code-value-concept=72166-2$266919005").await,
        v(&["never-smoker"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?code-value-concept=72166-2$8517006,72166-2$266919005"
        )
        .await,
        v(&["ex-smoker", "never-smoker"])
    );
    // the right code in the wrong system
    assert!(ids(
        app,
        "Observation?code-value-concept=72166-2$http://loinc.org|8517006"
    )
    .await
    .is_empty());
    // the value of another observation's code
    assert!(ids(app, "Observation?code-value-concept=8251-1$8517006")
        .await
        .is_empty());
    // combo-code-value-concept covers Observation.value as well
    assert_eq!(
        ids(app, "Observation?combo-code-value-concept=72166-2$8517006").await,
        v(&["ex-smoker"])
    );
    // dates: 2024-05-01 lies within 2024 and 2024-05, after 2024-04, not before 2024
    for (q, expect) in [
        ("21112-8$2024", true),
        ("21112-8$2024-05", true),
        ("21112-8$ge2024-05", true),
        ("21112-8$gt2024-04", true),
        ("21112-8$lt2024", false),
        ("21112-8$2024-06", false),
        ("72166-2$2024", false),
    ] {
        let got = ids(app, &format!("Observation?code-value-date={q}")).await;
        let want = if expect { v(&["dated"]) } else { Vec::new() };
        assert_eq!(got, want, "code-value-date={q}");
    }
    // strings: starts with, case and accents folded
    assert_eq!(
        ids(app, "Observation?code-value-string=8251-1$SYNTH").await,
        v(&["note"])
    );
    assert!(ids(app, "Observation?code-value-string=8251-1$remark")
        .await
        .is_empty());
    // escaped $ and , inside a component: `price \$5\, or` is the text "price $5, or"
    assert_eq!(
        ids(
            app,
            "Observation?code-value-string=8251-1$price%20%5C%245%5C%2C%20or"
        )
        .await,
        v(&["price"])
    );

    // Group characteristic-value: code and value of the same characteristic
    put(app, json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
        "characteristic": [
            {"code": coding("http://example.org/fhir/CodeSystem/trait", "sex"),
             "valueCodeableConcept": coding("http://hl7.org/fhir/administrative-gender", "female"), "exclude": false},
            {"code": coding("http://example.org/fhir/CodeSystem/trait", "age-band"),
             "valueCodeableConcept": coding("http://example.org/fhir/CodeSystem/band", "adult"), "exclude": false}
        ]})).await;
    assert_eq!(
        ids(app, "Group?characteristic-value=sex$female").await,
        v(&["g1"])
    );
    assert_eq!(
        ids(
            app,
            "Group?characteristic-value=http://example.org/fhir/CodeSystem/trait|age-band$adult"
        )
        .await,
        v(&["g1"])
    );
    assert!(ids(app, "Group?characteristic-value=sex$adult")
        .await
        .is_empty());

    // DocumentReference relationship: relatesTo.code with relatesTo.target (token, then reference)
    let doc = |id: &str| {
        json!({"resourceType": "DocumentReference", "id": id, "status": "current",
               "content": [{"attachment": {"contentType": "text/plain", "data": "U3ludGhldGlj"}}]})
    };
    put(app, doc("d1")).await;
    put(app, doc("d2")).await;
    let mut d3 = doc("d3");
    d3["relatesTo"] = json!([
        {"code": "replaces", "target": {"reference": "DocumentReference/d1"}},
        {"code": "appends", "target": {"reference": "DocumentReference/d2"}}
    ]);
    put(app, d3).await;
    assert_eq!(
        ids(
            app,
            "DocumentReference?relationship=replaces$DocumentReference/d1"
        )
        .await,
        v(&["d3"])
    );
    assert!(ids(
        app,
        "DocumentReference?relationship=replaces$DocumentReference/d2"
    )
    .await
    .is_empty());

    // useContext: context-type-quantity and context-type-value on a conformance resource
    put(app, json!({"resourceType": "ValueSet", "id": "ctx", "url": "http://example.org/fhir/ValueSet/ctx",
        "status": "active",
        "useContext": [
            {"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type", "code": "age"},
             "valueQuantity": {"value": 30, "unit": "a", "system": UCUM, "code": "a"}},
            {"code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type", "code": "focus"},
             "valueCodeableConcept": coding(SNOMED, "38341003")}
        ]})).await;
    assert_eq!(
        ids(app, "ValueSet?context-type-quantity=age$gt18").await,
        v(&["ctx"])
    );
    assert!(ids(app, "ValueSet?context-type-quantity=focus$gt18")
        .await
        .is_empty());
    assert_eq!(
        ids(app, "ValueSet?context-type-value=focus$38341003").await,
        v(&["ctx"])
    );
    assert!(ids(app, "ValueSet?context-type-value=age$38341003")
        .await
        .is_empty());
}

async fn composite_errors(app: &TestApp) {
    observations(app).await;
    for q in [
        "Observation?component-code-value-quantity=8480-6",
        "Observation?component-code-value-quantity=8480-6$gt1$2",
        "Observation?component-code-value-quantity=8480-6$high",
        "Observation?code-value-date=21112-8$May",
        "Observation?component-code-value-quantity=$140",
    ] {
        let (s, b) = app.get(q).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_eq!(b["resourceType"], "OperationOutcome", "{q}");
    }
    // an R4 parameter this server does not support (the special `_text`, narrative search): refused when
    // strict, else a warning
    let q = "Condition?_text=fever";
    let r = app
        .client
        .get(app.url(q))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (s, b) = app.get(q).await;
    assert_eq!(s, 200);
    assert!(b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["search"]["mode"] == "outcome"));
    // the CapabilityStatement lists the supported composites and leaves `_text` out
    let (_, cs) = app.get("metadata").await;
    let params = |ty: &str| -> Vec<String> {
        cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap()["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let obs = params("Observation");
    for p in [
        "code-value-quantity",
        "component-code-value-quantity",
        "combo-code-value-quantity",
        "code-value-concept",
        "code-value-date",
        "code-value-string",
    ] {
        assert!(obs.contains(&p.to_string()), "{p}");
    }
    assert!(params("MolecularSequence").contains(&"chromosome-variant-coordinate".to_string()));
    assert!(!params("Condition").contains(&"_text".to_string()));
}

async fn identifier_of_type(app: &TestApp) {
    put(app, json!({"resourceType": "Patient", "id": "typed", "identifier": [
        {"type": coding(V2_0203, "MR"), "system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-12345"},
        {"type": coding(V2_0203, "DL"), "system": "urn:continuum:synthetic:dl", "value": "DL-777"}
    ]})).await;
    put(
        app,
        json!({"resourceType": "Patient", "id": "untyped", "identifier": [
            {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-12345"}
        ]}),
    )
    .await;
    assert_eq!(
        ids(
            app,
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-12345"
        )
        .await,
        v(&["typed"])
    );
    // type and value of different identifiers do not combine
    assert!(ids(
        app,
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|DL|MRN-12345"
    )
    .await
    .is_empty());
    assert!(ids(
        app,
        "Patient?identifier:of-type=http://example.org/other|MR|MRN-12345"
    )
    .await
    .is_empty());
    assert!(ids(
        app,
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-1234"
    )
    .await
    .is_empty());
    // the plain token search still finds both
    assert_eq!(
        ids(app, "Patient?identifier=MRN-12345").await,
        v(&["typed", "untyped"])
    );
    for bad in ["MR|MRN-12345", "http://x||MRN-1", "http://x|MR|"] {
        let (s, b) = app.get(&format!("Patient?identifier:of-type={bad}")).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
    // :identifier on a reference (Reference.identifier)
    let mut o = observation("by-identifier", "8867-4");
    o["subject"] =
        json!({"identifier": {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-12345"}});
    put(app, o).await;
    assert_eq!(
        ids(
            app,
            "Observation?subject:identifier=urn:oid:2.16.840.1.113883.19.5|MRN-12345"
        )
        .await,
        v(&["by-identifier"])
    );
    assert!(
        ids(app, "Observation?subject:identifier=urn:other|MRN-12345")
            .await
            .is_empty()
    );
}

async fn token_in_and_not_in_value_sets(app: &TestApp) {
    observations(app).await;
    let vs = |id: &str, url: &str, body: Value| {
        let mut v = json!({"resourceType": "ValueSet", "id": id, "url": url, "status": "active"});
        for (k, x) in body.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    put(
        app,
        vs(
            "bp",
            "http://example.org/fhir/ValueSet/bp",
            json!({"version": "1.0",
        "compose": {"include": [{"system": LOINC, "concept": [
            {"code": "85354-9"}, {"code": "8480-6"}, {"code": "8462-4"}]}]}}),
        ),
    )
    .await;
    put(
        app,
        vs(
            "snomed-but-never",
            "http://example.org/fhir/ValueSet/snomed-but-never",
            json!({
        "compose": {"include": [{"system": SNOMED}],
                    "exclude": [{"system": SNOMED, "concept": [{"code": "266919005"}]}]}}),
        ),
    )
    .await;
    put(app, vs("expanded", "http://example.org/fhir/ValueSet/expanded", json!({
        "expansion": {"timestamp": "2025-01-01T00:00:00Z",
                      "contains": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]}}))).await;
    put(
        app,
        vs(
            "filtered",
            "http://example.org/fhir/ValueSet/filtered",
            json!({
        "compose": {"include": [{"system": SNOMED,
            "filter": [{"property": "concept", "op": "is-a", "value": "365980008"}]}]}}),
        ),
    )
    .await;
    put(
        app,
        vs(
            "wrong-system",
            "http://example.org/fhir/ValueSet/wrong-system",
            json!({
        "compose": {"include": [{"system": SNOMED, "concept": [{"code": "85354-9"}]}]}}),
        ),
    )
    .await;

    let bp = "http://example.org/fhir/ValueSet/bp";
    assert_eq!(
        ids(app, &format!("Observation?code:in={bp}")).await,
        v(&["bp-high-dia", "bp-high-sys"])
    );
    assert_eq!(
        ids(app, &format!("Observation?code:in={bp}|1.0")).await,
        v(&["bp-high-dia", "bp-high-sys"])
    );
    // component-code reaches the component codes
    assert_eq!(
        ids(app, &format!("Observation?component-code:in={bp}")).await,
        v(&["bp-high-dia", "bp-high-sys"])
    );
    // the same code in another system is not in the set
    assert!(ids(
        app,
        "Observation?code:in=http://example.org/fhir/ValueSet/wrong-system"
    )
    .await
    .is_empty());
    // a whole system minus an excluded concept
    assert_eq!(
        ids(
            app,
            "Observation?value-concept:in=http://example.org/fhir/ValueSet/snomed-but-never"
        )
        .await,
        v(&["ex-smoker"])
    );
    // an expansion stored in the ValueSet
    assert_eq!(
        ids(
            app,
            "Observation?code:in=http://example.org/fhir/ValueSet/expanded"
        )
        .await,
        v(&["weight"])
    );
    // :not-in: every observation without a code in the set; with several sets, in none of them
    assert_eq!(
        ids(app, &format!("Observation?code:not-in={bp}")).await,
        v(&[
            "weight",
            "ex-smoker",
            "never-smoker",
            "dated",
            "note",
            "price"
        ])
    );
    assert_eq!(
        ids(
            app,
            &format!("Observation?code:not-in={bp},http://example.org/fhir/ValueSet/expanded")
        )
        .await,
        v(&["ex-smoker", "never-smoker", "dated", "note", "price"])
    );
    assert_eq!(
        ids(
            app,
            &format!("Observation?code:in={bp},http://example.org/fhir/ValueSet/expanded")
        )
        .await,
        v(&["bp-high-dia", "bp-high-sys", "weight"])
    );
    // inside a chain
    put(
        app,
        json!({"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
        "code": coding(LOINC, "55284-4"), "result": [{"reference": "Observation/bp-high-sys"}]}),
    )
    .await;
    assert_eq!(
        ids(app, &format!("DiagnosticReport?result.code:in={bp}")).await,
        v(&["dr1"])
    );
    // the set is expanded at search time: a changed ValueSet changes the answer at once
    put(
        app,
        vs(
            "bp",
            bp,
            json!({"version": "1.0",
        "compose": {"include": [{"system": LOINC, "concept": [{"code": "8480-6"}]}]}}),
        ),
    )
    .await;
    assert!(ids(app, &format!("Observation?code:in={bp}"))
        .await
        .is_empty());
    assert_eq!(
        ids(app, &format!("Observation?component-code:in={bp}")).await,
        v(&["bp-high-dia", "bp-high-sys"])
    );

    // sets this server cannot expand are refused with a clear OperationOutcome
    for (q, says) in [
        (
            "Observation?code:in=http://example.org/fhir/ValueSet/filtered".to_string(),
            "filter",
        ),
        (
            "Observation?code:not-in=http://example.org/fhir/ValueSet/filtered".to_string(),
            "filter",
        ),
        (
            "Observation?code:in=http://example.org/fhir/ValueSet/unknown".to_string(),
            "not stored",
        ),
        (format!("Observation?code:in={bp}|2.0"), "not stored"),
        (
            "DiagnosticReport?result.code:in=http://example.org/fhir/ValueSet/unknown".to_string(),
            "not stored",
        ),
    ] {
        let (s, b) = app.get(&q).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_eq!(b["resourceType"], "OperationOutcome");
        let text = b["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(text.contains(says), "{q}: {text}");
    }
}

/// Follow `rel` links from `start`, collecting each page's ids, until there is no such link.
async fn walk(app: &TestApp, start: &str, rel: &str) -> (Vec<Vec<String>>, Vec<Value>) {
    let mut url = start.to_string();
    let mut pages = Vec::new();
    let mut bundles = Vec::new();
    loop {
        let (s, b) = common::status_json(app.client.get(&url).send().await.unwrap()).await;
        assert_eq!(s, 200, "{url}: {b}");
        pages.push(page_ids(&b));
        let next = link(&b, rel);
        bundles.push(b);
        match next {
            Some(u) => url = u,
            None => break,
        }
        assert!(pages.len() < 50, "paging does not end");
    }
    (pages, bundles)
}

fn link(b: &Value, rel: &str) -> Option<String> {
    b["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == rel)
        .map(|l| l["url"].as_str().unwrap().to_string())
}

fn person(id: &str, birth: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": id, "name": [{"family": "Pager"}]});
    if let Some(b) = birth {
        p["birthDate"] = json!(b);
    }
    p
}

async fn paging_backwards(app: &TestApp) {
    for i in 1..=7 {
        put(app, person(&format!("p{i}"), None)).await;
    }
    // store order, three a page: p1-p3, p4-p6, p7
    let (forward, bundles) = walk(app, &app.url("Patient?family=pager&_count=3"), "next").await;
    let expect = |pages: &[&[&str]]| -> Vec<Vec<String>> {
        pages
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect()
    };
    assert_eq!(
        forward,
        expect(&[&["p1", "p2", "p3"], &["p4", "p5", "p6"], &["p7"]])
    );
    assert!(
        link(&bundles[0], "previous").is_none(),
        "the first page has no previous page"
    );
    assert!(link(&bundles[1], "previous").is_some());
    assert!(link(&bundles[2], "previous").is_some());
    for b in &bundles {
        assert_eq!(
            link(b, "first").as_deref(),
            Some(app.url("Patient?family=pager&_count=3").as_str())
        );
    }
    // new data arrives while the client reads the last page
    put(app, person("p8", None)).await;
    let last = link(&bundles[2], "self").unwrap();
    let (backward, back_bundles) = walk(app, &last, "previous").await;
    assert_eq!(
        backward,
        expect(&[&["p7", "p8"], &["p4", "p5", "p6"], &["p1", "p2", "p3"]]),
        "the self link of the last page now shows the new resource; the earlier pages are unchanged"
    );
    assert!(link(back_bundles.last().unwrap(), "previous").is_none());
    // and forward again from the first page reached backwards
    let again = link(back_bundles.last().unwrap(), "next").unwrap();
    let (forward_again, _) = walk(app, &again, "next").await;
    assert_eq!(forward_again, expect(&[&["p4", "p5", "p6"], &["p7", "p8"]]));
}

async fn paging_backwards_when_sorted(app: &TestApp) {
    // birth dates with two missing: ascending order b1 < b2 = b2b < b3 < b4, then the missing ones by store order
    for (id, birth) in [
        ("m1", None),
        ("b3", Some("1990-03-01")),
        ("b1", Some("1970-01-01")),
        ("b2", Some("1980-06-15")),
        ("m2", None),
        ("b4", Some("2001-12-31")),
        ("b2b", Some("1980-06-15")),
    ] {
        put(app, person(id, birth)).await;
    }
    let all_asc = ["b1", "b2", "b2b", "b3", "b4", "m1", "m2"];
    let all_desc = ["b4", "b3", "b2", "b2b", "b1", "m1", "m2"];
    for (sort, order) in [("birthdate", all_asc), ("-birthdate", all_desc)] {
        for count in [1usize, 2, 3] {
            let start = app.url(&format!("Patient?family=pager&_sort={sort}&_count={count}"));
            let (forward, bundles) = walk(app, &start, "next").await;
            let flat: Vec<String> = forward.iter().flatten().cloned().collect();
            assert_eq!(flat, order.to_vec(), "_sort={sort}&_count={count}");
            // back from the last page: the same pages in reverse
            let last = link(bundles.last().unwrap(), "self").unwrap();
            let (mut backward, _) = walk(app, &last, "previous").await;
            backward.reverse();
            assert_eq!(backward, forward, "_sort={sort}&_count={count}");
            // from the middle: previous then next gives the same page back
            if bundles.len() > 2 {
                let prev = link(&bundles[2], "previous").unwrap();
                let (s, b) = common::status_json(app.client.get(&prev).send().await.unwrap()).await;
                assert_eq!(s, 200);
                assert_eq!(page_ids(&b), forward[1]);
                let next = link(&b, "next").unwrap();
                let (_, b) = common::status_json(app.client.get(&next).send().await.unwrap()).await;
                assert_eq!(page_ids(&b), forward[2]);
            }
        }
    }
    let (s, _) = app.get("Patient?_cursor=WzEsW10sInNpZGV3YXlzIl0").await;
    assert_eq!(s, 400, "an unknown direction is an invalid cursor");
}

fn measured(id: &str, code: &str, value: f64, unit: &str) -> Value {
    let mut o = observation(id, code);
    o["valueQuantity"] = json!({"value": value, "unit": unit, "system": UCUM, "code": unit});
    o
}

async fn ucum_units_compare_across_prefixes(app: &TestApp) {
    put(app, measured("glucose-mmol", "15074-8", 5.4, "mmol/L")).await;
    put(app, measured("glucose-umol", "15074-8", 6100.0, "umol/L")).await;
    put(app, measured("glucose-mg", "2345-7", 97.0, "mg/dL")).await;
    put(app, measured("dose-mg", "3141-9", 250.0, "mg")).await;
    put(app, measured("weight-kg", "29463-7", 80.0, "kg")).await;
    put(app, measured("temp-cel", "8310-5", 37.0, "Cel")).await;
    put(app, measured("rate", "8867-4", 72.0, "/min")).await;
    let mut local = observation("local-unit", "3141-9");
    local["valueQuantity"] =
        json!({"value": 0.25, "unit": "g", "system": "http://example.org/units", "code": "g"});
    put(app, local).await;
    put(app, blood_pressure("bp", 150.0, 85.0)).await;

    // 5.4 mmol/L = 5400 umol/L; 6100 umol/L = 6.1 mmol/L
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=5400|http://unitsofmeasure.org|umol/L"
        )
        .await,
        v(&["glucose-mmol"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=gt6|http://unitsofmeasure.org|mmol/L"
        )
        .await,
        v(&["glucose-umol"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=lt0.006|http://unitsofmeasure.org|mol/L"
        )
        .await,
        v(&["glucose-mmol"])
    );
    // 0.25 g is 250 mg (0.25 covers [0.245, 0.255) g); the same number in a non-UCUM system is not converted
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=0.25|http://unitsofmeasure.org|g"
        )
        .await,
        v(&["dose-mg"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=0.25|http://example.org/units|g"
        )
        .await,
        v(&["local-unit"])
    );
    // 80 kg = 80000 g; 176.37 [lb_av] covers [79.998, 80.002] kg
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=ge80000|http://unitsofmeasure.org|g"
        )
        .await,
        v(&["weight-kg"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=176.37|http://unitsofmeasure.org|[lb_av]"
        )
        .await,
        v(&["weight-kg"])
    );
    // 97 mg/dL = 0.97 g/L; mass and substance concentrations are different dimensions
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=0.97|http://unitsofmeasure.org|g/L"
        )
        .await,
        v(&["glucose-mg"])
    );
    assert!(ids(
        app,
        "Observation?value-quantity=97|http://unitsofmeasure.org|mmol/L"
    )
    .await
    .is_empty());
    // 72 /min = 1.2 /s
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=1.2|http://unitsofmeasure.org|/s"
        )
        .await,
        v(&["rate"])
    );
    // temperatures are offsets: no conversion, only the written unit matches
    assert!(ids(
        app,
        "Observation?value-quantity=98.6|http://unitsofmeasure.org|[degF]"
    )
    .await
    .is_empty());
    assert_eq!(
        ids(
            app,
            "Observation?value-quantity=37|http://unitsofmeasure.org|Cel"
        )
        .await,
        v(&["temp-cel"])
    );
    // composites compare in the written unit only (no canonical rows): 150 mm[Hg] is not found as 20 kPa
    assert_eq!(
        ids(
            app,
            "Observation?component-code-value-quantity=8480-6$150|http://unitsofmeasure.org|mm[Hg]"
        )
        .await,
        v(&["bp"])
    );
    assert!(ids(
        app,
        "Observation?component-code-value-quantity=8480-6$20|http://unitsofmeasure.org|kPa"
    )
    .await
    .is_empty());
}

/// Canonical references (`ActivityDefinition.library`, `ConceptMap.source[x]`, `meta.profile`) and references
/// that are not `[base/]Type/id` (`urn:uuid:…`, a partner's URL): found by their whole URL, a canonical also
/// without its `|version` (all versions match: the index keeps none); an absolute URL is another server's and
/// does not match a local `Type/id`; `_id` and `_lastUpdated` take `:missing` (every resource has both).
async fn canonical_and_external_references(app: &TestApp) {
    let library = |id: &str, canonical: &str| json!({"resourceType": "ActivityDefinition", "id": id, "status": "active", "library": [canonical]});
    put(
        app,
        library("ad-versioned", "http://example.org/fhir/Library/zika|1.0"),
    )
    .await;
    put(app, library("ad-relative", "Library/zika")).await;
    put(
        app,
        library("ad-other", "http://example.org/fhir/Library/dengue"),
    )
    .await;
    put(app, json!({"resourceType": "ConceptMap", "id": "cm-implicit", "status": "draft",
        "sourceCanonical": "http://snomed.info/sct?fhir_vs", "targetCanonical": "http://example.org/fhir/ValueSet/t"})).await;
    put(app, json!({"resourceType": "ClaimResponse", "id": "cr-partner", "status": "active",
        "type": coding("http://terminology.hl7.org/CodeSystem/claim-type", "oral"), "use": "claim",
        "patient": {"reference": "Patient/p1"}, "created": "2026-01-02", "insurer": {"reference": "Organization/o1"},
        "outcome": "complete", "request": {"reference": "http://www.example.com/fhir/oralhealthclaim/15476"}})).await;
    let mut tagged = observation("obs-profiled", "29463-7");
    tagged["meta"] = json!({"profile": ["http://example.org/fhir/StructureDefinition/weight"],
        "source": "http://example.org/feeds/scale#7"});
    put(app, tagged).await;

    assert_eq!(
        ids(
            app,
            "ActivityDefinition?depends-on=http://example.org/fhir/Library/zika%7C1.0"
        )
        .await,
        v(&["ad-versioned"]),
        "a canonical is found with or without its version"
    );
    assert_eq!(
        ids(
            app,
            "ActivityDefinition?depends-on=http://example.org/fhir/Library/dengue"
        )
        .await,
        v(&["ad-other"])
    );
    assert_eq!(
        ids(app, "ActivityDefinition?depends-on=Library/zika").await,
        v(&["ad-relative"]),
        "Type/id finds the relative canonical, not another server's"
    );
    assert_eq!(
        ids(app, "ConceptMap?source=http://snomed.info/sct%3Ffhir_vs").await,
        v(&["cm-implicit"])
    );
    assert!(ids(app, "ConceptMap?source=http://snomed.info/sct")
        .await
        .is_empty());
    assert_eq!(
        ids(
            app,
            "ClaimResponse?request=http://www.example.com/fhir/oralhealthclaim/15476"
        )
        .await,
        v(&["cr-partner"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?_profile=http://example.org/fhir/StructureDefinition/weight"
        )
        .await,
        v(&["obs-profiled"])
    );
    assert_eq!(
        ids(
            app,
            "Observation?_source=http://example.org/feeds/scale%237"
        )
        .await,
        v(&["obs-profiled"])
    );
    assert!(ids(app, "ActivityDefinition?_id:missing=true")
        .await
        .is_empty());
    assert_eq!(
        ids(app, "ActivityDefinition?_id:missing=false").await.len(),
        3
    );
    assert!(ids(app, "ActivityDefinition?_lastUpdated:missing=true")
        .await
        .is_empty());
    let (s, _) = app.get("ActivityDefinition?_id:missing=maybe").await;
    assert_eq!(s, 400);

    // the CapabilityStatement lists the common parameters on every type
    let (s, cs) = app.get("metadata").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap()["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for common in [
        "_id",
        "_lastUpdated",
        "_profile",
        "_security",
        "_source",
        "_tag",
    ] {
        assert!(names.contains(&common), "{common} missing from {names:?}");
    }
}

/// MolecularSequence coordinates: a chromosome (or reference sequence) and the start and end of one variant
/// (or the window), both numbers on the same variant.
async fn molecular_sequence_coordinates(app: &TestApp) {
    let chromosome = |c: &str| coding("http://terminology.hl7.org/CodeSystem/chromosome-human", c);
    let sequence = |id: &str, chr: &str, window: (i64, i64), variants: &[(i64, i64)]| {
        let variants: Vec<Value> = variants
            .iter()
            .map(|(s, e)| json!({"start": s, "end": e, "observedAllele": "T", "referenceAllele": "A"}))
            .collect();
        json!({"resourceType": "MolecularSequence", "id": id, "type": "dna", "coordinateSystem": 0,
            "referenceSeq": {"chromosome": chromosome(chr), "genomeBuild": "GRCh38",
                "referenceSeqId": coding("http://www.ncbi.nlm.nih.gov/nuccore", "NC_000001.11"),
                "windowStart": window.0, "windowEnd": window.1},
            "variant": variants})
    };
    // ms-split: one variant starts after 150 and another ends before 120, but no single variant does both
    put(app, sequence("ms-1", "1", (100, 200), &[(120, 121)])).await;
    put(
        app,
        sequence("ms-split", "1", (100, 200), &[(160, 161), (110, 111)]),
    )
    .await;
    put(app, sequence("ms-2", "2", (100, 200), &[(120, 121)])).await;

    let q = "MolecularSequence?chromosome-variant-coordinate=";
    assert_eq!(ids(app, &format!("{q}1$ge120$le121")).await, v(&["ms-1"]));
    assert_eq!(
        ids(app, &format!("{q}1$gt100$lt200")).await,
        v(&["ms-1", "ms-split"])
    );
    assert!(
        ids(app, &format!("{q}1$gt150$lt120")).await.is_empty(),
        "start and end must come from the same variant"
    );
    assert_eq!(
        ids(
            app,
            &format!("{q}http://terminology.hl7.org/CodeSystem/chromosome-human|2$120$121")
        )
        .await,
        v(&["ms-2"])
    );
    assert_eq!(
        ids(
            app,
            "MolecularSequence?chromosome-window-coordinate=1$100$200"
        )
        .await,
        v(&["ms-1", "ms-split"])
    );
    assert_eq!(
        ids(
            app,
            "MolecularSequence?referenceseqid-variant-coordinate=NC_000001.11$lt115$lt115"
        )
        .await,
        v(&["ms-split"])
    );
    assert_eq!(
        ids(app, "MolecularSequence?referenceseqid-window-coordinate=NC_000001.11$eq100$ge200,NC_000001.11$999$999").await,
        v(&["ms-1", "ms-2", "ms-split"])
    );
    let (s, _) = app.get(&format!("{q}1$100")).await;
    assert_eq!(s, 400, "three components are needed");
    let (s, _) = app.get(&format!("{q}1$x$200")).await;
    assert_eq!(s, 400);
}

/// `_id:not`: every resource of the type but those ids; several values exclude them all; it combines with
/// other parameters and inside a chain.
async fn id_not(app: &TestApp) {
    for id in ["o1", "o2", "o3"] {
        put(app, observation(id, "718-7")).await;
    }
    put(app, observation("o4", "2093-3")).await;
    put(app, json!({"resourceType": "Patient", "id": "p1"})).await;
    put(app, json!({"resourceType": "Patient", "id": "p2"})).await;
    assert_eq!(
        ids(app, "Observation?_id:not=o2").await,
        v(&["o1", "o3", "o4"])
    );
    assert_eq!(
        ids(app, "Observation?_id:not=o2,o3").await,
        v(&["o1", "o4"])
    );
    assert_eq!(
        ids(app, "Observation?_id:not=o1&_id:not=o4").await,
        v(&["o2", "o3"])
    );
    assert_eq!(
        ids(app, &format!("Observation?_id:not=o1&code={LOINC}|718-7")).await,
        v(&["o2", "o3"])
    );
    assert_eq!(
        ids(app, "Observation?_id:not=nothing-has-this").await.len(),
        4
    );
    assert_eq!(ids(app, "Observation?subject._id:not=p1").await, v(&[]));
    assert_eq!(
        ids(app, "Observation?subject._id:not=p2").await,
        v(&["o1", "o2", "o3", "o4"])
    );
    assert_eq!(ids(app, "Patient?_id:not=p1").await, v(&["p2"]));
}

/// `Location.near`: great-circle distance from a point (R4 4.0.1 `latitude|longitude|distance|units`). The
/// expected sets come from distances worked out with the haversine formula (mean earth radius 6,371.0088 km):
/// l2 is 5.00 km north of the centre, l3 7.23 km east, l4 11.12 km north, l5 111.2 km north; l6 and l7 lie
/// 2.22 km apart across the antimeridian.
async fn location_near(app: &TestApp) {
    let at = |id: &str, lat: f64, lon: f64| {
        json!({"resourceType": "Location", "id": id, "name": format!("Site {id}"),
               "position": {"latitude": lat, "longitude": lon}})
    };
    for l in [
        at("l1", 49.44, 7.77),
        at("l2", 49.485, 7.77),
        at("l3", 49.44, 7.87),
        at("l4", 49.54, 7.77),
        at("l5", 50.44, 7.77),
        at("l6", 0.0, 179.99),
        at("l7", 0.0, -179.99),
        json!({"resourceType": "Location", "id": "l8", "name": "No position"}),
    ] {
        put(app, l).await;
    }
    let near = |q: &str| format!("Location?near={}", q.replace('|', "%7C"));
    assert_eq!(ids(app, &near("49.44|7.77|6|km")).await, v(&["l1", "l2"]));
    assert_eq!(
        ids(app, &near("49.44|7.77|8|km")).await,
        v(&["l1", "l2", "l3"])
    );
    assert_eq!(
        ids(app, &near("49.44|7.77|8000|m")).await,
        v(&["l1", "l2", "l3"])
    );
    assert_eq!(ids(app, &near("49.44|7.77|5000|m")).await, v(&["l1"]));
    // 7 international miles = 11.27 km
    assert_eq!(
        ids(app, &near("49.44|7.77|7|[mi_i]")).await,
        v(&["l1", "l2", "l3", "l4"])
    );
    // no units: km; no distance: 10 km
    assert_eq!(
        ids(app, &near("49.44|7.77|112")).await,
        v(&["l1", "l2", "l3", "l4", "l5"])
    );
    assert_eq!(ids(app, &near("49.44|7.77")).await, v(&["l1", "l2", "l3"]));
    assert_eq!(ids(app, &near("0|179.99|3|km")).await, v(&["l6", "l7"]));
    assert_eq!(ids(app, &near("0|-179.99|1|km")).await, v(&["l7"]));
    // combined with another parameter, and OR of two points
    assert_eq!(
        ids(app, &format!("{}&name=site%20l2", near("49.44|7.77|6|km"))).await,
        v(&["l2"])
    );
    assert_eq!(
        ids(
            app,
            &format!("{},0%7C179.99%7C1%7Ckm", near("49.44|7.77|1|km"))
        )
        .await,
        v(&["l1", "l6"])
    );
    for bad in [
        "91|0|1|km",
        "1|2|3|furlongs",
        "abc",
        "1|2|-3|km",
        "1",
        "1|2|3|km|x",
    ] {
        let (s, b) = app.get(&near(bad)).await;
        assert_eq!(s, 400, "near={bad}: {b}");
        assert_eq!(b["resourceType"], "OperationOutcome");
    }
    let (_, cs) = app.get("metadata").await;
    let listed = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Location")
        .unwrap()["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "near" && p["type"] == "special");
    assert!(listed);
}

/// A date parameter over a `string` choice (`CarePlan.activity.detail.scheduled[x]`): a string written as a
/// FHIR dateTime is that date (the official example CarePlan/f001 schedules "2011-06-27T09:30:10+01:00",
/// 08:30:10 UTC); free text is no date, so for the parameter it is missing.
async fn dates_in_string_choices(app: &TestApp) {
    let plan = |id: &str, detail: Value| {
        json!({"resourceType": "CarePlan", "id": id, "status": "active", "intent": "plan",
               "subject": {"reference": "Patient/p1"}, "activity": [{"detail": detail}]})
    };
    put(app, json!({"resourceType": "Patient", "id": "p1"})).await;
    put(
        app,
        plan(
            "cp1",
            json!({"status": "completed", "scheduledString": "2011-06-27T09:30:10+01:00"}),
        ),
    )
    .await;
    put(
        app,
        plan(
            "cp2",
            json!({"status": "scheduled", "scheduledString": "every morning"}),
        ),
    )
    .await;
    put(app, plan("cp3", json!({"status": "scheduled", "scheduledPeriod": {"start": "2011-07-07", "end": "2011-07-08"}}))).await;
    put(
        app,
        json!({"resourceType": "CarePlan", "id": "cp4", "status": "draft", "intent": "plan",
                    "subject": {"reference": "Patient/p1"}}),
    )
    .await;
    assert_eq!(
        ids(app, "CarePlan?activity-date=2011-06-27").await,
        v(&["cp1"])
    );
    assert_eq!(
        ids(app, "CarePlan?activity-date=2011").await,
        v(&["cp1", "cp3"])
    );
    assert_eq!(
        ids(app, "CarePlan?activity-date=ge2011-07-01").await,
        v(&["cp3"])
    );
    assert_eq!(
        ids(app, "CarePlan?activity-date=lt2011-06-27T08:30:10Z").await,
        v(&[])
    );
    assert_eq!(
        ids(app, "CarePlan?activity-date=le2011-06-27T08:30:10Z").await,
        v(&["cp1"])
    );
    assert_eq!(
        ids(app, "CarePlan?activity-date:missing=false").await,
        v(&["cp1", "cp3"])
    );
    assert_eq!(
        ids(app, "CarePlan?activity-date:missing=true").await,
        v(&["cp2", "cp4"])
    );
    let (s, b) = app
        .get("CarePlan?_sort=activity-date&activity-date:missing=false")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(page_ids(&b), vec!["cp1".to_string(), "cp3".to_string()]);
    let (s, b) = app
        .get("CarePlan?_sort=-activity-date&activity-date:missing=false")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(page_ids(&b), vec!["cp3".to_string(), "cp1".to_string()]);
}

on_both_backends!(
    dates_in_string_choices,
    location_near,
    id_not,
    molecular_sequence_coordinates,
    canonical_and_external_references,
    ucum_units_compare_across_prefixes,
    composite_quantities_stay_on_one_component,
    composite_concepts_dates_strings_and_references,
    composite_errors,
    identifier_of_type,
    token_in_and_not_in_value_sets,
    paging_backwards,
    paging_backwards_when_sorted,
);
