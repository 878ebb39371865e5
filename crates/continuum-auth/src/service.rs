//! Account administration, password + TOTP login with lockout and per-address throttling, and bearer
//! tokens. Every state change goes through the store, so several servers share counters and tokens.

use std::sync::Arc;

use continuum_store::{Attempt, ResourceStore, StoreError, TokenRow};

use crate::account::Account;
use crate::{password, secret, totp, AuthError};

/// Lockout and throttling (PRODUCT.md P1: default 5 failures in 15 minutes lock for up to 30 days).
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    pub max_failures: u32,
    pub window_secs: i64,
    pub lock_secs: i64,
    /// Attempts one client address may make in `window_secs`, over all accounts (password spraying).
    pub max_per_address: u32,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            max_failures: 5,
            window_secs: 15 * 60,
            lock_secs: 30 * 24 * 3600,
            max_per_address: 100,
        }
    }
}

/// Why a login failed. Deliberately coarse: the answer must not tell whether the account exists, is locked or
/// which factor was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the user name, password or code is wrong, or the account is locked")]
    Refused,
    #[error("too many attempts from this address; wait and try again")]
    Throttled,
}

const SEC: i64 = 1_000_000;

#[derive(Clone)]
pub struct Auth {
    store: Arc<dyn ResourceStore>,
    pub policy: LoginPolicy,
}

impl Auth {
    pub fn new(store: Arc<dyn ResourceStore>, policy: LoginPolicy) -> Auth {
        Auth { store, policy }
    }

    /// Create an account; with a password, it must pass the NIST SP 800-63B checks.
    pub fn create(
        &self,
        mut account: Account,
        password: Option<&str>,
    ) -> Result<Account, AuthError> {
        account.validate()?;
        if let Some(pw) = password {
            let identity = [account.username.as_str(), account.display_name.as_str()];
            password::check_new_password(pw, account.totp_secret.is_some(), &identity)
                .map_err(AuthError::Password)?;
            account.password_hash =
                Some(password::hash_password(pw).map_err(|e| AuthError::Internal(e.to_string()))?);
        }
        match self.store.accounts().create_account(&account.to_row()?) {
            Ok(()) => Ok(account),
            Err(StoreError::AlreadyExists(_, _)) => Err(AuthError::Conflict(format!(
                "the user name '{}' is taken",
                account.username
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn update(&self, account: &Account) -> Result<(), AuthError> {
        account.validate()?;
        Ok(self.store.accounts().update_account(&account.to_row()?)?)
    }

    pub fn by_username(&self, username: &str) -> Result<Option<Account>, AuthError> {
        self.store
            .accounts()
            .account_by_username(&username.to_lowercase())?
            .map(|r| Account::from_row(&r))
            .transpose()
    }

    pub fn by_id(&self, id: &str) -> Result<Option<Account>, AuthError> {
        self.store
            .accounts()
            .account_by_id(id)?
            .map(|r| Account::from_row(&r))
            .transpose()
    }

    /// Issue a bearer token for an account; returns the secret (only its hash is stored).
    pub fn issue_token(
        &self,
        account_id: &str,
        kind: &str,
        now_us: i64,
        ttl_secs: i64,
        data: &[u8],
    ) -> Result<String, AuthError> {
        let token = secret::new_token();
        self.store.accounts().insert_token(&TokenRow {
            hash: secret::token_hash(&token),
            kind: kind.to_string(),
            account_id: account_id.to_string(),
            created: now_us,
            last_used: now_us,
            expires: now_us.saturating_add(ttl_secs.saturating_mul(SEC)),
            data: data.to_vec(),
        })?;
        Ok(token)
    }

    /// The live, enabled account behind an API bearer token.
    pub fn bearer(&self, token: &str, now_us: i64) -> Result<Option<Account>, AuthError> {
        // a token is 43 base64url characters; anything else cannot be one and is not looked up
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let Some(row) =
            self.store
                .accounts()
                .account_by_token(&secret::token_hash(token), "api", now_us)?
        else {
            return Ok(None);
        };
        Ok(Some(Account::from_row(&row)?).filter(|a| !a.disabled))
    }

    /// Password (+ TOTP when enrolled) login. At most `max_failures` password checks per account per window,
    /// however many requests race (the attempt is counted before the check); then the account is locked.
    pub fn login(
        &self,
        username: &str,
        password_text: &str,
        code: Option<&str>,
        address: &str,
        now_us: i64,
    ) -> Result<Account, LoginError> {
        let p = &self.policy;
        let internal = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "login failed on a store error");
            LoginError::Refused
        };
        let hits = self
            .store
            .accounts()
            .throttle_hit(
                &format!("login-addr:{address}"),
                now_us,
                p.window_secs * SEC,
            )
            .map_err(|e| internal(&e))?;
        if hits > p.max_per_address {
            return Err(LoginError::Throttled);
        }
        let account = self.by_username(username).map_err(|e| internal(&e))?;
        let Some(account) = account.filter(|a| !a.disabled && a.password_hash.is_some()) else {
            // The same work as a real check — a counted write like the attempt reservation, and a password
            // hash — so that timing does not tell that the account does not exist.
            self.store
                .accounts()
                .throttle_hit("login-unknown-account", now_us, p.window_secs * SEC)
                .map_err(|e| internal(&e))?;
            password::burn_verify_time(password_text);
            return Err(LoginError::Refused);
        };
        let attempt = self
            .store
            .accounts()
            .reserve_login_attempt(
                &account.id,
                now_us,
                p.window_secs * SEC,
                p.max_failures,
                p.lock_secs * SEC,
            )
            .map_err(|e| internal(&e))?;
        if let Attempt::Locked { .. } = attempt {
            password::burn_verify_time(password_text);
            return Err(LoginError::Refused);
        }
        let hash = account.password_hash.as_deref().unwrap_or("");
        if !password::verify_password(password_text, hash) {
            return Err(LoginError::Refused);
        }
        let mut account = account;
        if let Some(secret_b32) = &account.totp_secret {
            let Some(secret) = totp::from_base32(secret_b32) else {
                return Err(internal(&"stored TOTP secret unreadable"));
            };
            let step = code.and_then(|c| {
                totp::verify(&secret, c.trim(), now_us / SEC, account.totp_last_step)
            });
            let Some(step) = step else {
                return Err(LoginError::Refused);
            };
            account.totp_last_step = Some(step);
            self.update(&account).map_err(|e| internal(&e))?;
        }
        self.store
            .accounts()
            .login_succeeded(&account.id)
            .map_err(|e| internal(&e))?;
        Ok(account)
    }

    /// Administrator unlock.
    pub fn unlock(&self, username: &str) -> Result<(), AuthError> {
        let a = self
            .by_username(username)?
            .ok_or_else(|| AuthError::NotFound(format!("no account '{username}'")))?;
        Ok(self.store.accounts().unlock(&a.id)?)
    }
}

/// Idle and absolute limits of browser sessions (issue 4: staff 15 min idle, patients 30 min, 12 h at most).
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    pub staff_idle_secs: i64,
    pub patient_idle_secs: i64,
    pub absolute_secs: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            staff_idle_secs: 15 * 60,
            patient_idle_secs: 30 * 60,
            absolute_secs: 12 * 3600,
        }
    }
}

