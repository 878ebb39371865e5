//! The shared Organizations (fictional military treatment facilities) and their staff, and the conditional
//! references patient bundles use to point at them.
//!
//! Every facility has four primary-care managers (two physicians, a nurse practitioner and a physician
//! assistant: the legacy single-patient generator sees only these), a fixed team of other staff (nurses,
//! a medic, a dentist, a hygienist, a pharmacist, a pharmacy technician, a scheduler, an administrator),
//! drawn from a separate random stream so adding staff never changed the primary-care managers, and the
//! specialists of its hospital services (a radiologist, a pathologist, a general surgeon), from a third
//! stream and numbered after everyone else, so adding them changed no one's identifiers.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::terms::{Facility, FACILITIES, FAMILY, GIVEN_FEMALE, GIVEN_MALE};
use super::{
    new_urn, new_uuid, stream_rng, SynthConfig, NPI_SYSTEM, ORGANIZATION_SYSTEM, PROVIDER_STREAM,
    SPECIALIST_STREAM, STAFF_STREAM, STAFF_SYSTEM,
};

/// Primary-care managers per facility.
const PCMS_PER_ORG: usize = 4;

/// What a staff member does; decides credentials, codes and which PractitionerRole they get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffRole {
    Physician,
    NursePractitioner,
    PhysicianAssistant,
    Nurse,
    Medic,
    Dentist,
    DentalHygienist,
    Pharmacist,
    PharmacyTechnician,
    Scheduler,
    Administrator,
    Radiologist,
    Pathologist,
    Surgeon,
}

/// The other staff of every facility, in order, after its primary-care managers.
const TEAM: [StaffRole; 9] = [
    StaffRole::Nurse,
    StaffRole::Nurse,
    StaffRole::Medic,
    StaffRole::Dentist,
    StaffRole::DentalHygienist,
    StaffRole::Pharmacist,
    StaffRole::PharmacyTechnician,
    StaffRole::Scheduler,
    StaffRole::Administrator,
];

/// The specialists of every facility, after all facilities' teams.
const SPECIALISTS: [StaffRole; 3] = [
    StaffRole::Radiologist,
    StaffRole::Pathologist,
    StaffRole::Surgeon,
];

impl StaffRole {
    /// Code and display in Continuum's `staff-role` code system (`terminology/continuum.csv`).
    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            StaffRole::Physician => ("pcm-physician", "Primary care manager (physician)"),
            StaffRole::NursePractitioner => (
                "pcm-nurse-practitioner",
                "Primary care manager (nurse practitioner)",
            ),
            StaffRole::PhysicianAssistant => (
                "pcm-physician-assistant",
                "Primary care manager (physician assistant)",
            ),
            StaffRole::Nurse => ("nurse", "Nurse"),
            StaffRole::Medic => ("medic", "Medic or corpsman"),
            StaffRole::Dentist => ("dentist", "Dentist"),
            StaffRole::DentalHygienist => ("dental-hygienist", "Dental hygienist"),
            StaffRole::Pharmacist => ("pharmacist", "Pharmacist"),
            StaffRole::PharmacyTechnician => ("pharmacy-technician", "Pharmacy technician"),
            StaffRole::Scheduler => ("scheduler", "Appointment clerk"),
            StaffRole::Administrator => ("administrator", "Administrator"),
            StaffRole::Radiologist => ("radiologist", "Radiologist"),
            StaffRole::Pathologist => ("pathologist", "Pathologist"),
            StaffRole::Surgeon => ("surgeon", "General surgeon"),
        }
    }

    /// The HL7 `practitioner-role` code that also applies, if any.
    pub(super) fn hl7(self) -> Option<(&'static str, &'static str)> {
        match self {
            StaffRole::Physician
            | StaffRole::Dentist
            | StaffRole::Radiologist
            | StaffRole::Pathologist
            | StaffRole::Surgeon => Some(("doctor", "Doctor")),
            StaffRole::NursePractitioner | StaffRole::Nurse => Some(("nurse", "Nurse")),
            StaffRole::Pharmacist => Some(("pharmacist", "Pharmacist")),
            _ => None,
        }
    }

    /// Degree or licence (HL7 v2 table 0360 where it has one) and the name suffix shown after the name.
    fn credential(self) -> Option<(Option<&'static str>, &'static str)> {
        match self {
            StaffRole::Physician
            | StaffRole::Radiologist
            | StaffRole::Pathologist
            | StaffRole::Surgeon => Some((Some("MD"), "Doctor of Medicine")),
            StaffRole::NursePractitioner => Some((Some("NP"), "Nurse Practitioner")),
            StaffRole::PhysicianAssistant => Some((Some("PA"), "Physician Assistant")),
            StaffRole::Nurse => Some((Some("RN"), "Registered Nurse")),
            StaffRole::Medic => Some((Some("EMT"), "Emergency Medical Technician")),
            StaffRole::Dentist => Some((None, "Doctor of Dental Surgery")),
            StaffRole::Pharmacist => Some((Some("PharmD"), "Doctor of Pharmacy")),
            _ => None,
        }
    }

    /// Physicians and dentists: "Dr." before the name.
    pub fn is_doctor(self) -> bool {
        matches!(
            self,
            StaffRole::Physician
                | StaffRole::Dentist
                | StaffRole::Radiologist
                | StaffRole::Pathologist
                | StaffRole::Surgeon
        )
    }

    pub fn is_pcm(self) -> bool {
        matches!(
            self,
            StaffRole::Physician | StaffRole::NursePractitioner | StaffRole::PhysicianAssistant
        )
    }

    /// Licensed clinicians carry an NPI-like number; clerks and administrators do not.
    fn licensed(self) -> bool {
        !matches!(self, StaffRole::Scheduler | StaffRole::Administrator)
    }
}

