//! Who a synthetic patient is and when they are seen: demographics, duty stations, build, chronic
//! conditions with their true onsets, drug allergy, and the visit schedule. `patient.rs` then walks the
//! visits and writes what happens at each.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use time::{Duration, OffsetDateTime, Time};

use super::providers::Providers;
use super::terms::*;
use super::SynthConfig;

pub(super) const YEAR_SECONDS: f64 = 365.25 * 86_400.0;

pub(super) fn years(y: f64) -> Duration {
    Duration::seconds_f64(y * YEAR_SECONDS)
}

pub(super) fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}

/// A normal deviate (Box–Muller), so values cluster realistically.
pub(super) fn normal(rng: &mut StdRng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Linear interpolation in a table of (x, y) points sorted by x, clamped at both ends.
pub(super) fn interpolate(table: &[(f64, f64)], x: f64) -> f64 {
    let mut prev = table[0];
    if x <= prev.0 {
        return prev.1;
    }
    for &(tx, ty) in &table[1..] {
        if x <= tx {
            return prev.1 + (ty - prev.1) * (x - prev.0) / (tx - prev.0);
        }
        prev = (tx, ty);
    }
    prev.1
}

/// The beneficiary category of a person: a sponsor's status, or a family member of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    ActiveDuty,
    Reserve,
    Retiree,
    Veteran,
    Spouse,
    Child,
}

impl Role {
    /// Served in the armed forces (for deployment-related conditions and military vaccines).
    pub(super) fn served(self) -> bool {
        matches!(
            self,
            Role::ActiveDuty | Role::Reserve | Role::Retiree | Role::Veteran
        )
    }
}

/// A posting at one facility from `from` on, with the primary-care manager seen there.
pub(super) struct Stint {
    pub(super) from: OffsetDateTime,
    pub(super) org: usize,
    pub(super) pcm: usize,
}

#[derive(Clone)]
/// What the caller fixes about a person before the rest is drawn: the family generator decides roles, sex,
/// ages, the family name and the household's duty stations; the legacy single-patient path draws them too.
pub(super) struct Spec {
    pub(super) role: Role,
    pub(super) female: bool,
    pub(super) birth: OffsetDateTime,
    pub(super) family: &'static str,
    pub(super) married: bool,
    /// Household duty stations: from when, at which facility (sorted by time, first one before the window).
    pub(super) postings: Vec<(OffsetDateTime, usize)>,
    /// Whether the person may die within the window (never for the children of the population).
    pub(super) mortal: bool,
    /// Chronic conditions the person surely has (the demo's showcase family), if old enough.
    pub(super) forced: Vec<Concept>,
}

pub(super) struct Person {
    pub(super) female: bool,
    pub(super) role: Role,
    pub(super) birth: OffsetDateTime,
    pub(super) death: Option<OffsetDateTime>,
    pub(super) given: &'static str,
    pub(super) middle: &'static str,
    pub(super) family: &'static str,
    pub(super) married: bool,
    pub(super) spanish: bool,
    pub(super) adult_height: f64,
    /// Body-mass index at age 40 (the person's build).
    pub(super) bmi40: f64,
    pub(super) bp_offset: f64,
    pub(super) cholesterol: f64,
    pub(super) hdl: f64,
    pub(super) triglycerides: f64,
    pub(super) stints: Vec<Stint>,
    pub(super) allergy: Option<(Concept, AllergyClass, Concept)>,
    pub(super) tdap_phase: u32,
    pub(super) flu_uptake: f64,
    pub(super) forced: Vec<Concept>,
}

impl Person {
    pub(super) fn age_at(&self, t: OffsetDateTime) -> f64 {
        (t - self.birth).as_seconds_f64() / YEAR_SECONDS
    }

    pub(super) fn stint_at(&self, t: OffsetDateTime) -> &Stint {
        let mut current = &self.stints[0];
        for s in &self.stints {
            if s.from <= t {
                current = s;
            }
        }
        current
    }

