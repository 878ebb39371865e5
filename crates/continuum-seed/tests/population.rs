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
        "Appointment",
        "CodeSystem",
        "Coverage",
        "HealthcareService",
        "Location",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
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
        _ => return None,
    })
}

#[test]
fn seed_records_are_clinically_plausible() {
    let now = cfg().now;
    let childhood_vaccines = ["20", "10", "08", "133", "161", "03", "21"];
    let (mut pregnancies, mut values, mut flagged) = (0, 0, 0);
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
                        && ["424441002", "424619006", "252160004"].contains(code));
                assert!(female || !female_only, "{code} on a male patient");
                pregnancies += usize::from(*code == "Z34.90");
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
        pregnancies > 0 && values > 1000 && flagged > 0,
        "vacuous: {pregnancies} {values} {flagged}"
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
                c if c.starts_with("Z30") || c.starts_with("Z34") => Some("SEX"),
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
