//! FHIR R4 JSON for one patient's resources. Pure formatting: the simulation in `patient.rs` decides what
//! happens and when; these functions only write it down. Resources carry no `id` (they are POSTed with a
//! `urn:uuid:` fullUrl), and every time is written with its offset.

use serde_json::{json, Value};
use time::{OffsetDateTime, UtcOffset};

use super::terms::{Concept, Form, Loinc, Med, BP_PANEL, DIASTOLIC, LOINC, SYSTOLIC, UCUM};
use super::{fhir_date, fhir_datetime};

const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";

/// Where and for whom a resource is being written: the patient, the encounter, its clinician and facility.
pub(super) struct Ctx<'a> {
    pub patient: &'a str,
    pub encounter: &'a str,
    pub offset: UtcOffset,
    pub practitioner: &'a Value,
    pub org: &'a Value,
}

impl Ctx<'_> {
    fn subject(&self) -> Value {
        json!({ "reference": self.patient })
    }

    fn encounter(&self) -> Value {
        json!({ "reference": self.encounter })
    }

    fn dt(&self, t: OffsetDateTime) -> String {
        fhir_datetime(t, self.offset)
    }
}

/// `{"coding": [{system, code, display}], "text": display}`
pub(super) fn concept(system: &str, c: Concept) -> Value {
    json!({ "coding": [{ "system": system, "code": c.code, "display": c.display }], "text": c.display })
}

fn reference(urn: &str) -> Value {
    json!({ "reference": urn })
}

/// Rounds to `decimals` places and renders an integer when `decimals` is 0 (`120`, not `120.0`).
fn number(v: f64, decimals: u32) -> Value {
    let f = 10f64.powi(decimals as i32);
    let r = (v * f).round() / f;
    if decimals == 0 {
        json!(r as i64)
    } else {
        json!(r)
    }
}

fn ucum(v: Value, unit: &str) -> Value {
    json!({ "value": v, "unit": unit, "system": UCUM, "code": unit })
}

/// The reference range, interpretation (H/L/N) and value of a LOINC quantity, as object members.
fn measured(
    loinc: &Loinc,
    value: f64,
    decimals: u32,
    with_range: bool,
) -> serde_json::Map<String, Value> {
    let v = number(value, decimals);
    let rounded = v.as_f64().unwrap_or(value);
    let mut m = serde_json::Map::new();
    m.insert("valueQuantity".into(), ucum(v, loinc.unit));
    if with_range && (loinc.low.is_some() || loinc.high.is_some()) {
        let (code, display) = match (loinc.low, loinc.high) {
            (Some(low), _) if rounded < low => ("L", "Low"),
            (_, Some(high)) if rounded > high => ("H", "High"),
            _ => ("N", "Normal"),
        };
        m.insert(
            "interpretation".into(),
            json!([{ "coding": [{ "system": INTERPRETATION, "code": code, "display": display }], "text": display }]),
        );
        let mut range = serde_json::Map::new();
        if let Some(low) = loinc.low {
            range.insert("low".into(), ucum(json!(low), loinc.unit));
        }
        if let Some(high) = loinc.high {
            range.insert("high".into(), ucum(json!(high), loinc.unit));
        }
        m.insert("referenceRange".into(), json!([range]));
    }
    m
}

fn loinc_code(code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": LOINC, "code": code, "display": display }], "text": display })
}

/// Observation category: `vital-signs`, `laboratory` or `exam`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Category {
    VitalSigns,
    Laboratory,
    Exam,
}

fn category(cat: Category) -> Value {
    let (code, display) = match cat {
        Category::VitalSigns => ("vital-signs", "Vital Signs"),
        Category::Laboratory => ("laboratory", "Laboratory"),
        Category::Exam => ("exam", "Exam"),
    };
    json!([{ "coding": [{ "system": OBSERVATION_CATEGORY, "code": code, "display": display }], "text": display }])
}

