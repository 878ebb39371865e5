//! The shared, population-independent part of the synthetic world: the health plan, military units, and for
//! every facility its Organization, Locations (building, departments, inpatient ward and beds),
//! HealthcareServices, staff (Practitioner + PractitionerRole), Schedules and bookable Slots for the coming
//! weeks by visit type.
//!
//! Each is written with an identifier under [`SITE_SYSTEM`] (or the system of its kind) and POSTed with
//! `ifNoneExist`, so loading twice finds rather than duplicates, and family bundles reference them
//! conditionally (`Slot?identifier=…`). Slots start on the weekday after `now`, in the facility's local
//! clinic hours (standard time: daylight saving time is ignored).

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, Time, Weekday};

use super::providers::{Providers, StaffRole};
use super::{
    cs_url, fhir_date, fhir_datetime, new_urn, stream_rng, SynthConfig, ORGANIZATION_SYSTEM,
    SITE_STREAM, SITE_SYSTEM, UNIT_SYSTEM,
};

/// Weekdays of bookable slots after `now` (three weeks).
pub(super) const SLOT_DAYS: usize = 15;

/// What a slot or appointment is for (Continuum's `visit-type` code system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VisitType {
    Wellness,
    FollowUp,
    Acute,
    DentalExam,
}

impl VisitType {
    pub const ALL: [VisitType; 4] = [
        VisitType::Wellness,
        VisitType::FollowUp,
        VisitType::Acute,
        VisitType::DentalExam,
    ];

    pub fn code(self) -> (&'static str, &'static str) {
        match self {
            VisitType::Wellness => ("wellness", "Wellness visit"),
            VisitType::FollowUp => ("follow-up", "Follow-up visit"),
            VisitType::Acute => ("acute", "Acute visit (sick call)"),
            VisitType::DentalExam => ("dental-exam", "Dental examination"),
        }
    }

    /// The HL7 v2 appointment reason (table 0276).
    fn appointment_type(self) -> (&'static str, &'static str) {
        match self {
            VisitType::Wellness | VisitType::DentalExam => {
                ("CHECKUP", "A routine check-up, such as an annual physical")
            }
            VisitType::FollowUp => ("FOLLOWUP", "A follow up visit from a previous appointment"),
            VisitType::Acute => ("ROUTINE", "Routine appointment - default if not valued"),
        }
    }

    pub(super) fn concept(self) -> Value {
        let (code, display) = self.code();
        json!({ "coding": [{ "system": cs_url("visit-type"), "code": code, "display": display }], "text": display })
    }

    pub(super) fn appointment_concept(self) -> Value {
        let (code, display) = self.appointment_type();
        json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": code, "display": display }] })
    }
}

/// A primary-care manager's day: minutes after 08:00, length, visit type.
const PCM_DAY: [(i64, i64, VisitType); 16] = [
    (0, 40, VisitType::Wellness),
    (40, 40, VisitType::Wellness),
    (80, 20, VisitType::FollowUp),
    (100, 20, VisitType::FollowUp),
    (120, 20, VisitType::Acute),
    (140, 20, VisitType::Acute),
    (160, 20, VisitType::Acute),
    (180, 20, VisitType::FollowUp),
    (200, 20, VisitType::FollowUp),
    // lunch 11:40–13:00
    (300, 20, VisitType::Acute),
    (320, 20, VisitType::Acute),
    (340, 20, VisitType::Acute),
    (360, 20, VisitType::FollowUp),
    (380, 20, VisitType::FollowUp),
    (400, 40, VisitType::Wellness),
    (440, 20, VisitType::Acute),
];

/// A dentist's day of examinations.
const DENTIST_DAY: [(i64, i64, VisitType); 8] = [
    (0, 40, VisitType::DentalExam),
    (40, 40, VisitType::DentalExam),
    (80, 40, VisitType::DentalExam),
    (120, 40, VisitType::DentalExam),
    (300, 40, VisitType::DentalExam),
    (340, 40, VisitType::DentalExam),
    (380, 40, VisitType::DentalExam),
    (420, 40, VisitType::DentalExam),
];

