//! Signing in and out, TOTP enrolment, forgotten passwords.
//!
//! - `POST /login`: [`continuum_auth::Auth::login`] (lockout and per-address throttling live there). One
//!   message for every refusal, so the page never tells whether the account exists, is locked, or which
//!   factor was wrong. An account without a TOTP secret is sent to `/enroll-totp` after its password (with a
//!   short-lived one-time enrolment token in a cookie, holding the new secret server-side); the session starts
//!   only once a code from the app has been confirmed.
//! - `POST /login/card`: the verified smart-card identity of the connection (`crate::tls::client_identity`)
//!   mapped to an account by its certificate identifier. A password lockout does not block a card: the card is
//!   the stronger credential, and a lock that anyone could trigger by typing wrong passwords must not shut a
//!   card holder out.
//! - Every session starts with a new random id (the one a visitor brought is ended, never reused), and every
//!   successful or refused sign-in and every logout is audited.
//! - `/forgot` always gives the same answer and does its work after answering (the answer's timing tells
//!   nothing either); `/reset` takes the one-time token, asks for the TOTP code too when the account has one,
//!   sets the password, unlocks the account and ends all its sessions.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use continuum_auth::{password, secret, totp, Account, AccountKind, LoginError};
use continuum_core::access::Principal;
use continuum_core::audit::{Event, Outcome};
use continuum_store::OutboxRow;

use super::csrf;
use super::session::{
    address, attempted_principal, audit_login, cookie, cookie_name, session_cookie_name,
    set_cookie, signed_in,
};
use super::views::{self, render, Chrome};
use super::{blocking, form, now_us, query, see_other};
use crate::AppState;

const SEC: i64 = 1_000_000;

/// Token kind of a pending TOTP enrolment (its data: the new secret, base32).
const ENROL_KIND: &str = "totp-enroll";
const ENROL_COOKIE: &str = "continuum_enroll";
const ENROL_TTL_SECS: i64 = 10 * 60;
/// Wrong codes allowed per enrolment or per reset before the token is thrown away.
const MAX_CODE_TRIES: u32 = 5;

/// Token kind of a password reset link.
const RESET_KIND: &str = "reset";
const RESET_TTL_SECS: i64 = 30 * 60;
/// Reset requests one address may make per window before they are silently dropped.
const MAX_RESET_REQUESTS_PER_ADDRESS: u32 = 20;
const WINDOW_SECS: i64 = 15 * 60;

const CARD_REFUSED: &str = "No valid smart card was presented, or it is not linked to an account. Insert your card and try again, or sign in with your password.";

/// Where an account lands after signing in.
fn home_of(account: &Account) -> &'static str {
    match account.kind {
        AccountKind::Patient => "/portal",
        _ => "/workspace",
    }
}

/// Where to go after signing in when the sign-in was asked for on the way somewhere (`/login?next=…`, e.g. an
/// app's authorization request): a path on this server only — never another site (`//host`, `/\host`,
/// absolute URLs), never control characters.
fn safe_next(v: Option<&String>) -> Option<String> {
    let v = v?.trim();
    let ok = v.len() <= 4096
        && v.starts_with('/')
        && !v.starts_with("//")
        && !v.chars().any(|c| c.is_control() || c == '\\');
    ok.then(|| v.to_string())
}

