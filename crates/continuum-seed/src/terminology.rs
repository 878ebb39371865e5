//! The code systems Continuum speaks, as data: the CSV files of the repository's `terminology/` folder
//! (embedded with `include_str!`, so the binary needs nothing beside it) turned into FHIR CodeSystem
//! resources, each with a ValueSet of all its codes. Sources, versions and licence notices are in
//! `terminology/NOTICE.md`.
//!
//! Owns: parsing the CSVs (RFC 4180), the CodeSystem/ValueSet resources (fixed ids, PUT, so loading is
//! idempotent) and [`lookup`] (code → display), which the tests use to check that every coding the generator
//! writes is in the lists with the same display. Does not own: terminology services ($lookup, $validate-code,
//! $expand): the store's search over `CodeSystem?code=…` is what exists today.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::terms::{CVX, ICD10CM, LOINC, RXNORM, SNOMED, UCUM};
use super::CANONICAL_BASE;

const CVX_CSV: &str = include_str!("../../../terminology/cvx.csv");
const MVX_CSV: &str = include_str!("../../../terminology/mvx.csv");
const ICD10CM_CSV: &str = include_str!("../../../terminology/icd10cm.csv");
const LOINC_CSV: &str = include_str!("../../../terminology/loinc-common.csv");
const RXNORM_CSV: &str = include_str!("../../../terminology/rxnorm-common.csv");
const SNOMED_CSV: &str = include_str!("../../../terminology/snomed-common.csv");
const UCUM_CSV: &str = include_str!("../../../terminology/ucum-common.csv");
const CONTINUUM_CSV: &str = include_str!("../../../terminology/continuum.csv");
/// LOINC codes the generator writes that `loinc-common.csv` lacks (radiology, pathology, discharge summary,
/// visual acuity), and Continuum's own codes added with them (dental readiness class, more staff roles):
/// the crate's `terminology/` folder, described in its README. Loaded with the lists they supplement.
const LOINC_SUPPLEMENT_CSV: &str = include_str!("../terminology/loinc-supplement.csv");
const CONTINUUM_SUPPLEMENT_CSV: &str = include_str!("../terminology/continuum-supplement.csv");

pub const MVX: &str = "http://hl7.org/fhir/sid/mvx";

/// Parses RFC 4180 CSV (quoted fields, `""` escapes, newlines inside quotes) into rows of fields, header
/// included. Malformed quoting is read leniently (a stray quote is kept as text): the files are checked.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Rows as maps from column name to value.
fn records(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut rows = parse_csv(text).into_iter();
    let Some(header) = rows.next() else {
        return Vec::new();
    };
    rows.map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

/// One code system of `terminology/`.
struct Source {
    id: String,
    url: String,
    name: String,
    title: String,
    publisher: &'static str,
    /// `complete` or `fragment` (the `-common` lists are picks from much larger systems).
    content: &'static str,
    copyright: &'static str,
    description: String,
    /// Concepts: code, display, definition, properties.
    concepts: Vec<Value>,
    properties: Vec<Value>,
}

fn get<'a>(r: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    r.get(k).map_or("", String::as_str)
}

fn concept(code: &str, display: &str) -> serde_json::Map<String, Value> {
    let mut c = serde_json::Map::new();
    c.insert("code".into(), json!(code));
    if !display.is_empty() {
        c.insert("display".into(), json!(display));
    }
    c
}

const LOINC_NOTICE: &str = "This material contains content from LOINC (http://loinc.org). LOINC is copyright \u{a9} Regenstrief Institute, Inc. and the Logical Observation Identifiers Names and Codes (LOINC) Committee and is available at no cost under the license at http://loinc.org/license. LOINC\u{ae} is a registered United States trademark of Regenstrief Institute, Inc.";
const RXNORM_NOTICE: &str = "This product uses publicly available data courtesy of the U.S. National Library of Medicine (NLM), National Institutes of Health, Department of Health and Human Services; NLM is not responsible for the product and does not endorse or recommend this or any other product.";
const SNOMED_NOTICE: &str = "SNOMED CT\u{ae} is a registered trademark of SNOMED International. Using SNOMED CT in production needs a licence (in the US, the free NLM/UMLS affiliate licence). This pick of concepts exists to support synthetic test data.";
const UCUM_NOTICE: &str = "UCUM is Copyright \u{a9} 1999-2013 Regenstrief Institute, Inc. and The UCUM Organization, Indianapolis, IN. All rights reserved. See https://ucum.org/license for the terms of use.";
const PUBLIC_DOMAIN: &str =
    "Public domain (U.S. Centers for Disease Control and Prevention / National Center for Health Statistics).";

