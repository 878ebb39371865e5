//! The population as plain resources with ids, for FHIR NDJSON files (`continuum seed --out DIR`): what a
//! server would have stored, so `continuum import DIR` or any bulk loader can take it as is.
//!
//! Every entry's id is the UUID of its `urn:uuid:` fullUrl; `urn:uuid:` references become `Type/id`, and
//! conditional references (`Slot?identifier=…`) the id of the shared resource they name. A POST with
//! `ifNoneExist` that names a resource already written is dropped, as a server would find it. Slots are held
//! back to the end, because family bundles rewrite some of them as busy (conditional PUT): one line per slot,
//! in its final state. What is held is bounded by the shared data (a few thousand resources), not by N.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::ChunkKind;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlattenError {
    #[error("entry {0} has no resource type")]
    NoType(usize),
    #[error("entry {0}: cannot give an id to a resource without a urn:uuid fullUrl or a PUT url")]
    NoId(usize),
    #[error("the reference '{0}' names nothing written before it")]
    Dangling(String),
}

/// Turns population bundles into resources with ids, remembering the shared ones.
#[derive(Default)]
pub struct Flattener {
    /// `Type?identifier=system|value` (and `Type?<ifNoneExist>`) → `Type/id`, for shared resources.
    shared: HashMap<String, String>,
    /// Slots by id, in their latest state.
    slots: BTreeMap<String, Value>,
}

fn map_references(
    v: &mut Value,
    local: &HashMap<String, String>,
    shared: &HashMap<String, String>,
) -> Result<(), FlattenError> {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if let (true, Value::String(s)) = (k == "reference", &*x) {
                    let target = if s.starts_with("urn:uuid:") {
                        local.get(s.as_str())
                    } else if s.contains('?') {
                        shared.get(s.as_str())
                    } else {
                        continue;
                    };
                    let target = target.ok_or_else(|| FlattenError::Dangling(s.clone()))?;
                    *x = Value::String(target.clone());
                } else {
                    map_references(x, local, shared)?;
                }
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter_mut()
            .try_for_each(|x| map_references(x, local, shared)),
        _ => Ok(()),
    }
}

impl Flattener {
    pub fn new() -> Self {
        Self::default()
    }

    /// The resources of one chunk, ids assigned and references resolved (Slots are kept for
    /// [`Flattener::finish`]).
    pub fn flatten(&mut self, kind: ChunkKind, bundle: Value) -> Result<Vec<Value>, FlattenError> {
        let Value::Object(mut b) = bundle else {
            return Ok(Vec::new());
        };
        let Some(Value::Array(entries)) = b.remove("entry") else {
            return Ok(Vec::new());
        };
        let register = kind != ChunkKind::Family;
        // Pass 1: identities.
        let mut local: HashMap<String, String> = HashMap::new();
        let mut keep: Vec<(String, String, Value)> = Vec::with_capacity(entries.len());
        for (i, mut e) in entries.into_iter().enumerate() {
            let Some(mut resource) = e.get_mut("resource").map(Value::take) else {
                continue;
            };
            let ty = resource["resourceType"]
                .as_str()
                .ok_or(FlattenError::NoType(i))?
                .to_string();
            let request = &e["request"];
            let url = request["url"].as_str().unwrap_or("");
            let full_url = e["fullUrl"].as_str().unwrap_or("").to_string();
            let found = request["ifNoneExist"]
                .as_str()
                .and_then(|q| self.shared.get(&format!("{ty}?{q}")))
                .cloned();
            let id = if let Some(existing) = found {
                // Already written by an earlier chunk: refer to it, write nothing.
                local.insert(full_url, existing);
                continue;
            } else if let Some(uuid) = full_url.strip_prefix("urn:uuid:") {
                uuid.to_string()
            } else if url.contains('?') {
                let target = self
                    .shared
                    .get(url)
                    .ok_or_else(|| FlattenError::Dangling(url.to_string()))?;
                target
                    .split_once('/')
                    .map(|(_, id)| id.to_string())
                    .ok_or(FlattenError::NoId(i))?
            } else if let Some((_, id)) = url.split_once('/') {
                id.to_string()
            } else {
                return Err(FlattenError::NoId(i));
            };
            let target = format!("{ty}/{id}");
            if !full_url.is_empty() {
                local.insert(full_url, target.clone());
            }
            if register {
                if let Some(q) = request["ifNoneExist"].as_str() {
                    self.shared.insert(format!("{ty}?{q}"), target.clone());
                }
                for ident in resource["identifier"].as_array().into_iter().flatten() {
                    if let (Some(s), Some(v)) = (ident["system"].as_str(), ident["value"].as_str())
                    {
                        self.shared
                            .insert(format!("{ty}?identifier={s}|{v}"), target.clone());
                    }
                }
            }
            if let Value::Object(m) = resource {
                // `id` right after `resourceType`, where people look for it.
                let mut with_id = serde_json::Map::with_capacity(m.len() + 1);
                let mut rest = m.into_iter();
                if let Some((k, v)) = rest.next() {
                    with_id.insert(k, v);
                }
                with_id.insert("id".into(), Value::String(id.clone()));
                with_id.extend(rest.filter(|(k, _)| k != "id"));
                resource = Value::Object(with_id);
            }
            keep.push((ty, id, resource));
        }
        // Pass 2: references.
        let mut out = Vec::with_capacity(keep.len());
        for (ty, id, mut resource) in keep {
            map_references(&mut resource, &local, &self.shared)?;
            if ty == "Slot" {
                self.slots.insert(id, resource);
            } else {
                out.push(resource);
            }
        }
        Ok(out)
    }

    /// The Slots, each in its final state (free or busy).
    pub fn finish(self) -> Vec<Value> {
        self.slots.into_values().collect()
    }
}
