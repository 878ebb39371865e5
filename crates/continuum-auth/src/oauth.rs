//! OAuth 2 / SMART App Launch 2: registered clients, the server's signing key, compact JWS (ES256 access
//! tokens we sign; RS384/ES384 client assertions we verify), PKCE, scope granting, and the one-time codes,
//! rotating refresh tokens, launch contexts and revocation records behind the endpoints of the web crate.
//!
//! Tokens and records are rows of the account store's `auth_token` table, kept by the SHA-256 of their
//! secret, never the secret:
//! - `auth_code` (60 s, consumed once with `take_token`), bound to client, redirect URI and PKCE challenge;
//! - `refresh` (rotated on every use; the grant's absolute expiry carries over);
//! - `launch` (an EHR launch context: patient, encounter, the staff member who opened it);
//! - `used` (a consumed code or refresh token, remembered so that a replay revokes its grant);
//! - `revoked` (a revoked grant or access-token `jti`, kept until every token it covers has expired);
//! - `jti` (a client assertion's id, kept until the assertion expires, so it cannot be replayed).
//!
//! Access tokens are JWTs signed with the server's ES256 key (generated on first use and stored through the
//! `ClientStore` port so every server shares it; `kid` is its RFC 7638 thumbprint). Verification accepts only
//! that algorithm and that key: `alg=none`, other algorithms, unknown `kid`s and `crit` headers are refused.

use std::sync::Arc;

use base64::Engine as _;
use continuum_store::{ClientRow, ResourceStore, ServerKeyRow, StoreError, TokenRow};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::{secret, AuthError};

const SEC: i64 = 1_000_000;

/// Access tokens live one hour.
pub const ACCESS_TTL_SECS: i64 = 3600;
/// Authorization codes live 60 seconds.
pub const CODE_TTL_SECS: i64 = 60;
/// An EHR launch context lives five minutes.
pub const LAUNCH_TTL_SECS: i64 = 300;
/// A grant (and so every refresh token rotated from it) ends 90 days after the user approved it.
pub const GRANT_TTL_SECS: i64 = 90 * 86_400;
/// How long a consumed code is remembered (a replay within it revokes the tokens issued from the code).
pub const USED_CODE_MEMORY_SECS: i64 = 86_400;
/// A client assertion may expire at most five minutes ahead (SMART Backend Services).
pub const ASSERTION_MAX_SECS: i64 = 300;
/// Clock skew tolerated on `iat`/`nbf` and on an assertion's `exp` limit.
pub const SKEW_SECS: i64 = 30;
/// Name of the access-token signing key in the `ClientStore`.
pub const SIGNING_KEY_NAME: &str = "oauth-access-token-es256";

pub const KIND_CODE: &str = "auth_code";
pub const KIND_REFRESH: &str = "refresh";
pub const KIND_LAUNCH: &str = "launch";
pub const KIND_USED: &str = "used";
pub const KIND_REVOKED: &str = "revoked";
pub const KIND_JTI: &str = "jti";

/// Scopes that are not resource permissions, granted when the client is registered for them.
pub const CONTEXT_SCOPES: &[&str] = &[
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url: no padding, no stray bits.
fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(e.to_string())
}

// ---------------------------------------------------------------------------------------------------------
// Clients

/// How a client proves who it is at the token endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "method")]
pub enum ClientAuth {
    /// A browser or native app that keeps no secret: PKCE only (SMART `client-public`).
    Public,
    /// `private_key_jwt` with RS384 or ES384 keys from the registered JWKS (`client-confidential-asymmetric`,
    /// Backend Services).
    PrivateKeyJwt { jwks: Value },
    /// `client_secret_basic`, for local development only (registered with `--dev-secret`).
    DevSecret { secret_hash: String },
}

/// A registered client. Stored as a JSON document through the `ClientStore` port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    #[serde(skip)]
    pub client_id: String,
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The most the client may be granted (SMART scope strings).
    #[serde(default)]
    pub scopes: Vec<String>,
    pub auth: ClientAuth,
    #[serde(default)]
    pub revoked: bool,
}

impl Client {
    pub fn from_row(row: &ClientRow) -> Result<Client, AuthError> {
        let mut c: Client = serde_json::from_slice(&row.body)
            .map_err(|e| internal(format!("client {} unreadable: {e}", row.client_id)))?;
        c.client_id = row.client_id.clone();
        Ok(c)
    }

    fn to_row(&self, created: i64, updated: i64) -> Result<ClientRow, AuthError> {
        Ok(ClientRow {
            client_id: self.client_id.clone(),
            created,
            updated,
            body: serde_json::to_vec(self).map_err(internal)?,
        })
    }

    pub fn is_public(&self) -> bool {
        self.auth == ClientAuth::Public
    }

    /// Check the registration: id, redirect URIs, scopes and keys.
    pub fn validate(&self) -> Result<(), AuthError> {
        let bad = |m: String| Err(AuthError::Invalid(m));
        if self.client_id.is_empty()
            || self.client_id.len() > 128
            || !self
                .client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return bad(format!(
                "'{}' is not a valid client id (letters, digits, . _ -; at most 128)",
                self.client_id
            ));
        }
        if self.name.trim().is_empty() {
            return bad("a client needs a name".into());
        }
        for u in &self.redirect_uris {
            let ok = (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains('#')
                && !u.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return bad(format!(
                    "redirect URI '{u}' must be an absolute http(s) URL without a fragment"
                ));
            }
        }
        if self.scopes.is_empty() {
            return bad("a client needs at least one scope".into());
        }
        for s in &self.scopes {
            if !CONTEXT_SCOPES.contains(&s.as_str()) && ScopeParts::parse(s).is_none() {
                return bad(format!(
                    "'{s}' is not a SMART scope (patient/, user/ or system/ Type.cruds, or one of {})",
                    CONTEXT_SCOPES.join(", ")
                ));
            }
            if let Some(p) = ScopeParts::parse(s) {
                continuum_core::access::Scope::parse(p.body)
                    .map_err(|e| AuthError::Invalid(format!("scope '{s}': {e}")))?;
            }
        }
        match &self.auth {
            ClientAuth::Public => {
                if self.redirect_uris.is_empty() {
                    return bad("a public client needs a redirect URI".into());
                }
            }
            ClientAuth::PrivateKeyJwt { jwks } => {
                let keys = jwks
                    .get("keys")
                    .and_then(Value::as_array)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        AuthError::Invalid("the JWKS needs a non-empty \"keys\" array".into())
                    })?;
                for k in keys {
                    check_client_key(k).map_err(AuthError::Invalid)?;
                }
            }
            ClientAuth::DevSecret { .. } => {}
        }
        Ok(())
    }
}

