//! Built-in code tables for the synthetic-data generator: the handful of ICD-10-CM, LOINC, RxNorm, CVX and
//! SNOMED CT concepts it uses, and the plainly fake names and places it combines.
//!
//! Codes and display strings were copied from the project's terminology files
//! (`shared/terminology/*.csv`: `icd10cm.csv`, `loinc-common.csv`, `rxnorm-common.csv`, `cvx.csv`,
//! `snomed-common.csv`); LOINC units and reference ranges are the ones given there. Only the three allergy
//! reaction SNOMED CT codes are not in those files (they are Synthea's), and the radiology, pathology,
//! document and visual acuity LOINC codes, which come from the crate's `terminology/loinc-supplement.csv`.
//! Nothing here is for clinical use.

use time::macros::offset;
use time::UtcOffset;

pub(super) const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub(super) const LOINC: &str = "http://loinc.org";
pub(super) const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub(super) const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub(super) const SNOMED: &str = "http://snomed.info/sct";
pub(super) const UCUM: &str = "http://unitsofmeasure.org";

/// A code with its display, in the system implied by where it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Concept {
    pub code: &'static str,
    pub display: &'static str,
}

const fn c(code: &'static str, display: &'static str) -> Concept {
    Concept { code, display }
}

// ---------------------------------------------------------------- ICD-10-CM conditions

pub(super) const HYPERTENSION: Concept = c("I10", "Essential (primary) hypertension");
pub(super) const HYPERLIPIDEMIA: Concept = c("E78.5", "Hyperlipidemia, unspecified");
pub(super) const DIABETES_T2: Concept =
    c("E11.9", "Type 2 diabetes mellitus without complications");
pub(super) const ASTHMA: Concept = c("J45.909", "Unspecified asthma, uncomplicated");
pub(super) const ALLERGIC_RHINITIS: Concept = c("J30.9", "Allergic rhinitis, unspecified");
pub(super) const HYPOTHYROIDISM: Concept = c("E03.9", "Hypothyroidism, unspecified");
pub(super) const OBESITY: Concept = c("E66.9", "Obesity, unspecified");
pub(super) const ANXIETY: Concept = c("F41.1", "Generalized anxiety disorder");
pub(super) const PTSD: Concept = c("F43.10", "Post-traumatic stress disorder, unspecified");
pub(super) const GERD: Concept = c(
    "K21.9",
    "Gastro-esophageal reflux disease without esophagitis",
);
pub(super) const BPH: Concept = c(
    "N40.0",
    "Benign prostatic hyperplasia without lower urinary tract symptoms",
);
pub(super) const DYSMENORRHEA: Concept = c("N94.6", "Dysmenorrhea, unspecified");
pub(super) const NICOTINE: Concept = c("F17.210", "Nicotine dependence, cigarettes, uncomplicated");

pub(super) const URI: Concept = c("J06.9", "Acute upper respiratory infection, unspecified");
pub(super) const SINUSITIS: Concept = c("J01.90", "Acute sinusitis, unspecified");
pub(super) const PHARYNGITIS: Concept = c("J02.9", "Acute pharyngitis, unspecified");
pub(super) const UTI: Concept = c("N39.0", "Urinary tract infection, site not specified");
pub(super) const LOW_BACK_PAIN: Concept = c("M54.50", "Low back pain, unspecified");
pub(super) const ANKLE_SPRAIN: Concept = c(
    "S93.401A",
    "Sprain of unspecified ligament of right ankle, initial encounter",
);
pub(super) const HEADACHE: Concept = c("R51.9", "Headache, unspecified");
pub(super) const KNEE_PAIN: Concept = c("M25.561", "Pain in right knee");

// Sensitive conditions (labelled in `meta.security` by `labels.rs`).
pub(super) const DEPRESSION: Concept = c(
    "F32.9",
    "Major depressive disorder, single episode, unspecified",
);
pub(super) const ALCOHOL_ABUSE: Concept = c("F10.10", "Alcohol abuse, uncomplicated");
pub(super) const HIV_ASYMPTOMATIC: Concept = c(
    "Z21",
    "Asymptomatic human immunodeficiency virus [HIV] infection status",
);
pub(super) const CONTRACEPTION: Concept = c(
    "Z30.41",
    "Encounter for surveillance of contraceptive pills",
);