fn cvx() -> Source {
    let cvx = records(CVX_CSV);
    Source {
        id: "cvx".into(),
        url: CVX.into(),
        name: "CVX".into(),
        title: "CDC vaccines administered (CVX)".into(),
        publisher: "U.S. Centers for Disease Control and Prevention",
        content: "complete",
        copyright: PUBLIC_DOMAIN,
        description: "CVX codes as of 2025-10-31 (terminology/cvx.csv).".into(),
        properties: vec![
            json!({ "code": "status", "uri": "http://hl7.org/fhir/concept-properties#status", "description": "CDC status: Active, Inactive, Non-US or Never Active", "type": "code" }),
            json!({ "code": "inactive", "uri": "http://hl7.org/fhir/concept-properties#inactive", "description": "Not Active", "type": "boolean" }),
        ],
        concepts: cvx
            .iter()
            .map(|r| {
                let mut c = concept(get(r, "code"), get(r, "short_description"));
                c.insert("definition".into(), json!(get(r, "full_name")));
                c.insert(
                    "property".into(),
                    json!([
                        { "code": "status", "valueCode": get(r, "status") },
                        { "code": "inactive", "valueBoolean": get(r, "status") != "Active" }
                    ]),
                );
                Value::Object(c)
            })
            .collect(),
    }
}

fn mvx() -> Source {
    Source {
        id: "mvx".into(),
        url: MVX.into(),
        name: "MVX".into(),
        title: "Vaccine manufacturers (MVX)".into(),
        publisher: "U.S. Centers for Disease Control and Prevention",
        content: "fragment",
        copyright: PUBLIC_DOMAIN,
        description:
            "The 2019 HL7 copy of the MVX table (terminology/mvx.csv): out of date and incomplete."
                .into(),
        properties: Vec::new(),
        concepts: records(MVX_CSV)
            .iter()
            .map(|r| Value::Object(concept(get(r, "code"), get(r, "manufacturer"))))
            .collect(),
    }
}

/// ICD-10-CM as loaded: every chapter, block and category, plus each code the generator writes and its
/// ancestors (a `fragment`). Loading all 98,466 rows took minutes, because indexing one resource with that
/// many codes is quadratic in the store today; the whole list stays in `terminology/icd10cm.csv` and
/// [`lookup`] knows all of it.
fn icd10cm() -> Source {
    let rows = records(ICD10CM_CSV);
    let parent: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (get(r, "code"), get(r, "parent")))
        .collect();
    let mut wanted: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for c in super::terms::ICD10_USED {
        let mut code = c.code;
        while !code.is_empty() && wanted.insert(code) {
            code = parent.get(code).copied().unwrap_or("");
        }
    }
    let concepts = rows
        .iter()
        .filter(|r| {
            matches!(get(r, "kind"), "chapter" | "block" | "category")
                || wanted.contains(get(r, "code"))
        })
        .map(|r| {
            let mut c = concept(get(r, "code"), get(r, "description"));
            let mut props =
                vec![json!({ "code": "billable", "valueBoolean": get(r, "billable") == "yes" })];
            if !get(r, "parent").is_empty() {
                props.push(json!({ "code": "parent", "valueCode": get(r, "parent") }));
            }
            c.insert("property".into(), Value::Array(props));
            Value::Object(c)
        })
        .collect();
    Source {
        id: "icd-10-cm".into(),
        url: ICD10CM.into(),
        name: "ICD10CM".into(),
        title: "ICD-10-CM (FY2026, April 1 2026 update)".into(),
        publisher: "U.S. National Center for Health Statistics",
        content: "fragment",
        copyright: PUBLIC_DOMAIN,
        description: "ICD-10-CM FY2026: every chapter, block and category, and the codes Continuum's synthetic data uses with their ancestors. The full list (98,466 rows) is terminology/icd10cm.csv.".into(),
        properties: vec![
            json!({ "code": "parent", "uri": "http://hl7.org/fhir/concept-properties#parent", "description": "The code of the parent row", "type": "code" }),
            json!({ "code": "billable", "description": "Valid for coding a diagnosis (a leaf of the tree)", "type": "boolean" }),
        ],
        concepts,
    }
}

