//! FHIR RESTful interactions over the resource store: the rules of FHIR R4 §3.1.0 (http.html) that do not
//! depend on HTTP — version checks, conditional operations, id assignment, validation, JSON Patch, history,
//! search and Bundle processing. The web layer only translates HTTP to these calls and back.

mod bundle;
mod guarded;
pub mod params;
pub mod shape;
mod writer;

use std::sync::Arc;

use continuum_fhir::registry::registry;
use continuum_fhir::validate::validate_resource;
use continuum_store::{Expect, HistoryQuery, ResourceStore, StoreError, StoredResource, WriteTx};
use serde_json::Value;
use time::OffsetDateTime;

pub use continuum_store::PoolStatus;
pub use guarded::Guarded;
pub use params::{parse_search, Handling, ParsedSearch};
pub use writer::BundleWriter;

use crate::CoreError;

/// What the client asked to get back after a write (`Prefer: return=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefer {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

/// A version just written (or found by a conditional create).
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: OffsetDateTime,
    pub body: Vec<u8>,
    /// 201 rather than 200.
    pub created: bool,
}

impl Saved {
    fn from_stored(s: StoredResource, created: bool) -> Self {
        Saved {
            resource_type: s.resource_type,
            id: s.id,
            version: s.version,
            last_updated: s.last_updated,
            body: s.body,
            created,
        }
    }
}

/// Checks and records run inside a write transaction (the access policy and the audit record of a write
/// commit or roll back with it). The system's own writes use [`NoHook`].
pub(crate) trait WriteHook {
    /// Before an existing resource is changed (update, patch, delete); `None` when it does not exist yet.
    fn before(
        &mut self,
        tx: &mut dyn WriteTx,
        resource_type: &str,
        id: &str,
        current: Option<&StoredResource>,
    ) -> Result<(), CoreError>;
    /// After the new version (or deletion) is written.
    fn after(
        &mut self,
        tx: &mut dyn WriteTx,
        resource_type: &str,
        id: &str,
        body: &[u8],
    ) -> Result<(), CoreError>;
}

pub(crate) struct NoHook;

impl WriteHook for NoHook {
    fn before(
        &mut self,
        _: &mut dyn WriteTx,
        _: &str,
        _: &str,
        _: Option<&StoredResource>,
    ) -> Result<(), CoreError> {
        Ok(())
    }
    fn after(&mut self, _: &mut dyn WriteTx, _: &str, _: &str, _: &[u8]) -> Result<(), CoreError> {
        Ok(())
    }
}

/// Gets a search's matches and included resources; returns the included ones to show.
pub(crate) type SeenFn<'a> = dyn FnMut(&[StoredResource], Vec<StoredResource>) -> Result<Vec<StoredResource>, CoreError>
    + 'a;

/// Generates ids for new resources (passed in so tests can make them predictable).
pub type IdGenerator = Arc<dyn Fn() -> String + Send + Sync>;

/// The FHIR interactions, shared by every door.
#[derive(Clone)]
pub struct Fhir {
    store: Arc<dyn ResourceStore>,
    new_id: IdGenerator,
    /// Group commit of reads' audit records.
    audit: Arc<crate::audit_batch::AuditBatcher>,
}

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::BadRequest(msg.into())
}

/// Run a write closure that fails with a [`CoreError`]: the store sees [`StoreError::Aborted`], the caller gets
/// the real reason.
pub(crate) fn write_tx<T>(
    store: &dyn ResourceStore,
    mut work: impl FnMut(&mut dyn WriteTx) -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    let mut out: Option<T> = None;
    let mut failure: Option<CoreError> = None;
    let res = store.write(&mut |tx: &mut dyn WriteTx| {
        failure = None;
        match work(tx) {
            Ok(v) => {
                out = Some(v);
                Ok(())
            }
            // the store runs the closure again on contention
            Err(CoreError::Contention) => Err(StoreError::Contention),
            Err(e) => {
                failure = Some(e);
                Err(StoreError::Aborted)
            }
        }
    });
    match (res, failure, out) {
        (Err(StoreError::Aborted), Some(e), _) => Err(e),
        (Err(e), _, _) => Err(e.into()),
        (Ok(()), _, Some(v)) => Ok(v),
        (Ok(()), _, None) => Err(CoreError::Internal(
            "write finished without a result".into(),
        )),
    }
}

