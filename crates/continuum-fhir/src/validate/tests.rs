//! Validation tests: small hand-written synthetic resources (no real patient data), valid ones and one per
//! failure kind, with the expected FHIRPath location of each issue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};

use super::*;

fn assert_valid(r: &Value) {
    if let Err(issues) = validate_resource(r) {
        panic!("expected valid, got {issues:#?}");
    }
}

/// The (code, expression) of every issue.
fn problems(r: &Value) -> Vec<(IssueType, String)> {
    match validate_resource(r) {
        Ok(()) => Vec::new(),
        Err(issues) => issues
            .into_iter()
            .map(|i| (i.code, i.expression.unwrap_or_default()))
            .collect(),
    }
}

fn one(r: &Value, code: IssueType, expr: &str) {
    assert_eq!(problems(r), vec![(code, expr.to_string())]);
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "2", "lastUpdated": "2024-01-15T09:30:00.123+01:00",
                 "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
                 "tag": [{"system": "http://example.org/tags", "code": "synthetic"}]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Doe</div>"},
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/birth-city", "valueString": "Springfield"}],
        "identifier": [{"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "http://hospital.example/mrn", "value": "12345"}],
        "active": true,
        "name": [{"use": "official", "family": "Doe", "given": ["Jane", "Q"]}],
        "telecom": [{"system": "phone", "value": "555-0100", "use": "home", "rank": 1}],
        "gender": "female",
        "birthDate": "1984-02-29",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1984-02-29T14:35:00-05:00"}]},
        "deceasedBoolean": false,
        "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701",
                     "period": {"start": "2010"}}],
        "maritalStatus": {"text": "married"},
        "multipleBirthInteger": 2,
        "contact": [{"relationship": [{"text": "sister"}], "name": {"family": "Doe", "given": ["Ann"]}}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]}, "preferred": true}],
        "generalPractitioner": [{"reference": "#gp"}],
        "contained": [{"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Who"}]}],
        "managingOrganization": {"reference": "Organization/org-1", "display": "General Hospital"}
    })
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "bp-1",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectivePeriod": {"start": "2024-03-01T08:00:00Z", "end": "2024-03-01T08:05:00Z"},
        "issued": "2024-03-01T08:06:00.000Z",
        "performer": [{"reference": "Practitioner/dr-1"}],
        "interpretation": [{"text": "normal"}],
        "referenceRange": [{"low": {"value": 90, "unit": "mmHg"}, "high": {"value": 120.5, "unit": "mmHg"}}],
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 118, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
             "referenceRange": [{"text": "below 120"}]},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "dataAbsentReason": {"text": "not measured"}}
        ]
    })
}

