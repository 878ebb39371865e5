//! What a search returns besides its matches: `_include`/`_revinclude` resources, and the `_elements` /
//! `_summary` subsets of each resource.

use std::borrow::Cow;
use std::collections::HashSet;

use continuum_fhir::fhirpath::extract_param;
use continuum_fhir::IndexValue;
use continuum_store::search::{Filter, Predicate, SearchQuery};
use continuum_store::{ResourceStore, StoredResource};
use serde_json::{json, Value};

use super::params::{Include, Summary};
use crate::CoreError;

/// Most resources one search adds through `_include`/`_revinclude`. Past it the result says so in an
/// OperationOutcome entry instead of silently dropping resources.
pub const MAX_INCLUDED: usize = 1000;
/// `:iterate` rounds.
const MAX_ROUNDS: usize = 4;

fn key(r: &StoredResource) -> (String, String) {
    (r.resource_type.clone(), r.id.clone())
}

/// Resources added by `_include` and `_revinclude`, and a warning when the limit cut them short.
/// `admit` gets each round's new resources and returns those that may be shown and followed further (the
/// access policy's filter; the identity for the system).
pub fn included(
    store: &dyn ResourceStore,
    matches: &[StoredResource],
    includes: &[Include],
    revincludes: &[Include],
    admit: &mut dyn FnMut(Vec<StoredResource>) -> Result<Vec<StoredResource>, CoreError>,
) -> Result<(Vec<StoredResource>, Option<String>), CoreError> {
    let mut seen: HashSet<(String, String)> = matches.iter().map(key).collect();
    let mut out: Vec<StoredResource> = Vec::new();
    let mut truncated = false;
    let mut frontier: Vec<StoredResource> = matches.to_vec();
    for round in 0..MAX_ROUNDS {
        let mut next = Vec::new();
        // the targets of this round, in the order they are referenced, then read a type at a time
        let mut wanted: Vec<(String, String)> = Vec::new();
        for inc in includes.iter().filter(|i| round == 0 || i.iterate) {
            for r in frontier.iter().filter(|r| r.resource_type == inc.source) {
                let Ok(doc) = continuum_fhir::fhirpath::parse_for_params(
                    &r.resource_type,
                    std::slice::from_ref(&inc.param),
                    &r.body,
                ) else {
                    continue;
                };
                for v in extract_param(&doc, &inc.param) {
                    let IndexValue::Reference {
                        target_type: Some(t),
                        target_id: Some(id),
                        ..
                    } = v
                    else {
                        continue;
                    };
                    if inc.target.as_ref().is_some_and(|want| *want != t)
                        || seen.contains(&(t.clone(), id.clone()))
                    {
                        continue;
                    }
                    if out.len() + wanted.len() >= MAX_INCLUDED {
                        truncated = true;
                        continue;
                    }
                    seen.insert((t.clone(), id.clone()));
                    wanted.push((t, id));
                }
            }
        }
        next.extend(read_all(store, &wanted)?);
        for inc in revincludes.iter().filter(|i| round == 0 || i.iterate) {
            let targets: Vec<Predicate> = frontier
                .iter()
                .map(|r| Predicate::Reference {
                    param: inc.param.clone(),
                    target_type: Some(r.resource_type.clone()),
                    target_id: r.id.clone(),
                })
                .collect();
            if targets.is_empty() {
                continue;
            }
            let mut after = None;
            loop {
                let page = store.search(&SearchQuery {
                    resource_type: Some(inc.source.clone()),
                    filters: vec![Filter {
                        any_of: targets.clone(),
                    }],
                    count: 500,
                    after,
                    ..Default::default()
                })?;
                for found in page.matches {
                    if seen.contains(&key(&found)) {
                        continue;
                    }
                    if out.len() + next.len() >= MAX_INCLUDED {
                        truncated = true;
                        break;
                    }
                    seen.insert(key(&found));
                    next.push(found);
                }
                match page.next {
                    Some(n) if !truncated => after = Some(n),
                    _ => break,
                }
            }
        }
        let next = admit(next)?;
        if next.is_empty() {
            break;
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    let warning = truncated.then(|| {
        format!("_include/_revinclude matched more than {MAX_INCLUDED} resources; only the first {MAX_INCLUDED} are included")
    });
    Ok((out, warning))
}

/// The live resources among `wanted` (type, id), in that order: one search per type and chunk instead of a
/// read per reference (a page of reports with their results made dozens of reads).
fn read_all(
    store: &dyn ResourceStore,
    wanted: &[(String, String)],
) -> Result<Vec<StoredResource>, CoreError> {
    const CHUNK: usize = 200;
    let mut types: Vec<&str> = Vec::new();
    for (t, _) in wanted {
        if !types.contains(&t.as_str()) {
            types.push(t);
        }
    }
    let mut found: std::collections::HashMap<(String, String), StoredResource> =
        std::collections::HashMap::with_capacity(wanted.len());
    for ty in types {
        let ids: Vec<&String> = wanted
            .iter()
            .filter(|(t, _)| t == ty)
            .map(|(_, id)| id)
            .collect();
        for chunk in ids.chunks(CHUNK) {
            let page = store.search(&SearchQuery {
                resource_type: Some(ty.to_string()),
                filters: vec![Filter {
                    any_of: chunk
                        .iter()
                        .map(|id| Predicate::Id((*id).clone()))
                        .collect(),
                }],
                count: chunk.len(),
                ..Default::default()
            })?;
            for r in page.matches {
                found.insert(key(&r), r);
            }
        }
    }
    Ok(wanted.iter().filter_map(|k| found.remove(k)).collect())
}

/// The body with only the requested elements (`_elements`) or summary (`_summary=text|data`), marked
/// SUBSETTED as the spec requires. Unchanged when neither applies.
pub fn subset<'a>(
    body: &'a [u8],
    elements: Option<&[String]>,
    summary: Option<Summary>,
) -> Cow<'a, [u8]> {
    if elements.is_none() && summary.is_none() {
        return Cow::Borrowed(body);
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(body) else {
        return Cow::Borrowed(body);
    };
    const ALWAYS: [&str; 3] = ["resourceType", "id", "meta"];
    match (elements, summary) {
        (Some(keep), _) => {
            obj.retain(|k, _| ALWAYS.contains(&k.as_str()) || keep.iter().any(|e| e == k))
        }
        (None, Some(Summary::Data)) => {
            obj.remove("text");
        }
        (None, Some(Summary::Text)) => {
            obj.retain(|k, _| ALWAYS.contains(&k.as_str()) || k == "text")
        }
        (None, Some(Summary::True)) => {
            let ty = obj
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let reg = continuum_fhir::registry::registry();
            obj.retain(|k, _| {
                ALWAYS.contains(&k.as_str())
                    || reg.is_summary_element(&ty, k.trim_start_matches('_'))
            });
        }
        (None, None) => {}
    }
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| json!([]));
        if let Some(t) = tags.as_array_mut() {
            t.push(json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}));
        }
    }
    match serde_json::to_vec(&Value::Object(obj)) {
        Ok(v) => Cow::Owned(v),
        Err(_) => Cow::Borrowed(body),
    }
}