// Dental, hearing and vision.
pub(super) const DENTAL_EXAM_NORMAL: Concept = c(
    "Z01.20",
    "Encounter for dental examination and cleaning without abnormal findings",
);
pub(super) const DENTAL_EXAM_ABNORMAL: Concept = c(
    "Z01.21",
    "Encounter for dental examination and cleaning with abnormal findings",
);
pub(super) const CARIES_ENAMEL: Concept = c(
    "K02.51",
    "Dental caries on pit and fissure surface limited to enamel",
);
pub(super) const CARIES_DENTIN: Concept = c(
    "K02.52",
    "Dental caries on pit and fissure surface penetrating into dentin",
);
pub(super) const GINGIVITIS: Concept = c("K05.10", "Chronic gingivitis, plaque induced");
pub(super) const HEARING_LOSS: Concept = c("H90.3", "Sensorineural hearing loss, bilateral");
pub(super) const MYOPIA: Concept = c("H52.13", "Myopia, bilateral");
pub(super) const PHA: Concept = c("Z02.89", "Encounter for other administrative examinations");

pub(super) const PREGNANCY: Concept = c(
    "Z34.90",
    "Encounter for supervision of normal pregnancy, unspecified, unspecified trimester",
);

// Childbirth: the delivery (or the indication of a cesarean section) and its outcome.
pub(super) const DELIVERY_UNCOMPLICATED: Concept =
    c("O80", "Encounter for full-term uncomplicated delivery");
pub(super) const PREVIOUS_CESAREAN_SCAR: Concept = c(
    "O34.211",
    "Maternal care for low transverse scar from previous cesarean delivery",
);
pub(super) const BREECH: Concept = c(
    "O32.1XX0",
    "Maternal care for breech presentation, not applicable or unspecified",
);
pub(super) const FETAL_HEART_RATE: Concept = c(
    "O76",
    "Abnormality in fetal heart rate and rhythm complicating labor and delivery",
);
pub(super) const PROLONGED_FIRST_STAGE: Concept = c("O63.0", "Prolonged first stage (of labor)");
pub(super) const SINGLE_LIVE_BIRTH: Concept = c("Z37.0", "Single live birth");

// Reasons for inpatient stays.
pub(super) const PNEUMONIA: Concept = c("J18.9", "Pneumonia, unspecified organism");
pub(super) const BRONCHIOLITIS: Concept = c("J21.9", "Acute bronchiolitis, unspecified");
pub(super) const APPENDICITIS: Concept = c("K35.80", "Unspecified acute appendicitis");
pub(super) const CHOLECYSTITIS: Concept = c("K81.0", "Acute cholecystitis");
pub(super) const CELLULITIS_LEG: Concept = c("L03.115", "Cellulitis of right lower limb");
pub(super) const CONCUSSION: Concept = c(
    "S06.0X1A",
    "Concussion with loss of consciousness of 30 minutes or less, initial encounter",
);
pub(super) const SYNCOPE: Concept = c("R55", "Syncope and collapse");
pub(super) const CHEST_PAIN: Concept = c("R07.9", "Chest pain, unspecified");
pub(super) const HEATSTROKE: Concept = c("T67.02XA", "Exertional heatstroke, initial encounter");
pub(super) const VIRAL_GASTROENTERITIS: Concept =
    c("A08.4", "Viral intestinal infection, unspecified");