/// One bookable slot, enough to rebuild its resource anywhere.
#[derive(Debug, Clone, Copy)]
pub(super) struct SlotKey {
    pub(super) staff: usize,
    pub(super) start: OffsetDateTime,
    pub(super) minutes: i64,
    pub(super) visit: VisitType,
}

/// A department of every facility: key, name, Continuum code, and the v3 RoleCode where one fits.
struct Department {
    key: &'static str,
    name: &'static str,
    display: &'static str,
    role_code: Option<(&'static str, &'static str)>,
}

const DEPARTMENTS: [Department; 6] = [
    Department {
        key: "primary-care",
        name: "Primary Care Clinic",
        display: "Primary care clinic",
        role_code: Some(("PC", "Primary care clinic")),
    },
    Department {
        key: "dental",
        name: "Dental Clinic",
        display: "Dental clinic",
        role_code: None,
    },
    Department {
        key: "pharmacy",
        name: "Pharmacy",
        display: "Pharmacy",
        role_code: Some(("OUTPHARM", "outpatient pharmacy")),
    },
    Department {
        key: "laboratory",
        name: "Laboratory",
        display: "Laboratory",
        role_code: Some(("HLAB", "hospital laboratory")),
    },
    Department {
        key: "radiology",
        name: "Radiology",
        display: "Radiology",
        role_code: Some(("HRAD", "radiology unit")),
    },
    Department {
        key: "inpatient-ward",
        name: "Inpatient Ward 2A",
        display: "Inpatient ward",
        role_code: Some(("HU", "Hospital unit")),
    },
];

/// A fictional unit: name, branch code and display, facility it is stationed at, unit code.
pub(super) struct Unit {
    pub(super) name: &'static str,
    pub(super) branch: (&'static str, &'static str),
    pub(super) org: usize,
    pub(super) uic: &'static str,
}

const ARMY: (&str, &str) = ("army", "Army");
const NAVY: (&str, &str) = ("navy", "Navy");
const MARINES: (&str, &str) = ("marine-corps", "Marine Corps");
const AIR_FORCE: (&str, &str) = ("air-force", "Air Force");
const SPACE_FORCE: (&str, &str) = ("space-force", "Space Force");
const COAST_GUARD: (&str, &str) = ("coast-guard", "Coast Guard");

const fn unit(
    name: &'static str,
    branch: (&'static str, &'static str),
    org: usize,
    uic: &'static str,
) -> Unit {
    Unit {
        name,
        branch,
        org,
        uic,
    }
}

/// Plainly fictional units ("Example", "Synthetic", "Placeholder" ...), two or three per facility.
pub(super) const UNITS: [Unit; 18] = [
    unit(
        "1st Battalion, 901st Example Infantry Regiment",
        ARMY,
        0,
        "WEX901",
    ),
    unit("93rd Synthetic Signal Company", ARMY, 0, "WEX093"),
    unit("USS Placeholder (DDG-1999)", NAVY, 1, "NPH199"),
    unit("Example Strike Fighter Squadron 199", NAVY, 1, "NEX199"),
    unit(
        "950th Test Space Operations Squadron",
        SPACE_FORCE,
        2,
        "SPT950",
    ),
    unit("77th Synthetic Airlift Wing", AIR_FORCE, 2, "FSY077"),
    unit("9th Battalion, 99th Example Marines", MARINES, 3, "MEX909"),
    unit(
        "Placeholder Combat Logistics Battalion 99",
        MARINES,
        3,
        "MPH099",
    ),
    unit("2nd Brigade, 98th Demo Division", ARMY, 4, "WDB298"),
    unit("Demo Bay Reserve Medical Company", ARMY, 4, "WDB401"),
    unit("15th Example Wing", AIR_FORCE, 5, "FEX015"),
    unit("Coast Guard Sector Synthetica", COAST_GUARD, 5, "CSY001"),
    unit("Synthetica Naval Example Detachment", NAVY, 5, "NSY005"),
    unit("509th Example Military Police Battalion", ARMY, 6, "WEX509"),
    unit("66th Synthetic Intelligence Company", ARMY, 6, "WSY066"),
    unit("USS Sampleship (LHA-99)", NAVY, 7, "NSS099"),
    unit("Fictiona Naval Air Example Squadron", NAVY, 7, "NFA007"),
    unit(
        "3rd Example Marine Logistics Detachment",
        MARINES,
        7,
        "MEX703",
    ),
];

