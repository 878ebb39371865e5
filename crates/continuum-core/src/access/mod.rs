//! The one access policy, applied to every door: who may do which interaction on which resource type, and
//! whose records they reach (their own, their dependents', their patients', everyone's).
//!
//! Every check is expressed as search predicates added to the store query, so "hidden" means the same thing
//! for a read, a search, an include, a chain, `_has`, a count and `$everything`: a hidden resource is one the
//! restricted query does not find. Single reads and writes are checked by running `Type?_id=x` with the same
//! restriction.

pub mod policy;

use std::sync::Arc;

use continuum_fhir::fhirpath::extract_param;
use continuum_fhir::registry::registry;
use continuum_fhir::IndexValue;
use continuum_store::{Filter, Predicate, ResourceStore, SearchPage, SearchQuery, StoreError};
use serde_json::Value;

pub use policy::{age_on, Policy, ReachKind, Scope, Sees};

use crate::CoreError;

/// A FHIR interaction as SMART scopes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Interaction {
    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }
}

/// On what basis a user acts for another patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyBasis {
    /// Parent or guardian of a minor: what they see follows the age bands.
    Parent,
    /// An adult granted access to their record.
    Granted,
    /// A recorded legal representative.
    LegalRepresentative,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProxyGrant {
    /// Patient id acted for.
    pub patient: String,
    pub basis: ProxyBasis,
    /// Expiry (µs since the epoch); none when open-ended.
    #[serde(default)]
    pub expires: Option<i64>,
    #[serde(default)]
    pub revoked: bool,
}

/// Who is asking. Built by the web layer from a session or token, or by the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Account id (`system` for the server itself).
    pub account_id: String,
    pub username: String,
    pub kind: PrincipalKind,
    /// Client address, for the audit record.
    pub address: Option<String>,
    /// Scopes of the token used (OAuth clients), narrowing the role's; `None` for a first-party session.
    pub token_scopes: Option<Vec<Scope>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PrincipalKind {
    /// The server itself and its command line (import, seed, migrations): unrestricted.
    System,
    Staff {
        roles: Vec<String>,
        /// `Practitioner/{id}` the account is.
        practitioner: Option<String>,
        /// Patients opened with break-the-glass (still valid).
        break_glass: Vec<String>,
    },
    Patient {
        /// The account holder's own Patient id.
        patient: Option<String>,
        /// `basic` or `premium`.
        level: String,
        proxies: Vec<ProxyGrant>,
    },
}

impl Principal {
    pub fn system(what: &str) -> Principal {
        Principal {
            account_id: "system".into(),
            username: what.into(),
            kind: PrincipalKind::System,
            address: None,
            token_scopes: None,
        }
    }
}

/// A patient reached, and whether the sensitive part of their record is hidden.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientReach {
    pub id: String,
    pub hide_sensitive: bool,
}

/// Whose records a grant reaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Reach {
    All,
    Patients(Vec<PatientReach>),
    /// Care relationship: patients whose `general-practitioner` is one of `gp` (typed references) or whose
    /// `organization` is one of `orgs`, plus break-the-glass patients.
    Care {
        gp: Vec<(String, String)>,
        orgs: Vec<String>,
        extra: Vec<String>,
    },
    Nothing,
}

#[derive(Debug, Clone, PartialEq)]
struct Grant {
    scope: Scope,
    reach: Arc<Reach>,
}

/// A resolved principal: the grants that apply, ready to restrict queries.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    grants: Vec<Grant>,
    labels: Vec<(String, String)>,
    directory: Vec<String>,
    unrestricted: bool,
}

fn forbidden(m: impl Into<String>) -> CoreError {
    CoreError::Forbidden(m.into())
}

impl Access {
    /// The server itself.
    pub fn system(what: &str) -> Access {
        Access {
            principal: Principal::system(what),
            grants: Vec::new(),
            labels: Vec::new(),
            directory: Vec::new(),
            unrestricted: true,
        }
    }