pub(super) struct Org {
    pub(super) urn: String,
    /// Value under [`ORGANIZATION_SYSTEM`].
    pub id: String,
    pub facility: Facility,
    pub phone: String,
}

pub(super) struct Practitioner {
    pub(super) urn: String,
    /// Value under [`NPI_SYSTEM`], for licensed clinicians.
    pub npi: Option<String>,
    /// Value under [`STAFF_SYSTEM`], for everyone.
    pub staff_id: String,
    pub given: &'static str,
    pub family: &'static str,
    pub female: bool,
    pub org: usize,
    pub role: StaffRole,
}

impl Practitioner {
    /// The name as shown: "Dr. Avery Smith" for physicians and dentists, "Avery Smith, NP" otherwise.
    pub fn display(&self) -> String {
        match (self.role, self.role.credential()) {
            (r, _) if r.is_doctor() => format!("Dr. {} {}", self.given, self.family),
            (_, Some((Some(code), _))) => format!("{} {}, {code}", self.given, self.family),
            _ => format!("{} {}", self.given, self.family),
        }
    }
}

pub(super) struct Providers {
    pub orgs: Vec<Org>,
    /// The primary-care managers of every facility first (`PCMS_PER_ORG` each), then the rest of the staff
    /// (`TEAM.len()` each), then the specialists (`SPECIALISTS.len()` each).
    pub practitioners: Vec<Practitioner>,
}

fn draw_person(rng: &mut StdRng) -> (bool, &'static str, &'static str) {
    let female = rng.random_bool(0.5);
    let given = if female {
        &GIVEN_FEMALE[..]
    } else {
        &GIVEN_MALE[..]
    };
    (
        female,
        given.choose(rng).copied().unwrap_or("Avery"),
        FAMILY.choose(rng).copied().unwrap_or("Testpatient"),
    )
}

impl Providers {
    pub fn new(cfg: &SynthConfig) -> Self {
        let mut rng = stream_rng(cfg.seed, PROVIDER_STREAM);
        let npi_base: u64 = 9_999_900_000 + rng.random_range(0..90_000);
        let mut orgs = Vec::with_capacity(FACILITIES.len());
        let mut practitioners =
            Vec::with_capacity(FACILITIES.len() * (PCMS_PER_ORG + TEAM.len() + SPECIALISTS.len()));
        let pcm_roles = [
            StaffRole::Physician,
            StaffRole::Physician,
            StaffRole::NursePractitioner,
            StaffRole::PhysicianAssistant,
        ];
        for (i, facility) in FACILITIES.iter().enumerate() {
            orgs.push(Org {
                urn: new_urn(&mut rng),
                id: new_uuid(&mut rng),
                facility: *facility,
                phone: format!("555-555-01{:02}", i * 10),
            });
            for role in pcm_roles {
                let (female, given, family) = draw_person(&mut rng);
                let k = practitioners.len() as u64;
                practitioners.push(Practitioner {
                    urn: new_urn(&mut rng),
                    npi: Some((npi_base + k).to_string()),
                    staff_id: format!("S{:05}", k),
                    given,
                    family,
                    female,
                    org: i,
                    role,
                });
            }
        }
        let mut rng = stream_rng(cfg.seed, STAFF_STREAM);
        let mut specialists = stream_rng(cfg.seed, SPECIALIST_STREAM);
        for (team, rng) in [(&TEAM[..], &mut rng), (&SPECIALISTS[..], &mut specialists)] {
            for org in 0..orgs.len() {
                for &role in team {
                    let (female, given, family) = draw_person(rng);
                    let k = practitioners.len() as u64;
                    practitioners.push(Practitioner {
                        urn: new_urn(rng),
                        npi: role.licensed().then(|| (npi_base + k).to_string()),
                        staff_id: format!("S{:05}", k),
                        given,
                        family,
                        female,
                        org,
                        role,
                    });
                }
            }
        }
        Self {
            orgs,
            practitioners,
        }
    }

    /// Indexes of the primary-care managers working at facility `org`.
    pub fn staff_of(&self, org: usize) -> std::ops::Range<usize> {
        org * PCMS_PER_ORG..(org + 1) * PCMS_PER_ORG
    }