fn with_cookie(mut res: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn login_notice(code: Option<&str>) -> Option<String> {
    match code? {
        "reset" => Some("Your password was changed. Sign in with your new password.".into()),
        "enrol-expired" => Some("The set-up step expired. Sign in again to continue.".into()),
        _ => None,
    }
}

struct LoginView {
    username: String,
    error: Option<String>,
    notice: Option<String>,
    next: Option<String>,
}

fn login_page(parts: &Parts, state: &AppState, status: StatusCode, view: LoginView) -> Response {
    let (csrf, set) = csrf::pre_session_token(parts, state);
    let page = views::Login {
        chrome: Chrome::anonymous(),
        csrf,
        username: view.username,
        error: view.error,
        notice: view.notice,
        next: view.next,
        card: state.config.client_trust.is_some(),
    };
    with_cookie(render(status, &page), set)
}

pub(crate) async fn login_form(State(state): State<AppState>, parts: Parts) -> Response {
    let q = query(&parts);
    let view = LoginView {
        username: String::new(),
        error: None,
        notice: login_notice(q.get("m").map(String::as_str)),
        next: safe_next(q.get("next")),
    };
    login_page(&parts, &state, StatusCode::OK, view)
}

pub(crate) async fn login(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let f = form(&body);
    if !csrf::pre_session_form_ok(&parts, &state, f.get("csrf")) {
        return views::forbidden_form(Chrome::anonymous());
    }
    let username: String = f
        .get("username")
        .map(|s| s.trim().chars().take(128).collect())
        .unwrap_or_default();
    let password_text = f.get("password").cloned().unwrap_or_default();
    let code = f.get("code").cloned().filter(|c| !c.trim().is_empty());
    let next = safe_next(f.get("next"));
    let addr = address(&parts);
    let st = state.clone();
    let name = username.clone();
    let result = blocking(move || {
        let where_from = addr.clone().unwrap_or_else(|| "unknown".into());
        let r = st.auth.login(
            &name,
            &password_text,
            code.as_deref(),
            &where_from,
            now_us(),
        );
        Ok(match r {
            Ok(account) if account.kind == AccountKind::Service => {
                audit_login(
                    &st,
                    &account.principal(addr),
                    Event::Login,
                    Outcome::Refused,
                    "service accounts cannot sign in to the pages",
                );
                Err(LoginError::Refused)
            }
            Ok(account) => Ok(account),
            Err(e) => {
                let who = attempted_principal(&st, &name, addr);
                let detail = match e {
                    LoginError::Throttled => "too many sign-in attempts from this address",
                    LoginError::Refused => "password sign-in refused",
                };
                audit_login(&st, &who, Event::Login, Outcome::Refused, detail);
                Err(e)
            }
        })
    })
    .await;
    match result {
        Err(res) => res,
        Ok(Err(e)) => {
            let status = match e {
                LoginError::Throttled => StatusCode::TOO_MANY_REQUESTS,
                LoginError::Refused => StatusCode::UNAUTHORIZED,
            };
            let view = LoginView {
                username,
                error: Some(e.to_string()),
                notice: None,
                next,
            };
            login_page(&parts, &state, status, view)
        }
        Ok(Ok(account)) if account.totp_secret.is_none() => {
            begin_enrolment(&state, account, next).await
        }
        Ok(Ok(account)) => {
            let how = "password and authenticator code";
            start_session(&state, &parts, account, how, next, None).await
        }
    }
}

/// Start a browser session for `account` (its password and second factor, or its card, are checked): a new
/// session id, the one the visitor brought ended; audited; redirect to the account's home page.
async fn start_session(
    state: &AppState,
    parts: &Parts,
    account: Account,
    how: &'static str,
    next: Option<String>,
    extra_cookie: Option<HeaderValue>,
) -> Response {
    let name = session_cookie_name(state);
    let brought = cookie(&parts.headers, name);
    let addr = address(parts);
    let st = state.clone();
    let acct = account.clone();
    let token = blocking(move || {
        if let Some(old) = brought {
            st.auth
                .end_session(&secret::token_hash(&old))
                .map_err(|e| e.to_string())?;
        }
        let (token, _) = st
            .auth
            .start_session(&st.config.sessions, &acct, now_us())
            .map_err(|e| e.to_string())?;
        audit_login(
            &st,
            &acct.principal(addr),
            Event::Login,
            Outcome::Success,
            how,
        );
        Ok(token)
    })
    .await;
    let token = match token {
        Ok(t) => t,
        Err(res) => return res,
    };
    let to = next.unwrap_or_else(|| home_of(&account).to_string());
    let res = with_cookie(see_other(&to), extra_cookie);
    with_cookie(res, set_cookie(state, name, &token, None))
}

/// What a pending enrolment token holds (as JSON).
struct EnrolData {
    /// The new TOTP secret, base32.
    secret: String,
    /// Where to go once enrolled.
    next: Option<String>,
}

/// The password was right and the account has no second factor yet: keep a new secret server-side under a
/// one-time token and send the visitor to set up their app.
async fn begin_enrolment(state: &AppState, account: Account, next: Option<String>) -> Response {
    let st = state.clone();
    let token = blocking(move || {
        let data = EnrolData {
            secret: totp::to_base32(&totp::new_secret()),
            next,
        };
        let data = serde_json::json!({ "secret": data.secret, "next": data.next }).to_string();
        let data = data.into_bytes();
        let accounts = st.fhir.store().accounts();
        accounts
            .delete_account_tokens(&account.id, Some(ENROL_KIND))
            .map_err(|e| e.to_string())?;
        st.auth
            .issue_token(&account.id, ENROL_KIND, now_us(), ENROL_TTL_SECS, &data)
            .map_err(|e| e.to_string())
    })
    .await;
    match token {
        Ok(token) => with_cookie(
            see_other("/enroll-totp"),
            set_cookie(
                state,
                &cookie_name(state, ENROL_COOKIE),
                &token,
                Some(ENROL_TTL_SECS),
            ),
        ),
        Err(res) => res,
    }
}

/// A pending enrolment: the account, its new secret and where to go next.
fn pending_enrolment(
    state: &AppState,
    token: &str,
    now: i64,
) -> Result<Option<(Account, EnrolData)>, String> {
    let hash = secret::token_hash(token);
    let Some(row) = state
        .fhir
        .store()
        .accounts()
        .token(&hash, ENROL_KIND, now)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let account = state
        .auth
        .by_id(&row.account_id)
        .map_err(|e| e.to_string())?
        .filter(|a| !a.disabled && a.totp_secret.is_none());
    let data = serde_json::from_slice::<serde_json::Value>(&row.data)
        .ok()
        .and_then(|v| {
            Some(EnrolData {
                secret: v.get("secret")?.as_str()?.to_string(),
                next: v.get("next").and_then(|n| n.as_str()).map(str::to_string),
            })
        })
        .filter(|d| totp::from_base32(&d.secret).is_some());
    Ok(account.zip(data))
}

fn enrol_expired(state: &AppState) -> Response {
    with_cookie(
        see_other("/login?m=enrol-expired"),
        set_cookie(state, &cookie_name(state, ENROL_COOKIE), "", Some(0)),
    )
}

fn enrol_page(
    parts: &Parts,
    state: &AppState,
    status: StatusCode,
    account: &Account,
    secret_b32: &str,
    error: Option<String>,
) -> Response {
    let secret_bytes = totp::from_base32(secret_b32).unwrap_or_default();
    let uri = totp::otpauth_uri(&secret_bytes, "Continuum", &account.username);
    let grouped = secret_b32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let (csrf, set) = csrf::pre_session_token(parts, state);
    let page = views::Enroll {
        chrome: Chrome::anonymous(),
        csrf,
        qr: totp::qr_svg(&uri),
        secret: grouped,
        username: account.username.clone(),
        error,
    };
    with_cookie(render(status, &page), set)
}

pub(crate) async fn enroll_form(State(state): State<AppState>, parts: Parts) -> Response {
    let Some(token) = cookie(&parts.headers, &cookie_name(&state, ENROL_COOKIE)) else {
        return see_other("/login");
    };
    let st = state.clone();
    match blocking(move || pending_enrolment(&st, &token, now_us())).await {
        Err(res) => res,
        Ok(None) => enrol_expired(&state),
        Ok(Some((account, data))) => {
            enrol_page(&parts, &state, StatusCode::OK, &account, &data.secret, None)
        }
    }
}

enum Enrolment {
    Expired,
    WrongCode(Account, String),
    Done(Account, Option<String>),
}

pub(crate) async fn enroll(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let f = form(&body);
    if !csrf::pre_session_form_ok(&parts, &state, f.get("csrf")) {
        return views::forbidden_form(Chrome::anonymous());
    }
    let Some(token) = cookie(&parts.headers, &cookie_name(&state, ENROL_COOKIE)) else {
        return see_other("/login");
    };
    let code = f.get("code").cloned().unwrap_or_default();
    let st = state.clone();
    let outcome = blocking(move || {
        let now = now_us();
        let Some((mut account, data)) = pending_enrolment(&st, &token, now)? else {
            return Ok(Enrolment::Expired);
        };
        let secret_b32 = data.secret;
        let accounts = st.fhir.store().accounts();
        let hash = secret::token_hash(&token);
        let secret_bytes = totp::from_base32(&secret_b32).unwrap_or_default();
        let Some(step) = totp::verify(&secret_bytes, &code, now / SEC, None) else {
            let tries = accounts
                .throttle_hit(&format!("totp-enroll:{hash}"), now, ENROL_TTL_SECS * SEC)
                .map_err(|e| e.to_string())?;
            if tries >= MAX_CODE_TRIES {
                accounts.delete_token(&hash).map_err(|e| e.to_string())?;
                return Ok(Enrolment::Expired);
            }
            return Ok(Enrolment::WrongCode(account, secret_b32));
        };
        // one-time: a second confirmation of the same enrolment finds nothing
        if accounts
            .take_token(&hash, ENROL_KIND, now)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Ok(Enrolment::Expired);
        }
        account.totp_secret = Some(secret_b32);
        account.totp_last_step = Some(step);
        st.auth.update(&account).map_err(|e| e.to_string())?;
        Ok(Enrolment::Done(account, data.next))
    })
    .await;
    match outcome {
        Err(res) => res,
        Ok(Enrolment::Expired) => enrol_expired(&state),
        Ok(Enrolment::WrongCode(account, secret_b32)) => enrol_page(
            &parts,
            &state,
            StatusCode::BAD_REQUEST,
            &account,
            &secret_b32,
            Some("That code did not match. Check that the time on your phone is right and enter the code the app shows now.".into()),
        ),
        Ok(Enrolment::Done(account, next)) => {
            let clear = set_cookie(&state, &cookie_name(&state, ENROL_COOKIE), "", Some(0));
            start_session(
                &state,
                &parts,
                account,
                "password; authenticator app enrolled",
                next,
                clear,
            )
            .await
        }
    }
}

