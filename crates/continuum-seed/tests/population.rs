//! The synthetic population as an independent reader would check it: determinism, FHIR validity, codes
//! against the terminology lists, clinical plausibility, families and proxy age bands, sensitivity labels,
//! scheduling, and the NDJSON form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use continuum_seed::labels::{ACT_CODE, CONFIDENTIALITY};
use continuum_seed::ndjson::Flattener;
use continuum_seed::terminology;
use continuum_seed::*;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, format_description};
use time::{Date, OffsetDateTime};

const PATIENTS: u64 = 150;

fn cfg() -> SynthConfig {
    SynthConfig {
        seed: 7,
        now: datetime!(2026-03-04 00:00:00 UTC),
        ..SynthConfig::default()
    }
}

/// One population shared by the tests of this file (generating it is the slow part).
fn population() -> &'static [Chunk] {
    static POP: OnceLock<Vec<Chunk>> = OnceLock::new();
    POP.get_or_init(|| Population::new(&cfg(), PATIENTS).collect())
}

fn entries(bundle: &Value) -> &[Value] {
    bundle["entry"].as_array().map_or(&[], Vec::as_slice)
}

fn families() -> impl Iterator<Item = &'static Value> {
    population()
        .iter()
        .filter(|c| c.kind == ChunkKind::Family)
        .map(|c| &c.bundle)
}

fn all_resources() -> impl Iterator<Item = &'static Value> {
    population()
        .iter()
        .flat_map(|c| entries(&c.bundle))
        .map(|e| &e["resource"])
}

fn instant(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("not a dateTime: {s}: {e}"))
}

fn date(s: &str) -> Date {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|e| panic!("not a date: {s}: {e}"))
}

fn age_at(birth: Date, t: OffsetDateTime) -> f64 {
    (t.date() - birth).whole_days() as f64 / 365.25
}

fn hash(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(v).unwrap().hash(&mut h);
    h.finish()
}

/// Every coding `(system, code, display)` anywhere inside `v`.
fn codings<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a str, Option<&'a str>)>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(s)), Some(Value::String(c))) =
                (m.get("system"), m.get("code"))
            {
                out.push((s, c, m.get("display").and_then(Value::as_str)));
            }
            m.values().for_each(|x| codings(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| codings(x, out)),
        _ => {}
    }
}

/// Every `"reference"` string anywhere inside `v`.
fn references<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => out.push(s),
                    _ => references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

fn security_codes(r: &Value) -> Vec<&str> {
    r["meta"]["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["code"].as_str())
        .collect()
}

fn identifier<'a>(r: &'a Value, system: &str) -> Option<&'a str> {
    r["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == system)?["value"]
        .as_str()
}

#[test]
fn seed_same_seed_gives_identical_bundles_and_families_do_not_depend_on_n() {
    let a: Vec<u64> = population().iter().map(|c| hash(&c.bundle)).collect();
    let b: Vec<u64> = Population::new(&cfg(), PATIENTS)
        .map(|c| hash(&c.bundle))
        .collect();
    assert_eq!(a, b, "same seed and now, same bundles");
    let other = SynthConfig { seed: 8, ..cfg() };
    let c: Vec<u64> = Population::new(&other, 20)
        .without_terminology()
        .filter(|c| c.kind == ChunkKind::Family)
        .map(|c| hash(&c.bundle))
        .collect();
    assert!(!a.contains(&c[1]), "the seed must matter");
    // A smaller population is a prefix of a larger one (all but its last, possibly cut, family).
    let small: Vec<u64> = Population::new(&cfg(), 40)
        .map(|c| hash(&c.bundle))
        .collect();
    assert_eq!(small[..small.len() - 1], a[..small.len() - 1]);
    // Exactly the patients asked for.
    let patients: u64 = population().iter().map(|c| c.patients).sum();
    assert_eq!(patients, PATIENTS);
    let counted = all_resources()
        .filter(|r| r["resourceType"] == "Patient")
        .count();
    assert_eq!(counted as u64, PATIENTS);
}

#[test]
fn seed_every_resource_is_valid_fhir_r4() {
    let mut kinds = BTreeSet::new();
    for c in population() {
        if let Err(issues) = continuum_fhir::validate::validate_resource(&c.bundle) {
            panic!("invalid bundle: {issues:#?}");
        }
        for r in entries(&c.bundle).iter().map(|e| &e["resource"]) {
            if let Err(issues) = continuum_fhir::validate::validate_resource(r) {
                panic!("invalid {}: {issues:#?}", r["resourceType"]);
            }
            kinds.insert(r["resourceType"].as_str().unwrap().to_string());
        }
    }
    for k in [
        "AllergyIntolerance",
        "Appointment",
        "CodeSystem",
        "Condition",
        "Coverage",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "Location",
        "MedicationRequest",
        "Observation",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "RelatedPerson",
        "Schedule",
        "Slot",
        "ValueSet",
    ] {
        assert!(kinds.contains(k), "no {k}: {kinds:?}");
    }
}

