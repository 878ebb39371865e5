//! Tests of search-value extraction. Expected values are written from the FHIR R4 search rules
//! (https://hl7.org/fhir/R4/search.html), not copied from the code's output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use super::*;
use crate::index::IndexValue;

const SEC: i64 = 1_000_000;
const DAY: i64 = 86_400 * SEC;
const UCUM: &str = "http://unitsofmeasure.org";

fn values(resource: &Value, code: &str) -> Vec<IndexValue> {
    extract_all(resource)
        .into_iter()
        .filter(|e| e.code == code)
        .map(|e| e.value)
        .collect()
}

fn s(normalized: &str, exact: &str) -> IndexValue {
    IndexValue::String {
        normalized: normalized.into(),
        exact: exact.into(),
    }
}

fn tok(system: Option<&str>, code: &str, text: Option<&str>) -> IndexValue {
    IndexValue::Token {
        system: system.map(Into::into),
        code: code.into(),
        text: text.map(Into::into),
    }
}

fn rf(t: &str, id: &str, url: Option<&str>) -> IndexValue {
    IndexValue::Reference {
        target_type: Some(t.into()),
        target_id: Some(id.into()),
        url: url.map(Into::into),
    }
}

fn date(low: i64, high: i64) -> IndexValue {
    IndexValue::Date { low, high }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 || a == b
}

/// Compare a quantity or number with tolerance on the floating-point bounds.
fn assert_numeric(v: &IndexValue, value: f64, low: f64, high: f64) {
    let (v0, l0, h0) = match v {
        IndexValue::Number { value, low, high }
        | IndexValue::Quantity {
            value, low, high, ..
        } => (*value, *low, *high),
        other => panic!("not numeric: {other:?}"),
    };
    assert!(
        close(v0, value) && close(l0, low) && close(h0, high),
        "{v:?} != {value} [{low}, {high})"
    );
}

fn quantity_units(v: &IndexValue) -> (Option<&str>, Option<&str>, Option<&str>) {
    match v {
        IndexValue::Quantity {
            system, code, unit, ..
        } => (system.as_deref(), code.as_deref(), unit.as_deref()),
        other => panic!("not a quantity: {other:?}"),
    }
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "bw-1",
        "meta": {
            "lastUpdated": "2024-05-01T12:00:00Z",
            "tag": [{"system": "http://example.org/tags", "code": "synthetic"}],
            "profile": ["http://hl7.org/fhir/StructureDefinition/bodyweight"]
        },
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}], "text": "Weight"},
        "subject": {"reference": "Patient/p1", "display": "Jane"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2020-03-04T10:00:00+02:00",
        "performer": [
            {"reference": "https://other.example/fhir/Practitioner/dr-7/_history/3"},
            {"reference": "#c1"},
            {"identifier": {"system": "http://example.org/staff", "value": "s-9"}}
        ],
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": UCUM, "code": "kg"}
    })
}

#[test]
fn observation_subject_code_date_and_value() {
    let obs = observation();
    assert_eq!(values(&obs, "subject"), vec![rf("Patient", "p1", None)]);
    assert_eq!(values(&obs, "patient"), vec![rf("Patient", "p1", None)]);
    assert_eq!(values(&obs, "encounter"), vec![rf("Encounter", "e1", None)]);
    assert_eq!(
        values(&obs, "code"),
        vec![tok(Some("http://loinc.org"), "29463-7", Some("Weight"))]
    );
    assert_eq!(
        values(&obs, "category"),
        vec![tok(
            Some("http://terminology.hl7.org/CodeSystem/observation-category"),
            "vital-signs",
            Some("Vital Signs")
        )]
    );
    assert_eq!(values(&obs, "status"), vec![tok(None, "final", None)]);
    // 2020-03-04T10:00:00+02:00 = 2020-03-04T08:00:00Z = 1,583,308,800 s; second precision.
    let t = 1_583_308_800 * SEC;
    assert_eq!(values(&obs, "date"), vec![date(t, t + SEC - 1)]);
    let q = values(&obs, "value-quantity");
    assert_eq!(q.len(), 1);
    assert_numeric(&q[0], 72.5, 72.45, 72.55);
    assert_eq!(quantity_units(&q[0]), (Some(UCUM), Some("kg"), Some("kg")));
    assert!(values(&obs, "value-concept").is_empty());
    // Absolute reference (another server's): matched by its whole text, not a local Type/id; `#c1` is not
    // indexed; an identifier-only reference is indexed as a token (for `performer:identifier=...`), never as
    // a reference.
    let external = "https://other.example/fhir/Practitioner/dr-7/_history/3";
    assert_eq!(
        values(&obs, "performer"),
        vec![
            IndexValue::Reference {
                target_type: None,
                target_id: Some(external.into()),
                url: Some(external.into()),
            },
            tok(Some("http://example.org/staff"), "s-9", None)
        ]
    );
}