fn observation_head(
    ctx: &Ctx,
    cat: Category,
    code: Value,
    effective: OffsetDateTime,
    issued: OffsetDateTime,
) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": category(cat),
        "code": code,
        "subject": ctx.subject(),
        "encounter": ctx.encounter(),
        "effectiveDateTime": ctx.dt(effective),
        "issued": ctx.dt(issued),
    })
}

/// A quantitative Observation. `with_range` adds the adult reference range and an interpretation.
#[allow(clippy::too_many_arguments)]
pub(super) fn observation(
    ctx: &Ctx,
    cat: Category,
    loinc: &Loinc,
    value: f64,
    decimals: u32,
    effective: OffsetDateTime,
    issued: OffsetDateTime,
    with_range: bool,
) -> Value {
    let mut obs = observation_head(
        ctx,
        cat,
        loinc_code(loinc.code, loinc.display),
        effective,
        issued,
    );
    if let Some(o) = obs.as_object_mut() {
        o.extend(measured(loinc, value, decimals, with_range));
    }
    obs
}

/// An Observation with a value already shaped (`value` is one `value[x]` member, such as
/// `("valueString", "20/20")`), performed by the clinician of `ctx`.
pub(super) fn observation_with(
    ctx: &Ctx,
    cat: Category,
    code: Value,
    value: (&str, Value),
    effective: OffsetDateTime,
    issued: OffsetDateTime,
) -> Value {
    let mut obs = observation_head(ctx, cat, code, effective, issued);
    if let Some(o) = obs.as_object_mut() {
        o.insert("performer".into(), json!([ctx.practitioner.clone()]));
        o.insert(value.0.into(), value.1);
    }
    obs
}

/// `{"coding": [LOINC code, display], "text": display}`
pub(super) fn loinc_concept(c: Concept) -> Value {
    loinc_code(c.code, c.display)
}

/// The blood-pressure panel (85354-9) with systolic and diastolic components.
pub(super) fn blood_pressure(
    ctx: &Ctx,
    systolic: f64,
    diastolic: f64,
    at: OffsetDateTime,
    with_range: bool,
) -> Value {
    let component = |l: &Loinc, v: f64| {
        let mut c = serde_json::Map::new();
        c.insert("code".into(), loinc_code(l.code, l.display));
        c.extend(measured(l, v, 0, with_range));
        Value::Object(c)
    };
    let mut obs = observation_head(
        ctx,
        Category::VitalSigns,
        loinc_code(BP_PANEL.code, BP_PANEL.display),
        at,
        at,
    );
    if let Some(o) = obs.as_object_mut() {
        o.insert(
            "component".into(),
            json!([
                component(&SYSTOLIC, systolic),
                component(&DIASTOLIC, diastolic)
            ]),
        );
    }
    obs
}

/// A laboratory DiagnosticReport for a panel, pointing at its result Observations.
pub(super) fn lab_report(
    ctx: &Ctx,
    panel: Concept,
    results: &[String],
    effective: OffsetDateTime,
    issued: OffsetDateTime,
) -> Value {
    json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{
            "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB", "display": "Laboratory" }],
            "text": "Laboratory"
        }],
        "code": loinc_code(panel.code, panel.display),
        "subject": ctx.subject(),
        "encounter": ctx.encounter(),
        "effectiveDateTime": ctx.dt(effective),
        "issued": ctx.dt(issued),
        "performer": [ctx.org.clone()],
        "result": results.iter().map(|r| reference(r)).collect::<Vec<_>>(),
    })
}

/// An ambulatory Encounter.
pub(super) fn encounter(
    ctx: &Ctx,
    kind: Concept,
    reason: Option<(&str, Concept)>,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Value {
    let mut e = json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory" },
        "type": [concept(super::terms::SNOMED, kind)],
        "subject": ctx.subject(),
        "participant": [{
            "type": [{
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "PPRF",
                    "display": "primary performer"
                }],
                "text": "primary performer"
            }],
            "period": { "start": ctx.dt(start), "end": ctx.dt(end) },
            "individual": ctx.practitioner.clone()
        }],
        "period": { "start": ctx.dt(start), "end": ctx.dt(end) },
        "serviceProvider": ctx.org.clone(),
    });
    if let (Some((system, c)), Some(o)) = (reason, e.as_object_mut()) {
        o.insert("reasonCode".into(), json!([concept(system, c)]));
    }
    e
}

