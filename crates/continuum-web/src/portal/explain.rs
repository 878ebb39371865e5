//! The query-plan view for administrators (`/workspace/explain`): the SQL a FHIR search compiles to and the
//! plan the database chooses for it, to check that a slow search uses its indexes. Nothing is executed (plain
//! `EXPLAIN` / `EXPLAIN QUERY PLAN`), so no health information is read; the view is audited all the same,
//! since the plan quotes the search's values.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use continuum_core::audit::{self, Event, Outcome};

use super::blocking;
use super::session::administrator;
use super::views::{self, render};
use crate::AppState;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Form {
    /// `Type?params` (or `?params` for a system-wide search), as after the FHIR base URL.
    #[serde(default)]
    search: String,
}

pub(crate) async fn explain(
    State(state): State<AppState>,
    Query(form): Query<Form>,
    parts: Parts,
) -> Response {
    let (s, chrome) = match administrator(&state, &parts, "Query plans").await {
        Ok(found) => found,
        Err(res) => return res,
    };
    let search = form.search.trim().to_string();
    if search.is_empty() {
        return render(
            StatusCode::OK,
            &views::Explain {
                chrome,
                search,
                backend: state.fhir.store().backend(),
                plan: None,
                error: None,
            },
        );
    }
    let principal = s.access.principal.clone();
    let st = state.clone();
    let query = search.clone();
    let outcome = blocking(move || {
        // Accept a full URL or a path with or without the /fhir/ prefix, as copied from a browser or a log.
        let rel = query
            .split_once("/fhir/")
            .map_or(query.as_str(), |(_, rest)| rest)
            .trim_start_matches('/');
        let (path, params) = rel.split_once('?').unwrap_or((rel, ""));
        let resource_type = (!path.is_empty()).then_some(path);
        let params: Vec<(String, String)> = form_urlencoded::parse(params.as_bytes())
            .into_owned()
            .collect();
        let result = st
            .fhir
            .explain(resource_type, &params)
            .map_err(|e| match e.status() {
                s if s >= 500 => {
                    tracing::error!(error = %e, "explain failed");
                    (
                        s,
                        "The database could not plan this search (see the server log).".to_string(),
                    )
                }
                s => (s, e.to_string()),
            });
        let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
        let rec = audit::record(
            &principal,
            now,
            Event::Search,
            if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Refused
            },
            None,
            &[resource_type.unwrap_or("").to_string()],
            Some(&format!("explain {query}")),
            None,
        );
        st.fhir
            .store()
            .audit()
            .append_audit(&[rec])
            .map_err(|e| e.to_string())?;
        Ok(result)
    })
    .await;
    let result = match outcome {
        Ok(r) => r,
        Err(res) => return res,
    };
    let backend = state.fhir.store().backend();
    match result {
        Ok(plan) => render(
            StatusCode::OK,
            &views::Explain {
                chrome,
                search,
                backend,
                plan: Some(plan),
                error: None,
            },
        ),
        Err((status, message)) => render(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &views::Explain {
                chrome,
                search,
                backend,
                plan: None,
                error: Some(message),
            },
        ),
    }
}
