//! The token endpoint (authorization code, refresh token, client credentials), revocation (RFC 7009) and
//! introspection (RFC 7662).
//!
//! Client authentication: `private_key_jwt` (a client assertion signed with a key of the client's registered
//! JWKS, RS384 or ES384, `aud` = this token endpoint, `exp` at most five minutes ahead, `jti` never seen
//! before), `client_secret_basic` for development clients, or none for public clients (which then rely on
//! PKCE and may not use client credentials or introspection).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use continuum_auth::oauth::{
    assertion_issuer, grant_scopes, parse_basic, verify_client_assertion, Client, ClientAuth,
    GrantData, Issued, OAuth, OAuthError,
};
use continuum_core::audit::Outcome;
use serde_json::{json, Value};

use super::{
    audit_event, error_response, field, form_fields, json_no_store, now_us, service, urls, Urls,
};
use crate::AppState;

const SEC: i64 = 1_000_000;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authenticated {
    /// A public client, named by `client_id` only.
    Public,
    /// A confidential client that proved its identity.
    Confidential,
}

/// Identify and authenticate the client of a token, revocation or introspection request.
fn authenticate(
    oauth: &OAuth,
    headers: &HeaderMap,
    fields: &[(String, String)],
    urls: &Urls,
    now: i64,
) -> Result<(Client, Authenticated), OAuthError> {
    let bad = |m: &str| OAuthError::InvalidClient(m.to_string());
    let form_id = field(fields, "client_id");
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "));
    let assertion_type = field(fields, "client_assertion_type");
    let assertion = field(fields, "client_assertion");
    if basic.is_some() && (assertion.is_some() || assertion_type.is_some()) {
        return Err(OAuthError::InvalidRequest(
            "use one client authentication method".into(),
        ));
    }
    let live = |id: &str| -> Result<Client, OAuthError> {
        oauth
            .client(id)?
            .filter(|c| !c.revoked)
            .ok_or_else(|| bad("unknown or revoked client"))
    };
    let same_id = |client: &Client| -> Result<(), OAuthError> {
        match form_id {
            Some(id) if id != client.client_id => {
                Err(bad("client_id does not match the client's credentials"))
            }
            _ => Ok(()),
        }
    };
    if let Some(h) = basic {
        let (id, secret) = parse_basic(h).ok_or_else(|| bad("malformed Basic credentials"))?;
        let client = match oauth.client(&id)? {
            Some(c) if !c.revoked => c,
            _ => {
                // the same hashing work as a real check
                let _ = continuum_auth::secret::token_hash(&secret);
                return Err(bad("unknown or revoked client, or wrong secret"));
            }
        };
        if !oauth.check_dev_secret(&client, &secret) {
            return Err(bad("unknown or revoked client, or wrong secret"));
        }
        same_id(&client)?;
        return Ok((client, Authenticated::Confidential));
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(JWT_BEARER) {
            return Err(OAuthError::InvalidRequest(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )));
        }
        let id = form_id
            .map(str::to_string)
            .or_else(|| assertion_issuer(assertion))
            .ok_or_else(|| bad("the client assertion names no client"))?;
        let client = live(&id)?;
        let ClientAuth::PrivateKeyJwt { jwks } = &client.auth else {
            return Err(bad("this client is not registered for private_key_jwt"));
        };
        let a =
            verify_client_assertion(jwks, assertion, &client.client_id, &urls.token(), now / SEC)
                .map_err(|e| bad(&format!("client assertion refused: {e}")))?;
        if !oauth.use_assertion(&client.client_id, &a, now)? {
            return Err(bad("client assertion refused: its jti was already used"));
        }
        return Ok((client, Authenticated::Confidential));
    }
    if assertion_type.is_some() {
        return Err(OAuthError::InvalidRequest(
            "client_assertion is missing".into(),
        ));
    }
    let id = form_id.ok_or_else(|| bad("client authentication is required"))?;
    let client = live(id)?;
    if !client.is_public() {
        return Err(bad("this client must authenticate"));
    }
    Ok((client, Authenticated::Public))
}

fn token_body(issued: &Issued, data: &GrantData) -> Value {
    let mut body = json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": data.scope,
    });
    if let Some(r) = &issued.refresh_token {
        body["refresh_token"] = json!(r);
    }
    if let Some(p) = &data.patient {
        body["patient"] = json!(p);
        // the EHR shows its own banner; a standalone app should show who the record is
        body["need_patient_banner"] = json!(!data.ehr_launch);
    }
    if let Some(e) = &data.encounter {
        body["encounter"] = json!(e);
    }
    body
}

