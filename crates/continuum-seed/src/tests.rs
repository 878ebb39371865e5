#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::terms::FEMALE_ONLY_SNOMED;
use super::*;

fn cfg(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        ..SynthConfig::default()
    }
}

fn entries(bundle: &Value) -> &Vec<Value> {
    bundle["entry"].as_array().unwrap()
}

fn resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    entries(bundle).iter().map(|e| &e["resource"])
}

fn patient(bundle: &Value) -> &Value {
    resources(bundle)
        .find(|r| r["resourceType"] == "Patient")
        .unwrap()
}

fn instant(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339)
        .unwrap_or_else(|e| panic!("not a dateTime with offset: {s}: {e}"))
}

fn date(s: &str) -> Date {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .unwrap_or_else(|e| panic!("not a date: {s}: {e}"))
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

/// Every coding `(system, code)` anywhere inside `v`.
fn codings<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(s)), Some(Value::String(c))) =
                (m.get("system"), m.get("code"))
            {
                out.push((s, c));
            }
            m.values().for_each(|x| codings(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| codings(x, out)),
        _ => {}
    }
}

/// `Type?identifier=system|value` for every resource of the provider bundle.
fn provider_targets(cfg: &SynthConfig) -> BTreeSet<String> {
    let b = provider_bundle(cfg);
    resources(&b)
        .flat_map(|r| {
            let t = r["resourceType"].as_str().unwrap().to_string();
            r["identifier"].as_array().unwrap().iter().map(move |i| {
                format!(
                    "{t}?identifier={}|{}",
                    i["system"].as_str().unwrap(),
                    i["value"].as_str().unwrap()
                )
            })
        })
        .collect()
}

#[test]
fn synth_same_seed_gives_identical_json_and_indexes_differ() {
    let c = cfg(42);
    let a = serde_json::to_string(&patient_bundle(&c, 7)).unwrap();
    let b = serde_json::to_string(&patient_bundle(&c, 7)).unwrap();
    assert_eq!(a, b);
    assert_eq!(provider_bundle(&c), provider_bundle(&c));
    // The streaming iterator yields exactly the single-patient bundles.
    for (i, bundle) in patient_bundles(&c, 4).enumerate() {
        assert_eq!(bundle, patient_bundle(&c, i as u64));
    }
    let p7 = patient(&patient_bundle(&c, 7)).clone();
    let p8 = patient(&patient_bundle(&c, 8)).clone();
    assert_ne!(p7["identifier"], p8["identifier"]);
    assert_ne!(p7, p8);
    assert_ne!(
        patient_bundle(&c, 7),
        patient_bundle(&cfg(43), 7),
        "the seed must matter"
    );
    // "now" is an input, not the clock.
    let later = SynthConfig {
        now: time::macros::datetime!(2030-06-01 00:00:00 UTC),
        ..c
    };
    assert_ne!(patient_bundle(&c, 7), patient_bundle(&later, 7));
}

#[test]
fn synth_dod_ids_are_unique_and_synthetic() {
    let c = cfg(5);
    let mut seen = BTreeSet::new();
    for b in patient_bundles(&c, 300) {
        let p = patient(&b);
        let ids = p["identifier"].as_array().unwrap();
        let dodid = ids.iter().find(|i| i["system"] == DODID_SYSTEM).unwrap()["value"]
            .as_str()
            .unwrap();
        assert!(dodid.len() == 10 && dodid.starts_with("99"), "{dodid}");
        assert!(seen.insert(dodid.to_string()), "duplicate DoD ID {dodid}");
        for i in ids {
            let system = i["system"].as_str().unwrap();
            assert!(
                system.starts_with("urn:continuum:synthetic:") || system == ORGANIZATION_SYSTEM,
                "{system}"
            );
        }
    }
}