    pub(super) fn height_at(&self, age: f64) -> f64 {
        const MALE: [(f64, f64); 13] = [
            (0.0, 50.0),
            (0.5, 67.0),
            (1.0, 76.0),
            (2.0, 87.0),
            (3.0, 96.0),
            (4.0, 103.0),
            (6.0, 116.0),
            (8.0, 128.0),
            (10.0, 139.0),
            (12.0, 150.0),
            (14.0, 164.0),
            (16.0, 173.0),
            (18.0, 176.0),
        ];
        const FEMALE: [(f64, f64); 13] = [
            (0.0, 49.0),
            (0.5, 65.0),
            (1.0, 74.0),
            (2.0, 86.0),
            (3.0, 95.0),
            (4.0, 102.0),
            (6.0, 115.0),
            (8.0, 127.0),
            (10.0, 138.0),
            (12.0, 151.0),
            (14.0, 160.0),
            (16.0, 162.0),
            (18.0, 163.0),
        ];
        let (table, reference) = if self.female {
            (&FEMALE, 163.0)
        } else {
            (&MALE, 176.0)
        };
        let shrink = if age > 60.0 { (age - 60.0) * 0.1 } else { 0.0 };
        interpolate(table, age) * self.adult_height / reference - shrink
    }

    pub(super) fn bmi_at(&self, age: f64) -> f64 {
        let adult = |a: f64| self.bmi40 + 0.1 * (a.min(65.0) - 40.0);
        if age >= 18.0 {
            return adult(age);
        }
        const CHILD: [(f64, f64); 12] = [
            (0.0, 13.5),
            (0.5, 17.0),
            (1.0, 17.5),
            (2.0, 16.5),
            (4.0, 15.8),
            (6.0, 15.5),
            (8.0, 16.0),
            (10.0, 17.0),
            (12.0, 18.0),
            (14.0, 19.5),
            (16.0, 20.5),
            (18.0, 21.5),
        ];
        // Children take after their adult build only gradually.
        let build = 1.0 + (adult(18.0) / 21.5 - 1.0) * (age / 18.0).clamp(0.2, 1.0);
        interpolate(&CHILD, age) * build
    }
}

/// Draws who patient `index` is (the legacy single-patient path, without a family). Consumes the RNG in a
/// fixed order, so output is reproducible.
pub(super) fn sample_person(rng: &mut StdRng, cfg: &SynthConfig, prov: &Providers) -> Person {
    let role = match rng.random_range(0..100) {
        0..30 => Role::ActiveDuty,
        30..50 => Role::Spouse,
        50..78 => Role::Child,
        _ => Role::Retiree,
    };
    let (age, p_female) = match role {
        Role::ActiveDuty | Role::Reserve => (18.0 + 27.0 * rng.random::<f64>().powf(1.5), 0.18),
        Role::Spouse => (20.0 + rng.random_range(0.0..40.0), 0.85),
        Role::Child => (rng.random_range(0.0..18.0), 0.5),
        Role::Retiree | Role::Veteran => (42.0 + rng.random_range(0.0..50.0), 0.35),
    };
    let female = rng.random_bool(p_female);
    let birth = cfg.now - years(age) - minutes(rng.random_range(0..24 * 60));
    let family = FAMILY.choose(rng).copied().unwrap_or("Testpatient");
    let married = match role {
        Role::Spouse => true,
        Role::Child => false,
        Role::ActiveDuty | Role::Reserve => rng.random_bool(0.5),
        Role::Retiree | Role::Veteran => rng.random_bool(0.75),
    };
    let postings = sample_postings(rng, cfg, prov, role, birth);
    let spec = Spec {
        role,
        female,
        birth,
        family,
        married,
        postings,
        mortal: true,
        forced: Vec::new(),
    };
    complete_person(rng, cfg, prov, spec)
}

/// Duty stations: active-duty households move every 2–4 years; retirees and veterans stay near one CONUS
/// facility. The first posting begins before the history window so it covers all of it.
pub(super) fn sample_postings(
    rng: &mut StdRng,
    cfg: &SynthConfig,
    prov: &Providers,
    role: Role,
    birth: OffsetDateTime,
) -> Vec<(OffsetDateTime, usize)> {
    let now = cfg.now;
    let window_start = (now - years(f64::from(cfg.years_of_history))).max(birth);
    let settled = matches!(role, Role::Retiree | Role::Veteran);
    let conus: Vec<usize> = (0..prov.orgs.len())
        .filter(|&i| !prov.orgs[i].facility.overseas)
        .collect();
    let mut org = if settled {
        conus.choose(rng).copied().unwrap_or(0)
    } else {
        rng.random_range(0..prov.orgs.len())
    };
    let mut from = window_start - years(rng.random_range(0.0..3.0));
    let mut postings = Vec::new();
    loop {
        postings.push((from, org));
        from += years(rng.random_range(2.0..4.0));
        if settled || from >= now {
            break;
        }
        let next = rng.random_range(0..prov.orgs.len() - 1);
        org = if next >= org { next + 1 } else { next };
    }
    postings
}

