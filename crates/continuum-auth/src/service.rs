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
        let Some(row) = self
            .store
            .accounts()
            .token(&secret::token_hash(token), "api", now_us)?
        else {
            return Ok(None);
        };
        Ok(self.by_id(&row.account_id)?.filter(|a| !a.disabled))
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
            // the same work as a real check, so timing does not tell that the account does not exist
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