pub fn check_type(resource_type: &str) -> Result<(), CoreError> {
    if registry().is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(CoreError::NotFound(format!(
            "'{resource_type}' is not a FHIR R4 resource type"
        )))
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Check a resource body against the URL's type and the R4 definitions.
fn check_body(resource_type: &str, resource: &Value) -> Result<(), CoreError> {
    let obj = resource
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object holding a resource"))?;
    match obj.get("resourceType").and_then(Value::as_str) {
        None => return Err(bad("the resource has no resourceType")),
        Some(t) if t != resource_type => {
            return Err(bad(format!(
                "the body is a {t} but the URL names {resource_type}"
            )));
        }
        Some(_) => {}
    }
    validate_resource(resource).map_err(CoreError::Unprocessable)
}

/// Parse conditional criteria (`identifier=a|b&name=x`) strictly: criteria that cannot be evaluated must never
/// be ignored, or a conditional write would hit the wrong resources.
fn criteria(
    resource_type: &str,
    query: &str,
) -> Result<(continuum_store::SearchQuery, String), CoreError> {
    // Why a `Type?` prefix is accepted: R4 defines ifNoneExist / If-None-Exist as the query alone, but HL7's
    // own R4 examples (Bundle "xds") write `Patient?identifier=...`, and common servers accept both forms.
    let query = query
        .strip_prefix(resource_type)
        .and_then(|q| q.strip_prefix('?'))
        .or_else(|| query.strip_prefix('?'))
        .unwrap_or(query);
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if pairs.is_empty() {
        return Err(bad("conditional criteria are empty"));
    }
    let mut parsed = parse_search(Some(resource_type), &pairs, Handling::Strict)?;
    if parsed.query.filters.is_empty() {
        return Err(bad(
            "conditional criteria must contain at least one search parameter",
        ));
    }
    parsed.query.count = 2;
    parsed.query.total = false;
    pairs.sort();
    let key = format!(
        "{resource_type}?{}",
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    Ok((parsed.query, key))
}

/// Outcome of looking up conditional criteria inside a transaction.
pub(crate) enum Matched {
    None,
    One(StoredResource),
}

/// Look up conditional criteria inside a write transaction. `guard` serialises with other transactions using
/// the same criteria: needed when the outcome decides a write (conditional create/update/delete), and left out
/// for conditional references, which only read — guarding those makes bundles that share practitioners and
/// organisations wait on, and deadlock with, each other.
pub(crate) fn match_criteria(
    tx: &mut dyn WriteTx,
    resource_type: &str,
    query: &str,
    guard: bool,
) -> Result<Matched, CoreError> {
    let (q, key) = criteria(resource_type, query)?;
    if guard {
        tx.guard(&key)?;
    }
    let mut page = tx.search(&q)?;
    match page.matches.len() {
        0 => Ok(Matched::None),
        1 => Ok(Matched::One(page.matches.remove(0))),
        _ => Err(CoreError::PreconditionFailed(format!(
            "the criteria on {} match more than one {resource_type}",
            criteria_names(query)
        ))),
    }
}

/// The parameter names of conditional criteria, for error messages: the values (identifiers, names) are
/// health information and stay out of responses.
pub(crate) fn criteria_names(query: &str) -> String {
    let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    names.join(", ")
}

/// The version in an ETag (`W/"3"`, `"3"` or `3`).
pub fn parse_etag(v: &str) -> Option<i64> {
    parse_version(v)
}

pub(crate) fn parse_version(v: &str) -> Option<i64> {
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse().ok()
}

impl Fhir {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Fhir {
            audit: Arc::new(crate::audit_batch::AuditBatcher::new(store.clone())),
            store,
            new_id: Arc::new(|| uuid::Uuid::new_v4().to_string()),
        }
    }

    pub fn with_id_generator(mut self, new_id: IdGenerator) -> Self {
        self.new_id = new_id;
        self
    }

    pub fn store(&self) -> &Arc<dyn ResourceStore> {
        &self.store
    }

    /// Append audit records and wait until they are committed, batched with concurrent callers'.
    pub fn record_audit(
        &self,
        records: Vec<continuum_store::AuditRecord>,
    ) -> Result<(), CoreError> {
        Ok(self.audit.append(records)?)
    }

    /// Create with a server-assigned id; with `if_none_exist`, return the existing match instead (FHIR
    /// conditional create). Concurrent conditional creates with the same criteria are serialised by the
    /// store's guard, so they cannot both create.
    pub fn create(
        &self,
        resource_type: &str,
        resource: Value,
        if_none_exist: Option<&str>,
    ) -> Result<Saved, CoreError> {
        self.create_hooked(resource_type, resource, if_none_exist, &mut NoHook)
    }

    pub(crate) fn create_hooked(
        &self,
        resource_type: &str,
        mut resource: Value,
        if_none_exist: Option<&str>,
        hook: &mut dyn WriteHook,
    ) -> Result<Saved, CoreError> {
        check_type(resource_type)?;
        check_body(resource_type, &resource)?;
        let id = (self.new_id)();
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("id".into(), Value::String(id));
        }
        write_tx(self.store.as_ref(), |tx| {
            if let Some(query) = if_none_exist {
                if let Matched::One(existing) = match_criteria(tx, resource_type, query, true)? {
                    return Ok(Saved::from_stored(existing, false));
                }
            }
            let mut r = resource.clone();
            let w = tx.put(&mut r, Expect::Absent)?;
            let (_, id) = continuum_store::type_and_id(&r)?;
            hook.after(tx, resource_type, &id, &w.body)?;
            Ok(Saved {
                resource_type: resource_type.to_string(),
                id,
                version: w.version,
                last_updated: w.last_updated,
                body: w.body,
                created: true,
            })
        })
    }

    pub fn read(&self, resource_type: &str, id: &str) -> Result<StoredResource, CoreError> {
        check_type(resource_type)?;
        match self.store.read(resource_type, id)? {
            None => Err(CoreError::NotFound(format!(
                "{resource_type}/{id} is not known"
            ))),
            Some(r) if r.deleted => {
                Err(CoreError::Gone(format!("{resource_type}/{id} was deleted")))
            }
            Some(r) => Ok(r),
        }
    }

    pub fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version: &str,
    ) -> Result<StoredResource, CoreError> {
        check_type(resource_type)?;
        let not_found =
            || CoreError::NotFound(format!("{resource_type}/{id} has no version {version}"));
        let v: i64 = version.parse().map_err(|_| not_found())?;
        match self.store.vread(resource_type, id, v)? {
            None => Err(not_found()),
            Some(r) if r.deleted => Err(CoreError::Gone(format!(
                "version {v} of {resource_type}/{id} is a deletion"
            ))),
            Some(r) => Ok(r),
        }
    }

    /// Update (or create with the client's id). `if_match` is the version from an `If-Match` header.
    pub fn update(
        &self,
        resource_type: &str,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
    ) -> Result<Saved, CoreError> {
        self.update_hooked(resource_type, id, resource, if_match, &mut NoHook)
    }

    pub(crate) fn update_hooked(
        &self,
        resource_type: &str,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
        hook: &mut dyn WriteHook,
    ) -> Result<Saved, CoreError> {
        check_type(resource_type)?;
        check_body(resource_type, &resource)?;
        match resource.get("id").and_then(Value::as_str) {
            None => return Err(bad("the resource must carry its id in an update")),
            Some(body_id) if body_id != id => {
                return Err(bad(format!(
                    "the body's id '{body_id}' differs from the URL's id '{id}'"
                )));
            }
            Some(_) => {}
        }
        if !valid_id(id) {
            return Err(bad(format!("'{id}' is not a valid FHIR id")));
        }
        let expect = if_match.map_or(Expect::Any, Expect::Version);
        write_tx(self.store.as_ref(), |tx| {
            let current = tx.read(resource_type, id)?.filter(|c| !c.deleted);
            hook.before(tx, resource_type, id, current.as_ref())?;
            let mut r = resource.clone();
            let w = tx.put(&mut r, expect)?;
            hook.after(tx, resource_type, id, &w.body)?;
            Ok(Saved {
                resource_type: resource_type.to_string(),
                id: id.to_string(),
                version: w.version,
                last_updated: w.last_updated,
                body: w.body,
                created: w.created,
            })
        })
    }

    /// `PUT Type?criteria`: update the single match, create when none, 412 when several.
    pub fn conditional_update(
        &self,
        resource_type: &str,
        query: &str,
        resource: Value,
    ) -> Result<Saved, CoreError> {
        check_type(resource_type)?;
        check_body(resource_type, &resource)?;
        let body_id = resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let fresh = (self.new_id)();
        write_tx(self.store.as_ref(), |tx| {
            let id = match match_criteria(tx, resource_type, query, true)? {
                Matched::One(existing) => {
                    if let Some(b) = &body_id {
                        if *b != existing.id {
                            return Err(bad(format!(
                                "the body's id '{b}' differs from the matched resource {}",
                                existing.id
                            )));
                        }
                    }
                    existing.id
                }
                Matched::None => body_id.clone().unwrap_or_else(|| fresh.clone()),
            };
            let mut r = resource.clone();
            if let Some(obj) = r.as_object_mut() {
                obj.insert("id".into(), Value::String(id.clone()));
            }
            let w = tx.put(&mut r, Expect::Any)?;
            Ok(Saved {
                resource_type: resource_type.to_string(),
                id,
                version: w.version,
                last_updated: w.last_updated,
                body: w.body,
                created: w.created,
            })
        })
    }

    /// Delete; deleting something absent or already deleted succeeds (idempotent).
    pub fn delete(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Option<i64>, CoreError> {
        self.delete_hooked(resource_type, id, if_match, &mut NoHook)
    }

    pub(crate) fn delete_hooked(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
        hook: &mut dyn WriteHook,
    ) -> Result<Option<i64>, CoreError> {
        check_type(resource_type)?;
        let expect = if_match.map_or(Expect::Any, Expect::Version);
        write_tx(self.store.as_ref(), |tx| {
            let current = tx.read(resource_type, id)?.filter(|c| !c.deleted);
            hook.before(tx, resource_type, id, current.as_ref())?;
            let v = tx.delete(resource_type, id, expect)?;
            if v.is_some() {
                hook.after(tx, resource_type, id, &[])?;
            }
            Ok(v)
        })
    }

    /// `DELETE Type?criteria` (single-delete mode: several matches is 412).
    pub fn conditional_delete(
        &self,
        resource_type: &str,
        query: &str,
    ) -> Result<Option<i64>, CoreError> {
        check_type(resource_type)?;
        write_tx(self.store.as_ref(), |tx| {
            match match_criteria(tx, resource_type, query, true)? {
                Matched::None => Ok(None),
                Matched::One(existing) => Ok(tx.delete(
                    resource_type,
                    &existing.id,
                    Expect::Version(existing.version),
                )?),
            }
        })
    }

    /// JSON Patch (RFC 6902) applied to the current version, atomically.
    pub fn patch(
        &self,
        resource_type: &str,
        id: &str,
        patch: Value,
        if_match: Option<i64>,
    ) -> Result<Saved, CoreError> {
        self.patch_hooked(resource_type, id, patch, if_match, &mut NoHook)
    }

    pub(crate) fn patch_hooked(
        &self,
        resource_type: &str,
        id: &str,
        patch: Value,
        if_match: Option<i64>,
        hook: &mut dyn WriteHook,
    ) -> Result<Saved, CoreError> {
        check_type(resource_type)?;
        let patch: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|e| bad(format!("not a JSON Patch document: {e}")))?;
        write_tx(self.store.as_ref(), |tx| {
            let current = match tx.read(resource_type, id)? {
                None => {
                    return Err(CoreError::NotFound(format!(
                        "{resource_type}/{id} is not known"
                    )))
                }
                Some(c) if c.deleted => {
                    return Err(CoreError::Gone(format!("{resource_type}/{id} was deleted")))
                }
                Some(c) => c,
            };
            hook.before(tx, resource_type, id, Some(&current))?;
            if let Some(v) = if_match {
                if v != current.version {
                    return Err(CoreError::PreconditionFailed(format!(
                        "version {v} was expected but the current version is {}",
                        current.version
                    )));
                }
            }
            let mut doc: Value = serde_json::from_slice(&current.body)
                .map_err(|e| CoreError::Internal(format!("stored body unreadable: {e}")))?;
            json_patch::patch(&mut doc, &patch).map_err(|e| {
                CoreError::Unprocessable(vec![continuum_fhir::outcome::Issue {
                    severity: continuum_fhir::IssueSeverity::Error,
                    code: continuum_fhir::IssueType::Processing,
                    diagnostics: format!("the patch cannot be applied: {e}"),
                    expression: None,
                }])
            })?;
            if doc.get("id").and_then(Value::as_str) != Some(id)
                || doc.get("resourceType").and_then(Value::as_str) != Some(resource_type)
            {
                return Err(bad("a patch may not change the resource's type or id"));
            }
            check_body(resource_type, &doc)?;
            let w = tx.put(&mut doc, Expect::Version(current.version))?;
            hook.after(tx, resource_type, id, &w.body)?;
            Ok(Saved {
                resource_type: resource_type.to_string(),
                id: id.to_string(),
                version: w.version,
                last_updated: w.last_updated,
                body: w.body,
                created: false,
            })
        })
    }

    /// History at instance (`resource_type` and `id`), type or system level, as a `history` Bundle.
    pub fn history(
        &self,
        base: &str,
        resource_type: Option<&str>,
        id: Option<&str>,
        params: &[(String, String)],
    ) -> Result<Vec<u8>, CoreError> {
        self.history_with(base, resource_type, id, params, false, &mut |_| true)
    }

    /// History keeping only the versions `keep` accepts (the access policy hides versions whose labels the
    /// caller may not see; the total is then left out, as it would count them).
    pub(crate) fn history_with(
        &self,
        base: &str,
        resource_type: Option<&str>,
        id: Option<&str>,
        params: &[(String, String)],
        hide_total: bool,
        keep: &mut dyn FnMut(&StoredResource) -> bool,
    ) -> Result<Vec<u8>, CoreError> {
        if let Some(t) = resource_type {
            check_type(t)?;
        }
        let mut q = HistoryQuery {
            resource_type: resource_type.map(str::to_string),
            id: id.map(str::to_string),
            count: params::DEFAULT_COUNT,
            // counting a whole type's or the system's history is a full scan: only one resource's is counted
            total: id.is_some(),
            ..Default::default()
        };
        for (k, v) in params {
            match k.as_str() {
                "_count" => {
                    q.count = v
                        .parse::<usize>()
                        .map_err(|_| bad(format!("_count must be a number, not '{v}'")))?
                        .min(params::MAX_COUNT)
                }
                "_since" | "_at" => {
                    let (low, high) = continuum_fhir::datetime::date_range(v)
                        .ok_or_else(|| bad(format!("{k}: '{v}' is not a valid instant")))?;
                    if k == "_since" {
                        q.since = Some(continuum_store::from_micros(low));
                    } else {
                        q.at = Some(continuum_store::from_micros(high));
                    }
                }
                "_cursor" => q.before = Some(v.parse().map_err(|_| bad("invalid paging cursor"))?),
                "_format" | "_pretty" => {}
                other => return Err(bad(format!("history does not take the parameter {other}"))),
            }
        }
        if let (Some(t), Some(i)) = (resource_type, id) {
            if self.store.read(t, i)?.is_none() {
                return Err(CoreError::NotFound(format!("{t}/{i} is not known")));
            }
        }
        let page = self.store.history(&q)?;
        let path = match (resource_type, id) {
            (Some(t), Some(i)) => format!("{base}/{t}/{i}/_history"),
            (Some(t), None) => format!("{base}/{t}/_history"),
            _ => format!("{base}/_history"),
        };
        let links = writer::page_links(&path, params, page.next.map(|n| n.to_string()));
        let kept: Vec<&StoredResource> = page.entries.iter().filter(|e| keep(e)).collect();
        let total = if !hide_total && kept.len() == page.entries.len() {
            page.total
        } else {
            None
        };
        let mut w = BundleWriter::new("history", total, &links);
        for e in kept {
            w.history_entry(base, e);
        }
        Ok(w.finish())
    }

    /// Search as a `searchset` Bundle. `resource_type` is `None` for a system-wide search.
    pub fn search(
        &self,
        base: &str,
        resource_type: Option<&str>,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<Vec<u8>, CoreError> {
        if let Some(t) = resource_type {
            check_type(t)?;
        }
        let parsed = parse_search(resource_type, params, handling)?;
        let path = match resource_type {
            Some(t) => format!("{base}/{t}"),
            None => base.to_string(),
        };
        self.searchset(base, &path, params, parsed)
    }

    /// The SQL and database plan of a search (`continuum explain`), for administrators. Strict: a parameter
    /// that would be ignored is an error here, so the plan shown is the plan of the whole query.
    pub fn explain(
        &self,
        resource_type: Option<&str>,
        params: &[(String, String)],
    ) -> Result<String, CoreError> {
        if let Some(t) = resource_type {
            check_type(t)?;
        }
        let parsed = parse_search(resource_type, params, Handling::Strict)?;
        Ok(self.store.explain(&parsed.query)?)
    }

    /// Compartment search: `GET [base]/Patient/123/Observation?...` — the type's search restricted to the
    /// resources linked to the compartment's resource by the R4 CompartmentDefinition.
    pub fn compartment_search(
        &self,
        base: &str,
        compartment: &str,
        id: &str,
        resource_type: &str,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<Vec<u8>, CoreError> {
        let parsed = compartment_query(compartment, id, resource_type, params, handling)?;
        let path = format!("{base}/{compartment}/{id}/{resource_type}");
        self.searchset(base, &path, params, parsed)
    }

    /// `Patient/{id}/$everything`: the patient and every resource in the patient's compartment, paged.
    pub fn everything(
        &self,
        base: &str,
        patient_id: &str,
        params: &[(String, String)],
    ) -> Result<Vec<u8>, CoreError> {
        self.read("Patient", patient_id)?;
        let parsed = everything_query(patient_id, params)?;
        let path = format!("{base}/Patient/{patient_id}/$everything");
        self.searchset(base, &path, params, parsed)
    }

    fn searchset(
        &self,
        base: &str,
        path: &str,
        params: &[(String, String)],
        parsed: ParsedSearch,
    ) -> Result<Vec<u8>, CoreError> {
        self.searchset_with(base, path, params, parsed, &mut |_, inc| Ok(inc))
    }

    /// A searchset; `seen` gets the matches and the included resources and returns the included ones the
    /// caller may see (the access policy filters `_include`/`_revinclude` there and records what was shown).
    pub(crate) fn searchset_with(
        &self,
        base: &str,
        path: &str,
        params: &[(String, String)],
        parsed: ParsedSearch,
        seen: &mut SeenFn<'_>,
    ) -> Result<Vec<u8>, CoreError> {
        params::check_value_sets(&parsed.query, self.store.as_ref())?;
        let mut page = self.store.search(&parsed.query)?;
        let (next, previous) = params::page_cursors(&parsed.query, &mut page);
        // The matches first, then each round of `_include`/`_revinclude` as it is found, so that a resource
        // the caller may not see is never followed further (`:iterate`).
        seen(&page.matches, Vec::new())?;
        let (included, truncated) = if parsed.includes.is_empty() && parsed.revincludes.is_empty() {
            (Vec::new(), None)
        } else {
            shape::included(
                self.store.as_ref(),
                &page.matches,
                &parsed.includes,
                &parsed.revincludes,
                &mut |batch| seen(&[], batch),
            )?
        };
        let links = writer::search_links(path, params, next, previous);
        let mut w = BundleWriter::new("searchset", page.total, &links);
        let elements = parsed.elements.as_deref();
        for (mode, list) in [("match", &page.matches), ("include", &included)] {
            for r in list {
                let body = shape::subset(&r.body, elements, parsed.summary);
                let url = format!("{base}/{}/{}", r.resource_type, r.id);
                w.entry(
                    Some(&url),
                    Some(&body),
                    serde_json::json!({"search": {"mode": mode}}),
                );
            }
        }
        if !parsed.ignored.is_empty() {
            w.outcome_entry(&format!(
                "ignored unsupported search parameters: {}",
                parsed.ignored.join(", ")
            ));
        }
        if let Some(t) = truncated {
            w.outcome_entry(&t);
        }
        Ok(w.finish())
    }

    /// Process a `transaction` or `batch` Bundle.
    pub fn bundle(&self, base: &str, bundle: Value, prefer: Prefer) -> Result<Vec<u8>, CoreError> {
        bundle::process(self, base, bundle, prefer)
    }

    pub(crate) fn next_id(&self) -> String {
        (self.new_id)()
    }
}

/// The search behind `GET [base]/{compartment}/{id}/{type}`: the type's search restricted to the resources the
/// R4 CompartmentDefinition links to the compartment's resource.
pub(crate) fn compartment_query(
    compartment: &str,
    id: &str,
    resource_type: &str,
    params: &[(String, String)],
    handling: Handling,
) -> Result<ParsedSearch, CoreError> {
    check_type(compartment)?;
    check_type(resource_type)?;
    let Some(members) = registry().compartments.get(compartment) else {
        return Err(CoreError::NotFound(format!(
            "{compartment} does not define a compartment"
        )));
    };
    let link = members.get(resource_type).cloned().unwrap_or_default();
    let mut parsed = parse_search(Some(resource_type), params, handling)?;
    parsed.query.filters.push(continuum_store::Filter::one(
        continuum_store::Predicate::Compartment {
            target_type: compartment.to_string(),
            target_id: id.to_string(),
            params: link,
        },
    ));
    Ok(parsed)
}

/// The search behind `Patient/{id}/$everything`: every resource in the patient's compartment.
pub(crate) fn everything_query(
    patient_id: &str,
    params: &[(String, String)],
) -> Result<ParsedSearch, CoreError> {
    let members: Vec<(String, Vec<String>)> = registry()
        .compartments
        .get("Patient")
        .map(|m| m.iter().map(|(t, p)| (t.clone(), p.clone())).collect())
        .unwrap_or_default();
    let mut shaping: Vec<(String, String)> = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "_count" | "_cursor" | "_format" | "_pretty" | "_type" | "_elements" => {
                shaping.push((k.clone(), v.clone()))
            }
            "_since" => shaping.push(("_lastUpdated".into(), format!("ge{v}"))),
            other => {
                return Err(bad(format!(
                    "$everything does not take the parameter {other}"
                )))
            }
        }
    }
    let mut parsed = parse_search(None, &shaping, Handling::Strict)?;
    parsed.query.filters.push(continuum_store::Filter::one(
        continuum_store::Predicate::InCompartment {
            target_type: "Patient".into(),
            target_id: patient_id.to_string(),
            members,
        },
    ));
    Ok(parsed)
}