    /// Work out what `principal` may reach today: roles' scopes, care relationships (looked up in the
    /// record), proxy grants against the dependents' ages on `today`.
    pub fn resolve(
        principal: Principal,
        policy: &Policy,
        store: &dyn ResourceStore,
        today: time::Date,
        now_us: i64,
    ) -> Result<Access, CoreError> {
        let mut grants = Vec::new();
        match &principal.kind {
            PrincipalKind::System => {
                let Some(scopes) = &principal.token_scopes else {
                    return Ok(Access::system(&principal.username));
                };
                // A backend service's token (SMART `system/` scopes): every patient's records, but only
                // the types and interactions its scopes name, with their search restrictions.
                let all = Arc::new(Reach::All);
                let grants = scopes
                    .iter()
                    .map(|s| Grant {
                        scope: s.clone(),
                        reach: all.clone(),
                    })
                    .collect();
                return Ok(Access {
                    principal,
                    grants,
                    labels: policy.labels(),
                    directory: policy.directory_types.clone(),
                    unrestricted: false,
                });
            }
            PrincipalKind::Staff {
                roles,
                practitioner,
                break_glass,
            } => {
                let mut care: Option<Arc<Reach>> = None;
                for role in roles {
                    let Some(rp) = policy.roles.get(role) else {
                        tracing::warn!(role, "account has a role the policy does not define");
                        continue;
                    };
                    let reach = match rp.reach {
                        ReachKind::All => Arc::new(Reach::All),
                        ReachKind::None => Arc::new(Reach::Nothing),
                        ReachKind::Care => match &care {
                            Some(c) => c.clone(),
                            None => {
                                let c = Arc::new(care_reach(
                                    store,
                                    practitioner.as_deref(),
                                    break_glass,
                                )?);
                                care = Some(c.clone());
                                c
                            }
                        },
                    };
                    for s in &rp.scopes {
                        grants.push(Grant {
                            scope: s.clone(),
                            reach: reach.clone(),
                        });
                    }
                }
            }
            PrincipalKind::Patient {
                patient,
                level,
                proxies,
            } => {
                let mut reached = Vec::new();
                if let Some(p) = patient {
                    reached.push(PatientReach {
                        id: p.clone(),
                        hide_sensitive: false,
                    });
                }
                for g in proxies {
                    if g.revoked || g.expires.is_some_and(|e| e <= now_us) {
                        continue;
                    }
                    let sees = match g.basis {
                        ProxyBasis::Granted => policy.granted_proxy_sees,
                        ProxyBasis::LegalRepresentative => policy.legal_representative_sees,
                        ProxyBasis::Parent => {
                            let birth = store
                                .read("Patient", &g.patient)?
                                .filter(|r| !r.deleted)
                                .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                                .and_then(|v| {
                                    v.get("birthDate")
                                        .and_then(Value::as_str)
                                        .map(str::to_string)
                                });
                            // no birth date: the age cannot be checked, so nothing is shown
                            match birth.as_deref().and_then(|b| age_on(b, today)) {
                                Some(age) => policy.parent_sees(age),
                                None => Sees::Nothing,
                            }
                        }
                    };
                    match sees {
                        Sees::Nothing => {}
                        Sees::All | Sees::NotSensitive => {
                            // a patient reached twice keeps the wider view
                            let hide = sees == Sees::NotSensitive;
                            match reached.iter_mut().find(|r| r.id == g.patient) {
                                Some(r) => r.hide_sensitive &= hide,
                                None => reached.push(PatientReach {
                                    id: g.patient.clone(),
                                    hide_sensitive: hide,
                                }),
                            }
                        }
                    }
                }
                let reach = Arc::new(Reach::Patients(reached));
                for s in policy.patient_levels.get(level).into_iter().flatten() {
                    grants.push(Grant {
                        scope: s.clone(),
                        reach: reach.clone(),
                    });
                }
            }
        }
        // A token's scopes narrow the account's grants: keep a grant only for what both allow.
        if let Some(token_scopes) = &principal.token_scopes {
            grants = narrow(grants, token_scopes);
        }
        Ok(Access {
            principal,
            grants,
            labels: policy.labels(),
            directory: policy.directory_types.clone(),
            unrestricted: false,
        })
    }

