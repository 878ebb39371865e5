//! The landing page, the patient's summary with the dependent switcher, "who viewed my record" (P10) and the
//! staff workspace.
//!
//! Every piece of health information on these pages comes from a guarded search or read as the signed-in
//! account (so the access policy decides and the audit log records, as for the API); the switcher offers only
//! [`continuum_core::access::Access::reached_patients`]. The access log is shown for the account's own record
//! only: a dependent's log would name resources hidden from the proxy.

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use continuum_core::access::{Access, Interaction, PatientReach};
use continuum_core::fhir::Handling;
use continuum_core::CoreError;
use continuum_store::AuditQuery;
use serde_json::Value;

use super::csrf;
use super::session::{signed_in, SignedIn};
use super::views::{
    self, bundle_resources, concept, date, human_name, quantity, render, Allergy, Chrome,
    LabResult, LogRow, Medication, Person, Problem, Section,
};
use super::{blocking, form, now_us, see_other};
use crate::AppState;

/// The base URL written into the Bundles the pages search (they are parsed here, never sent).
const BASE: &str = "/fhir";
/// Latest laboratory results shown.
const RESULTS_SHOWN: usize = 20;
/// Entries shown in the access log; entries read to find them (the holder's own visits are left out).
const LOG_SHOWN: usize = 100;
const LOG_READ: usize = 1000;
const NOT_AT_THIS_LEVEL: &str = "Not available with your account's level of access. Ask your clinic about identity proofing for full access.";

pub(crate) async fn landing() -> Response {
    render(
        StatusCode::OK,
        &views::Landing {
            chrome: Chrome::anonymous(),
        },
    )
}

/// The patient a session is looking at: the one it switched to while still reachable, else its own record,
/// else the first it reaches.
fn current_patient(s: &SignedIn, reached: &[PatientReach]) -> Option<PatientReach> {
    let pick = |id: &str| reached.iter().find(|r| r.id == id).cloned();
    s.session
        .data
        .acting_for
        .as_deref()
        .and_then(pick)
        .or_else(|| s.account().patient.as_deref().and_then(pick))
        .or_else(|| reached.first().cloned())
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A search as the signed-in account; a refusal becomes the reason shown in place of the section.
fn section<T>(
    access: &Access,
    state: &AppState,
    resource_type: &str,
    query: &[(&str, &str)],
    row: impl Fn(&Value) -> T,
) -> Result<Section<T>, String> {
    if access.require(resource_type, Interaction::Search).is_err() {
        // not asked at all: a refused search would only add a refusal to the audit log on every visit
        return Ok(Section {
            rows: Vec::new(),
            unavailable: Some(NOT_AT_THIS_LEVEL.into()),
        });
    }
    let guarded = state.fhir.guarded(access);
    match guarded.search(BASE, Some(resource_type), &params(query), Handling::Lenient) {
        Ok(bundle) => Ok(Section {
            rows: bundle_resources(&bundle, resource_type)
                .iter()
                .map(row)
                .collect(),
            unavailable: None,
        }),
        Err(CoreError::Forbidden(_)) => Ok(Section {
            rows: Vec::new(),
            unavailable: Some(NOT_AT_THIS_LEVEL.into()),
        }),
        Err(CoreError::Internal(e)) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, resource_type, "portal section could not be loaded");
            Ok(Section {
                rows: Vec::new(),
                unavailable: Some("This part of the record could not be loaded.".into()),
            })
        }
    }
}

fn problem(c: &Value) -> Problem {
    Problem {
        name: concept(&c["code"]),
        status: c
            .get("clinicalStatus")
            .map(concept)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "status unknown".into()),
        onset: date(c.get("onsetDateTime").or_else(|| c.get("recordedDate"))),
    }
}