#[test]
fn synth_bundles_are_well_formed_and_references_resolve() {
    let c = cfg(3);
    let targets = provider_targets(&c);

    let pb = provider_bundle(&c);
    assert_eq!(pb["resourceType"], "Bundle");
    assert_eq!(pb["type"], "batch");
    for e in entries(&pb) {
        let r = &e["resource"];
        assert!(r.get("id").is_none());
        assert_eq!(e["request"]["method"], "POST");
        assert_eq!(e["request"]["url"], r["resourceType"]);
        let id = &r["identifier"][0];
        let expected = format!(
            "identifier={}|{}",
            id["system"].as_str().unwrap(),
            id["value"].as_str().unwrap()
        );
        assert_eq!(e["request"]["ifNoneExist"], expected.as_str());
    }
    assert!(targets
        .iter()
        .any(|t| t
            .starts_with("Organization?identifier=https://github.com/synthetichealth/synthea|")));
    assert!(targets
        .iter()
        .any(|t| t.starts_with("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99999")));

    let mut conditional_refs = 0;
    for b in patient_bundles(&c, 40) {
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "transaction");
        let mut full_urls = BTreeSet::new();
        for e in entries(&b) {
            let url = e["fullUrl"].as_str().unwrap();
            let uuid = url.strip_prefix("urn:uuid:").unwrap();
            assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{url}");
            assert!(full_urls.insert(url), "duplicate fullUrl {url}");
            let r = &e["resource"];
            assert!(r.get("id").is_none(), "POSTed resources carry no id");
            assert_eq!(e["request"]["method"], "POST");
            assert_eq!(e["request"]["url"], r["resourceType"]);
            if r["resourceType"] == "Patient" {
                let ine = e["request"]["ifNoneExist"].as_str().unwrap();
                let (system, value) = ine
                    .strip_prefix("identifier=")
                    .unwrap()
                    .split_once('|')
                    .unwrap();
                assert_eq!(system, DODID_SYSTEM);
                assert!(r["identifier"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["system"] == system && i["value"] == value));
            } else {
                assert!(e["request"].get("ifNoneExist").is_none());
            }
        }
        assert_eq!(
            resources(&b)
                .filter(|r| r["resourceType"] == "Patient")
                .count(),
            1
        );
        for r in resources(&b) {
            let mut refs = Vec::new();
            references(r, &mut refs);
            for reference in refs {
                if reference.starts_with("urn:uuid:") {
                    assert!(
                        full_urls.contains(reference),
                        "dangling {reference} in {}",
                        r["resourceType"]
                    );
                } else {
                    assert!(
                        targets.contains(reference),
                        "conditional reference to nothing: {reference}"
                    );
                    conditional_refs += 1;
                }
            }
        }
        // Every clinical resource points at the patient.
        let patient_url = entries(&b)[0]["fullUrl"].as_str().unwrap();
        for r in resources(&b).skip(1) {
            let p = r.get("subject").or_else(|| r.get("patient")).unwrap();
            assert_eq!(p["reference"], patient_url, "{}", r["resourceType"]);
        }
    }
    assert!(conditional_refs > 0);
}

