//! Families of beneficiaries: a sponsor (active duty, reserve, retiree or veteran), maybe a spouse, and
//! dependent children spread over every proxy age band, sharing a family name and the household's duty
//! stations. [`plan`] decides who they are; `population.rs` simulates each member's record and links them.
//!
//! Family `f` is a pure function of (seed, now, f): its random stream and its members' streams and
//! identifiers derive from `f` and the member's position `m` (key `8f + m`), not from earlier families.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use time::OffsetDateTime;

use super::person::{sample_postings, years, Role, Spec};
use super::providers::Providers;
use super::terms::{Concept, DEPRESSION, FAMILY};
use super::{splitmix64, stream_rng, SynthConfig, FAMILY_STREAMS, MEMBER_STREAMS};

/// Members per family at most (sponsor, spouse, six children): keys are `8f + m`.
pub(super) const MAX_MEMBERS: u64 = 8;

/// Years between the births of two siblings at least.
const MIN_SPACING_YEARS: f64 = 1.25;

/// How a member is related to the sponsor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Sponsor,
    Spouse,
    Child,
}

pub(super) struct Member {
    pub(super) relation: Relation,
    /// `8f + m`: the member's random stream and identifiers derive from it.
    pub(super) key: u64,
    pub(super) spec: Spec,
    /// Person designator of the benefits number: 00 sponsor, 01 spouse, 20+ children.
    pub(super) designator: u32,
}

pub(super) struct Plan {
    pub(super) index: u64,
    /// The sponsor's status: ActiveDuty, Reserve, Retiree or Veteran.
    pub(super) category: Role,
    /// For veterans, when they left the service.
    pub(super) separated: Option<OffsetDateTime>,
    /// The facility of the household's current (last) duty station.
    pub(super) home: usize,
    pub(super) members: Vec<Member>,
}

impl Plan {
    /// The member who gave birth to the family's children: a female spouse, else a female sponsor (the
    /// parent whose age bounds the children's in [`plan`]). None for two fathers or a single father.
    pub(super) fn mother(&self) -> Option<usize> {
        let female = |r: Relation| {
            self.members
                .iter()
                .position(|m| m.relation == r && m.spec.female)
        };
        female(Relation::Spouse).or_else(|| female(Relation::Sponsor))
    }
}

/// Identifiers of a member, all under synthetic systems.
pub(super) struct Ids {
    /// 10 digits, starting `98` (the legacy single-patient generator uses `99`).
    pub(super) dodid: String,
    /// 11 digits: the family's 9 and the person designator.
    pub(super) dbn: String,
    pub(super) mrn: String,
}

/// Identifiers of member `m` of family `f`. Bijections of `f` and of the key, offset by the seed, so no two
/// members of one seed share one (for fewer than 10^7 families).
pub(super) fn ids(seed: u64, family: u64, key: u64, designator: u32) -> Ids {
    const DODIDS: u64 = 100_000_000;
    const FAMILIES: u64 = 10_000_000;
    const MRNS: u64 = 1_000_000_000;
    let dodid = ((key % DODIDS) * 48_271 % DODIDS + splitmix64(seed ^ 0xD0D5) % DODIDS) % DODIDS;
    let base =
        ((family % FAMILIES) * 69_621 % FAMILIES + splitmix64(seed ^ 0xDB7) % FAMILIES) % FAMILIES;
    let mrn = ((key % MRNS) * 2_654_435_761 % MRNS + splitmix64(seed ^ 0x3A75) % MRNS) % MRNS;
    Ids {
        dodid: format!("98{dodid:08}"),
        dbn: format!("97{base:07}{designator:02}"),
        mrn: format!("SYNP{mrn:09}"),
    }
}

pub(super) fn member_rng(seed: u64, key: u64) -> StdRng {
    stream_rng(seed, MEMBER_STREAMS | key)
}

fn birth_at_age(cfg: &SynthConfig, rng: &mut StdRng, age: f64) -> OffsetDateTime {
    cfg.now - years(age) - time::Duration::minutes(rng.random_range(0..24 * 60))
}