/// A registered client key must be usable for SMART Backend Services: an ES384 (EC P-384) or RS384 (RSA of at
/// least 2048 bits) public key with a `kid`, for signatures, and no private part.
fn check_client_key(k: &Value) -> Result<(), String> {
    let s = |n: &str| k.get(n).and_then(Value::as_str);
    let kid = s("kid")
        .filter(|k| !k.is_empty())
        .ok_or("every key needs a \"kid\"")?;
    if s("use").is_some_and(|u| u != "sig") {
        return Err(format!("key '{kid}': \"use\" must be \"sig\""));
    }
    if k.get("d").is_some() {
        return Err(format!(
            "key '{kid}' holds a private key: register only the public key"
        ));
    }
    let len = |n: &str| s(n).and_then(unb64).map_or(0, |b| b.len());
    match s("kty") {
        Some("EC") if s("crv") == Some("P-384") && len("x") == 48 && len("y") == 48 => {
            if s("alg").is_some_and(|a| a != "ES384") {
                return Err(format!("key '{kid}': a P-384 key signs ES384"));
            }
            Ok(())
        }
        Some("RSA") if len("n") >= 256 && len("e") > 0 => {
            if s("alg").is_some_and(|a| a != "RS384") {
                return Err(format!("key '{kid}': an RSA key signs RS384"));
            }
            Ok(())
        }
        _ => Err(format!(
            "key '{kid}' is not an EC P-384 or RSA (2048 bits or more) public key"
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Scopes

/// A SMART resource scope taken apart: `patient/Observation.rs?category=laboratory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeParts<'a> {
    /// `patient`, `user` or `system`.
    pub context: &'a str,
    /// `Observation` or `*`.
    pub resource_type: &'a str,
    /// Permission letters in `cruds` order (v1 `read` = `rs`, `write` = `cud`, `*` = `cruds`).
    pub permissions: String,
    pub query: Option<&'a str>,
    /// Everything after `context/`.
    pub body: &'a str,
}

impl<'a> ScopeParts<'a> {
    pub fn parse(s: &'a str) -> Option<ScopeParts<'a>> {
        let (context, body) = s.split_once('/')?;
        if !matches!(context, "patient" | "user" | "system") {
            return None;
        }
        let (head, query) = match body.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (body, None),
        };
        let (resource_type, perms) = head.split_once('.')?;
        if resource_type.is_empty()
            || !(resource_type == "*" || resource_type.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return None;
        }
        let permissions = match perms {
            "read" => "rs".to_string(),
            "write" => "cud".to_string(),
            "*" => "cruds".to_string(),
            p if !p.is_empty() => {
                let order = "cruds";
                let pos: Vec<usize> = p.chars().filter_map(|c| order.find(c)).collect();
                if pos.len() != p.len() || pos.windows(2).any(|w| w[0] >= w[1]) {
                    return None;
                }
                p.to_string()
            }
            _ => return None,
        };
        Some(ScopeParts {
            context,
            resource_type,
            permissions,
            query,
            body,
        })
    }

    /// Does this (registered) scope allow everything `other` (requested) asks for?
    pub fn covers(&self, other: &ScopeParts<'_>) -> bool {
        self.context == other.context
            && (self.resource_type == "*" || self.resource_type == other.resource_type)
            && other
                .permissions
                .chars()
                .all(|c| self.permissions.contains(c))
            && (self.query.is_none() || self.query == other.query)
    }
}

/// The requested scopes (space-separated) the client may have: each must be covered by a registered one, be a
/// resource scope of an allowed context (or a context scope when `context_scopes`), and name a real type.
/// Unknown or uncovered scopes are dropped, as OAuth allows; the caller refuses an empty result.
pub fn grant_scopes(
    requested: &str,
    registered: &[String],
    contexts: &[&str],
    context_scopes: bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if out.iter().any(|o| o == s) {
            continue;
        }
        if CONTEXT_SCOPES.contains(&s) {
            if context_scopes && registered.iter().any(|r| r == s) {
                out.push(s.to_string());
            }
            continue;
        }
        let Some(req) = ScopeParts::parse(s) else {
            continue;
        };
        if !contexts.contains(&req.context)
            || continuum_core::access::Scope::parse(req.body).is_err()
        {
            continue;
        }
        let covered = registered
            .iter()
            .filter_map(|r| ScopeParts::parse(r))
            .any(|r| r.covers(&req));
        if covered {
            out.push(s.to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// PKCE

/// A PKCE `code_challenge` for S256: the base64url SHA-256 of a verifier, 43 characters.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && unb64(challenge).is_some_and(|b| b.len() == 32)
}

/// RFC 7636: the verifier is 43–128 unreserved characters and its S256 transform equals the challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return false;
    }
    let computed = b64(&Sha256::digest(verifier.as_bytes()));
    secret::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

// ---------------------------------------------------------------------------------------------------------
// Compact JWS

/// Why a JWT was refused. The text is safe to show the client (it names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token names an unknown key")]
    UnknownKey,
    #[error("the token's signature is wrong")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's expiry is too far ahead")]
    TooLong,
    #[error("the token is meant for another audience")]
    Audience,
    #[error("the token's issuer or subject is wrong")]
    Issuer,
    #[error("the token lacks a required claim")]
    MissingClaim,
}

/// Header and payload of a compact JWS, not yet verified, and the signed text and signature.
struct Parts {
    header: serde_json::Map<String, Value>,
    payload: Value,
    signed: String,
    signature: Vec<u8>,
}

fn split_jws(token: &str) -> Result<Parts, JwtError> {
    if token.len() > 16 * 1024 {
        return Err(JwtError::Malformed);
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: Value = unb64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    let Value::Object(header) = header else {
        return Err(JwtError::Malformed);
    };
    let payload: Value = unb64(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if !payload.is_object() {
        return Err(JwtError::Malformed);
    }
    // no extension we would have to understand
    if header.contains_key("crit") {
        return Err(JwtError::Algorithm);
    }
    let signature = unb64(s).ok_or(JwtError::Malformed)?;
    if signature.is_empty() {
        return Err(JwtError::Signature);
    }
    Ok(Parts {
        header,
        payload,
        signed: format!("{h}.{p}"),
        signature,
    })
}

fn header_str<'a>(header: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    header.get(name).and_then(Value::as_str)
}

fn audience_is(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(s)) => s == expected,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(expected)),
        _ => false,
    }
}

/// The server's access-token signing key (ECDSA P-256).
#[derive(Clone)]
pub struct ServerKey {
    pub kid: String,
    /// Uncompressed public point (0x04 ‖ X ‖ Y).
    public: Vec<u8>,
    pkcs8: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ServerKeyDoc {
    alg: String,
    kid: String,
    public: String,
    pkcs8: String,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ServerKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<ServerKey, AuthError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| internal("could not generate a signing key"))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<ServerKey, AuthError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| internal(format!("signing key unreadable: {e}")))?;
        let public = pair.public_key().as_ref().to_vec();
        let mut key = ServerKey {
            kid: String::new(),
            public,
            pkcs8: pkcs8.to_vec(),
        };
        key.kid = key.thumbprint()?;
        Ok(key)
    }

    fn coordinates(&self) -> Result<(&[u8], &[u8]), AuthError> {
        match self.public.split_first() {
            Some((4, xy)) if xy.len() == 64 => Ok(xy.split_at(32)),
            _ => Err(internal("signing key: not an uncompressed P-256 point")),
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    fn thumbprint(&self) -> Result<String, AuthError> {
        let (x, y) = self.coordinates()?;
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(x),
            b64(y)
        );
        Ok(b64(&Sha256::digest(canonical.as_bytes())))
    }

    /// The public key as a JWK, for `/oauth/jwks`.
    pub fn jwk(&self) -> Result<Value, AuthError> {
        let (x, y) = self.coordinates()?;
        Ok(
            json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": self.kid,
                  "use": "sig", "alg": "ES256"}),
        )
    }

    fn to_row(&self, now_us: i64) -> Result<ServerKeyRow, AuthError> {
        let doc = ServerKeyDoc {
            alg: "ES256".into(),
            kid: self.kid.clone(),
            public: b64(&self.public),
            pkcs8: b64(&self.pkcs8),
        };
        Ok(ServerKeyRow {
            name: SIGNING_KEY_NAME.into(),
            created: now_us,
            body: serde_json::to_vec(&doc).map_err(internal)?,
        })
    }

    fn from_row(row: &ServerKeyRow) -> Result<ServerKey, AuthError> {
        let doc: ServerKeyDoc = serde_json::from_slice(&row.body)
            .map_err(|e| internal(format!("server key unreadable: {e}")))?;
        if doc.alg != "ES256" {
            return Err(internal(format!("server key algorithm {}", doc.alg)));
        }
        let (Some(public), Some(pkcs8)) = (unb64(&doc.public), unb64(&doc.pkcs8)) else {
            return Err(internal("server key unreadable"));
        };
        Ok(ServerKey {
            kid: doc.kid,
            public,
            pkcs8,
        })
    }

    /// Sign `claims` as a compact JWS (`alg` ES256, `typ` at+jwt, `kid` this key's).
    pub fn sign(&self, claims: &Value) -> Result<String, AuthError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.pkcs8,
            &rng,
        )
        .map_err(|e| internal(format!("signing key unreadable: {e}")))?;
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid});
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = pair
            .sign(&rng, signed.as_bytes())
            .map_err(|_| internal("signing failed"))?;
        Ok(format!("{signed}.{}", b64(sig.as_ref())))
    }

    /// Verify a token this key signed and return its claims, unchecked beyond the signature.
    fn verify_signature(&self, token: &str) -> Result<Value, JwtError> {
        let parts = split_jws(token)?;
        if header_str(&parts.header, "alg") != Some("ES256") {
            return Err(JwtError::Algorithm);
        }
        if header_str(&parts.header, "kid") != Some(self.kid.as_str()) {
            return Err(JwtError::UnknownKey);
        }
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(parts.signed.as_bytes(), &parts.signature)
            .map_err(|_| JwtError::Signature)?;
        Ok(parts.payload)
    }

    /// Verify an access token: our key and algorithm, signature, issuer, audience, lifetime.
    pub fn verify_access_token(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now_secs: i64,
    ) -> Result<AccessClaims, JwtError> {
        let payload = self.verify_signature(token)?;
        if !audience_is(payload.get("aud"), audience) {
            return Err(JwtError::Audience);
        }
        let claims: AccessClaims =
            serde_json::from_value(payload).map_err(|_| JwtError::MissingClaim)?;
        if claims.iss != issuer {
            return Err(JwtError::Issuer);
        }
        if claims.exp <= now_secs {
            return Err(JwtError::Expired);
        }
        if claims.iat > now_secs + SKEW_SECS {
            return Err(JwtError::NotYetValid);
        }
        if claims.jti.is_empty() || claims.client_id.is_empty() || claims.sub.is_empty() {
            return Err(JwtError::MissingClaim);
        }
        Ok(claims)
    }

    /// The claims of a token this key signed, even if expired or for another audience (revocation).
    pub fn signed_claims(&self, token: &str) -> Result<AccessClaims, JwtError> {
        serde_json::from_value(self.verify_signature(token)?).map_err(|_| JwtError::MissingClaim)
    }
}

