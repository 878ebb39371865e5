//! The synthetic population as a stream of Bundles: code systems, the health plan and units, one transaction
//! per facility (locations, staff, schedules, slots), then one transaction per family. Only one family exists
//! in memory at a time; what is kept across families is bounded by the (fixed) number of slots.
//!
//! A family transaction holds every member's Patient (POST with `ifNoneExist` on the DoD ID) and record, the
//! RelatedPersons that link parents, spouses and children, each member's Coverage, and for some members an
//! upcoming Appointment booked into a free slot (the Slot itself rewritten as busy by a conditional PUT).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::family::{self, ids, member_rng, Ids, Plan, Relation};
use super::labels;
use super::patient::{simulate, Birth, Identity, Simulated};
use super::person::{complete_person, years, Person, Role};
use super::providers::{Providers, StaffRole};
use super::site::{self, SlotKey, VisitType, UNITS};
use super::terminology;
use super::{
    cs_url, fhir_date, fhir_datetime, new_urn, stream_rng, SynthConfig, CANONICAL_BASE, DBN_SYSTEM,
    DODID_SYSTEM, FAMILY_STREAMS,
};

/// What a chunk of the stream holds (loaders may treat them differently: shared data first, alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// CodeSystem and ValueSet resources (PUT with fixed ids).
    Terminology,
    /// The plan, units, facilities, staff, schedules and slots (POST with `ifNoneExist`).
    Site,
    /// One family (a transaction).
    Family,
}

/// One Bundle of the population.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub kind: ChunkKind,
    pub bundle: Value,
    /// Patients in this chunk.
    pub patients: u64,
}

/// Proxy age bands of the product (P9): the generator makes sure families cover each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AgeBand {
    /// 0–11: the parent sees everything.
    Child,
    /// 12–17: the parent does not see sensitive information.
    Adolescent,
    /// 18 and older.
    Adult,
}

impl AgeBand {
    pub fn of(age_years: f64) -> AgeBand {
        if age_years < 12.0 {
            AgeBand::Child
        } else if age_years < 18.0 {
            AgeBand::Adolescent
        } else {
            AgeBand::Adult
        }
    }
}

/// Extension URLs Continuum defines (placeholder canonical base, see [`CANONICAL_BASE`]).
pub fn extension_url(name: &str) -> String {
    format!("{CANONICAL_BASE}/StructureDefinition/{name}")
}

/// Share of living patients with an upcoming appointment.
const P_APPOINTMENT: f64 = 0.2;

/// Hands out free slots, so no two appointments ever share one. Per facility and visit type it walks the
/// slots in time order, skipping a few at random so free slots stay spread over the weeks.
#[derive(Default)]
struct Booker {
    queues: BTreeMap<(usize, VisitType), (Vec<SlotKey>, usize)>,
}

impl Booker {
    fn book(
        &mut self,
        cfg: &SynthConfig,
        prov: &Providers,
        rng: &mut StdRng,
        org: usize,
        visit: VisitType,
    ) -> Option<SlotKey> {
        let (slots, cursor) = self.queues.entry((org, visit)).or_insert_with(|| {
            let all = site::slots_of(cfg, prov, org);
            (all.into_iter().filter(|k| k.visit == visit).collect(), 0)
        });
        *cursor += rng.random_range(0..3);
        let slot = slots.get(*cursor).copied();
        *cursor += 1;
        slot
    }
}

enum Stage {
    Terminology(usize),
    Enterprise,
    Facility(usize),
    Families,
    Done,
}

/// The population of `patients` patients, as an iterator of [`Chunk`]s.
pub struct Population {
    cfg: SynthConfig,
    prov: Providers,
    patients: u64,
    emitted: u64,
    family: u64,
    stage: Stage,
    booker: Booker,
    with_terminology: bool,
}

impl Population {
    pub fn new(cfg: &SynthConfig, patients: u64) -> Self {
        Population {
            cfg: *cfg,
            prov: Providers::new(cfg),
            patients,
            emitted: 0,
            family: 0,
            stage: Stage::Terminology(0),
            booker: Booker::default(),
            with_terminology: true,
        }
    }