fn loinc() -> Source {
    let rows: Vec<_> = records(LOINC_CSV)
        .into_iter()
        .chain(records(LOINC_SUPPLEMENT_CSV))
        .collect();
    Source {
        id: "loinc-common".into(),
        url: LOINC.into(),
        name: "LOINCCommon".into(),
        title: "LOINC: common laboratory tests and vital signs".into(),
        publisher: "Regenstrief Institute, Inc.",
        content: "fragment",
        copyright: LOINC_NOTICE,
        description: format!(
            "{} common LOINC codes with their typical UCUM unit (terminology/loinc-common.csv, and the radiology, pathology, document and visual acuity codes of crates/continuum-seed/terminology/loinc-supplement.csv).",
            rows.len()
        ),
        properties: vec![
            json!({ "code": "unit", "description": "Typical UCUM unit", "type": "string" }),
        ],
        concepts: rows
            .iter()
            .map(|r| {
                let mut c = concept(get(r, "code"), get(r, "display"));
                if !get(r, "unit").is_empty() {
                    c.insert(
                        "property".into(),
                        json!([{ "code": "unit", "valueString": get(r, "unit") }]),
                    );
                }
                Value::Object(c)
            })
            .collect(),
    }
}

fn rxnorm() -> Source {
    Source {
        id: "rxnorm-common".into(),
        url: RXNORM.into(),
        name: "RxNormCommon".into(),
        title: "RxNorm: common medications".into(),
        publisher: "U.S. National Library of Medicine",
        content: "fragment",
        copyright: RXNORM_NOTICE,
        description: "368 RxNorm concepts used by outpatient prescribing and drug allergies (terminology/rxnorm-common.csv).".into(),
        properties: Vec::new(),
        concepts: records(RXNORM_CSV)
            .iter()
            .map(|r| Value::Object(concept(get(r, "rxcui"), get(r, "display"))))
            .collect(),
    }
}

fn snomed() -> Source {
    Source {
        id: "snomed-common".into(),
        url: SNOMED.into(),
        name: "SNOMEDCTCommon".into(),
        title: "SNOMED CT: conditions, procedures and encounter types used by synthetic data"
            .into(),
        publisher: "SNOMED International",
        content: "fragment",
        copyright: SNOMED_NOTICE,
        description: "795 SNOMED CT concepts (terminology/snomed-common.csv).".into(),
        properties: Vec::new(),
        concepts: records(SNOMED_CSV)
            .iter()
            .map(|r| Value::Object(concept(get(r, "code"), get(r, "display"))))
            .collect(),
    }
}

fn ucum() -> Source {
    Source {
        id: "ucum-common".into(),
        url: UCUM.into(),
        name: "UCUMCommon".into(),
        title: "UCUM: common units".into(),
        publisher: "Regenstrief Institute, Inc. and The UCUM Organization",
        content: "fragment",
        copyright: UCUM_NOTICE,
        description: "644 common UCUM units (terminology/ucum-common.csv).".into(),
        properties: Vec::new(),
        concepts: records(UCUM_CSV)
            .iter()
            .map(|r| Value::Object(concept(get(r, "code"), get(r, "description"))))
            .collect(),
    }
}