/// The claims of our access tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// Account id, or the client id of a backend service.
    pub sub: String,
    pub aud: Value,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// The authorization (user approval) the token descends from; revoking it stops every token of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

impl AccessClaims {
    /// A backend-service token: issued to the client itself, for `system/` scopes.
    pub fn is_backend(&self) -> bool {
        self.sub == self.client_id
            && self.patient.is_none()
            && self.scope.split(' ').all(|s| s.starts_with("system/"))
    }
}

/// A verified client assertion: what the caller must remember so it is not replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    pub jti: String,
    pub exp: i64,
}

/// Verify a `private_key_jwt` client assertion (SMART Backend Services): RS384 or ES384 signed by a key of
/// the client's JWKS named by `kid`; `iss` = `sub` = the client; `aud` = the token endpoint; `exp` in the
/// future but at most five minutes ahead; a `jti`. The caller checks the `jti` was not used before.
pub fn verify_client_assertion(
    jwks: &Value,
    assertion: &str,
    client_id: &str,
    token_url: &str,
    now_secs: i64,
) -> Result<Assertion, JwtError> {
    let parts = split_jws(assertion)?;
    let alg = header_str(&parts.header, "alg").ok_or(JwtError::Algorithm)?;
    if alg != "RS384" && alg != "ES384" {
        return Err(JwtError::Algorithm);
    }
    let kid = header_str(&parts.header, "kid").ok_or(JwtError::UnknownKey)?;
    let key = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .ok_or(JwtError::UnknownKey)?;
    let kstr = |n: &str| key.get(n).and_then(Value::as_str);
    if kstr("use").is_some_and(|u| u != "sig") || kstr("alg").is_some_and(|a| a != alg) {
        return Err(JwtError::Algorithm);
    }
    let msg = parts.signed.as_bytes();
    let verified = match (alg, kstr("kty")) {
        ("ES384", Some("EC")) if kstr("crv") == Some("P-384") => {
            let (Some(x), Some(y)) = (kstr("x").and_then(unb64), kstr("y").and_then(unb64)) else {
                return Err(JwtError::UnknownKey);
            };
            if x.len() != 48 || y.len() != 48 {
                return Err(JwtError::UnknownKey);
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(msg, &parts.signature)
                .is_ok()
        }
        ("RS384", Some("RSA")) => {
            let (Some(n), Some(e)) = (kstr("n").and_then(unb64), kstr("e").and_then(unb64)) else {
                return Err(JwtError::UnknownKey);
            };
            signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA384,
                    msg,
                    &parts.signature,
                )
                .is_ok()
        }
        _ => return Err(JwtError::UnknownKey),
    };
    if !verified {
        return Err(JwtError::Signature);
    }
    let p = &parts.payload;
    let claim = |n: &str| p.get(n).and_then(Value::as_str);
    if claim("iss") != Some(client_id) || claim("sub") != Some(client_id) {
        return Err(JwtError::Issuer);
    }
    if !audience_is(p.get("aud"), token_url) {
        return Err(JwtError::Audience);
    }
    let exp = p
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(JwtError::MissingClaim)?;
    if exp <= now_secs {
        return Err(JwtError::Expired);
    }
    if exp > now_secs + ASSERTION_MAX_SECS + SKEW_SECS {
        return Err(JwtError::TooLong);
    }
    if p.get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|n| n > now_secs + SKEW_SECS)
    {
        return Err(JwtError::NotYetValid);
    }
    let jti = claim("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(JwtError::MissingClaim)?;
    Ok(Assertion {
        jti: jti.to_string(),
        exp,
    })
}

