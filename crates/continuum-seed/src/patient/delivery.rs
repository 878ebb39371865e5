//! Childbirth in the population's records. A mother whose child was born within her record is admitted to
//! the inpatient ward of the facility she was posted to, a few hours before the birth (a planned repeat
//! cesarean the same morning), and goes home one to three days later: an Encounter of class IMP with the
//! ward and a bed, the delivery Condition (ICD-10-CM O80 for an uncomplicated vaginal birth at term, else the
//! indication of the cesarean section) and the outcome Z37.0 (single live birth), the SNOMED CT procedure
//! (childbirth or cesarean section), a blood count, vital signs, a pain reliever to take home and a discharge
//! summary. The months before the birth are her pregnancy (see `Sim::other_kind`): prenatal visits, and no
//! visit during the stay.
//!
//! Simplifications: every birth is at term (37 to 41 weeks) and single; a cesarean is repeated at every
//! later birth; nothing of the newborn's stay is in the child's record.

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use time::{Duration, OffsetDateTime, Time};

use super::super::person::{minutes, normal, safe_med, Visit};
use super::super::providers::StaffRole;
use super::super::resources::{self as fhir, Ctx, Supply};
use super::super::terms::*;
use super::inpatient::{Reason, Stay};
use super::{new_urn, Birth, Sim};

/// The youngest and oldest a mother is at a birth the record shows.
const MOTHER_AGES: (f64, f64) = (15.0, 50.0);
/// Share of first (primary) cesarean sections among births without an earlier one.
const P_PRIMARY_CESAREAN: f64 = 0.25;
/// A prenatal visit is possible from this many weeks of pregnancy.
const PRENATAL_FROM_WEEKS: i64 = 6;

const VAGINAL: Reason = Reason::obstetric(
    DELIVERY_UNCOMPLICATED,
    "Spontaneous vaginal delivery at term of a single live-born infant; uncomplicated postpartum course.",
    Some((IBUPROFEN, 5)),
);
const REPEAT_CESAREAN: Reason = Reason::obstetric(
    PREVIOUS_CESAREAN_SCAR,
    "Planned repeat cesarean section at term; single live-born infant; uncomplicated postpartum course.",
    Some((IBUPROFEN, 7)),
);
/// Indications of a first cesarean section, by relative weight.
const PRIMARY_CESAREAN: [(Reason, u32); 3] = [
    (
        Reason::obstetric(
            BREECH,
            "Cesarean section at term for breech presentation; single live-born infant; uncomplicated postpartum course.",
            Some((IBUPROFEN, 7)),
        ),
        1,
    ),
    (
        Reason::obstetric(
            FETAL_HEART_RATE,
            "Cesarean section in labor for a non-reassuring fetal heart rate; single live-born infant; uncomplicated postpartum course.",
            Some((IBUPROFEN, 7)),
        ),
        2,
    ),
    (
        Reason::obstetric(
            PROLONGED_FIRST_STAGE,
            "Cesarean section for a prolonged first stage of labor; single live-born infant; uncomplicated postpartum course.",
            Some((IBUPROFEN, 7)),
        ),
        2,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Vaginal,
    RepeatCesarean,
    /// A first cesarean section, for the indication `PRIMARY_CESAREAN[i]`.
    Cesarean(usize),
}

/// One planned childbirth admission.
pub(super) struct Delivery {
    /// The first day of the pregnancy (gestational age counts from it).
    onset: OffsetDateTime,
    birth: OffsetDateTime,
    admitted: OffsetDateTime,
    discharged: OffsetDateTime,
    org: usize,
    mode: Mode,
}

impl Delivery {
    fn reason(&self) -> &'static Reason {
        match self.mode {
            Mode::Vaginal => &VAGINAL,
            Mode::RepeatCesarean => &REPEAT_CESAREAN,
            Mode::Cesarean(i) => &PRIMARY_CESAREAN[i % PRIMARY_CESAREAN.len()].0,
        }
    }
}

