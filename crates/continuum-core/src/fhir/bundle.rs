//! `transaction` and `batch` Bundles (FHIR R4 http.html#transaction).
//!
//! A transaction runs in one store transaction: ids are assigned and conditional creates/updates resolved
//! first, then every `urn:uuid:`/fullUrl and conditional reference in every resource (contained ones
//! included) is rewritten, then entries execute in the spec's order — DELETE, POST, PUT/PATCH, GET — and the
//! response lists them in the request's order. Any failure rolls everything back. A batch runs each entry in
//! its own transaction and reports failures per entry.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use continuum_fhir::registry::registry;
use continuum_store::{format_instant, Expect, WriteTx};
use serde_json::{json, Value};

use super::{
    check_body, match_criteria, parse_search, parse_version, write_tx, BundleWriter, Fhir,
    Handling, Matched, Prefer,
};
use crate::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// Execution order within a transaction.
    fn rank(self) -> u8 {
        match self {
            Verb::Delete => 0,
            Verb::Post => 1,
            Verb::Put | Verb::Patch => 2,
            Verb::Get => 3,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    index: usize,
    verb: Verb,
    resource_type: String,
    id: Option<String>,
    version: Option<String>,
    query: Option<String>,
    full_url: Option<String>,
    resource: Option<Value>,
    if_none_exist: Option<String>,
    if_match: Option<i64>,
    if_none_match: Option<String>,
}

/// What an entry produced, for its response entry.
struct Done {
    status: &'static str,
    location: Option<String>,
    version: Option<i64>,
    last_modified: Option<time::OffsetDateTime>,
    body: Option<Vec<u8>>,
}

fn bad(index: usize, msg: impl std::fmt::Display) -> CoreError {
    CoreError::BadRequest(format!("Bundle.entry[{index}]: {msg}"))
}

fn with_entry(index: usize, e: CoreError) -> CoreError {
    match e {
        CoreError::BadRequest(m) => CoreError::BadRequest(format!("Bundle.entry[{index}]: {m}")),
        CoreError::NotFound(m) => CoreError::NotFound(format!("Bundle.entry[{index}]: {m}")),
        CoreError::Gone(m) => CoreError::Gone(format!("Bundle.entry[{index}]: {m}")),
        CoreError::Conflict(m) => CoreError::Conflict(format!("Bundle.entry[{index}]: {m}")),
        CoreError::PreconditionFailed(m) => {
            CoreError::PreconditionFailed(format!("Bundle.entry[{index}]: {m}"))
        }
        CoreError::Unprocessable(mut issues) => {
            for i in &mut issues {
                i.expression = Some(match i.expression.take() {
                    Some(x) => format!("Bundle.entry[{index}].resource.{x}"),
                    None => format!("Bundle.entry[{index}]"),
                });
            }
            CoreError::Unprocessable(issues)
        }
        other => other,
    }
}

/// Strip the server base (or any absolute prefix ending in the path) from a request URL.
fn relative_url<'a>(base: &str, url: &'a str) -> &'a str {
    let url = url.strip_prefix(base).unwrap_or(url);
    url.trim_start_matches('/')
}