fn medication(m: &Value) -> Medication {
    let name = m
        .get("medicationCodeableConcept")
        .map(concept)
        .or_else(|| {
            m.pointer("/medicationReference/display")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    Medication {
        name,
        status: m
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        dosage: m
            .pointer("/dosageInstruction/0/text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        authored: date(m.get("authoredOn")),
    }
}

fn allergy(a: &Value) -> Allergy {
    let reactions: BTreeSet<String> = a
        .get("reaction")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("manifestation").and_then(Value::as_array))
        .flatten()
        .map(concept)
        .filter(|s| !s.is_empty())
        .collect();
    Allergy {
        name: concept(&a["code"]),
        criticality: a
            .get("criticality")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        reactions: reactions.into_iter().collect::<Vec<_>>().join(", "),
    }
}

fn lab_result(o: &Value) -> LabResult {
    let value = if let Some(q) = o.get("valueQuantity") {
        quantity(q)
    } else if let Some(c) = o.get("valueCodeableConcept") {
        concept(c)
    } else if let Some(s) = o.get("valueString").and_then(Value::as_str) {
        s.to_string()
    } else {
        String::new()
    };
    let range = o
        .pointer("/referenceRange/0")
        .map(|r| {
            if let Some(t) = r.get("text").and_then(Value::as_str) {
                return t.to_string();
            }
            let low = r.get("low").map(quantity).unwrap_or_default();
            let high = r.get("high").map(quantity).unwrap_or_default();
            match (low.is_empty(), high.is_empty()) {
                (false, false) => format!("{low} – {high}"),
                (false, true) => format!("at least {low}"),
                (true, false) => format!("up to {high}"),
                (true, true) => String::new(),
            }
        })
        .unwrap_or_default();
    let flag = o
        .pointer("/interpretation/0")
        .map(concept)
        .unwrap_or_default();
    LabResult {
        name: concept(&o["code"]),
        value,
        range,
        flag,
        date: date(o.get("effectiveDateTime").or_else(|| o.get("issued"))),
    }
}

fn demographics(p: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(b) = p.get("birthDate").and_then(Value::as_str) {
        out.push(("Date of birth".into(), b.to_string()));
    }
    if let Some(g) = p.get("gender").and_then(Value::as_str) {
        out.push(("Gender".into(), g.to_string()));
    }
    if let Some(a) = p.pointer("/address/0") {
        let text = a
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let mut parts: Vec<String> = a
                    .get("line")
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                for k in ["city", "state", "postalCode"] {
                    if let Some(v) = a.get(k).and_then(Value::as_str) {
                        parts.push(v.to_string());
                    }
                }
                parts.join(", ")
            });
        if !text.is_empty() {
            out.push(("Address".into(), text));
        }
    }
    for t in p
        .get("telecom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let label = match t.get("system").and_then(Value::as_str) {
            Some("phone") => "Phone",
            Some("email") => "E-mail",
            _ => continue,
        };
        if let Some(v) = t.get("value").and_then(Value::as_str) {
            out.push((label.into(), v.to_string()));
        }
    }
    out
}

pub(crate) async fn portal(State(state): State<AppState>, parts: Parts) -> Response {
    let s = match signed_in(&state, &parts).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if !s.is_patient() {
        return see_other("/workspace");
    }
    let reached = s.access.reached_patients();
    let current = current_patient(&s, &reached);
    let chrome = Chrome::for_user(&s);
    let fallback_chrome = chrome.clone();
    let csrf_token = s.session.data.csrf.clone();
    let own = s.account().patient.clone();
    let st = state.clone();
    let built = blocking(move || {
        let Some(current) = current else {
            return Ok(None);
        };
        let access = &s.access;
        let guarded = st.fhir.guarded(access);
        // names for the switcher: one search over everyone reached
        let mut names: HashMap<String, String> = HashMap::new();
        if reached.len() > 1 {
            let ids: Vec<&str> = reached.iter().map(|r| r.id.as_str()).collect();
            match guarded.search(
                BASE,
                Some("Patient"),
                &params(&[("_id", &ids.join(","))]),
                Handling::Lenient,
            ) {
                Ok(bundle) => {
                    for p in bundle_resources(&bundle, "Patient") {
                        if let Some(id) = p.get("id").and_then(Value::as_str) {
                            names.insert(id.to_string(), human_name(&p));
                        }
                    }
                }
                Err(CoreError::Internal(e)) => return Err(e),
                Err(_) => {}
            }
        }
        let patient = match guarded.read("Patient", &current.id) {
            Ok(r) => serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
            Err(CoreError::Internal(e)) => return Err(e),
            Err(_) => return Ok(None),
        };
        let id = current.id.as_str();
        let problems = section(
            access,
            &st,
            "Condition",
            &[("patient", id), ("_count", "100")],
            problem,
        )?;
        let medications = section(
            access,
            &st,
            "MedicationRequest",
            &[("patient", id), ("_sort", "-authoredon"), ("_count", "100")],
            medication,
        )?;
        let allergies = section(
            access,
            &st,
            "AllergyIntolerance",
            &[("patient", id), ("_count", "100")],
            allergy,
        )?;
        let count = RESULTS_SHOWN.to_string();
        let results = section(
            access,
            &st,
            "Observation",
            &[
                ("patient", id),
                ("category", "laboratory"),
                ("_sort", "-date"),
                ("_count", count.as_str()),
            ],
            lab_result,
        )?;
        let people = reached
            .iter()
            .map(|r| Person {
                id: r.id.clone(),
                name: names
                    .get(&r.id)
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .unwrap_or_else(|| "(name not recorded)".into()),
                current: r.id == current.id,
                own: own.as_deref() == Some(r.id.as_str()),
            })
            .collect();
        let name = Some(human_name(&patient)).filter(|n| !n.is_empty());
        Ok(Some(views::Portal {
            chrome,
            csrf: csrf_token,
            people,
            viewing_other: own.as_deref() != Some(current.id.as_str()),
            hidden_note: current.hide_sensitive,
            name: Some(name.unwrap_or_else(|| "(name not recorded)".into())),
            demographics: demographics(&patient),
            problems,
            medications,
            allergies,
            results,
        }))
    })
    .await;
    match built {
        Err(res) => res,
        Ok(Some(page)) => render(StatusCode::OK, &page),
        Ok(None) => render(
            StatusCode::OK,
            &views::Portal {
                chrome: fallback_chrome,
                csrf: String::new(),
                people: Vec::new(),
                viewing_other: false,
                hidden_note: false,
                name: None,
                demographics: Vec::new(),
                problems: Section::empty(),
                medications: Section::empty(),
                allergies: Section::empty(),
                results: Section::empty(),
            },
        ),
    }
}

