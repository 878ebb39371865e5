//! Inpatient stays of the population's records: a few people a year are admitted to the inpatient ward of
//! the facility they are posted to, for a reason that fits their age and sex (bronchiolitis in infants,
//! appendicitis, pneumonia, a concussion, exertional heatstroke in service members, syncope or chest pain in
//! older adults ...). A stay is an Encounter of class IMP (1 to 7 days, admit source and discharge
//! disposition, the ward and its beds as location history), its reason Condition, admission labs, vital
//! signs three times a day, imaging and surgery with their reports where the reason calls for them, a
//! prescription at discharge for some, and a short, plainly synthetic discharge summary (LOINC 18842-5).
//!
//! Stays fall between the person's visits and end at least three days before death or now, so every date of
//! the stay lies inside the record. Childbirth admissions (`delivery.rs`) are written with the same
//! Encounter, vital signs and discharge summary.

use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, Time};

use super::super::cs_url;
use super::super::person::{minutes, normal, safe_med, years, Role, Visit};
use super::super::providers::StaffRole;
use super::super::resources::{self as fhir, Category, Ctx, Supply};
use super::super::site;
use super::super::terms::*;
use super::reports::{reading, Exam, Reading, ABDOMEN_CT, CHEST_XR, HEAD_CT, RUQ_US};
use super::{new_urn, Sim};

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";

/// An operation and what the pathologist finds in the specimen.
struct Surgery {
    code: Concept,
    minutes: (i64, i64),
    pathology: Reading,
}