pub(crate) async fn card_login(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let f = form(&body);
    if !csrf::pre_session_form_ok(&parts, &state, f.get("csrf")) {
        return views::forbidden_form(Chrome::anonymous());
    }
    let identity = crate::tls::client_identity(&parts, &state);
    let next = safe_next(f.get("next"));
    let addr = address(&parts);
    let st = state.clone();
    let account = blocking(move || {
        let refuse = |detail: &str, who: String| {
            let mut p = Principal::system(&who);
            p.account_id = "anonymous".into();
            p.address = addr.clone();
            audit_login(&st, &p, Event::Login, Outcome::Refused, detail);
        };
        let Some(identity) = identity else {
            refuse(
                "smart-card sign-in without a verified certificate",
                "smart card".into(),
            );
            return Ok(None);
        };
        let row = st
            .fhir
            .store()
            .accounts()
            .account_by_cert(&identity.id)
            .map_err(|e| e.to_string())?;
        let account = row
            .map(|r| Account::from_row(&r))
            .transpose()
            .map_err(|e| e.to_string())?
            .filter(|a| !a.disabled && a.kind != AccountKind::Service);
        if account.is_none() {
            let who: String = identity.subject.chars().take(128).collect();
            refuse("certificate not linked to an enabled account", who);
        }
        Ok(account)
    })
    .await;
    match account {
        Err(res) => res,
        Ok(None) => {
            let view = LoginView {
                username: String::new(),
                error: Some(CARD_REFUSED.into()),
                notice: None,
                next,
            };
            login_page(&parts, &state, StatusCode::UNAUTHORIZED, view)
        }
        Ok(Some(account)) => start_session(&state, &parts, account, "smart card", next, None).await,
    }
}

