//! Military-specific examinations of the simulated record: the periodic health assessment (PHA) of service
//! members with their hearing test and vision findings, and yearly dental examinations at the facility's
//! dental clinic with findings charted by tooth (FDI two-digit numbering, HL7 `ex-tooth`).

use rand::Rng;
use serde_json::json;
use time::{Duration, OffsetDateTime, Time};

use super::super::cs_url;
use super::super::person::{minutes, years, Role, Visit};
use super::super::providers::StaffRole;
use super::super::resources::{self as fhir, Ctx};
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

    /// Yearly dental examinations between `first` and `end`: service members nearly always, family members
    /// and retirees less often; none before the first birthday.
    pub(super) fn dental_exams(&mut self, first: OffsetDateTime, end: OffsetDateTime) {
        let history = f64::from(self.cfg.years_of_history);
        let p_exam = match self.p.role {
            Role::ActiveDuty | Role::Reserve => 0.95,
            Role::Child => 0.8,
            _ => 0.6,
        };
        for k in 0..self.cfg.years_of_history {
            let lo = (self.cfg.now - years(history - f64::from(k)))
                .max(first)
                .max(self.p.birth + years(1.0));
            let hi = (self.cfg.now - years(history - f64::from(k) - 1.0)).min(end);
            if hi <= lo + Duration::days(1) || !self.rng.random_bool(p_exam) {
                continue;
            }
            let t = lo + (hi - lo) * self.rng.random_range(0.0..1.0);
            let org = self.p.stint_at(t).org;
            let Some(dentist) = self.prov.first_with(org, StaffRole::Dentist) else {
                continue;
            };
            let offset = self.prov.orgs[org].facility.offset;
            let clock = Time::MIDNIGHT + minutes(8 * 60 + 40 * self.rng.random_range(0..10));
            let start = t.to_offset(offset).replace_time(clock);
            let end_of_visit = start + minutes(40);
            if start < lo || end_of_visit > hi {
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
        let mut findings: Vec<(Concept, Option<&'static str>)> = Vec::new();
        let p_caries = if age < 18.0 { 0.15 } else { 0.2 };
        if age >= 6.0 && self.rng.random_bool(p_caries) {
            let teeth: &[&'static str] = if age < 12.0 {
                &FIRST_MOLARS
            } else {
                &CARIES_TEETH
            };
            let n = self.rng.random_range(1..=2usize);
            for i in 0..n {
                let tooth = teeth[self.rng.random_range(0..teeth.len())];
                if findings.iter().any(|f| f.1 == Some(tooth)) {
                    continue;
                }
                let depth = if i == 0 && self.rng.random_bool(0.6) {
                    CARIES_ENAMEL
                } else {
                    CARIES_DENTIN
                };
                findings.push((depth, Some(tooth)));
            }
        }
        if age >= 12.0 && self.rng.random_bool(0.1) {
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
        let summary = match teeth.as_slice() {
            [] => reason.display.to_string(),
            [t] => format!("{}; caries on tooth {t}", reason.display),
            [t, u, ..] => format!("{}; caries on teeth {t} and {u}", reason.display),
        };
        for (code, tooth) in findings {
            self.finding(&ctx, v, code, tooth);
        }
        if self.notes && v.start >= self.cfg.now - years(super::NOTE_YEARS) {
            self.note(&ctx, v, "Dental examination", Some(&summary));
        }
    }
}