/// Why someone is admitted: ICD-10-CM reason, ages, relative weights (female, male), whether only serving
/// members get it, nights in hospital, the fever it brings (°C above normal on admission), whether it is an
/// emergency, whether it affects breathing, imaging and surgery, the course for the discharge summary, and
/// the medication to take home, and whether it is a childbirth (`delivery.rs`: never drawn at random).
pub(super) struct Reason {
    pub(super) code: Concept,
    ages: (f64, f64),
    weight: (u32, u32),
    military: bool,
    nights: (i64, i64),
    fever: f64,
    emergency: bool,
    respiratory: bool,
    imaging: Option<(&'static Exam, Reading)>,
    surgery: Option<Surgery>,
    course: &'static str,
    pub(super) take_home: Option<(Med, u32)>,
    obstetric: bool,
}

impl Reason {
    /// A childbirth admission: from the prenatal clinic (not the emergency department), home afterwards.
    pub(super) const fn obstetric(
        code: Concept,
        course: &'static str,
        take_home: Option<(Med, u32)>,
    ) -> Reason {
        Reason {
            code,
            ages: (15.0, 50.0),
            weight: (0, 0),
            military: false,
            nights: (1, 3),
            fever: 0.0,
            emergency: false,
            respiratory: false,
            imaging: None,
            surgery: None,
            course,
            take_home,
            obstetric: true,
        }
    }
}

const REASONS: [Reason; 10] = [
    Reason {
        code: BRONCHIOLITIS,
        ages: (0.0, 2.0),
        weight: (12, 12),
        military: false,
        nights: (1, 4),
        fever: 1.0,
        emergency: true,
        respiratory: true,
        imaging: None,
        surgery: None,
        course: "Supportive care with nasal suctioning and oxygen, weaned to room air; feeding well.",
        take_home: None,
        obstetric: false,
    },
    Reason {
        code: PNEUMONIA,
        ages: (0.5, 120.0),
        weight: (4, 4),
        military: false,
        nights: (2, 6),
        fever: 1.6,
        emergency: true,
        respiratory: true,
        imaging: Some((
            &CHEST_XR,
            reading(
                "Right lower lobe airspace opacity, consistent with pneumonia. No effusion.",
                Some(FINDING_PNEUMONIA),
            ),
        )),
        surgery: None,
        course: "IV antibiotics and oxygen, weaned to room air; changed to oral antibiotics.",
        take_home: Some((AZITHROMYCIN, 5)),
        obstetric: false,
    },
    Reason {
        code: APPENDICITIS,
        ages: (6.0, 70.0),
        weight: (3, 3),
        military: false,
        nights: (1, 3),
        fever: 0.8,
        emergency: true,
        respiratory: false,
        imaging: Some((
            &ABDOMEN_CT,
            reading(
                "Dilated appendix with periappendiceal fat stranding, consistent with acute appendicitis.",
                Some(FINDING_APPENDICITIS),
            ),
        )),
        surgery: Some(Surgery {
            code: PROC_APPENDECTOMY,
            minutes: (40, 90),
            pathology: reading(
                "Appendix: acute suppurative appendicitis. No neoplasm.",
                Some(FINDING_APPENDICITIS),
            ),
        }),
        course: "Appendectomy without complications; tolerating diet, pain controlled.",
        take_home: Some((ACETAMINOPHEN, 5)),
        obstetric: false,
    },
    Reason {
        code: CHOLECYSTITIS,
        ages: (25.0, 120.0),
        weight: (4, 2),
        military: false,
        nights: (2, 4),
        fever: 0.9,
        emergency: true,
        respiratory: false,
        imaging: Some((
            &RUQ_US,
            reading(
                "Gallstones, gallbladder wall thickening and pericholecystic fluid, consistent with acute cholecystitis.",
                Some(FINDING_CHOLECYSTITIS),
            ),
        )),
        surgery: Some(Surgery {
            code: PROC_LAP_CHOLECYSTECTOMY,
            minutes: (60, 120),
            pathology: reading(
                "Gallbladder: acute and chronic cholecystitis with cholelithiasis. No dysplasia.",
                Some(FINDING_CHOLECYSTITIS),
            ),
        }),
        course: "Laparoscopic cholecystectomy without complications; tolerating diet.",
        take_home: Some((ACETAMINOPHEN, 5)),
        obstetric: false,
    },
    Reason {
        code: CELLULITIS_LEG,
        ages: (18.0, 120.0),
        weight: (2, 3),
        military: false,
        nights: (2, 5),
        fever: 1.0,
        emergency: true,
        respiratory: false,
        imaging: None,
        surgery: None,
        course: "IV antibiotics with receding erythema; changed to oral antibiotics.",
        take_home: Some((CEPHALEXIN, 7)),
        obstetric: false,
    },
    Reason {
        code: CONCUSSION,
        ages: (5.0, 120.0),
        weight: (1, 3),
        military: false,
        nights: (1, 2),
        fever: 0.0,
        emergency: true,
        respiratory: false,
        imaging: Some((
            &HEAD_CT,
            reading(
                "No intracranial hemorrhage, mass effect or skull fracture.",
                None,
            ),
        )),
        surgery: None,
        course: "Observed with neurological checks; headache improving. Graded return to activity.",
        take_home: None,
        obstetric: false,
    },
    Reason {
        code: SYNCOPE,
        ages: (12.0, 120.0),
        weight: (3, 2),
        military: false,
        nights: (1, 3),
        fever: 0.0,
        emergency: false,
        respiratory: false,
        imaging: Some((
            &HEAD_CT,
            reading("No acute intracranial abnormality.", None),
        )),
        surgery: None,
        course: "Telemetry and workup unremarkable; likely vasovagal. Counseled on fluids.",
        take_home: None,
        obstetric: false,
    },
    Reason {
        code: CHEST_PAIN,
        ages: (30.0, 120.0),
        weight: (2, 3),
        military: false,
        nights: (1, 2),
        fever: 0.0,
        emergency: false,
        respiratory: false,
        imaging: Some((
            &CHEST_XR,
            reading("No acute cardiopulmonary process.", None),
        )),
        surgery: None,
        course: "Cardiac workup negative; pain likely musculoskeletal.",
        take_home: None,
        obstetric: false,
    },
    Reason {
        code: HEATSTROKE,
        ages: (18.0, 60.0),
        weight: (2, 4),
        military: true,
        nights: (1, 3),
        fever: 3.2,
        emergency: true,
        respiratory: false,
        imaging: None,
        surgery: None,
        course: "Rapid cooling and IV fluids; temperature and labs normalized. No duty in heat until cleared.",
        take_home: None,
        obstetric: false,
    },
    Reason {
        code: VIRAL_GASTROENTERITIS,
        ages: (0.5, 120.0),
        weight: (2, 2),
        military: false,
        nights: (1, 3),
        fever: 0.6,
        emergency: true,
        respiratory: false,
        imaging: None,
        surgery: None,
        course: "IV fluids for dehydration; tolerating oral intake at discharge.",
        take_home: None,
        obstetric: false,
    },
];

/// Yearly chance of an admission by age (non-obstetric, so modest).
fn p_admission(age: f64) -> f64 {
    match age {
        a if a < 1.0 => 0.04,
        a if a < 5.0 => 0.012,
        a if a < 18.0 => 0.006,
        a if a < 45.0 => 0.01,
        a if a < 65.0 => 0.02,
        _ => 0.05,
    }
}

/// Resting heart rate and breathing rate by age.
fn resting(age: f64) -> (f64, f64) {
    match age {
        a if a < 1.0 => (130.0, 34.0),
        a if a < 6.0 => (105.0, 24.0),
        a if a < 12.0 => (90.0, 20.0),
        _ => (74.0, 16.0),
    }
}

/// Everything one stay's resources share.
pub(super) struct Stay<'a> {
    pub(super) org: usize,
    pub(super) admitted: OffsetDateTime,
    pub(super) discharged: OffsetDateTime,
    pub(super) reason: &'a Reason,
    pub(super) age: f64,
}

