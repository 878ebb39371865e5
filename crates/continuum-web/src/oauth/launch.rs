//! `POST /oauth/launch`: the EHR opens an app on a patient (SMART EHR launch). A staff member, authenticated
//! like any FHIR API caller (bearer token), names a patient (and optionally an encounter) they may see; the
//! answer is an opaque `launch` value, valid five minutes, that the app passes to `/oauth/authorize`, where it
//! is accepted only for the same user. Body: `{"patient": "<id>", "encounter": "<id>"}` (JSON) or the same
//! as a form.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use continuum_auth::oauth::{LaunchData, OAuthError, LAUNCH_TTL_SECS};
use continuum_core::access::{Interaction, PrincipalKind};
use serde_json::{json, Value};

use super::{error_response, field, form_fields, json_no_store, now_us, service};
use crate::fhir::Caller;
use crate::AppState;

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub(crate) async fn launch(
    State(state): State<AppState>,
    Caller(access): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let (patient, encounter) = if json_body {
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            return error_response(&OAuthError::InvalidRequest("the body is not JSON".into()));
        };
        let s = |n: &str| v.get(n).and_then(Value::as_str).map(str::to_string);
        (s("patient"), s("encounter"))
    } else {
        match form_fields(&body) {
            Ok(f) => (
                field(&f, "patient").map(str::to_string),
                field(&f, "encounter").map(str::to_string),
            ),
            Err(e) => return error_response(&e),
        }
    };
    let Some(patient) = patient.filter(|p| valid_id(p)) else {
        return error_response(&OAuthError::InvalidRequest(
            "patient (a Patient id) is required".into(),
        ));
    };
    if encounter.as_deref().is_some_and(|e| !valid_id(e)) {
        return error_response(&OAuthError::InvalidRequest(
            "encounter must be an Encounter id".into(),
        ));
    }
    if !matches!(access.principal.kind, PrincipalKind::Staff { .. }) {
        return error_response(&OAuthError::AccessDenied(
            "only staff open apps on a patient".into(),
        ));
    }
    let result = tokio::task::spawn_blocking(move || -> Result<Response, OAuthError> {
        let store = state.fhir.store().clone();
        let mut search = |q: &continuum_store::SearchQuery| store.search(q);
        let sees = |ty: &str,
                    id: &str,
                    search: &mut dyn FnMut(
            &continuum_store::SearchQuery,
        ) -> Result<
            continuum_store::SearchPage,
            continuum_store::StoreError,
        >| {
            access
                .may_see(search, ty, id, Interaction::Read)
                .map_err(|e| OAuthError::Server(e.to_string()))
        };
        if !sees("Patient", &patient, &mut search)? {
            return Ok(json_no_store(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "error_description": "no such patient"}),
            ));
        }
        if let Some(e) = &encounter {
            if !sees("Encounter", e, &mut search)? {
                return Ok(json_no_store(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "not_found", "error_description": "no such encounter"}),
                ));
            }
        }
        let token = service(&state).create_launch(
            &access.principal.account_id,
            &LaunchData {
                patient: patient.clone(),
                encounter: encounter.clone(),
            },
            now_us(),
        )?;
        Ok(json_no_store(
            StatusCode::OK,
            &json!({"launch": token, "expires_in": LAUNCH_TTL_SECS, "patient": patient}),
        ))
    })
    .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&OAuthError::Server(e.to_string())),
    }
}
