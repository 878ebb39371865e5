//! The authorization endpoint: `GET /oauth/authorize` checks the request and shows the consent page to the
//! signed-in user; `POST /oauth/authorize` (the page's form, CSRF-protected) approves or denies it.
//!
//! Order of checks (RFC 6749 §4.1.2.1): an unknown or revoked client, or a redirect URI that is not exactly
//! one of the client's registered ones, gets an error page and never a redirect; every later problem is
//! reported to the client by redirecting with `error` and the echoed `state`. Without a portal session the
//! user is sent to `/login?next=<this request>`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use continuum_auth::oauth::{
    grant_scopes, valid_challenge, Client, GrantData, OAuth, OAuthError, GRANT_TTL_SECS,
};
use continuum_auth::{AccountKind, Session};
use continuum_core::audit::Outcome;

use super::{
    audit_event, cookie, field, form_fields, html_escape, now_us, origin_of, service,
    session_cookie_name, urls, Urls,
};
use crate::AppState;

/// The request parameters carried from the consent page back to `POST`.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "launch",
];

/// What went wrong, and how it is told.
enum Problem {
    /// Shown on an error page (the client or redirect URI cannot be trusted with a redirect).
    Page(StatusCode, String),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
    /// No session: sign in first.
    Login,
    Internal(String),
}

impl From<continuum_auth::AuthError> for Problem {
    fn from(e: continuum_auth::AuthError) -> Self {
        Problem::Internal(e.to_string())
    }
}

/// A checked authorization request.
struct Request {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    challenge: String,
    patient: Option<String>,
    encounter: Option<String>,
    ehr_launch: bool,
    fields: Vec<(String, String)>,
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{sep}{}", ser.finish());
    let mut res = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            "Cannot return to the app",
            "<p>The app's address cannot be used.</p>",
        ),
    }
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} – Continuum</title><link rel=\"stylesheet\" href=\"/static/portal.css\"></head>\
         <body><main><h1>{t}</h1>{body_html}</main></body></html>\n",
        t = html_escape(title)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn respond(problem: Problem, query: &str) -> Response {
    match problem {
        Problem::Page(status, msg) => page(
            status,
            "This app cannot be authorised",
            &format!("<p>{}</p>", html_escape(&msg)),
        ),
        Problem::Redirect {
            redirect_uri,
            state,
            error,
        } => {
            if let OAuthError::Server(detail) = &error {
                tracing::error!(detail = %detail, "authorization request failed");
            }
            let description = match &error {
                OAuthError::Server(_) => "the server could not complete the request".to_string(),
                other => other.to_string(),
            };
            let mut pairs = vec![
                ("error", error.code()),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                pairs.push(("state", s.as_str()));
            }
            redirect_with(&redirect_uri, &pairs)
        }
        Problem::Login => {
            let next = format!("/oauth/authorize?{query}");
            let target = format!(
                "/login?{}",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish()
            );
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&target) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }
        Problem::Internal(detail) => {
            tracing::error!(detail = %detail, "authorization request failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<p>The server could not complete the request. Try again later.</p>",
            )
        }
    }
}

fn session_of(state: &AppState, headers: &HeaderMap, now: i64) -> Result<Option<Session>, Problem> {
    let Some(value) = cookie(headers, session_cookie_name(state)) else {
        return Ok(None);
    };
    Ok(state.auth.session(&state.config.sessions, value, now)?)
}