/// Draws the rest of a person: first names, build, risk factors, PCMs, allergy, vaccine habits, death.
pub(super) fn complete_person(
    rng: &mut StdRng,
    cfg: &SynthConfig,
    prov: &Providers,
    spec: Spec,
) -> Person {
    let Spec {
        role,
        female,
        birth,
        family,
        married,
        postings,
        mortal,
        forced,
    } = spec;
    let now = cfg.now;
    let age = (now - birth).as_seconds_f64() / YEAR_SECONDS;
    let history = f64::from(cfg.years_of_history);
    let p_death = if !mortal {
        0.0
    } else if matches!(role, Role::Retiree | Role::Veteran) && age >= 65.0 {
        0.08 + (age - 65.0) * 0.01
    } else {
        0.004
    };
    let death = if p_death > 0.0 && rng.random_bool(p_death.min(0.5)) {
        let earliest = (birth + Duration::days(1)).max(now - years(history));
        let latest = now - Duration::days(1);
        (earliest < latest).then(|| earliest + (latest - earliest) * rng.random_range(0.0..1.0))
    } else {
        None
    };
    let given_list = if female {
        &GIVEN_FEMALE[..]
    } else {
        &GIVEN_MALE[..]
    };
    let given = given_list.choose(rng).copied().unwrap_or("Avery");
    let middle = given_list.choose(rng).copied().unwrap_or("Avery");
    let spanish = rng.random_bool(0.08);
    let adult_height = if female {
        normal(rng, 163.0, 6.5)
    } else {
        normal(rng, 176.0, 7.0)
    };
    let bmi_mean = match role {
        Role::ActiveDuty => 25.5,
        Role::Reserve => 26.5,
        _ => 27.5,
    };
    let bmi40 = normal(rng, bmi_mean, 4.0).clamp(18.5, 45.0);
    let bp_offset = normal(rng, 0.0, 6.0);
    let cholesterol = normal(rng, 180.0, 22.0);
    let hdl = if female {
        normal(rng, 58.0, 10.0)
    } else {
        normal(rng, 47.0, 8.0)
    }
    .max(28.0);
    let triglycerides = normal(rng, 115.0, 35.0).max(45.0);

    let stints = postings
        .into_iter()
        .map(|(from, org)| {
            let pcms = prov.staff_of(org);
            let pcm = pcms.start + rng.random_range(0..pcms.len());
            Stint { from, org, pcm }
        })
        .collect();

    let allergy = rng.random_bool(0.15).then(|| {
        let total: u32 = ALLERGENS.iter().map(|a| a.2).sum();
        let mut pick = rng.random_range(0..total);
        let mut chosen = ALLERGENS[0];
        for a in ALLERGENS {
            if pick < a.2 {
                chosen = a;
                break;
            }
            pick -= a.2;
        }
        let reaction = match rng.random_range(0..10) {
            0 => REACTION_ANAPHYLAXIS,
            1..5 => REACTION_URTICARIA,
            _ => REACTION_SKIN_ERUPTION,
        };
        (chosen.0, chosen.1, reaction)
    });
    let tdap_phase = rng.random_range(0..10);
    let flu_uptake = match role {
        Role::ActiveDuty => 0.97,
        Role::Reserve => 0.9,
        Role::Child | Role::Retiree => 0.75,
        Role::Spouse => 0.55,
        Role::Veteran => 0.5,
    };
    Person {
        female,
        role,
        birth,
        death,
        given,
        middle,
        family,
        married,
        spanish,
        adult_height,
        bmi40,
        bp_offset,
        cholesterol,
        hdl,
        triglycerides,
        stints,
        allergy,
        tdap_phase,
        flu_uptake,
        forced,
    }
}

/// A chronic condition of the patient: true onset, and once recorded, its Condition and latest order.
pub(super) struct Chronic {
    pub(super) code: Concept,
    pub(super) onset: OffsetDateTime,
    pub(super) med: Option<Med>,
    pub(super) condition: Option<String>,
    pub(super) rx: Option<(String, usize, OffsetDateTime)>,
}