/// The health plan's payer Organization.
pub(super) const PAYER_ID: &str = "payer-continuum-synthetic";

pub(super) fn payer_ref() -> Value {
    json!({
        "reference": format!("Organization?identifier={SITE_SYSTEM}|{PAYER_ID}"),
        "display": "Continuum Synthetic Health Program"
    })
}

pub(super) fn unit_ref(u: &Unit) -> Value {
    json!({ "reference": format!("Organization?identifier={UNIT_SYSTEM}|{}", u.uic), "display": u.name })
}

pub(super) fn role_value(prov: &Providers, staff: usize) -> String {
    format!("role-{}", prov.practitioners[staff].staff_id)
}

pub(super) fn role_ref(prov: &Providers, staff: usize) -> Value {
    let p = &prov.practitioners[staff];
    json!({
        "reference": format!("PractitionerRole?identifier={SITE_SYSTEM}|{}", role_value(prov, staff)),
        "display": format!("{}, {}", p.display(), p.role.code().1)
    })
}

fn location_value(org: usize, dept: &str) -> String {
    if dept.is_empty() {
        format!("loc-F{org}")
    } else {
        format!("loc-F{org}-{dept}")
    }
}

pub(super) fn location_ref(prov: &Providers, org: usize, dept: &str) -> Value {
    let name = DEPARTMENTS
        .iter()
        .find(|d| d.key == dept)
        .map_or("", |d| d.name);
    json!({
        "reference": format!("Location?identifier={SITE_SYSTEM}|{}", location_value(org, dept)),
        "display": format!("{} {name}", prov.orgs[org].facility.name).trim().to_string()
    })
}

/// The identifier value of bed `bed` (from 1) of facility `org`'s inpatient ward.
fn bed_value(org: usize, bed: u32) -> String {
    format!("{}-bed-{bed:02}", location_value(org, "inpatient-ward"))
}

/// A conditional reference to bed `bed` (from 1 to the facility's `beds`) of facility `org`'s ward.
pub(super) fn bed_ref(prov: &Providers, org: usize, bed: u32) -> Value {
    json!({
        "reference": format!("Location?identifier={SITE_SYSTEM}|{}", bed_value(org, bed)),
        "display": format!("{} Ward 2A, bed {bed}", prov.orgs[org].facility.name)
    })
}

/// The department a staff member works in.
pub(super) fn department_of(role: StaffRole) -> &'static str {
    match role {
        StaffRole::Dentist | StaffRole::DentalHygienist => "dental",
        StaffRole::Pharmacist | StaffRole::PharmacyTechnician => "pharmacy",
        StaffRole::Administrator => "",
        StaffRole::Radiologist => "radiology",
        StaffRole::Pathologist => "laboratory",
        StaffRole::Surgeon => "inpatient-ward",
        _ => "primary-care",
    }
}

fn schedule_value(prov: &Providers, staff: usize) -> String {
    format!("schedule-{}", prov.practitioners[staff].staff_id)
}

pub(super) fn slot_value(prov: &Providers, k: &SlotKey) -> String {
    let off = prov.orgs[prov.practitioners[k.staff].org].facility.offset;
    let l = k.start.to_offset(off);
    format!(
        "slot-{}-{:04}{:02}{:02}T{:02}{:02}",
        prov.practitioners[k.staff].staff_id,
        l.year(),
        u8::from(l.month()),
        l.day(),
        l.hour(),
        l.minute()
    )
}

pub(super) fn slot_query(prov: &Providers, k: &SlotKey) -> String {
    format!("Slot?identifier={SITE_SYSTEM}|{}", slot_value(prov, k))
}

