//! Real FHIR data nobody on the team wrote: every resource of HL7's official R4 core package
//! (`../shared/fhir-r4/hl7.fhir.r4.core-4.0.1.tgz`: StructureDefinitions, ValueSets, CodeSystems,
//! SearchParameters, …) must pass validation and yield index values without panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;

fn package() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fhir-r4/hl7.fhir.r4.core-4.0.1.tgz");
    if p.exists() {
        Some(p)
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing: CI must run beside shared/", p.display());
    } else {
        eprintln!(
            "!! {} not found: official-definitions test skipped",
            p.display()
        );
        None
    }
}

#[test]
fn every_official_core_resource_validates() {
    let Some(path) = package() else { return };
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if !name.ends_with(".json") || name.ends_with("package.json") || name.contains(".index.") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v.get("resourceType").is_none() {
            continue;
        }
        checked += 1;
        let _ = continuum_fhir::extract_index(&v);
        if let Err(issues) = continuum_fhir::validate::validate_resource(&v) {
            // One published SearchParameter has a 67-character id, longer than FHIR's own 64-character limit.
            let only_long_id = issues
                .iter()
                .all(|i| i.expression.as_deref() == Some("SearchParameter.id"))
                && v["id"].as_str().is_some_and(|id| id.len() > 64);
            if !only_long_id {
                failures.push(format!(
                    "{name}: {:?}",
                    issues.iter().take(3).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(checked > 4000, "only {checked} resources found");
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