/// Every ICD-10-CM code the generator writes (the loaded ICD-10-CM CodeSystem holds these, their ancestors
/// and every chapter, block and category; a test checks that nothing generated is missing).
pub(super) const ICD10_USED: [Concept; 50] = [
    HYPERTENSION,
    HYPERLIPIDEMIA,
    DIABETES_T2,
    ASTHMA,
    ALLERGIC_RHINITIS,
    HYPOTHYROIDISM,
    OBESITY,
    ANXIETY,
    PTSD,
    GERD,
    BPH,
    DYSMENORRHEA,
    NICOTINE,
    DEPRESSION,
    ALCOHOL_ABUSE,
    HIV_ASYMPTOMATIC,
    CONTRACEPTION,
    DENTAL_EXAM_NORMAL,
    DENTAL_EXAM_ABNORMAL,
    CARIES_ENAMEL,
    CARIES_DENTIN,
    GINGIVITIS,
    HEARING_LOSS,
    MYOPIA,
    PHA,
    URI,
    SINUSITIS,
    PHARYNGITIS,
    UTI,
    LOW_BACK_PAIN,
    ANKLE_SPRAIN,
    HEADACHE,
    KNEE_PAIN,
    PREGNANCY,
    DELIVERY_UNCOMPLICATED,
    PREVIOUS_CESAREAN_SCAR,
    BREECH,
    FETAL_HEART_RATE,
    PROLONGED_FIRST_STAGE,
    SINGLE_LIVE_BIRTH,
    PNEUMONIA,
    BRONCHIOLITIS,
    APPENDICITIS,
    CHOLECYSTITIS,
    CELLULITIS_LEG,
    CONCUSSION,
    SYNCOPE,
    CHEST_PAIN,
    HEATSTROKE,
    VIRAL_GASTROENTERITIS,
];

// ---------------------------------------------------------------- SNOMED CT encounter types and procedures

pub(super) const ENC_CHECK_UP: Concept = c("185349003", "Encounter for check up");
pub(super) const ENC_SYMPTOM: Concept = c("185345009", "Encounter for symptom");
pub(super) const ENC_FOLLOW_UP: Concept = c("390906007", "Follow-up encounter");
pub(super) const ENC_PRENATAL_INITIAL: Concept = c("424441002", "Prenatal initial visit");
pub(super) const ENC_PRENATAL: Concept = c("424619006", "Prenatal visit");

pub(super) const PROC_DEPRESSION_SCREENING: Concept = c("171207006", "Depression screening");
pub(super) const PROC_MED_RECONCILIATION: Concept = c("430193006", "Medication reconciliation");
pub(super) const PROC_THROAT_CULTURE: Concept = c("117015009", "Throat culture");
pub(super) const PROC_URINE_CULTURE: Concept = c("117010004", "Urine culture");
pub(super) const PROC_PREGNANCY_TEST: Concept = c("252160004", "Standard pregnancy test");
pub(super) const PROC_FUNDAL_HEIGHT: Concept =
    c("274804006", "Evaluation of uterine fundal height");
pub(super) const PROC_FETAL_ANATOMY: Concept = c("271442007", "Fetal anatomy study");
pub(super) const PROC_CHILDBIRTH: Concept = c("66348005", "Childbirth");
pub(super) const PROC_CESAREAN: Concept = c("11466000", "Cesarean section");

/// SNOMED CT codes that only make sense for a female patient (pregnancy care and childbirth), for the tests.
#[cfg(test)]
pub(super) const FEMALE_ONLY_SNOMED: [&str; 7] = [
    ENC_PRENATAL_INITIAL.code,
    ENC_PRENATAL.code,
    PROC_PREGNANCY_TEST.code,
    PROC_FUNDAL_HEIGHT.code,
    PROC_FETAL_ANATOMY.code,
    PROC_CHILDBIRTH.code,
    PROC_CESAREAN.code,
];

pub(super) const ENC_EMERGENCY: Concept = c("50849002", "Emergency room admission");
pub(super) const PROC_HEARING_EXAM: Concept = c("398171003", "Hearing examination");
pub(super) const PROC_ORAL_EXAM: Concept = c("122856003", "Oral examination");
pub(super) const PROC_DENTAL_CLEANING: Concept = c(
    "1260009003",
    "Removal of supragingival plaque and calculus from all teeth using dental instrument",
);
pub(super) const PROC_FLUORIDE: Concept = c("68071007", "Dental fluoride treatment");

pub(super) const ENC_HOSPITAL_ADMISSION: Concept = c("32485007", "Hospital admission");
pub(super) const ENC_EMERGENCY_ADMISSION: Concept = c("183452005", "Emergency hospital admission");
pub(super) const PROC_APPENDECTOMY: Concept = c("80146002", "Excision of appendix");
pub(super) const PROC_LAP_CHOLECYSTECTOMY: Concept = c("45595009", "Laparoscopic cholecystectomy");
/// SNOMED CT findings for report conclusions (`conclusionCode`).
pub(super) const FINDING_PNEUMONIA: Concept = c("233604007", "Pneumonia");
pub(super) const FINDING_APPENDICITIS: Concept = c("74400008", "Appendicitis");
pub(super) const FINDING_CHOLECYSTITIS: Concept = c("65275009", "Acute cholecystitis");

