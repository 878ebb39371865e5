//! JWT access tokens presented to the FHIR API: verified (our key and algorithm only, signature, issuer,
//! audience = this FHIR base, lifetime), checked against revocation (the token's `jti`, its grant, its client),
//! and mapped to the principal the access policy resolves.

use continuum_auth::oauth::JwtError;
use continuum_core::access::{Principal, PrincipalKind};

use super::scopes::{access_scopes, TokenKind};
use super::{service, Urls};
use crate::AppState;

/// Why a JWT was not accepted; `Refused` is said to the client only as "invalid token".
#[derive(Debug)]
pub(crate) enum Rejected {
    Refused(String),
    Internal(String),
}

impl From<continuum_auth::AuthError> for Rejected {
    fn from(e: continuum_auth::AuthError) -> Self {
        Rejected::Internal(e.to_string())
    }
}

fn refused(e: JwtError) -> Rejected {
    Rejected::Refused(e.to_string())
}

/// The principal behind a JWT access token, with the token's scopes.
pub(crate) fn principal(
    state: &AppState,
    token: &str,
    urls: &Urls,
    address: Option<String>,
    now_us: i64,
) -> Result<Principal, Rejected> {
    let oauth = service(state);
    let Some(key) = oauth.current_signing_key()? else {
        return Err(Rejected::Refused("no token has been issued here".into()));
    };
    let claims = key
        .verify_access_token(token, &urls.root, &urls.fhir, now_us / 1_000_000)
        .map_err(refused)?;
    if oauth.access_revoked(&claims, now_us)? {
        return Err(Rejected::Refused("the token was revoked".into()));
    }
    if claims.is_backend() {
        return Ok(Principal {
            account_id: format!("client:{}", claims.client_id),
            username: claims.client_id.clone(),
            kind: PrincipalKind::System,
            address,
            token_scopes: Some(access_scopes(&claims.scope, TokenKind::Backend, None)),
        });
    }
    let Some(account) = state.auth.by_id(&claims.sub)?.filter(|a| !a.disabled) else {
        return Err(Rejected::Refused("the account is gone or disabled".into()));
    };
    let mut principal = account.principal(address);
    principal.token_scopes = Some(access_scopes(
        &claims.scope,
        TokenKind::User,
        claims.patient.as_deref(),
    ));
    Ok(principal)
}
