//! Imaging and pathology of the population's records: radiology reports (DiagnosticReport, category RAD)
//! with the ImagingStudy they read (a synthetic DICOM study under the UUID-derived root `2.25`), and
//! pathology reports (category PAT) of surgical specimens with their final-diagnosis Observation. The
//! facility is the report's performer; its radiologist or pathologist is the `resultsInterpreter`.
//!
//! Outpatient imaging comes from sick visits (a sprained ankle, now and then a feverish adult's chest); the
//! rest comes with inpatient stays (`inpatient.rs`). Conclusions are short and say they are synthetic.

use rand::Rng;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::super::fhir_datetime;
use super::super::person::{minutes, Acute, Visit};
use super::super::providers::StaffRole;
use super::super::resources::{self as fhir, Category, Ctx};
use super::super::site;
use super::super::terms::*;
use super::{new_urn, Sim};

const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const DICOM_MODALITY: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// SOP classes are identified by their DICOM UID as a URN (RFC 3986).
const SOP_CLASS_SYSTEM: &str = "urn:ietf:rfc:3986";

/// An imaging procedure: its LOINC code, DICOM modality and SOP class, and how many images it makes.
pub(super) struct Exam {
    pub(super) code: Concept,
    modality: (&'static str, &'static str),
    sop_class: (&'static str, &'static str),
    images: (u32, u32),
    /// Whether the instances are listed one by one (radiographs; a CT's hundreds of slices are counted).
    listed: bool,
}

const RADIOGRAPH: (&str, &str) = ("DX", "Digital Radiography");
const DX_SOP: (&str, &str) = (
    "1.2.840.10008.5.1.4.1.1.1.1",
    "Digital X-Ray Image Storage - For Presentation",
);
const CT: (&str, &str) = ("CT", "Computed Tomography");
const CT_SOP: (&str, &str) = ("1.2.840.10008.5.1.4.1.1.2", "CT Image Storage");
const US: (&str, &str) = ("US", "Ultrasound");
const US_SOP: (&str, &str) = ("1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage");

pub(super) const CHEST_XR: Exam = Exam {
    code: XR_CHEST_2_VIEWS,
    modality: RADIOGRAPH,
    sop_class: DX_SOP,
    images: (2, 2),
    listed: true,
};
pub(super) const HEAD_CT: Exam = Exam {
    code: CT_HEAD_WO_CONTRAST,
    modality: CT,
    sop_class: CT_SOP,
    images: (120, 240),
    listed: false,
};
pub(super) const ANKLE_XR: Exam = Exam {
    code: XR_ANKLE_RIGHT,
    modality: RADIOGRAPH,
    sop_class: DX_SOP,
    images: (3, 3),
    listed: true,
};
pub(super) const ABDOMEN_CT: Exam = Exam {
    code: CT_ABDOMEN_PELVIS_W_CONTRAST,
    modality: CT,
    sop_class: CT_SOP,
    images: (300, 500),
    listed: false,
};
pub(super) const RUQ_US: Exam = Exam {
    code: US_ABDOMEN_RUQ,
    modality: US,
    sop_class: US_SOP,
    images: (12, 30),
    listed: true,
};

const SYNTHETIC: &str = "Synthetic report, not a real patient.";

/// A radiology reading: the report's conclusion and, for a diagnosis, its SNOMED CT finding.
pub(super) struct Reading {
    pub(super) conclusion: &'static str,
    pub(super) finding: Option<Concept>,
}

pub(super) const fn reading(conclusion: &'static str, finding: Option<Concept>) -> Reading {
    Reading {
        conclusion,
        finding,
    }
}

fn section(code: &str, display: &str) -> Value {
    json!([{ "coding": [{ "system": V2_0074, "code": code, "display": display }], "text": display }])
}

/// The staff member of `role` at facility `org`, as a reference (the clinician of `ctx` if there is none).
fn staff_ref(sim: &Sim, ctx: &Ctx, org: usize, role: StaffRole) -> Value {
    sim.prov.first_with(org, role).map_or_else(
        || ctx.practitioner.clone(),
        |i| sim.prov.practitioner_ref(i),
    )
}