/// A Condition coded in `system`; `abated` makes it resolved.
#[allow(clippy::too_many_arguments)]
pub(super) fn condition(
    ctx: &Ctx,
    system: &str,
    code: Concept,
    problem_list: bool,
    onset: OffsetDateTime,
    abated: Option<OffsetDateTime>,
    recorded: OffsetDateTime,
) -> Value {
    let (status, status_display) = if abated.is_some() {
        ("resolved", "Resolved")
    } else {
        ("active", "Active")
    };
    let (cat, cat_display) = if problem_list {
        ("problem-list-item", "Problem List Item")
    } else {
        ("encounter-diagnosis", "Encounter Diagnosis")
    };
    let mut c = json!({
        "resourceType": "Condition",
        "clinicalStatus": { "coding": [{ "system": CONDITION_CLINICAL, "code": status, "display": status_display }] },
        "verificationStatus": {
            "coding": [{ "system": CONDITION_VERIFICATION, "code": "confirmed", "display": "Confirmed" }]
        },
        "category": [{ "coding": [{ "system": CONDITION_CATEGORY, "code": cat, "display": cat_display }] }],
        "code": concept(system, code),
        "subject": ctx.subject(),
        "encounter": ctx.encounter(),
        "onsetDateTime": ctx.dt(onset),
    });
    if let Some(o) = c.as_object_mut() {
        if let Some(a) = abated {
            o.insert("abatementDateTime".into(), json!(ctx.dt(a)));
        }
        o.insert("recordedDate".into(), json!(ctx.dt(recorded)));
        o.insert("recorder".into(), ctx.practitioner.clone());
    }
    c
}

/// How much is dispensed per fill, for how long, and how often it may be refilled.
pub(super) struct Supply {
    pub days: u32,
    pub repeats: u32,
    pub validity_days: i64,
}

/// A MedicationRequest (outpatient order) with dosage and dispense request.
#[allow(clippy::too_many_arguments)]
pub(super) fn medication_request(
    ctx: &Ctx,
    med: &Med,
    status: &str,
    authored: OffsetDateTime,
    supply: &Supply,
    reason: Option<&str>,
    prior: Option<&str>,
) -> Value {
    let (dose, dose_unit, dose_code) = match med.form {
        Form::Tablet => (1, "tablet", "{tbl}"),
        Form::Capsule => (1, "capsule", "{cap}"),
        Form::Inhaler => (2, "puff", "{puff}"),
    };
    let quantity = match med.form {
        Form::Tablet => {
            json!({ "value": med.per_day * supply.days, "unit": "tablet", "system": UCUM, "code": "{tbl}" })
        }
        Form::Capsule => {
            json!({ "value": med.per_day * supply.days, "unit": "capsule", "system": UCUM, "code": "{cap}" })
        }
        Form::Inhaler => json!({ "value": 1, "unit": "inhaler" }),
    };
    let validity_end = authored + time::Duration::days(supply.validity_days);
    let mut mr = json!({
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept(super::terms::RXNORM, Concept { code: med.code, display: med.display }),
        "subject": ctx.subject(),
        "encounter": ctx.encounter(),
        "authoredOn": ctx.dt(authored),
        "requester": ctx.practitioner.clone(),
    });
    if let Some(o) = mr.as_object_mut() {
        if let Some(r) = reason {
            o.insert("reasonReference".into(), json!([reference(r)]));
        }
        o.insert(
            "dosageInstruction".into(),
            json!([{
                "sequence": 1,
                "text": med.sig,
                "timing": { "repeat": { "frequency": med.per_day, "period": 1, "periodUnit": "d" } },
                "asNeededBoolean": med.as_needed,
                "doseAndRate": [{
                    "type": { "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                        "code": "ordered",
                        "display": "Ordered"
                    }] },
                    "doseQuantity": { "value": dose, "unit": dose_unit, "system": UCUM, "code": dose_code }
                }]
            }]),
        );
        o.insert(
            "dispenseRequest".into(),
            json!({
                "validityPeriod": { "start": ctx.dt(authored), "end": ctx.dt(validity_end) },
                "numberOfRepeatsAllowed": supply.repeats,
                "quantity": quantity,
                "expectedSupplyDuration": { "value": supply.days, "unit": "days", "system": UCUM, "code": "d" }
            }),
        );
        if let Some(p) = prior {
            o.insert("priorPrescription".into(), reference(p));
        }
    }
    mr
}