fn wants_refresh(scope: &str) -> bool {
    scope
        .split(' ')
        .any(|s| s == "offline_access" || s == "online_access")
}

fn grant(
    state: &AppState,
    oauth: &OAuth,
    headers: &HeaderMap,
    fields: &[(String, String)],
    urls: &Urls,
    address: Option<String>,
    now: i64,
) -> Result<Value, OAuthError> {
    let grant_type = field(fields, "grant_type")
        .ok_or_else(|| OAuthError::InvalidRequest("grant_type is required".into()))?;
    if !matches!(
        grant_type,
        "authorization_code" | "refresh_token" | "client_credentials"
    ) {
        return Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type '{grant_type}' is not supported"
        )));
    }
    let (client, how) = authenticate(oauth, headers, fields, urls, now)?;
    let enabled_account = |id: &str| -> Result<continuum_auth::Account, OAuthError> {
        state
            .auth
            .by_id(id)?
            .filter(|a| !a.disabled)
            .ok_or_else(|| OAuthError::InvalidGrant("the user's account is not active".into()))
    };
    match grant_type {
        "authorization_code" => {
            let code = field(fields, "code")
                .ok_or_else(|| OAuthError::InvalidRequest("code is required".into()))?;
            let (account_id, data) = oauth.redeem_code(
                code,
                &client.client_id,
                field(fields, "redirect_uri"),
                field(fields, "code_verifier"),
                now,
            )?;
            let account = enabled_account(&account_id)?;
            let issued = oauth.issue(
                &account.id,
                &data,
                wants_refresh(&data.scope),
                &account.id,
                &urls.root,
                &urls.fhir,
                now,
            )?;
            audit_event(
                state,
                &account.id,
                &account.username,
                address,
                Outcome::Success,
                &format!("access token issued to app {}", client.client_id),
            );
            Ok(token_body(&issued, &data))
        }
        "refresh_token" => {
            let token = field(fields, "refresh_token")
                .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?;
            let (account_id, mut data) = oauth.redeem_refresh(token, &client.client_id, now)?;
            let account = enabled_account(&account_id)?;
            if let Some(asked) = field(fields, "scope") {
                let granted: Vec<&str> = data.scope.split(' ').collect();
                let narrowed: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if narrowed.is_empty() || narrowed.iter().any(|s| !granted.contains(s)) {
                    return Err(OAuthError::InvalidScope(
                        "a refresh may only keep or narrow the granted scopes".into(),
                    ));
                }
                data.scope = narrowed.join(" ");
            }
            let issued = oauth.issue(
                &account.id,
                &data,
                true,
                &account.id,
                &urls.root,
                &urls.fhir,
                now,
            )?;
            Ok(token_body(&issued, &data))
        }
        _ => {
            if how != Authenticated::Confidential {
                return Err(OAuthError::UnauthorizedClient(
                    "client credentials need a confidential client".into(),
                ));
            }
            let requested = field(fields, "scope").unwrap_or("");
            let scopes = grant_scopes(requested, &client.scopes, &["system"], false);
            if scopes.is_empty() {
                return Err(OAuthError::InvalidScope(
                    "none of the requested system scopes may be granted to this client".into(),
                ));
            }
            let data = GrantData {
                client_id: client.client_id.clone(),
                scope: scopes.join(" "),
                patient: None,
                encounter: None,
                grant: String::new(),
                grant_expires: now,
                redirect_uri: None,
                code_challenge: None,
                ehr_launch: false,
            };
            let issued = oauth.issue(
                &client.client_id,
                &data,
                false,
                "",
                &urls.root,
                &urls.fhir,
                now,
            )?;
            audit_event(
                state,
                &format!("client:{}", client.client_id),
                &client.client_id,
                address,
                Outcome::Success,
                "backend service access token issued",
            );
            Ok(token_body(&issued, &data))
        }
    }
}

/// The body of an endpoint, run on the blocking pool with the form fields, where the server is, the client
/// address and the time.
type Work = fn(
    &AppState,
    &HeaderMap,
    &[(String, String)],
    &Urls,
    Option<String>,
    i64,
) -> Result<Response, OAuthError>;

