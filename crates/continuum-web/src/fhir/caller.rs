//! Who is calling the FHIR API: a bearer token resolved to an account, then to what the access policy lets
//! that account reach today. The token is an opaque API token (`continuum admin create-token`) or a JWT access
//! token of the OAuth server (`crate::oauth::bearer`: verified, revocation checked, its scopes narrowing the
//! account's grants and `patient/` scopes confining it to the token's patient). Requests without a valid
//! token get 401 with a `WWW-Authenticate` challenge;
//! presenting an unknown or expired token is recorded in the audit log as a refused attempt.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use continuum_core::access::{Access, Principal};
use continuum_core::audit::{self, Event, Outcome};
use continuum_core::CoreError;
use continuum_fhir::IssueType;

use super::ApiError;
use crate::AppState;

/// The resolved access of the caller.
pub struct Caller(pub Arc<Access>);

fn unauthorized(msg: &str, invalid: bool) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, IssueType::Login, msg);
    e.challenge = Some(if invalid {
        "Bearer realm=\"continuum\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"continuum\""
    });
    e
}

pub(crate) fn client_address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let Some(header) = header else {
            return Err(unauthorized("this request needs a bearer token", false));
        };
        let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(|t| t.trim().to_string())
        else {
            return Err(unauthorized("only bearer tokens are accepted", false));
        };
        let address = client_address(parts);
        let urls = crate::oauth::urls(&parts.headers, state);
        let state = state.clone();
        let resolved = tokio::task::spawn_blocking(move || -> Result<Option<Access>, CoreError> {
            let now = time::OffsetDateTime::now_utc();
            let now_us = continuum_store::to_micros(now);
            // A JWT (three dot-separated parts) is an OAuth access token; anything else an opaque API token.
            let principal = if token.contains('.') {
                match crate::oauth::bearer::principal(
                    &state,
                    &token,
                    &urls,
                    address.clone(),
                    now_us,
                ) {
                    Ok(p) => Some(p),
                    Err(crate::oauth::bearer::Rejected::Refused(why)) => {
                        tracing::debug!(reason = %why, "access token refused");
                        None
                    }
                    Err(crate::oauth::bearer::Rejected::Internal(e)) => {
                        return Err(CoreError::Internal(e))
                    }
                }
            } else {
                state
                    .auth
                    .bearer(&token, now_us)
                    .map_err(|e| CoreError::Internal(e.to_string()))?
                    .map(|account| account.principal(address.clone()))
            };
            let Some(principal) = principal else {
                let mut anon = Principal::system("anonymous");
                anon.account_id = "anonymous".into();
                anon.address = address;
                let rec = audit::record(
                    &anon,
                    now_us,
                    Event::Login,
                    Outcome::Refused,
                    None,
                    &[],
                    None,
                    Some("unknown, expired or revoked bearer token"),
                );
                if let Err(e) = state.fhir.store().audit().append_audit(&[rec]) {
                    tracing::error!(error = %e, "could not record a refused token");
                }
                return Ok(None);
            };
            let access = Access::resolve(
                principal,
                &state.policy,
                state.fhir.store().as_ref(),
                now.date(),
                now_us,
            )?;
            Ok(Some(access))
        })
        .await
        .map_err(|e| ApiError::from(CoreError::Internal(format!("worker failed: {e}"))))?
        .map_err(ApiError::from)?;
        match resolved {
            Some(a) => Ok(Caller(Arc::new(a))),
            None => Err(unauthorized(
                "the bearer token is not valid (unknown, expired or revoked)",
                true,
            )),
        }
    }
}
