//! Audit reports for administrators (`/workspace/audit`): the audit log filtered by user, patient and period,
//! newest first. Looking at the log is itself an access and is recorded.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use continuum_core::audit::{self, Event, Outcome};
use continuum_store::{format_instant, from_micros, AuditQuery};

use super::blocking;
use super::session::administrator;
use super::views::{self, render};
use crate::AppState;

/// Rows on one page of the report.
const PAGE: usize = 200;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    user: String,
    #[serde(default)]
    patient: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn day_us(d: &str, end: bool) -> Result<Option<i64>, String> {
    let d = d.trim();
    if d.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date =
        time::Date::parse(d, &fmt).map_err(|_| format!("'{d}' is not a date (YYYY-MM-DD)"))?;
    let date = if end {
        date.next_day().ok_or("date out of range")?
    } else {
        date
    };
    Ok(Some(continuum_store::to_micros(
        date.midnight().assume_utc(),
    )))
}

pub(crate) async fn report(
    State(state): State<AppState>,
    Query(filters): Query<Filters>,
    parts: Parts,
) -> Response {
    let (s, chrome) = match administrator(&state, &parts, "Audit reports").await {
        Ok(found) => found,
        Err(res) => return res,
    };
    let principal = s.access.principal.clone();
    let st = state.clone();
    let user = filters.user.trim().to_string();
    let patient = filters.patient.trim().to_string();
    let (from, to) = (filters.from.clone(), filters.to.clone());
    let dates = day_us(&from, false).and_then(|f| Ok((f, day_us(&to, true)?)));
    let (from_us, to_us) = match dates {
        Ok(d) => d,
        Err(e) => {
            return render(
                StatusCode::BAD_REQUEST,
                &views::AuditReport {
                    chrome,
                    user: filters.user,
                    patient: filters.patient,
                    from: filters.from,
                    to: filters.to,
                    full: false,
                    rows: Vec::new(),
                    error: Some(e),
                },
            )
        }
    };
    let built = blocking(move || {
        let agent = if user.is_empty() {
            None
        } else {
            // a user name or an account id
            Some(
                match st.auth.by_username(&user).map_err(|e| e.to_string())? {
                    Some(a) => a.id,
                    None => user.clone(),
                },
            )
        };
        let q = AuditQuery {
            agent,
            patient: (!patient.is_empty()).then(|| patient.clone()),
            from: from_us,
            to: to_us,
            before_seq: None,
            limit: PAGE,
        };
        let store = st.fhir.store();
        let rows = store.audit().audit_search(&q).map_err(|e| e.to_string())?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for r in &rows {
            let rec = &r.record;
            let who = match names.get(&rec.agent) {
                Some(n) => n.clone(),
                None => {
                    let n = match st.auth.by_id(&rec.agent).map_err(|e| e.to_string())? {
                        Some(a) => a.username,
                        None => rec.agent.clone(),
                    };
                    names.insert(rec.agent.clone(), n.clone());
                    n
                }
            };
            out.push(views::AuditRow {
                seq: r.seq,
                when: format_instant(from_micros(rec.recorded)),
                who,
                patient: rec.patient.clone().unwrap_or_default(),
                action: rec.action.clone(),
                subtype: rec.subtype.clone(),
                outcome: match rec.outcome.as_str() {
                    "0" => "success".into(),
                    "4" => "refused".into(),
                    "8" => "failed".into(),
                    o => o.to_string(),
                },
            });
        }
        let query = format!("audit report user={user} patient={patient} from={from} to={to}");
        let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
        let rec = audit::record(
            &principal,
            now,
            Event::Search,
            Outcome::Success,
            (!patient.is_empty()).then_some(patient.as_str()),
            &["AuditEvent".to_string()],
            Some(&query),
            None,
        );
        store
            .audit()
            .append_audit(&[rec])
            .map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await;
    let rows = match built {
        Ok(rows) => rows,
        Err(res) => return res,
    };
    render(
        StatusCode::OK,
        &views::AuditReport {
            chrome,
            user: filters.user,
            patient: filters.patient,
            from: filters.from,
            to: filters.to,
            full: rows.len() >= PAGE,
            rows,
            error: None,
        },
    )
}