#[test]
fn resource_level_parameters() {
    let obs = observation();
    assert_eq!(values(&obs, "_id"), vec![tok(None, "bw-1", None)]);
    // 2024-05-01T12:00:00Z = 1,714,564,800 s.
    let t = 1_714_564_800 * SEC;
    assert_eq!(values(&obs, "_lastUpdated"), vec![date(t, t + SEC - 1)]);
    assert_eq!(
        values(&obs, "_tag"),
        vec![tok(Some("http://example.org/tags"), "synthetic", None)]
    );
    assert_eq!(
        values(&obs, "_profile"),
        vec![IndexValue::Uri {
            value: "http://hl7.org/fhir/StructureDefinition/bodyweight".into()
        }]
    );
    assert!(values(&obs, "_security").is_empty());
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"type": {"text": "MRN"}, "system": "http://hospital.example/mrn", "value": "MRN-001"}],
        "active": true,
        "name": [
            {"use": "official", "family": "Müller", "given": ["José", "Maria"], "prefix": ["Dr."]},
            {"use": "nickname", "given": ["José"]}
        ],
        "telecom": [
            {"system": "phone", "value": "+1 555 0100", "use": "home"},
            {"system": "email", "value": "jm@example.org"}
        ],
        "gender": "female",
        "birthDate": "1980-07",
        "deceasedBoolean": false,
        "address": [{"line": ["1 Main St", "Apt 2"], "city": "Springfield", "postalCode": "12345", "country": "US"}],
        "generalPractitioner": [{"reference": "Practitioner/gp1"}]
    })
}

#[test]
fn patient_name_birthdate_identifier_telecom_address() {
    let p = patient();
    assert_eq!(
        values(&p, "name"),
        vec![
            s("muller", "Müller"),
            s("jose", "José"),
            s("maria", "Maria"),
            s("dr.", "Dr.")
        ]
    );
    assert_eq!(values(&p, "family"), vec![s("muller", "Müller")]);
    assert_eq!(
        values(&p, "given"),
        vec![s("jose", "José"), s("maria", "Maria")]
    );
    // 1980-07 covers 1980-07-01T00:00:00Z (331,257,600 s) to the end of July 31.
    let jul1 = 331_257_600 * SEC;
    assert_eq!(
        values(&p, "birthdate"),
        vec![date(jul1, jul1 + 31 * DAY - 1)]
    );
    assert_eq!(
        values(&p, "identifier"),
        vec![tok(
            Some("http://hospital.example/mrn"),
            "MRN-001",
            Some("MRN")
        )]
    );
    assert_eq!(
        values(&p, "telecom"),
        vec![
            tok(None, "+1 555 0100", None),
            tok(None, "jm@example.org", None)
        ]
    );
    assert_eq!(values(&p, "phone"), vec![tok(None, "+1 555 0100", None)]);
    assert_eq!(values(&p, "email"), vec![tok(None, "jm@example.org", None)]);
    assert_eq!(
        values(&p, "address"),
        vec![
            s("1 main st", "1 Main St"),
            s("apt 2", "Apt 2"),
            s("springfield", "Springfield"),
            s("12345", "12345"),
            s("us", "US")
        ]
    );
    assert_eq!(
        values(&p, "address-city"),
        vec![s("springfield", "Springfield")]
    );
    assert_eq!(values(&p, "address-postalcode"), vec![s("12345", "12345")]);
    assert_eq!(values(&p, "gender"), vec![tok(None, "female", None)]);
    assert_eq!(values(&p, "active"), vec![tok(None, "true", None)]);
    assert_eq!(
        values(&p, "general-practitioner"),
        vec![rf("Practitioner", "gp1", None)]
    );
    // `deceased.exists() and deceased != false`: false for deceasedBoolean false, true for a date.
    assert_eq!(values(&p, "deceased"), vec![tok(None, "false", None)]);
    let mut dead = patient();
    dead["deceasedDateTime"] = json!("2023-01-02");
    dead.as_object_mut().unwrap().remove("deceasedBoolean");
    assert_eq!(values(&dead, "deceased"), vec![tok(None, "true", None)]);
    // Patient.deceased as dateTime → the death-date parameter.
    let jan2 = (1_672_531_200 + 86_400) * SEC;
    assert_eq!(
        values(&dead, "death-date"),
        vec![date(jan2, jan2 + DAY - 1)]
    );
}