pub(super) const REACTION_SKIN_ERUPTION: Concept = c("271807003", "Eruption of skin");
pub(super) const REACTION_URTICARIA: Concept = c("126485001", "Urticaria");
pub(super) const REACTION_ANAPHYLAXIS: Concept = c("39579001", "Anaphylaxis");

// ---------------------------------------------------------------- LOINC observations

/// A LOINC-coded quantitative observation: unit (UCUM) and the adult reference interval, if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loinc {
    pub code: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

const fn l(
    code: &'static str,
    display: &'static str,
    unit: &'static str,
    low: Option<f64>,
    high: Option<f64>,
) -> Loinc {
    Loinc {
        code,
        display,
        unit,
        low,
        high,
    }
}

pub(super) const BP_PANEL: Concept =
    c("85354-9", "Blood pressure panel with all children optional");
pub(super) const SYSTOLIC: Loinc = l(
    "8480-6",
    "Systolic blood pressure",
    "mm[Hg]",
    Some(90.0),
    Some(130.0),
);
pub(super) const DIASTOLIC: Loinc = l(
    "8462-4",
    "Diastolic blood pressure",
    "mm[Hg]",
    Some(60.0),
    Some(85.0),
);
pub(super) const HEART_RATE: Loinc = l("8867-4", "Heart rate", "/min", Some(60.0), Some(100.0));
pub(super) const HEIGHT: Loinc = l("8302-2", "Body height", "cm", None, None);
pub(super) const WEIGHT: Loinc = l("29463-7", "Body weight", "kg", None, None);
pub(super) const BMI: Loinc = l(
    "39156-5",
    "Body mass index (BMI) [Ratio]",
    "kg/m2",
    None,
    None,
);
pub(super) const BODY_TEMP: Loinc = l("8310-5", "Body temperature", "Cel", Some(36.6), Some(37.2));
pub(super) const RESP_RATE: Loinc = l("9279-1", "Respiratory rate", "/min", Some(16.0), Some(20.0));
pub(super) const SPO2: Loinc = l(
    "59408-5",
    "Oxygen saturation in Arterial blood by Pulse oximetry",
    "%",
    Some(94.0),
    Some(100.0),
);

// Documents, imaging, pathology and visual acuity (the crate's `terminology/loinc-supplement.csv`).
pub(super) const DISCHARGE_SUMMARY: Concept = c("18842-5", "Discharge summary");
pub(super) const XR_CHEST_2_VIEWS: Concept = c("36643-5", "XR Chest 2 Views");
pub(super) const CT_HEAD_WO_CONTRAST: Concept = c("30799-1", "CT Head WO contrast");
pub(super) const XR_ANKLE_RIGHT: Concept = c("26099-2", "XR Ankle - right Views");
pub(super) const CT_ABDOMEN_PELVIS_W_CONTRAST: Concept =
    c("36813-4", "CT Abdomen and Pelvis W contrast IV");
pub(super) const US_ABDOMEN_RUQ: Concept = c("24532-4", "US Abdomen RUQ");
pub(super) const PATHOLOGY_STUDY: Concept = c("11526-1", "Pathology study");
pub(super) const PATHOLOGY_DIAGNOSIS: Concept =
    c("22637-3", "Pathology report final diagnosis Narrative");
pub(super) const ACUITY_RIGHT: Concept = c("98499-7", "Visual acuity uncorrected Right eye");
pub(super) const ACUITY_LEFT: Concept = c("98498-9", "Visual acuity uncorrected Left eye");
pub(super) const ACUITY_CORRECTED_RIGHT: Concept =
    c("65893-0", "Visual acuity best corrected Right eye");
pub(super) const ACUITY_CORRECTED_LEFT: Concept =
    c("65897-1", "Visual acuity best corrected Left eye");

pub(super) const LIPID_PANEL: Concept =
    c("57698-3", "Lipid panel with direct LDL - Serum or Plasma");