impl Sim<'_> {
    /// A DICOM UID under `2.25`: the decimal value of a (random, reproducible) UUID, at most 44 characters.
    fn dicom_uid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        format!("2.25.{}", uuid.as_u128())
    }

    /// Imaging of a sick visit: a sprained ankle is X-rayed two times in five, a feverish adult's chest
    /// now and then.
    pub(super) fn acute_imaging(
        &mut self,
        ctx: &Ctx,
        v: &Visit,
        age: f64,
        spec: &Acute,
        condition: &str,
    ) {
        let (exam, read) = if spec.code == ANKLE_SPRAIN && self.rng.random_bool(0.4) {
            (
                &ANKLE_XR,
                reading(
                    "No acute fracture or dislocation. Ankle mortise intact. Lateral soft tissue swelling.",
                    None,
                ),
            )
        } else if spec.fever && age >= 18.0 && self.rng.random_bool(0.05) {
            (
                &CHEST_XR,
                reading(
                    "No focal consolidation, pleural effusion or pneumothorax. Normal heart size.",
                    None,
                ),
            )
        } else {
            return;
        };
        let at = v.start + (v.end - v.start) / 2;
        self.radiology(ctx, v.org, exam, &read, at, Some(condition));
    }

    /// An ImagingStudy at `at` in facility `org`'s radiology department and its radiology report, for the
    /// encounter of `ctx`, ordered by its clinician.
    pub(super) fn radiology(
        &mut self,
        ctx: &Ctx,
        org: usize,
        exam: &Exam,
        read: &Reading,
        at: OffsetDateTime,
        reason: Option<&str>,
    ) {
        let radiologist = staff_ref(self, ctx, org, StaffRole::Radiologist);
        let images = self.rng.random_range(exam.images.0..=exam.images.1);
        let study_uid = self.dicom_uid();
        let series_uid = self.dicom_uid();
        let modality = json!({ "system": DICOM_MODALITY, "code": exam.modality.0, "display": exam.modality.1 });
        let mut series = json!({
            "uid": series_uid,
            "number": 1,
            "modality": modality,
            "description": exam.code.display,
            "numberOfInstances": images,
            "started": fhir_datetime(at, ctx.offset),
        });
        if exam.listed {
            let mut instances = Vec::with_capacity(images as usize);
            for n in 1..=images {
                instances.push(json!({
                    "uid": self.dicom_uid(),
                    "sopClass": {
                        "system": SOP_CLASS_SYSTEM,
                        "code": format!("urn:oid:{}", exam.sop_class.0),
                        "display": exam.sop_class.1
                    },
                    "number": n,
                }));
            }
            series["instance"] = Value::Array(instances);
        }
        let mut study = json!({
            "resourceType": "ImagingStudy",
            "identifier": [{
                "use": "official",
                "system": "urn:dicom:uid",
                "value": format!("urn:oid:{study_uid}")
            }],
            "status": "available",
            "modality": [modality],
            "subject": { "reference": ctx.patient },
            "encounter": { "reference": ctx.encounter },
            "started": fhir_datetime(at, ctx.offset),
            "referrer": ctx.practitioner.clone(),
            "interpreter": [radiologist.clone()],
            "numberOfSeries": 1,
            "numberOfInstances": images,
            "procedureCode": [fhir::loinc_concept(exam.code)],
            "location": site::location_ref(self.prov, org, "radiology"),
            "description": format!("{} (synthetic)", exam.code.display),
            "series": [series],
        });
        if let Some(r) = reason {
            study["reasonReference"] = json!([{ "reference": r }]);
        }
        let study_urn = new_urn(&mut self.rng);
        self.push(&study_urn, "ImagingStudy", study);

        let read_minutes = match exam.modality.0 {
            "CT" => self.rng.random_range(30..120),
            _ => self.rng.random_range(20..240),
        };
        let issued = (at + minutes(read_minutes)).min(self.end);
        let mut report = json!({
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": section("RAD", "Radiology"),
            "code": fhir::loinc_concept(exam.code),
            "subject": { "reference": ctx.patient },
            "encounter": { "reference": ctx.encounter },
            "effectiveDateTime": fhir_datetime(at, ctx.offset),
            "issued": fhir_datetime(issued, ctx.offset),
            "performer": [ctx.org.clone()],
            "resultsInterpreter": [radiologist],
            "imagingStudy": [{ "reference": study_urn }],
            "conclusion": format!("{} {SYNTHETIC}", read.conclusion),
        });
        if let Some(f) = read.finding {
            report["conclusionCode"] = json!([fhir::concept(SNOMED, f)]);
        }
        let urn = new_urn(&mut self.rng);
        self.push(&urn, "DiagnosticReport", report);
    }

    /// The pathology report of a specimen taken at `collected` in facility `org`: the pathologist's final
    /// diagnosis (an Observation, LOINC 22637-3) and the report (LOINC 11526-1, category PAT) that holds it.
    pub(super) fn pathology(
        &mut self,
        ctx: &Ctx,
        org: usize,
        collected: OffsetDateTime,
        issued: OffsetDateTime,
        read: &Reading,
    ) {
        let pathologist = staff_ref(self, ctx, org, StaffRole::Pathologist);
        let diagnosis = format!("{} {SYNTHETIC}", read.conclusion);
        let lab = Ctx {
            patient: ctx.patient,
            encounter: ctx.encounter,
            offset: ctx.offset,
            practitioner: &pathologist,
            org: ctx.org,
        };
        let obs_urn = new_urn(&mut self.rng);
        let o = fhir::observation_with(
            &lab,
            Category::Laboratory,
            fhir::loinc_concept(PATHOLOGY_DIAGNOSIS),
            ("valueString", json!(diagnosis)),
            collected,
            issued,
        );
        self.push(&obs_urn, "Observation", o);
        let mut report = json!({
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": section("PAT", "Pathology (gross & histopath, not surgical)"),
            "code": fhir::loinc_concept(PATHOLOGY_STUDY),
            "subject": { "reference": ctx.patient },
            "encounter": { "reference": ctx.encounter },
            "effectiveDateTime": fhir_datetime(collected, ctx.offset),
            "issued": fhir_datetime(issued, ctx.offset),
            "performer": [ctx.org.clone()],
            "resultsInterpreter": [pathologist],
            "result": [{ "reference": obs_urn }],
            "conclusion": diagnosis,
        });
        if let Some(f) = read.finding {
            report["conclusionCode"] = json!([fhir::concept(SNOMED, f)]);
        }
        let urn = new_urn(&mut self.rng);
        self.push(&urn, "DiagnosticReport", report);
    }
}