#[test]
fn synth_dates_are_ordered_and_never_after_now() {
    for seed in [1, 2] {
        let c = cfg(seed);
        for b in patient_bundles(&c, 40) {
            let p = patient(&b);
            let birth = date(p["birthDate"].as_str().unwrap());
            let death = p
                .get("deceasedDateTime")
                .map(|d| instant(d.as_str().unwrap()));
            let end = death.unwrap_or(c.now);
            let mut periods = BTreeMap::new();
            for e in entries(&b) {
                let r = &e["resource"];
                if r["resourceType"] == "Encounter" {
                    let start = instant(r["period"]["start"].as_str().unwrap());
                    let stop = instant(r["period"]["end"].as_str().unwrap());
                    assert!(
                        birth <= start.date(),
                        "encounter {start} before birth {birth}"
                    );
                    assert!(
                        start <= stop && stop <= end && end <= c.now,
                        "{start} {stop} {end}"
                    );
                    periods.insert(e["fullUrl"].as_str().unwrap().to_string(), (start, stop));
                }
            }
            for r in resources(&b) {
                for key in [
                    "effectiveDateTime",
                    "occurrenceDateTime",
                    "authoredOn",
                    "recordedDate",
                ] {
                    if let Some(s) = r.get(key) {
                        let t = instant(s.as_str().unwrap());
                        let enc = r["encounter"]["reference"].as_str().unwrap();
                        let (start, stop) = periods[enc];
                        assert!(
                            start <= t && t <= stop,
                            "{key} {t} outside its encounter {start}..{stop}"
                        );
                    }
                }
                for key in ["issued", "onsetDateTime", "abatementDateTime", "recorded"] {
                    if let Some(s) = r.get(key) {
                        let t = instant(s.as_str().unwrap());
                        assert!(birth <= t.date() && t <= c.now, "{key} {t}");
                    }
                }
                if let (Some(on), Some(off)) = (r.get("onsetDateTime"), r.get("abatementDateTime"))
                {
                    assert!(instant(on.as_str().unwrap()) < instant(off.as_str().unwrap()));
                }
                if let Some(period) = r.get("performedPeriod") {
                    assert!(
                        instant(period["start"].as_str().unwrap())
                            <= instant(period["end"].as_str().unwrap())
                    );
                }
                if let Some(s) = r.get("expirationDate") {
                    date(s.as_str().unwrap());
                }
            }
        }
    }
}

#[test]
fn synth_no_pregnancy_or_female_only_codes_for_males() {
    let c = cfg(11);
    let (mut pregnancies, mut prostates) = (0, 0);
    for b in patient_bundles(&c, 300) {
        let female = patient(&b)["gender"] == "female";
        let mut codes = Vec::new();
        for r in resources(&b) {
            codings(r, &mut codes);
        }
        for (system, code) in codes {
            let female_only = match system {
                terms::ICD10CM => {
                    code.starts_with('O')
                        || ["Z32", "Z33", "Z34", "Z35", "Z36", "Z37", "Z39"]
                            .iter()
                            .any(|p| code.starts_with(p))
                        || ["N7", "N8", "N9"].iter().any(|p| code.starts_with(p))
                            && !code.starts_with("N99")
                }
                terms::SNOMED => FEMALE_ONLY_SNOMED.contains(&code),
                _ => false,
            };
            let male_only =
                system == terms::ICD10CM && (code.starts_with("N40") || code.starts_with("C61"));
            assert!(
                female || !female_only,
                "female-only code {code} on a male patient"
            );
            assert!(
                !(male_only && female),
                "male-only code {code} on a female patient"
            );
            pregnancies += usize::from(female && code == terms::PREGNANCY.code);
            prostates += usize::from(!female && code == terms::BPH.code);
        }
    }
    assert!(
        pregnancies > 0 && prostates > 0,
        "the check must not be vacuous: {pregnancies} {prostates}"
    );
}

#[test]
fn synth_bundle_sizes_are_synthea_like() {
    let c = SynthConfig::default();
    let n = 100;
    let (mut total, mut full_total, mut full_count) = (0, 0, 0);
    for b in patient_bundles(&c, n) {
        let len = entries(&b).len();
        total += len;
        let p = patient(&b);
        let born = date(p["birthDate"].as_str().unwrap());
        let full_history = born.year() < 2014 && p.get("deceasedDateTime").is_none();
        assert!(len <= 400, "{len} entries");
        if full_history {
            // 40 encounters; the sickest older patients run a little over 300, like Synthea's.
            assert!(
                (100..=360).contains(&len),
                "{len} entries for a patient with ten years of history"
            );
            full_total += len;
            full_count += 1;
        }
    }
    let mean = total / n as usize;
    assert!((100..=300).contains(&mean), "mean {mean} entries");
    let full_mean = full_total / full_count;
    assert!(
        (150..=300).contains(&full_mean),
        "mean {full_mean} entries with full history"
    );
}