/// `Authorization: Basic` credentials (RFC 6749 §2.3.1: id and secret form-urlencoded, then base64).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?
        .trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> Option<String> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// The `iss` of a client assertion, read before verification to find the client whose keys verify it.
pub fn assertion_issuer(assertion: &str) -> Option<String> {
    let parts = split_jws(assertion).ok()?;
    parts
        .payload
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------------------
// The service

/// An OAuth error as the token and authorization endpoints report it (RFC 6749 §5.2, §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    UnsupportedResponseType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    AccessDenied(String),
    /// Detail for the log only.
    #[error("{0}")]
    Server(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::Server(_) => "server_error",
        }
    }
}

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        OAuthError::Server(e.to_string())
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Server(e.to_string())
    }
}

/// What an authorization code, a refresh token and the tokens issued from them carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantData {
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    #[serde(default)]
    pub patient: Option<String>,
    #[serde(default)]
    pub encounter: Option<String>,
    pub grant: String,
    /// µs; the grant (and every refresh token of it) ends here.
    pub grant_expires: i64,
    /// Codes only: the exact redirect URI of the request and the PKCE challenge.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// Tells an EHR launch (a staff member opened the app on a patient) from a standalone one.
    #[serde(default)]
    pub ehr_launch: bool,
}

/// An EHR launch context, created by the EHR for one staff member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchData {
    pub patient: String,
    #[serde(default)]
    pub encounter: Option<String>,
}

/// Records kept about a consumed code or refresh token.
#[derive(Serialize, Deserialize)]
struct UsedData {
    grant: String,
    grant_expires: i64,
}

/// Tokens issued at the token endpoint.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub claims: AccessClaims,
    pub refresh_token: Option<String>,
}

/// The OAuth service: clients, keys, codes, refresh tokens and revocation over the store.
#[derive(Clone)]
pub struct OAuth {
    store: Arc<dyn ResourceStore>,
}

fn token_row(
    hash: String,
    kind: &str,
    account_id: &str,
    now_us: i64,
    expires: i64,
    data: Vec<u8>,
) -> TokenRow {
    TokenRow {
        hash,
        kind: kind.to_string(),
        account_id: account_id.to_string(),
        created: now_us,
        last_used: now_us,
        expires,
        data,
    }
}

fn marker_hash(what: &str, value: &str) -> String {
    secret::token_hash(&format!("{what}:{value}"))
}

impl OAuth {
    pub fn new(store: Arc<dyn ResourceStore>) -> OAuth {
        OAuth { store }
    }

    // --- clients