pub(super) const CHOLESTEROL: Loinc = l(
    "2093-3",
    "Cholesterol [Mass/volume] in Serum or Plasma",
    "mg/dL",
    Some(140.0),
    Some(200.0),
);
pub(super) const TRIGLYCERIDE: Loinc = l(
    "2571-8",
    "Triglyceride [Mass/volume] in Serum or Plasma",
    "mg/dL",
    Some(0.0),
    Some(150.0),
);
pub(super) const LDL: Loinc = l(
    "18262-6",
    "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
    "mg/dL",
    None,
    Some(130.0),
);
pub(super) const HDL: Loinc = l(
    "2085-9",
    "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
    "mg/dL",
    None,
    None,
);

pub(super) const BMP_PANEL: Concept = c("51990-0", "Basic metabolic panel - Blood");
pub(super) const GLUCOSE: Loinc = l(
    "2339-0",
    "Glucose [Mass/volume] in Blood",
    "mg/dL",
    Some(70.0),
    Some(109.0),
);
pub(super) const UREA_NITROGEN: Loinc = l(
    "6299-2",
    "Urea nitrogen [Mass/volume] in Blood",
    "mg/dL",
    Some(7.0),
    Some(22.0),
);
pub(super) const CREATININE: Loinc = l(
    "38483-4",
    "Creatinine [Mass/volume] in Blood",
    "mg/dL",
    Some(0.6),
    Some(1.3),
);
pub(super) const SODIUM: Loinc = l(
    "2947-0",
    "Sodium [Moles/volume] in Blood",
    "mmol/L",
    Some(135.0),
    Some(145.0),
);
pub(super) const POTASSIUM: Loinc = l(
    "6298-4",
    "Potassium [Moles/volume] in Blood",
    "mmol/L",
    Some(3.5),
    Some(4.9),
);
pub(super) const CHLORIDE: Loinc = l(
    "2069-3",
    "Chloride [Moles/volume] in Blood",
    "mmol/L",
    Some(95.0),
    Some(105.0),
);
pub(super) const CO2: Loinc = l(
    "20565-8",
    "Carbon dioxide, total [Moles/volume] in Blood",
    "mmol/L",
    Some(20.0),
    Some(30.0),
);
pub(super) const CALCIUM: Loinc = l(
    "49765-1",
    "Calcium [Mass/volume] in Blood",
    "mg/dL",
    None,
    None,
);

pub(super) const CBC_PANEL: Concept = c("58410-2", "CBC panel - Blood by Automated count");
pub(super) const HEMOGLOBIN: Loinc = l(
    "718-7",
    "Hemoglobin [Mass/volume] in Blood",
    "g/dL",
    Some(12.0),
    Some(16.0),
);
pub(super) const HEMATOCRIT: Loinc = l(
    "4544-3",
    "Hematocrit [Volume Fraction] of Blood by Automated count",
    "%",
    Some(34.9),
    Some(44.5),
);
pub(super) const WBC: Loinc = l(
    "6690-2",
    "Leukocytes [#/volume] in Blood by Automated count",
    "10*3/uL",
    Some(3.5),
    Some(10.5),
);
pub(super) const PLATELETS: Loinc = l(
    "777-3",
    "Platelets [#/volume] in Blood by Automated count",
    "10*3/uL",
    Some(150.0),
    Some(450.0),
);

pub(super) const HBA1C: Loinc = l(
    "4548-4",
    "Hemoglobin A1c/Hemoglobin.total in Blood",
    "%",
    Some(3.8),
    Some(6.4),
);

// ---------------------------------------------------------------- RxNorm medications

/// How a medication is taken, for the dosage instruction and the dispense quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    Tablet,
    Capsule,
    Inhaler,
}

/// An RxNorm clinical drug with a typical outpatient sig.
#[derive(Debug, Clone, Copy)]
pub(super) struct Med {
    pub code: &'static str,
    pub display: &'static str,
    pub form: Form,
    /// Doses per day (maximum per day when as needed).
    pub per_day: u32,
    pub as_needed: bool,
    pub sig: &'static str,
}

const fn tab(
    code: &'static str,
    display: &'static str,
    per_day: u32,
    as_needed: bool,
    sig: &'static str,
) -> Med {
    Med {
        code,
        display,
        form: Form::Tablet,
        per_day,
        as_needed,
        sig,
    }
}