impl Sim<'_> {
    /// At most one stay per year of history between `first` and `end`.
    pub(super) fn inpatient_stays(&mut self, first: OffsetDateTime, end: OffsetDateTime) {
        let history = f64::from(self.cfg.years_of_history);
        let last = end - Duration::days(3);
        for k in 0..self.cfg.years_of_history {
            let lo = (self.cfg.now - years(history - f64::from(k)))
                .max(first)
                .max(self.p.birth + Duration::days(2));
            let hi = (self.cfg.now - years(history - f64::from(k) - 1.0)).min(last);
            if hi <= lo + Duration::days(8) {
                continue;
            }
            let age = self.p.age_at(lo + (hi - lo) / 2);
            if !self.rng.random_bool(p_admission(age)) {
                continue;
            }
            for _attempt in 0..4 {
                let t = lo + (hi - lo) * self.rng.random_range(0.0..1.0);
                let age = self.p.age_at(t);
                let Some(reason) = self.pick_reason(age) else {
                    break;
                };
                let org = self.p.stint_at(t).org;
                let offset = self.prov.orgs[org].facility.offset;
                let clock = if REASONS[reason].emergency {
                    Time::MIDNIGHT + minutes(self.rng.random_range(0..24 * 60))
                } else {
                    Time::MIDNIGHT + minutes(self.rng.random_range(9 * 60..16 * 60))
                };
                let admitted = t.to_offset(offset).replace_time(clock);
                let (n0, n1) = REASONS[reason].nights;
                let nights = self.rng.random_range(n0..=n1);
                let discharged = (admitted + Duration::days(nights))
                    .replace_time(Time::MIDNIGHT + minutes(self.rng.random_range(600..840)));
                let clash = self.busy.iter().any(|&(s, e)| {
                    s < discharged + Duration::days(1) && admitted - Duration::days(1) < e
                });
                if admitted < lo || discharged > hi || discharged <= admitted || clash {
                    continue;
                }
                self.busy.push((admitted, discharged));
                let stay = Stay {
                    org,
                    admitted,
                    discharged,
                    reason: &REASONS[reason],
                    age,
                };
                self.stay(&stay);
                break;
            }
        }
    }

    fn pick_reason(&mut self, age: f64) -> Option<usize> {
        let serving = matches!(self.p.role, Role::ActiveDuty | Role::Reserve);
        let weight = |r: &Reason| {
            if age < r.ages.0 || age >= r.ages.1 || (r.military && !serving) {
                0
            } else if self.p.female {
                r.weight.0
            } else {
                r.weight.1
            }
        };
        let total: u32 = REASONS.iter().map(weight).sum();
        if total == 0 {
            return None;
        }
        let mut pick = self.rng.random_range(0..total);
        for (i, r) in REASONS.iter().enumerate() {
            let w = weight(r);
            if pick < w {
                return Some(i);
            }
            pick -= w;
        }
        None
    }

    fn stay(&mut self, stay: &Stay) {
        let org = stay.org;
        let attending = self.attending(stay);
        let enc = new_urn(&mut self.rng);
        let condition = new_urn(&mut self.rng);
        let practitioner = self.prov.practitioner_ref(attending);
        let org_ref = self.prov.org_ref(org);
        let patient = self.patient.clone();
        let ctx = Ctx {
            patient: &patient,
            encounter: &enc,
            offset: self.prov.orgs[org].facility.offset,
            practitioner: &practitioner,
            org: &org_ref,
        };
        let reason = stay.reason;
        let (from_ed, disposition) = self.encounter_of_stay(&ctx, stay, &condition);

        let onset = (stay.admitted - minutes(self.rng.random_range(60..48 * 60))).max(self.p.birth);
        let healed = stay.discharged + Duration::days(self.rng.random_range(3..21));
        let c = fhir::condition(
            &ctx,
            ICD10CM,
            reason.code,
            false,
            onset,
            (healed <= self.end).then_some(healed),
            stay.admitted + minutes(20),
        );
        self.push(&condition, "Condition", c);

        let admission = Visit {
            start: stay.admitted + minutes(20),
            end: stay.discharged,
            wellness: false,
            org,
            prac: attending,
        };
        if stay.age >= 12.0 {
            self.admission_labs(&ctx, &admission, stay);
        }
        let mut imaging_done = None;
        if let Some((exam, read)) = &reason.imaging {
            let at = stay.admitted + minutes(self.rng.random_range(45..180));
            self.radiology(&ctx, org, exam, read, at, Some(&condition));
            imaging_done = Some(exam.code.display);
        }
        if let Some(surgery) = &reason.surgery {
            self.operate(&ctx, stay, surgery, &condition);
        }
        self.stay_vitals(&ctx, stay);
        if let Some((med, days)) = reason.take_home.filter(|_| stay.age >= 12.0) {
            let med = safe_med(med, &self.p);
            let supply = Supply {
                days,
                repeats: 0,
                validity_days: 30,
            };
            let authored = stay.discharged - minutes(45);
            let status = self.status_for(authored + Duration::days(supply.validity_days));
            let urn = new_urn(&mut self.rng);
            let mr = fhir::medication_request(
                &ctx,
                &med,
                status,
                authored,
                &supply,
                Some(&condition),
                None,
            );
            self.push(&urn, "MedicationRequest", mr);
        }
        self.discharge_summary(&ctx, stay, from_ed, disposition, imaging_done);
    }

    /// One of the facility's physicians, to attend a stay.
    pub(super) fn attending(&mut self, stay: &Stay) -> usize {
        let physicians: Vec<usize> = self
            .prov
            .staff_of(stay.org)
            .filter(|&i| self.prov.practitioners[i].role == StaffRole::Physician)
            .collect();
        physicians
            .get(self.rng.random_range(0..physicians.len().max(1)))
            .copied()
            .unwrap_or(self.p.stint_at(stay.admitted).pcm)
    }

    /// The stay's Encounter: class IMP, admission (from the emergency department or the clinic) and
    /// discharge, the attending physician, the ward and one or two of its beds. Returns whether the patient
    /// came through the emergency department and where they went.
    pub(super) fn encounter_of_stay(
        &mut self,
        ctx: &Ctx,
        stay: &Stay,
        condition: &str,
    ) -> (bool, &'static str) {
        let from_ed =
            !stay.reason.obstetric && (stay.reason.emergency || self.rng.random_bool(0.6));
        let (source, source_display, kind) = if from_ed {
            (
                "emd",
                "From accident/emergency department",
                ENC_EMERGENCY_ADMISSION,
            )
        } else {
            ("outp", "From outpatient department", ENC_HOSPITAL_ADMISSION)
        };
        let (disposition, disposition_display) = if stay.age >= 75.0 && self.rng.random_bool(0.2) {
            ("snf", "Skilled nursing facility")
        } else {
            ("home", "Home")
        };
        let (a, d) = (stay.admitted, stay.discharged);
        let dt = |t: OffsetDateTime| super::super::fhir_datetime(t, ctx.offset);
        let beds = self.prov.orgs[stay.org].facility.beds.max(1);
        let first_bed = self.rng.random_range(1..=beds);
        let mut locations = vec![json!({
            "location": site::location_ref(self.prov, stay.org, "inpatient-ward"),
            "status": "completed",
            "physicalType": fhir::concept(PHYSICAL_TYPE, Concept { code: "wa", display: "Ward" }),
            "period": { "start": dt(a), "end": dt(d) }
        })];
        let bed = |n: u32, from: OffsetDateTime, to: OffsetDateTime| {
            json!({
                "location": site::bed_ref(self.prov, stay.org, n),
                "status": "completed",
                "physicalType": fhir::concept(PHYSICAL_TYPE, Concept { code: "bd", display: "Bed" }),
                "period": { "start": dt(from), "end": dt(to) }
            })
        };
        // Some patients are moved to another bed once (closer to the nurses' station, a quieter room ...).
        if beds >= 2 && d - a >= Duration::days(2) && self.rng.random_bool(0.25) {
            let other = 1 + (first_bed + self.rng.random_range(0..beds - 1)) % beds;
            let moved = a + (d - a) * self.rng.random_range(0.3..0.7);
            locations.push(bed(first_bed, a, moved));
            locations.push(bed(other, moved, d));
        } else {
            locations.push(bed(first_bed, a, d));
        }
        let mut e = fhir::encounter(ctx, kind, Some((ICD10CM, stay.reason.code)), a, d);
        e["class"] = json!({ "system": ACT_CODE, "code": "IMP", "display": "inpatient encounter" });
        e["serviceType"] = json!({
            "coding": [{ "system": cs_url("department"), "code": "inpatient-ward", "display": "Inpatient ward" }],
            "text": "Inpatient ward"
        });
        e["participant"][0]["type"] = json!([{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "ATND",
                "display": "attender"
            }],
            "text": "attender"
        }]);
        e["length"] = json!({
            "value": (d - a).whole_days().max(1),
            "unit": "days",
            "system": UCUM,
            "code": "d"
        });
        e["diagnosis"] = json!([{
            "condition": { "reference": condition },
            "use": {
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                    "code": "AD",
                    "display": "Admission diagnosis"
                }]
            },
            "rank": 1
        }]);
        e["hospitalization"] = json!({
            "admitSource": {
                "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/admit-source", "code": source, "display": source_display }],
                "text": source_display
            },
            "dischargeDisposition": {
                "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": disposition, "display": disposition_display }],
                "text": disposition_display
            }
        });
        e["location"] = Value::Array(locations);
        self.push(ctx.encounter, "Encounter", e);
        (from_ed, disposition_display)
    }

    /// A CBC and a basic metabolic panel on admission; infections raise the white count, heat and
    /// dehydration the urea nitrogen.
    fn admission_labs(&mut self, ctx: &Ctx, v: &Visit, stay: &Stay) {
        let infection = stay.reason.fever >= 0.5 && stay.reason.fever < 3.0;
        let dry = stay.reason.code == HEATSTROKE || stay.reason.code == VIRAL_GASTROENTERITIS;
        let rng = &mut self.rng;
        let hgb = if self.p.female {
            normal(rng, 13.2, 1.0)
        } else {
            normal(rng, 14.8, 1.0)
        };
        let wbc = if infection {
            normal(rng, 14.0, 3.0)
        } else {
            normal(rng, 7.5, 1.8)
        }
        .max(2.5);
        let cbc = [
            (HEMOGLOBIN, hgb, 1),
            (HEMATOCRIT, hgb * 2.95 + normal(rng, 0.0, 1.0), 1),
            (WBC, wbc, 1),
            (PLATELETS, normal(rng, 250.0, 55.0).max(80.0), 0),
        ];
        let creatinine = if self.p.female {
            normal(rng, 0.8, 0.12)
        } else {
            normal(rng, 1.0, 0.15)
        } + if dry { 0.3 } else { 0.0 };
        let bmp = [
            (GLUCOSE, normal(rng, 105.0, 15.0), 0),
            (
                UREA_NITROGEN,
                normal(rng, if dry { 28.0 } else { 15.0 }, 4.0).max(4.0),
                0,
            ),
            (CREATININE, creatinine.max(0.4), 2),
            (CALCIUM, normal(rng, 9.3, 0.4), 1),
            (SODIUM, normal(rng, if dry { 145.0 } else { 139.0 }, 2.5), 0),
            (POTASSIUM, normal(rng, 4.0, 0.35), 1),
            (CHLORIDE, normal(rng, 102.0, 2.5), 0),
            (CO2, normal(rng, if dry { 21.0 } else { 25.0 }, 2.0), 0),
        ];
        self.lab_panel(ctx, v, Some(CBC_PANEL), &cbc);
        self.lab_panel(ctx, v, Some(BMP_PANEL), &bmp);
    }

    /// The operation (performed by the facility's surgeon, a few hours after admission) and the pathology
    /// report of its specimen, signed one to three days later.
    fn operate(&mut self, ctx: &Ctx, stay: &Stay, surgery: &Surgery, condition: &str) {
        let surgeon = self
            .prov
            .first_with(stay.org, StaffRole::Surgeon)
            .map_or_else(
                || ctx.practitioner.clone(),
                |i| self.prov.practitioner_ref(i),
            );
        let wait =
            minutes(self.rng.random_range(150..8 * 60)).min((stay.discharged - stay.admitted) / 3);
        let start = stay.admitted + wait;
        let end = (start + minutes(self.rng.random_range(surgery.minutes.0..=surgery.minutes.1)))
            .min(stay.discharged);
        let operating = Ctx {
            patient: ctx.patient,
            encounter: ctx.encounter,
            offset: ctx.offset,
            practitioner: &surgeon,
            org: ctx.org,
        };
        let urn = new_urn(&mut self.rng);
        let p = fhir::procedure(&operating, surgery.code, start, end, Some(condition));
        self.push(&urn, "Procedure", p);
        let signed = (end + minutes(self.rng.random_range(24 * 60..72 * 60)))
            .min(self.end)
            .min(self.cfg.now);
        self.pathology(ctx, stay.org, end, signed, &surgery.pathology);
    }

    /// Vital signs on arrival, then at 06:00, 14:00 and 22:00 (local time) until discharge: temperature,
    /// pulse, breathing rate, oxygen saturation, and blood pressure from age 3. Fever and breathing trouble
    /// fade over the first days.
    pub(super) fn stay_vitals(&mut self, ctx: &Ctx, stay: &Stay) {
        let mut times = vec![stay.admitted + minutes(10)];
        let local = stay.admitted.to_offset(ctx.offset);
        let mut day = local.replace_time(Time::MIDNIGHT);
        while day < stay.discharged {
            for hour in [6, 14, 22] {
                let t = day + Duration::hours(hour) + minutes(self.rng.random_range(0..30));
                if t > stay.admitted + Duration::hours(2) && t < stay.discharged - minutes(30) {
                    times.push(t);
                }
            }
            day += Duration::days(1);
        }
        let adult = stay.age >= 18.0;
        let (hr0, rr0) = resting(stay.age);
        let reason = stay.reason;
        for t in times {
            let days = (t - stay.admitted).as_seconds_f64() / 86_400.0;
            let fading = (-days / 1.2).exp();
            let rng = &mut self.rng;
            let fever = reason.fever * fading;
            let temp = 36.8 + normal(rng, 0.0, 0.2) + fever;
            let hr = hr0 + 9.0 * fever + normal(rng, 0.0, 5.0);
            let breathing = if reason.respiratory {
                8.0 * fading
            } else {
                0.0
            };
            let rr = (rr0 + breathing + normal(rng, 0.0, 1.5)).max(10.0);
            let spo2 = (97.5 + normal(rng, 0.0, 0.8)
                - if reason.respiratory {
                    6.0 * fading
                } else {
                    0.0
                })
            .min(100.0);
            let bp = (stay.age >= 3.0).then(|| {
                if adult {
                    let sys = 112.0 + 0.45 * (stay.age - 20.0).max(0.0) + self.p.bp_offset
                        - if reason.code == HEATSTROKE {
                            15.0 * fading
                        } else {
                            0.0
                        }
                        + normal(rng, 0.0, 8.0);
                    (sys, 0.55 * sys + 8.0 + normal(rng, 0.0, 4.0))
                } else {
                    (
                        90.0 + 1.5 * stay.age + normal(rng, 0.0, 6.0),
                        55.0 + 0.8 * stay.age + normal(rng, 0.0, 5.0),
                    )
                }
            });
            if let Some((sys, dia)) = bp {
                let urn = new_urn(&mut self.rng);
                let o = fhir::blood_pressure(ctx, sys, dia, t, adult);
                self.push(&urn, "Observation", o);
            }
            for (loinc, value, decimals) in [
                (BODY_TEMP, temp, 1),
                (HEART_RATE, hr, 0),
                (RESP_RATE, rr, 0),
                (SPO2, spo2, 0),
            ] {
                let urn = new_urn(&mut self.rng);
                let o = fhir::observation(
                    ctx,
                    Category::VitalSigns,
                    &loinc,
                    value,
                    decimals,
                    t,
                    t,
                    adult,
                );
                self.push(&urn, "Observation", o);
            }
        }
    }

    /// The discharge summary (LOINC 18842-5): a short, plainly synthetic text, signed at discharge.
    pub(super) fn discharge_summary(
        &mut self,
        ctx: &Ctx,
        stay: &Stay,
        from_ed: bool,
        disposition: &str,
        imaging: Option<&str>,
    ) {
        let place = ctx.org["display"].as_str().unwrap_or("the hospital");
        let author = ctx.practitioner["display"]
            .as_str()
            .unwrap_or("the attending physician");
        let date = |t: OffsetDateTime| super::super::fhir_date(t, ctx.offset);
        let days = (stay.discharged - stay.admitted).whole_days().max(1);
        let text = format!(
            "SYNTHETIC NOTE - generated test data, not a real patient.\n\
             Discharge summary, {place}.\n\
             Admitted {}{} for {}.\n\
             Course: {}{}\n\
             Discharged {} to {} after {days} day{}. Follow up with the PCM in 1 to 2 weeks.\n\
             Signed: {author}\n",
            date(stay.admitted),
            if from_ed {
                " from the emergency department"
            } else {
                ""
            },
            stay.reason.code.display,
            stay.reason.course,
            imaging.map_or(String::new(), |i| format!(" {i} done.")),
            date(stay.discharged),
            disposition.to_lowercase(),
            if days == 1 { "" } else { "s" },
        );
        let data = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let signed = super::super::fhir_datetime(stay.discharged, ctx.offset);
        let urn = new_urn(&mut self.rng);
        let doc = json!({
            "resourceType": "DocumentReference",
            "status": "current",
            "docStatus": "final",
            "type": fhir::loinc_concept(DISCHARGE_SUMMARY),
            "category": [{
                "coding": [{
                    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                    "code": "clinical-note",
                    "display": "Clinical Note"
                }],
                "text": "Clinical Note"
            }],
            "subject": { "reference": ctx.patient },
            "date": signed,
            "author": [ctx.practitioner.clone()],
            "authenticator": ctx.practitioner.clone(),
            "custodian": ctx.org.clone(),
            "description": "Discharge summary (synthetic)",
            "content": [{
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "en-US",
                    "data": data,
                    "title": "Discharge summary",
                    "creation": signed
                }
            }],
            "context": {
                "encounter": [{ "reference": ctx.encounter }],
                "period": {
                    "start": super::super::fhir_datetime(stay.admitted, ctx.offset),
                    "end": signed
                }
            }
        });
        self.push(&urn, "DocumentReference", doc);
    }
}
