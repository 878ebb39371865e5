//! OAuth 2 / SMART App Launch 2 for the FHIR API.
//!
//! - `GET /.well-known/smart-configuration` (also under `/fhir`): what this authorization server supports.
//! - `GET /oauth/authorize`, `POST /oauth/authorize`: the authorization code flow with PKCE (S256 only); the
//!   user signs in through the portal's session and approves on a consent page (`authorize`).
//! - `POST /oauth/token`: authorization code, refresh token (rotating) and client credentials (backend
//!   services with `private_key_jwt`); `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662)
//!   (`token`).
//! - `POST /oauth/launch`: the EHR opens an app on a patient (`launch`).
//! - `GET /oauth/jwks`: the public key access tokens are signed with.
//!
//! Access tokens are ES256 JWTs that `fhir::caller` verifies (`bearer`); their scopes narrow the account's
//! role grants, and `patient/` scopes confine them to the token's patient (`scopes`). The flows' state and
//! cryptography live in `continuum_auth::oauth`.

mod authorize;
pub(crate) mod bearer;
mod launch;
pub(crate) mod scopes;
mod token;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use continuum_auth::oauth::{OAuth, OAuthError};
use continuum_core::access::Principal;
use continuum_core::audit::{self, Event, Outcome};
use serde_json::{json, Value};

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(smart_configuration),
        )
        .route(
            "/oauth/authorize",
            get(authorize::show).post(authorize::decide),
        )
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(token::revoke))
        .route("/oauth/introspect", post(token::introspect))
        .route("/oauth/launch", post(launch::launch))
        .route("/oauth/jwks", get(jwks))
}

/// Where this server is, as clients see it.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    /// The FHIR base (the `aud` of every access token).
    pub fhir: String,
    /// The server's root: the token issuer.
    pub root: String,
}

impl Urls {
    pub fn token(&self) -> String {
        format!("{}/oauth/token", self.root)
    }

    /// `scheme://host[:port]` of the root, for Origin checks.
    pub fn origin(&self) -> &str {
        origin_of(&self.root)
    }
}

/// `scheme://authority` of an absolute URL.
pub(crate) fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// The public base (`--public-base`) when configured, else derived from the Host header like the FHIR API's
/// links; the root is the FHIR base without its `/fhir`.
pub(crate) fn urls(headers: &HeaderMap, state: &AppState) -> Urls {
    let fhir = match &state.config.public_base {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .unwrap_or("localhost");
            let scheme = if state.config.tls { "https" } else { "http" };
            format!("{scheme}://{host}/fhir")
        }
    };
    let root = fhir.strip_suffix("/fhir").unwrap_or(&fhir).to_string();
    Urls { fhir, root }
}

/// The client's address (for the audit log), when the server was started with connection info.
pub(crate) fn address(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

pub(crate) fn now_us() -> i64 {
    continuum_store::to_micros(time::OffsetDateTime::now_utc())
}

pub(crate) fn service(state: &AppState) -> OAuth {
    OAuth::new(state.fhir.store().clone())
}

/// A JSON answer that no cache may keep (tokens).
pub(crate) fn json_no_store(status: StatusCode, body: &Value) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// An OAuth error response (RFC 6749 §5.2): 401 with a challenge for client authentication failures, 500 for
/// our own failures (logged, never described), 400 otherwise.
pub(crate) fn error_response(e: &OAuthError) -> Response {
    let (status, description) = match e {
        OAuthError::InvalidClient(m) => (StatusCode::UNAUTHORIZED, m.as_str()),
        OAuthError::Server(detail) => {
            tracing::error!(detail = %detail, "OAuth request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server could not complete the request",
            )
        }
        OAuthError::InvalidRequest(m)
        | OAuthError::InvalidGrant(m)
        | OAuthError::UnauthorizedClient(m)
        | OAuthError::UnsupportedGrantType(m)
        | OAuthError::UnsupportedResponseType(m)
        | OAuthError::InvalidScope(m)
        | OAuthError::AccessDenied(m) => (StatusCode::BAD_REQUEST, m.as_str()),
    };
    let mut res = json_no_store(
        status,
        &json!({"error": e.code(), "error_description": description}),
    );
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"continuum\""),
        );
    }
    res
}

/// Form fields of a request body or query (`application/x-www-form-urlencoded`). A field sent twice is an
/// error (RFC 6749 §3.1): two values could be read differently by two checks.
pub(crate) fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.iter().any(|(x, _)| *x == k) {
            return Err(OAuthError::InvalidRequest(format!(
                "the parameter '{k}' is repeated"
            )));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Record an OAuth event (token issued, refused) in the audit log as a login.
pub(crate) fn audit_event(
    state: &AppState,
    account_id: &str,
    username: &str,
    address: Option<String>,
    outcome: Outcome,
    detail: &str,
) {
    let mut who = Principal::system(username);
    who.account_id = account_id.to_string();
    who.address = address;
    let rec = audit::record(
        &who,
        now_us(),
        Event::Login,
        outcome,
        None,
        &[],
        None,
        Some(detail),
    );
    if let Err(e) = state.fhir.store().audit().append_audit(&[rec]) {
        tracing::error!(error = %e, "could not record an OAuth event");
    }
}

/// The scopes this server understands, for discovery (clients are registered for a subset).
const SCOPES_SUPPORTED: &[&str] = &[
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "patient/*.read",
    "patient/*.write",
    "user/*.rs",
    "user/*.cruds",
    "user/*.read",
    "user/*.write",
    "system/*.rs",
    "system/*.cruds",
    "system/*.read",
];

async fn smart_configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let u = urls(&headers, &state);
    let body = json!({
        "issuer": u.root,
        "jwks_uri": format!("{}/oauth/jwks", u.root),
        "authorization_endpoint": format!("{}/oauth/authorize", u.root),
        "token_endpoint": u.token(),
        "introspection_endpoint": format!("{}/oauth/introspect", u.root),
        "revocation_endpoint": format!("{}/oauth/revoke", u.root),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": [
            "launch-ehr", "launch-standalone", "client-public", "client-confidential-asymmetric",
            "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
            "permission-offline", "permission-online", "permission-patient", "permission-user",
            "permission-v1", "permission-v2"
        ]
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn jwks(State(state): State<AppState>) -> Response {
    let result = tokio::task::spawn_blocking(move || {
        let key = service(&state).signing_key(now_us())?;
        key.jwk()
    })
    .await;
    match result {
        Ok(Ok(jwk)) => (
            [(header::CONTENT_TYPE, "application/json")],
            json!({"keys": [jwk]}).to_string(),
        )
            .into_response(),
        Ok(Err(e)) => error_response(&OAuthError::Server(e.to_string())),
        Err(e) => error_response(&OAuthError::Server(e.to_string())),
    }
}

/// Escape text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The value of cookie `name`, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The portal's session cookie name.
pub(crate) fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.tls {
        "__Host-continuum_session"
    } else {
        "continuum_session"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://app.example:8443/cb?x=1"),
            "https://app.example:8443"
        );
        assert_eq!(origin_of("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
    }

    #[test]
    fn repeated_form_fields_are_refused() {
        assert!(form_fields(b"a=1&b=2").is_ok());
        assert!(form_fields(b"a=1&a=2").is_err());
    }
}