    /// Leave out the code systems (tests that only look at people).
    pub fn without_terminology(mut self) -> Self {
        self.with_terminology = false;
        if matches!(self.stage, Stage::Terminology(_)) {
            self.stage = Stage::Enterprise;
        }
        self
    }

    /// Families generated so far.
    pub fn families(&self) -> u64 {
        self.family
    }
}

impl Iterator for Population {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        loop {
            match self.stage {
                Stage::Terminology(i) => match terminology::bundle(i) {
                    Some(bundle) if self.with_terminology => {
                        self.stage = Stage::Terminology(i + 1);
                        return Some(Chunk {
                            kind: ChunkKind::Terminology,
                            bundle,
                            patients: 0,
                        });
                    }
                    _ => self.stage = Stage::Enterprise,
                },
                Stage::Enterprise => {
                    self.stage = Stage::Facility(0);
                    return Some(Chunk {
                        kind: ChunkKind::Site,
                        bundle: site::enterprise_bundle(&self.cfg),
                        patients: 0,
                    });
                }
                Stage::Facility(i) if i < self.prov.orgs.len() => {
                    self.stage = Stage::Facility(i + 1);
                    return Some(Chunk {
                        kind: ChunkKind::Site,
                        bundle: site::facility_bundle(&self.cfg, &self.prov, i),
                        patients: 0,
                    });
                }
                Stage::Facility(_) => self.stage = Stage::Families,
                Stage::Families if self.emitted < self.patients => {
                    let mut plan = family::plan(&self.cfg, &self.prov, self.family);
                    // The last family is cut to the number of patients asked for (never the sponsor).
                    let room = (self.patients - self.emitted) as usize;
                    plan.members.truncate(room.max(1));
                    let n = plan.members.len() as u64;
                    let bundle = family_bundle(&self.cfg, &self.prov, &mut self.booker, plan);
                    self.family += 1;
                    self.emitted += n;
                    return Some(Chunk {
                        kind: ChunkKind::Family,
                        bundle,
                        patients: n,
                    });
                }
                Stage::Families | Stage::Done => {
                    self.stage = Stage::Done;
                    return None;
                }
            }
        }
    }
}

struct Sim {
    relation: Relation,
    ids: Ids,
    out: Simulated,
}

fn person_of(cfg: &SynthConfig, prov: &Providers, m: &family::Member) -> (StdRng, Person) {
    let mut rng = member_rng(cfg.seed, m.key);
    let person = complete_person(&mut rng, cfg, prov, m.spec.clone());
    (rng, person)
}