/// Check an authorization request for the signed-in user (RFC 6749 §4.1.1, RFC 7636, SMART App Launch 2).
fn check(
    oauth: &OAuth,
    fields: Vec<(String, String)>,
    urls: &Urls,
    session: Option<&Session>,
    now: i64,
) -> Result<Request, Problem> {
    let get = |n: &str| field(&fields, n).map(str::to_string);
    let client_id = get("client_id").unwrap_or_default();
    let client = oauth
        .client(&client_id)?
        .filter(|c| !c.revoked)
        .ok_or_else(|| {
            Problem::Page(
                StatusCode::BAD_REQUEST,
                "The app is not registered here, or its registration was revoked.".into(),
            )
        })?;
    let redirect_uri = get("redirect_uri")
        .filter(|r| client.redirect_uris.iter().any(|u| u == r))
        .ok_or_else(|| {
            Problem::Page(
                StatusCode::BAD_REQUEST,
                "The app asked to return to an address it is not registered with.".into(),
            )
        })?;
    let st = get("state");
    let fail = |error: OAuthError| Problem::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: st.clone(),
        error,
    };
    let invalid = |m: &str| fail(OAuthError::InvalidRequest(m.to_string()));
    if get("response_type").as_deref() != Some("code") {
        return Err(fail(OAuthError::UnsupportedResponseType(
            "response_type must be code".into(),
        )));
    }
    if st.as_deref().is_none_or(str::is_empty) {
        return Err(invalid("state is required"));
    }
    match get("code_challenge_method").as_deref() {
        Some("S256") => {}
        Some("plain") => return Err(invalid("PKCE method plain is not accepted; use S256")),
        Some(_) => return Err(invalid("code_challenge_method must be S256")),
        None => return Err(invalid("PKCE is required: code_challenge_method=S256")),
    }
    let challenge = get("code_challenge").unwrap_or_default();
    if challenge.trim().is_empty() {
        return Err(invalid("PKCE is required: code_challenge is missing"));
    }
    if !valid_challenge(&challenge) {
        return Err(invalid(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    if get("aud").as_deref().map(|a| a.trim_end_matches('/')) != Some(urls.fhir.as_str()) {
        return Err(invalid("aud must be this server's FHIR base URL"));
    }
    let Some(session) = session else {
        return Err(Problem::Login);
    };
    let account = &session.account;
    if account.kind == AccountKind::Service {
        return Err(fail(OAuthError::AccessDenied(
            "service accounts cannot authorise apps".into(),
        )));
    }
    // EHR launch: the context the EHR opened for this same user.
    let mut patient = None;
    let mut encounter = None;
    let ehr_launch = get("launch").is_some();
    if let Some(launch) = get("launch") {
        let found = oauth.launch(&launch, now)?;
        let Some((_, ctx)) = found.filter(|(owner, _)| *owner == account.id) else {
            return Err(invalid(
                "launch is unknown, expired, or was opened by another user",
            ));
        };
        patient = Some(ctx.patient);
        encounter = ctx.encounter;
    } else if account.kind == AccountKind::Patient {
        // Standalone launch by a patient: their own record (or the dependent they are acting for).
        patient = session
            .data
            .acting_for
            .clone()
            .or_else(|| account.patient.clone());
    }
    let requested = get("scope").unwrap_or_default();
    let mut scopes = grant_scopes(&requested, &client.scopes, &["patient", "user"], true);
    if patient.is_none() {
        // no patient context (a staff member's standalone launch has no patient picker)
        scopes.retain(|s| !s.starts_with("patient/") && s != "launch/patient");
    }
    if encounter.is_none() {
        scopes.retain(|s| s != "launch/encounter");
    }
    if !ehr_launch {
        scopes.retain(|s| s != "launch");
    }
    if !scopes
        .iter()
        .any(|s| s.contains('/') && !s.starts_with("launch/"))
    {
        return Err(fail(OAuthError::InvalidScope(
            "none of the requested scopes may be granted to this app".into(),
        )));
    }
    Ok(Request {
        client,
        redirect_uri,
        state: st,
        scopes,
        challenge,
        patient,
        encounter,
        ehr_launch,
        fields,
    })
}

fn describe(scope: &str) -> String {
    match scope {
        "launch" | "launch/patient" => "Know which patient record is open".into(),
        "launch/encounter" => "Know which visit is open".into(),
        "offline_access" => "Keep access after you close the app (until you revoke it)".into(),
        "online_access" => "Keep access while you are signed in".into(),
        s => {
            let Some(p) = continuum_auth::oauth::ScopeParts::parse(s) else {
                return s.to_string();
            };
            let what = if p.resource_type == "*" {
                "all kinds of records".to_string()
            } else {
                format!("{} records", p.resource_type)
            };
            let mut verbs = Vec::new();
            for (c, v) in [
                ('r', "read"),
                ('s', "search"),
                ('c', "create"),
                ('u', "change"),
                ('d', "delete"),
            ] {
                if p.permissions.contains(c) {
                    verbs.push(v);
                }
            }
            let whose = match p.context {
                "patient" => "of this patient",
                _ => "you may see",
            };
            let only = p
                .query
                .map(|q| format!(" (only those matching {q})"))
                .unwrap_or_default();
            format!("{} {what} {whose}{only}", capitalise(&verbs.join(", ")))
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn consent_page(req: &Request, session: &Session) -> Response {
    let mut items = String::new();
    for s in &req.scopes {
        items.push_str(&format!(
            "<li>{} <code>{}</code></li>",
            html_escape(&describe(s)),
            html_escape(s)
        ));
    }
    let mut hidden = String::new();
    for name in CARRIED {
        if let Some(v) = field(&req.fields, name) {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                html_escape(v)
            ));
        }
    }
    hidden.push_str(&format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        html_escape(&session.data.csrf)
    ));
    let context = match (&req.patient, req.ehr_launch) {
        (Some(p), true) => format!(
            "<p>It will open the record of <strong>Patient/{}</strong>.</p>",
            html_escape(p)
        ),
        (Some(p), false) if session.account.patient.as_deref() == Some(p.as_str()) => {
            "<p>It will see <strong>your own record</strong>.</p>".to_string()
        }
        (Some(p), false) => format!(
            "<p>It will see the record of <strong>Patient/{}</strong>, whom you act for.</p>",
            html_escape(p)
        ),
        (None, _) => String::new(),
    };
    let body = format!(
        "<p><strong>{app}</strong> asks to use your Continuum account, <strong>{user}</strong>.</p>{context}\
         <p>If you allow it, the app may:</p><ul>{items}</ul>\
         <p>It will return to <code>{redirect}</code>.</p>\
         <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        app = html_escape(&req.client.name),
        user = html_escape(&session.account.display_name),
        redirect = html_escape(&req.redirect_uri),
    );
    let mut res = page(StatusCode::OK, "Allow this app?", &body);
    // The form posts here, and the answer redirects to the app: allow that origin as a form target.
    let app_origin = origin_of(&req.redirect_uri);
    let safe = app_origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b));
    let form_action = if safe {
        format!("'self' {app_origin}")
    } else {
        "'self'".to_string()
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `GET /oauth/authorize`.
pub(crate) async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let u = urls(&headers, &state);
    let q = query.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<Response, Problem> {
        let now = now_us();
        let fields = form_fields(q.as_bytes())
            .map_err(|e| Problem::Page(StatusCode::BAD_REQUEST, e.to_string()))?;
        let session = session_of(&state, &headers, now)?;
        let req = check(&service(&state), fields, &u, session.as_ref(), now)?;
        let Some(session) = session else {
            return Err(Problem::Login);
        };
        Ok(consent_page(&req, &session))
    })
    .await;
    match result {
        Ok(Ok(res)) => res,
        Ok(Err(p)) => respond(p, &query),
        Err(e) => respond(Problem::Internal(e.to_string()), &query),
    }
}