fn parse_entry(base: &str, index: usize, raw: &Value) -> Result<Entry, CoreError> {
    let request = raw
        .get("request")
        .ok_or_else(|| bad(index, "has no request"))?;
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(index, "request.method is missing"))?;
    let verb = match method {
        "GET" | "HEAD" => Verb::Get,
        "POST" => Verb::Post,
        "PUT" => Verb::Put,
        "PATCH" => Verb::Patch,
        "DELETE" => Verb::Delete,
        other => return Err(bad(index, format!("unknown request.method '{other}'"))),
    };
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(index, "request.url is missing"))?;
    let url = relative_url(base, url);
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (url, None),
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(op) = segs.iter().find(|s| s.starts_with('$')) {
        return Err(CoreError::NotImplemented(format!(
            "Bundle.entry[{index}]: the operation {op} cannot be run inside a bundle"
        )));
    }
    let (resource_type, id, version) = match segs.as_slice() {
        [t] => (t.to_string(), None, None),
        [t, i] => (t.to_string(), Some(i.to_string()), None),
        [t, i, "_history", v] => (t.to_string(), Some(i.to_string()), Some(v.to_string())),
        _ => {
            return Err(bad(
                index,
                format!("request.url '{url}' is not supported in a bundle"),
            ))
        }
    };
    if !registry().is_resource_type(&resource_type) {
        return Err(bad(
            index,
            format!("'{resource_type}' is not a FHIR R4 resource type"),
        ));
    }
    let resource = raw.get("resource").cloned();
    let needs_body = matches!(verb, Verb::Post | Verb::Put | Verb::Patch);
    if needs_body && resource.is_none() {
        return Err(bad(index, format!("{method} needs a resource")));
    }
    match verb {
        Verb::Post if id.is_some() || query.is_some() => {
            return Err(bad(
                index,
                "POST takes a type URL only (use ifNoneExist for conditions)",
            ))
        }
        Verb::Put | Verb::Patch | Verb::Delete if id.is_none() && query.is_none() => {
            return Err(bad(
                index,
                format!("{method} needs an id or search criteria in request.url"),
            ))
        }
        _ => {}
    }
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_string);
    let if_match = match text("ifMatch") {
        Some(v) => Some(
            parse_version(&v)
                .ok_or_else(|| bad(index, format!("ifMatch '{v}' is not a version")))?,
        ),
        None => None,
    };
    Ok(Entry {
        index,
        verb,
        resource_type,
        id,
        version,
        query,
        full_url: raw
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource,
        if_none_exist: text("ifNoneExist"),
        if_match,
        if_none_match: text("ifNoneMatch"),
    })
}