#[test]
fn partial_dates_and_periods() {
    let enc = |period: Value| json!({"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "period": period});
    // 2021-05-01 starts at 1,619,827,200 s; 2021-05-03T10:30:00Z is 1,620,037,800 s.
    let may1 = 1_619_827_200 * SEC;
    let end = 1_620_037_800 * SEC;
    assert_eq!(
        values(
            &enc(json!({"start": "2021-05-01", "end": "2021-05-03T10:30:00Z"})),
            "date"
        ),
        vec![date(may1, end + SEC - 1)]
    );
    assert_eq!(
        values(&enc(json!({"start": "2021-05-01"})), "date"),
        vec![date(may1, i64::MAX)]
    );
    assert_eq!(
        values(&enc(json!({"end": "2021"})), "date"),
        vec![date(i64::MIN, 1_640_995_200 * SEC - 1)]
    );

    let obs = |effective: (&str, Value)| {
        let mut o =
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
        o[effective.0] = effective.1;
        o
    };
    // "2020" covers 2020-01-01T00:00:00Z .. 2020-12-31T23:59:59.999999Z.
    let y2020 = 1_577_836_800 * SEC;
    let y2021 = 1_609_459_200 * SEC;
    assert_eq!(
        values(&obs(("effectiveDateTime", json!("2020"))), "date"),
        vec![date(y2020, y2021 - 1)]
    );
    // "2020-03": March 2020 (leap year: 60 days after Jan 1), 31 days long.
    let mar = y2020 + 60 * DAY;
    assert_eq!(
        values(&obs(("effectiveDateTime", json!("2020-03"))), "date"),
        vec![date(mar, mar + 31 * DAY - 1)]
    );
    assert_eq!(
        values(
            &obs((
                "effectivePeriod",
                json!({"start": "2020", "end": "2020-03"})
            )),
            "date"
        ),
        vec![date(y2020, mar + 31 * DAY - 1)]
    );
    assert_eq!(
        values(
            &obs(("effectiveTiming", json!({"event": ["2020", "2020-03"]}))),
            "date"
        ),
        vec![date(y2020, y2021 - 1), date(mar, mar + 31 * DAY - 1)]
    );
    // An instant.
    let t = y2020 + 5 * SEC;
    assert_eq!(
        values(
            &obs(("effectiveInstant", json!("2020-01-01T00:00:05Z"))),
            "date"
        ),
        vec![date(t, t + SEC - 1)]
    );
    // Invalid dates are not indexed.
    assert!(values(&obs(("effectiveDateTime", json!("2020-13-45"))), "date").is_empty());
}

#[test]
fn dates_written_in_string_choices() {
    // CarePlan-activity-date is `CarePlan.activity.detail.scheduled` (Timing | Period | string). The official
    // example CarePlan/f001 writes its schedule as the string "2011-06-27T09:30:10+01:00": that instant,
    // 2011-06-27T08:30:10Z = 1,309,163,410 s, to the second.
    let plan = |scheduled: (&str, Value)| {
        let mut detail = json!({"status": "completed"});
        detail[scheduled.0] = scheduled.1;
        json!({"resourceType": "CarePlan", "status": "completed", "intent": "plan",
               "subject": {"reference": "Patient/p1"}, "activity": [{"detail": detail}]})
    };
    let t = 1_309_163_410 * SEC;
    assert_eq!(
        values(
            &plan(("scheduledString", json!("2011-06-27T09:30:10+01:00"))),
            "activity-date"
        ),
        vec![date(t, t + SEC - 1)]
    );
    // Free text is not a date.
    assert!(values(
        &plan(("scheduledString", json!("every morning"))),
        "activity-date"
    )
    .is_empty());
    assert!(values(
        &plan(("scheduledString", json!("2011-02-30"))),
        "activity-date"
    )
    .is_empty());
    // Procedure.performed[x] (clinical-date `date`): "2019-04" is April 2019 (1,554,076,800 s .. 1,556,668,800 s).
    let proc = json!({"resourceType": "Procedure", "status": "completed",
                      "subject": {"reference": "Patient/p1"}, "performedString": "2019-04"});
    assert_eq!(
        values(&proc, "date"),
        vec![date(1_554_076_800 * SEC, 1_556_668_800 * SEC - 1)]
    );
}

#[test]
fn choice_types_pick_the_variant_present() {
    let obs = json!({
        "resourceType": "Observation", "status": "final", "code": {"text": "smoking"},
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "8517006"}], "text": "Ex-smoker"},
        "component": [
            {"code": {"text": "a"}, "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"}},
            {"code": {"text": "b"}, "valueString": "n/a"}
        ]
    });
    assert_eq!(
        values(&obs, "value-concept"),
        vec![tok(
            Some("http://snomed.info/sct"),
            "8517006",
            Some("Ex-smoker")
        )]
    );
    assert!(values(&obs, "value-quantity").is_empty());
    // (Observation.value as string) | (Observation.value as CodeableConcept).text
    assert_eq!(
        values(&obs, "value-string"),
        vec![s("ex-smoker", "Ex-smoker")]
    );
    let cq = values(&obs, "component-value-quantity");
    assert_eq!(cq.len(), 1);
    assert_numeric(&cq[0], 120.0, 119.5, 120.5);
    assert_eq!(quantity_units(&cq[0]), (Some(UCUM), Some("mm[Hg]"), None));

    // Condition.onset[x]: Age → onset-age only; Period → onset-date; string → onset-info.
    let cond = |k: &str, v: Value| {
        let mut c = json!({"resourceType": "Condition", "subject": {"reference": "Patient/p1"}});
        c[k] = v;
        c
    };
    let aged = cond(
        "onsetAge",
        json!({"value": 40, "unit": "a", "system": UCUM, "code": "a"}),
    );
    assert!(values(&aged, "onset-date").is_empty());
    let age = values(&aged, "onset-age");
    assert_eq!(age.len(), 1);
    assert_numeric(&age[0], 40.0, 39.5, 40.5);
    let y2020 = 1_577_836_800 * SEC;
    let periodic = cond("onsetPeriod", json!({"start": "2020-01-01"}));
    assert_eq!(values(&periodic, "onset-date"), vec![date(y2020, i64::MAX)]);
    assert!(values(&periodic, "onset-age").is_empty());
    let texty = cond("onsetString", json!("Childhood"));
    assert_eq!(
        values(&texty, "onset-info"),
        vec![s("childhood", "Childhood")]
    );
    assert!(values(&texty, "onset-date").is_empty());
    // A Range for the age: one entry spanning the low bound's lower edge to the high bound's upper edge.
    let ranged = cond(
        "onsetRange",
        json!({"low": {"value": 18, "unit": "a"}, "high": {"value": 65, "unit": "a"}}),
    );
    let r = values(&ranged, "onset-age");
    assert_eq!(r.len(), 1);
    assert_numeric(&r[0], 18.0, 17.5, 65.5);
}