#[test]
fn seed_codes_are_in_the_terminology_lists_with_their_displays() {
    let icd_loaded: BTreeSet<String> = all_resources()
        .find(|r| {
            r["resourceType"] == "CodeSystem" && r["url"] == "http://hl7.org/fhir/sid/icd-10-cm"
        })
        .expect("ICD-10-CM CodeSystem")["concept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    // Synthea's allergy reactions are the only codes not in snomed-common.csv (noted in terms.rs).
    let reactions = ["271807003", "126485001", "39579001"];
    let mut checked = 0;
    for r in all_resources().filter(|r| r["resourceType"] != "CodeSystem") {
        let mut cs = Vec::new();
        codings(r, &mut cs);
        for (system, code, display) in cs {
            if system == "http://unitsofmeasure.org" {
                // Quantities carry no display; annotations like {tbl} are valid UCUM on their own.
                let annotation = code.starts_with('{') && code.ends_with('}');
                assert!(
                    annotation || terminology::lookup(system, code).is_some(),
                    "unit {code} not in ucum-common.csv"
                );
                continue;
            }
            if !terminology::knows_system(system) || reactions.contains(&code) {
                continue;
            }
            let known = terminology::lookup(system, code)
                .unwrap_or_else(|| panic!("{system}|{code} is not in the terminology lists"));
            if let Some(d) = display {
                assert_eq!(d, known, "display of {system}|{code}");
            }
            if system == "http://hl7.org/fhir/sid/icd-10-cm" {
                assert!(
                    icd_loaded.contains(code),
                    "{code} missing from the loaded ICD-10-CM"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 10_000, "only {checked} codings checked");
}

/// Physiologic limits (not reference ranges): values outside are impossible in a living person.
fn physiologic(loinc: &str) -> Option<(f64, f64)> {
    Some(match loinc {
        "8480-6" => (60.0, 250.0),  // systolic
        "8462-4" => (30.0, 150.0),  // diastolic
        "8867-4" => (30.0, 220.0),  // heart rate
        "9279-1" => (6.0, 70.0),    // respiratory rate
        "8310-5" => (34.0, 42.5),   // body temperature
        "8302-2" => (40.0, 215.0),  // height
        "29463-7" => (1.5, 250.0),  // weight
        "39156-5" => (10.0, 70.0),  // BMI
        "2093-3" => (60.0, 500.0),  // cholesterol
        "2571-8" => (20.0, 1500.0), // triglycerides
        "18262-6" => (10.0, 400.0), // LDL
        "2085-9" => (10.0, 150.0),  // HDL
        "2339-0" => (30.0, 600.0),  // glucose
        "6299-2" => (1.0, 150.0),   // urea nitrogen
        "38483-4" => (0.2, 15.0),   // creatinine
        "49765-1" => (5.0, 15.0),   // calcium
        "2947-0" => (115.0, 165.0), // sodium
        "6298-4" => (2.0, 7.5),     // potassium
        "2069-3" => (80.0, 125.0),  // chloride
        "20565-8" => (10.0, 40.0),  // CO2
        "718-7" => (5.0, 22.0),     // hemoglobin
        "4544-3" => (15.0, 65.0),   // hematocrit
        "6690-2" => (1.0, 50.0),    // leukocytes
        "777-3" => (20.0, 1000.0),  // platelets
        "4548-4" => (3.0, 18.0),    // HbA1c
        "59408-5" => (50.0, 100.0), // oxygen saturation
        _ => return None,
    })
}

#[test]
fn seed_records_are_clinically_plausible() {
    let now = cfg().now;
    let childhood_vaccines = ["20", "10", "08", "133", "161", "03", "21"];
    let (mut pregnancies, mut deliveries, mut values, mut flagged) = (0, 0, 0, 0);
    for b in families() {
        let mut patient: BTreeMap<&str, (Date, bool, Option<OffsetDateTime>)> = BTreeMap::new();
        for e in entries(b) {
            let r = &e["resource"];
            if r["resourceType"] == "Patient" {
                let birth = date(r["birthDate"].as_str().unwrap());
                let death = r["deceasedDateTime"].as_str().map(instant);
                patient.insert(
                    e["fullUrl"].as_str().unwrap(),
                    (birth, r["gender"] == "female", death),
                );
            }
        }
        for r in entries(b).iter().map(|e| &e["resource"]) {
            let who = r["subject"]["reference"]
                .as_str()
                .or_else(|| r["patient"]["reference"].as_str());
            let Some(&(birth, female, death)) = who.and_then(|w| patient.get(w)) else {
                continue;
            };
            let end = death.unwrap_or(now);
            // Dates in order: birth ≤ everything ≤ death or now (appointments are the future).
            for key in [
                "effectiveDateTime",
                "occurrenceDateTime",
                "authoredOn",
                "recordedDate",
                "onsetDateTime",
                "issued",
            ] {
                if let Some(t) = r[key].as_str().map(instant) {
                    assert!(
                        birth <= t.date() && t <= end,
                        "{} {key} {t} outside {birth}..{end}",
                        r["resourceType"]
                    );
                }
            }
            if let Some(t) = r["period"]["start"]
                .as_str()
                .filter(|_| r["resourceType"] == "Encounter")
                .map(instant)
            {
                let stop = instant(r["period"]["end"].as_str().unwrap());
                assert!(birth <= t.date() && t <= stop && stop <= end);
            }
            // Nothing about pregnancy or contraception for men.
            let mut cs = Vec::new();
            codings(r, &mut cs);
            for (system, code, _) in &cs {
                let female_only = (*system == "http://hl7.org/fhir/sid/icd-10-cm"
                    && (code.starts_with('O')
                        || code.starts_with("Z3")
                        || code.starts_with("N94")))
                    || (*system == "http://snomed.info/sct"
                        && [
                            "424441002",
                            "424619006",
                            "252160004",
                            "274804006",
                            "271442007",
                            "66348005",
                            "11466000",
                        ]
                        .contains(code));
                assert!(female || !female_only, "{code} on a male patient");
                pregnancies += usize::from(*code == "Z34.90");
                deliveries += usize::from(*code == "Z37.0" && r["resourceType"] == "Condition");
            }
            // Childhood vaccines only for children.
            if r["resourceType"] == "Immunization" {
                let code = r["vaccineCode"]["coding"][0]["code"].as_str().unwrap();
                let age = age_at(birth, instant(r["occurrenceDateTime"].as_str().unwrap()));
                if childhood_vaccines.contains(&code) {
                    assert!(age < 18.0, "childhood vaccine {code} at {age:.1} years");
                }
            }
            // Values within physiologic limits; H/L flags agree with the reference range.
            if r["resourceType"] == "Observation" {
                let mut parts = vec![r];
                parts.extend(r["component"].as_array().into_iter().flatten());
                for p in parts {
                    let (Some(code), Some(v)) = (
                        p["code"]["coding"][0]["code"].as_str(),
                        p["valueQuantity"]["value"].as_f64(),
                    ) else {
                        continue;
                    };
                    if let Some((lo, hi)) = physiologic(code) {
                        assert!((lo..=hi).contains(&v), "{code} = {v} outside {lo}..{hi}");
                        values += 1;
                    }
                    if let Some(flag) = p["interpretation"][0]["coding"][0]["code"].as_str() {
                        let range = &p["referenceRange"][0];
                        let low = range["low"]["value"].as_f64().unwrap_or(f64::MIN);
                        let high = range["high"]["value"].as_f64().unwrap_or(f64::MAX);
                        let expected = if v < low {
                            "L"
                        } else if v > high {
                            "H"
                        } else {
                            "N"
                        };
                        assert_eq!(flag, expected, "{code} = {v} in {low}..{high}");
                        flagged += usize::from(flag != "N");
                    }
                }
            }
        }
    }
    assert!(
        pregnancies > 0 && deliveries > 0 && values > 1000 && flagged > 0,
        "vacuous: {pregnancies} {deliveries} {values} {flagged}"
    );
}

#[test]
fn seed_families_link_members_and_cover_every_age_band() {
    let now = cfg().now;
    let mut bands = BTreeSet::new();
    let mut dodids = BTreeSet::new();
    for b in families() {
        let mut by_url: BTreeMap<&str, &Value> = BTreeMap::new();
        let mut by_dodid: BTreeMap<&str, &str> = BTreeMap::new();
        for e in entries(b) {
            let r = &e["resource"];
            if r["resourceType"] == "Patient" {
                let url = e["fullUrl"].as_str().unwrap();
                by_url.insert(url, r);
                let d = identifier(r, DODID_SYSTEM).unwrap();
                assert!(
                    d.len() == 10 && d.bytes().all(|c| c.is_ascii_digit()),
                    "{d}"
                );
                assert!(dodids.insert(d.to_string()), "DoD ID {d} twice");
                let dbn = identifier(r, DBN_SYSTEM).unwrap();
                assert!(
                    dbn.len() == 11 && dbn.bytes().all(|c| c.is_ascii_digit()),
                    "{dbn}"
                );
                by_dodid.insert(d, url);
                assert!(r["generalPractitioner"][0]["reference"]
                    .as_str()
                    .unwrap()
                    .starts_with("PractitionerRole?identifier="));
            }
        }
        let resources: Vec<&Value> = entries(b).iter().map(|e| &e["resource"]).collect();
        let addresses: BTreeSet<String> =
            by_url.values().map(|p| p["address"].to_string()).collect();
        assert_eq!(addresses.len(), 1, "one household, one address");
        // One Coverage per member, all with the same subscriber (the sponsor, the family's first Patient).
        let sponsor = entries(b)[0]["fullUrl"].as_str().unwrap();
        let coverages: Vec<&&Value> = resources
            .iter()
            .filter(|r| r["resourceType"] == "Coverage")
            .collect();
        assert_eq!(coverages.len(), by_url.len());
        for c in &coverages {
            assert_eq!(c["subscriber"]["reference"], sponsor);
            assert!(by_url.contains_key(c["beneficiary"]["reference"].as_str().unwrap()));
            assert_eq!(
                c["subscriberId"],
                identifier(by_url[sponsor], DODID_SYSTEM).unwrap()
            );
        }
        for r in &resources {
            if r["resourceType"] == "Patient" {
                let birth = date(r["birthDate"].as_str().unwrap());
                if r.get("deceasedDateTime").is_none() {
                    bands.insert(AgeBand::of(age_at(birth, now)));
                }
            }
            if r["resourceType"] == "RelatedPerson" {
                let of = by_url[r["patient"]["reference"].as_str().unwrap()];
                let who = by_dodid[identifier(r, DODID_SYSTEM).unwrap()];
                let code = r["relationship"][0]["coding"][0]["code"].as_str().unwrap();
                assert!(["MTH", "FTH", "PRN", "SPS"].contains(&code));
                if code != "SPS" {
                    let parent = date(by_url[who]["birthDate"].as_str().unwrap());
                    let child = date(of["birthDate"].as_str().unwrap());
                    assert!(
                        (child - parent).whole_days() > 16 * 365,
                        "a parent at most 16 years older"
                    );
                    assert_eq!(code == "MTH", by_url[who]["gender"] == "female");
                }
                // The parent's Patient points at the RelatedPerson that is them.
                let links = by_url[who]["link"].as_array().unwrap();
                assert!(!links.is_empty());
            }
        }
    }
    assert_eq!(
        bands,
        BTreeSet::from([AgeBand::Child, AgeBand::Adolescent, AgeBand::Adult])
    );
    let show = showcase(&cfg());
    let ages: BTreeSet<AgeBand> = show
        .children
        .iter()
        .map(|c| AgeBand::of(f64::from(c.1)))
        .collect();
    assert_eq!(
        ages.len(),
        3,
        "the showcase family has a child in every band: {show:?}"
    );
    for d in std::iter::once(&show.sponsor).chain(show.children.iter().map(|c| &c.0)) {
        assert!(dodids.contains(d), "showcase member {d} not generated");
    }
    let roles: BTreeSet<&str> = show.staff.iter().map(|s| s.0.code().0).collect();
    for r in [
        "nurse",
        "pharmacist",
        "scheduler",
        "administrator",
        "dentist",
    ] {
        assert!(roles.contains(r), "{roles:?}");
    }
}

#[test]
fn seed_sensitive_resources_are_labelled() {
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in all_resources() {
        let labels = security_codes(r);
        if r["resourceType"] == "Condition" {
            let code = r["code"]["coding"][0]["code"].as_str().unwrap();
            let expected = match code {
                c if c.starts_with("F32") || c.starts_with("F41") || c.starts_with("F43") => {
                    Some("PSY")
                }
                c if c.starts_with("F10") => Some("ETH"),
                c if c.starts_with("Z30") || c.starts_with("Z34") || c.starts_with("Z37") => {
                    Some("SEX")
                }
                c if c.starts_with('O') => Some("SEX"),
                "Z21" | "B20" => Some("HIV"),
                _ => None,
            };
            match expected {
                Some(k) => assert!(
                    labels.contains(&k) && labels.contains(&"R"),
                    "{code}: {labels:?}"
                ),
                None => assert!(labels.is_empty(), "{code} labelled {labels:?}"),
            }
        }
        for s in r["meta"]["security"].as_array().into_iter().flatten() {
            let system = s["system"].as_str().unwrap();
            assert!(system == ACT_CODE || system == CONFIDENTIALITY);
            *by_kind
                .entry(s["code"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for k in ["PSY", "SEX", "R"] {
        assert!(
            by_kind.get(k).copied().unwrap_or(0) > 0,
            "no {k}: {by_kind:?}"
        );
    }
    // The showcase adolescent has a restricted mental-health record.
    let show = showcase(&cfg());
    let teen = &show
        .children
        .iter()
        .find(|c| (12..18).contains(&c.1))
        .unwrap()
        .0;
    let b = families().next().unwrap();
    let url = entries(b)
        .iter()
        .find(|e| identifier(&e["resource"], DODID_SYSTEM) == Some(teen.as_str()))
        .unwrap()["fullUrl"]
        .as_str()
        .unwrap();
    assert!(entries(b).iter().any(|e| {
        let r = &e["resource"];
        r["resourceType"] == "Condition"
            && r["subject"]["reference"] == url
            && security_codes(r).contains(&"PSY")
    }));
}

#[test]
fn seed_appointments_take_distinct_free_slots_in_the_coming_weeks() {
    let now = cfg().now;
    let mut slots: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for c in population().iter().filter(|c| c.kind == ChunkKind::Site) {
        for r in entries(&c.bundle).iter().map(|e| &e["resource"]) {
            if r["resourceType"] == "Slot" {
                assert_eq!(r["status"], "free");
                let key = format!(
                    "Slot?identifier={}|{}",
                    SITE_SYSTEM,
                    identifier(r, SITE_SYSTEM).unwrap()
                );
                let start = r["start"].as_str().unwrap();
                assert!(instant(start) > now && instant(start) < now + time::Duration::days(25));
                slots.insert(key, (start, r["end"].as_str().unwrap()));
            }
        }
    }
    let mut booked = BTreeSet::new();
    for b in families() {
        for e in entries(b) {
            let r = &e["resource"];
            if r["resourceType"] == "Appointment" {
                let slot = r["slot"][0]["reference"].as_str().unwrap();
                assert!(booked.insert(slot.to_string()), "{slot} booked twice");
                let (start, end) = slots[slot];
                assert_eq!(
                    (r["start"].as_str().unwrap(), r["end"].as_str().unwrap()),
                    (start, end)
                );
            }
            if e["request"]["method"] == "PUT" {
                assert_eq!(e["resource"]["status"], "busy");
                assert!(slots.contains_key(e["request"]["url"].as_str().unwrap()));
            }
        }
    }
    assert!(
        booked.len() as u64 > PATIENTS / 10,
        "{} appointments",
        booked.len()
    );
}

#[test]
fn seed_ndjson_has_ids_and_resolved_references() {
    let mut flat = Flattener::new();
    let mut out = Vec::new();
    for c in population() {
        out.extend(flat.flatten(c.kind, c.bundle.clone()).unwrap());
    }
    out.extend(flat.finish());
    let ids: BTreeSet<String> = out
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(ids.len(), out.len(), "ids are unique");
    let mut busy = 0;
    for r in &out {
        let mut refs = Vec::new();
        references(r, &mut refs);
        for target in refs {
            assert!(
                ids.contains(target),
                "{} points at {target}, which is not in the output",
                r["resourceType"]
            );
        }
        busy += usize::from(r["resourceType"] == "Slot" && r["status"] == "busy");
    }
    let appointments = out
        .iter()
        .filter(|r| r["resourceType"] == "Appointment")
        .count();
    assert_eq!(busy, appointments, "one line per slot, in its final state");
    let expected: usize = population()
        .iter()
        .flat_map(|c| entries(&c.bundle))
        .filter(|e| e["request"]["method"] != "PUT" || e["resource"]["resourceType"] != "Slot")
        .count();
    assert_eq!(out.len(), expected);
}

#[test]
fn seed_dental_exams_chart_teeth_and_service_members_get_health_assessments() {
    let (mut dental, mut teeth, mut pha, mut hearing, mut emergency) = (0, 0, 0, 0, 0);
    for r in all_resources() {
        match r["resourceType"].as_str().unwrap() {
            "Encounter" if r["class"]["code"] == "EMER" => {
                assert_eq!(r["type"][0]["coding"][0]["code"], "50849002");
                emergency += 1;
            }
            "Encounter" if r["serviceType"]["coding"][0]["code"] == "dental" => {
                dental += 1;
                assert!(r["location"][0]["location"]["reference"]
                    .as_str()
                    .unwrap()
                    .ends_with("-dental"));
            }
            "Encounter" if r["reasonCode"][0]["coding"][0]["code"] == "Z02.89" => pha += 1,
            "Condition" if r.get("bodySite").is_some() => {
                let tooth = r["bodySite"][0]["coding"][0]["code"].as_str().unwrap();
                let n: u32 = tooth.parse().unwrap();
                assert!(
                    (11..=48).contains(&n) && (1..=8).contains(&(n % 10)),
                    "{tooth}"
                );
                assert!(r["code"]["coding"][0]["code"]
                    .as_str()
                    .unwrap()
                    .starts_with("K02"));
                teeth += 1;
            }
            "Procedure" if r["code"]["coding"][0]["code"] == "398171003" => hearing += 1,
            _ => {}
        }
    }
    assert!(
        dental > 100 && teeth > 10 && pha > 20 && hearing >= pha && emergency > 0,
        "{dental} {teeth} {pha} {hearing} {emergency}"
    );
}

#[test]
fn seed_recent_visits_have_plainly_synthetic_notes_labelled_like_their_visit() {
    use base64::Engine;
    let mut notes = 0;
    let mut labelled = 0;
    for b in families() {
        let encounters: BTreeMap<&str, &Value> = entries(b)
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Encounter")
            .map(|e| (e["fullUrl"].as_str().unwrap(), &e["resource"]))
            .collect();
        for r in entries(b).iter().map(|e| &e["resource"]) {
            if r["resourceType"] != "DocumentReference" {
                continue;
            }
            let data = r["content"][0]["attachment"]["data"].as_str().unwrap();
            let text = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            let text = String::from_utf8(text).unwrap();
            assert!(text.starts_with("SYNTHETIC NOTE"), "{text}");
            assert!(text.len() < 600, "short: {text}");
            let enc = encounters[r["context"]["encounter"][0]["reference"].as_str().unwrap()];
            assert_eq!(security_codes(r), security_codes(enc));
            labelled += usize::from(!security_codes(r).is_empty());
            notes += 1;
        }
    }
    assert!(
        notes > 500 && labelled > 0,
        "{notes} notes, {labelled} labelled"
    );
}

/// Conditional references of the site data: `Type?identifier=system|value` → the resource.
fn site_resources() -> BTreeMap<String, &'static Value> {
    let mut out = BTreeMap::new();
    for c in population().iter().filter(|c| c.kind == ChunkKind::Site) {
        for r in entries(&c.bundle).iter().map(|e| &e["resource"]) {
            let ty = r["resourceType"].as_str().unwrap();
            for i in r["identifier"].as_array().into_iter().flatten() {
                let key = format!(
                    "{ty}?identifier={}|{}",
                    i["system"].as_str().unwrap(),
                    i["value"].as_str().unwrap()
                );
                out.insert(key, r);
            }
        }
    }
    out
}

/// Within one site bundle, the resource a `urn:uuid:` reference names.
fn site_urns() -> BTreeMap<&'static str, &'static Value> {
    population()
        .iter()
        .filter(|c| c.kind == ChunkKind::Site)
        .flat_map(|c| entries(&c.bundle))
        .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
        .collect()
}

/// The staff-role code of the Practitioner a conditional reference names.
fn staff_roles() -> BTreeMap<String, String> {
    let site = site_resources();
    let urns = site_urns();
    let mut by_urn: BTreeMap<&str, String> = BTreeMap::new();
    for r in urns
        .values()
        .filter(|r| r["resourceType"] == "PractitionerRole")
    {
        let code = r["code"][0]["coding"][0]["code"]
            .as_str()
            .unwrap()
            .to_string();
        by_urn.insert(r["practitioner"]["reference"].as_str().unwrap(), code);
    }
    let mut out = BTreeMap::new();
    for (key, r) in &site {
        if r["resourceType"] != "Practitioner" {
            continue;
        }
        let urn = urns
            .iter()
            .find(|(_, x)| std::ptr::eq(**x, *r))
            .map(|(u, _)| *u)
            .unwrap();
        out.insert(key.clone(), by_urn[urn].clone());
    }
    out
}

fn codes_of(concept: &Value) -> Vec<&str> {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["code"].as_str())
        .collect()
}

#[test]
fn seed_inpatient_stays_lie_in_the_life_and_the_ward_beds_of_the_facility() {
    let now = cfg().now;
    let site = site_resources();
    let urns = site_urns();
    let (mut stays, mut transfers, mut patients, mut admitted) = (0, 0, 0, BTreeSet::new());
    for b in families() {
        let mut people: BTreeMap<&str, (Date, OffsetDateTime)> = BTreeMap::new();
        for e in entries(b) {
            let r = &e["resource"];
            if r["resourceType"] == "Patient" {
                let death = r["deceasedDateTime"].as_str().map(instant);
                people.insert(
                    e["fullUrl"].as_str().unwrap(),
                    (date(r["birthDate"].as_str().unwrap()), death.unwrap_or(now)),
                );
            }
        }
        patients += people.len();
        let resources: Vec<(&str, &Value)> = entries(b)
            .iter()
            .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
            .collect();
        let periods: Vec<(&str, &str, OffsetDateTime, OffsetDateTime)> = resources
            .iter()
            .filter(|(_, r)| r["resourceType"] == "Encounter")
            .map(|(u, r)| {
                (
                    *u,
                    r["subject"]["reference"].as_str().unwrap(),
                    instant(r["period"]["start"].as_str().unwrap()),
                    instant(r["period"]["end"].as_str().unwrap()),
                )
            })
            .collect();
        for (url, r) in &resources {
            if r["resourceType"] != "Encounter" || r["class"]["code"] != "IMP" {
                continue;
            }
            stays += 1;
            let who = r["subject"]["reference"].as_str().unwrap();
            // Childbirth admissions are not among the few sick people admitted.
            let reason = codes_of(&r["reasonCode"][0]);
            if !reason.iter().any(|c| c.starts_with('O')) {
                admitted.insert(who.to_string());
            }
            let (birth, end) = people[who];
            let start = instant(r["period"]["start"].as_str().unwrap());
            let stop = instant(r["period"]["end"].as_str().unwrap());
            assert!(
                birth <= start.date(),
                "admitted {start} before birth {birth}"
            );
            assert!(start < stop && stop <= end, "{start}..{stop} after {end}");
            let length = stop - start;
            assert!(
                length >= time::Duration::hours(8) && length <= time::Duration::days(8),
                "a stay of {length}"
            );
            // No other visit of the same person during the stay.
            for (other, subject, s, e) in &periods {
                if other != url && *subject == who {
                    assert!(*e <= start || *s >= stop, "a visit {s}..{e} during a stay");
                }
            }
            let h = &r["hospitalization"];
            assert!(["emd", "outp"].contains(&codes_of(&h["admitSource"])[0]));
            assert!(["home", "snf"].contains(&codes_of(&h["dischargeDisposition"])[0]));
            // The serviceProvider's ward and beds: Locations of that facility.
            let provider = r["serviceProvider"]["reference"].as_str().unwrap();
            let mut beds = Vec::new();
            for l in r["location"].as_array().unwrap() {
                let key = l["location"]["reference"].as_str().unwrap();
                let loc = site
                    .get(key)
                    .unwrap_or_else(|| panic!("{key} is not a Location of the site data"));
                assert_eq!(loc["resourceType"], "Location");
                let org = urns[loc["managingOrganization"]["reference"].as_str().unwrap()];
                let org_key = format!(
                    "Organization?identifier={}|{}",
                    org["identifier"][0]["system"].as_str().unwrap(),
                    org["identifier"][0]["value"].as_str().unwrap()
                );
                assert_eq!(org_key, provider, "a bed of another facility");
                let (from, to) = (
                    instant(l["period"]["start"].as_str().unwrap()),
                    instant(l["period"]["end"].as_str().unwrap()),
                );
                assert!(start <= from && from < to && to <= stop);
                let kind = loc["physicalType"]["coding"][0]["code"].as_str().unwrap();
                assert_eq!(kind, l["physicalType"]["coding"][0]["code"]);
                if kind == "bd" {
                    beds.push((from, to));
                } else {
                    assert_eq!(kind, "wa");
                }
            }
            assert!(!beds.is_empty(), "a stay without a bed");
            assert_eq!(beds[0].0, start);
            assert_eq!(beds.last().unwrap().1, stop);
            for w in beds.windows(2) {
                assert_eq!(w[0].1, w[1].0, "bed history with a gap");
            }
            transfers += beds.len() - 1;
            // The reason, vital signs during the stay, and a discharge summary.
            let mine: Vec<&&Value> = resources
                .iter()
                .filter(|(_, x)| {
                    x["encounter"]["reference"] == *url
                        || x["context"]["encounter"][0]["reference"] == *url
                })
                .map(|(_, x)| x)
                .collect();
            let reason = r["diagnosis"][0]["condition"]["reference"]
                .as_str()
                .unwrap();
            assert!(resources
                .iter()
                .any(|(u, x)| *u == reason && x["resourceType"] == "Condition"));
            let vitals: Vec<OffsetDateTime> = mine
                .iter()
                .filter(|x| x["category"][0]["coding"][0]["code"] == "vital-signs")
                .map(|x| instant(x["effectiveDateTime"].as_str().unwrap()))
                .collect();
            assert!(vitals.len() >= 4, "{} vital signs", vitals.len());
            assert!(vitals.iter().all(|t| start <= *t && *t <= stop));
            let summaries = mine
                .iter()
                .filter(|x| {
                    x["resourceType"] == "DocumentReference"
                        && x["type"]["coding"][0]["code"] == "18842-5"
                })
                .count();
            assert_eq!(summaries, 1, "one discharge summary per stay");
        }
    }
    assert!(
        stays >= 5 && transfers > 0,
        "{stays} stays, {transfers} moves"
    );
    assert!(
        admitted.len() * 4 < patients,
        "a small fraction: {} of {patients}",
        admitted.len()
    );
}

#[test]
fn seed_radiology_pathology_and_laboratory_reports_are_complete() {
    let roles = staff_roles();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for b in families() {
        let by_url: BTreeMap<&str, &Value> = entries(b)
            .iter()
            .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
            .collect();
        for r in by_url.values() {
            if r["resourceType"] != "DiagnosticReport" {
                continue;
            }
            let category = r["category"][0]["coding"][0]["code"].as_str().unwrap();
            let code = r["code"]["coding"][0]["code"].as_str().unwrap();
            let encounter = r["encounter"]["reference"].as_str().unwrap();
            assert_eq!(by_url[encounter]["resourceType"], "Encounter");
            assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
            assert!(
                instant(r["effectiveDateTime"].as_str().unwrap())
                    <= instant(r["issued"].as_str().unwrap())
            );
            let results: Vec<&Value> = r["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| by_url[x["reference"].as_str().unwrap()])
                .collect();
            for o in &results {
                assert_eq!(o["resourceType"], "Observation");
                assert_eq!(o["encounter"]["reference"], encounter);
                assert_eq!(o["category"][0]["coding"][0]["code"], "laboratory");
            }
            let interpreter = || {
                let who = r["resultsInterpreter"][0]["reference"].as_str().unwrap();
                roles[who].as_str()
            };
            match category {
                "LAB" => assert!(!results.is_empty(), "a lab report without results"),
                "RAD" => {
                    assert!(
                        ["36643-5", "30799-1", "26099-2", "36813-4", "24532-4"].contains(&code),
                        "{code}"
                    );
                    let conclusion = r["conclusion"].as_str().unwrap();
                    assert!(conclusion.contains("Synthetic") && conclusion.len() < 200);
                    assert!(r["performer"][0]["reference"]
                        .as_str()
                        .unwrap()
                        .starts_with("Organization?"));
                    assert_eq!(interpreter(), "radiologist");
                    let study = by_url[r["imagingStudy"][0]["reference"].as_str().unwrap()];
                    assert_eq!(study["resourceType"], "ImagingStudy");
                    assert_eq!(study["encounter"]["reference"], encounter);
                    assert_eq!(study["procedureCode"][0]["coding"][0]["code"], code);
                    let modality = study["modality"][0]["code"].as_str().unwrap();
                    assert!(["DX", "CT", "US"].contains(&modality));
                    let mut uids = vec![study["identifier"][0]["value"]
                        .as_str()
                        .unwrap()
                        .strip_prefix("urn:oid:")
                        .unwrap()];
                    for series in study["series"].as_array().unwrap() {
                        assert_eq!(series["modality"]["code"], modality);
                        uids.push(series["uid"].as_str().unwrap());
                        for i in series["instance"].as_array().into_iter().flatten() {
                            uids.push(i["uid"].as_str().unwrap());
                        }
                    }
                    for uid in uids {
                        let digits = uid.strip_prefix("2.25.").unwrap();
                        assert!(
                            uid.len() <= 64
                                && !digits.is_empty()
                                && digits.bytes().all(|c| c.is_ascii_digit())
                                && (digits == "0" || !digits.starts_with('0')),
                            "{uid}"
                        );
                    }
                    *seen.entry(modality).or_default() += 1;
                }
                "PAT" => {
                    assert_eq!(code, "11526-1");
                    assert_eq!(interpreter(), "pathologist");
                    assert_eq!(results.len(), 1);
                    assert_eq!(results[0]["code"]["coding"][0]["code"], "22637-3");
                    assert!(results[0]["valueString"]
                        .as_str()
                        .unwrap()
                        .contains("Synthetic"));
                    assert!(r["conclusion"].as_str().unwrap().contains("Synthetic"));
                }
                other => panic!("report category {other}"),
            }
            *seen.entry(category).or_default() += 1;
        }
    }
    for k in ["LAB", "RAD", "PAT", "DX", "CT"] {
        assert!(seen.get(k).copied().unwrap_or(0) > 0, "no {k}: {seen:?}");
    }
}

#[test]
fn seed_vision_tests_only_for_serving_adults_and_a_dental_class_after_each_exam() {
    let (mut vision, mut classes) = (0, BTreeMap::new());
    // Dental classes of service members, and how many health assessments found the exam overdue.
    let (mut serving_classes, mut overdue): (BTreeMap<&str, usize>, usize) = (BTreeMap::new(), 0);
    let window_start = cfg().now - time::Duration::seconds_f64(10.0 * 365.25 * 86_400.0);
    let year = time::Duration::days(365);
    for b in families() {
        let mut serving: BTreeMap<&str, (bool, Date)> = BTreeMap::new();
        for e in entries(b) {
            let r = &e["resource"];
            if r["resourceType"] == "Patient" {
                let category = r["extension"][0]["valueCoding"]["code"].as_str().unwrap();
                serving.insert(
                    e["fullUrl"].as_str().unwrap(),
                    (
                        ["active-duty", "reserve"].contains(&category),
                        date(r["birthDate"].as_str().unwrap()),
                    ),
                );
            }
        }
        let by_url: BTreeMap<&str, &Value> = entries(b)
            .iter()
            .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
            .collect();
        let mut pha_eyes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dental: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
        for (url, r) in &by_url {
            if r["resourceType"] == "Encounter" {
                if r["reasonCode"][0]["coding"][0]["code"] == "Z02.89" {
                    pha_eyes.entry(url).or_default();
                }
                if r["serviceType"]["coding"][0]["code"] == "dental" {
                    dental.entry(url).or_default();
                }
            }
        }
        for r in by_url.values() {
            let enc = r["encounter"]["reference"].as_str().unwrap_or("");
            match r["resourceType"].as_str().unwrap() {
                "Observation" => {
                    let code = r["code"]["coding"][0]["code"].as_str().unwrap();
                    if ["98499-7", "98498-9", "65893-0", "65897-1"].contains(&code) {
                        let (in_service, birth) =
                            serving[r["subject"]["reference"].as_str().unwrap()];
                        let at = instant(r["effectiveDateTime"].as_str().unwrap());
                        assert!(
                            in_service && age_at(birth, at) >= 18.0,
                            "vision test of someone not serving"
                        );
                        assert_eq!(r["category"][0]["coding"][0]["code"], "exam");
                        let value = r["valueString"].as_str().unwrap();
                        let denominator: u32 = value.strip_prefix("20/").unwrap().parse().unwrap();
                        assert!((10..=400).contains(&denominator), "{value}");
                        let eyes = pha_eyes
                            .get_mut(enc)
                            .unwrap_or_else(|| panic!("a vision test outside a health assessment"));
                        *eyes += usize::from(code == "98499-7" || code == "98498-9");
                        vision += 1;
                    }
                    if r["code"]["coding"][0]["system"]
                        .as_str()
                        .unwrap()
                        .ends_with("/CodeSystem/observation-code")
                        && code == "dental-readiness-class"
                    {
                        assert_eq!(r["category"][0]["coding"][0]["code"], "exam");
                        let value = &r["valueCodeableConcept"]["coding"][0];
                        assert!(value["system"]
                            .as_str()
                            .unwrap()
                            .ends_with("/CodeSystem/dental-readiness-class"));
                        let class = value["code"].as_str().unwrap();
                        let subject = r["subject"]["reference"].as_str().unwrap();
                        if serving[subject].0 {
                            *serving_classes.entry(class).or_default() += 1;
                        }
                        if class != "4" {
                            dental
                                .get_mut(enc)
                                .expect("a dental class outside a dental exam")
                                .0
                                .push(class);
                            continue;
                        }
                        // Class 4 (exam overdue) at a serving adult's health assessment, when the record
                        // shows no dental exam in the 12 months before it and reaches back that far.
                        assert!(
                            pha_eyes.contains_key(enc),
                            "class 4 outside a health assessment"
                        );
                        let at = instant(by_url[enc]["period"]["start"].as_str().unwrap());
                        assert!(
                            at - year >= window_start,
                            "class 4 at {at}: the record is shorter"
                        );
                        for url in dental.keys() {
                            let exam = by_url[url];
                            let t = instant(exam["period"]["start"].as_str().unwrap());
                            assert!(
                                exam["subject"]["reference"] != subject || t > at || at - t > year,
                                "class 4 at {at}, but a dental exam at {t}"
                            );
                        }
                        *classes.entry("4").or_insert(0) += 1;
                        overdue += 1;
                    }
                }
                "Condition" if dental.contains_key(enc) => {
                    let code = r["code"]["coding"][0]["code"].as_str().unwrap();
                    dental.get_mut(enc).unwrap().1.push(code);
                }
                _ => {}
            }
        }
        for (url, eyes) in pha_eyes {
            assert_eq!(eyes, 2, "both eyes at the health assessment {url}");
        }
        for (class, findings) in dental.values() {
            assert_eq!(class.len(), 1, "one dental class per exam: {class:?}");
            let expected = if findings.is_empty() {
                "1"
            } else if findings.contains(&"K02.52") {
                "3"
            } else {
                "2"
            };
            assert_eq!(class[0], expected, "class for findings {findings:?}");
            *classes.entry(class[0]).or_insert(0) += 1;
        }
    }
    assert!(vision > 100, "{vision} vision results");
    assert_eq!(classes.len(), 4, "classes 1 to 4: {classes:?}");
    // Plausible shares for service members: most are class 1 or 2, a few need urgent care (3) or are
    // overdue (4).
    let total: usize = serving_classes.values().sum();
    let share = |c: &str| serving_classes.get(c).copied().unwrap_or(0) as f64 / total as f64;
    assert!(
        total > 100
            && share("1") + share("2") > 0.8
            && (0.01..0.15).contains(&share("3"))
            && (0.01..0.12).contains(&share("4"))
            && overdue == serving_classes.get("4").copied().unwrap_or(0),
        "service members' dental classes: {serving_classes:?}"
    );
    // The code system is loaded, with all four classes.
    let cs = all_resources()
        .find(|r| {
            r["resourceType"] == "CodeSystem"
                && r["url"]
                    .as_str()
                    .unwrap()
                    .ends_with("/CodeSystem/dental-readiness-class")
        })
        .expect("the dental-readiness-class CodeSystem");
    let concepts: Vec<(&str, &str)> = cs["concept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["code"].as_str().unwrap(), c["display"].as_str().unwrap()))
        .collect();
    assert_eq!(concepts.len(), 4);
    assert_eq!(concepts[0], ("1", "Class 1: no dental treatment needed"));
    assert_eq!(
        concepts[3],
        ("4", "Class 4: dental exam overdue or unknown")
    );
}

#[test]
fn seed_childbirth_admissions_are_the_mothers_of_the_children_born_in_the_record() {
    let now = cfg().now;
    let window_start = now - time::Duration::seconds_f64(10.0 * 365.25 * 86_400.0);
    let (mut deliveries, mut cesareans, mut expected) = (0, 0, 0);
    for b in families() {
        let by_url: BTreeMap<&str, &Value> = entries(b)
            .iter()
            .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
            .collect();
        let by_dodid: BTreeMap<&str, &str> = by_url
            .iter()
            .filter(|(_, r)| r["resourceType"] == "Patient")
            .map(|(u, r)| (identifier(r, DODID_SYSTEM).unwrap(), *u))
            .collect();
        // Each delivery admission: (mother, first and last day of the stay as written).
        let mut stays: Vec<(&str, Date, Date)> = Vec::new();
        for (url, r) in &by_url {
            let reason = r["reasonCode"][0]["coding"][0]["code"]
                .as_str()
                .unwrap_or("");
            if r["resourceType"] != "Encounter" || !reason.starts_with('O') {
                continue;
            }
            deliveries += 1;
            assert_eq!(r["class"]["code"], "IMP");
            let mother = r["subject"]["reference"].as_str().unwrap();
            let patient = by_url[mother];
            assert_eq!(patient["gender"], "female", "a delivery of a male patient");
            let (start, end) = (
                r["period"]["start"].as_str().unwrap(),
                r["period"]["end"].as_str().unwrap(),
            );
            let (from, to) = (instant(start), instant(end));
            let age = age_at(date(patient["birthDate"].as_str().unwrap()), from);
            assert!((15.0..=50.0).contains(&age), "a delivery at {age:.1}");
            let death = patient["deceasedDateTime"].as_str().map(instant);
            assert!(
                window_start <= from && from < to && to <= death.unwrap_or(now),
                "a delivery {from}..{to} outside the record"
            );
            assert!(
                to - from >= time::Duration::hours(20) && to - from <= time::Duration::days(5),
                "a delivery stay of {}",
                to - from
            );
            assert!(r["location"][0]["location"]["reference"]
                .as_str()
                .unwrap()
                .ends_with("-inpatient-ward"));
            // The delivery Condition, the outcome (single live birth) and the delivery itself.
            let diagnoses: Vec<&str> = r["diagnosis"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let c = by_url[d["condition"]["reference"].as_str().unwrap()];
                    assert_eq!(c["subject"]["reference"], mother);
                    c["code"]["coding"][0]["code"].as_str().unwrap()
                })
                .collect();
            assert_eq!(diagnoses, [reason, "Z37.0"]);
            let procedures: Vec<&str> = by_url
                .values()
                .filter(|x| x["resourceType"] == "Procedure" && x["encounter"]["reference"] == *url)
                .map(|x| x["code"]["coding"][0]["code"].as_str().unwrap())
                .collect();
            let expected_procedure = if reason == "O80" {
                "66348005"
            } else {
                cesareans += 1;
                "11466000"
            };
            assert_eq!(procedures, [expected_procedure], "{reason}");
            stays.push((mother, date(&start[..10]), date(&end[..10])));
        }
        // Every child born within the record (far enough from its ends for a whole stay) to a mother in the
        // family: exactly one stay of that mother covers the child's birth date.
        for (url, r) in &by_url {
            if r["resourceType"] != "RelatedPerson" || codes_of(&r["relationship"][0]) != ["MTH"] {
                continue;
            }
            let child = by_url[r["patient"]["reference"].as_str().unwrap()];
            let born = date(child["birthDate"].as_str().unwrap());
            let mother = by_dodid[identifier(r, DODID_SYSTEM).unwrap()];
            let covering = stays
                .iter()
                .filter(|(m, from, to)| *m == mother && *from <= born && born <= *to)
                .count();
            let inside = born >= (window_start + time::Duration::days(2)).date()
                && born <= (now - time::Duration::days(5)).date();
            let mothers = by_url
                .values()
                .filter(|x| {
                    x["resourceType"] == "RelatedPerson"
                        && x["patient"] == r["patient"]
                        && codes_of(&x["relationship"][0]) == ["MTH"]
                })
                .count();
            if inside && mothers == 1 {
                expected += 1;
                assert_eq!(
                    covering, 1,
                    "{url}: the birth on {born} is not in the mother's record"
                );
            }
            if !inside {
                assert_eq!(covering, 0, "a delivery of a child born outside the record");
            }
        }
        // Each stay is a child's birth.
        for (mother, from, to) in &stays {
            let child = by_url.values().any(|x| {
                x["resourceType"] == "RelatedPerson"
                    && by_dodid[identifier(x, DODID_SYSTEM).unwrap()] == *mother
                    && codes_of(&x["relationship"][0]) == ["MTH"]
                    && {
                        let born = date(
                            by_url[x["patient"]["reference"].as_str().unwrap()]["birthDate"]
                                .as_str()
                                .unwrap(),
                        );
                        *from <= born && born <= *to
                    }
            });
            assert!(child, "a delivery {from}..{to} without a child born then");
        }
        // Pregnancies end with a delivery of the same woman.
        for r in by_url.values() {
            if r["resourceType"] != "Condition" || r["code"]["coding"][0]["code"] != "Z34.90" {
                continue;
            }
            let ended = instant(r["abatementDateTime"].as_str().unwrap());
            let began = instant(r["onsetDateTime"].as_str().unwrap());
            let who = r["subject"]["reference"].as_str().unwrap();
            // No contraceptive started or renewed while pregnant.
            for x in by_url.values() {
                let rx = x["medicationCodeableConcept"]["coding"][0]["code"].as_str();
                if x["resourceType"] == "MedicationRequest"
                    && x["subject"]["reference"] == who
                    && matches!(rx, Some("751905" | "757594"))
                {
                    let t = instant(x["authoredOn"].as_str().unwrap());
                    assert!(
                        t < began || t > ended,
                        "a contraceptive prescribed at {t}, during a pregnancy"
                    );
                }
            }
            assert!(
                stays
                    .iter()
                    .any(|(m, from, to)| *m == who && *from <= ended.date() && ended.date() <= *to),
                "a pregnancy ending {ended} without a delivery"
            );
        }
    }
    assert!(
        deliveries >= 5 && deliveries >= expected && cesareans > 0 && cesareans < deliveries,
        "{deliveries} deliveries ({cesareans} cesarean) for {expected} births"
    );
}
