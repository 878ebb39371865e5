//! The FHIR interactions as a user meets them: every call checked by the access policy and recorded in the
//! audit log. Every door (the REST API, pages, exports) calls these; the unguarded [`Fhir`] methods are for
//! the server's own bulk work (import, seed), which records one audit event per operation instead.
//!
//! Hidden means hidden: a resource the caller may not see answers exactly like one that does not exist (same
//! status, same message), in reads, writes, searches, includes, chains, `_has`, counts, history and
//! `$everything`.

use std::collections::BTreeSet;

use continuum_store::{SearchPage, SearchQuery, StoreError, StoredResource, WriteTx};
use serde_json::Value;

use super::{
    check_type, compartment_query, everything_query, parse_search, Fhir, Handling, Prefer, Saved,
    WriteHook,
};
use crate::access::{patients_of_body, Access, Interaction};
use crate::audit::{self, Event, Outcome};
use crate::CoreError;

/// [`Fhir`] seen through one caller's access.
pub struct Guarded<'a> {
    fhir: &'a Fhir,
    access: &'a Access,
}

fn not_known(resource_type: &str, id: &str) -> CoreError {
    CoreError::NotFound(format!("{resource_type}/{id} is not known"))
}

fn now_us() -> i64 {
    continuum_store::to_micros(time::OffsetDateTime::now_utc())
}

fn patients_in(r: &StoredResource) -> Vec<String> {
    patients_of_body(&r.resource_type, &r.body)
}

/// Checks and records a write inside its transaction.
struct Hook<'a> {
    access: &'a Access,
    event: Event,
    write: Interaction,
}

impl Hook<'_> {
    fn visible(
        &self,
        tx: &mut dyn WriteTx,
        resource_type: &str,
        id: &str,
        i: Interaction,
    ) -> Result<bool, CoreError> {
        let mut search = |q: &SearchQuery| tx.search(q);
        self.access.may_see(&mut search, resource_type, id, i)
    }
}

impl WriteHook for Hook<'_> {
    fn before(
        &mut self,
        tx: &mut dyn WriteTx,
        resource_type: &str,
        id: &str,
        current: Option<&StoredResource>,
    ) -> Result<(), CoreError> {
        if current.is_none() || self.access.is_unrestricted() {
            return Ok(());
        }
        if self.visible(tx, resource_type, id, self.write)? {
            return Ok(());
        }
        if self.visible(tx, resource_type, id, Interaction::Read)? {
            Err(CoreError::Forbidden(format!(
                "you are not permitted to change {resource_type}/{id}"
            )))
        } else {
            Err(not_known(resource_type, id))
        }
    }

    fn after(
        &mut self,
        tx: &mut dyn WriteTx,
        resource_type: &str,
        id: &str,
        body: &[u8],
    ) -> Result<(), CoreError> {
        // The new version must lie within what the writer may see: no writing into other patients' records.
        if !body.is_empty()
            && !self.access.is_unrestricted()
            && !self.visible(tx, resource_type, id, self.write)?
        {
            return Err(CoreError::Forbidden(format!(
                "you are not permitted to write this {resource_type}: it would be outside the records you may change"
            )));
        }
        let patients = patients_of_body(resource_type, body);
        let what = vec![format!("{resource_type}/{id}")];
        let now = tx.now();
        let now = continuum_store::to_micros(now);
        if patients.is_empty() {
            let rec = audit::record(
                &self.access.principal,
                now,
                self.event,
                Outcome::Success,
                None,
                &what,
                None,
                None,
            );
            tx.append_audit(&rec)?;
        }
        for p in &patients {
            let rec = audit::record(
                &self.access.principal,
                now,
                self.event,
                Outcome::Success,
                Some(p),
                &what,
                None,
                None,
            );
            tx.append_audit(&rec)?;
        }
        Ok(())
    }
}

impl Fhir {
    /// The interactions as `access` may use them.
    pub fn guarded<'a>(&'a self, access: &'a Access) -> Guarded<'a> {
        Guarded { fhir: self, access }
    }
}