/// The transaction of one family.
fn family_bundle(cfg: &SynthConfig, prov: &Providers, booker: &mut Booker, plan: Plan) -> Value {
    let mut rng = stream_rng(cfg.seed, FAMILY_STREAMS | plan.index | (1 << 40));
    // The children's births, for their mother's record: each child's birthDate is written in the time zone
    // of where the family lives now (its last posting).
    let mother = plan.mother();
    let here = prov.orgs[plan.home].facility.offset;
    let births: Vec<Birth> = plan
        .members
        .iter()
        .filter(|m| m.relation == Relation::Child)
        .map(|m| Birth {
            at: m.spec.birth,
            date: m.spec.birth.to_offset(here).date(),
        })
        .collect();
    let mut sims: Vec<Sim> = Vec::with_capacity(plan.members.len());
    for (i, m) in plan.members.iter().enumerate() {
        let ids = ids(cfg.seed, plan.index, m.key, m.designator);
        let (member_rng, person) = person_of(cfg, prov, m);
        let identity = Identity {
            dodid: ids.dodid.clone(),
            mrn: ids.mrn.clone(),
            dental: true,
        };
        let children: &[Birth] = if mother == Some(i) { &births } else { &[] };
        let mut out = simulate(cfg, prov, member_rng, person, &identity, children);
        labels::label(&mut out.entries);
        sims.push(Sim {
            relation: m.relation,
            ids,
            out,
        });
    }
    let sponsor_urn = sims[0].out.patient_urn.clone();
    let sponsor_dodid = sims[0].ids.dodid.clone();
    // Serving sponsors belong to one of the units stationed where the family lives.
    let unit = if matches!(plan.category, Role::ActiveDuty | Role::Reserve) {
        let here: Vec<usize> = (0..UNITS.len())
            .filter(|&u| UNITS[u].org == plan.home)
            .collect();
        here.get(plan.index as usize % here.len().max(1)).copied()
    } else {
        None
    };

    // One household: every member has the sponsor's home address and phone.
    let home: Vec<(String, Value)> = ["address", "telecom"]
        .iter()
        .filter_map(|k| {
            let p = patient_mut(&mut sims[0].out.entries)?;
            Some((k.to_string(), p.get(*k)?.clone()))
        })
        .collect();
    let mut extra: Vec<Value> = Vec::new();
    for sim in sims.iter_mut() {
        if let Some(p) = patient_mut(&mut sim.out.entries) {
            for (k, v) in &home {
                p.insert(k.clone(), v.clone());
            }
        }
        decorate_patient(prov, &plan, sim, unit);
        let c = coverage(
            cfg,
            prov,
            &plan,
            sim,
            &sponsor_urn,
            &sponsor_dodid,
            &mut rng,
        );
        extra.push(entry(&new_urn(&mut rng), c));
    }
    // Relationships: each child lists both parents; sponsor and spouse list each other.
    let parents: Vec<usize> = (0..sims.len())
        .filter(|&i| sims[i].relation != Relation::Child)
        .collect();
    for c in 0..sims.len() {
        let targets: Vec<usize> = match sims[c].relation {
            Relation::Child => parents.clone(),
            _ => parents.iter().copied().filter(|&p| p != c).collect(),
        };
        for p in targets {
            let (rp_urn, rp) = related_person(cfg, prov, &sims[p], &sims[c], &mut rng);
            link(&mut sims[p].out.entries, &rp_urn);
            extra.push(entry(&rp_urn, rp));
        }
    }
    for (i, sim) in sims.iter().enumerate() {
        // The showcase's sponsor and adolescent (member 4: the 14-year-old) always have one.
        let showcase = plan.index == 0 && (i == 0 || sim.relation == Relation::Child && i == 4);
        let alive = sim.out.person.death.is_none();
        if alive && (showcase || rng.random_bool(P_APPOINTMENT)) {
            extra.extend(appointment(cfg, prov, booker, &mut rng, sim));
        }
    }
    let mut entries: Vec<Value> = Vec::new();
    for sim in sims {
        entries.extend(sim.out.entries);
    }
    entries.extend(extra);
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

fn entry(urn: &str, resource: Value) -> Value {
    let ty = resource["resourceType"].as_str().unwrap_or("").to_string();
    json!({ "fullUrl": urn, "resource": resource, "request": { "method": "POST", "url": ty } })
}

fn patient_mut(entries: &mut [Value]) -> Option<&mut serde_json::Map<String, Value>> {
    entries
        .first_mut()
        .and_then(|e| e.get_mut("resource"))
        .and_then(Value::as_object_mut)
}

fn category_code(plan: &Plan, relation: Relation) -> (&'static str, &'static str) {
    match (relation, plan.category) {
        (Relation::Sponsor, Role::ActiveDuty) => ("active-duty", "Active duty sponsor"),
        (Relation::Sponsor, Role::Reserve) => ("reserve", "Reserve component sponsor"),
        (Relation::Sponsor, Role::Retiree) => ("retiree", "Retired sponsor"),
        (Relation::Sponsor, _) => ("veteran", "Veteran sponsor"),
        _ => ("family-member", "Family member"),
    }
}

/// Adds what the family knows to a member's Patient: the benefits number, the beneficiary category, the unit
/// (sponsors on duty), and the PCM as a PractitionerRole.
fn decorate_patient(prov: &Providers, plan: &Plan, sim: &mut Sim, unit: Option<usize>) {
    let pcm = sim.out.person.stints.last().map(|s| s.pcm);
    let (code, display) = category_code(plan, sim.relation);
    let Some(p) = patient_mut(&mut sim.out.entries) else {
        return;
    };
    if let Some(ids) = p.get_mut("identifier").and_then(Value::as_array_mut) {
        ids.push(json!({
            "type": { "text": "Benefits number (synthetic)" },
            "system": DBN_SYSTEM,
            "value": sim.ids.dbn
        }));
    }
    let mut ext = vec![json!({
        "url": extension_url("beneficiary-category"),
        "valueCoding": { "system": cs_url("beneficiary-category"), "code": code, "display": display }
    })];
    if let (Relation::Sponsor, Some(u)) = (sim.relation, unit) {
        ext.push(json!({ "url": extension_url("military-unit"), "valueReference": site::unit_ref(&UNITS[u]) }));
    }
    p.insert("extension".into(), Value::Array(ext));
    if let Some(pcm) = pcm {
        p.insert(
            "generalPractitioner".into(),
            json!([site::role_ref(prov, pcm)]),
        );
    }
}

/// Adds `Patient.link` (seealso) from a parent's or spouse's Patient to the RelatedPerson that is them in
/// another member's record, so a login as that Patient can find whom they act for.
fn link(entries: &mut [Value], related_person: &str) {
    if let Some(p) = patient_mut(entries) {
        let links = p.entry("link").or_insert_with(|| json!([]));
        if let Some(a) = links.as_array_mut() {
            a.push(json!({ "other": { "reference": related_person }, "type": "seealso" }));
        }
    }
}

fn name_of(p: &Person) -> Value {
    json!({ "use": "official", "family": p.family, "given": [p.given, p.middle] })
}

/// `who` as a RelatedPerson in `of`'s record: parent (MTH/FTH) of a child, or spouse (SPS).
fn related_person(
    cfg: &SynthConfig,
    prov: &Providers,
    who: &Sim,
    of: &Sim,
    rng: &mut StdRng,
) -> (String, Value) {
    let urn = new_urn(rng);
    let w = &who.out.person;
    let (code, display) = match (of.relation, w.female) {
        (Relation::Child, true) => ("MTH", "mother"),
        (Relation::Child, false) => ("FTH", "father"),
        _ => ("SPS", "spouse"),
    };
    let offset = w
        .stints
        .last()
        .map_or(time::UtcOffset::UTC, |s| prov.orgs[s.org].facility.offset);
    let since = match of.relation {
        Relation::Child => of.out.person.birth,
        _ => (w.birth + years(18.0)).max(of.out.person.birth + years(18.0)),
    };
    let mut rp = json!({
        "resourceType": "RelatedPerson",
        "identifier": [{ "system": DODID_SYSTEM, "value": who.ids.dodid }],
        "active": who.out.person.death.is_none(),
        "patient": { "reference": of.out.patient_urn },
        "relationship": [{
            "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": code, "display": display }],
            "text": display
        }],
        "name": [name_of(w)],
        "gender": if w.female { "female" } else { "male" },
        "birthDate": fhir_date(w.birth, offset),
        "period": { "start": fhir_date(since.min(cfg.now), offset) },
    });
    if let Some(d) = w.death {
        rp["period"]["end"] = json!(fhir_date(d, offset));
    }
    (urn, rp)
}