/// The Slot resource; `schedule` is a `urn:uuid:` inside the site bundle or a conditional reference.
pub(super) fn slot_resource(prov: &Providers, k: &SlotKey, schedule: &str, busy: bool) -> Value {
    let off = prov.orgs[prov.practitioners[k.staff].org].facility.offset;
    json!({
        "resourceType": "Slot",
        "identifier": [{ "system": SITE_SYSTEM, "value": slot_value(prov, k) }],
        "serviceType": [k.visit.concept()],
        "appointmentType": k.visit.appointment_concept(),
        "schedule": { "reference": schedule },
        "status": if busy { "busy" } else { "free" },
        "start": fhir_datetime(k.start, off),
        "end": fhir_datetime(k.start + Duration::minutes(k.minutes), off),
    })
}

pub(super) fn schedule_query(prov: &Providers, staff: usize) -> String {
    format!(
        "Schedule?identifier={SITE_SYSTEM}|{}",
        schedule_value(prov, staff)
    )
}

/// Every slot of facility `org`, in time order: the primary-care managers' and the dentist's, on the
/// [`SLOT_DAYS`] weekdays after `now` (local date of the facility).
pub(super) fn slots_of(cfg: &SynthConfig, prov: &Providers, org: usize) -> Vec<SlotKey> {
    let offset = prov.orgs[org].facility.offset;
    let today = cfg.now.to_offset(offset).date();
    let mut out = Vec::new();
    let mut day = today;
    let mut days = 0;
    while days < SLOT_DAYS {
        day = day.next_day().unwrap_or(day);
        if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            continue;
        }
        days += 1;
        let opening = day.with_time(Time::MIDNIGHT).assume_offset(offset) + Duration::hours(8);
        for staff in prov.all_staff_of(org) {
            let template: &[(i64, i64, VisitType)] = match prov.practitioners[staff].role {
                r if r.is_pcm() => &PCM_DAY,
                StaffRole::Dentist => &DENTIST_DAY,
                _ => &[],
            };
            for &(at, minutes, visit) in template {
                out.push(SlotKey {
                    staff,
                    start: opening + Duration::minutes(at),
                    minutes,
                    visit,
                });
            }
        }
    }
    out.sort_by_key(|k| (k.start, k.staff));
    out
}

fn post(urn: &str, resource: Value, query: String) -> Value {
    let ty = resource["resourceType"].as_str().unwrap_or("").to_string();
    json!({ "fullUrl": urn, "resource": resource, "request": { "method": "POST", "url": ty, "ifNoneExist": query } })
}

fn transaction(entries: Vec<Value>) -> Value {
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

fn site_id(value: &str) -> Value {
    json!([{ "system": SITE_SYSTEM, "value": value }])
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }], "text": display })
}

/// The health plan and the units, in one transaction.
pub(super) fn enterprise_bundle(cfg: &SynthConfig) -> Value {
    let mut rng = stream_rng(cfg.seed, SITE_STREAM);
    let mut entries = vec![post(
        &new_urn(&mut rng),
        json!({
            "resourceType": "Organization",
            "identifier": site_id(PAYER_ID),
            "active": true,
            "type": [
                coding("http://terminology.hl7.org/CodeSystem/organization-type", "pay", "Payer"),
                coding(&cs_url("organization-type"), "payer", "Health plan")
            ],
            "name": "Continuum Synthetic Health Program",
            "telecom": [{ "system": "phone", "value": "555-555-0199", "use": "work" }]
        }),
        format!("identifier={SITE_SYSTEM}|{PAYER_ID}"),
    )];
    for u in &UNITS {
        entries.push(post(
            &new_urn(&mut rng),
            json!({
                "resourceType": "Organization",
                "identifier": [{ "system": UNIT_SYSTEM, "value": u.uic }],
                "active": true,
                "type": [
                    coding(&cs_url("organization-type"), "unit", "Military unit"),
                    coding(&cs_url("service-branch"), u.branch.0, u.branch.1)
                ],
                "name": u.name,
            }),
            format!("identifier={UNIT_SYSTEM}|{}", u.uic),
        ));
    }
    transaction(entries)
}

