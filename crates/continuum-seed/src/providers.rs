//! The shared Organizations (fictional military treatment facilities) and their Practitioners, and the
//! conditional references patient bundles use to point at them.

use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::terms::{Facility, FACILITIES, FAMILY, GIVEN_FEMALE, GIVEN_MALE};
use super::{
    new_urn, new_uuid, stream_rng, SynthConfig, NPI_SYSTEM, ORGANIZATION_SYSTEM, PROVIDER_STREAM,
};

/// Practitioners per facility.
const PRACTITIONERS_PER_ORG: usize = 4;

pub(super) struct Org {
    urn: String,
    /// Value under [`ORGANIZATION_SYSTEM`].
    pub id: String,
    pub facility: Facility,
    pub phone: String,
}

pub(super) struct Practitioner {
    urn: String,
    /// Value under [`NPI_SYSTEM`].
    pub npi: String,
    pub given: &'static str,
    pub family: &'static str,
    pub female: bool,
    pub org: usize,
}

pub(super) struct Providers {
    pub orgs: Vec<Org>,
    pub practitioners: Vec<Practitioner>,
}

impl Providers {
    pub fn new(cfg: &SynthConfig) -> Self {
        let mut rng = stream_rng(cfg.seed, PROVIDER_STREAM);
        let npi_base: u64 = 9_999_900_000 + rng.random_range(0..90_000);
        let mut orgs = Vec::with_capacity(FACILITIES.len());
        let mut practitioners = Vec::with_capacity(FACILITIES.len() * PRACTITIONERS_PER_ORG);
        for (i, facility) in FACILITIES.iter().enumerate() {
            orgs.push(Org {
                urn: new_urn(&mut rng),
                id: new_uuid(&mut rng),
                facility: *facility,
                phone: format!("555-555-01{:02}", i * 10),
            });
            for _ in 0..PRACTITIONERS_PER_ORG {
                let female = rng.random_bool(0.5);
                let given = if female {
                    &GIVEN_FEMALE[..]
                } else {
                    &GIVEN_MALE[..]
                };
                let k = practitioners.len() as u64;
                practitioners.push(Practitioner {
                    urn: new_urn(&mut rng),
                    npi: (npi_base + k).to_string(),
                    given: given.choose(&mut rng).copied().unwrap_or("Avery"),
                    family: FAMILY.choose(&mut rng).copied().unwrap_or("Testpatient"),
                    female,
                    org: i,
                });
            }
        }
        Self {
            orgs,
            practitioners,
        }
    }

    /// Indexes of the practitioners working at facility `org`.
    pub fn staff_of(&self, org: usize) -> std::ops::Range<usize> {
        org * PRACTITIONERS_PER_ORG..(org + 1) * PRACTITIONERS_PER_ORG
    }

    /// `{"reference": "Organization?identifier=…", "display": …}`
    pub fn org_ref(&self, org: usize) -> Value {
        let o = &self.orgs[org];
        json!({
            "reference": format!("Organization?identifier={ORGANIZATION_SYSTEM}|{}", o.id),
            "display": o.facility.name,
        })
    }

    /// `{"reference": "Practitioner?identifier=…", "display": …}`
    pub fn practitioner_ref(&self, p: usize) -> Value {
        let pr = &self.practitioners[p];
        json!({
            "reference": format!("Practitioner?identifier={NPI_SYSTEM}|{}", pr.npi),
            "display": format!("Dr. {} {}", pr.given, pr.family),
        })
    }

    pub fn bundle(&self) -> Value {
        let mut entries = Vec::with_capacity(self.orgs.len() + self.practitioners.len());
        for o in &self.orgs {
            let f = &o.facility;
            entries.push(json!({
                "fullUrl": o.urn,
                "resource": {
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
                },
                "request": {
                    "method": "POST",
                    "url": "Organization",
                    "ifNoneExist": format!("identifier={ORGANIZATION_SYSTEM}|{}", o.id)
                }
            }));
        }
        for p in &self.practitioners {
            let f = &self.orgs[p.org].facility;
            entries.push(json!({
                "fullUrl": p.urn,
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [{ "system": NPI_SYSTEM, "value": p.npi }],
                    "active": true,
                    "name": [{ "use": "official", "family": p.family, "given": [p.given], "prefix": ["Dr."] }],
                    "telecom": [{
                        "system": "email",
                        "value": format!("{}.{}@example.org", p.given.to_lowercase(), p.family.to_lowercase()),
                        "use": "work"
                    }],
                    "address": [{
                        "line": [f.line],
                        "city": f.city,
                        "state": f.state,
                        "postalCode": f.postal,
                        "country": "US"
                    }],
                    "gender": if p.female { "female" } else { "male" }
                },
                "request": {
                    "method": "POST",
                    "url": "Practitioner",
                    "ifNoneExist": format!("identifier={NPI_SYSTEM}|{}", p.npi)
                }
            }));
        }
        json!({ "resourceType": "Bundle", "type": "batch", "entry": entries })
    }
}