pub(super) const LISINOPRIL: Med = tab(
    "314076",
    "lisinopril 10 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily",
);
pub(super) const AMLODIPINE: Med = tab(
    "308136",
    "amLODIPine 2.5 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily",
);
pub(super) const HCTZ: Med = tab(
    "310798",
    "Hydrochlorothiazide 25 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth every morning",
);
pub(super) const ATORVASTATIN: Med = tab(
    "617310",
    "atorvastatin 20 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily at bedtime",
);
pub(super) const SIMVASTATIN: Med = tab(
    "312961",
    "simvastatin 20 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily in the evening",
);
pub(super) const METFORMIN: Med = tab(
    "860975",
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily with the evening meal",
);
pub(super) const LEVOTHYROXINE: Med = tab(
    "966222",
    "Levothyroxine Sodium 0.075 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily before breakfast",
);
pub(super) const SERTRALINE: Med = tab(
    "312938",
    "Sertraline 100 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily",
);
pub(super) const LORATADINE: Med = tab(
    "311372",
    "Loratadine 10 MG Oral Tablet",
    1,
    true,
    "Take 1 tablet by mouth once daily as needed for allergies",
);
pub(super) const CETIRIZINE: Med = tab(
    "1014678",
    "cetirizine hydrochloride 10 MG Oral Tablet",
    1,
    true,
    "Take 1 tablet by mouth once daily as needed for allergies",
);
pub(super) const ALBUTEROL: Med = Med {
    code: "2123111",
    display: "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
    form: Form::Inhaler,
    per_day: 4,
    as_needed: true,
    sig: "Inhale 2 puffs every 4 to 6 hours as needed for wheezing",
};
pub(super) const FLUTICASONE: Med = Med {
    code: "895996",
    display: "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler [Flovent]",
    form: Form::Inhaler,
    per_day: 2,
    as_needed: false,
    sig: "Inhale 2 puffs twice daily; rinse mouth after use",
};
pub(super) const NAPROXEN: Med = tab(
    "849574",
    "Naproxen sodium 220 MG Oral Tablet",
    2,
    true,
    "Take 1 tablet by mouth every 12 hours as needed for pain, with food",
);
pub(super) const IBUPROFEN: Med = tab(
    "310965",
    "Ibuprofen 200 MG Oral Tablet",
    4,
    true,
    "Take 1 tablet by mouth every 6 hours as needed for pain",
);
pub(super) const ACETAMINOPHEN: Med = tab(
    "313782",
    "Acetaminophen 325 MG Oral Tablet",
    4,
    true,
    "Take 1 tablet by mouth every 6 hours as needed for pain or fever",
);
pub(super) const AMOXICILLIN: Med = tab(
    "308192",
    "Amoxicillin 500 MG Oral Tablet",
    3,
    false,
    "Take 1 tablet by mouth three times daily for 10 days",
);
pub(super) const PENICILLIN_VK: Med = tab(
    "834102",
    "Penicillin V Potassium 500 MG Oral Tablet",
    2,
    false,
    "Take 1 tablet by mouth twice daily for 10 days",
);
pub(super) const AZITHROMYCIN: Med = tab(
    "308460",
    "Azithromycin 250 MG Oral Tablet",
    1,
    false,
    "Take 2 tablets on day 1, then 1 tablet daily for 4 days",
);
pub(super) const SMX_TMP: Med = tab(
    "198335",
    "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet",
    2,
    false,
    "Take 1 tablet by mouth twice daily for 3 days",
);
pub(super) const CEPHALEXIN: Med = tab(
    "197454",
    "cephalexin 500 MG Oral Tablet",
    2,
    false,
    "Take 1 tablet by mouth twice daily for 7 days",
);

pub(super) const FLUOXETINE: Med = Med {
    code: "310385",
    display: "FLUoxetine 20 MG Oral Capsule",
    form: Form::Capsule,
    per_day: 1,
    as_needed: false,
    sig: "Take 1 capsule by mouth once daily in the morning",
};
pub(super) const NALTREXONE: Med = tab(
    "1483744",
    "Naltrexone hydrochloride 50 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily",
);
pub(super) const HIV_ART: Med = tab(
    "1999667",
    "bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet",
    1,
    false,
    "Take 1 tablet by mouth once daily",
);
pub(super) const CONTRACEPTIVE_PILL: Med = tab(
    "751905",
    "Trinessa 28 Day Pack",
    1,
    false,
    "Take 1 tablet by mouth at the same time every day",
);
pub(super) const CONTRACEPTIVE_PILL_PROGESTIN: Med = tab(
    "757594",
    "Jolivette 28 Day Pack",
    1,
    false,
    "Take 1 tablet by mouth at the same time every day",
);

