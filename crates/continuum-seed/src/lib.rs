//! The synthetic population generator behind `continuum seed` and the demo: deterministic, streamed FHIR R4
//! Bundles of plainly fake people of a military health system and their care.
//!
//! Owns:
//! - [`Population`]: the population of `continuum seed`, as a stream of [`Chunk`]s — the code systems of the
//!   repository's `terminology/` folder ([`terminology`]), the health plan and military units, one
//!   transaction per fictional facility (Organization, Locations down to beds, HealthcareServices, staff as
//!   Practitioner + PractitionerRole, Schedules, free Slots for the coming weeks by [`VisitType`]), then one
//!   transaction per family (sponsor, spouse, children; their records; RelatedPersons, Coverage, booked
//!   Appointments). Family `f` depends only on the seed, "now" and `f`; only appointment booking carries
//!   state from family to family, bounded by the number of slots. [`showcase`] names the demo's family.
//! - the per-person simulation (`person.rs`, `patient.rs`): demographics, duty stations, years of care —
//!   encounters, ICD-10-CM conditions, LOINC vitals and labs with UCUM units, reference ranges and H/L/N
//!   flags, RxNorm prescriptions with refills, CVX immunizations with lot numbers, allergies, SNOMED CT
//!   procedures, periodic health assessments with visual acuity, dental examinations charted by tooth with
//!   the dental readiness class (class 4 at a health assessment when the yearly exam is overdue), inpatient
//!   stays on the facility's ward beds with discharge summaries, childbirth admissions of the mothers of the
//!   children born within the record (their pregnancies are those births), and radiology (with
//!   ImagingStudy) and pathology reports;
//! - [`labels`]: sensitivity labels (`meta.security`) on mental-health, substance-use, reproductive-health
//!   and HIV data; [`ndjson`]: the stream as resources with ids, for NDJSON files;
//! - the legacy single-patient API ([`provider_bundle`], [`patient_bundle`], [`patient_bundles`]): independent
//!   Synthea-like patients (no families, site data or dental care), kept for the import tests and benchmarks.
//!
//! Everything is a pure function of [`SynthConfig`] (seed and "now" included): the same input gives
//! byte-identical JSON, and no clock or OS randomness is read. Names are combined from small lists, places
//! and units are fictional ("Example", "Synthetic", "Placeholder"), identifiers live only under
//! `urn:continuum:synthetic:*` systems (NPIs are in the never-issued `99999…` range).
//!
//! Does not own: loading (the `continuum` binary's `seed` command calls the core), terminology services, or
//! clinical truth: the output looks like a chart and passes plausibility checks, and must never be used as
//! clinical content.

mod family;
pub mod labels;
pub mod ndjson;
mod patient;
mod person;
mod population;
mod providers;
mod resources;
mod site;
pub mod terminology;
mod terms;
#[cfg(test)]
mod tests;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use time::macros::datetime;
use time::{OffsetDateTime, UtcOffset};

use providers::Providers;

pub use family::Relation;
pub use population::{
    extension_url, showcase, sponsor_bounds, AgeBand, Chunk, ChunkKind, Population, Showcase,
};
pub use providers::StaffRole;
pub use site::VisitType;

/// Identifier system of the shared Organizations (as in Synthea's output).
pub const ORGANIZATION_SYSTEM: &str = "https://github.com/synthetichealth/synthea";
/// Identifier system of the shared Practitioners; values are synthetic `99999…` numbers, never issued NPIs.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// Identifier system of the synthetic DoD ID of each patient (the patient's `ifNoneExist` key).
pub const DODID_SYSTEM: &str = "urn:continuum:synthetic:dodid";
/// Identifier system of the synthetic medical record number of each patient.
pub const MRN_SYSTEM: &str = "urn:continuum:synthetic:mrn";
/// Identifier system of every staff member (Practitioner), licensed or not.
pub const STAFF_SYSTEM: &str = "urn:continuum:synthetic:staff";
/// Identifier system of the 11-digit benefits-number-like identifier: the sponsor's 9 digits and a 2-digit
/// person designator (00 sponsor, 01 spouse, 20… children).
pub const DBN_SYSTEM: &str = "urn:continuum:synthetic:dbn";
/// Identifier system of units (a unit-identification-code-like value).
pub const UNIT_SYSTEM: &str = "urn:continuum:synthetic:uic";
/// Identifier system of Locations, HealthcareServices, PractitionerRoles, Schedules and Slots (one system,
/// values prefixed by kind), so patient bundles can reference them conditionally.
pub const SITE_SYSTEM: &str = "urn:continuum:synthetic:site";
/// Placeholder canonical base of the code systems, value sets and extensions Continuum defines itself, until
/// the project has a home on the web (`.example` is reserved: it can never point at someone else's site).
pub const CANONICAL_BASE: &str = "https://continuum.example/fhir";

