//! The simulation of one patient: who they are, where they were stationed, when they were seen, and what
//! was found, ordered and given at each visit. Writes the result as a transaction bundle through
//! `resources.rs`.
//!
//! Model (deliberately simple): a beneficiary category fixes age and sex odds; chronic conditions have a
//! true onset drawn from age-dependent odds and are recorded at the next wellness or follow-up visit, then
//! treated and renewed yearly; sick visits bring an acute condition, vitals and sometimes a culture and a
//! prescription; wellness visits bring vitals, screening labs and the immunizations due for the age.
//! Pregnancy only for women 18–42 (in the population's records, exactly the births of the family's children:
//! prenatal visits, then the delivery admission of `delivery.rs`). Every time lies between birth and
//! min(death, now).

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::person::*;
use super::providers::Providers;
use super::resources::{self as fhir, Category, Ctx, Supply};
use super::terms::*;
use super::{fhir_date, fhir_datetime, new_urn, new_uuid, splitmix64, stream_rng, SynthConfig};
use super::{DODID_SYSTEM, MRN_SYSTEM, ORGANIZATION_SYSTEM};

mod delivery;
mod exams;
mod inpatient;
mod notes;
mod reports;

/// Clinical notes are written for the visits of the last this many years.
const NOTE_YEARS: f64 = 3.0;

const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wellness,
    Symptom,
    FollowUp,
    PrenatalInitial,
    Prenatal,
}

struct Pregnancy {
    onset: OffsetDateTime,
    due: OffsetDateTime,
    condition: String,
}

/// The simulation state while walking through the visits.
struct Sim<'a> {
    cfg: &'a SynthConfig,
    prov: &'a Providers,
    rng: StdRng,
    p: Person,
    patient: String,
    /// The end of the record: death, or now.
    end: OffsetDateTime,
    entries: Vec<Value>,
    chronic: Vec<Chronic>,
    allergy_recorded: bool,
    pregnancy: Option<Pregnancy>,
    given: BTreeSet<&'static str>,
    /// When the last Tdap was given, to repeat it every ten years.
    last_tdap: Option<OffsetDateTime>,
    /// Whether this is a record of the population (the legacy bundles stay as they were): recent visits get
    /// a clinical note (DocumentReference), and the record gets emergency visits, inpatient stays, imaging
    /// and pathology reports, vision tests and dental readiness classes.
    population: bool,
    /// The random stream of what the population's records have beyond the legacy ones, so adding to them
    /// never changed what was drawn before (see [`Sim::with_aux`]).
    aux: StdRng,
    /// When the person was already at a visit (start, end), so inpatient stays fall between visits.
    busy: Vec<(OffsetDateTime, OffsetDateTime)>,
    /// Lines of uncorrected visual acuity (right, left) once myopia is found.
    myopia: Option<(usize, usize)>,
    /// The periodic health assessments so far, for the dental readiness class 4 of those overdue.
    assessments: Vec<exams::Assessment>,
    /// When the person had dental examinations.
    dental_seen: Vec<OffsetDateTime>,
    /// The childbirth admissions of a mother of the population, planned before the visits.
    deliveries: Vec<delivery::Delivery>,
}

/// The identifiers of a simulated patient (the population derives them from the family, the legacy path from
/// the patient index).
pub(super) struct Identity {
    /// 10 digits, under [`DODID_SYSTEM`]; also the Patient's `ifNoneExist` key.
    pub(super) dodid: String,
    /// Under [`MRN_SYSTEM`].
    pub(super) mrn: String,
    /// Whether the record includes dental examinations and clinical notes (the population's; the legacy
    /// bundles stay as they were).
    pub(super) dental: bool,
}

impl Identity {
    /// Bijections of the index (multipliers coprime to the modulus, no overflow), so identifiers never
    /// repeat within a seed for the first 10^8 patients.
    fn legacy(seed: u64, index: u64) -> Self {
        const DODIDS: u64 = 100_000_000;
        const MRNS: u64 = 1_000_000_000;
        let dodid =
            ((index % DODIDS) * 48_271 % DODIDS + splitmix64(seed ^ 0xD0D) % DODIDS) % DODIDS;
        let mrn = ((index % MRNS) * 2_654_435_761 % MRNS + splitmix64(seed ^ 0x3A7) % MRNS) % MRNS;
        Identity {
            dodid: format!("99{dodid:08}"),
            mrn: format!("SYN{mrn:09}"),
            dental: false,
        }
    }
}

/// A child the patient gave birth to (the population's mothers): when, and the `birthDate` the child's own
/// Patient shows (the date where the family lives now, which may differ by a day from the local date at the
/// hospital).
pub(super) struct Birth {
    pub(super) at: OffsetDateTime,
    pub(super) date: time::Date,
}

/// A simulated patient: who they are and their record, as transaction entries (the Patient first).
pub(super) struct Simulated {
    pub(super) person: Person,
    pub(super) patient_urn: String,
    pub(super) entries: Vec<Value>,
}