pub(crate) async fn logout(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let s = match signed_in(&state, &parts).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let f = form(&body);
    if !csrf::session_form_ok(&parts, &state, f.get("csrf"), &s.session.data.csrf) {
        return views::forbidden_form(Chrome::for_user(&s));
    }
    let st = state.clone();
    let principal = s.access.principal.clone();
    let hash = s.session.hash.clone();
    let done = blocking(move || {
        st.auth.end_session(&hash).map_err(|e| e.to_string())?;
        audit_login(
            &st,
            &principal,
            Event::Logout,
            Outcome::Success,
            "signed out",
        );
        Ok(())
    })
    .await;
    if let Err(res) = done {
        return res;
    }
    with_cookie(
        see_other("/"),
        set_cookie(&state, session_cookie_name(&state), "", Some(0)),
    )
}

pub(crate) async fn forgot_form(State(state): State<AppState>, parts: Parts) -> Response {
    let (csrf, set) = csrf::pre_session_token(&parts, &state);
    let page = views::Forgot {
        chrome: Chrome::anonymous(),
        csrf,
        sent: false,
    };
    with_cookie(render(StatusCode::OK, &page), set)
}

pub(crate) async fn forgot(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let f = form(&body);
    if !csrf::pre_session_form_ok(&parts, &state, f.get("csrf")) {
        return views::forbidden_form(Chrome::anonymous());
    }
    let username: String = f
        .get("username")
        .map(|s| s.trim().chars().take(128).collect())
        .unwrap_or_default();
    let origin = csrf::public_origin(&parts, &state);
    let where_from = address(&parts).unwrap_or_else(|| "unknown".into());
    let st = state.clone();
    // The work happens after the answer: its duration must not tell whether the account exists.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = send_reset_link(&st, &username, &origin, &where_from) {
            tracing::error!(error = %e, "password reset request failed");
        }
    });
    let (csrf, set) = csrf::pre_session_token(&parts, &state);
    let page = views::Forgot {
        chrome: Chrome::anonymous(),
        csrf,
        sent: true,
    };
    with_cookie(render(StatusCode::OK, &page), set)
}

