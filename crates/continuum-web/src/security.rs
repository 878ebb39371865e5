//! Security headers on every response: the API's, the pages', the errors' and the static files'.
//!
//! - `Content-Security-Policy`: only this origin's scripts, styles and images (plus `data:` images), no
//!   framing, no `<base>`, forms post only here. A handler that needs a different policy (none does today)
//!   may set its own header, which is then kept.
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (reset links carry a token in their
//!   query), `Cross-Origin-Opener-Policy: same-origin`, `X-Frame-Options: DENY` (older browsers).
//! - `Strict-Transport-Security` only when served over TLS (a plain-HTTP answer must not pin HTTPS).
//! - `Cache-Control: no-store` on everything but `/static/`: the FHIR API and the pages carry health
//!   information, which must not be kept by browsers or shared caches.
//!
//! CSRF tokens and the Origin check of cookie-authenticated writes live with the pages (`portal::csrf`).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Paths whose responses may be cached (CSS and other assets without health information).
pub(crate) const STATIC_PREFIX: &str = "/static/";

/// Adds the security headers to every response.
pub(crate) async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let cacheable = req.uri().path().starts_with(STATIC_PREFIX);
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if state.config.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if !cacheable {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