/// Everything of facility `org`, in one transaction.
pub(super) fn facility_bundle(cfg: &SynthConfig, prov: &Providers, org: usize) -> Value {
    let mut rng = stream_rng(cfg.seed, SITE_STREAM ^ ((org as u64 + 1) << 32));
    let o = &prov.orgs[org];
    let f = &o.facility;
    let mut entries = vec![post(
        &o.urn,
        prov.org_resource(org),
        format!("identifier={ORGANIZATION_SYSTEM}|{}", o.id),
    )];
    let org_ref = json!({ "reference": o.urn, "display": f.name });
    let address = json!({ "use": "work", "type": "physical", "line": [f.site_line], "city": f.site_city, "country": f.country });
    let address = if f.country == "US" {
        json!({ "use": "work", "type": "physical", "line": [f.site_line], "city": f.site_city, "state": f.state, "postalCode": f.postal, "country": "US" })
    } else {
        address
    };
    let hospital = f.beds > 6;
    let building = new_urn(&mut rng);
    let (type_code, type_display) = if hospital {
        ("HOSP", "Hospital")
    } else {
        ("OF", "Outpatient facility")
    };
    entries.push(post(
        &building,
        json!({
            "resourceType": "Location",
            "identifier": site_id(&location_value(org, "")),
            "status": "active",
            "name": f.name,
            "mode": "instance",
            "type": [coding("http://terminology.hl7.org/CodeSystem/v3-RoleCode", type_code, type_display)],
            "telecom": [{ "system": "phone", "value": o.phone, "use": "work" }],
            "address": address,
            "physicalType": coding("http://terminology.hl7.org/CodeSystem/location-physical-type", "bu", "Building"),
            "managingOrganization": org_ref,
            "hoursOfOperation": [{ "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "openingTime": "07:30:00", "closingTime": "16:30:00" }],
            "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": f.tz }],
        }),
        format!("identifier={SITE_SYSTEM}|{}", location_value(org, "")),
    ));
    let mut dept_urns = Vec::new();
    for d in &DEPARTMENTS {
        let urn = new_urn(&mut rng);
        let mut types =
            vec![json!({ "system": cs_url("department"), "code": d.key, "display": d.display })];
        if let Some((code, display)) = d.role_code {
            types.push(json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": code, "display": display }));
        }
        let ward = d.key == "inpatient-ward";
        let (pt, pt_display) = if ward { ("wa", "Ward") } else { ("wi", "Wing") };
        entries.push(post(
            &urn,
            json!({
                "resourceType": "Location",
                "identifier": site_id(&location_value(org, d.key)),
                "status": "active",
                "name": format!("{} {}", f.name, d.name),
                "mode": "instance",
                "type": [{ "coding": types, "text": d.display }],
                "physicalType": coding("http://terminology.hl7.org/CodeSystem/location-physical-type", pt, pt_display),
                "managingOrganization": org_ref,
                "partOf": { "reference": building },
            }),
            format!("identifier={SITE_SYSTEM}|{}", location_value(org, d.key)),
        ));
        if ward {
            for bed in 1..=f.beds {
                let value = bed_value(org, bed);
                entries.push(post(
                    &new_urn(&mut rng),
                    json!({
                        "resourceType": "Location",
                        "identifier": site_id(&value),
                        "status": "active",
                        "operationalStatus": { "system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "U", "display": "Unoccupied" },
                        "name": format!("Ward 2A, bed {bed}"),
                        "mode": "instance",
                        "physicalType": coding("http://terminology.hl7.org/CodeSystem/location-physical-type", "bd", "Bed"),
                        "managingOrganization": org_ref,
                        "partOf": { "reference": urn },
                    }),
                    format!("identifier={SITE_SYSTEM}|{value}"),
                ));
            }
        }
        dept_urns.push((d.key, urn));
    }
    let dept_urn = |key: &str| {
        dept_urns
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| building.clone())
    };

    // Bookable services: primary care (wellness, follow-up, acute), dental, and the pharmacy (no visits).
    let services: [(&str, &str, &[VisitType]); 3] = [
        (
            "primary-care",
            "Primary Care",
            &[VisitType::Wellness, VisitType::FollowUp, VisitType::Acute],
        ),
        ("dental", "Dental", &[VisitType::DentalExam]),
        ("pharmacy", "Pharmacy", &[]),
    ];
    let mut service_urns = Vec::new();
    for (key, name, visits) in services {
        let urn = new_urn(&mut rng);
        let value = format!("svc-F{org}-{key}");
        let mut svc = json!({
            "resourceType": "HealthcareService",
            "identifier": site_id(&value),
            "active": true,
            "providedBy": org_ref,
            "location": [{ "reference": dept_urn(key) }],
            "name": format!("{name}, {}", f.name),
            "telecom": [{ "system": "phone", "value": o.phone, "use": "work" }],
            "appointmentRequired": !visits.is_empty(),
            "availableTime": [{ "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "08:00:00", "availableEndTime": "16:00:00" }],
        });
        if !visits.is_empty() {
            svc["type"] = json!(visits.iter().map(|v| v.concept()).collect::<Vec<_>>());
        }
        entries.push(post(&urn, svc, format!("identifier={SITE_SYSTEM}|{value}")));
        service_urns.push((key, urn));
    }

    let horizon_start = cfg.now;
    let horizon_end = cfg.now + Duration::days(SLOT_DAYS as i64 / 5 * 7 + 3);
    let mut schedules = Vec::new();
    for staff in prov.all_staff_of(org) {
        let p = &prov.practitioners[staff];
        entries.push(post(
            &p.urn,
            prov.practitioner_resource(staff),
            prov.practitioner_query(staff),
        ));
        let role_urn = new_urn(&mut rng);
        let (code, display) = p.role.code();
        let mut codes =
            vec![json!({ "system": cs_url("staff-role"), "code": code, "display": display })];
        if let Some((c, d)) = p.role.hl7() {
            codes.push(json!({ "system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": c, "display": d }));
        }
        let dept = department_of(p.role);
        let mut role = json!({
            "resourceType": "PractitionerRole",
            "identifier": site_id(&role_value(prov, staff)),
            "active": true,
            "period": { "start": fhir_date(cfg.now - Duration::days(400 + 37 * staff as i64 % 900), f.offset) },
            "practitioner": { "reference": p.urn, "display": p.display() },
            "organization": org_ref,
            "code": [{ "coding": codes, "text": display }],
            "location": [{ "reference": if dept.is_empty() { building.clone() } else { dept_urn(dept) } }],
        });
        if let Some((_, svc)) = service_urns.iter().find(|(k, _)| *k == dept) {
            role["healthcareService"] = json!([{ "reference": svc }]);
        }
        if p.role.is_pcm() || p.role == StaffRole::Dentist {
            role["availableTime"] = json!([{ "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "08:00:00", "availableEndTime": "16:00:00" }]);
        }
        entries.push(post(
            &role_urn,
            role,
            format!("identifier={SITE_SYSTEM}|{}", role_value(prov, staff)),
        ));
        if p.role.is_pcm() || p.role == StaffRole::Dentist {
            let visits: &[VisitType] = if p.role == StaffRole::Dentist {
                &[VisitType::DentalExam]
            } else {
                &[VisitType::Wellness, VisitType::FollowUp, VisitType::Acute]
            };
            let urn = new_urn(&mut rng);
            entries.push(post(
                &urn,
                json!({
                    "resourceType": "Schedule",
                    "identifier": site_id(&schedule_value(prov, staff)),
                    "active": true,
                    "serviceType": visits.iter().map(|v| v.concept()).collect::<Vec<_>>(),
                    "actor": [
                        { "reference": role_urn, "display": p.display() },
                        { "reference": dept_urn(dept) }
                    ],
                    "planningHorizon": { "start": fhir_datetime(horizon_start, f.offset), "end": fhir_datetime(horizon_end, f.offset) },
                    "comment": "Synthetic schedule",
                }),
                format!("identifier={SITE_SYSTEM}|{}", schedule_value(prov, staff)),
            ));
            schedules.push((staff, urn));
        }
    }
    for k in slots_of(cfg, prov, org) {
        let Some((_, schedule)) = schedules.iter().find(|(s, _)| *s == k.staff) else {
            continue;
        };
        entries.push(post(
            &new_urn(&mut rng),
            slot_resource(prov, &k, schedule, false),
            format!("identifier={SITE_SYSTEM}|{}", slot_value(prov, &k)),
        ));
    }
    transaction(entries)
}