/// A completed Immunization.
pub(super) fn immunization(
    ctx: &Ctx,
    vaccine: Concept,
    at: OffsetDateTime,
    lot: &str,
    expires: OffsetDateTime,
    infant: bool,
) -> Value {
    let subcutaneous = matches!(vaccine.code, "03" | "21");
    let (route, route_display) = if subcutaneous {
        ("SC", "Injection, subcutaneous")
    } else {
        ("IM", "Injection, intramuscular")
    };
    let (site, site_display) = if infant {
        ("LT", "left thigh")
    } else {
        ("LA", "left arm")
    };
    json!({
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": concept(super::terms::CVX, vaccine),
        "patient": ctx.subject(),
        "encounter": ctx.encounter(),
        "occurrenceDateTime": ctx.dt(at),
        "recorded": ctx.dt(at),
        "primarySource": true,
        "lotNumber": lot,
        "expirationDate": fhir_date(expires, ctx.offset),
        "site": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActSite", "code": site, "display": site_display }] },
        "route": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration",
            "code": route,
            "display": route_display
        }] },
        "doseQuantity": { "value": 0.5, "unit": "mL", "system": UCUM, "code": "mL" },
        "performer": [{ "actor": ctx.practitioner.clone() }],
    })
}

/// A completed Procedure (SNOMED CT).
pub(super) fn procedure(
    ctx: &Ctx,
    code: Concept,
    start: OffsetDateTime,
    end: OffsetDateTime,
    reason: Option<&str>,
) -> Value {
    let mut p = json!({
        "resourceType": "Procedure",
        "status": "completed",
        "code": concept(super::terms::SNOMED, code),
        "subject": ctx.subject(),
        "encounter": ctx.encounter(),
        "performedPeriod": { "start": ctx.dt(start), "end": ctx.dt(end) },
        "performer": [{ "actor": ctx.practitioner.clone() }],
    });
    if let (Some(r), Some(o)) = (reason, p.as_object_mut()) {
        o.insert("reasonReference".into(), json!([reference(r)]));
    }
    p
}

/// A confirmed, active drug allergy (RxNorm ingredient) with one reaction.
pub(super) fn allergy(
    ctx: &Ctx,
    substance: Concept,
    reaction: Concept,
    recorded: OffsetDateTime,
) -> Value {
    let (criticality, severity) = match reaction.code {
        "39579001" => ("high", "severe"),
        "126485001" => ("low", "moderate"),
        _ => ("low", "mild"),
    };
    json!({
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active",
            "display": "Active"
        }] },
        "verificationStatus": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": "confirmed",
            "display": "Confirmed"
        }] },
        "type": "allergy",
        "category": ["medication"],
        "criticality": criticality,
        "code": concept(super::terms::RXNORM, substance),
        "patient": ctx.subject(),
        "encounter": ctx.encounter(),
        "recordedDate": ctx.dt(recorded),
        "recorder": ctx.practitioner.clone(),
        "reaction": [{
            "manifestation": [concept(super::terms::SNOMED, reaction)],
            "severity": severity
        }],
    })
}