impl Guarded<'_> {
    pub fn access(&self) -> &Access {
        self.access
    }

    /// Record accesses that only read: one row per patient touched (what "who viewed my record" lists), or one
    /// without a patient. The response is released only once this has committed.
    fn record_read(
        &self,
        event: Event,
        outcome: Outcome,
        patients: &BTreeSet<String>,
        resources: &[String],
        query: Option<&str>,
    ) -> Result<(), CoreError> {
        let now = now_us();
        let p = &self.access.principal;
        let mut recs = Vec::new();
        if patients.is_empty() {
            recs.push(audit::record(
                p, now, event, outcome, None, resources, query, None,
            ));
        }
        for patient in patients {
            recs.push(audit::record(
                p,
                now,
                event,
                outcome,
                Some(patient),
                resources,
                query,
                None,
            ));
        }
        self.fhir.record_audit(recs)?;
        Ok(())
    }

    /// Record a refusal, then return the error. A failure to record is logged: the refusal stands either way.
    fn refused(&self, event: Event, what: &str, err: CoreError) -> CoreError {
        let rec = audit::record(
            &self.access.principal,
            now_us(),
            event,
            Outcome::Refused,
            None,
            &[what.to_string()],
            None,
            Some(&err.to_string()),
        );
        if let Err(e) = self.fhir.record_audit(vec![rec]) {
            tracing::error!(error = %e, "could not record a refused access");
        }
        err
    }

    fn search_fn(&self) -> impl FnMut(&SearchQuery) -> Result<SearchPage, StoreError> + '_ {
        let store = self.fhir.store().clone();
        move |q: &SearchQuery| store.search(q)
    }

    /// Is the resource, as it is now, visible with interaction `i`?
    fn sees(&self, resource_type: &str, id: &str, i: Interaction) -> Result<bool, CoreError> {
        let mut search = self.search_fn();
        self.access.may_see(&mut search, resource_type, id, i)
    }

    pub fn read(&self, resource_type: &str, id: &str) -> Result<StoredResource, CoreError> {
        let what = format!("{resource_type}/{id}");
        let result = self.read_checked(resource_type, id, Interaction::Read);
        match result {
            Ok(r) => {
                let patients: BTreeSet<String> = patients_in(&r).into_iter().collect();
                self.record_read(Event::Read, Outcome::Success, &patients, &[what], None)?;
                Ok(r)
            }
            Err(e) => Err(self.refused(Event::Read, &what, e)),
        }
    }

    fn read_checked(
        &self,
        resource_type: &str,
        id: &str,
        i: Interaction,
    ) -> Result<StoredResource, CoreError> {
        check_type(resource_type)?;
        self.access.require(resource_type, i)?;
        match self.fhir.read(resource_type, id) {
            Ok(r) => {
                if self.sees(resource_type, id, i)? {
                    Ok(r)
                } else {
                    Err(not_known(resource_type, id))
                }
            }
            // a deletion is only admitted to those who may see everything of the type
            Err(CoreError::Gone(m)) if self.access.is_unrestricted() => Err(CoreError::Gone(m)),
            Err(CoreError::Gone(_)) => Err(not_known(resource_type, id)),
            Err(e) => Err(e),
        }
    }

    pub fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version: &str,
    ) -> Result<StoredResource, CoreError> {
        let what = format!("{resource_type}/{id}/_history/{version}");
        let result = (|| {
            if !self.access.is_unrestricted() {
                self.read_checked(resource_type, id, Interaction::Read)?;
            }
            let r = self.fhir.vread(resource_type, id, version)?;
            if self.access.hides_version(resource_type, &r.body) {
                return Err(CoreError::NotFound(format!(
                    "{resource_type}/{id} has no version {version}"
                )));
            }
            Ok(r)
        })();
        match result {
            Ok(r) => {
                let patients: BTreeSet<String> = patients_in(&r).into_iter().collect();
                self.record_read(Event::Vread, Outcome::Success, &patients, &[what], None)?;
                Ok(r)
            }
            Err(e) => Err(self.refused(Event::Vread, &what, e)),
        }
    }

    fn no_conditional(&self, what: &str) -> Result<(), CoreError> {
        if self.access.is_unrestricted() {
            Ok(())
        } else {
            // Conditional writes match on records the caller may not see: they would reveal them (a match)
            // or duplicate them (no match). Only the system's own integrations use them.
            Err(CoreError::Forbidden(format!(
                "{what} is available only to system integrations"
            )))
        }
    }

    pub fn create(
        &self,
        resource_type: &str,
        resource: Value,
        if_none_exist: Option<&str>,
    ) -> Result<Saved, CoreError> {
        let r = (|| {
            check_type(resource_type)?;
            self.access.require(resource_type, Interaction::Create)?;
            if if_none_exist.is_some() {
                self.no_conditional("conditional create")?;
            }
            let mut hook = Hook {
                access: self.access,
                event: Event::Create,
                write: Interaction::Create,
            };
            self.fhir
                .create_hooked(resource_type, resource, if_none_exist, &mut hook)
        })();
        r.map_err(|e| self.refused_write(Event::Create, resource_type, e))
    }

    fn refused_write(&self, event: Event, what: &str, e: CoreError) -> CoreError {
        match e {
            CoreError::Forbidden(_) | CoreError::NotFound(_) => self.refused(event, what, e),
            other => other,
        }
    }

    pub fn update(
        &self,
        resource_type: &str,
        id: &str,
        resource: Value,
        if_match: Option<i64>,
    ) -> Result<Saved, CoreError> {
        let what = format!("{resource_type}/{id}");
        let r = (|| {
            check_type(resource_type)?;
            self.access.require(resource_type, Interaction::Update)?;
            let mut hook = Hook {
                access: self.access,
                event: Event::Update,
                write: Interaction::Update,
            };
            let saved =
                self.fhir
                    .update_hooked(resource_type, id, resource, if_match, &mut hook)?;
            Ok(saved)
        })();
        r.map_err(|e| self.refused_write(Event::Update, &what, e))
    }

    pub fn conditional_update(
        &self,
        resource_type: &str,
        query: &str,
        resource: Value,
    ) -> Result<Saved, CoreError> {
        let r = (|| {
            check_type(resource_type)?;
            self.access.require(resource_type, Interaction::Update)?;
            self.no_conditional("conditional update")?;
            let saved = self
                .fhir
                .conditional_update(resource_type, query, resource)?;
            self.record_write(Event::Update, &saved.resource_type, &saved.id, &saved.body)?;
            Ok(saved)
        })();
        r.map_err(|e| self.refused_write(Event::Update, resource_type, e))
    }

    /// Audit of a system-only write that ran without a hook.
    fn record_write(
        &self,
        event: Event,
        resource_type: &str,
        id: &str,
        body: &[u8],
    ) -> Result<(), CoreError> {
        let patients: BTreeSet<String> =
            patients_of_body(resource_type, body).into_iter().collect();
        self.record_read(
            event,
            Outcome::Success,
            &patients,
            &[format!("{resource_type}/{id}")],
            None,
        )
    }

    pub fn delete(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Option<i64>, CoreError> {
        let what = format!("{resource_type}/{id}");
        let r = (|| {
            check_type(resource_type)?;
            self.access.require(resource_type, Interaction::Delete)?;
            let mut hook = Hook {
                access: self.access,
                event: Event::Delete,
                write: Interaction::Delete,
            };
            match self
                .fhir
                .delete_hooked(resource_type, id, if_match, &mut hook)
            {
                // deleting what one may not see answers like deleting what does not exist
                Err(CoreError::NotFound(_)) => Ok(None),
                other => other,
            }
        })();
        r.map_err(|e| self.refused_write(Event::Delete, &what, e))
    }

    pub fn conditional_delete(
        &self,
        resource_type: &str,
        query: &str,
    ) -> Result<Option<i64>, CoreError> {
        let r = (|| {
            check_type(resource_type)?;
            self.access.require(resource_type, Interaction::Delete)?;
            self.no_conditional("conditional delete")?;
            let v = self.fhir.conditional_delete(resource_type, query)?;
            self.record_read(
                Event::Delete,
                Outcome::Success,
                &BTreeSet::new(),
                &[resource_type.to_string()],
                Some(query),
            )?;
            Ok(v)
        })();
        r.map_err(|e| self.refused_write(Event::Delete, resource_type, e))
    }

    pub fn patch(
        &self,
        resource_type: &str,
        id: &str,
        patch: Value,
        if_match: Option<i64>,
    ) -> Result<Saved, CoreError> {
        let what = format!("{resource_type}/{id}");
        let r = (|| {
            check_type(resource_type)?;
            self.access.require(resource_type, Interaction::Update)?;
            let mut hook = Hook {
                access: self.access,
                event: Event::Patch,
                write: Interaction::Update,
            };
            match self
                .fhir
                .patch_hooked(resource_type, id, patch, if_match, &mut hook)
            {
                Err(CoreError::Gone(_)) if !self.access.is_unrestricted() => {
                    Err(not_known(resource_type, id))
                }
                other => other,
            }
        })();
        r.map_err(|e| self.refused_write(Event::Patch, &what, e))
    }

    pub fn history(
        &self,
        base: &str,
        resource_type: Option<&str>,
        id: Option<&str>,
        params: &[(String, String)],
    ) -> Result<Vec<u8>, CoreError> {
        let what = match (resource_type, id) {
            (Some(t), Some(i)) => format!("{t}/{i}/_history"),
            (Some(t), None) => format!("{t}/_history"),
            _ => "_history".to_string(),
        };
        let r = (|| {
            match (resource_type, id) {
                (Some(t), Some(i)) => {
                    if !self.access.is_unrestricted() {
                        self.read_checked(t, i, Interaction::Read)?;
                    }
                }
                (Some(t), None) => {
                    check_type(t)?;
                    self.access.require_all(
                        Some(t),
                        Interaction::Read,
                        "the history of a whole type",
                    )?
                }
                _ => self.access.require_all(
                    None,
                    Interaction::Read,
                    "the history of the whole system",
                )?,
            }
            let mut patients = BTreeSet::new();
            let access = self.access;
            let bundle = self.fhir.history_with(
                base,
                resource_type,
                id,
                params,
                !access.is_unrestricted(),
                &mut |r| {
                    if access.hides_version(&r.resource_type, &r.body) {
                        return false;
                    }
                    patients.extend(patients_in(r));
                    true
                },
            )?;
            Ok((bundle, patients))
        })();
        match r {
            Ok((bundle, patients)) => {
                self.record_read(Event::History, Outcome::Success, &patients, &[what], None)?;
                Ok(bundle)
            }
            Err(e) => Err(self.refused(Event::History, &what, e)),
        }
    }

    /// Search as a `searchset` Bundle, restricted to what the caller may see.
    pub fn search(
        &self,
        base: &str,
        resource_type: Option<&str>,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<Vec<u8>, CoreError> {
        let what = resource_type.unwrap_or("*").to_string();
        let query_text = encode_params(params);
        let r = (|| {
            if let Some(t) = resource_type {
                check_type(t)?;
            }
            let mut parsed = parse_search(resource_type, params, handling)?;
            self.access
                .restrict(&mut parsed.query, Interaction::Search)?;
            let path = match resource_type {
                Some(t) => format!("{base}/{t}"),
                None => base.to_string(),
            };
            self.shown_searchset(base, &path, params, parsed)
        })();
        self.finish_search(Event::Search, &what, &query_text, r)
    }

    fn finish_search(
        &self,
        event: Event,
        what: &str,
        query: &str,
        r: Result<(Vec<u8>, BTreeSet<String>), CoreError>,
    ) -> Result<Vec<u8>, CoreError> {
        match r {
            Ok((bundle, patients)) => {
                self.record_read(
                    event,
                    Outcome::Success,
                    &patients,
                    &[what.to_string()],
                    Some(query),
                )?;
                Ok(bundle)
            }
            Err(e) => Err(self.refused(event, what, e)),
        }
    }

    /// Run a restricted search; filter what `_include`/`_revinclude` add; return the bundle and the patients
    /// whose records it shows.
    fn shown_searchset(
        &self,
        base: &str,
        path: &str,
        params: &[(String, String)],
        parsed: super::ParsedSearch,
    ) -> Result<(Vec<u8>, BTreeSet<String>), CoreError> {
        let mut patients = BTreeSet::new();
        let access = self.access;
        let store = self.fhir.store().clone();
        let bundle =
            self.fhir
                .searchset_with(base, path, params, parsed, &mut |matches, included| {
                    for m in matches {
                        patients.extend(patients_in(m));
                    }
                    let shown = if access.is_unrestricted() {
                        included
                    } else {
                        let mut search = |q: &SearchQuery| store.search(q);
                        let mut by_type: std::collections::BTreeMap<String, Vec<String>> =
                            Default::default();
                        for r in &included {
                            by_type
                                .entry(r.resource_type.clone())
                                .or_default()
                                .push(r.id.clone());
                        }
                        let mut visible: BTreeSet<(String, String)> = BTreeSet::new();
                        for (t, ids) in by_type {
                            for id in
                                access.visible_ids(&mut search, &t, &ids, Interaction::Read)?
                            {
                                visible.insert((t.clone(), id));
                            }
                        }
                        included
                            .into_iter()
                            .filter(|r| visible.contains(&(r.resource_type.clone(), r.id.clone())))
                            .collect()
                    };
                    for r in &shown {
                        patients.extend(patients_in(r));
                    }
                    Ok(shown)
                })?;
        Ok((bundle, patients))
    }

    /// `GET [base]/{compartment}/{id}/{type}`.
    #[allow(clippy::too_many_arguments)]
    pub fn compartment_search(
        &self,
        base: &str,
        compartment: &str,
        id: &str,
        resource_type: &str,
        params: &[(String, String)],
        handling: Handling,
    ) -> Result<Vec<u8>, CoreError> {
        let what = format!("{compartment}/{id}/{resource_type}");
        let query_text = encode_params(params);
        let r = (|| {
            check_type(compartment)?;
            check_type(resource_type)?;
            if !self.access.is_unrestricted() {
                // the compartment's own resource must be visible, or the search would confirm it exists
                self.read_checked(compartment, id, Interaction::Read)?;
            }
            let mut parsed = compartment_query(compartment, id, resource_type, params, handling)?;
            self.access
                .restrict(&mut parsed.query, Interaction::Search)?;
            let path = format!("{base}/{compartment}/{id}/{resource_type}");
            self.shown_searchset(base, &path, params, parsed)
        })();
        self.finish_search(Event::Search, &what, &query_text, r)
    }

    /// `Patient/{id}/$everything`, restricted: the types the caller may search, without the labels hidden
    /// from them.
    pub fn everything(
        &self,
        base: &str,
        patient_id: &str,
        params: &[(String, String)],
    ) -> Result<Vec<u8>, CoreError> {
        let what = format!("Patient/{patient_id}/$everything");
        let r = (|| {
            if self.access.is_unrestricted() {
                self.fhir.read("Patient", patient_id)?;
            } else {
                self.read_checked("Patient", patient_id, Interaction::Read)?;
            }
            let mut parsed = everything_query(patient_id, params)?;
            if !self.access.is_unrestricted() {
                self.access
                    .restrict_everything(&mut parsed.query, patient_id)?;
            }
            self.shown_searchset(base, &what_path(base, patient_id), params, parsed)
        })();
        let query_text = encode_params(params);
        self.finish_search(Event::Everything, &what, &query_text, r)
    }

    /// A transaction or batch Bundle: for callers who may write every type in every record (system
    /// integrations), since its entries are processed inside one transaction with conditional references.
    pub fn bundle(&self, base: &str, bundle: Value, prefer: Prefer) -> Result<Vec<u8>, CoreError> {
        let r = (|| {
            for i in [
                Interaction::Create,
                Interaction::Read,
                Interaction::Update,
                Interaction::Delete,
                Interaction::Search,
            ] {
                self.access
                    .require_all(None, i, "transaction and batch Bundles")?;
            }
            let entries = bundle
                .get("entry")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let out = self.fhir.bundle(base, bundle, prefer)?;
            Ok((out, entries))
        })();
        match r {
            Ok((out, entries)) => {
                self.record_read(
                    Event::Transaction,
                    Outcome::Success,
                    &BTreeSet::new(),
                    &[format!("Bundle ({entries} entries)")],
                    None,
                )?;
                Ok(out)
            }
            Err(e) => Err(self.refused_write(Event::Transaction, "Bundle", e)),
        }
    }
}

fn what_path(base: &str, patient_id: &str) -> String {
    format!("{base}/Patient/{patient_id}/$everything")
}

fn encode_params(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}