fn continuum() -> Vec<Source> {
    let mut own: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records(CONTINUUM_CSV)
        .into_iter()
        .chain(records(CONTINUUM_SUPPLEMENT_CSV))
    {
        let mut c = concept(get(&r, "code"), get(&r, "display"));
        if !get(&r, "definition").is_empty() {
            c.insert("definition".into(), json!(get(&r, "definition")));
        }
        own.entry(get(&r, "system").to_string())
            .or_default()
            .push(Value::Object(c));
    }
    own.into_iter()
        .map(|(system, concepts)| Source {
            id: format!("continuum-{system}"),
            url: format!("{CANONICAL_BASE}/CodeSystem/{system}"),
            name: system
                .split('-')
                .map(|w| {
                    let mut cs = w.chars();
                    cs.next()
                        .map(|f| f.to_uppercase().collect::<String>() + cs.as_str())
                        .unwrap_or_default()
                })
                .collect(),
            title: format!("Continuum {}", system.replace('-', " ")),
            publisher: "Continuum",
            content: "complete",
            copyright: "Apache-2.0, like the rest of Continuum.",
            description: format!(
                "A code system Continuum defines itself (system `{system}` of terminology/continuum.csv and crates/continuum-seed/terminology/continuum-supplement.csv)."
            ),
            properties: Vec::new(),
            concepts,
        })
        .collect()
}

/// Code system `i`: the seven external lists, then Continuum's own.
fn source(i: usize) -> Option<Source> {
    let builders: [fn() -> Source; 7] = [cvx, mvx, icd10cm, loinc, rxnorm, snomed, ucum];
    match builders.get(i) {
        Some(b) => Some(b()),
        None => continuum().into_iter().nth(i - builders.len()),
    }
}

fn sources() -> impl Iterator<Item = Source> {
    (0..).map_while(source)
}

fn resources(s: Source) -> (Value, Value) {
    let count = s.concepts.len();
    let mut cs = json!({
        "resourceType": "CodeSystem",
        "id": s.id,
        "url": s.url,
        "name": s.name,
        "title": s.title,
        "status": "active",
        "experimental": false,
        "publisher": s.publisher,
        "description": s.description,
        "copyright": s.copyright,
        "caseSensitive": true,
        "valueSet": format!("{CANONICAL_BASE}/ValueSet/{}", s.id),
        "content": s.content,
        "count": count,
    });
    if !s.properties.is_empty() {
        cs["property"] = Value::Array(s.properties);
    }
    cs["concept"] = Value::Array(s.concepts);
    let vs = json!({
        "resourceType": "ValueSet",
        "id": s.id,
        "url": format!("{CANONICAL_BASE}/ValueSet/{}", s.id),
        "name": format!("{}All", s.name),
        "title": format!("All codes of {}", s.title),
        "status": "active",
        "experimental": false,
        "publisher": "Continuum",
        "description": format!("Every code in the CodeSystem {} as loaded by Continuum.", s.url),
        "compose": { "include": [{ "system": s.url }] },
    });
    (cs, vs)
}

/// Bundle `i` of the code systems (a transaction of a CodeSystem and its ValueSet, PUT by id), or `None`
/// past the last.
pub fn bundle(i: usize) -> Option<Value> {
    let s = source(i)?;
    let (cs, vs) = resources(s);
    let put = |r: Value| {
        let url = format!(
            "{}/{}",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        );
        json!({ "fullUrl": url, "resource": r, "request": { "method": "PUT", "url": url } })
    };
    Some(json!({ "resourceType": "Bundle", "type": "transaction", "entry": [put(cs), put(vs)] }))
}

/// Code → display of every embedded code system, by system URL.
fn table() -> &'static BTreeMap<String, BTreeMap<String, String>> {
    static TABLE: OnceLock<BTreeMap<String, BTreeMap<String, String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for s in sources() {
            let codes = t.entry(s.url.clone()).or_default();
            for c in &s.concepts {
                codes.insert(
                    c["code"].as_str().unwrap_or("").to_string(),
                    c["display"].as_str().unwrap_or("").to_string(),
                );
            }
        }
        // All of ICD-10-CM, not only the loaded fragment.
        let icd = t.entry(ICD10CM.to_string()).or_default();
        for r in records(ICD10CM_CSV) {
            icd.insert(
                get(&r, "code").to_string(),
                get(&r, "description").to_string(),
            );
        }
        t
    })
}

/// The display of `code` in `system`, if the embedded lists know the system and the code.
pub fn lookup(system: &str, code: &str) -> Option<&'static str> {
    table()
        .get(system)
        .and_then(|codes| codes.get(code))
        .map(String::as_str)
}

/// Whether the embedded lists cover `system` at all.
pub fn knows_system(system: &str) -> bool {
    table().contains_key(system)
}
