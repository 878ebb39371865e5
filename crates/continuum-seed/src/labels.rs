//! Sensitivity labels (`meta.security`) on the generated record, for the privacy rules: mental health,
//! substance use, reproductive and sexual health, HIV. A labelled resource carries the v3 ActCode of its kind
//! of sensitive information and the confidentiality code R (restricted).
//!
//! The rules, applied after a patient's record is written (so the simulation need not know about them):
//! a Condition by its ICD-10-CM code, a MedicationRequest by its RxNorm code or by the labelled Condition it
//! treats, an Encounter by its reason or type, a Procedure by the labelled Condition that is its reason, a
//! clinical note (DocumentReference) by the Encounter it documents.
//! Vital signs and laboratory results of such a visit stay unlabelled: they reveal nothing by themselves.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::terms::{
    CONTRACEPTIVE_PILL, CONTRACEPTIVE_PILL_PROGESTIN, ENC_PRENATAL, ENC_PRENATAL_INITIAL,
    FLUOXETINE, HIV_ART, ICD10CM, NALTREXONE, RXNORM, SERTRALINE, SNOMED,
};

pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// A kind of sensitive information (a v3 ActCode of the InformationSensitivityPolicy value set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sensitivity {
    /// Mental health.
    Psy,
    /// Substance use (alcohol and drugs; tobacco is not labelled).
    Eth,
    /// Sexual and reproductive health, pregnancy and contraception.
    Sex,
    Hiv,
}

impl Sensitivity {
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            Sensitivity::Psy => ("PSY", "psychiatry disorder information sensitivity"),
            Sensitivity::Eth => ("ETH", "substance abuse information sensitivity"),
            Sensitivity::Sex => (
                "SEX",
                "sexuality and reproductive health information sensitivity",
            ),
            Sensitivity::Hiv => ("HIV", "HIV/AIDS information sensitivity"),
        }
    }
}

/// The sensitivity of an ICD-10-CM code, if any.
pub(super) fn of_icd10(code: &str) -> Option<Sensitivity> {
    let cat = code.get(..3).unwrap_or(code);
    let n = |prefix: char| cat.strip_prefix(prefix).and_then(|d| d.parse::<u32>().ok());
    if cat == "B20" || cat == "Z21" {
        return Some(Sensitivity::Hiv);
    }
    if let Some(f) = n('F') {
        return match f {
            // F17: nicotine dependence is not protected like alcohol and drugs.
            10..=16 | 18 | 19 => Some(Sensitivity::Eth),
            17 => None,
            _ => Some(Sensitivity::Psy),
        };
    }
    if cat.starts_with('O')
        || matches!(
            cat,
            "Z30" | "Z31" | "Z32" | "Z33" | "Z34" | "Z35" | "Z36" | "Z37" | "Z39" | "Z3A"
        )
        || n('A').is_some_and(|a| (50..=64).contains(&a))
    {
        return Some(Sensitivity::Sex);
    }
    None
}

fn of_rxnorm(code: &str) -> Option<Sensitivity> {
    [
        (SERTRALINE.code, Sensitivity::Psy),
        (FLUOXETINE.code, Sensitivity::Psy),
        (NALTREXONE.code, Sensitivity::Eth),
        (HIV_ART.code, Sensitivity::Hiv),
        (CONTRACEPTIVE_PILL.code, Sensitivity::Sex),
        (CONTRACEPTIVE_PILL_PROGESTIN.code, Sensitivity::Sex),
    ]
    .iter()
    .find(|(c, _)| *c == code)
    .map(|(_, s)| *s)
}

fn of_snomed(code: &str) -> Option<Sensitivity> {
    (code == ENC_PRENATAL.code || code == ENC_PRENATAL_INITIAL.code).then_some(Sensitivity::Sex)
}

/// The sensitivity of one coding.
pub(super) fn of_coding(system: &str, code: &str) -> Option<Sensitivity> {
    match system {
        ICD10CM => of_icd10(code),
        RXNORM => of_rxnorm(code),
        SNOMED => of_snomed(code),
        _ => None,
    }
}

fn of_concepts<'a>(concepts: impl Iterator<Item = &'a Value>) -> Vec<Sensitivity> {
    let mut out = Vec::new();
    for c in concepts {
        for coding in c
            .get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let system = coding.get("system").and_then(Value::as_str).unwrap_or("");
            let code = coding.get("code").and_then(Value::as_str).unwrap_or("");
            out.extend(of_coding(system, code));
        }
    }
    out
}

fn array<'a>(r: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    r.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The `meta.security` list for a set of sensitivities.
pub(super) fn security(kinds: &[Sensitivity]) -> Value {
    let mut labels: Vec<Value> = kinds
        .iter()
        .map(|k| {
            let (code, display) = k.code();
            json!({ "system": ACT_CODE, "code": code, "display": display })
        })
        .collect();
    labels.push(json!({ "system": CONFIDENTIALITY, "code": "R", "display": "restricted" }));
    Value::Array(labels)
}

/// Labels the sensitive resources among transaction `entries` (each with `fullUrl` and `resource`).
pub(super) fn label(entries: &mut [Value]) {
    // Pass 1: by the resource's own codes.
    let mut by_url: BTreeMap<String, Vec<Sensitivity>> = BTreeMap::new();
    let mut own: Vec<Vec<Sensitivity>> = Vec::with_capacity(entries.len());
    for e in entries.iter() {
        let r = &e["resource"];
        let kinds = match r["resourceType"].as_str().unwrap_or("") {
            "Condition" | "Procedure" => of_concepts(std::iter::once(&r["code"])),
            "MedicationRequest" => of_concepts(std::iter::once(&r["medicationCodeableConcept"])),
            "Encounter" => of_concepts(array(r, "reasonCode").chain(array(r, "type"))),
            _ => Vec::new(),
        };
        if !kinds.is_empty() {
            if let Some(url) = e["fullUrl"].as_str() {
                by_url.insert(url.to_string(), kinds.clone());
            }
        }
        own.push(kinds);
    }
    // Pass 2: what a resource is for (reasonReference) makes it as sensitive as that; a note is as
    // sensitive as the visit it documents.
    for (e, mut kinds) in entries.iter_mut().zip(own) {
        let r = &e["resource"];
        let note_of = (r["resourceType"] == "DocumentReference")
            .then(|| array(&r["context"], "encounter"))
            .into_iter()
            .flatten();
        for reason in array(r, "reasonReference").chain(note_of) {
            if let Some(k) = reason["reference"].as_str().and_then(|u| by_url.get(u)) {
                kinds.extend(k);
            }
        }
        if kinds.is_empty() {
            continue;
        }
        kinds.sort();
        kinds.dedup();
        if let Some(r) = e.get_mut("resource").and_then(Value::as_object_mut) {
            let meta = r.entry("meta").or_insert_with(|| json!({}));
            meta["security"] = security(&kinds);
        }
    }
}