pub(crate) async fn switch(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let mut s = match signed_in(&state, &parts).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let f = form(&body);
    if !csrf::session_form_ok(&parts, &state, f.get("csrf"), &s.session.data.csrf) {
        return views::forbidden_form(Chrome::for_user(&s));
    }
    let target = f.get("patient").cloned().unwrap_or_default();
    let reached = s.access.reached_patients();
    if !s.is_patient() || !reached.iter().any(|r| r.id == target) {
        return views::message_page(
            StatusCode::FORBIDDEN,
            Chrome::for_user(&s),
            "You cannot view that record",
            "Your account does not give you access to that person's record.",
        );
    }
    s.session.data.acting_for = if s.account().patient.as_deref() == Some(target.as_str()) {
        None
    } else {
        Some(target)
    };
    let st = state.clone();
    let session = s.session;
    match blocking(move || {
        st.auth
            .update_session(&session, now_us())
            .map_err(|e| e.to_string())
    })
    .await
    {
        Ok(()) => see_other("/portal"),
        Err(res) => res,
    }
}

fn action_words(subtype: &str) -> &'static str {
    match subtype {
        "read" | "vread" => "Opened",
        "search-type" => "Searched",
        "history" => "Looked at the history",
        "everything" => "Retrieved the whole record",
        "export" => "Exported",
        "create" | "transaction" => "Added",
        "update" | "patch" => "Changed",
        "delete" => "Removed",
        "break-glass" => "Emergency access",
        _ => "Other",
    }
}

/// The resource types an audit record names (never their ids), e.g. "Condition, Observation".
fn parts_of_record(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let types: BTreeSet<String> = v
        .get("entity")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/what/reference").and_then(Value::as_str))
        .map(|r| r.split('/').next().unwrap_or("").to_string())
        .filter(|t| !t.is_empty() && t != "*")
        .collect();
    types.into_iter().collect::<Vec<_>>().join(", ")
}

pub(crate) async fn access_log(State(state): State<AppState>, parts: Parts) -> Response {
    let s = match signed_in(&state, &parts).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if !s.is_patient() {
        return see_other("/workspace");
    }
    let chrome = Chrome::for_user(&s);
    // only the account's own record: never a dependent's
    let Some(own) = s.account().patient.clone() else {
        return render(
            StatusCode::OK,
            &views::AccessLog {
                chrome,
                has_record: false,
                rows: Vec::new(),
                truncated: false,
            },
        );
    };
    let me = s.account().id.clone();
    let st = state.clone();
    let built = blocking(move || {
        let found = st
            .fhir
            .store()
            .audit()
            .audit_search(&AuditQuery {
                patient: Some(own),
                limit: LOG_READ,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        let others: Vec<_> = found.iter().filter(|r| r.record.agent != me).collect();
        let truncated = others.len() > LOG_SHOWN || found.len() >= LOG_READ;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut rows = Vec::new();
        for r in others.into_iter().take(LOG_SHOWN) {
            let rec = &r.record;
            let who = match names.get(&rec.agent) {
                Some(n) => n.clone(),
                None => {
                    let n = match rec.agent.as_str() {
                        "system" => "Continuum (the system itself)".to_string(),
                        "anonymous" => "Unknown".to_string(),
                        id => match st.auth.by_id(id).map_err(|e| e.to_string())? {
                            Some(a) if a.roles.is_empty() => a.display_name,
                            Some(a) => format!("{} ({})", a.display_name, a.roles.join(", ")),
                            None => "A removed account".to_string(),
                        },
                    };
                    names.insert(rec.agent.clone(), n.clone());
                    n
                }
            };
            rows.push(LogRow {
                when: views::instant(rec.recorded),
                who,
                action: action_words(&rec.subtype).to_string(),
                what: parts_of_record(&rec.body),
                outcome: if rec.outcome == "0" {
                    "Allowed".into()
                } else {
                    "Refused".into()
                },
            });
        }
        Ok((rows, truncated))
    })
    .await;
    match built {
        Err(res) => res,
        Ok((rows, truncated)) => render(
            StatusCode::OK,
            &views::AccessLog {
                chrome,
                has_record: true,
                rows,
                truncated,
            },
        ),
    }
}

pub(crate) async fn workspace(State(state): State<AppState>, parts: Parts) -> Response {
    let s = match signed_in(&state, &parts).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if s.is_patient() {
        return see_other("/portal");
    }
    let a = s.account();
    render(
        StatusCode::OK,
        &views::Workspace {
            chrome: Chrome::for_user(&s),
            name: a.display_name.clone(),
            username: a.username.clone(),
            roles: a.roles.clone(),
            admin: a.roles.iter().any(|r| r == "administrator"),
        },
    )
}