    /// For a patient account: the patients it reaches (its own first, then those it acts for), and whether the
    /// sensitive part of each record is hidden from it. Empty for staff and the system.
    pub fn reached_patients(&self) -> Vec<PatientReach> {
        self.grants
            .iter()
            .find_map(|g| match &*g.reach {
                Reach::Patients(list) => Some(list.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// True when every grant reaches every patient unfiltered for this type (whole-type history, bundles).
    fn reaches_all(&self, resource_type: Option<&str>, i: Interaction) -> bool {
        if self.unrestricted {
            return true;
        }
        let matching: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| match resource_type {
                Some(t) => g.scope.allows(t, i),
                None => {
                    g.scope.resource_type.is_none() && g.scope.interactions.contains(i.letter())
                }
            })
            .collect();
        matching
            .iter()
            .any(|g| *g.reach == Reach::All && g.scope.filters.is_empty())
    }

    /// Refuse unless the principal has some permission for this interaction on this type.
    pub fn require(&self, resource_type: &str, i: Interaction) -> Result<(), CoreError> {
        if self.unrestricted || self.grants.iter().any(|g| g.scope.allows(resource_type, i)) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "you are not permitted to {} {resource_type} resources",
                verb(i)
            )))
        }
    }

    /// Operations over every type or the whole history need unrestricted reach.
    pub fn require_all(
        &self,
        resource_type: Option<&str>,
        i: Interaction,
        what: &str,
    ) -> Result<(), CoreError> {
        if self.reaches_all(resource_type, i) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "{what} is available only to users who may see every patient's records"
            )))
        }
    }

    /// The restriction on `resource_type` for interaction `i`: `Ok(None)` when unrestricted, `Ok(Some(filter))`
    /// to AND into the query, `Err(Forbidden)` when no grant allows the interaction at all.
    pub fn filter_for(
        &self,
        resource_type: &str,
        i: Interaction,
    ) -> Result<Option<Filter>, CoreError> {
        if self.unrestricted {
            return Ok(None);
        }
        self.require(resource_type, i)?;
        let in_compartment = !registry()
            .patient_compartment_params(resource_type)
            .is_empty()
            || resource_type == "Patient";
        let mut any_of = Vec::new();
        for g in self
            .grants
            .iter()
            .filter(|g| g.scope.allows(resource_type, i))
        {
            let reach = self.reach_predicate(&g.reach, resource_type, in_compartment);
            let mut all: Vec<Predicate> = g.scope.filters.iter().map(filter_predicate).collect();
            match reach {
                ReachPredicate::Unrestricted => {}
                ReachPredicate::Nothing => continue,
                ReachPredicate::Only(p) => all.push(p),
            }
            if all.is_empty() {
                return Ok(None);
            }
            any_of.push(if all.len() == 1 {
                all.remove(0)
            } else {
                Predicate::All(all)
            });
        }
        if any_of.is_empty() {
            // allowed in principle, but reaches nobody's: an empty result, not an error (no existence leak)
            any_of.push(Predicate::Any(Vec::new()));
        }
        Ok(Some(Filter { any_of }))
    }

    fn reach_predicate(&self, reach: &Reach, ty: &str, in_compartment: bool) -> ReachPredicate {
        let params = || registry().patient_compartment_params(ty).to_vec();
        match reach {
            Reach::All => ReachPredicate::Unrestricted,
            Reach::Nothing => ReachPredicate::Nothing,
            Reach::Patients(_) if !in_compartment => {
                if self.directory.iter().any(|d| d == ty) {
                    ReachPredicate::Unrestricted
                } else {
                    ReachPredicate::Nothing
                }
            }
            Reach::Care { .. } if !in_compartment => ReachPredicate::Unrestricted,
            Reach::Patients(list) => {
                let mut any = Vec::new();
                for p in list {
                    let member = if ty == "Patient" {
                        Predicate::Id(p.id.clone())
                    } else {
                        Predicate::Compartment {
                            target_type: "Patient".into(),
                            target_id: p.id.clone(),
                            params: params(),
                        }
                    };
                    any.push(if p.hide_sensitive {
                        Predicate::All(vec![
                            member,
                            Predicate::NoSecurityLabel {
                                labels: self.labels.clone(),
                            },
                        ])
                    } else {
                        member
                    });
                }
                if any.is_empty() {
                    ReachPredicate::Nothing
                } else {
                    ReachPredicate::Only(Predicate::Any(any))
                }
            }
            Reach::Care { gp, orgs, extra } => {
                let mut of_patient = Vec::new();
                for (t, id) in gp {
                    of_patient.push(Predicate::Reference {
                        param: "general-practitioner".into(),
                        target_type: Some(t.clone()),
                        target_id: id.clone(),
                    });
                }
                for o in orgs {
                    of_patient.push(Predicate::Reference {
                        param: "organization".into(),
                        target_type: Some("Organization".into()),
                        target_id: o.clone(),
                    });
                }
                let mut any = Vec::new();
                if ty == "Patient" {
                    any.extend(of_patient);
                    any.extend(extra.iter().map(|p| Predicate::Id(p.clone())));
                } else {
                    if !of_patient.is_empty() {
                        for param in params() {
                            any.push(Predicate::Chain {
                                param,
                                targets: vec![(
                                    "Patient".into(),
                                    vec![Filter {
                                        any_of: of_patient.clone(),
                                    }],
                                )],
                            });
                        }
                    }
                    for p in extra {
                        any.push(Predicate::Compartment {
                            target_type: "Patient".into(),
                            target_id: p.clone(),
                            params: params(),
                        });
                    }
                }
                if any.is_empty() {
                    ReachPredicate::Nothing
                } else {
                    ReachPredicate::Only(Predicate::Any(any))
                }
            }
        }
    }

    /// Restrict a search: the searched type, and every type reached through chains and `_has`, so that no
    /// hidden resource can decide which visible ones match.
    pub fn restrict(&self, q: &mut SearchQuery, i: Interaction) -> Result<(), CoreError> {
        if self.unrestricted {
            return Ok(());
        }
        let Some(ty) = q.resource_type.clone() else {
            return Err(forbidden(
                "searching every resource type at once is available only to the system; search one type",
            ));
        };
        for f in &mut q.filters {
            for p in &mut f.any_of {
                self.restrict_nested(p)?;
            }
        }
        if let Some(f) = self.filter_for(&ty, i)? {
            q.filters.push(f);
        }
        Ok(())
    }

    fn restrict_nested(&self, p: &mut Predicate) -> Result<(), CoreError> {
        match p {
            Predicate::Chain { targets, .. } => {
                for (t, filters) in targets {
                    for f in filters.iter_mut() {
                        for inner in &mut f.any_of {
                            self.restrict_nested(inner)?;
                        }
                    }
                    if let Some(f) = self.filter_for(t, Interaction::Search)? {
                        filters.push(f);
                    }
                }
            }
            Predicate::Has {
                source_type,
                filters,
                ..
            } => {
                for f in filters.iter_mut() {
                    for inner in &mut f.any_of {
                        self.restrict_nested(inner)?;
                    }
                }
                if let Some(f) = self.filter_for(source_type, Interaction::Search)? {
                    filters.push(f);
                }
            }
            Predicate::All(ps) | Predicate::Any(ps) => {
                for inner in ps {
                    self.restrict_nested(inner)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Restrict `$everything` (a search over every type in a patient's compartment, the patient already
    /// checked visible): only the types the caller may search without a scope restriction, and without the
    /// labels hidden from them.
    pub fn restrict_everything(
        &self,
        q: &mut SearchQuery,
        patient_id: &str,
    ) -> Result<(), CoreError> {
        if self.unrestricted {
            return Ok(());
        }
        let mut types: Vec<String> = Vec::new();
        let mut hide = true;
        let members = registry()
            .compartments
            .get("Patient")
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        for t in members.iter().map(String::as_str).chain(["Patient"]) {
            let plain: Vec<&Grant> = self
                .grants
                .iter()
                .filter(|g| g.scope.allows(t, Interaction::Search) && g.scope.filters.is_empty())
                .collect();
            if plain.is_empty() || (!q.types.is_empty() && !q.types.iter().any(|x| x == t)) {
                continue;
            }
            if !types.iter().any(|x| x == t) {
                types.push(t.to_string());
            }
            for g in plain {
                let wide = match &*g.reach {
                    Reach::All | Reach::Care { .. } => true,
                    Reach::Patients(list) => {
                        list.iter().any(|p| p.id == patient_id && !p.hide_sensitive)
                    }
                    Reach::Nothing => false,
                };
                if wide {
                    hide = false;
                }
            }
        }
        if types.is_empty() {
            return Err(forbidden("you are not permitted to search this record"));
        }
        q.types = types;
        if hide {
            q.filters.push(Filter::one(Predicate::NoSecurityLabel {
                labels: self.labels.clone(),
            }));
        }
        Ok(())
    }

    /// Of these resources (all of one type), the ids the principal may see with interaction `i`.
    pub fn visible_ids(
        &self,
        search: &mut dyn FnMut(&SearchQuery) -> Result<SearchPage, StoreError>,
        resource_type: &str,
        ids: &[String],
        i: Interaction,
    ) -> Result<Vec<String>, CoreError> {
        if self.unrestricted || ids.is_empty() {
            return Ok(ids.to_vec());
        }
        let Some(filter) = (match self.filter_for(resource_type, i) {
            Ok(f) => f,
            Err(CoreError::Forbidden(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }) else {
            return Ok(ids.to_vec());
        };
        let mut out = Vec::new();
        for chunk in ids.chunks(200) {
            let q = SearchQuery {
                resource_type: Some(resource_type.to_string()),
                filters: vec![
                    Filter {
                        any_of: chunk.iter().map(|id| Predicate::Id(id.clone())).collect(),
                    },
                    filter.clone(),
                ],
                count: chunk.len(),
                ..Default::default()
            };
            out.extend(search(&q)?.matches.into_iter().map(|r| r.id));
        }
        Ok(out)
    }

    /// May the principal see (with interaction `i`) this one resource as it is now?
    pub fn may_see(
        &self,
        search: &mut dyn FnMut(&SearchQuery) -> Result<SearchPage, StoreError>,
        resource_type: &str,
        id: &str,
        i: Interaction,
    ) -> Result<bool, CoreError> {
        Ok(!self
            .visible_ids(search, resource_type, &[id.to_string()], i)?
            .is_empty())
    }

    /// Does this version's body carry a label hidden from some of the patients' proxies reached? Used for old
    /// versions (vread, history), whose labels may differ from the current version's.
    pub fn hides_version(&self, resource_type: &str, body: &[u8]) -> bool {
        if self.unrestricted || body.is_empty() {
            return false;
        }
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return true;
        };
        let labelled = doc
            .pointer("/meta/security")
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().any(|c| {
                    let sys = c.get("system").and_then(Value::as_str).unwrap_or("");
                    let code = c.get("code").and_then(Value::as_str).unwrap_or("");
                    self.labels.iter().any(|(s, k)| s == sys && k == code)
                })
            });
        if !labelled {
            return false;
        }
        let patients = patients_of(resource_type, &doc);
        self.grants.iter().any(|g| match &*g.reach {
            Reach::Patients(list) => list
                .iter()
                .any(|p| p.hide_sensitive && patients.contains(&p.id)),
            _ => false,
        })
    }
}

enum ReachPredicate {
    Unrestricted,
    Nothing,
    Only(Predicate),
}

fn filter_predicate(f: &Filter) -> Predicate {
    if f.any_of.len() == 1 {
        f.any_of[0].clone()
    } else {
        Predicate::Any(f.any_of.clone())
    }
}

fn verb(i: Interaction) -> &'static str {
    match i {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    }
}

/// Keep what both the account's grants and the token's scopes allow.
fn narrow(grants: Vec<Grant>, token: &[Scope]) -> Vec<Grant> {
    let mut out = Vec::new();
    for g in grants {
        for t in token {
            let ty = match (&g.scope.resource_type, &t.resource_type) {
                (None, None) => None,
                (Some(a), None) => Some(a.clone()),
                (None, Some(b)) => Some(b.clone()),
                (Some(a), Some(b)) if a == b => Some(a.clone()),
                _ => continue,
            };
            let interactions: String = g
                .scope
                .interactions
                .chars()
                .filter(|c| t.interactions.contains(*c))
                .collect();
            if interactions.is_empty() {
                continue;
            }
            let mut filters = g.scope.filters.clone();
            filters.extend(t.filters.iter().cloned());
            out.push(Grant {
                scope: Scope {
                    resource_type: ty,
                    interactions,
                    filters,
                },
                reach: g.reach.clone(),
            });
        }
    }
    out
}

/// The staff member's care relationships: their Practitioner and PractitionerRoles (as PCM references), and
/// the organisations of those roles.
fn care_reach(
    store: &dyn ResourceStore,
    practitioner: Option<&str>,
    break_glass: &[String],
) -> Result<Reach, CoreError> {
    let mut gp = Vec::new();
    let mut orgs = Vec::new();
    if let Some(p) = practitioner {
        gp.push(("Practitioner".to_string(), p.to_string()));
        let q = SearchQuery {
            resource_type: Some("PractitionerRole".into()),
            filters: vec![Filter::one(Predicate::Reference {
                param: "practitioner".into(),
                target_type: Some("Practitioner".into()),
                target_id: p.to_string(),
            })],
            count: 100,
            ..Default::default()
        };
        for role in store.search(&q)?.matches {
            gp.push(("PractitionerRole".to_string(), role.id.clone()));
            if let Ok(doc) = serde_json::from_slice::<Value>(&role.body) {
                for v in extract_param(&doc, "organization") {
                    if let IndexValue::Reference {
                        target_type: Some(t),
                        target_id: Some(id),
                        ..
                    } = v
                    {
                        if t == "Organization" && !orgs.contains(&id) {
                            orgs.push(id);
                        }
                    }
                }
            }
        }
    }
    Ok(Reach::Care {
        gp,
        orgs,
        extra: break_glass.to_vec(),
    })
}

/// The patients a stored body (empty for a deletion) belongs to, parsing only the members the Patient
/// compartment's parameters read (an audit record is written for every match of every search; parsing whole
/// bodies for it cost a tenth of a search).
pub fn patients_of_body(resource_type: &str, body: &[u8]) -> Vec<String> {
    let params = registry().patient_compartment_params(resource_type);
    let doc = if resource_type == "Patient" {
        continuum_fhir::fhirpath::parse_members(body, &|k| k == "id")
    } else if params.is_empty() || body.is_empty() {
        return Vec::new();
    } else {
        continuum_fhir::fhirpath::parse_for_params(resource_type, params, body)
    };
    doc.map(|doc| patients_of(resource_type, &doc))
        .unwrap_or_default()
}

/// The patients a resource belongs to (through the Patient compartment), for audit records and labels.
pub fn patients_of(resource_type: &str, doc: &Value) -> Vec<String> {
    if resource_type == "Patient" {
        return doc
            .get("id")
            .and_then(Value::as_str)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default();
    }
    let mut out: Vec<String> = Vec::new();
    for param in registry().patient_compartment_params(resource_type) {
        for v in extract_param(doc, param) {
            if let IndexValue::Reference {
                target_type: Some(t),
                target_id: Some(id),
                ..
            } = v
            {
                if t == "Patient" && !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    out
}