    /// Register a client. For `DevSecret` registrations a fresh secret is generated, stored hashed, and
    /// returned (shown once).
    pub fn register(&self, mut client: Client, now_us: i64) -> Result<Option<String>, AuthError> {
        let mut shown = None;
        if let ClientAuth::DevSecret { secret_hash } = &mut client.auth {
            let s = secret::new_token();
            *secret_hash = secret::token_hash(&s);
            shown = Some(s);
        }
        client.validate()?;
        match self
            .store
            .clients()
            .create_client(&client.to_row(now_us, now_us)?)
        {
            Ok(()) => Ok(shown),
            Err(StoreError::AlreadyExists(_, _)) => Err(AuthError::Conflict(format!(
                "the client id '{}' is taken",
                client.client_id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn client(&self, client_id: &str) -> Result<Option<Client>, AuthError> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Ok(None);
        }
        self.store
            .clients()
            .client(client_id)?
            .map(|r| Client::from_row(&r))
            .transpose()
    }

    /// Revoke a client: it gets no more tokens, and every token it holds stops working at once.
    pub fn revoke_client(&self, client_id: &str, now_us: i64) -> Result<(), AuthError> {
        let row = self
            .store
            .clients()
            .client(client_id)?
            .ok_or_else(|| AuthError::NotFound(format!("no client '{client_id}'")))?;
        let mut client = Client::from_row(&row)?;
        client.revoked = true;
        self.store
            .clients()
            .update_client(&client.to_row(row.created, now_us)?)?;
        Ok(())
    }

    pub fn list_clients(&self) -> Result<Vec<Client>, AuthError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.clients().list_clients(after.as_deref(), 200)?;
            let Some(last) = page.last().map(|r| r.client_id.clone()) else {
                break;
            };
            for r in &page {
                out.push(Client::from_row(r)?);
            }
            after = Some(last);
        }
        Ok(out)
    }

    /// `client_secret_basic` for a development client.
    pub fn check_dev_secret(&self, client: &Client, given: &str) -> bool {
        match &client.auth {
            ClientAuth::DevSecret { secret_hash } => secret::constant_time_eq(
                secret::token_hash(given).as_bytes(),
                secret_hash.as_bytes(),
            ),
            _ => false,
        }
    }

    /// Record an assertion's `jti` until it expires; false when it was used before.
    pub fn use_assertion(
        &self,
        client_id: &str,
        a: &Assertion,
        now_us: i64,
    ) -> Result<bool, AuthError> {
        let row = token_row(
            marker_hash("jti", &format!("{client_id}:{}", a.jti)),
            KIND_JTI,
            client_id,
            now_us,
            a.exp.saturating_add(SKEW_SECS).saturating_mul(SEC),
            Vec::new(),
        );
        match self.store.accounts().insert_token(&row) {
            Ok(()) => Ok(true),
            Err(StoreError::AlreadyExists(_, _)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // --- keys

    /// The signing key, generated and stored on first use (every server then shares the first one stored).
    pub fn signing_key(&self, now_us: i64) -> Result<ServerKey, AuthError> {
        if let Some(row) = self.store.clients().server_key(SIGNING_KEY_NAME)? {
            return ServerKey::from_row(&row);
        }
        let candidate = ServerKey::generate()?;
        let row = self
            .store
            .clients()
            .server_key_or_insert(&candidate.to_row(now_us)?)?;
        ServerKey::from_row(&row)
    }

    /// The signing key if one was ever created; verification never creates one.
    pub fn current_signing_key(&self) -> Result<Option<ServerKey>, AuthError> {
        self.store
            .clients()
            .server_key(SIGNING_KEY_NAME)?
            .map(|r| ServerKey::from_row(&r))
            .transpose()
    }

    // --- launch contexts

    pub fn create_launch(
        &self,
        account_id: &str,
        data: &LaunchData,
        now_us: i64,
    ) -> Result<String, AuthError> {
        let token = secret::new_token();
        self.store.accounts().insert_token(&token_row(
            secret::token_hash(&token),
            KIND_LAUNCH,
            account_id,
            now_us,
            now_us.saturating_add(LAUNCH_TTL_SECS * SEC),
            serde_json::to_vec(data).map_err(internal)?,
        ))?;
        Ok(token)
    }

    /// The live launch context and the account that created it.
    pub fn launch(
        &self,
        launch: &str,
        now_us: i64,
    ) -> Result<Option<(String, LaunchData)>, AuthError> {
        if launch.is_empty() || launch.len() > 128 {
            return Ok(None);
        }
        let Some(row) =
            self.store
                .accounts()
                .token(&secret::token_hash(launch), KIND_LAUNCH, now_us)?
        else {
            return Ok(None);
        };
        let data: LaunchData = serde_json::from_slice(&row.data).map_err(internal)?;
        Ok(Some((row.account_id, data)))
    }

    // --- codes

    /// Issue an authorization code for `account_id` (60 s, one use).
    pub fn create_code(
        &self,
        account_id: &str,
        data: &GrantData,
        now_us: i64,
    ) -> Result<String, AuthError> {
        let code = secret::new_token();
        self.store.accounts().insert_token(&token_row(
            secret::token_hash(&code),
            KIND_CODE,
            account_id,
            now_us,
            now_us.saturating_add(CODE_TTL_SECS * SEC),
            serde_json::to_vec(data).map_err(internal)?,
        ))?;
        Ok(code)
    }

    /// Consume a code: it must be live, issued to this client for this redirect URI, and the verifier must
    /// match its challenge. A code presented a second time revokes the grant (and so every token issued
    /// from the code). Returns the account and the grant.
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now_us: i64,
    ) -> Result<(String, GrantData), OAuthError> {
        let bad = |m: &str| OAuthError::InvalidGrant(m.to_string());
        if code.is_empty() || code.len() > 128 {
            return Err(bad("the authorization code is not valid"));
        }
        let accounts = self.store.accounts();
        let Some(row) = accounts.take_token(&secret::token_hash(code), KIND_CODE, now_us)? else {
            if let Some(used) = accounts.token(&marker_hash("code", code), KIND_USED, now_us)? {
                if let Ok(u) = serde_json::from_slice::<UsedData>(&used.data) {
                    self.revoke_grant(&u.grant, u.grant_expires, now_us)?;
                    tracing::warn!(
                        client = client_id,
                        "an authorization code was presented twice: its tokens are revoked"
                    );
                }
                return Err(bad(
                    "the authorization code was already used; the tokens issued from it are revoked",
                ));
            }
            return Err(bad("the authorization code is not valid or has expired"));
        };
        let data: GrantData =
            serde_json::from_slice(&row.data).map_err(|e| OAuthError::Server(e.to_string()))?;
        // Remember the code as used before anything else, so a replay racing this request revokes the grant.
        let used = UsedData {
            grant: data.grant.clone(),
            grant_expires: data.grant_expires,
        };
        accounts.insert_token(&token_row(
            marker_hash("code", code),
            KIND_USED,
            &row.account_id,
            now_us,
            now_us.saturating_add(USED_CODE_MEMORY_SECS * SEC),
            serde_json::to_vec(&used).map_err(|e| OAuthError::Server(e.to_string()))?,
        ))?;
        if data.client_id != client_id {
            return Err(bad("the authorization code was issued to another client"));
        }
        if data.redirect_uri.as_deref() != redirect_uri {
            return Err(bad("redirect_uri does not match the authorization request"));
        }
        let challenge = data.code_challenge.as_deref().unwrap_or("");
        match verifier {
            None => {
                return Err(OAuthError::InvalidRequest(
                    "code_verifier is required (PKCE)".into(),
                ))
            }
            Some(v) if !pkce_matches(v, challenge) => {
                return Err(bad("code_verifier does not match the code_challenge"))
            }
            Some(_) => {}
        }
        Ok((row.account_id, data))
    }

    // --- access and refresh tokens

    /// Sign an access token for `sub` and, when `refresh`, a refresh token of the same grant.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &self,
        sub: &str,
        data: &GrantData,
        refresh: bool,
        account_id: &str,
        issuer: &str,
        audience: &str,
        now_us: i64,
    ) -> Result<Issued, AuthError> {
        let now = now_us / SEC;
        let claims = AccessClaims {
            iss: issuer.to_string(),
            sub: sub.to_string(),
            aud: Value::String(audience.to_string()),
            exp: now + ACCESS_TTL_SECS,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: data.scope.clone(),
            client_id: data.client_id.clone(),
            patient: data.patient.clone(),
            encounter: data.encounter.clone(),
            grant: (!data.grant.is_empty()).then(|| data.grant.clone()),
        };
        let key = self.signing_key(now_us)?;
        let access_token = key.sign(&serde_json::to_value(&claims).map_err(internal)?)?;
        let refresh_token = if refresh {
            let t = secret::new_token();
            let stored = GrantData {
                redirect_uri: None,
                code_challenge: None,
                ..data.clone()
            };
            self.store.accounts().insert_token(&token_row(
                secret::token_hash(&t),
                KIND_REFRESH,
                account_id,
                now_us,
                data.grant_expires,
                serde_json::to_vec(&stored).map_err(internal)?,
            ))?;
            Some(t)
        } else {
            None
        };
        Ok(Issued {
            access_token,
            expires_in: ACCESS_TTL_SECS,
            claims,
            refresh_token,
        })
    }

    /// Consume a refresh token of this client (rotation: the caller issues a new one). A refresh token
    /// presented again after its rotation revokes the grant.
    pub fn redeem_refresh(
        &self,
        token: &str,
        client_id: &str,
        now_us: i64,
    ) -> Result<(String, GrantData), OAuthError> {
        let bad = |m: &str| OAuthError::InvalidGrant(m.to_string());
        if token.is_empty() || token.len() > 128 {
            return Err(bad("the refresh token is not valid"));
        }
        let accounts = self.store.accounts();
        let Some(row) = accounts.take_token(&secret::token_hash(token), KIND_REFRESH, now_us)?
        else {
            if let Some(used) = accounts.token(&marker_hash("refresh", token), KIND_USED, now_us)? {
                if let Ok(u) = serde_json::from_slice::<UsedData>(&used.data) {
                    self.revoke_grant(&u.grant, u.grant_expires, now_us)?;
                    tracing::warn!(
                        client = client_id,
                        "a rotated refresh token was presented again: its grant is revoked"
                    );
                }
            }
            return Err(bad(
                "the refresh token is not valid, was already used, or has expired",
            ));
        };
        let data: GrantData =
            serde_json::from_slice(&row.data).map_err(|e| OAuthError::Server(e.to_string()))?;
        let used = UsedData {
            grant: data.grant.clone(),
            grant_expires: data.grant_expires,
        };
        accounts.insert_token(&token_row(
            marker_hash("refresh", token),
            KIND_USED,
            &row.account_id,
            now_us,
            data.grant_expires,
            serde_json::to_vec(&used).map_err(|e| OAuthError::Server(e.to_string()))?,
        ))?;
        if data.client_id != client_id {
            // a stolen token tried by another client: stop the grant
            self.revoke_grant(&data.grant, data.grant_expires, now_us)?;
            return Err(bad("the refresh token was issued to another client"));
        }
        if self.grant_revoked(&data.grant, now_us)? {
            return Err(bad("the grant was revoked"));
        }
        Ok((row.account_id, data))
    }

    /// The live refresh token's grant, without consuming it (introspection, revocation).
    pub fn refresh_grant(
        &self,
        token: &str,
        now_us: i64,
    ) -> Result<Option<(TokenRow, GrantData)>, AuthError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let Some(row) =
            self.store
                .accounts()
                .token(&secret::token_hash(token), KIND_REFRESH, now_us)?
        else {
            return Ok(None);
        };
        let data: GrantData = serde_json::from_slice(&row.data).map_err(internal)?;
        if self.grant_revoked(&data.grant, now_us)? {
            return Ok(None);
        }
        Ok(Some((row, data)))
    }

    /// Revoke a refresh token (RFC 7009): the token, its grant, and every access token of the grant.
    pub fn revoke_refresh(&self, token: &str, now_us: i64) -> Result<(), AuthError> {
        if let Some(row) =
            self.store
                .accounts()
                .take_token(&secret::token_hash(token), KIND_REFRESH, now_us)?
        {
            let data: GrantData = serde_json::from_slice(&row.data).map_err(internal)?;
            self.revoke_grant(&data.grant, data.grant_expires, now_us)?;
        }
        Ok(())
    }

    /// Stop a grant: refresh tokens of it are refused, access tokens of it stop working. Kept until `until`
    /// (µs; the grant's end, after which none of its tokens is valid anyway).
    pub fn revoke_grant(&self, grant: &str, until: i64, now_us: i64) -> Result<(), AuthError> {
        self.mark_revoked(
            "grant",
            grant,
            until.max(now_us + ACCESS_TTL_SECS * SEC),
            now_us,
        )
    }

    /// Stop one access token (by `jti`) until it would have expired (`exp`, seconds).
    pub fn revoke_access(&self, jti: &str, exp_secs: i64, now_us: i64) -> Result<(), AuthError> {
        self.mark_revoked(
            "jti",
            jti,
            exp_secs.saturating_add(SKEW_SECS).saturating_mul(SEC),
            now_us,
        )
    }

    fn mark_revoked(&self, what: &str, id: &str, until: i64, now_us: i64) -> Result<(), AuthError> {
        let row = token_row(
            marker_hash(what, id),
            KIND_REVOKED,
            "",
            now_us,
            until,
            Vec::new(),
        );
        match self.store.accounts().insert_token(&row) {
            Ok(()) | Err(StoreError::AlreadyExists(_, _)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn grant_revoked(&self, grant: &str, now_us: i64) -> Result<bool, AuthError> {
        Ok(self
            .store
            .accounts()
            .token(&marker_hash("grant", grant), KIND_REVOKED, now_us)?
            .is_some())
    }

    /// Is this access token revoked (itself, its grant, or its client)?
    pub fn access_revoked(&self, claims: &AccessClaims, now_us: i64) -> Result<bool, AuthError> {
        let accounts = self.store.accounts();
        if accounts
            .token(&marker_hash("jti", &claims.jti), KIND_REVOKED, now_us)?
            .is_some()
        {
            return Ok(true);
        }
        if let Some(g) = &claims.grant {
            if self.grant_revoked(g, now_us)? {
                return Ok(true);
            }
        }
        Ok(self.client(&claims.client_id)?.is_none_or(|c| c.revoked))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An RS384 assertion made with a throwaway RSA-2048 key (`openssl genrsa 2048`, `openssl dgst -sha384
    /// -sign`): ring verifies RSA but cannot generate RSA keys.
    #[test]
    fn rs384_client_assertion_vector() {
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "rsa-1", "alg": "RS384", "e": "AQAB",
            "n": "0TxiPsSndeSPjt6kgiBj7O2OJ0XnEie1B2nqvOYOr-BgdHmtX_O0w4uaDuZQyic4NxUJi5BrFK2vGmdds-IOvj-Mjb2w5B2npdXAfRtcHzikNlLy3azqd53iaUA7HDy_IocHukp6oiTEwXYF8z0eytWQkPeuvZLXpkRqGXHMcLmtV3OvTbidqblP8K2xPC_aVeMJmt7LjTwTNGphgCgeduaN7-TBw7aa2A3OtxYwGr0-k2c7bq7kw08f_W9AHHHRj_gmHunTUAwvX8LvWZSXtBmC3HobF5QocerZHmL96CeYxj1B1BDXNXhgR5Zi3hZBwWvLN0tHP4m0XNrdiRw2sw"}]});
        let assertion = "eyJhbGciOiJSUzM4NCIsImtpZCI6InJzYS0xIiwidHlwIjoiSldUIn0.eyJpc3MiOiJzdmMiLCJzdWIiOiJzdmMiLCJhdWQiOiJodHRwczovL2Voci5leGFtcGxlL29hdXRoL3Rva2VuIiwiZXhwIjoxNzAwMDAwMjQwLCJqdGkiOiJyMSJ9.capLPZ5shJgy_HAuIpmobC0QNLVnXFqv2y8SQSM11K9pNOAWeoxGgs5c8uCc63zh2dwyAXMeniI_H5cYQmrHrRJ4ZXzuns2XYCAZwMvNrDBRFRNdCsh4V91KmmP-osy33BQ85x-hh68ucdPWexiDRLNp7krGeTDiJBCz-OoZvIJrd4uAD4jI3AWhT76ksE9rWqBJC26ZzfrN-Xne4LxWwA3fr2ramY4BbMxvH0StfdQOMLkWNd1ibkFwVdSukTeE19v30KL1rx1BW4JzB6Wi17CgYJ7o-SJUzvyIA_a5Ni19eARY203u7FjKcMNIJ-ZydSqyEzEkuxthl41PSIHa1g";
        let url = "https://ehr.example/oauth/token";
        let a = verify_client_assertion(&jwks, assertion, "svc", url, 1_700_000_000).unwrap();
        assert_eq!(a.jti, "r1");
        assert_eq!(a.exp, 1_700_000_240);
        assert_eq!(
            verify_client_assertion(&jwks, assertion, "svc", url, 1_700_000_240),
            Err(JwtError::Expired)
        );
        let mut tampered = assertion.to_string();
        tampered.pop();
        tampered.push(if assertion.ends_with('A') { 'B' } else { 'A' });
        assert!(verify_client_assertion(&jwks, &tampered, "svc", url, 1_700_000_000).is_err());
        assert!(check_client_key(&jwks["keys"][0]).is_ok());
    }

    #[test]
    fn client_keys_must_be_usable_public_keys() {
        let x = b64(&[1u8; 48]);
        let good = json!({"kty": "EC", "crv": "P-384", "kid": "k", "x": x, "y": x});
        assert!(check_client_key(&good).is_ok());
        let mut private = good.clone();
        private["d"] = json!(x);
        assert!(check_client_key(&private).is_err());
        let mut p256 = good.clone();
        p256["crv"] = json!("P-256");
        assert!(check_client_key(&p256).is_err());
        let short = json!({"kty": "EC", "crv": "P-384", "kid": "k", "x": "AA", "y": "AA"});
        assert!(check_client_key(&short).is_err());
        let rsa =
            json!({"kty": "RSA", "kid": "r", "n": b64(&[7u8; 256]), "e": "AQAB", "alg": "RS384"});
        assert!(check_client_key(&rsa).is_ok());
        let weak = json!({"kty": "RSA", "kid": "r", "n": b64(&[7u8; 128]), "e": "AQAB"});
        assert!(check_client_key(&weak).is_err());
        assert!(check_client_key(&json!({"kty": "EC", "crv": "P-384", "x": x, "y": x})).is_err());
    }

    #[test]
    fn basic_credentials() {
        // "my%20app:s3cr%3At" base64
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20app:s3cr%3At")
        );
        assert_eq!(parse_basic(&h), Some(("my app".into(), "s3cr:t".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn pkce_s256_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            challenge
        ));
        assert!(!pkce_matches("", challenge));
        // `plain`: the verifier itself as the challenge
        assert!(!pkce_matches(verifier, verifier));
        assert!(!valid_challenge(""));
        assert!(!valid_challenge("short"));
    }

    #[test]
    fn scopes_are_granted_when_covered() {
        let reg: Vec<String> = [
            "patient/*.rs",
            "user/Observation.read",
            "launch/patient",
            "offline_access",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = grant_scopes(
            "launch/patient openid patient/Observation.rs?category=laboratory patient/Patient.read \
             patient/Observation.cruds user/Observation.rs user/Patient.rs system/*.rs offline_access bogus",
            &reg,
            &["patient", "user"],
            true,
        );
        assert_eq!(
            g,
            [
                "launch/patient",
                "patient/Observation.rs?category=laboratory",
                "patient/Patient.read",
                "user/Observation.rs",
                "offline_access"
            ]
        );
        let backend = grant_scopes(
            "system/*.rs launch",
            &["system/*.rs".to_string()],
            &["system"],
            false,
        );
        assert_eq!(backend, ["system/*.rs"]);
        assert!(grant_scopes("patient/Nothing.rs", &reg, &["patient"], true).is_empty());
        assert!(ScopeParts::parse("patient/Observation.sr").is_none());
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "https://ehr.example", "sub": "acct", "aud": "https://ehr.example/fhir", "exp": now + 60,
               "iat": now, "jti": "j1", "scope": "user/*.rs", "client_id": "app"})
    }