#[test]
fn valid_resources_pass() {
    assert_valid(&patient());
    assert_valid(&observation());
    assert_valid(&json!({
        "resourceType": "Encounter", "id": "enc-1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": "2024-03-01T08:00:00Z", "end": "2024-03-01T09:00:00Z"},
        "length": {"value": 60, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
        "participant": [{"individual": {"reference": "Practitioner/dr-1"}}],
        "location": [{"location": {"reference": "Location/loc-1"}, "status": "completed"}]
    }));
    assert_valid(&json!({
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]},
        "subject": {"reference": "Patient/pat-1"}, "authoredOn": "2024-03-01",
        "dosageInstruction": [{"text": "1 tablet daily", "timing": {"repeat": {
            "boundsPeriod": {"start": "2024-03-01"}, "frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}],
        "dispenseRequest": {"numberOfRepeatsAllowed": 0, "quantity": {"value": 30}}
    }));
    assert_valid(&json!({
        "resourceType": "Questionnaire", "status": "draft",
        "item": [{"linkId": "1", "type": "group", "text": "About you",
                  "item": [{"linkId": "1.1", "type": "string", "text": "Name", "required": true},
                           {"linkId": "1.2", "type": "integer", "item": [{"linkId": "1.2.1", "type": "display", "text": "years"}]}]}]
    }));
    assert_valid(&json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "resource": patient(),
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation(), "request": {"method": "PUT", "url": "Observation/bp-1"}}
        ]
    }));
    assert_valid(&json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "count", "valueInteger": 5},
                      {"name": "subject", "resource": {"resourceType": "Patient", "active": false}},
                      {"name": "group", "part": [{"name": "x", "valueCode": "a b"}]}]
    }));
    // Primitive arrays with a null placeholder where `_given` carries the extension.
    let mut p = patient();
    p["name"] = json!([{"given": ["Jane", null], "_given": [null, {"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "IN"}]}]}]);
    assert_valid(&p);
    // A primitive with only an extension (data absent) satisfies a required element.
    let mut o = observation();
    o.as_object_mut().unwrap().remove("status");
    o["_status"] = json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]});
    assert_valid(&o);
}

#[test]
fn the_top_level_must_be_a_concrete_resource() {
    assert_eq!(
        problems(&json!([])),
        vec![(IssueType::Structure, String::new())]
    );
    one(&json!({"id": "x"}), IssueType::Required, "resourceType");
    one(
        &json!({"resourceType": 7}),
        IssueType::Structure,
        "resourceType",
    );
    assert_eq!(
        problems(&json!({"resourceType": "Unicorn"})),
        vec![(IssueType::Structure, String::new())]
    );
    assert_eq!(
        problems(&json!({"resourceType": "HumanName"})),
        vec![(IssueType::Structure, String::new())]
    );
    assert_eq!(
        problems(&json!({"resourceType": "DomainResource"})),
        vec![(IssueType::Structure, String::new())]
    );
    assert_eq!(
        problems(&json!({"resourceType": "Resource"})),
        vec![(IssueType::Structure, String::new())]
    );
    let diag = validate_resource(&json!({"resourceType": "Resource"})).unwrap_err();
    assert!(
        diag[0].diagnostics.contains("not a known") || diag[0].diagnostics.contains("abstract")
    );
}

#[test]
fn unknown_elements_and_wrong_choice_types() {
    let mut p = patient();
    p["nickname"] = json!("JJ");
    one(&p, IssueType::Structure, "Patient.nickname");

    let mut p = patient();
    p["name"][0]["middle"] = json!("X");
    one(&p, IssueType::Structure, "Patient.name[0].middle");

    // Observation.value[x] does not allow Address.
    let mut o = observation();
    o["valueAddress"] = json!({"city": "X"});
    one(&o, IssueType::Structure, "Observation.valueAddress");
    // `value` alone is not a JSON property name of a choice element.
    let mut o = observation();
    o["value"] = json!(5);
    one(&o, IssueType::Structure, "Observation.value");
    // Allowed variant with a wrong inner element.
    let mut o = observation();
    o["valueQuantity"] = json!({"value": 5, "units": "kg"});
    one(
        &o,
        IssueType::Structure,
        "Observation.value.ofType(Quantity).units",
    );
}

#[test]
fn cardinality_and_json_kinds() {
    // name is 0..*: a single object is an error (FHIR JSON requires the array).
    let mut p = patient();
    p["name"] = json!({"family": "Doe"});
    one(&p, IssueType::Structure, "Patient.name");
    // gender is 0..1: an array is an error.
    let mut p = patient();
    p["gender"] = json!(["female"]);
    one(&p, IssueType::Structure, "Patient.gender");
    // A complex element given as a string.
    let mut p = patient();
    p["maritalStatus"] = json!("married");
    one(&p, IssueType::Structure, "Patient.maritalStatus");
    // A primitive given as an object.
    let mut p = patient();
    p["birthDate"] = json!({"value": "1984-02-29"});
    one(&p, IssueType::Structure, "Patient.birthDate");
    // boolean as a string; integer as a string; decimal as a string.
    let mut p = patient();
    p["active"] = json!("true");
    one(&p, IssueType::Structure, "Patient.active");
    let mut p = patient();
    p["multipleBirthInteger"] = json!("2");
    one(
        &p,
        IssueType::Structure,
        "Patient.multipleBirth.ofType(integer)",
    );
    let mut o = observation();
    o["component"][0]["valueQuantity"]["value"] = json!("118");
    one(
        &o,
        IssueType::Structure,
        "Observation.component[0].value.ofType(Quantity).value",
    );
    // A string given as a number.
    let mut p = patient();
    p["name"][0]["given"][1] = json!(7);
    one(&p, IssueType::Structure, "Patient.name[0].given[1]");
}

#[test]
fn primitive_formats() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/birthDate", json!("2020-13-45"), "Patient.birthDate"),
        ("/birthDate", json!("2021-02-29"), "Patient.birthDate"),
        ("/birthDate", json!("1984-2-1"), "Patient.birthDate"),
        ("/id", json!("a_b"), "Patient.id"),
        ("/id", json!("x".repeat(65)), "Patient.id"),
        (
            "/meta/lastUpdated",
            json!("2024-01-15"),
            "Patient.meta.lastUpdated",
        ),
        ("/meta/versionId", json!("v 2"), "Patient.meta.versionId"),
        (
            "/deceasedDateTime",
            json!("2024-01-15T10:00:00"),
            "Patient.deceased.ofType(dateTime)",
        ),
        ("/telecom/0/rank", json!(0), "Patient.telecom[0].rank"),
        ("/telecom/0/rank", json!(1.5), "Patient.telecom[0].rank"),
        (
            "/multipleBirthInteger",
            json!(3_000_000_000_i64),
            "Patient.multipleBirth.ofType(integer)",
        ),
        ("/name/0/family", json!(""), "Patient.name[0].family"),
        (
            "/identifier/0/system",
            json!("has space"),
            "Patient.identifier[0].system",
        ),
    ];
    for (pointer, value, expr) in cases {
        let mut p = patient();
        if pointer == "/deceasedDateTime" || pointer == "/multipleBirthInteger" {
            p.as_object_mut().unwrap().remove("deceasedBoolean");
            p[&pointer[1..]] = value.clone();
        } else {
            *p.pointer_mut(pointer).unwrap() = value.clone();
        }
        assert_eq!(
            problems(&p),
            vec![(IssueType::Value, expr.to_string())],
            "{pointer} = {value}"
        );
    }
    // Valid edge values.
    let mut p = patient();
    p["id"] = json!("A-1.b");
    p["telecom"][0]["rank"] = json!(2147483647);
    p["birthDate"] = json!("2024");
    assert_valid(&p);
}