/// Which chronic conditions this person has (or will develop before the end of the window), with onsets.
pub(super) fn sample_chronic(rng: &mut StdRng, p: &Person, end: OffsetDateTime) -> Vec<Chronic> {
    let age_end = p.age_at(end);
    let obese = p.bmi40 >= 30.0;
    let veteran = p.role.served();
    let ramp = |from: f64, per_year: f64, cap: f64| ((age_end - from) * per_year).clamp(0.0, cap);
    let candidates: [(Concept, f64, f64, &[Med]); 17] = [
        (
            HYPERTENSION,
            25.0,
            ramp(25.0, 0.011, 0.55) + if obese { 0.1 } else { 0.0 },
            &[LISINOPRIL, AMLODIPINE, HCTZ],
        ),
        (
            HYPERLIPIDEMIA,
            30.0,
            ramp(30.0, 0.01, 0.45),
            &[ATORVASTATIN, SIMVASTATIN],
        ),
        (
            DIABETES_T2,
            30.0,
            ramp(30.0, 0.005, 0.2) + if obese { 0.08 } else { 0.0 },
            &[METFORMIN],
        ),
        (ASTHMA, 2.0, 0.08, &[ALBUTEROL, ALBUTEROL, FLUTICASONE]),
        (ALLERGIC_RHINITIS, 3.0, 0.12, &[LORATADINE, CETIRIZINE]),
        (
            HYPOTHYROIDISM,
            25.0,
            if p.female { 0.07 } else { 0.02 },
            &[LEVOTHYROXINE],
        ),
        (OBESITY, 18.0, if obese { 0.7 } else { 0.0 }, &[]),
        (ANXIETY, 16.0, 0.06, &[SERTRALINE]),
        (PTSD, 19.0, if veteran { 0.07 } else { 0.0 }, &[SERTRALINE]),
        (GERD, 20.0, 0.07, &[]),
        (
            BPH,
            50.0,
            if p.female {
                0.0
            } else {
                ramp(50.0, 0.015, 0.4)
            },
            &[],
        ),
        (
            DYSMENORRHEA,
            13.0,
            if p.female { 0.08 } else { 0.0 },
            &[NAPROXEN, IBUPROFEN],
        ),
        (NICOTINE, 16.0, 0.1, &[]),
        (DEPRESSION, 12.0, 0.07, &[SERTRALINE, FLUOXETINE]),
        (
            ALCOHOL_ABUSE,
            18.0,
            if veteran { 0.05 } else { 0.025 },
            &[NALTREXONE],
        ),
        (HIV_ASYMPTOMATIC, 18.0, 0.003, &[HIV_ART]),
        (
            // Only women young enough that the order is still plausible today.
            CONTRACEPTION,
            15.0,
            if p.female && age_end < 46.0 { 0.3 } else { 0.0 },
            &[CONTRACEPTIVE_PILL, CONTRACEPTIVE_PILL_PROGESTIN],
        ),
    ];
    let mut out = Vec::new();
    for (code, min_age, prob, meds) in candidates {
        let prob = if p.forced.contains(&code) { 1.0 } else { prob };
        if age_end < min_age || !rng.random_bool(prob.clamp(0.0, 1.0)) {
            continue;
        }
        let earliest = min_age.max(age_end - 25.0);
        // A forced condition (the showcase) begins early enough to be on record by now.
        let latest = if p.forced.contains(&code) {
            earliest + (age_end - earliest) * 0.4
        } else {
            age_end
        };
        let onset_age = rng.random_range(earliest..=latest);
        let onset = p.birth + years(onset_age);
        let med = if !meds.is_empty() && rng.random_bool(0.85) {
            meds.choose(rng).map(|m| safe_med(*m, p))
        } else {
            None
        };
        out.push(Chronic {
            code,
            onset,
            med,
            condition: None,
            rx: None,
        });
    }
    out
}

/// The medication to order instead of `med` when the patient is allergic to its class.
pub(super) fn safe_med(med: Med, p: &Person) -> Med {
    let Some((_, class, _)) = p.allergy else {
        return med;
    };
    match (class, med.code) {
        (AllergyClass::Penicillin, c) if c == AMOXICILLIN.code || c == PENICILLIN_VK.code => {
            AZITHROMYCIN
        }
        (AllergyClass::Sulfa, c) if c == SMX_TMP.code => CEPHALEXIN,
        (AllergyClass::Cephalosporin, c) if c == CEPHALEXIN.code => SMX_TMP,
        (AllergyClass::Nsaid, c) if c == NAPROXEN.code || c == IBUPROFEN.code => ACETAMINOPHEN,
        _ => med,
    }
}

/// An acute problem that brings the patient in: relative weights (female, male), minimum age, whether it
/// comes with fever, the test done, the usual prescription and how often it is given, and days to recover.
pub(super) struct Acute {
    pub(super) code: Concept,
    pub(super) weight: (u32, u32),
    pub(super) min_age: f64,
    pub(super) fever: bool,
    pub(super) test: Option<Concept>,
    pub(super) med: Option<Med>,
    pub(super) p_med: f64,
    pub(super) days: (i64, i64),
}