    #[test]
    fn access_tokens_round_trip_and_refuse_forgeries() {
        let key = ServerKey::generate().unwrap();
        let now = 1_700_000_000;
        let token = key.sign(&claims(now)).unwrap();
        let ok = key
            .verify_access_token(
                &token,
                "https://ehr.example",
                "https://ehr.example/fhir",
                now,
            )
            .unwrap();
        assert_eq!(ok.sub, "acct");
        assert_eq!(
            key.verify_access_token(&token, "https://ehr.example", "https://other/fhir", now),
            Err(JwtError::Audience)
        );
        assert_eq!(
            key.verify_access_token(
                &token,
                "https://ehr.example",
                "https://ehr.example/fhir",
                now + 61
            ),
            Err(JwtError::Expired)
        );
        // alg=none with no signature
        let parts: Vec<&str> = token.split('.').collect();
        let none = format!("{}.{}.", b64(br#"{"alg":"none","kid":"x"}"#), parts[1]);
        assert!(key
            .verify_access_token(
                &none,
                "https://ehr.example",
                "https://ehr.example/fhir",
                now
            )
            .is_err());
        // another key's token names another kid
        let other = ServerKey::generate().unwrap().sign(&claims(now)).unwrap();
        assert_eq!(
            key.verify_access_token(
                &other,
                "https://ehr.example",
                "https://ehr.example/fhir",
                now
            ),
            Err(JwtError::UnknownKey)
        );
        // a changed payload breaks the signature
        let mut c = claims(now);
        c["sub"] = json!("someone-else");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            key.verify_access_token(
                &forged,
                "https://ehr.example",
                "https://ehr.example/fhir",
                now
            ),
            Err(JwtError::Signature)
        );
        // the key survives storage
        let back = ServerKey::from_row(&key.to_row(0).unwrap()).unwrap();
        assert_eq!(back.kid, key.kid);
        assert!(back
            .verify_access_token(
                &token,
                "https://ehr.example",
                "https://ehr.example/fhir",
                now
            )
            .is_ok());
        assert_eq!(key.jwk().unwrap()["kid"], key.kid);
    }

    #[test]
    fn es384_client_assertions() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let pubkey = pair.public_key().as_ref();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": b64(&pubkey[1..49]),
                                    "y": b64(&pubkey[49..97])}]});
        let now = 1_700_000_000;
        let sign = |header: Value, claims: Value| {
            let signed = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = pair.sign(&rng, signed.as_bytes()).unwrap();
            format!("{signed}.{}", b64(sig.as_ref()))
        };
        let url = "https://ehr.example/oauth/token";
        let good = json!({"iss": "svc", "sub": "svc", "aud": url, "exp": now + 240, "jti": "a1"});
        let h = json!({"alg": "ES384", "kid": "k1", "typ": "JWT"});
        let a = verify_client_assertion(&jwks, &sign(h.clone(), good.clone()), "svc", url, now)
            .unwrap();
        assert_eq!(a.jti, "a1");
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("https://ehr.example/fhir");
        assert_eq!(
            verify_client_assertion(&jwks, &sign(h.clone(), wrong_aud), "svc", url, now),
            Err(JwtError::Audience)
        );
        let mut far = good.clone();
        far["exp"] = json!(now + 3600);
        assert_eq!(
            verify_client_assertion(&jwks, &sign(h.clone(), far), "svc", url, now),
            Err(JwtError::TooLong)
        );
        assert_eq!(
            verify_client_assertion(&jwks, &sign(h.clone(), good.clone()), "other", url, now),
            Err(JwtError::Issuer)
        );
        assert_eq!(
            verify_client_assertion(
                &jwks,
                &sign(json!({"alg": "ES384", "kid": "k2"}), good.clone()),
                "svc",
                url,
                now
            ),
            Err(JwtError::UnknownKey)
        );
        assert_eq!(
            verify_client_assertion(
                &jwks,
                &sign(json!({"alg": "ES256", "kid": "k1"}), good),
                "svc",
                url,
                now
            ),
            Err(JwtError::Algorithm)
        );
    }
}