/// Valid forms the R4 rules allow and HL7's published examples use; none of them may be rejected.
#[test]
fn spec_edge_forms_are_valid() {
    let mut o = observation();
    // dateTime/instant: a leap second, the +14:00 extreme offset and sub-millisecond fractions.
    o["effectivePeriod"] =
        json!({"start": "2016-12-31T23:59:60Z", "end": "2017-01-01T00:00:00.123456789+14:00"});
    o["component"][1] = json!({
        "code": {"text": "lead I"},
        "valueSampledData": {"origin": {"value": 2048}, "period": 10, "factor": 1.612,
                             "lowerLimit": -3300, "upperLimit": 3300, "dimensions": 1, "data": "2041 2043 E U L"}
    });
    o["component"].as_array_mut().unwrap().push(json!({
        "code": {"text": "time of day"},
        "valueTime": "23:59:59.999"
    }));
    assert_valid(&o);
    let mut p = patient();
    // A primitive may carry only its extension; an array may hold null where `_given` has the extension.
    p.as_object_mut().unwrap().remove("gender");
    p["_gender"] = json!({"extension": [{"url": "http://example.org/x", "valueCode": "A"}]});
    p["name"][0]["given"] = json!(["Jane", null]);
    p["name"][0]["_given"] =
        json!([null, {"extension": [{"url": "http://example.org/y", "valueString": "Q"}]}]);
    // base64Binary may contain whitespace between its quartets.
    p["photo"] = json!([{"contentType": "text/plain", "data": "SGVs\nbG8g d29y bGQ="}]);
    assert_valid(&p);
}

