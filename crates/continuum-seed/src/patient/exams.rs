//! Military-specific examinations of the simulated record: the periodic health assessment (PHA) of service
//! members with their hearing test, vision findings and visual acuity, and yearly dental examinations at the
//! facility's dental clinic with findings charted by tooth (FDI two-digit numbering, HL7 `ex-tooth`) and the
//! DoD dental readiness class they imply.
//!
//! Service members are examined about the same time every year (up to six weeks before the anniversary),
//! and miss a year now and then; a health assessment that finds no dental examination within the last 12
//! months records class 4 (exam overdue), when the record covers those 12 months.

use rand::Rng;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, Time};

use super::super::cs_url;
use super::super::person::{minutes, years, Role, Visit};
use super::super::providers::StaffRole;
use super::super::resources::{self as fhir, Category, Ctx};
use super::super::site;
use super::super::terms::*;
use super::{new_urn, Sim};

const TOOTH: &str = "http://terminology.hl7.org/CodeSystem/ex-tooth";

/// Permanent teeth most prone to caries: first and second molars, then premolars.
const CARIES_TEETH: [&str; 16] = [
    "16", "17", "26", "27", "36", "37", "46", "47", "14", "15", "24", "25", "34", "35", "44", "45",
];
/// The first permanent molars: the only permanent teeth a 6 to 11 year old surely has.
const FIRST_MOLARS: [&str; 4] = ["16", "26", "36", "46"];

/// Snellen acuity (20 ft notation) of eyes without a refractive error, by how often it is found.
const NORMAL_ACUITY: [&str; 7] = [
    "20/15", "20/20", "20/20", "20/20", "20/20", "20/25", "20/30",
];
/// Lines of uncorrected acuity of myopic eyes, best first.
const MYOPIC_ACUITY: [&str; 6] = ["20/40", "20/50", "20/70", "20/100", "20/200", "20/400"];

/// The DoD dental readiness class after an examination: 1 without findings, 3 when caries reach the dentin
/// (an emergency is likely within a year), 2 for the rest (enamel caries, gingivitis). Class 4 (exam overdue
/// or unknown) is never the result of an examination: see [`Sim::overdue_dental_classes`].
fn readiness_class(findings: &[Concept]) -> u8 {
    if findings.is_empty() {
        1
    } else if findings.contains(&CARIES_DENTIN) {
        3
    } else {
        2
    }
}

/// Code and display of a class in Continuum's `dental-readiness-class` code system.
fn readiness_display(class: u8) -> &'static str {
    match class {
        1 => "Class 1: no dental treatment needed",
        2 => "Class 2: dental treatment needed, no dental emergency expected within 12 months",
        3 => "Class 3: dental treatment needed, dental emergency likely within 12 months",
        _ => "Class 4: dental exam overdue or unknown",
    }
}

/// How long a dental examination counts for readiness.
const DENTAL_EXAM_VALID: Duration = Duration::days(365);

/// A periodic health assessment, kept to chart class 4 at it once the dental examinations are known.
pub(super) struct Assessment {
    start: OffsetDateTime,
    end: OffsetDateTime,
    org: usize,
    prac: usize,
    encounter: String,
}