impl Sim<'_> {
    /// Plans the admission of each birth that lies within the record (from `first` to `end`), in order, with
    /// the mother between 15 and 50 years old; the stays are marked busy. Draws from `rng` only.
    pub(super) fn plan_deliveries(
        &mut self,
        rng: &mut StdRng,
        births: &[Birth],
        first: OffsetDateTime,
        end: OffsetDateTime,
    ) {
        let mut order: Vec<&Birth> = births.iter().collect();
        order.sort_by_key(|b| b.at);
        let mut cesarean_before = false;
        for b in order {
            let age = self.p.age_at(b.at);
            if !(MOTHER_AGES.0..=MOTHER_AGES.1).contains(&age) {
                continue;
            }
            let mode = if cesarean_before {
                Mode::RepeatCesarean
            } else if rng.random_bool(P_PRIMARY_CESAREAN) {
                let total: u32 = PRIMARY_CESAREAN.iter().map(|r| r.1).sum();
                let mut pick = rng.random_range(0..total);
                let mut chosen = 0;
                for (i, (_, w)) in PRIMARY_CESAREAN.iter().enumerate() {
                    if pick < *w {
                        chosen = i;
                        break;
                    }
                    pick -= w;
                }
                Mode::Cesarean(chosen)
            } else {
                Mode::Vaginal
            };
            let org = self.p.stint_at(b.at).org;
            let offset = self.prov.orgs[org].facility.offset;
            // Hours in hospital before the birth: labor, or the morning of a planned operation.
            let before = match mode {
                Mode::Vaginal => rng.random_range(2 * 60..14 * 60),
                Mode::RepeatCesarean => rng.random_range(90..180),
                Mode::Cesarean(_) => rng.random_range(6 * 60..20 * 60),
            };
            let mut admitted = b.at - minutes(before);
            // The stay covers the date on the child's record (which may be a day off the local date here).
            for _ in 0..30 {
                if admitted.to_offset(offset).date() <= b.date {
                    break;
                }
                admitted -= Duration::hours(1);
            }
            let nights = match mode {
                Mode::Vaginal => rng.random_range(1..=2),
                _ => rng.random_range(2..=3),
            };
            let day_of_birth = b.at.to_offset(offset).replace_time(Time::MIDNIGHT);
            let mut discharged =
                day_of_birth + Duration::days(nights) + minutes(rng.random_range(10 * 60..14 * 60));
            if discharged - b.at < Duration::hours(20) {
                discharged += Duration::days(1);
            }
            let gestation = Duration::days(rng.random_range(37 * 7..42 * 7));
            let clash = self
                .deliveries
                .iter()
                .any(|d| b.at - gestation < d.discharged);
            if admitted < first || discharged > end || clash {
                continue;
            }
            cesarean_before |= mode != Mode::Vaginal;
            self.busy.push((admitted, discharged));
            self.deliveries.push(Delivery {
                onset: b.at - gestation,
                birth: b.at,
                admitted,
                discharged,
                org,
                mode,
            });
        }
    }

    /// Whether `start..end` overlaps a childbirth admission.
    pub(super) fn in_hospital(&self, start: OffsetDateTime, end: OffsetDateTime) -> bool {
        self.deliveries
            .iter()
            .any(|d| start < d.discharged && d.admitted < end)
    }

    /// Whether `t` falls in a pregnancy or its childbirth stay.
    pub(super) fn pregnant(&self, t: OffsetDateTime) -> bool {
        self.deliveries
            .iter()
            .any(|d| d.onset <= t && t < d.discharged)
    }

    /// The pregnancy `t` falls in, as (onset, birth), from the first prenatal visit it allows to the
    /// admission.
    pub(super) fn expecting(&self, t: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime)> {
        self.deliveries
            .iter()
            .find(|d| d.onset + Duration::weeks(PRENATAL_FROM_WEEKS) <= t && t < d.admitted)
            .map(|d| (d.onset, d.birth))
    }

    /// Writes the planned childbirth admissions.
    pub(super) fn deliveries(&mut self) {
        let planned = std::mem::take(&mut self.deliveries);
        for d in &planned {
            self.delivery(d);
        }
        self.deliveries = planned;
    }

    fn delivery(&mut self, d: &Delivery) {
        let reason = d.reason();
        let stay = Stay {
            org: d.org,
            admitted: d.admitted,
            discharged: d.discharged,
            reason,
            age: self.p.age_at(d.admitted),
        };
        let attending = self.attending(&stay);
        let enc = new_urn(&mut self.rng);
        let condition = new_urn(&mut self.rng);
        let outcome = new_urn(&mut self.rng);
        let practitioner = self.prov.practitioner_ref(attending);
        let org_ref = self.prov.org_ref(d.org);
        let patient = self.patient.clone();
        let ctx = Ctx {
            patient: &patient,
            encounter: &enc,
            offset: self.prov.orgs[d.org].facility.offset,
            practitioner: &practitioner,
            org: &org_ref,
        };
        let (from_ed, disposition) = self.encounter_of_stay(&ctx, &stay, &condition);
        // The outcome of delivery is the stay's second diagnosis.
        if let Some(diagnoses) = self
            .entries
            .last_mut()
            .and_then(|e| e.get_mut("resource"))
            .and_then(|r| r.get_mut("diagnosis"))
            .and_then(|v| v.as_array_mut())
        {
            diagnoses.push(json!({
                "condition": { "reference": outcome },
                "use": {
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/diagnosis-role",
                        "code": "DD",
                        "display": "Discharge diagnosis"
                    }]
                },
                "rank": 2
            }));
        }
        let c = fhir::condition(
            &ctx,
            ICD10CM,
            reason.code,
            false,
            d.admitted,
            Some(d.discharged),
            d.admitted + minutes(20),
        );
        self.push(&condition, "Condition", c);
        let c = fhir::condition(
            &ctx,
            ICD10CM,
            SINGLE_LIVE_BIRTH,
            false,
            d.birth,
            Some(d.discharged),
            d.birth + minutes(30),
        );
        self.push(&outcome, "Condition", c);

        // A blood count on admission.
        let admission = Visit {
            start: d.admitted + minutes(20),
            end: d.discharged,
            wellness: false,
            org: d.org,
            prac: attending,
        };
        let hgb = normal(&mut self.rng, 12.2, 1.0);
        let cbc = [
            (HEMOGLOBIN, hgb, 1),
            (HEMATOCRIT, hgb * 2.95 + normal(&mut self.rng, 0.0, 1.0), 1),
            (WBC, normal(&mut self.rng, 10.5, 2.0).max(4.0), 1),
            (PLATELETS, normal(&mut self.rng, 230.0, 50.0).max(100.0), 0),
        ];
        self.lab_panel(&ctx, &admission, Some(CBC_PANEL), &cbc);

        // The delivery itself: by the attending physician, or the facility's surgeon for a cesarean section.
        let (code, start, end, by) = match d.mode {
            Mode::Vaginal => {
                let start = (d.birth - minutes(self.rng.random_range(20..90))).max(d.admitted);
                let end = d.birth + minutes(self.rng.random_range(5..25));
                (PROC_CHILDBIRTH, start, end, practitioner.clone())
            }
            _ => {
                let start = (d.birth - minutes(self.rng.random_range(8..20))).max(d.admitted);
                let end = d.birth + minutes(self.rng.random_range(35..60));
                let surgeon = self
                    .prov
                    .first_with(d.org, StaffRole::Surgeon)
                    .map_or_else(|| practitioner.clone(), |i| self.prov.practitioner_ref(i));
                (PROC_CESAREAN, start, end, surgeon)
            }
        };
        let performing = Ctx {
            practitioner: &by,
            ..ctx
        };
        let urn = new_urn(&mut self.rng);
        let p = fhir::procedure(&performing, code, start, end, Some(&condition));
        self.push(&urn, "Procedure", p);

        self.stay_vitals(&ctx, &stay);
        if let Some((med, days)) = reason.take_home {
            let med = safe_med(med, &self.p);
            let supply = Supply {
                days,
                repeats: 0,
                validity_days: 30,
            };
            let authored = d.discharged - minutes(45);
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
        self.discharge_summary(&ctx, &stay, from_ed, disposition, None);
    }
}