    /// Indexes of everyone working at facility `org`.
    pub fn all_staff_of(&self, org: usize) -> impl Iterator<Item = usize> + '_ {
        let team = self.orgs.len() * PCMS_PER_ORG + org * TEAM.len();
        let specialists = self.orgs.len() * (PCMS_PER_ORG + TEAM.len()) + org * SPECIALISTS.len();
        self.staff_of(org)
            .chain(team..team + TEAM.len())
            .chain(specialists..specialists + SPECIALISTS.len())
    }

    /// The first staff member of facility `org` with `role`.
    pub fn first_with(&self, org: usize, role: StaffRole) -> Option<usize> {
        self.all_staff_of(org)
            .find(|&i| self.practitioners[i].role == role)
    }

    /// `{"reference": "Organization?identifier=…", "display": …}`
    pub fn org_ref(&self, org: usize) -> Value {
        let o = &self.orgs[org];
        json!({
            "reference": format!("Organization?identifier={ORGANIZATION_SYSTEM}|{}", o.id),
            "display": o.facility.name,
        })
    }

    /// `Practitioner?identifier=…` by NPI when there is one (as the legacy bundles did), else staff id.
    pub fn practitioner_query(&self, p: usize) -> String {
        let pr = &self.practitioners[p];
        match &pr.npi {
            Some(npi) => format!("identifier={NPI_SYSTEM}|{npi}"),
            None => format!("identifier={STAFF_SYSTEM}|{}", pr.staff_id),
        }
    }

    /// `{"reference": "Practitioner?identifier=…", "display": …}`
    pub fn practitioner_ref(&self, p: usize) -> Value {
        json!({
            "reference": format!("Practitioner?{}", self.practitioner_query(p)),
            "display": self.practitioners[p].display(),
        })
    }

    /// The Practitioner resource of staff member `p` (no id: POSTed with a `urn:uuid:` fullUrl).
    pub fn practitioner_resource(&self, p: usize) -> Value {
        let pr = &self.practitioners[p];
        let f = &self.orgs[pr.org].facility;
        let mut identifier = Vec::new();
        if let Some(npi) = &pr.npi {
            identifier.push(json!({ "system": NPI_SYSTEM, "value": npi }));
        }
        identifier.push(json!({ "system": STAFF_SYSTEM, "value": pr.staff_id }));
        let mut name = json!({ "use": "official", "family": pr.family, "given": [pr.given] });
        if pr.role.is_doctor() {
            name["prefix"] = json!(["Dr."]);
        }
        let mut r = json!({
            "resourceType": "Practitioner",
            "identifier": identifier,
            "active": true,
            "name": [name],
            "telecom": [{
                "system": "email",
                "value": format!("{}.{}.{}@example.org", pr.given.to_lowercase(), pr.family.to_lowercase(), pr.staff_id.to_lowercase()),
                "use": "work"
            }],
            "address": [{
                "line": [f.line],
                "city": f.city,
                "state": f.state,
                "postalCode": f.postal,
                "country": "US"
            }],
            "gender": if pr.female { "female" } else { "male" }
        });
        if let Some((code, text)) = pr.role.credential() {
            let coding = match code {
                Some(c) => json!({
                    "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0360", "version": "2.7", "code": c, "display": text }],
                    "text": text
                }),
                None => json!({ "text": text }),
            };
            r["qualification"] = json!([{ "code": coding }]);
        }
        r
    }

    /// The legacy provider batch: every facility Organization and its primary-care managers, each a POST
    /// with `ifNoneExist`.
    pub fn bundle(&self) -> Value {
        let mut entries = Vec::with_capacity(self.orgs.len() * (1 + PCMS_PER_ORG));
        for (i, o) in self.orgs.iter().enumerate() {
            entries.push(json!({
                "fullUrl": o.urn,
                "resource": self.org_resource(i),
                "request": {
                    "method": "POST",
                    "url": "Organization",
                    "ifNoneExist": format!("identifier={ORGANIZATION_SYSTEM}|{}", o.id)
                }
            }));
        }
        for org in 0..self.orgs.len() {
            for p in self.staff_of(org) {
                entries.push(json!({
                    "fullUrl": self.practitioners[p].urn,
                    "resource": self.practitioner_resource(p),
                    "request": {
                        "method": "POST",
                        "url": "Practitioner",
                        "ifNoneExist": self.practitioner_query(p)
                    }
                }));
            }
        }
        json!({ "resourceType": "Bundle", "type": "batch", "entry": entries })
    }

    /// The Organization of facility `i`.
    pub fn org_resource(&self, i: usize) -> Value {
        let o = &self.orgs[i];
        let f = &o.facility;
        json!({
            "resourceType": "Organization",
            "identifier": [{ "system": ORGANIZATION_SYSTEM, "value": o.id }],
            "active": true,
            "type": [{
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                    "code": "prov",
                    "display": "Healthcare Provider"
                }],
                "text": "Healthcare Provider"
            }],
            "name": f.name,
            "telecom": [{ "system": "phone", "value": o.phone, "use": "work" }],
            "address": [{
                "line": [f.line],
                "city": f.city,
                "state": f.state,
                "postalCode": f.postal,
                "country": "US"
            }]
        })
    }
}
