//! The patient portal and the staff workspace: server-rendered HTML pages (askama templates in
//! `templates/`, one stylesheet in `static/`, no JavaScript), browser sessions and CSRF protection.
//!
//! Pages read health information only through [`continuum_core::Fhir::guarded`], so the access policy (own
//! record, proxy age bands, sensitivity labels) and the audit log apply to them exactly as to the FHIR API.
//!
//! - `session`: the session cookie, resolving it to an account and its access, cookie attributes.
//! - `csrf`: per-session form tokens, the pre-session double-submit cookie, the Origin/Referer check.
//! - `account`: sign-in (password + TOTP, smart card), TOTP enrolment, logout, forgotten password and reset.
//! - `home`: the landing page, the patient's summary, the dependent switcher, "who viewed my record", the
//!   staff workspace.
//! - `views`: the template structs and the little formatting they need.

mod account;
mod audit;
mod csrf;
mod explain;
mod home;
mod session;
mod views;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::DefaultBodyLimit;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// The pages' Origin check (Origin, else Fetch Metadata, else Referer), for other doors' cookie-authenticated
/// forms such as the OAuth consent page: under `Referrer-Policy: no-referrer` browsers send `Origin: null`
/// on same-origin form posts, which a plain Origin comparison would refuse.
#[allow(unused_imports)]
pub(crate) use csrf::same_origin;

/// Largest form body a page accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::landing))
        .route("/static/portal.css", get(stylesheet))
        .route("/login", get(account::login_form).post(account::login))
        .route(
            "/login/card",
            get(|| async { see_other("/login") }).post(account::card_login),
        )
        .route(
            "/enroll-totp",
            get(account::enroll_form).post(account::enroll),
        )
        .route("/forgot", get(account::forgot_form).post(account::forgot))
        .route("/reset", get(account::reset_form).post(account::reset))
        .route("/logout", post(account::logout))
        .route("/portal", get(home::portal))
        .route("/portal/switch", post(home::switch))
        .route("/portal/access-log", get(home::access_log))
        .route("/workspace", get(home::workspace))
        .route("/workspace/audit", get(audit::report))
        .route("/workspace/explain", get(explain::explain))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// True when this server holds synthetic demonstration data (`CONTINUUM_DEMO=1`, set by `continuum demo`);
/// read once. Pages then say so prominently.
pub(crate) fn demo() -> bool {
    static DEMO: OnceLock<bool> = OnceLock::new();
    *DEMO.get_or_init(|| {
        std::env::var("CONTINUUM_DEMO")
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes"))
    })
}

async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../static/portal.css"),
    )
        .into_response()
}

/// A form body's fields (`application/x-www-form-urlencoded`), the first value of each name.
pub(crate) fn form(body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// The query string's parameters, the first value of each name.
pub(crate) fn query(parts: &Parts) -> HashMap<String, String> {
    form(parts.uri.query().unwrap_or("").as_bytes())
}

/// 303 See Other: after a form POST, and to send a visitor without a session to the sign-in page.
pub(crate) fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Microseconds since the epoch, now.
pub(crate) fn now_us() -> i64 {
    continuum_store::to_micros(time::OffsetDateTime::now_utc())
}

/// Run store work on the blocking pool (the store port is synchronous).
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, Response>
where
    F: FnOnce() -> Result<T, String> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(internal_error(&e)),
        Err(e) => Err(internal_error(&format!("worker failed: {e}"))),
    }
}

/// A 500 page; the detail goes to the log only (it may name internals, never health information).
pub(crate) fn internal_error(detail: &str) -> Response {
    tracing::error!(detail = %detail, "portal page failed");
    views::message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        views::Chrome::anonymous(),
        "Something went wrong",
        "The page could not be shown. Please try again in a moment.",
    )
}