/// Drug allergens (RxNorm ingredients, as Synthea codes drug allergies), with the class they rule out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AllergyClass {
    Penicillin,
    Sulfa,
    Nsaid,
    Cephalosporin,
}

pub(super) const ALLERGENS: [(Concept, AllergyClass, u32); 5] = [
    (c("7984", "Penicillin V"), AllergyClass::Penicillin, 50),
    (
        c("10831", "Sulfamethoxazole / Trimethoprim"),
        AllergyClass::Sulfa,
        20,
    ),
    (c("1191", "Aspirin"), AllergyClass::Nsaid, 10),
    (c("5640", "Ibuprofen"), AllergyClass::Nsaid, 10),
    (c("2231", "Cephalexin"), AllergyClass::Cephalosporin, 10),
];

// ---------------------------------------------------------------- CVX vaccines

pub(super) const FLU_TRIVALENT_PF: Concept = c("140", "Influenza, split virus, trivalent, PF");
pub(super) const FLU_QUADRIVALENT_PF: Concept =
    c("150", "Influenza, split virus, quadrivalent, PF");
pub(super) const FLU_PEDIATRIC: Concept = c(
    "161",
    "Influenza, injectable,quadrivalent, preservative free, pediatric",
);
pub(super) const FLU_HIGH_DOSE_QUAD: Concept = c("197", "Influenza, high-dose, quadrivalent, PF");
pub(super) const FLU_HIGH_DOSE_TRI: Concept = c("135", "Influenza, high-dose, trivalent, PF");
pub(super) const TDAP: Concept = c("115", "Tdap");
pub(super) const HEPB_PEDIATRIC: Concept = c("08", "Hep B, adolescent or pediatric");
pub(super) const DTAP: Concept = c("20", "DTaP");
pub(super) const IPV: Concept = c("10", "IPV");
pub(super) const MMR: Concept = c("03", "MMR");
pub(super) const VARICELLA: Concept = c("21", "varicella");
pub(super) const PCV13: Concept = c("133", "Pneumococcal conjugate PCV 13");
pub(super) const HPV9: Concept = c("165", "HPV9");
pub(super) const ZOSTER: Concept = c("187", "zoster recombinant");
pub(super) const PPV23: Concept = c("33", "pneumococcal polysaccharide PPV23");
pub(super) const COVID_2021: Concept = c("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose");
pub(super) const COVID_2024: Concept = c(
    "309",
    "COVID-19, mRNA, LNP-S, PF, tris-sucrose, 30 mcg/0.3 mL",
);
pub(super) const HEPA_ADULT: Concept = c("52", "Hep A, adult");
pub(super) const HEPB_ADULT: Concept = c("43", "Hep B, adult");

// ---------------------------------------------------------------- fake people and places

#[rustfmt::skip]
pub(super) const GIVEN_MALE: [&str; 30] = [
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Christopher",
    "Daniel", "Matthew", "Anthony", "Mark", "Steven", "Andrew", "Joshua", "Kevin", "Brian", "Ryan", "Jacob",
    "Tyler", "Brandon", "Justin", "Nathan", "Aaron", "Eric", "Jason", "Logan", "Ethan",
];

#[rustfmt::skip]
pub(super) const GIVEN_FEMALE: [&str; 30] = [
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Emily", "Ashley", "Amanda", "Melissa", "Stephanie", "Rebecca", "Laura", "Megan", "Hannah", "Olivia",
    "Emma", "Sophia", "Chloe", "Grace", "Natalie", "Rachel", "Samantha", "Lauren", "Kayla", "Avery",
];

#[rustfmt::skip]
pub(super) const FAMILY: [&str; 50] = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
    "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Testpatient",
];

#[rustfmt::skip]
pub(super) const STREETS: [&str; 12] = [
    "Example", "Sample", "Placeholder", "Maple", "Oak", "Cedar", "Liberty", "Patriot", "Eagle", "Sentry",
    "Barracks", "Harbor",
];