/// What to generate. All output is a function of these fields and the patient index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthConfig {
    pub seed: u64,
    /// How many years of care before `now` each patient gets (less for patients younger than that).
    pub years_of_history: u32,
    /// Encounters per year of history: one wellness visit plus sick, follow-up or prenatal visits.
    pub encounters_per_year: u32,
    /// The simulation's "now": nothing is dated after it. Fixed by default so output is deterministic.
    pub now: OffsetDateTime,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            years_of_history: 10,
            encounters_per_year: 4,
            now: datetime!(2026-01-01 00:00:00 UTC),
        }
    }
}

/// A `batch` bundle of the shared Organizations and Practitioners that patient bundles reference
/// conditionally. Each entry is a POST with `request.ifNoneExist = "identifier=<system>|<value>"`.
pub fn provider_bundle(cfg: &SynthConfig) -> Value {
    Providers::new(cfg).bundle()
}

/// The `transaction` bundle of patient number `index`: a Patient (POST with `ifNoneExist` on its DoD ID)
/// and its clinical history, every entry with a `urn:uuid:` fullUrl.
pub fn patient_bundle(cfg: &SynthConfig, index: u64) -> Value {
    patient::generate(cfg, &Providers::new(cfg), index)
}

/// Patient bundles `0..n`, generated one at a time as the iterator is advanced.
pub fn patient_bundles(cfg: &SynthConfig, n: u64) -> impl Iterator<Item = Value> {
    let cfg = *cfg;
    let providers = Providers::new(&cfg);
    (0..n).map(move |index| patient::generate(&cfg, &providers, index))
}

/// Stream number of the provider RNG; patient `index` uses stream `index`.
const PROVIDER_STREAM: u64 = u64::MAX;
/// Stream of the facility staff other than the primary-care managers.
const STAFF_STREAM: u64 = u64::MAX - 1;
/// Stream of the shared site data (units, beds, slots).
const SITE_STREAM: u64 = u64::MAX - 2;
/// Stream of the facility specialists (radiologists, pathologists, surgeons).
const SPECIALIST_STREAM: u64 = u64::MAX - 3;
/// Families use streams `FAMILY_STREAMS | family`, their members `MEMBER_STREAMS | key`.
const FAMILY_STREAMS: u64 = 1 << 62;
const MEMBER_STREAMS: u64 = 1 << 63;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent RNG per (seed, stream), so patient `i` does not depend on how many came before it.
fn stream_rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(splitmix64(
        splitmix64(seed) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03),
    ))
}

/// The canonical URL of one of Continuum's own code systems (`terminology/continuum.csv`).
fn cs_url(name: &str) -> String {
    format!("{CANONICAL_BASE}/CodeSystem/{name}")
}

/// A version-4-shaped UUID drawn from the RNG (so it is reproducible).
fn new_uuid(rng: &mut StdRng) -> String {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// `urn:uuid:<uuid>`, for a bundle entry's fullUrl.
fn new_urn(rng: &mut StdRng) -> String {
    format!("urn:uuid:{}", new_uuid(rng))
}

/// A FHIR `dateTime`/`instant` to the second, written in the given offset (`Z` for UTC).
fn fhir_datetime(t: OffsetDateTime, offset: UtcOffset) -> String {
    let l = t.to_offset(offset);
    let zone = if offset.is_utc() {
        "Z".to_string()
    } else {
        let (h, m, _) = offset.as_hms();
        let sign = if offset.is_negative() { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        l.year(),
        u8::from(l.month()),
        l.day(),
        l.hour(),
        l.minute(),
        l.second()
    )
}

/// A FHIR `date`: the calendar date of the instant in the given offset.
fn fhir_date(t: OffsetDateTime, offset: UtcOffset) -> String {
    let l = t.to_offset(offset);
    format!("{:04}-{:02}-{:02}", l.year(), u8::from(l.month()), l.day())
}