pub(super) const ACUTE: [Acute; 8] = [
    Acute {
        code: URI,
        weight: (5, 5),
        min_age: 0.0,
        fever: true,
        test: None,
        med: Some(ACETAMINOPHEN),
        p_med: 0.4,
        days: (5, 12),
    },
    Acute {
        code: SINUSITIS,
        weight: (3, 3),
        min_age: 5.0,
        fever: true,
        test: None,
        med: Some(AMOXICILLIN),
        p_med: 0.7,
        days: (7, 20),
    },
    Acute {
        code: PHARYNGITIS,
        weight: (3, 3),
        min_age: 2.0,
        fever: true,
        test: Some(PROC_THROAT_CULTURE),
        med: Some(PENICILLIN_VK),
        p_med: 0.4,
        days: (5, 10),
    },
    Acute {
        code: UTI,
        weight: (4, 1),
        min_age: 5.0,
        fever: false,
        test: Some(PROC_URINE_CULTURE),
        med: Some(SMX_TMP),
        p_med: 0.9,
        days: (3, 10),
    },
    Acute {
        code: LOW_BACK_PAIN,
        weight: (3, 4),
        min_age: 16.0,
        fever: false,
        test: None,
        med: Some(NAPROXEN),
        p_med: 0.6,
        days: (10, 42),
    },
    Acute {
        code: ANKLE_SPRAIN,
        weight: (2, 3),
        min_age: 8.0,
        fever: false,
        test: None,
        med: Some(IBUPROFEN),
        p_med: 0.5,
        days: (10, 35),
    },
    Acute {
        code: HEADACHE,
        weight: (2, 2),
        min_age: 6.0,
        fever: false,
        test: None,
        med: Some(ACETAMINOPHEN),
        p_med: 0.5,
        days: (1, 5),
    },
    Acute {
        code: KNEE_PAIN,
        weight: (2, 2),
        min_age: 16.0,
        fever: false,
        test: None,
        med: Some(IBUPROFEN),
        p_med: 0.5,
        days: (10, 60),
    },
];

pub(super) struct Visit {
    pub(super) start: OffsetDateTime,
    pub(super) end: OffsetDateTime,
    pub(super) wellness: bool,
    pub(super) org: usize,
    pub(super) prac: usize,
}

/// Lays out the visits: per year of history one wellness visit and `encounters_per_year - 1` others, during
/// clinic hours in the local time of the facility the patient was posted to.
pub(super) fn schedule(
    rng: &mut StdRng,
    cfg: &SynthConfig,
    prov: &Providers,
    p: &Person,
    lo: OffsetDateTime,
    hi: OffsetDateTime,
) -> Vec<Visit> {
    let mut visits = Vec::new();
    let history = f64::from(cfg.years_of_history);
    for k in 0..cfg.years_of_history {
        let slot_start = cfg.now - years(history - f64::from(k));
        let slot_end = slot_start + years(1.0);
        let (a, b) = (slot_start.max(lo), slot_end.min(hi));
        if b <= a + Duration::days(1) {
            continue;
        }
        let share = (b - a).as_seconds_f64() / YEAR_SECONDS;
        let mut n = (f64::from(cfg.encounters_per_year) * share).round() as u32;
        if n == 0 && cfg.encounters_per_year > 0 && b - a > Duration::days(7) {
            n = 1;
        }
        for j in 0..n {
            let wellness = j == 0;
            for _attempt in 0..4 {
                let t = a + (b - a) * rng.random_range(0.0..1.0);
                let stint = p.stint_at(t);
                let offset = prov.orgs[stint.org].facility.offset;
                let clock = Time::MIDNIGHT + minutes(8 * 60 + 15 * rng.random_range(0..33));
                let start = t.to_offset(offset).replace_time(clock);
                let length = if wellness {
                    rng.random_range(30..50)
                } else {
                    rng.random_range(15..35)
                };
                let end = start + minutes(length);
                if start < a || end > b {
                    continue;
                }
                let staff = prov.staff_of(stint.org);
                let prac = if wellness || rng.random_bool(0.6) {
                    stint.pcm
                } else {
                    staff.start + rng.random_range(0..staff.len())
                };
                visits.push(Visit {
                    start,
                    end,
                    wellness,
                    org: stint.org,
                    prac,
                });
                break;
            }
        }
    }
    visits.sort_by_key(|v| v.start);
    visits
}