/// Who family `index` is. Family 0 is the demo's showcase: an active-duty sponsor, a spouse and four
/// children (1, 8, 14 and 19 years old), the adolescent with a mental-health condition on record.
pub(super) fn plan(cfg: &SynthConfig, prov: &Providers, index: u64) -> Plan {
    let mut rng = stream_rng(cfg.seed, FAMILY_STREAMS | index);
    let showcase = index == 0;
    let category = if showcase {
        Role::ActiveDuty
    } else {
        match rng.random_range(0..100) {
            0..40 => Role::ActiveDuty,
            40..55 => Role::Reserve,
            55..85 => Role::Retiree,
            _ => Role::Veteran,
        }
    };
    let age: f64 = if showcase {
        41.3
    } else {
        match category {
            Role::ActiveDuty => 18.5 + 27.0 * rng.random::<f64>().powf(1.5),
            Role::Reserve => 20.0 + 35.0 * rng.random::<f64>().powf(1.3),
            Role::Retiree => 40.0 + 45.0 * rng.random::<f64>(),
            _ => 24.0 + 55.0 * rng.random::<f64>(),
        }
    };
    let p_female = match category {
        Role::ActiveDuty => 0.18,
        Role::Reserve => 0.2,
        _ => 0.12,
    };
    let sponsor_female = !showcase && rng.random_bool(p_female);
    let sponsor_birth = birth_at_age(cfg, &mut rng, age);
    let family = if showcase {
        "Example"
    } else {
        FAMILY.choose(&mut rng).copied().unwrap_or("Testpatient")
    };
    let p_married = match category {
        Role::ActiveDuty | Role::Reserve => ((age - 19.0) / 15.0).clamp(0.1, 0.8),
        Role::Retiree => 0.8,
        _ => 0.65,
    };
    let married = showcase || rng.random_bool(p_married);
    let postings = sample_postings(&mut rng, cfg, prov, category, sponsor_birth);
    let home = postings.last().map_or(0, |p| p.1);
    let separated = (category == Role::Veteran).then(|| {
        let served_until = (age - 22.0).clamp(1.0, 25.0);
        cfg.now - years(rng.random_range(0.5..served_until))
    });

    let mut members = vec![Member {
        relation: Relation::Sponsor,
        key: index * MAX_MEMBERS,
        spec: Spec {
            role: category,
            female: sponsor_female,
            birth: sponsor_birth,
            family,
            married,
            postings: postings.clone(),
            mortal: !showcase,
            forced: Vec::new(),
        },
        designator: 0,
    }];
    let mut mother_age = if sponsor_female { Some(age) } else { None };
    if married {
        let spouse_age: f64 = if showcase {
            39.6
        } else {
            let gap = if sponsor_female { 2.0 } else { -2.0 };
            (age + gap + super::person::normal(&mut rng, 0.0, 4.0)).max(18.2)
        };
        // Most couples in the data are of opposite sex; a few are not.
        let spouse_female = if showcase || rng.random_bool(0.97) {
            !sponsor_female
        } else {
            sponsor_female
        };
        if spouse_female {
            mother_age = Some(spouse_age);
        }
        members.push(Member {
            relation: Relation::Spouse,
            key: index * MAX_MEMBERS + 1,
            spec: Spec {
                role: Role::Spouse,
                female: spouse_female,
                birth: birth_at_age(cfg, &mut rng, spouse_age),
                family,
                married: true,
                postings: postings.clone(),
                mortal: !showcase,
                forced: Vec::new(),
            },
            designator: 1,
        });
    }
    let youngest_parent = mother_age.unwrap_or(age);
    let children: Vec<(f64, bool, Vec<Concept>)> = if showcase {
        vec![
            (1.2, false, Vec::new()),
            (8.4, true, Vec::new()),
            (14.6, true, vec![DEPRESSION]),
            (19.1, false, Vec::new()),
        ]
    } else if married || rng.random_bool(0.1) {
        let n = match rng.random_range(0..100) {
            0..25 => 0,
            25..50 => 1,
            50..80 => 2,
            80..95 => 3,
            _ => 4,
        };
        // Children born when the younger parent was 18 or older, and the mother 45 at most; only
        // dependents (up to 22) are covered.
        let oldest = (youngest_parent - 18.0).min(22.9);
        let youngest = mother_age.map_or(0.0, |m| (m - 45.0).max(0.0));
        let mut kids: Vec<(f64, bool, Vec<Concept>)> = Vec::new();
        if oldest > youngest {
            for _ in 0..n {
                kids.push((
                    rng.random_range(youngest..oldest),
                    rng.random_bool(0.49),
                    Vec::new(),
                ));
            }
        }
        kids.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Siblings are born at least 15 months apart (twins are not modelled): an older one moves up, or is
        // left out when that makes them too old.
        let mut spaced: Vec<(f64, bool, Vec<Concept>)> = Vec::with_capacity(kids.len());
        for (kid_age, female, forced) in kids {
            let kid_age = spaced
                .last()
                .map_or(kid_age, |prev| kid_age.max(prev.0 + MIN_SPACING_YEARS));
            if kid_age >= oldest {
                break;
            }
            spaced.push((kid_age, female, forced));
        }
        spaced
    } else {
        Vec::new()
    };
    for (i, (child_age, female, forced)) in children.into_iter().enumerate() {
        let m = members.len() as u64;
        members.push(Member {
            relation: Relation::Child,
            key: index * MAX_MEMBERS + m,
            spec: Spec {
                role: Role::Child,
                female,
                birth: birth_at_age(cfg, &mut rng, child_age),
                family,
                married: false,
                postings: postings.clone(),
                mortal: false,
                forced,
            },
            designator: 20 + i as u32,
        });
    }
    let mut plan = Plan {
        index,
        category,
        separated,
        home,
        members,
    };
    // A mother of a child born within the record lives at least until the birth: she is not one of the few
    // who die within the window.
    let window_start = cfg.now - years(f64::from(cfg.years_of_history));
    let births_in_window = plan
        .members
        .iter()
        .any(|m| m.relation == Relation::Child && m.spec.birth >= window_start);
    if let Some(mother) = plan.mother().filter(|_| births_in_window) {
        plan.members[mother].spec.mortal = false;
    }
    plan
}