#[test]
fn resolve_is_filters_references_by_target_type() {
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "Group/g1"}});
    assert!(values(&obs, "patient").is_empty());
    assert_eq!(values(&obs, "subject"), vec![rf("Group", "g1", None)]);
    let abs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "http://elsewhere.example/fhir/Patient/p9"}});
    // `resolve() is Patient` reads the type from the URL; the value stays the whole (external) URL
    let url = "http://elsewhere.example/fhir/Patient/p9";
    assert_eq!(
        values(&abs, "patient"),
        vec![IndexValue::Reference {
            target_type: None,
            target_id: Some(url.into()),
            url: Some(url.into()),
        }]
    );
    // Appointment.participant.actor.where(resolve() is Practitioner)
    let appt = json!({"resourceType": "Appointment", "status": "booked", "participant": [
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        {"actor": {"reference": "Practitioner/dr1"}, "status": "accepted"}
    ]});
    assert_eq!(
        values(&appt, "practitioner"),
        vec![rf("Practitioner", "dr1", None)]
    );
    assert_eq!(values(&appt, "patient"), vec![rf("Patient", "p1", None)]);
    assert_eq!(
        values(&appt, "actor"),
        vec![rf("Patient", "p1", None), rf("Practitioner", "dr1", None)]
    );
}