/// The OperationOutcome for an error (the web layer uses the same function, so the body is identical
/// wherever the error surfaces). Internal detail never leaves: 500s get a generic text.
pub fn outcome_of(err: &CoreError) -> Value {
    use continuum_fhir::{IssueType, OperationOutcome};
    let oo = match err {
        CoreError::BadRequest(m) => OperationOutcome::error(IssueType::Invalid, m.clone()),
        CoreError::Forbidden(m) => OperationOutcome::error(IssueType::Forbidden, m.clone()),
        CoreError::NotFound(m) => OperationOutcome::error(IssueType::NotFound, m.clone()),
        CoreError::Gone(m) => OperationOutcome::error(IssueType::Deleted, m.clone()),
        CoreError::Conflict(m) => OperationOutcome::error(IssueType::Conflict, m.clone()),
        CoreError::Contention => OperationOutcome::error(IssueType::Conflict, err.to_string()),
        CoreError::PreconditionFailed(m) => OperationOutcome::error(IssueType::Conflict, m.clone()),
        CoreError::Unprocessable(issues) => OperationOutcome {
            issues: issues.clone(),
        },
        CoreError::NotImplemented(m) => OperationOutcome::error(IssueType::NotSupported, m.clone()),
        CoreError::Internal(_) => {
            OperationOutcome::error(IssueType::Exception, "internal server error")
        }
    };
    oo.to_json()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::criteria;

    #[test]
    fn criteria_accept_a_type_prefix() {
        let plain = criteria("Patient", "identifier=http://x|1").unwrap().1;
        assert_eq!(
            criteria("Patient", "Patient?identifier=http://x|1")
                .unwrap()
                .1,
            plain
        );
        assert_eq!(
            criteria("Patient", "?identifier=http://x|1").unwrap().1,
            plain
        );
        // Another type's prefix is not stripped: it is an unknown parameter, never silently ignored.
        assert!(criteria("Patient", "Observation?identifier=http://x|1").is_err());
    }
}