/// `POST /oauth/authorize`: the consent form.
pub(crate) async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let u = urls(&headers, &state);
    let address = super::address(&extensions);
    // A cross-site form post is refused whatever it carries.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if origin != u.origin() {
            return page(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p>The form was sent from another site.</p>",
            );
        }
    }
    let result = tokio::task::spawn_blocking(move || -> Result<Response, Problem> {
        let now = now_us();
        let fields = form_fields(&body)
            .map_err(|e| Problem::Page(StatusCode::BAD_REQUEST, e.to_string()))?;
        let Some(session) = session_of(&state, &headers, now)? else {
            return Err(Problem::Page(
                StatusCode::UNAUTHORIZED,
                "Your session has ended. Open the app again to sign in.".into(),
            ));
        };
        let csrf_ok = field(&fields, "csrf").is_some_and(|c| {
            continuum_auth::secret::constant_time_eq(c.as_bytes(), session.data.csrf.as_bytes())
        });
        if !csrf_ok {
            return Err(Problem::Page(
                StatusCode::FORBIDDEN,
                "The form has expired or was not sent from this site. Open the app again.".into(),
            ));
        }
        let decision = field(&fields, "decision").map(str::to_string);
        let oauth = service(&state);
        let req = check(&oauth, fields, &u, Some(&session), now)?;
        let account = &session.account;
        if decision.as_deref() != Some("approve") {
            audit_event(
                &state,
                &account.id,
                &account.username,
                address,
                Outcome::Refused,
                &format!("declined to authorise app {}", req.client.client_id),
            );
            return Err(Problem::Redirect {
                redirect_uri: req.redirect_uri,
                state: req.state,
                error: OAuthError::AccessDenied("the user declined".into()),
            });
        }
        let data = GrantData {
            client_id: req.client.client_id.clone(),
            scope: req.scopes.join(" "),
            patient: req.patient.clone(),
            encounter: req.encounter.clone(),
            grant: uuid_like(),
            grant_expires: now.saturating_add(GRANT_TTL_SECS * 1_000_000),
            redirect_uri: Some(req.redirect_uri.clone()),
            code_challenge: Some(req.challenge.clone()),
            ehr_launch: req.ehr_launch,
        };
        let code = oauth.create_code(&account.id, &data, now)?;
        audit_event(
            &state,
            &account.id,
            &account.username,
            address,
            Outcome::Success,
            &format!(
                "authorised app {} for: {}",
                req.client.client_id, data.scope
            ),
        );
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            pairs.push(("state", s.as_str()));
        }
        Ok(redirect_with(&req.redirect_uri, &pairs))
    })
    .await;
    match result {
        Ok(Ok(res)) => res,
        Ok(Err(p)) => respond(p, ""),
        Err(e) => respond(Problem::Internal(e.to_string()), ""),
    }
}

/// A random grant id (not a secret: it only names the grant in revocation records).
fn uuid_like() -> String {
    continuum_auth::secret::new_token()
}