/// Rewrite every `reference` in `value`: fullUrls of bundle entries become `Type/id`; conditional references
/// (`Type?criteria`) are resolved inside the transaction and must match exactly one resource.
fn rewrite_references(
    tx: &mut dyn WriteTx,
    value: &mut Value,
    ids: &HashMap<String, String>,
    resolved: &mut HashMap<String, String>,
) -> Result<(), CoreError> {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "reference" {
                    if let Value::String(s) = v {
                        if let Some(target) = ids.get(s.as_str()) {
                            *s = target.clone();
                        } else if let Some((ty, q)) = s.split_once('?') {
                            if registry().is_resource_type(ty) && !ty.contains('/') {
                                let key = s.clone();
                                let target = match resolved.get(&key) {
                                    Some(t) => t.clone(),
                                    None => {
                                        let t = match match_criteria(tx, ty, q, false)? {
                                            Matched::One(r) => format!("{ty}/{}", r.id),
                                            Matched::None => {
                                                return Err(CoreError::PreconditionFailed(format!(
                                                    "a conditional reference to {ty} (on {}) matches no resource",
                                                    super::criteria_names(q)
                                                )))
                                            }
                                        };
                                        resolved.insert(key, t.clone());
                                        t
                                    }
                                };
                                *s = target;
                            }
                        }
                    }
                } else {
                    rewrite_references(tx, v, ids, resolved)?;
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                rewrite_references(tx, v, ids, resolved)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Register the identities an entry's fullUrl stands for.
fn map_full_url(ids: &mut HashMap<String, String>, e: &Entry, target: &str) {
    if let Some(full) = &e.full_url {
        ids.insert(full.clone(), target.to_string());
        // An absolute fullUrl `http://host/fhir/Type/id` is also referenced as `Type/id` inside the bundle.
        let segs: Vec<&str> = full.rsplitn(3, '/').collect();
        if !full.starts_with("urn:") && segs.len() == 3 && registry().is_resource_type(segs[1]) {
            let rel = format!("{}/{}", segs[1], segs[0]);
            if rel != target {
                ids.insert(rel, target.to_string());
            }
        }
    }
}

/// Resolved plan for a write entry.
enum Plan {
    /// Conditional create matched this existing resource: nothing to write.
    Existing(continuum_store::StoredResource),
    Write {
        id: String,
    },
    Delete {
        id: Option<String>,
    },
    Read,
}

fn resolve(
    fhir: &Fhir,
    tx: &mut dyn WriteTx,
    e: &Entry,
    ids: &mut HashMap<String, String>,
) -> Result<Plan, CoreError> {
    let ty = &e.resource_type;
    match e.verb {
        Verb::Post => {
            if let Some(q) = &e.if_none_exist {
                if let Matched::One(existing) = match_criteria(tx, ty, q, true)? {
                    map_full_url(ids, e, &format!("{ty}/{}", existing.id));
                    return Ok(Plan::Existing(existing));
                }
            }
            let id = fhir.next_id();
            map_full_url(ids, e, &format!("{ty}/{id}"));
            Ok(Plan::Write { id })
        }
        Verb::Put | Verb::Patch => {
            let id = match (&e.id, &e.query) {
                (Some(id), _) => id.clone(),
                (None, Some(q)) => match match_criteria(tx, ty, q, true)? {
                    Matched::One(r) => r.id,
                    Matched::None => e
                        .resource
                        .as_ref()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| fhir.next_id()),
                },
                (None, None) => return Err(CoreError::BadRequest("no target".into())),
            };
            map_full_url(ids, e, &format!("{ty}/{id}"));
            Ok(Plan::Write { id })
        }
        Verb::Delete => match (&e.id, &e.query) {
            (Some(id), _) => Ok(Plan::Delete {
                id: Some(id.clone()),
            }),
            (None, Some(q)) => match match_criteria(tx, ty, q, true)? {
                Matched::One(r) => Ok(Plan::Delete { id: Some(r.id) }),
                Matched::None => Ok(Plan::Delete { id: None }),
            },
            (None, None) => Err(CoreError::BadRequest("no target".into())),
        },
        Verb::Get => Ok(Plan::Read),
    }
}

fn patch_document(e: &Entry) -> Result<Value, CoreError> {
    // In a bundle a JSON Patch travels as a Binary resource holding the patch document.
    let r = e
        .resource
        .as_ref()
        .ok_or_else(|| CoreError::BadRequest("PATCH needs a resource".into()))?;
    if r.get("resourceType").and_then(Value::as_str) != Some("Binary") {
        return Err(CoreError::NotImplemented(
            "PATCH in a bundle must carry a JSON Patch as a Binary".into(),
        ));
    }
    let data = r.get("data").and_then(Value::as_str).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| CoreError::BadRequest("Binary.data is not base64".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CoreError::BadRequest(format!("the JSON Patch is not JSON: {e}")))
}

fn execute(
    fhir: &Fhir,
    tx: &mut dyn WriteTx,
    base: &str,
    e: &Entry,
    plan: Plan,
    resource: Option<Value>,
) -> Result<Done, CoreError> {
    let ty = e.resource_type.as_str();
    let loc = |id: &str, v: i64| format!("{ty}/{id}/_history/{v}");
    match plan {
        Plan::Existing(r) => Ok(Done {
            status: "200 OK",
            location: Some(loc(&r.id, r.version)),
            version: Some(r.version),
            last_modified: Some(r.last_updated),
            body: Some(r.body),
        }),
        Plan::Write { id } => {
            let mut doc = match e.verb {
                Verb::Patch => {
                    let current = match tx.read(ty, &id)? {
                        Some(c) if !c.deleted => c,
                        _ => return Err(CoreError::NotFound(format!("{ty}/{id} is not known"))),
                    };
                    let patch: json_patch::Patch = serde_json::from_value(patch_document(e)?)
                        .map_err(|err| CoreError::BadRequest(format!("not a JSON Patch: {err}")))?;
                    let mut doc: Value = serde_json::from_slice(&current.body)
                        .map_err(|err| CoreError::Internal(err.to_string()))?;
                    json_patch::patch(&mut doc, &patch).map_err(|err| {
                        CoreError::BadRequest(format!("the patch cannot be applied: {err}"))
                    })?;
                    check_body(ty, &doc)?;
                    doc
                }
                _ => resource.ok_or_else(|| CoreError::BadRequest("missing resource".into()))?,
            };
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("id".into(), Value::String(id.clone()));
            }
            let expect = match (e.verb, e.if_match) {
                (Verb::Post, _) => Expect::Absent,
                (_, Some(v)) => Expect::Version(v),
                _ => Expect::Any,
            };
            if let Some(inm) = &e.if_none_match {
                if let Some(cur) = tx.read(ty, &id)?.filter(|c| !c.deleted) {
                    if inm.trim() == "*" || parse_version(inm) == Some(cur.version) {
                        return Err(CoreError::PreconditionFailed(format!(
                            "{ty}/{id} exists (ifNoneMatch)"
                        )));
                    }
                }
            }
            let w = tx.put(&mut doc, expect)?;
            Ok(Done {
                status: if w.created { "201 Created" } else { "200 OK" },
                location: Some(loc(&id, w.version)),
                version: Some(w.version),
                last_modified: Some(w.last_updated),
                body: Some(w.body),
            })
        }
        Plan::Delete { id } => {
            if let Some(id) = id {
                let expect = e.if_match.map_or(Expect::Any, Expect::Version);
                tx.delete(ty, &id, expect)?;
            }
            Ok(Done {
                status: "204 No Content",
                location: None,
                version: None,
                last_modified: None,
                body: None,
            })
        }
        Plan::Read => {
            if let Some(id) = &e.id {
                let r = match &e.version {
                    None => tx.read(ty, id)?,
                    Some(_) => None, // vread inside a bundle: answered from the store outside the write path
                };
                let r = match (r, &e.version) {
                    (Some(r), None) if !r.deleted => r,
                    (Some(_), None) => {
                        return Err(CoreError::Gone(format!("{ty}/{id} was deleted")))
                    }
                    (None, Some(v)) => fhir.vread(ty, id, v)?,
                    _ => return Err(CoreError::NotFound(format!("{ty}/{id} is not known"))),
                };
                Ok(Done {
                    status: "200 OK",
                    location: None,
                    version: Some(r.version),
                    last_modified: Some(r.last_updated),
                    body: Some(r.body),
                })
            } else {
                let pairs: Vec<(String, String)> =
                    form_urlencoded::parse(e.query.as_deref().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                let parsed = parse_search(Some(ty), &pairs, Handling::Lenient)?;
                let page = tx.search(&parsed.query)?;
                let mut w = BundleWriter::new("searchset", page.total, &[]);
                for m in &page.matches {
                    w.match_entry(base, m);
                }
                Ok(Done {
                    status: "200 OK",
                    location: None,
                    version: None,
                    last_modified: None,
                    body: Some(w.finish()),
                })
            }
        }
    }
}

fn response_fields(done: &Done) -> Value {
    let mut response = json!({"status": done.status});
    if let Some(l) = &done.location {
        response["location"] = json!(l);
    }
    if let Some(v) = done.version {
        response["etag"] = json!(format!("W/\"{v}\""));
    }
    if let Some(t) = done.last_modified {
        response["lastModified"] = json!(format_instant(t));
    }
    json!({"response": response})
}

pub(super) fn process(
    fhir: &Fhir,
    base: &str,
    bundle: Value,
    prefer: Prefer,
) -> Result<Vec<u8>, CoreError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(CoreError::BadRequest(
            "POST to the base URL takes a Bundle".into(),
        ));
    }
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind != "transaction" && kind != "batch" {
        return Err(CoreError::BadRequest(format!(
            "only transaction and batch Bundles can be processed, not '{kind}'"
        )));
    }
    continuum_fhir::validate::validate_resource(&bundle).map_err(CoreError::Unprocessable)?;
    let raw_entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if kind == "transaction" {
        let entries = raw_entries
            .iter()
            .enumerate()
            .map(|(i, raw)| parse_entry(base, i, raw))
            .collect::<Result<Vec<_>, _>>()?;
        for e in &entries {
            if let (Some(r), Verb::Post | Verb::Put) = (&e.resource, e.verb) {
                check_body(&e.resource_type, r).map_err(|err| with_entry(e.index, err))?;
            }
        }
        let done = write_tx(fhir.store().as_ref(), |tx| {
            transaction(fhir, tx, base, &entries)
        })?;
        let mut w = BundleWriter::new("transaction-response", None, &[]);
        for d in &done {
            let body = if prefer == Prefer::Representation {
                d.body.as_deref()
            } else {
                None
            };
            w.entry(None, body, response_fields(d));
        }
        Ok(w.finish())
    } else {
        let mut w = BundleWriter::new("batch-response", None, &[]);
        for (i, raw) in raw_entries.iter().enumerate() {
            let result = parse_entry(base, i, raw).and_then(|e| {
                if let (Some(r), Verb::Post | Verb::Put) = (&e.resource, e.verb) {
                    check_body(&e.resource_type, r)?;
                }
                write_tx(fhir.store().as_ref(), |tx| {
                    let mut ids = HashMap::new();
                    let plan = resolve(fhir, tx, &e, &mut ids)?;
                    let mut resource = e.resource.clone();
                    if let Some(r) = resource.as_mut() {
                        rewrite_references(tx, r, &ids, &mut HashMap::new())?;
                    }
                    execute(fhir, tx, base, &e, plan, resource)
                })
            });
            match result {
                Ok(d) => {
                    let body = if prefer == Prefer::Representation {
                        d.body.as_deref()
                    } else {
                        None
                    };
                    w.entry(None, body, response_fields(&d));
                }
                Err(err) => {
                    let status = err.status();
                    let outcome = crate::fhir::outcome_of(&err);
                    let body = serde_json::to_vec(&outcome).unwrap_or_default();
                    w.entry(
                        None,
                        None,
                        json!({"response": {"status": format!("{status}"), "outcome": serde_json::from_slice::<Value>(&body).unwrap_or_default()}}),
                    );
                }
            }
        }
        Ok(w.finish())
    }
}