impl Sim<'_> {
    /// A serving adult (active duty or reserve) gets the periodic health assessment at the wellness visit.
    pub(super) fn on_duty(&self, age: f64) -> bool {
        matches!(self.p.role, Role::ActiveDuty | Role::Reserve) && age >= 18.0
    }

    /// The PHA's extras: a hearing test every year, myopia found once in a while, and noise-induced hearing
    /// loss becoming likelier with years of service.
    pub(super) fn pha(&mut self, ctx: &Ctx, v: &Visit, age: f64) {
        self.procedure(ctx, v, PROC_HEARING_EXAM, None);
        if !self.given.contains("myopia") && self.rng.random_bool(0.12) {
            self.given.insert("myopia");
            self.finding(ctx, v, MYOPIA, None);
        }
        let p_loss = ((age - 30.0) * 0.002).clamp(0.0, 0.05);
        if !self.given.contains("hearing-loss") && self.rng.random_bool(p_loss) {
            self.given.insert("hearing-loss");
            self.finding(ctx, v, HEARING_LOSS, None);
        }
        if self.population {
            self.with_aux(|s| s.visual_acuity(ctx, v));
            self.assessments.push(Assessment {
                start: v.start,
                end: v.end,
                org: v.org,
                prac: v.prac,
                encounter: ctx.encounter.to_string(),
            });
        }
    }

    /// Dental readiness class 4 at each health assessment without a dental examination in the 12 months
    /// before it (only where the record reaches back that far: before, an examination may be missing from
    /// it, not from the person's life).
    pub(super) fn overdue_dental_classes(&mut self, first: OffsetDateTime) {
        let assessments = std::mem::take(&mut self.assessments);
        for a in &assessments {
            if a.start - DENTAL_EXAM_VALID < first {
                continue;
            }
            let examined = self
                .dental_seen
                .iter()
                .any(|&t| t <= a.start && a.start - t <= DENTAL_EXAM_VALID);
            if examined {
                continue;
            }
            let practitioner = self.prov.practitioner_ref(a.prac);
            let org = self.prov.org_ref(a.org);
            let patient = self.patient.clone();
            let ctx = Ctx {
                patient: &patient,
                encounter: &a.encounter,
                offset: self.prov.orgs[a.org].facility.offset,
                practitioner: &practitioner,
                org: &org,
            };
            let v = Visit {
                start: a.start,
                end: a.end,
                wellness: true,
                org: a.org,
                prac: a.prac,
            };
            self.dental_readiness(&ctx, &v, 4);
        }
    }

    /// The PHA's vision screening: uncorrected Snellen acuity of each eye (LOINC, `valueString` like
    /// "20/20"), and once myopia is on record, poorer uncorrected and a corrected acuity too.
    fn visual_acuity(&mut self, ctx: &Ctx, v: &Visit) {
        let at = (v.start + minutes(15)).min(v.end);
        let myopic = self.given.contains("myopia");
        let (right, left) = if myopic {
            let (r, l) = match self.myopia {
                Some(lines) => lines,
                None => {
                    let r = self.rng.random_range(0..4usize);
                    let l = (r + self.rng.random_range(0..3usize)).saturating_sub(1);
                    self.myopia = Some((r, l));
                    (r, l)
                }
            };
            (
                MYOPIC_ACUITY[r],
                MYOPIC_ACUITY[l.min(MYOPIC_ACUITY.len() - 1)],
            )
        } else {
            let n = NORMAL_ACUITY.len();
            (
                NORMAL_ACUITY[self.rng.random_range(0..n)],
                NORMAL_ACUITY[self.rng.random_range(0..n)],
            )
        };
        let mut results = vec![(ACUITY_RIGHT, right), (ACUITY_LEFT, left)];
        if myopic {
            let corrected = |rng: &mut rand::rngs::StdRng| {
                if rng.random_bool(0.3) {
                    "20/15"
                } else {
                    "20/20"
                }
            };
            results.push((ACUITY_CORRECTED_RIGHT, corrected(&mut self.rng)));
            results.push((ACUITY_CORRECTED_LEFT, corrected(&mut self.rng)));
        }
        for (code, value) in results {
            let urn = new_urn(&mut self.rng);
            let o = fhir::observation_with(
                ctx,
                Category::Exam,
                fhir::loinc_concept(code),
                ("valueString", json!(value)),
                at,
                at,
            );
            self.push(&urn, "Observation", o);
        }
    }

    /// The dental readiness class (an exam Observation valued in Continuum's `dental-readiness-class`).
    fn dental_readiness(&mut self, ctx: &Ctx, v: &Visit, class: u8) {
        let display = readiness_display(class);
        let value: Value = json!({
            "coding": [{ "system": cs_url("dental-readiness-class"), "code": class.to_string(), "display": display }],
            "text": display
        });
        let code = json!({
            "coding": [{
                "system": cs_url("observation-code"),
                "code": "dental-readiness-class",
                "display": "Dental readiness classification"
            }],
            "text": "Dental readiness classification"
        });
        let at = v.end - minutes(5);
        let urn = new_urn(&mut self.rng);
        let o = fhir::observation_with(
            ctx,
            Category::Exam,
            code,
            ("valueCodeableConcept", value),
            at,
            v.end,
        );
        self.push(&urn, "Observation", o);
    }

    /// A Condition found at visit `v` (problem list, active, onset at the visit).
    fn finding(&mut self, ctx: &Ctx, v: &Visit, code: Concept, tooth: Option<&str>) {
        let urn = new_urn(&mut self.rng);
        let mut c = fhir::condition(
            ctx,
            ICD10CM,
            code,
            tooth.is_none(),
            v.start,
            None,
            v.start + minutes(10),
        );
        if let Some(t) = tooth {
            c["bodySite"] = json!([{
                "coding": [{ "system": TOOTH, "code": t, "display": t }],
                "text": format!("tooth {t} (FDI)")
            }]);
        }
        self.push(&urn, "Condition", c);
    }

    /// Yearly dental examinations between `first` and `end`: service members nearly always and about the
    /// same time each year, family members and retirees less often and at any time of the year; none before
    /// the first birthday, nor around a childbirth.
    pub(super) fn dental_exams(&mut self, first: OffsetDateTime, end: OffsetDateTime) {
        let history = f64::from(self.cfg.years_of_history);
        let serving = matches!(self.p.role, Role::ActiveDuty | Role::Reserve);
        let p_exam = match self.p.role {
            Role::ActiveDuty | Role::Reserve => 0.95,
            Role::Child => 0.8,
            _ => 0.6,
        };
        // Where in the year a service member's examination falls.
        let anniversary = if serving {
            self.rng.random_range(0.0..1.0)
        } else {
            0.0
        };
        for k in 0..self.cfg.years_of_history {
            let year = self.cfg.now - years(history - f64::from(k));
            let lo = year.max(first).max(self.p.birth + years(1.0));
            let hi = (self.cfg.now - years(history - f64::from(k) - 1.0)).min(end);
            if hi <= lo + Duration::days(1) || !self.rng.random_bool(p_exam) {
                continue;
            }
            let t = if serving {
                let early = minutes(self.rng.random_range(0..42 * 24 * 60));
                (year + years(anniversary) - early).max(lo + Duration::days(1))
            } else {
                lo + (hi - lo) * self.rng.random_range(0.0..1.0)
            };
            let org = self.p.stint_at(t).org;
            let Some(dentist) = self.prov.first_with(org, StaffRole::Dentist) else {
                continue;
            };
            let offset = self.prov.orgs[org].facility.offset;
            let clock = Time::MIDNIGHT + minutes(8 * 60 + 40 * self.rng.random_range(0..10));
            let start = t.to_offset(offset).replace_time(clock);
            let end_of_visit = start + minutes(40);
            if start < lo || end_of_visit > hi || self.in_hospital(start, end_of_visit) {
                continue;
            }
            let v = Visit {
                start,
                end: end_of_visit,
                wellness: false,
                org,
                prac: dentist,
            };
            self.dental_exam(&v);
        }
    }

    fn dental_exam(&mut self, v: &Visit) {
        self.busy.push((v.start, v.end));
        self.dental_seen.push(v.start);
        let age = self.p.age_at(v.start);
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
        // Findings first, so the encounter's reason can say whether there were any.
        // Most lesions are found while still in the enamel; one in seven has reached the dentin (class 3).
        let mut findings: Vec<(Concept, Option<&'static str>)> = Vec::new();
        let p_caries = if age < 18.0 { 0.15 } else { 0.3 };
        if age >= 6.0 && self.rng.random_bool(p_caries) {
            let teeth: &[&'static str] = if age < 12.0 {
                &FIRST_MOLARS
            } else {
                &CARIES_TEETH
            };
            let n = self.rng.random_range(1..=2usize);
            for _ in 0..n {
                let tooth = teeth[self.rng.random_range(0..teeth.len())];
                if findings.iter().any(|f| f.1 == Some(tooth)) {
                    continue;
                }
                let depth = if self.rng.random_bool(0.86) {
                    CARIES_ENAMEL
                } else {
                    CARIES_DENTIN
                };
                findings.push((depth, Some(tooth)));
            }
        }
        let p_gingivitis = if age < 18.0 { 0.1 } else { 0.25 };
        if age >= 12.0 && self.rng.random_bool(p_gingivitis) {
            findings.push((GINGIVITIS, None));
        }
        let reason = if findings.is_empty() {
            DENTAL_EXAM_NORMAL
        } else {
            DENTAL_EXAM_ABNORMAL
        };
        let mut e = fhir::encounter(&ctx, ENC_CHECK_UP, Some((ICD10CM, reason)), v.start, v.end);
        e["serviceType"] = json!({
            "coding": [{ "system": cs_url("department"), "code": "dental", "display": "Dental clinic" }],
            "text": "Dental clinic"
        });
        e["location"] = json!([{ "location": site::location_ref(self.prov, v.org, "dental") }]);
        self.push(&enc, "Encounter", e);
        self.procedure(&ctx, v, PROC_ORAL_EXAM, None);
        if age >= 3.0 {
            self.procedure(&ctx, v, PROC_DENTAL_CLEANING, None);
        }
        if age < 16.0 {
            self.procedure(&ctx, v, PROC_FLUORIDE, None);
        }
        let teeth: Vec<&str> = findings.iter().filter_map(|f| f.1).collect();
        let class = readiness_class(&findings.iter().map(|f| f.0).collect::<Vec<_>>());
        let summary = match teeth.as_slice() {
            [] => reason.display.to_string(),
            [t] => format!("{}; caries on tooth {t}", reason.display),
            [t, u, ..] => format!("{}; caries on teeth {t} and {u}", reason.display),
        };
        let summary = if self.population {
            format!("{summary}; dental readiness class {class}")
        } else {
            summary
        };
        for (code, tooth) in findings {
            self.finding(&ctx, v, code, tooth);
        }
        if self.population {
            self.with_aux(|s| s.dental_readiness(&ctx, v, class));
        }
        if self.population && v.start >= self.cfg.now - years(super::NOTE_YEARS) {
            self.note(&ctx, v, "Dental examination", Some(&summary));
        }
    }
}