#[test]
fn synth_clinical_content_is_coded_as_specified() {
    let c = cfg(9);
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    for b in patient_bundles(&c, 30) {
        let by_url: BTreeMap<&str, &Value> = entries(&b)
            .iter()
            .map(|e| (e["fullUrl"].as_str().unwrap(), &e["resource"]))
            .collect();
        for r in resources(&b) {
            let kind = match r["resourceType"].as_str().unwrap() {
                "Observation" => {
                    assert_eq!(r["status"], "final");
                    let cat = r["category"][0]["coding"][0]["code"].as_str().unwrap();
                    assert!(cat == "vital-signs" || cat == "laboratory");
                    assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
                    let quantities: Vec<&Value> = match r.get("component") {
                        Some(cs) => cs
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|c| &c["valueQuantity"])
                            .collect(),
                        None => vec![&r["valueQuantity"]],
                    };
                    for q in quantities {
                        assert_eq!(q["system"], "http://unitsofmeasure.org");
                        assert!(q["value"].is_number() && q["code"].is_string());
                    }
                    if cat == "laboratory" {
                        "lab"
                    } else {
                        "vital"
                    }
                }
                "DiagnosticReport" => {
                    for res in r["result"].as_array().unwrap() {
                        let o = by_url[res["reference"].as_str().unwrap()];
                        assert_eq!(o["resourceType"], "Observation");
                        assert_eq!(o["category"][0]["coding"][0]["code"], "laboratory");
                    }
                    "report"
                }
                "Condition" => {
                    assert_eq!(
                        r["code"]["coding"][0]["system"],
                        "http://hl7.org/fhir/sid/icd-10-cm"
                    );
                    "condition"
                }
                "MedicationRequest" => {
                    assert_eq!(
                        r["medicationCodeableConcept"]["coding"][0]["system"],
                        terms::RXNORM
                    );
                    assert!(r["dispenseRequest"]["numberOfRepeatsAllowed"].is_u64());
                    "medication"
                }
                "Immunization" => {
                    assert_eq!(
                        r["vaccineCode"]["coding"][0]["system"],
                        "http://hl7.org/fhir/sid/cvx"
                    );
                    assert_eq!(r["status"], "completed");
                    assert!(r["lotNumber"].is_string());
                    "immunization"
                }
                "Encounter" => {
                    assert_eq!(r["class"]["code"], "AMB");
                    assert!(r["serviceProvider"]["reference"]
                        .as_str()
                        .unwrap()
                        .starts_with("Organization?"));
                    "encounter"
                }
                "AllergyIntolerance" => "allergy",
                "Procedure" => "procedure",
                "Patient" => "patient",
                other => panic!("unexpected {other}"),
            };
            *seen.entry(kind).or_default() += 1;
        }
    }
    for kind in [
        "lab",
        "vital",
        "report",
        "condition",
        "medication",
        "immunization",
        "encounter",
        "allergy",
        "procedure",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in 30 patients: {seen:?}"
        );
    }
    // Interpretations are only H, L or N and come with a reference range.
    for b in patient_bundles(&c, 10) {
        for r in resources(&b).filter(|r| r.get("interpretation").is_some()) {
            let code = r["interpretation"][0]["coding"][0]["code"]
                .as_str()
                .unwrap();
            assert!(["H", "L", "N"].contains(&code));
            assert!(r["referenceRange"].is_array());
        }
    }
}

#[test]
fn synth_resources_pass_the_fhir_validator() {
    let c = cfg(13);
    let check = |r: &Value| {
        if let Err(issues) = continuum_fhir::validate::validate_resource(r) {
            panic!("invalid {}: {issues:#?}", r["resourceType"]);
        }
    };
    let providers = provider_bundle(&c);
    check(&providers);
    resources(&providers).for_each(check);
    for b in patient_bundles(&c, 12) {
        check(&b);
        resources(&b).for_each(check);
    }
    // The validator is not a no-op: a generated resource with a scalar where R4 has an array fails.
    let b = patient_bundle(&c, 0);
    let mut obs = resources(&b)
        .find(|r| r["resourceType"] == "Observation")
        .unwrap()
        .clone();
    obs["category"] = obs["category"][0].clone();
    assert!(continuum_fhir::validate::validate_resource(&obs).is_err());
}