#[test]
fn numbers_money_canonicals_and_bundles() {
    let risk = json!({"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 0.25}, {"probabilityRange": {"low": {"value": 1}}}]});
    let p = values(&risk, "probability");
    assert_eq!(p.len(), 1);
    assert_numeric(&p[0], 0.25, 0.245, 0.255);

    let seq = json!({"resourceType": "MolecularSequence", "coordinateSystem": 0, "variant": [{"start": 100, "end": 101}]});
    let v = values(&seq, "variant-start");
    assert_eq!(v.len(), 1);
    assert_numeric(&v[0], 100.0, 99.5, 100.5);

    let inv = json!({"resourceType": "Invoice", "status": "issued", "totalNet": {"value": 100.5, "currency": "EUR"}});
    let t = values(&inv, "totalnet");
    assert_eq!(t.len(), 1);
    assert_numeric(&t[0], 100.5, 100.45, 100.55);
    assert_eq!(
        quantity_units(&t[0]),
        (Some("urn:iso:std:iso:4217"), Some("EUR"), None)
    );

    // A canonical for a reference parameter is searched by its URL without the `|version`; only a relative one
    // is a local `Type/id`.
    let pd = json!({"resourceType": "PlanDefinition", "status": "active",
    "library": ["http://example.org/Library/lib-1|1.0"],
    "relatedArtifact": [
        {"type": "depends-on", "resource": "Library/lib-2"},
        {"type": "depends-on", "resource": "http://snomed.info/sct?fhir_vs"},
        {"type": "citation", "resource": "http://example.org/Library/lib-3"}
    ]});
    let canonical = |ty: Option<&str>, id: &str, u: &str| IndexValue::Reference {
        target_type: ty.map(Into::into),
        target_id: Some(id.into()),
        url: Some(u.into()),
    };
    assert_eq!(
        values(&pd, "depends-on"),
        vec![
            canonical(Some("Library"), "lib-2", "Library/lib-2"),
            canonical(
                None,
                "http://snomed.info/sct?fhir_vs",
                "http://snomed.info/sct?fhir_vs"
            ),
            canonical(
                None,
                "http://example.org/Library/lib-1",
                "http://example.org/Library/lib-1|1.0"
            )
        ]
    );
    assert!(values(&pd, "composed-of").is_empty());

    let bundle = json!({"resourceType": "Bundle", "type": "document", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Composition", "id": "c1", "status": "final"}},
        {"resource": {"resourceType": "Patient", "id": "p1"}}
    ]});
    assert_eq!(
        values(&bundle, "composition"),
        vec![rf("Composition", "c1", None)]
    );
    assert_eq!(values(&bundle, "type"), vec![tok(None, "document", None)]);
}

/// Evaluate an ad-hoc expression on a resource, for the evaluator features no R4 expression uses.
fn eval_expr(resource: &Value, src: &str) -> Vec<Value> {
    let expr = parse::parse(src).unwrap();
    let m = model();
    let ty = m.resource_type_of(resource).unwrap();
    eval::evaluate(&expr, resource, ty)
        .into_iter()
        .map(|n| match n.val {
            eval::Val::Json(v) => v.clone(),
            eval::Val::Bool(b) => json!(b),
            eval::Val::Str(s) => json!(s),
            eval::Val::Num(x) => json!(x),
            eval::Val::Resolved(t) => json!({ "resolved": t }),
        })
        .collect()
}

#[test]
fn evaluator_functions() {
    let p = json!({"resourceType": "Patient", "id": "p1",
        "extension": [
            {"url": "http://example.org/birthPlace", "valueAddress": {"city": "Lyon"}},
            {"url": "http://example.org/other", "valueString": "x"}
        ],
        "name": [{"family": "A", "given": ["B", "C"]}, {"family": "D"}],
        "contained": [{"resourceType": "Practitioner", "id": "dr", "name": [{"family": "Who"}]}]});
    let lyon = json!({"city": "Lyon"});
    assert_eq!(
        eval_expr(
            &p,
            "Patient.extension('http://example.org/birthPlace').value"
        ),
        vec![lyon.clone()]
    );
    assert_eq!(
        eval_expr(
            &p,
            "Patient.extension.where(url='http://example.org/birthPlace').value.city"
        ),
        vec![json!("Lyon")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.extension.value.ofType(Address)"),
        vec![lyon]
    );
    assert_eq!(
        eval_expr(&p, "Patient.extension.value.ofType(string)"),
        vec![json!("x")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.name.first().given"),
        vec![json!("B"), json!("C")]
    );
    assert_eq!(eval_expr(&p, "Patient.name[1].family"), vec![json!("D")]);
    assert_eq!(eval_expr(&p, "Patient.name.given[1]"), vec![json!("C")]);
    assert_eq!(
        eval_expr(&p, "Patient.name.last().family"),
        vec![json!("D")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.birthDate.exists()"),
        vec![json!(false)]
    );
    assert_eq!(
        eval_expr(&p, "Patient.name.exists(family = 'D')"),
        vec![json!(true)]
    );
    assert_eq!(
        eval_expr(
            &p,
            "Patient.name.where(family = 'A' or family = 'D').family"
        ),
        vec![json!("A"), json!("D")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.name.where(family = 'A' and given = 'B')"),
        Vec::<Value>::new()
    );
    assert_eq!(
        eval_expr(&p, "Patient.name.where(family != 'A').family"),
        vec![json!("D")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.contained.name.family"),
        vec![json!("Who")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.contained.ofType(Practitioner).id"),
        vec![json!("dr")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.contained is Practitioner"),
        vec![json!(true)]
    );
    assert_eq!(eval_expr(&p, "Observation.id"), Vec::<Value>::new());
    assert_eq!(
        eval_expr(&p, "Resource.id | DomainResource.id"),
        vec![json!("p1")]
    );
    assert_eq!(eval_expr(&p, "%resource.id"), vec![json!("p1")]);
    assert_eq!(
        eval_expr(&p, "Patient.name.family | Patient.name.family"),
        vec![json!("A"), json!("D")]
    );
    assert_eq!(
        eval_expr(&p, "Patient.name.family.empty().not()"),
        vec![json!(true)]
    );
}

#[test]
fn every_non_composite_expression_parses() {
    let reg = registry();
    let mut with_expr = 0;
    let mut supported = 0;
    let mut failures = Vec::new();
    for sp in &reg.search_params {
        let Some(src) = sp.expression.as_deref() else {
            continue;
        };
        with_expr += 1;
        if is_supported(src) {
            supported += 1;
        } else if !matches!(
            sp.kind,
            SearchParamType::Composite | SearchParamType::Special
        ) {
            failures.push(format!("{} {}: {:?}", sp.url, src, check(src)));
        }
    }
    println!(
        "supported expressions: {supported} of {with_expr} with an expression ({} parameters)",
        reg.search_params.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every path in every expression names elements the model knows, so no parameter is silently dead because
/// of a typo or a choice element the walk cannot follow.
#[test]
fn every_expression_path_exists_in_the_model() {
    let reg = registry();
    let m = model();
    let mut problems = Vec::new();
    for rt in reg.resource_types() {
        let plan = &plans()[rt.as_str()];
        for p in &plan.params {
            check_paths(
                m,
                &p.expr,
                &[plan.ty],
                &mut problems,
                &format!("{rt}.{}", p.code),
            );
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The checker itself notices a wrong name.
    let patient = m.type_id("Patient").unwrap();
    check_paths(
        m,
        &parse::parse("Patient.nmae.family").unwrap(),
        &[patient],
        &mut problems,
        "typo",
    );
    assert_eq!(problems.len(), 1);
}

fn check_paths(
    m: &crate::model::Model,
    e: &Expr,
    input: &[TypeId],
    problems: &mut Vec<String>,
    at: &str,
) -> Vec<TypeId> {
    use parse::Func;
    match e {
        Expr::This => input.to_vec(),
        Expr::Root | Expr::Lit(_) => Vec::new(),
        Expr::Child(inner, name) => {
            let base = check_paths(m, inner, input, problems, at);
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                return base.into_iter().filter(|t| m.is_a(*t, name)).collect();
            }
            let out: Vec<TypeId> = base
                .iter()
                .filter_map(|t| m.get(*t).children.get(name.as_str()))
                .flat_map(|c| c.variants.iter().map(|v| v.ty))
                .collect();
            if !base.is_empty() && out.is_empty() {
                problems.push(format!("{at}: no element {name}"));
            }
            out
        }
        Expr::Call(inner, f) => {
            let base = check_paths(m, inner, input, problems, at);
            match f {
                Func::Where(c) | Func::Exists(Some(c)) => {
                    for t in &base {
                        check_paths(m, c, &[*t], problems, at);
                    }
                    base
                }
                Func::OfType(t) | Func::As(t) => {
                    let out: Vec<TypeId> = base.iter().copied().filter(|b| m.is_a(*b, t)).collect();
                    if !base.is_empty() && out.is_empty() {
                        problems.push(format!("{at}: nothing is a {t}"));
                    }
                    out
                }
                Func::First | Func::Last => base,
                _ => Vec::new(),
            }
        }
        Expr::Index(inner, _) => check_paths(m, inner, input, problems, at),
        Expr::As(inner, t) => {
            let base = check_paths(m, inner, input, problems, at);
            let out: Vec<TypeId> = base.iter().copied().filter(|b| m.is_a(*b, t)).collect();
            if !base.is_empty() && out.is_empty() {
                problems.push(format!("{at}: nothing is a {t}"));
            }
            out
        }
        Expr::Union(items) => items
            .iter()
            .flat_map(|i| check_paths(m, i, input, problems, at))
            .collect(),
        Expr::Is(inner, _) => {
            check_paths(m, inner, input, problems, at);
            Vec::new()
        }
        Expr::Eq { left, right, .. } | Expr::And(left, right) | Expr::Or(left, right) => {
            check_paths(m, left, input, problems, at);
            check_paths(m, right, input, problems, at);
            Vec::new()
        }
    }
}

#[test]
fn bare_resources_of_every_type_extract_without_panicking() {
    for rt in registry().resource_types() {
        let entries = extract_all(&json!({"resourceType": rt, "id": "x1"}));
        assert!(entries.iter().any(|e| e.code == "_id"), "{rt}");
    }
    assert!(extract_all(&json!({"resourceType": "NotAType"})).is_empty());
    assert!(extract_all(&json!([1, 2])).is_empty());
}

#[test]
fn extract_param_matches_extract_all() {
    let obs = observation();
    assert_eq!(extract_param(&obs, "code"), values(&obs, "code"));
    assert!(extract_param(&obs, "no-such-param").is_empty());
}

/// Rough timing, printed not asserted (timings on shared CI machines are noise). The debug build is several
/// times slower than release: `cargo test -p continuum-fhir --release extraction_timing -- --nocapture`.
#[test]
fn extraction_timing() {
    let obs = observation();
    let pat = patient();
    let _ = extract_all(&obs);
    for (name, r) in [("Observation", &obs), ("Patient", &pat)] {
        let n: u32 = 500;
        let start = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..n {
            total += extract_all(r).len();
        }
        let per = start.elapsed() / n;
        println!(
            "{name}: {per:?} per extract_all ({} entries)",
            total / n as usize
        );
    }
}

fn quantity_value(v: &IndexValue) -> f64 {
    match v {
        IndexValue::Quantity { value, .. } => *value,
        other => panic!("not a quantity: {other:?}"),
    }
}

#[test]
fn composites_pair_components_of_the_same_occurrence_only() {
    use crate::index::{composite_code, CompositeKey};
    let component = |code: &str, value: f64| {
        json!({"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
               "valueQuantity": {"value": value, "system": UCUM, "code": "mm[Hg]"}})
    };
    let bp = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "component": [component("8480-6", 150.0), component("8462-4", 85.0)]});
    let key = |k| composite_code("component-code-value-quantity", k);
    let systolic = values(
        &bp,
        &key(CompositeKey::SystemCode("http://loinc.org", "8480-6")),
    );
    assert_eq!(systolic.len(), 1);
    assert!(close(quantity_value(&systolic[0]), 150.0));
    let diastolic = values(&bp, &key(CompositeKey::Code("8462-4")));
    assert_eq!(diastolic.len(), 1);
    assert!(close(quantity_value(&diastolic[0]), 85.0));
    // `|code` answers for neither (the codes have a system)
    assert!(values(&bp, &key(CompositeKey::NoSystem("8480-6"))).is_empty());
    // the panel code has no value: nothing for code-value-quantity
    assert!(extract_all(&bp)
        .iter()
        .all(|e| !e.code.starts_with("code-value-quantity$")));
    // combo is searched through code-value-quantity and component-code-value-quantity: no rows of its own
    assert!(extract_all(&bp)
        .iter()
        .all(|e| !e.code.starts_with("combo-code-value-")));
    // two keys per token with a system, one row each
    assert_eq!(
        extract_all(&bp)
            .iter()
            .filter(|e| e.code.starts_with("component-code-value-quantity$"))
            .count(),
        4
    );
}

#[test]
fn combo_composites_are_unions_of_their_parts() {
    let r = registry();
    let parts = |code: &str| {
        r.search_param("Observation", code)
            .and_then(composite_union_of)
            .map(<[String]>::to_vec)
    };
    assert_eq!(
        parts("combo-code-value-quantity"),
        Some(vec![
            "code-value-quantity".to_string(),
            "component-code-value-quantity".to_string()
        ])
    );
    assert_eq!(
        parts("combo-code-value-concept"),
        Some(vec![
            "code-value-concept".to_string(),
            "component-code-value-concept".to_string()
        ])
    );
    assert_eq!(parts("code-value-quantity"), None);
    let unions = r
        .search_params
        .iter()
        .filter(|p| composite_union_of(p).is_some())
        .count();
    assert_eq!(unions, 2);
}

#[test]
fn composite_component_types_follow_the_component_expressions() {
    let r = registry();
    let kinds = |ty: &str, code: &str| {
        r.search_param(ty, code)
            .and_then(composite_components)
            .map(|k| k.to_vec())
    };
    use SearchParamType as T;
    assert_eq!(
        kinds("Observation", "code-value-quantity"),
        Some(vec![T::Token, T::Quantity])
    );
    assert_eq!(
        kinds("Observation", "code-value-date"),
        Some(vec![T::Token, T::Date])
    );
    // R4 lists this one's component definitions crosswise: `code` is the token, `target` the reference
    assert_eq!(
        kinds("DocumentReference", "relationship"),
        Some(vec![T::Token, T::Reference])
    );
    assert_eq!(
        kinds("MolecularSequence", "chromosome-variant-coordinate"),
        None
    );
    assert_eq!(kinds("Observation", "code"), None);
    let supported = r
        .search_params
        .iter()
        .filter(|p| p.kind == T::Composite && composite_components(p).is_some())
        .count();
    // 46 composites in R4, of which the four MolecularSequence coordinates have three components
    assert_eq!(supported, 42);
}

#[test]
fn identifiers_index_their_type_for_of_type() {
    let p = json!({"resourceType": "Patient", "identifier": [
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
         "system": "urn:x", "value": "123"},
        {"system": "urn:y", "value": "456"}]});
    assert_eq!(
        values(&p, "identifier:of-type"),
        vec![tok(
            Some("http://terminology.hl7.org/CodeSystem/v2-0203"),
            "MR|123",
            None
        )]
    );
}

#[test]
fn value_sets_index_their_own_expansion() {
    use crate::index::{VS_CODE, VS_NOT_CODE, VS_SYSTEM, VS_UNEXPANDABLE};
    let vs = json!({"resourceType": "ValueSet", "status": "active", "compose": {
        "include": [{"system": "http://loinc.org", "concept": [{"code": "1-8"}, {"code": "2-6"}]},
                    {"system": "http://snomed.info/sct"}],
        "exclude": [{"system": "http://snomed.info/sct", "concept": [{"code": "9"}]}]}});
    assert_eq!(
        values(&vs, VS_CODE),
        vec![
            tok(Some("http://loinc.org"), "1-8", None),
            tok(Some("http://loinc.org"), "2-6", None)
        ]
    );
    assert_eq!(
        values(&vs, VS_SYSTEM),
        vec![IndexValue::Uri {
            value: "http://snomed.info/sct".into()
        }]
    );
    assert_eq!(
        values(&vs, VS_NOT_CODE),
        vec![tok(Some("http://snomed.info/sct"), "9", None)]
    );
    assert!(values(&vs, VS_UNEXPANDABLE).is_empty());
    // a filter needs a terminology service, unless a complete expansion is stored
    let mut filtered = json!({"resourceType": "ValueSet", "status": "active", "compose": {
        "include": [{"system": "http://snomed.info/sct",
                     "filter": [{"property": "concept", "op": "is-a", "value": "1"}]}]}});
    assert_eq!(values(&filtered, VS_UNEXPANDABLE).len(), 1);
    assert!(values(&filtered, VS_SYSTEM).is_empty());
    assert!(crate::index::value_set_expandable(&filtered)
        .unwrap_err()
        .contains("filter"));
    filtered["expansion"] = json!({"timestamp": "2025-01-01", "total": 1,
        "contains": [{"system": "http://snomed.info/sct", "code": "2"}]});
    assert!(values(&filtered, VS_UNEXPANDABLE).is_empty());
    assert_eq!(
        values(&filtered, VS_CODE),
        vec![tok(Some("http://snomed.info/sct"), "2", None)]
    );
    // a paged expansion is incomplete
    filtered["expansion"]["total"] = json!(40);
    assert_eq!(values(&filtered, VS_UNEXPANDABLE).len(), 1);
}

#[test]
fn single_valued_dates_are_paths_of_non_repeating_elements() {
    // one Period, one date, one dateTime: at most one row per resource
    assert!(single_date("Encounter", "date"));
    assert!(single_date("Patient", "birthdate"));
    assert!(single_date("Condition", "onset-date"));
    assert!(single_date("Immunization", "date"));
    assert!(single_date("Appointment", "date"));
    // a Timing (one row per event), a repeating element, an extension, a parameter of another type
    assert!(!single_date("Observation", "date"));
    assert!(!single_date("Goal", "target-date"));
    assert!(!single_date("Encounter", "location-period"));
    assert!(single_date("Patient", "death-date"));
    assert!(!single_date("Encounter", "length"));
    assert!(!single_date("Encounter", "no-such-parameter"));
}