/// The member's Coverage under the sponsor: plan by category, benefit period, subscriber and identifiers.
fn coverage(
    cfg: &SynthConfig,
    prov: &Providers,
    plan: &Plan,
    sim: &Sim,
    sponsor_urn: &str,
    sponsor_dodid: &str,
    rng: &mut StdRng,
) -> Value {
    let p = &sim.out.person;
    let offset = p
        .stints
        .last()
        .map_or(time::UtcOffset::UTC, |s| prov.orgs[s.org].facility.offset);
    let sponsor_age = match sim.relation {
        Relation::Sponsor => p.age_at(cfg.now),
        _ => 0.0,
    };
    let (plan_code, plan_name) = match plan.category {
        Role::ActiveDuty => ("SYN-PRIME", "Prime (synthetic plan)"),
        Role::Reserve => ("SYN-RESERVE-SELECT", "Reserve Select (synthetic plan)"),
        Role::Retiree if sponsor_age >= 65.0 => ("SYN-FOR-LIFE", "For Life (synthetic plan)"),
        Role::Retiree => ("SYN-SELECT", "Select (synthetic plan)"),
        _ => ("SYN-TRANSITIONAL", "Transitional (synthetic plan)"),
    };
    let (relationship, rel_display) = match sim.relation {
        Relation::Sponsor => ("self", "Self"),
        Relation::Spouse => ("spouse", "Spouse"),
        Relation::Child => ("child", "Child"),
    };
    let start = match sim.relation {
        Relation::Child => p.birth,
        _ => (p.birth + years(18.0 + rng.random_range(0.0..4.0))).min(cfg.now),
    };
    // Children are covered until 21 (23 as students: those already 21 or 22); veterans' families for 180
    // days after separation; coverage of the dead ends at death.
    let mut end: Option<OffsetDateTime> = match sim.relation {
        Relation::Child if p.age_at(cfg.now) >= 21.0 => Some(p.birth + years(23.0)),
        Relation::Child => Some(p.birth + years(21.0)),
        _ => None,
    };
    if let Some(sep) = plan.separated {
        let ends = sep + Duration::days(180);
        end = Some(end.map_or(ends, |e| e.min(ends)));
    }
    if let Some(d) = p.death {
        end = Some(end.map_or(d, |e| e.min(d)));
    }
    let start = start.min(end.unwrap_or(start));
    let mut period = json!({ "start": fhir_date(start, offset) });
    if let Some(e) = end {
        period["end"] = json!(fhir_date(e, offset));
    }
    let (group, group_name) = category_code(plan, Relation::Sponsor);
    json!({
        "resourceType": "Coverage",
        "identifier": [{ "type": { "text": "Benefits number (synthetic)" }, "system": DBN_SYSTEM, "value": sim.ids.dbn }],
        "status": "active",
        "type": {
            "coding": [{ "system": labels::ACT_CODE, "code": "MILITARY", "display": "military health program" }],
            "text": "military health program"
        },
        "subscriber": { "reference": sponsor_urn },
        "subscriberId": sponsor_dodid,
        "beneficiary": { "reference": sim.out.patient_urn },
        "dependent": format!("{:02}", sim.ids.dbn.get(9..).map_or(0, |d| d.parse::<u32>().unwrap_or(0))),
        "relationship": {
            "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": relationship, "display": rel_display }]
        },
        "period": period,
        "payor": [site::payer_ref()],
        "class": [
            {
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan", "display": "Plan" }] },
                "value": plan_code,
                "name": plan_name
            },
            {
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group", "display": "Group" }] },
                "value": group,
                "name": group_name
            }
        ],
    })
}