pub(super) fn generate(cfg: &SynthConfig, prov: &Providers, index: u64) -> Value {
    let mut rng = stream_rng(cfg.seed, index);
    let p = sample_person(&mut rng, cfg, prov);
    let sim = simulate(cfg, prov, rng, p, &Identity::legacy(cfg.seed, index), &[]);
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": sim.entries })
}

/// Walks one person's visits and writes their record; `births` are the children a mother of the population
/// gave birth to (empty for everyone else).
pub(super) fn simulate(
    cfg: &SynthConfig,
    prov: &Providers,
    mut rng: StdRng,
    p: Person,
    identity: &Identity,
    births: &[Birth],
) -> Simulated {
    let end = p.death.unwrap_or(cfg.now);
    let first = (cfg.now - years(f64::from(cfg.years_of_history))).max(p.birth + Duration::days(2));
    let mut visits = if first < end {
        schedule(&mut rng, cfg, prov, &p, first, end)
    } else {
        Vec::new()
    };
    let chronic = sample_chronic(&mut rng, &p, end);
    let patient = new_urn(&mut rng);
    // Seeded from a copy of the stream, so the main stream is drawn exactly as before.
    let aux = StdRng::seed_from_u64(rng.clone().random::<u64>() ^ 0xA0C5_1DE5_EED5_7A75);
    let mut obstetric = StdRng::seed_from_u64(rng.clone().random::<u64>() ^ 0x0B57_E7A1_C0DE_B1A7);
    let mut sim = Sim {
        cfg,
        prov,
        rng,
        p,
        patient,
        end,
        entries: Vec::new(),
        chronic,
        allergy_recorded: false,
        pregnancy: None,
        given: BTreeSet::new(),
        last_tdap: None,
        population: identity.dental,
        aux,
        busy: Vec::new(),
        myopia: None,
        assessments: Vec::new(),
        dental_seen: Vec::new(),
        deliveries: Vec::new(),
    };
    if identity.dental && !births.is_empty() {
        // Planned first, so the pregnancy shapes the visits before it and no visit falls during the stay.
        sim.plan_deliveries(&mut obstetric, births, first, end);
        visits.retain(|v| !sim.in_hospital(v.start, v.end));
    }
    sim.patient_resource(identity);
    for (i, v) in visits.iter().enumerate() {
        sim.visit(v, i == 0);
    }
    if identity.dental {
        sim.dental_exams(first, end);
        sim.with_aux(|s| s.deliveries());
        sim.with_aux(|s| s.inpatient_stays(first, end));
        sim.with_aux(|s| s.overdue_dental_classes(first));
    }
    Simulated {
        person: sim.p,
        patient_urn: sim.patient,
        entries: sim.entries,
    }
}