fn transaction(
    fhir: &Fhir,
    tx: &mut dyn WriteTx,
    base: &str,
    entries: &[Entry],
) -> Result<Vec<Done>, CoreError> {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut plans: Vec<Option<Plan>> = Vec::with_capacity(entries.len());
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].verb.rank());
    for _ in entries {
        plans.push(None);
    }
    // 1. identities: conditional creates/updates/deletes resolved, server ids assigned
    let mut touched = HashSet::new();
    for &i in &order {
        let e = &entries[i];
        let plan = resolve(fhir, tx, e, &mut ids).map_err(|err| with_entry(i, err))?;
        let identity = match &plan {
            Plan::Write { id } | Plan::Delete { id: Some(id) } => {
                Some(format!("{}/{id}", e.resource_type))
            }
            _ => None,
        };
        if let Some(identity) = identity {
            if !touched.insert(identity.clone()) {
                return Err(bad(
                    i,
                    format!("{identity} is the target of more than one entry"),
                ));
            }
        }
        plans[i] = Some(plan);
    }
    // 2. references
    let mut resources: Vec<Option<Value>> = entries.iter().map(|e| e.resource.clone()).collect();
    let mut resolved = HashMap::new();
    for (i, r) in resources.iter_mut().enumerate() {
        if let Some(r) = r {
            rewrite_references(tx, r, &ids, &mut resolved).map_err(|err| with_entry(i, err))?;
        }
    }
    // 3. execution in the spec's order, answers in the request's order
    let mut done: Vec<Option<Done>> = entries.iter().map(|_| None).collect();
    for &i in &order {
        let plan = plans[i]
            .take()
            .ok_or_else(|| CoreError::Internal("plan missing".into()))?;
        let d = execute(fhir, tx, base, &entries[i], plan, resources[i].take())
            .map_err(|err| with_entry(i, err))?;
        done[i] = Some(d);
    }
    done.into_iter()
        .map(|d| d.ok_or_else(|| CoreError::Internal("entry not executed".into())))
        .collect()
}