/// An upcoming Appointment booked into a free slot at the member's facility, and the Slot made busy.
fn appointment(
    cfg: &SynthConfig,
    prov: &Providers,
    booker: &mut Booker,
    rng: &mut StdRng,
    sim: &Sim,
) -> Vec<Value> {
    let p = &sim.out.person;
    let Some(stint) = p.stints.last() else {
        return Vec::new();
    };
    let age = p.age_at(cfg.now);
    let visit = match rng.random_range(0..100) {
        _ if age < 1.0 => VisitType::Wellness,
        0..30 => VisitType::Wellness,
        30..55 => VisitType::FollowUp,
        55..75 => VisitType::Acute,
        _ => VisitType::DentalExam,
    };
    let Some(slot) = booker.book(cfg, prov, rng, stint.org, visit) else {
        return Vec::new();
    };
    let offset = prov.orgs[stint.org].facility.offset;
    let staff = &prov.practitioners[slot.staff];
    let dept = site::department_of(staff.role);
    let urn = new_urn(rng);
    let booked = (cfg.now - Duration::hours(rng.random_range(1..24 * 20))).max(p.birth);
    let (_, visit_display) = visit.code();
    let appointment = json!({
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [visit.concept()],
        "appointmentType": visit.appointment_concept(),
        "description": format!("{visit_display} (synthetic)"),
        "start": fhir_datetime(slot.start, offset),
        "end": fhir_datetime(slot.start + Duration::minutes(slot.minutes), offset),
        "minutesDuration": slot.minutes,
        "slot": [{ "reference": site::slot_query(prov, &slot) }],
        "created": fhir_datetime(booked, offset),
        "participant": [
            { "actor": { "reference": sim.out.patient_urn }, "required": "required", "status": "accepted" },
            { "actor": site::role_ref(prov, slot.staff), "required": "required", "status": "accepted" },
            { "actor": site::location_ref(prov, stint.org, dept), "required": "required", "status": "accepted" }
        ],
    });
    let slot_url = site::slot_query(prov, &slot);
    let busy = site::slot_resource(prov, &slot, &site::schedule_query(prov, slot.staff), true);
    vec![
        entry(&urn, appointment),
        json!({ "resource": busy, "request": { "method": "PUT", "url": slot_url } }),
    ]
}