/// Server-side session data, kept with the session token.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionData {
    /// Per-session CSRF token, embedded in every form.
    pub csrf: String,
    /// The patient a proxy is currently looking at (the dependent switcher), if not themselves.
    #[serde(default)]
    pub acting_for: Option<String>,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The hash the store keys it by.
    pub hash: String,
    pub account: Account,
    pub data: SessionData,
    pub created: i64,
}

pub const SESSION_KIND: &str = "session";

impl Auth {
    fn idle_secs(&self, sessions: &SessionPolicy, account: &Account) -> i64 {
        match account.kind {
            crate::AccountKind::Patient => sessions.patient_idle_secs,
            _ => sessions.staff_idle_secs,
        }
    }

    /// Start a session after a successful login: a fresh id (never one the client brought: no fixation).
    /// Returns the secret for the cookie.
    pub fn start_session(
        &self,
        sessions: &SessionPolicy,
        account: &Account,
        now_us: i64,
    ) -> Result<(String, Session), AuthError> {
        let data = SessionData {
            csrf: secret::new_token(),
            acting_for: None,
        };
        let body = serde_json::to_vec(&data).map_err(|e| AuthError::Internal(e.to_string()))?;
        let token = self.issue_token(
            &account.id,
            SESSION_KIND,
            now_us,
            sessions.absolute_secs,
            &body,
        )?;
        Ok((
            token.clone(),
            Session {
                hash: secret::token_hash(&token),
                account: account.clone(),
                data,
                created: now_us,
            },
        ))
    }

    /// The session behind a cookie value, if live: not past the absolute limit, not idle too long, account
    /// enabled. Touches it (sliding idle timeout); an idle-expired session is deleted.
    pub fn session(
        &self,
        sessions: &SessionPolicy,
        secret_value: &str,
        now_us: i64,
    ) -> Result<Option<Session>, AuthError> {
        if secret_value.is_empty() || secret_value.len() > 128 {
            return Ok(None);
        }
        let hash = secret::token_hash(secret_value);
        let accounts = self.store.accounts();
        let Some(row) = accounts.token(&hash, SESSION_KIND, now_us)? else {
            return Ok(None);
        };
        let Some(account) = self.by_id(&row.account_id)?.filter(|a| !a.disabled) else {
            accounts.delete_token(&hash)?;
            return Ok(None);
        };
        let idle = self.idle_secs(sessions, &account) * SEC;
        if row.last_used + idle <= now_us {
            accounts.delete_token(&hash)?;
            return Ok(None);
        }
        // The sliding idle limit is recorded at most once per fifteenth of it (a minute of a 15-minute limit),
        // so a session may end up to that much early: each touch is a write, and on SQLite every write makes
        // every reader of the database drop its page cache.
        if now_us - row.last_used >= idle / 15 {
            accounts.touch_token(&hash, now_us)?;
        }
        let data: SessionData = serde_json::from_slice(&row.data)
            .map_err(|e| AuthError::Internal(format!("session data unreadable: {e}")))?;
        Ok(Some(Session {
            hash,
            account,
            data,
            created: row.created,
        }))
    }

    /// Replace a session's data (the dependent switcher), keeping its id, creation and expiry.
    pub fn update_session(&self, session: &Session, now_us: i64) -> Result<(), AuthError> {
        let accounts = self.store.accounts();
        let Some(row) = accounts.take_token(&session.hash, SESSION_KIND, now_us)? else {
            return Err(AuthError::NotFound("the session has ended".into()));
        };
        let body =
            serde_json::to_vec(&session.data).map_err(|e| AuthError::Internal(e.to_string()))?;
        accounts.insert_token(&TokenRow {
            data: body,
            last_used: now_us,
            ..row
        })?;
        Ok(())
    }

    /// Logout: the session is gone at once, everywhere.
    pub fn end_session(&self, session_hash: &str) -> Result<(), AuthError> {
        Ok(self.store.accounts().delete_token(session_hash)?)
    }
}
