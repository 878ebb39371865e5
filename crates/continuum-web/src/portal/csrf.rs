//! Cross-site request forgery defences for every form POST, two of them together:
//!
//! 1. **A token in the form.** Signed-in forms carry the session's own random CSRF token (kept server-side
//!    with the session). Forms shown before there is a session (sign-in, smart card, TOTP enrolment,
//!    forgotten password, reset) use a *double-submit cookie*: the page sets `continuum_csrf`
//!    (`__Host-continuum_csrf` under TLS; `HttpOnly; SameSite=Lax`) to a random value and puts the same value
//!    in the form; the POST must bring both, equal. Another site can neither read the cookie nor, with the
//!    `__Host-` prefix, plant one. Tokens are compared in constant time.
//! 2. **The Origin check.** The request's `Origin` must be this server: the same host and port as the `Host`
//!    header (`https` under TLS), or the origin of the configured public base URL. Our own pages are served
//!    with `Referrer-Policy: no-referrer`, and under that policy browsers send `Origin: null` (and no
//!    `Referer`) even on a same-origin form POST (Fetch, "append a request `Origin` header"); for such a
//!    request the browser's Fetch Metadata must say `Sec-Fetch-Site: same-origin` (a header pages cannot set).
//!    Without `Origin` and Fetch Metadata (older browsers), the `Referer`'s origin must match. Anything else —
//!    a foreign or look-alike origin, `null` from another site or a sandboxed frame, `same-site` siblings, no
//!    header at all — is refused.

use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use continuum_auth::secret;

use super::session::{cookie, cookie_name, set_cookie};
use crate::AppState;

const PRE_SESSION_COOKIE: &str = "continuum_csrf";

/// Does the request come from a page of this server?
pub(crate) fn same_origin(parts: &Parts, state: &AppState) -> bool {
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").trim().to_string())
    };
    let origin = header_text("origin").filter(|o| o != "null");
    let claimed = match origin {
        Some(o) => o,
        None => match header_text("sec-fetch-site").as_deref() {
            // the browser itself vouches for it (Origin is `null` under our no-referrer policy)
            Some("same-origin") => return true,
            Some(_) => return false,
            None => {
                if header_text("origin").is_some() {
                    // `Origin: null` without Fetch Metadata: cannot be told apart from a sandboxed frame
                    return false;
                }
                match header_text("referer").as_deref().and_then(origin_of) {
                    Some(o) => o,
                    None => return false,
                }
            }
        },
    };
    let Some((scheme, authority)) = split_origin(&claimed) else {
        return false;
    };
    if state.config.tls && scheme != "https" {
        return false;
    }
    if let Some(base) = &state.config.public_base {
        if let Some((bs, ba)) = origin_of(base).as_deref().and_then(split_origin) {
            if bs == scheme && ba.eq_ignore_ascii_case(authority) {
                return true;
            }
        }
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    match host {
        Some(h) => !h.is_empty() && h.eq_ignore_ascii_case(authority),
        None => false,
    }
}

/// This server's origin for links sent out of band (the password reset mail): the configured public base
/// URL's origin, else the request's `Host` (set `--public-base` in production, so that a forged `Host`
/// cannot steer the link elsewhere).
pub(crate) fn public_origin(parts: &Parts, state: &AppState) -> String {
    if let Some(o) = state.config.public_base.as_deref().and_then(origin_of) {
        return o;
    }
    let scheme = if state.config.tls { "https" } else { "http" };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `scheme://authority` of a URL, without path, query or fragment.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(format!("{scheme}://{}", &rest[..end]))
}

/// `("https", "host:port")` of an origin; `None` for `null`, anything with a path or user info.
fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || authority.contains(['/', '@', '?', '#'])
    {
        return None;
    }
    Some((scheme, authority))
}

/// A signed-in form: the session's token matches and the request is same-origin.
pub(crate) fn session_form_ok(
    parts: &Parts,
    state: &AppState,
    sent: Option<&String>,
    expected: &str,
) -> bool {
    let token_ok = sent.is_some_and(|s| {
        !expected.is_empty() && secret::constant_time_eq(s.as_bytes(), expected.as_bytes())
    });
    // both are evaluated: no early answer that tells which check failed
    let origin_ok = same_origin(parts, state);
    token_ok & origin_ok
}

/// The pre-session token for a form: the visitor's double-submit cookie when it has a well-formed one,
/// otherwise a new one with the `Set-Cookie` to send.
pub(crate) fn pre_session_token(parts: &Parts, state: &AppState) -> (String, Option<HeaderValue>) {
    let name = cookie_name(state, PRE_SESSION_COOKIE);
    if let Some(v) = cookie(&parts.headers, &name).filter(|v| well_formed(v)) {
        return (v, None);
    }
    let token = secret::new_token();
    let set = set_cookie(state, &name, &token, None);
    (token, set)
}

/// A pre-session form: the cookie and the field are present, well-formed and equal, and the request is
/// same-origin.
pub(crate) fn pre_session_form_ok(parts: &Parts, state: &AppState, sent: Option<&String>) -> bool {
    let name = cookie_name(state, PRE_SESSION_COOKIE);
    let token_ok = match (cookie(&parts.headers, &name), sent) {
        (Some(c), Some(s)) => {
            well_formed(&c) && secret::constant_time_eq(c.as_bytes(), s.as_bytes())
        }
        _ => false,
    };
    let origin_ok = same_origin(parts, state);
    token_ok & origin_ok
}

/// Our tokens are 43 base64url characters; anything else was not made here.
fn well_formed(v: &str) -> bool {
    (32..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_split_strictly() {
        assert_eq!(
            origin_of("https://ehr.example.mil/portal?x=1").as_deref(),
            Some("https://ehr.example.mil")
        );
        assert_eq!(
            split_origin("http://127.0.0.1:8080"),
            Some(("http", "127.0.0.1:8080"))
        );
        assert_eq!(split_origin("null"), None);
        assert_eq!(split_origin("https://a@b"), None);
        assert_eq!(split_origin("javascript://x"), None);
        assert!(well_formed(&secret::new_token()));
        assert!(!well_formed("short"));
        assert!(!well_formed(&"a;b".repeat(20)));
    }
}