pub(super) const STREET_SUFFIXES: [&str; 5] = ["Street", "Avenue", "Drive", "Court", "Loop"];

/// A fictional military treatment facility: the shared Organizations of the provider bundle.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facility {
    pub name: &'static str,
    pub line: &'static str,
    pub city: &'static str,
    pub state: &'static str,
    pub postal: &'static str,
    pub offset: UtcOffset,
    /// Overseas facilities use APO/FPO addresses ("Unit … Box …") for their patients.
    pub overseas: bool,
    /// Where the buildings are (for overseas facilities, not the APO/FPO mailing address).
    pub site_line: &'static str,
    pub site_city: &'static str,
    /// ISO 3166 alpha-2 country of the site.
    pub country: &'static str,
    /// IANA time zone of the site (`offset` is its standard-time offset: the generator ignores daylight
    /// saving time).
    pub tz: &'static str,
    /// Inpatient beds of the ward (medical centers and hospitals have more).
    pub beds: u32,
}

pub(super) const FACILITIES: [Facility; 8] = [
    Facility {
        name: "Fort Example Army Health Clinic",
        line: "100 Example Loop",
        city: "Fort Example",
        state: "TX",
        postal: "76599",
        offset: offset!(-6),
        overseas: false,
        site_line: "100 Example Loop",
        site_city: "Fort Example",
        country: "US",
        tz: "America/Chicago",
        beds: 6,
    },
    Facility {
        name: "Naval Hospital Sampleport",
        line: "1 Sample Harbor Way",
        city: "Sampleport",
        state: "VA",
        postal: "23599",
        offset: offset!(-5),
        overseas: false,
        site_line: "1 Sample Harbor Way",
        site_city: "Sampleport",
        country: "US",
        tz: "America/New_York",
        beds: 16,
    },
    Facility {
        name: "Testfield Air Force Base Medical Clinic",
        line: "500 Hangar Road",
        city: "Testfield",
        state: "CO",
        postal: "80999",
        offset: offset!(-7),
        overseas: false,
        site_line: "500 Hangar Road",
        site_city: "Testfield",
        country: "US",
        tz: "America/Denver",
        beds: 6,
    },
    Facility {
        name: "Camp Placeholder Naval Branch Health Clinic",
        line: "20 Placeholder Boulevard",
        city: "Camp Placeholder",
        state: "NC",
        postal: "28599",
        offset: offset!(-5),
        overseas: false,
        site_line: "20 Placeholder Boulevard",
        site_city: "Camp Placeholder",
        country: "US",
        tz: "America/New_York",
        beds: 6,
    },
    Facility {
        name: "Demo Bay Army Medical Center",
        line: "9040 Demo Bay Drive",
        city: "Demo Bay",
        state: "WA",
        postal: "98599",
        offset: offset!(-8),
        overseas: false,
        site_line: "9040 Demo Bay Drive",
        site_city: "Demo Bay",
        country: "US",
        tz: "America/Los_Angeles",
        beds: 24,
    },
    Facility {
        name: "Joint Base Synthetica Medical Clinic",
        line: "77 Synthetica Avenue",
        city: "Synthetica",
        state: "HI",
        postal: "96899",
        offset: offset!(-10),
        overseas: false,
        site_line: "77 Synthetica Avenue",
        site_city: "Synthetica",
        country: "US",
        tz: "Pacific/Honolulu",
        beds: 6,
    },
    Facility {
        name: "Mockenheim Army Health Clinic",
        line: "Unit 29001",
        city: "APO",
        state: "AE",
        postal: "09099",
        offset: offset!(+1),
        overseas: true,
        site_line: "Mockenheim Kaserne, Building 100",
        site_city: "Mockenheim",
        country: "DE",
        tz: "Europe/Berlin",
        beds: 6,
    },
    Facility {
        name: "Naval Hospital Fictiona",
        line: "PSC 400",
        city: "FPO",
        state: "AP",
        postal: "96399",
        offset: offset!(+9),
        overseas: true,
        site_line: "Fictiona Fleet Activities, Building 1",
        site_city: "Fictiona",
        country: "JP",
        tz: "Asia/Tokyo",
        beds: 16,
    },
];
