//! Browser sessions: a random secret in a cookie, the session itself server-side (`continuum-auth`, kept as a
//! token of kind `session`: idle and absolute limits, CSRF token, the dependent acted for).
//!
//! The cookie is `__Host-continuum_session` with `Secure` when the server speaks TLS (the prefix makes the
//! browser refuse it from any other host or path, or over plain HTTP), `continuum_session` without `Secure`
//! on plain HTTP (development); always `HttpOnly; SameSite=Lax; Path=/`. It carries no expiry: it ends with
//! the browser, and the server ends it sooner (idle, absolute limit, logout).

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use continuum_auth::{Account, AccountKind, Session};
use continuum_core::access::{Access, Principal};
use continuum_core::audit::{self, Event, Outcome};

use super::{blocking, see_other};
use crate::AppState;

pub(crate) const SESSION_COOKIE: &str = "continuum_session";
pub(crate) const SESSION_COOKIE_TLS: &str = "__Host-continuum_session";

/// The cookie name for `name` on this server: `__Host-` prefixed under TLS.
pub(crate) fn cookie_name(state: &AppState, name: &'static str) -> String {
    if state.config.tls {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

pub(crate) fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.tls {
        SESSION_COOKIE_TLS
    } else {
        SESSION_COOKIE
    }
}

/// The value of a cookie sent with the request (the first one of that name).
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Lax; Path=/`, `Secure` under TLS; `max_age` in seconds (0
/// deletes it), none for a cookie that ends with the browser.
pub(crate) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: Option<i64>,
) -> Option<HeaderValue> {
    let secure = if state.config.tls { "; Secure" } else { "" };
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Lax; Path=/{secure}{age}"
    ))
    .ok()
}

/// The client's network address, for throttling and the audit record.
pub(crate) fn address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// A signed-in visitor: the live session and what the access policy lets its account reach today.
pub(crate) struct SignedIn {
    pub session: Session,
    pub access: Access,
}

impl SignedIn {
    pub fn account(&self) -> &Account {
        &self.session.account
    }

    pub fn is_patient(&self) -> bool {
        self.session.account.kind == AccountKind::Patient
    }
}

/// The session behind the request's cookie, or a response sending the visitor to the sign-in page (no
/// cookie, unknown, idle too long, past the absolute limit, account disabled).
/// The signed-in administrator and the page chrome, or the response for anyone else: patients go to their
/// portal, other staff get 403 saying `what` is for administrators. The one gate of the admin pages.
pub(crate) async fn administrator(
    state: &AppState,
    parts: &Parts,
    what: &str,
) -> Result<(SignedIn, super::views::Chrome), Response> {
    let s = signed_in(state, parts).await?;
    if s.is_patient() {
        return Err(see_other("/portal"));
    }
    let chrome = super::views::Chrome::for_user(&s);
    if !s.account().roles.iter().any(|r| r == "administrator") {
        return Err(super::views::render(
            axum::http::StatusCode::FORBIDDEN,
            &super::views::Message {
                chrome,
                title: "Not permitted".into(),
                message: format!("{what} are for administrators."),
                link: Some(("/workspace".into(), "Back to the workspace".into())),
            },
        ));
    }
    Ok((s, chrome))
}

pub(crate) async fn signed_in(state: &AppState, parts: &Parts) -> Result<SignedIn, Response> {
    let name = session_cookie_name(state);
    let Some(value) = cookie(&parts.headers, name) else {
        return Err(see_other("/login"));
    };
    let address = address(parts);
    let st = state.clone();
    let found = blocking(move || {
        let now = time::OffsetDateTime::now_utc();
        let now_us = continuum_store::to_micros(now);
        let Some(session) = st
            .auth
            .session(&st.config.sessions, &value, now_us)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let access = Access::resolve(
            session.account.principal(address),
            &st.policy,
            st.fhir.store().as_ref(),
            now.date(),
            now_us,
        )
        .map_err(|e| e.to_string())?;
        Ok(Some(SignedIn { session, access }))
    })
    .await?;
    match found {
        Some(s) => Ok(s),
        None => {
            let mut res = see_other("/login");
            if let Some(v) = set_cookie(state, name, "", Some(0)) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            Err(res)
        }
    }
}

/// Append a login or logout record (a failure to record is logged; the answer stands either way).
pub(crate) fn audit_login(
    state: &AppState,
    principal: &Principal,
    event: Event,
    outcome: Outcome,
    detail: &str,
) {
    let rec = audit::record(
        principal,
        super::now_us(),
        event,
        outcome,
        None,
        &[],
        None,
        Some(detail),
    );
    if let Err(e) = state.fhir.store().audit().append_audit(&[rec]) {
        tracing::error!(error = %e, "could not record a sign-in event");
    }
}

/// Who a failed sign-in was, for the audit record: the account when the name is one (its id, so reports by
/// user show the attempts), otherwise `anonymous` with the name as typed (cut short).
pub(crate) fn attempted_principal(
    state: &AppState,
    username: &str,
    address: Option<String>,
) -> Principal {
    if let Ok(Some(a)) = state.auth.by_username(username) {
        return a.principal(address);
    }
    let mut p = Principal::system(&username.chars().take(64).collect::<String>());
    p.account_id = "anonymous".into();
    p.address = address;
    p
}