impl Sim<'_> {
    /// Runs `f` with the auxiliary random stream in place of the main one: everything the population's
    /// records have beyond the legacy ones is drawn there. Not reentrant (a nested call would swap back).
    fn with_aux<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        std::mem::swap(&mut self.rng, &mut self.aux);
        let r = f(self);
        std::mem::swap(&mut self.rng, &mut self.aux);
        r
    }

    fn push(&mut self, urn: &str, resource_type: &str, resource: Value) -> usize {
        self.entries.push(json!({
            "fullUrl": urn,
            "resource": resource,
            "request": { "method": "POST", "url": resource_type }
        }));
        self.entries.len() - 1
    }

    fn patient_resource(&mut self, identity: &Identity) {
        let p = &self.p;
        let last = p.stints.last().map_or((0, 0), |s| (s.org, s.pcm));
        let facility = self.prov.orgs[last.0].facility;
        let offset = facility.offset;
        let adult = p.age_at(self.end) >= 18.0;
        let prefix = match (adult, p.female, p.married) {
            (false, _, _) => None,
            (true, false, _) => Some("Mr."),
            (true, true, true) => Some("Mrs."),
            (true, true, false) => Some("Ms."),
        };
        let mut name =
            json!({ "use": "official", "family": p.family, "given": [p.given, p.middle] });
        if let (Some(pre), Some(o)) = (prefix, name.as_object_mut()) {
            o.insert("prefix".into(), json!([pre]));
        }
        let line = if facility.overseas {
            format!("{} Box {}", facility.line, self.rng.random_range(100..9999))
        } else {
            format!(
                "{} {} {}",
                self.rng.random_range(10..9999),
                STREETS.choose(&mut self.rng).copied().unwrap_or("Example"),
                STREET_SUFFIXES
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("Street")
            )
        };
        let (marital, marital_display) = if p.married {
            ("M", "Married")
        } else {
            ("S", "Never Married")
        };
        let (lang, lang_display) = if p.spanish {
            ("es", "Spanish")
        } else {
            ("en-US", "English (United States)")
        };
        let mut patient = json!({
            "resourceType": "Patient",
            "identifier": [
                { "system": ORGANIZATION_SYSTEM, "value": new_uuid(&mut self.rng) },
                {
                    "type": { "coding": [{ "system": V2_0203, "code": "MR", "display": "Medical Record Number" }], "text": "Medical Record Number" },
                    "system": MRN_SYSTEM,
                    "value": identity.mrn
                },
                {
                    "type": { "coding": [{ "system": V2_0203, "code": "MI", "display": "Military ID number" }], "text": "DoD ID (synthetic)" },
                    "system": DODID_SYSTEM,
                    "value": identity.dodid
                }
            ],
            "active": true,
            "name": [name],
            "telecom": [{ "system": "phone", "value": format!("555-555-01{:02}", self.rng.random_range(0..100)), "use": "home" }],
            "gender": if p.female { "female" } else { "male" },
            "birthDate": fhir_date(p.birth, offset),
        });
        if let Some(o) = patient.as_object_mut() {
            if let Some(d) = p.death {
                o.insert("deceasedDateTime".into(), json!(fhir_datetime(d, offset)));
            }
            o.insert(
                "address".into(),
                json!([{ "use": "home", "line": [line], "city": facility.city, "state": facility.state, "postalCode": facility.postal, "country": "US" }]),
            );
            o.insert(
                "maritalStatus".into(),
                json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": marital, "display": marital_display }], "text": marital_display }),
            );
            o.insert("multipleBirthBoolean".into(), json!(false));
            o.insert(
                "communication".into(),
                json!([{ "language": { "coding": [{ "system": "urn:ietf:bcp:47", "code": lang, "display": lang_display }], "text": lang_display }, "preferred": true }]),
            );
            o.insert(
                "generalPractitioner".into(),
                json!([self.prov.practitioner_ref(last.1)]),
            );
            o.insert("managingOrganization".into(), self.prov.org_ref(last.0));
        }
        let urn = self.patient.clone();
        self.push(&urn, "Patient", patient);
        if let Some(e) = self
            .entries
            .last_mut()
            .and_then(|e| e.get_mut("request"))
            .and_then(Value::as_object_mut)
        {
            e.insert(
                "ifNoneExist".into(),
                json!(format!("identifier={DODID_SYSTEM}|{}", identity.dodid)),
            );
        }
    }

    fn visit(&mut self, v: &Visit, first: bool) {
        self.busy.push((v.start, v.end));
        let age = self.p.age_at(v.start);
        let kind = if v.wellness {
            Kind::Wellness
        } else {
            self.other_kind(v, age)
        };
        let acute = (kind == Kind::Symptom).then(|| self.pick_acute(age));
        let reason: Option<(&str, Concept)> = match kind {
            Kind::Symptom => acute.map(|a| (ICD10CM, ACUTE[a].code)),
            Kind::FollowUp => self
                .chronic
                .iter()
                .find(|c| c.condition.is_some())
                .map(|c| (ICD10CM, c.code)),
            Kind::PrenatalInitial | Kind::Prenatal => Some((ICD10CM, PREGNANCY)),
            Kind::Wellness if self.on_duty(age) => Some((ICD10CM, PHA)),
            Kind::Wellness => None,
        };
        let enc_type = match kind {
            Kind::Wellness => ENC_CHECK_UP,
            Kind::Symptom => ENC_SYMPTOM,
            Kind::FollowUp => ENC_FOLLOW_UP,
            Kind::PrenatalInitial => ENC_PRENATAL_INITIAL,
            Kind::Prenatal => ENC_PRENATAL,
        };
        let enc = new_urn(&mut self.rng);
        let practitioner = self.prov.practitioner_ref(v.prac);
        let org = self.prov.org_ref(v.org);
        let patient = self.patient.clone();
        let ctx = Ctx {
            patient: &patient,
            encounter: &enc,
            offset: self.prov.orgs[v.org].facility.offset,
            practitioner: &practitioner,
            org: &org,
        };
        let mut e = fhir::encounter(&ctx, enc_type, reason, v.start, v.end);
        // Some injuries and feverish illnesses are seen in the emergency department instead of the clinic
        // (the population's records only: the legacy bundles stay ambulatory).
        let emergency = self.population
            && acute.is_some_and(|a| {
                let spec = &ACUTE[a];
                let injury = spec.code == ANKLE_SPRAIN || spec.code == KNEE_PAIN;
                (injury || spec.fever) && self.rng.random_bool(0.1)
            });
        if emergency {
            e["class"] = serde_json::json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "EMER",
                "display": "emergency"
            });
            e["type"] = serde_json::json!([fhir::concept(SNOMED, ENC_EMERGENCY)]);
        }
        self.push(&enc, "Encounter", e);

        if !self.allergy_recorded {
            if let Some((substance, _, reaction)) = self.p.allergy {
                let urn = new_urn(&mut self.rng);
                let a = fhir::allergy(&ctx, substance, reaction, v.start + minutes(5));
                self.push(&urn, "AllergyIntolerance", a);
                self.allergy_recorded = true;
            }
        }
        if matches!(kind, Kind::Wellness | Kind::FollowUp) || first {
            self.record_chronic(&ctx, v);
        }
        let adult = age >= 18.0;
        match kind {
            Kind::Wellness => {
                self.vitals(&ctx, v, age, true, false, false);
                if adult {
                    self.labs(&ctx, v, age);
                }
                self.immunizations(&ctx, v, age);
                self.screening(&ctx, v, age);
                if self.on_duty(age) {
                    self.pha(&ctx, v, age);
                }
                self.renewals(&ctx, v);
            }
            Kind::FollowUp => {
                self.vitals(&ctx, v, age, false, false, false);
                if self.has(DIABETES_T2, v.start) && self.rng.random_bool(0.35) {
                    let a1c = self.a1c(v.start);
                    self.lab_panel(&ctx, v, None, &[(HBA1C, a1c, 1)]);
                }
                self.renewals(&ctx, v);
            }
            Kind::Symptom => {
                let spec = &ACUTE[acute.unwrap_or(0)];
                self.vitals(&ctx, v, age, false, true, spec.fever);
                let condition = self.acute(&ctx, v, spec);
                if self.population {
                    self.with_aux(|s| s.acute_imaging(&ctx, v, age, spec, &condition));
                }
            }
            Kind::PrenatalInitial | Kind::Prenatal => {
                self.vitals(&ctx, v, age, false, false, false);
                self.prenatal(&ctx, v, kind);
            }
        }
        if self.population && v.start >= self.cfg.now - years(NOTE_YEARS) {
            let title = match kind {
                Kind::Wellness if self.on_duty(age) => "Periodic health assessment",
                Kind::Wellness => "Wellness visit",
                Kind::Symptom => "Acute visit",
                Kind::FollowUp => "Follow-up visit",
                Kind::PrenatalInitial | Kind::Prenatal => "Prenatal visit",
            };
            self.note(&ctx, v, title, reason.map(|r| r.1.display));
        }
    }

    fn other_kind(&mut self, v: &Visit, age: f64) -> Kind {
        // The population's pregnancies are the births of the family's children (`delivery.rs`).
        if let Some((onset, due)) = self.expecting(v.start) {
            if self.pregnancy.as_ref().map(|p| p.due) != Some(due) {
                self.pregnancy = Some(Pregnancy {
                    onset,
                    due,
                    condition: String::new(),
                });
                return Kind::PrenatalInitial;
            }
            return Kind::Prenatal;
        }
        if let Some(preg) = &self.pregnancy {
            if v.start < preg.due {
                return Kind::Prenatal;
            }
            if v.start < preg.due + years(1.0) {
                return self.sick_or_follow_up();
            }
        }
        let contraception = self.has(CONTRACEPTION, v.start);
        // Drawn for the population too, which keeps the records of those it never picks as they were; but
        // there, only a family's births are pregnancies.
        if self.p.female
            && !contraception
            && (18.0..=42.0).contains(&age)
            && self.rng.random_bool(0.06)
            && !self.population
        {
            let onset = (v.start - Duration::days(self.rng.random_range(42..70))).max(self.p.birth);
            let due = onset + Duration::weeks(40);
            self.pregnancy = Some(Pregnancy {
                onset,
                due,
                condition: String::new(),
            });
            return Kind::PrenatalInitial;
        }
        self.sick_or_follow_up()
    }

    fn sick_or_follow_up(&mut self) -> Kind {
        let treated = self.chronic.iter().any(|c| c.condition.is_some());
        if treated && self.rng.random_bool(0.45) {
            Kind::FollowUp
        } else {
            Kind::Symptom
        }
    }

    fn pick_acute(&mut self, age: f64) -> usize {
        let weight = |a: &Acute| {
            if age < a.min_age {
                0
            } else if self.p.female {
                a.weight.0
            } else {
                a.weight.1
            }
        };
        let total: u32 = ACUTE.iter().map(weight).sum();
        let mut pick = self.rng.random_range(0..total.max(1));
        for (i, a) in ACUTE.iter().enumerate() {
            let w = weight(a);
            if pick < w {
                return i;
            }
            pick -= w;
        }
        0
    }

    /// Whether the chronic condition `code` has begun by `t` (recorded or not).
    fn has(&self, code: Concept, t: OffsetDateTime) -> bool {
        self.chronic.iter().any(|c| c.code == code && c.onset <= t)
    }

    /// Whether care for `code` waits at `t`: contraception is neither started nor renewed during a pregnancy
    /// or the childbirth stay.
    fn paused(&self, code: Concept, t: OffsetDateTime) -> bool {
        code == CONTRACEPTION && self.pregnant(t)
    }

    /// Whether `code` is recorded and being treated with a medication by `t`.
    fn treated(&self, code: Concept, t: OffsetDateTime) -> bool {
        self.chronic
            .iter()
            .any(|c| c.code == code && c.rx.as_ref().is_some_and(|rx| rx.2 <= t))
    }

    fn status_for(&self, validity_end: OffsetDateTime) -> &'static str {
        match self.p.death {
            Some(d) if validity_end > d => "stopped",
            _ if validity_end > self.cfg.now => "active",
            _ => "completed",
        }
    }

    fn record_chronic(&mut self, ctx: &Ctx, v: &Visit) {
        for i in 0..self.chronic.len() {
            if self.chronic[i].condition.is_some()
                || self.chronic[i].onset > v.start
                || self.paused(self.chronic[i].code, v.start)
            {
                continue;
            }
            let (code, onset) = (self.chronic[i].code, self.chronic[i].onset);
            let urn = new_urn(&mut self.rng);
            let c = fhir::condition(ctx, ICD10CM, code, true, onset, None, v.start + minutes(10));
            self.push(&urn, "Condition", c);
            self.chronic[i].condition = Some(urn);
            if self.chronic[i].med.is_some() {
                self.prescribe_chronic(ctx, v, i);
            }
        }
    }

    fn prescribe_chronic(&mut self, ctx: &Ctx, v: &Visit, i: usize) {
        let Some(med) = self.chronic[i].med else {
            return;
        };
        let supply = match (med.form, med.as_needed) {
            (Form::Inhaler, _) => Supply {
                days: 30,
                repeats: 11,
                validity_days: 365,
            },
            (Form::Tablet | Form::Capsule, true) => Supply {
                days: 30,
                repeats: 5,
                validity_days: 365,
            },
            (Form::Tablet | Form::Capsule, false) => Supply {
                days: 90,
                repeats: 3,
                validity_days: 365,
            },
        };
        let authored = v.end - minutes(2);
        let status = self.status_for(authored + Duration::days(supply.validity_days));
        let urn = new_urn(&mut self.rng);
        let reason = self.chronic[i].condition.clone();
        let prior = self.chronic[i].rx.as_ref().map(|rx| rx.0.clone());
        let mr = fhir::medication_request(
            ctx,
            &med,
            status,
            authored,
            &supply,
            reason.as_deref(),
            prior.as_deref(),
        );
        let at = self.push(&urn, "MedicationRequest", mr);
        if let Some((_, entry, _)) = self.chronic[i].rx.take() {
            if let Some(r) = self.entries[entry]
                .get_mut("resource")
                .and_then(Value::as_object_mut)
            {
                r.insert("status".into(), json!("completed"));
            }
        }
        self.chronic[i].rx = Some((urn, at, authored));
    }

    /// Renews yearly each chronic order whose last renewal is over eleven months old.
    fn renewals(&mut self, ctx: &Ctx, v: &Visit) {
        for i in 0..self.chronic.len() {
            let due = self.chronic[i]
                .rx
                .as_ref()
                .is_some_and(|rx| v.start - rx.2 >= Duration::days(330));
            if due && !self.paused(self.chronic[i].code, v.start) {
                self.prescribe_chronic(ctx, v, i);
            }
        }
    }

    /// Vital signs. Wellness visits measure growth; sick visits take temperature (and breathing rate).
    fn vitals(&mut self, ctx: &Ctx, v: &Visit, age: f64, growth: bool, sick: bool, fever: bool) {
        let at = v.start + minutes(3);
        let adult = age >= 18.0;
        let rng = &mut self.rng;
        let height = self.p.height_at(age) + normal(rng, 0.0, 0.3);
        let bmi = self.p.bmi_at(age) + normal(rng, 0.0, 0.4);
        let weight = (bmi * (height / 100.0).powi(2) * 10.0).round() / 10.0;
        let height = (height * 10.0).round() / 10.0;
        let bmi = weight / (height / 100.0).powi(2);
        let mut obs: Vec<(Loinc, f64, u32)> = Vec::new();
        if growth {
            obs.push((HEIGHT, height, 1));
        }
        if !sick {
            obs.push((WEIGHT, weight, 1));
        }
        if growth && age >= 2.0 {
            obs.push((BMI, bmi, 1));
        }
        let heart_rate = match age {
            a if a < 1.0 => normal(rng, 130.0, 10.0),
            a if a < 6.0 => normal(rng, 105.0, 10.0),
            a if a < 12.0 => normal(rng, 90.0, 9.0),
            _ => normal(rng, 72.0, 8.0),
        } + if fever { 12.0 } else { 0.0 };
        // Sick visits chart a temperature (and breathing rate with fever) instead of weight and pulse.
        if growth || (sick && !fever) {
            obs.push((HEART_RATE, heart_rate, 0));
        }
        if sick && fever {
            obs.push((BODY_TEMP, normal(rng, 38.1, 0.5), 1));
            if rng.random_bool(0.5) {
                let rr = if adult {
                    normal(rng, 17.0, 2.0)
                } else {
                    normal(rng, 24.0, 4.0)
                };
                obs.push((RESP_RATE, rr.max(10.0), 0));
            }
        }
        let bp = (age >= 3.0).then(|| {
            if adult {
                let mut sys =
                    108.0 + 0.45 * (age - 20.0).max(0.0) + 0.9 * (bmi - 25.0) + self.p.bp_offset;
                if self
                    .chronic
                    .iter()
                    .any(|c| c.code == HYPERTENSION && c.onset <= v.start)
                {
                    sys += 20.0;
                }
                if self.chronic.iter().any(|c| {
                    c.code == HYPERTENSION && c.rx.as_ref().is_some_and(|rx| rx.2 <= v.start)
                }) {
                    sys -= 12.0;
                }
                let sys = sys + normal(rng, 0.0, 6.0);
                (sys, 0.55 * sys + 8.0 + normal(rng, 0.0, 4.0))
            } else {
                (
                    90.0 + 1.5 * age + normal(rng, 0.0, 6.0),
                    55.0 + 0.8 * age + normal(rng, 0.0, 5.0),
                )
            }
        });
        if let Some((sys, dia)) = bp {
            let urn = new_urn(&mut self.rng);
            let o = fhir::blood_pressure(ctx, sys, dia, at, adult);
            self.push(&urn, "Observation", o);
        }
        for (loinc, value, decimals) in obs {
            let urn = new_urn(&mut self.rng);
            let o = fhir::observation(
                ctx,
                Category::VitalSigns,
                &loinc,
                value,
                decimals,
                at,
                at,
                adult,
            );
            self.push(&urn, "Observation", o);
        }
    }

    fn a1c(&mut self, t: OffsetDateTime) -> f64 {
        if self.has(DIABETES_T2, t) {
            let mean = if self.treated(DIABETES_T2, t) {
                7.0
            } else {
                7.8
            };
            normal(&mut self.rng, mean, 0.7).max(6.5)
        } else {
            normal(&mut self.rng, 5.3, 0.3) + if self.p.bmi40 >= 30.0 { 0.3 } else { 0.0 }
        }
    }

    /// Screening labs at an adult wellness visit.
    fn labs(&mut self, ctx: &Ctx, v: &Visit, age: f64) {
        let t = v.start;
        let hld = self.has(HYPERLIPIDEMIA, t);
        let diabetic = self.has(DIABETES_T2, t);
        let p_lipid = if self.treated(HYPERLIPIDEMIA, t) {
            1.0
        } else if age >= 35.0 {
            0.3
        } else {
            0.1
        };
        if self.rng.random_bool(p_lipid) {
            let rng = &mut self.rng;
            let mut chol =
                self.p.cholesterol + 0.6 * (age - 40.0).max(0.0) + normal(rng, 0.0, 10.0);
            if hld {
                chol += 50.0;
            }
            if self
                .chronic
                .iter()
                .any(|c| c.code == HYPERLIPIDEMIA && c.rx.as_ref().is_some_and(|rx| rx.2 <= t))
            {
                chol -= 45.0;
            }
            let tg =
                self.p.triglycerides + if diabetic { 60.0 } else { 0.0 } + normal(rng, 0.0, 15.0);
            let hdl = self.p.hdl + normal(rng, 0.0, 4.0);
            let ldl = (chol - hdl - tg / 5.0).max(30.0);
            let results = [
                (CHOLESTEROL, chol, 0),
                (TRIGLYCERIDE, tg.max(30.0), 0),
                (LDL, ldl, 0),
                (HDL, hdl, 0),
            ];
            self.lab_panel(ctx, v, Some(LIPID_PANEL), &results);
        }
        let p_bmp = if self.has(HYPERTENSION, t) || diabetic {
            0.4
        } else if age >= 40.0 {
            0.25
        } else {
            0.1
        };
        if self.rng.random_bool(p_bmp) {
            let rng = &mut self.rng;
            let glucose = if diabetic {
                normal(rng, 150.0, 30.0)
            } else {
                normal(rng, 92.0, 8.0)
            };
            let creatinine = if self.p.female {
                normal(rng, 0.8, 0.12)
            } else {
                normal(rng, 1.0, 0.15)
            };
            let results = [
                (GLUCOSE, glucose, 0),
                (UREA_NITROGEN, normal(rng, 14.0, 4.0).max(4.0), 0),
                (CREATININE, creatinine.max(0.4), 2),
                (CALCIUM, normal(rng, 9.4, 0.4), 1),
                (SODIUM, normal(rng, 140.0, 2.0), 0),
                (POTASSIUM, normal(rng, 4.2, 0.3), 1),
                (CHLORIDE, normal(rng, 102.0, 2.5), 0),
                (CO2, normal(rng, 25.0, 2.0), 0),
            ];
            self.lab_panel(ctx, v, Some(BMP_PANEL), &results);
        }
        if self.rng.random_bool(if self.p.female { 0.2 } else { 0.12 }) {
            let rng = &mut self.rng;
            let hgb = if self.p.female {
                normal(rng, 13.4, 1.0)
            } else {
                normal(rng, 15.0, 0.9)
            };
            let results = [
                (HEMOGLOBIN, hgb, 1),
                (HEMATOCRIT, hgb * 2.95 + normal(rng, 0.0, 1.0), 1),
                (WBC, normal(rng, 7.0, 1.6).max(2.0), 1),
                (PLATELETS, normal(rng, 250.0, 50.0).max(60.0), 0),
            ];
            self.lab_panel(ctx, v, Some(CBC_PANEL), &results);
        }
        if diabetic || (age >= 35.0 && self.p.bmi40 >= 27.0 && self.rng.random_bool(0.3)) {
            let a1c = self.a1c(t);
            self.lab_panel(ctx, v, None, &[(HBA1C, a1c, 1)]);
        }
    }

    /// Result Observations and their DiagnosticReport (a panel, or the single test itself).
    fn lab_panel(
        &mut self,
        ctx: &Ctx,
        v: &Visit,
        panel: Option<Concept>,
        results: &[(Loinc, f64, u32)],
    ) {
        let collected = v.start + minutes(12);
        let issued = (collected + minutes(self.rng.random_range(90..48 * 60))).min(self.cfg.now);
        let mut urns = Vec::with_capacity(results.len());
        for (loinc, value, decimals) in results {
            let urn = new_urn(&mut self.rng);
            let o = fhir::observation(
                ctx,
                Category::Laboratory,
                loinc,
                *value,
                *decimals,
                collected,
                issued,
                true,
            );
            self.push(&urn, "Observation", o);
            urns.push(urn);
        }
        let code = panel.unwrap_or_else(|| Concept {
            code: results[0].0.code,
            display: results[0].0.display,
        });
        let urn = new_urn(&mut self.rng);
        let report = fhir::lab_report(ctx, code, &urns, collected, issued);
        self.push(&urn, "DiagnosticReport", report);
    }

    /// Vaccines due at a wellness visit for the age: childhood series, yearly influenza, Tdap every ten
    /// years, zoster and pneumococcal for older adults, COVID-19 in its seasons.
    fn immunizations(&mut self, ctx: &Ctx, v: &Visit, age: f64) {
        let t = v.start;
        let year = t.year();
        let mut due: Vec<(&'static str, Concept)> = Vec::new();
        let series: [(&'static str, Concept, f64, f64); 17] = [
            ("hepb-1", HEPB_PEDIATRIC, 0.0, 0.25),
            ("hepb-2", HEPB_PEDIATRIC, 0.1, 1.0),
            ("dtap-1", DTAP, 0.1, 1.0),
            ("ipv-1", IPV, 0.1, 1.0),
            ("pcv-1", PCV13, 0.1, 1.0),
            ("mmr-1", MMR, 1.0, 2.0),
            ("var-1", VARICELLA, 1.0, 2.0),
            ("pcv-2", PCV13, 1.0, 2.0),
            ("dtap-2", DTAP, 1.0, 2.0),
            ("dtap-3", DTAP, 4.0, 7.0),
            ("ipv-2", IPV, 4.0, 7.0),
            ("mmr-2", MMR, 4.0, 7.0),
            ("var-2", VARICELLA, 4.0, 7.0),
            ("tdap-adolescent", TDAP, 11.0, 13.0),
            ("hpv-1", HPV9, 11.0, 13.0),
            ("zoster-1", ZOSTER, 50.0, 200.0),
            ("ppv23", PPV23, 65.0, 200.0),
        ];
        for (key, vaccine, from, to) in series {
            if (from..to).contains(&age) && !self.given.contains(key) {
                due.push((key, vaccine));
            }
        }
        let tdap_year = (year.rem_euclid(10) as u32) == self.p.tdap_phase;
        if age >= 19.0 && tdap_year && self.last_tdap.is_none_or(|l| t - l > years(9.0)) {
            due.push(("tdap", TDAP));
        }
        let military = matches!(self.p.role, Role::ActiveDuty | Role::Reserve);
        if military && !self.given.contains("hepa") && age < 30.0 {
            due.push(("hepa", HEPA_ADULT));
        }
        // Hepatitis B for service members without a documented series (accession and deployment
        // requirements); the series' later doses are left out for brevity.
        if military && !self.given.contains("hepb-adult") && (18.0..30.0).contains(&age) {
            due.push(("hepb-adult", HEPB_ADULT));
        }
        if age >= 12.0
            && (2021..=2022).contains(&year)
            && !self.given.contains("covid-1")
            && self.rng.random_bool(0.6)
        {
            due.push(("covid-1", COVID_2021));
        }
        if age >= 12.0
            && year >= 2025
            && !self.given.contains("covid-2")
            && self.rng.random_bool(0.3)
        {
            due.push(("covid-2", COVID_2024));
        }
        if age >= 0.5 && self.rng.random_bool(self.p.flu_uptake) {
            let season_2024 = t.date() >= time::macros::date!(2024 - 07 - 01);
            let flu = match (season_2024, age) {
                (true, a) if a >= 65.0 => FLU_HIGH_DOSE_TRI,
                (true, _) => FLU_TRIVALENT_PF,
                (false, a) if a >= 65.0 && year >= 2021 => FLU_HIGH_DOSE_QUAD,
                (false, a) if a < 3.0 => FLU_PEDIATRIC,
                (false, _) => FLU_QUADRIVALENT_PF,
            };
            due.push(("flu", flu));
        }
        for (key, vaccine) in due {
            if key != "flu" {
                self.given.insert(key);
            }
            if vaccine == TDAP {
                self.last_tdap = Some(t);
            }
            let at = v.start + minutes(20);
            let lot = format!(
                "SYN{:05}{}",
                self.rng.random_range(0..100_000),
                char::from(b'A' + self.rng.random_range(0..26u8))
            );
            let expires = at + Duration::days(self.rng.random_range(120..720));
            let urn = new_urn(&mut self.rng);
            let imm = fhir::immunization(ctx, vaccine, at, &lot, expires, age < 3.0);
            self.push(&urn, "Immunization", imm);
        }
    }

    /// Screening procedures at a wellness visit.
    fn screening(&mut self, ctx: &Ctx, v: &Visit, age: f64) {
        if age >= 12.0 && self.rng.random_bool(0.3) {
            self.procedure(ctx, v, PROC_DEPRESSION_SCREENING, None);
        }
        let on_meds = self.chronic.iter().any(|c| c.rx.is_some());
        if on_meds && self.rng.random_bool(0.3) {
            self.procedure(ctx, v, PROC_MED_RECONCILIATION, None);
        }
    }

    fn procedure(&mut self, ctx: &Ctx, v: &Visit, code: Concept, reason: Option<&str>) {
        let start = v.start + minutes(self.rng.random_range(5..12));
        let end = (start + minutes(self.rng.random_range(3..10))).min(v.end);
        let urn = new_urn(&mut self.rng);
        let p = fhir::procedure(ctx, code, start, end, reason);
        self.push(&urn, "Procedure", p);
    }

    /// The acute problem of a sick visit: its Condition, the test and the prescription if any. Returns the
    /// Condition's fullUrl.
    fn acute(&mut self, ctx: &Ctx, v: &Visit, spec: &Acute) -> String {
        let onset = (v.start - Duration::days(self.rng.random_range(1..6))).max(self.p.birth);
        let abated = (onset + Duration::days(self.rng.random_range(spec.days.0..=spec.days.1)))
            .max(v.end + Duration::days(1));
        let abated = (abated <= self.end).then_some(abated);
        let urn = new_urn(&mut self.rng);
        let c = fhir::condition(
            ctx,
            ICD10CM,
            spec.code,
            false,
            onset,
            abated,
            v.start + minutes(10),
        );
        self.push(&urn, "Condition", c);
        if let Some(test) = spec.test {
            self.procedure(ctx, v, test, Some(&urn));
        }
        if let Some(med) = spec.med {
            if self.rng.random_bool(spec.p_med) {
                let med = safe_med(med, &self.p);
                let days = match med.code {
                    c if c == AZITHROMYCIN.code => 5,
                    c if c == SMX_TMP.code => 3,
                    c if c == CEPHALEXIN.code => 7,
                    _ => 10,
                };
                let supply = Supply {
                    days,
                    repeats: 0,
                    validity_days: 30,
                };
                let authored = v.end - minutes(2);
                let status = self.status_for(authored + Duration::days(supply.validity_days));
                let rx = new_urn(&mut self.rng);
                let mr = fhir::medication_request(
                    ctx,
                    &med,
                    status,
                    authored,
                    &supply,
                    Some(&urn),
                    None,
                );
                self.push(&rx, "MedicationRequest", mr);
            }
        }
        urn
    }

    /// Prenatal care: the pregnancy Condition at the first visit, then the usual checks.
    fn prenatal(&mut self, ctx: &Ctx, v: &Visit, kind: Kind) {
        let Some((onset, due)) = self.pregnancy.as_ref().map(|p| (p.onset, p.due)) else {
            return;
        };
        if kind == Kind::PrenatalInitial {
            let urn = new_urn(&mut self.rng);
            let abated = (due <= self.end).then_some(due);
            let c = fhir::condition(
                ctx,
                ICD10CM,
                PREGNANCY,
                true,
                onset,
                abated,
                v.start + minutes(10),
            );
            self.push(&urn, "Condition", c);
            self.procedure(ctx, v, PROC_PREGNANCY_TEST, Some(&urn));
            if let Some(p) = self.pregnancy.as_mut() {
                p.condition = urn;
            }
            return;
        }
        let reason = self
            .pregnancy
            .as_ref()
            .map(|p| p.condition.clone())
            .filter(|c| !c.is_empty());
        let weeks = (v.start - onset).whole_weeks();
        if (18..=22).contains(&weeks) {
            self.procedure(ctx, v, PROC_FETAL_ANATOMY, reason.as_deref());
        } else if weeks >= 20 {
            self.procedure(ctx, v, PROC_FUNDAL_HEIGHT, reason.as_deref());
        }
    }
}