/// The people and staff to show a newcomer: identifiers to look them up by, after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Showcase {
    /// DoD ID (under [`DODID_SYSTEM`]) of the active-duty sponsor.
    pub sponsor: String,
    pub spouse: String,
    /// DoD IDs and ages (whole years at `now`) of the sponsor's children, youngest first.
    pub children: Vec<(String, u32)>,
    /// Staff ids (under [`super::STAFF_SYSTEM`]) at the family's facility, by role.
    pub staff: Vec<(StaffRole, String)>,
    /// The facility's name.
    pub facility: String,
}

/// Who family 0 is, without generating their records.
pub fn showcase(cfg: &SynthConfig) -> Showcase {
    let prov = Providers::new(cfg);
    let plan = family::plan(cfg, &prov, 0);
    let mut dodids = Vec::new();
    let mut pcm = None;
    for m in &plan.members {
        let ids = ids(cfg.seed, 0, m.key, m.designator);
        let age = (cfg.now - m.spec.birth).as_seconds_f64() / super::person::YEAR_SECONDS;
        if m.relation == Relation::Sponsor {
            let (_, person) = person_of(cfg, &prov, m);
            pcm = person.stints.last().map(|s| s.pcm);
        }
        dodids.push((m.relation, ids.dodid, age as u32));
    }
    let find = |r: Relation| {
        dodids
            .iter()
            .find(|d| d.0 == r)
            .map(|d| d.1.clone())
            .unwrap_or_default()
    };
    let mut staff = Vec::new();
    if let Some(pcm) = pcm {
        staff.push((
            prov.practitioners[pcm].role,
            prov.practitioners[pcm].staff_id.clone(),
        ));
    }
    for role in [
        StaffRole::Nurse,
        StaffRole::Medic,
        StaffRole::Dentist,
        StaffRole::Pharmacist,
        StaffRole::Scheduler,
        StaffRole::Administrator,
    ] {
        if let Some(i) = prov.first_with(plan.home, role) {
            staff.push((role, prov.practitioners[i].staff_id.clone()));
        }
    }
    Showcase {
        sponsor: find(Relation::Sponsor),
        spouse: find(Relation::Spouse),
        children: dodids
            .iter()
            .filter(|d| d.0 == Relation::Child)
            .map(|d| (d.1.clone(), d.2))
            .collect(),
        staff,
        facility: prov.orgs[plan.home].facility.name.to_string(),
    }
}

/// DoD IDs of the first and the last family's sponsors in a population of `patients` (plans only, no
/// records: cheap). A loader that finds both knows the whole population is there; the first without the
/// last means an interrupted load.
pub fn sponsor_bounds(cfg: &SynthConfig, patients: u64) -> Option<(String, String)> {
    if patients == 0 {
        return None;
    }
    let prov = Providers::new(cfg);
    let (mut seen, mut f) = (0u64, 0u64);
    loop {
        let n = family::plan(cfg, &prov, f).members.len() as u64;
        seen += n;
        if seen >= patients {
            break;
        }
        f += 1;
    }
    let dodid = |f: u64| ids(cfg.seed, f, f * family::MAX_MEMBERS, 0).dodid;
    Some((dodid(0), dodid(f)))
}