#[test]
fn empties_and_nulls() {
    let mut p = patient();
    p["name"] = json!([]);
    one(&p, IssueType::Structure, "Patient.name");
    let mut p = patient();
    p["maritalStatus"] = json!({});
    one(&p, IssueType::Structure, "Patient.maritalStatus");
    let mut p = patient();
    p["gender"] = Value::Null;
    one(&p, IssueType::Structure, "Patient.gender");
    let mut p = patient();
    p["name"][0]["given"] = json!(["Jane", null]);
    one(&p, IssueType::Structure, "Patient.name[0].given[1]");
    let mut p = patient();
    p["name"] = json!([null]);
    one(&p, IssueType::Structure, "Patient.name[0]");
}

#[test]
fn missing_required_elements_are_accepted() {
    // Minimum cardinalities are not enforced (see validate.rs): real data misses some, and rejecting it
    // would lose it.
    let mut o = observation();
    let obj = o.as_object_mut().unwrap();
    obj.remove("code");
    obj.remove("status");
    assert_eq!(validate_resource(&o), Ok(()));
}

#[test]
fn nested_resources_are_validated() {
    let mut p = patient();
    p["contained"][0]["name"] = json!({"family": "Who"});
    one(&p, IssueType::Structure, "Patient.contained[0].name");
    let mut p = patient();
    p["contained"][0]["resourceType"] = json!("Nope");
    one(&p, IssueType::Structure, "Patient.contained[0]");
    let mut p = patient();
    p["contained"][0]["id"] = json!("bad id");
    one(&p, IssueType::Value, "Patient.contained[0].id");

    let mut o = observation();
    o["status"] = json!(["final"]);
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient()}, {"resource": o}]});
    one(
        &bundle,
        IssueType::Structure,
        "Bundle.entry[1].resource.status",
    );

    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": {"resourceType": "Patient", "gender": 1}}]});
    one(
        &params,
        IssueType::Structure,
        "Parameters.parameter[0].resource.gender",
    );
    // Nested parts reuse the parameter definition (content reference).
    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "p", "part": [{"name": "q", "valueBoolean": "yes"}]}]});
    one(
        &params,
        IssueType::Structure,
        "Parameters.parameter[0].part[0].value.ofType(boolean)",
    );
}

#[test]
fn primitive_extension_siblings() {
    let mut p = patient();
    p["_birthDate"] = json!({"extension": [{"url": "http://example.org/x", "valueString": 5}]});
    one(
        &p,
        IssueType::Structure,
        "Patient.birthDate.extension[0].value.ofType(string)",
    );
    let mut p = patient();
    p["_birthDate"] = json!("x");
    one(&p, IssueType::Structure, "Patient.birthDate");
    let mut p = patient();
    p["_name"] = json!({"id": "a"});
    one(&p, IssueType::Structure, "Patient._name");
    let mut p = patient();
    p["_nickname"] = json!({"id": "a"});
    one(&p, IssueType::Structure, "Patient._nickname");
    let mut p = patient();
    p["name"][0]["_given"] = json!([null, {"id": "q"}, {"id": "extra"}]);
    one(&p, IssueType::Structure, "Patient.name[0]._given");
}

#[test]
fn issue_count_is_capped() {
    let mut p = patient();
    let junk: serde_json::Map<String, Value> =
        (0..500).map(|i| (format!("junk{i}"), json!(1))).collect();
    p.as_object_mut().unwrap().extend(junk);
    assert_eq!(validate_resource(&p).unwrap_err().len(), MAX_ISSUES);
}

/// Rough timing, printed not asserted: `cargo test -p continuum-fhir --release validation_timing -- --nocapture`.
#[test]
fn validation_timing() {
    for (name, r) in [("Patient", patient()), ("Observation", observation())] {
        assert_valid(&r);
        let n: u32 = 500;
        let start = std::time::Instant::now();
        for _ in 0..n {
            let _ = validate_resource(&r);
        }
        println!("{name}: {:?} per validate_resource", start.elapsed() / n);
    }
}