async fn run(
    state: AppState,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
    work: Work,
) -> Response {
    let address = super::address(&extensions);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return error_response(&OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let u = urls(&headers, &state);
    let result = tokio::task::spawn_blocking(move || {
        let fields = form_fields(&body)?;
        work(&state, &headers, &fields, &u, address, now_us())
    })
    .await;
    match result {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&OAuthError::Server(e.to_string())),
    }
}

/// `POST /oauth/token`.
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    run(
        state,
        headers,
        extensions,
        body,
        |state, headers, fields, urls, address, now| {
            let oauth = service(state);
            match grant(state, &oauth, headers, fields, urls, address.clone(), now) {
                Ok(body) => Ok(json_no_store(StatusCode::OK, &body)),
                Err(e) => {
                    if !matches!(e, OAuthError::Server(_)) {
                        let who = field(fields, "client_id").unwrap_or("unknown client");
                        audit_event(
                            state,
                            "anonymous",
                            "oauth-client",
                            address,
                            Outcome::Refused,
                            &format!("token request refused ({}): {who}", e.code()),
                        );
                    }
                    Err(e)
                }
            }
        },
    )
    .await
}

/// `POST /oauth/revoke` (RFC 7009): always 200 for a token that is unknown, expired or someone else's.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    run(
        state,
        headers,
        extensions,
        body,
        |state, headers, fields, urls, _address, now| {
            let oauth = service(state);
            let (client, _) = authenticate(&oauth, headers, fields, urls, now)?;
            let token = field(fields, "token")
                .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
            if token.contains('.') {
                if let Some(key) = oauth.current_signing_key()? {
                    if let Ok(claims) = key.signed_claims(token) {
                        if claims.client_id == client.client_id {
                            oauth.revoke_access(&claims.jti, claims.exp, now)?;
                        }
                    }
                }
            } else if let Some((_, data)) = oauth.refresh_grant(token, now)? {
                if data.client_id == client.client_id {
                    oauth.revoke_refresh(token, now)?;
                }
            }
            Ok(json_no_store(StatusCode::OK, &json!({})))
        },
    )
    .await
}

/// `POST /oauth/introspect` (RFC 7662): for authenticated (confidential) clients.
pub(crate) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    run(
        state,
        headers,
        extensions,
        body,
        |state, headers, fields, urls, _address, now| {
            let oauth = service(state);
            let (_, how) = authenticate(&oauth, headers, fields, urls, now)?;
            if how != Authenticated::Confidential {
                return Err(OAuthError::InvalidClient(
                    "introspection needs client authentication".into(),
                ));
            }
            let token = field(fields, "token")
                .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
            let inactive = || Ok(json_no_store(StatusCode::OK, &json!({"active": false})));
            if token.contains('.') {
                let Some(key) = oauth.current_signing_key()? else {
                    return inactive();
                };
                let Ok(claims) = key.verify_access_token(token, &urls.root, &urls.fhir, now / SEC)
                else {
                    return inactive();
                };
                if oauth.access_revoked(&claims, now)? {
                    return inactive();
                }
                if !claims.is_backend() && state.auth.by_id(&claims.sub)?.is_none_or(|a| a.disabled)
                {
                    return inactive();
                }
                let mut body = json!({
                    "active": true,
                    "scope": claims.scope,
                    "client_id": claims.client_id,
                    "sub": claims.sub,
                    "exp": claims.exp,
                    "iat": claims.iat,
                    "iss": claims.iss,
                    "aud": claims.aud,
                    "jti": claims.jti,
                    "token_type": "Bearer",
                });
                if let Some(p) = &claims.patient {
                    body["patient"] = json!(p);
                }
                if let Some(e) = &claims.encounter {
                    body["encounter"] = json!(e);
                }
                return Ok(json_no_store(StatusCode::OK, &body));
            }
            let Some((row, data)) = oauth.refresh_grant(token, now)? else {
                return inactive();
            };
            let client_live = oauth.client(&data.client_id)?.is_some_and(|c| !c.revoked);
            if !client_live {
                return inactive();
            }
            Ok(json_no_store(
                StatusCode::OK,
                &json!({
                    "active": true,
                    "scope": data.scope,
                    "client_id": data.client_id,
                    "sub": row.account_id,
                    "exp": row.expires / SEC,
                    "token_type": "refresh_token",
                }),
            ))
        },
    )
    .await
}