fn send_reset_link(
    state: &AppState,
    username: &str,
    origin: &str,
    where_from: &str,
) -> Result<(), String> {
    let now = now_us();
    let accounts = state.fhir.store().accounts();
    let hits = accounts
        .throttle_hit(&format!("reset-addr:{where_from}"), now, WINDOW_SECS * SEC)
        .map_err(|e| e.to_string())?;
    if hits > MAX_RESET_REQUESTS_PER_ADDRESS {
        return Ok(());
    }
    let account = state
        .auth
        .by_username(username)
        .map_err(|e| e.to_string())?
        .filter(|a| !a.disabled && a.kind != AccountKind::Service);
    let Some((account, email)) = account.and_then(|a| {
        let email = a.email.clone()?;
        Some((a, email))
    }) else {
        return Ok(());
    };
    let token = state
        .auth
        .issue_token(&account.id, RESET_KIND, now, RESET_TTL_SECS, b"{}")
        .map_err(|e| e.to_string())?;
    let body = format!(
        "Hello {name},\n\nsomeone (we hope you) asked to reset the password of your Continuum account '{user}'.\n\
         Open this link to choose a new one; it also unlocks the account:\n\n{origin}/reset?token={token}\n\n\
         The link works once, for 30 minutes. If you did not ask for it, ignore this message: your password \
         stays as it is.\n",
        name = account.display_name,
        user = account.username,
    );
    accounts
        .enqueue_mail(&OutboxRow {
            seq: 0,
            created: now,
            recipient: email,
            subject: "Reset your Continuum password".into(),
            body,
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn reset_invalid() -> Response {
    render(
        StatusCode::BAD_REQUEST,
        &views::Message {
            chrome: Chrome::anonymous(),
            title: "This link cannot be used".into(),
            message: "The reset link has expired or was already used. Ask for a new one.".into(),
            link: Some(("/forgot".into(), "Ask for a new reset link".into())),
        },
    )
}

/// The live reset token's account.
fn reset_account(state: &AppState, token: &str, now: i64) -> Result<Option<Account>, String> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let Some(row) = state
        .fhir
        .store()
        .accounts()
        .token(&secret::token_hash(token), RESET_KIND, now)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    Ok(state
        .auth
        .by_id(&row.account_id)
        .map_err(|e| e.to_string())?
        .filter(|a| !a.disabled))
}

fn reset_page(
    parts: &Parts,
    state: &AppState,
    status: StatusCode,
    token: String,
    needs_code: bool,
    error: Option<String>,
) -> Response {
    let (csrf, set) = csrf::pre_session_token(parts, state);
    let page = views::Reset {
        chrome: Chrome::anonymous(),
        csrf,
        token,
        needs_code,
        error,
    };
    with_cookie(render(status, &page), set)
}

pub(crate) async fn reset_form(State(state): State<AppState>, parts: Parts) -> Response {
    let token = query(&parts).remove("token").unwrap_or_default();
    let st = state.clone();
    let t = token.clone();
    match blocking(move || reset_account(&st, &t, now_us())).await {
        Err(res) => res,
        Ok(None) => reset_invalid(),
        Ok(Some(account)) => reset_page(
            &parts,
            &state,
            StatusCode::OK,
            token,
            account.totp_secret.is_some(),
            None,
        ),
    }
}

enum Resetting {
    Invalid,
    Retry { needs_code: bool, message: String },
    Done,
}

pub(crate) async fn reset(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let f = form(&body);
    if !csrf::pre_session_form_ok(&parts, &state, f.get("csrf")) {
        return views::forbidden_form(Chrome::anonymous());
    }
    let token = f.get("token").cloned().unwrap_or_default();
    let new_password = f.get("password").cloned().unwrap_or_default();
    let confirm = f.get("confirm").cloned().unwrap_or_default();
    let code = f.get("code").cloned().unwrap_or_default();
    let st = state.clone();
    let t = token.clone();
    let outcome = blocking(move || {
        let now = now_us();
        let Some(mut account) = reset_account(&st, &t, now)? else {
            return Ok(Resetting::Invalid);
        };
        let accounts = st.fhir.store().accounts();
        let hash = secret::token_hash(&t);
        let needs_code = account.totp_secret.is_some();
        if let Some(secret_b32) = &account.totp_secret {
            // the second factor re-verifies who is resetting: a mailbox alone is not enough
            let secret_bytes = totp::from_base32(secret_b32).unwrap_or_default();
            match totp::verify(&secret_bytes, &code, now / SEC, account.totp_last_step) {
                Some(step) => account.totp_last_step = Some(step),
                None => {
                    let tries = accounts
                        .throttle_hit(&format!("reset-code:{}", account.id), now, WINDOW_SECS * SEC)
                        .map_err(|e| e.to_string())?;
                    if tries >= MAX_CODE_TRIES {
                        accounts.delete_token(&hash).map_err(|e| e.to_string())?;
                        return Ok(Resetting::Invalid);
                    }
                    return Ok(Resetting::Retry {
                        needs_code,
                        message: "The code from your authenticator app is wrong or was already used. Enter the code the app shows now.".into(),
                    });
                }
            }
        }
        if new_password != confirm {
            return Ok(Resetting::Retry {
                needs_code,
                message: "The two passwords are not the same.".into(),
            });
        }
        let identity = [account.username.as_str(), account.display_name.as_str()];
        if let Err(problem) = password::check_new_password(&new_password, needs_code, &identity) {
            let mut message = problem.to_string();
            if let Some(first) = message.get(..1) {
                message = format!("{}{}.", first.to_uppercase(), &message[1..]);
            }
            return Ok(Resetting::Retry { needs_code, message });
        }
        if accounts
            .take_token(&hash, RESET_KIND, now)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Ok(Resetting::Invalid);
        }
        account.password_hash =
            Some(password::hash_password(&new_password).map_err(|e| e.to_string())?);
        st.auth.update(&account).map_err(|e| e.to_string())?;
        accounts.unlock(&account.id).map_err(|e| e.to_string())?;
        accounts
            .delete_account_tokens(&account.id, Some(continuum_auth::service::SESSION_KIND))
            .map_err(|e| e.to_string())?;
        accounts
            .delete_account_tokens(&account.id, Some(RESET_KIND))
            .map_err(|e| e.to_string())?;
        tracing::info!(account = %account.id, "password reset; sessions ended, account unlocked");
        Ok(Resetting::Done)
    })
    .await;
    match outcome {
        Err(res) => res,
        Ok(Resetting::Invalid) => reset_invalid(),
        Ok(Resetting::Retry {
            needs_code,
            message,
        }) => reset_page(
            &parts,
            &state,
            StatusCode::BAD_REQUEST,
            token,
            needs_code,
            Some(message),
        ),
        Ok(Resetting::Done) => see_other("/login?m=reset"),
    }
}
