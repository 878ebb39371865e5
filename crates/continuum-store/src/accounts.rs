//! Storage of accounts, one-time and session tokens, login-attempt counters and the mail outbox: the state of
//! `continuum-auth`, kept in the same database as the record so that several stateless servers share it.
//!
//! Account details live in a JSON document the auth crate owns (roles, level, links to FHIR resources, password
//! hash, TOTP secret, proxy grants); the store only indexes what it must look up or update atomically
//! (username, certificate identifier, lock). None of this is a FHIR resource: it never leaves through the API.

use crate::Result;

/// An account row. `body` is the auth crate's JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    /// Opaque, stable id (a UUID).
    pub id: String,
    /// Lower-cased login name; unique.
    pub username: String,
    /// Identifier taken from a smart-card certificate; unique when present.
    pub cert_id: Option<String>,
    /// Locked until this instant (µs since the Unix epoch); `None` when not locked.
    pub locked_until: Option<i64>,
    pub body: Vec<u8>,
}

/// Outcome of [`AccountStore::reserve_login_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The caller may check the password once. The attempt is already counted as a failure; call
    /// [`AccountStore::login_succeeded`] when the credentials are right.
    Allowed {
        /// Attempts counted in the window, this one included.
        count: u32,
    },
    /// Locked until this instant (µs): do not check the password.
    Locked { until: i64 },
}

/// A token stored by the SHA-256 hash of its secret (sessions, API tokens, password-reset tokens,
/// authorization codes, refresh tokens). `kind` tells them apart.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    /// Hex SHA-256 of the secret the client holds; the secret itself is never stored.
    pub hash: String,
    pub kind: String,
    pub account_id: String,
    pub created: i64,
    /// Last use (sessions: for the idle timeout).
    pub last_used: i64,
    /// Absolute expiry (µs).
    pub expires: i64,
    /// Kind-specific JSON (session data, scopes, PKCE challenge...).
    pub data: Vec<u8>,
}

/// A message waiting for delivery (password reset links, alerts).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Assigned by the store; ignored on enqueue.
    pub seq: i64,
    pub created: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// The account port. Every method is one atomic database transaction.
pub trait AccountStore: Send + Sync {
    /// [`crate::StoreError::AlreadyExists`] (`"Account"`, username) when the username or certificate id is
    /// taken.
    fn create_account(&self, account: &AccountRow) -> Result<()>;
    /// Replace username, cert_id and body (not the lock) of an existing account; `NotFound` otherwise.
    fn update_account(&self, account: &AccountRow) -> Result<()>;
    fn account_by_id(&self, id: &str) -> Result<Option<AccountRow>>;
    /// `username` is compared lower-cased.
    fn account_by_username(&self, username: &str) -> Result<Option<AccountRow>>;
    fn account_by_cert(&self, cert_id: &str) -> Result<Option<AccountRow>>;
    /// Accounts in username order, after `after` (paging for administrators).
    fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<AccountRow>>;

    /// Count a login attempt *before* the password is checked, atomically with every concurrent attempt on the
    /// same account: at most `max` attempts are allowed within `window` µs before `now`; the attempt that
    /// reaches `max` also sets the lock to `now + lock_for` (so a wrong password there locks the account), and
    /// while the lock holds every attempt is refused without being counted. 200 parallel attempts therefore get
    /// at most `max` password checks.
    fn reserve_login_attempt(
        &self,
        account_id: &str,
        now: i64,
        window: i64,
        max: u32,
        lock_for: i64,
    ) -> Result<Attempt>;
    /// The credentials were right: forget the counted attempts and clear the lock.
    fn login_succeeded(&self, account_id: &str) -> Result<()>;
    /// Administrator or self-service unlock: same as [`Self::login_succeeded`].
    fn unlock(&self, account_id: &str) -> Result<()> {
        self.login_succeeded(account_id)
    }
    /// Per-key rate limit (e.g. a client address): records one hit at `now` and returns the number of hits in
    /// the `window` µs before `now`, this one included. Hits older than the window may be pruned.
    fn throttle_hit(&self, key: &str, now: i64, window: i64) -> Result<u32>;

    fn insert_token(&self, token: &TokenRow) -> Result<()>;
    /// A live token (not expired at `now`) of this kind.
    fn token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<TokenRow>>;
    /// The account of a live token of this kind, in one query: every API request resolves its bearer token,
    /// and a token read followed by an account read was two round trips (and two read transactions) each.
    fn account_by_token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<AccountRow>>;
    /// Set `last_used` (sessions' idle timeout).
    fn touch_token(&self, hash: &str, now: i64) -> Result<()>;
    /// Delete a token and return it if it was live: one-time tokens (reset tokens, authorization codes) are
    /// consumed with this, so two concurrent uses cannot both succeed.
    fn take_token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<TokenRow>>;
    fn delete_token(&self, hash: &str) -> Result<()>;
    /// Delete every token of an account, of one kind or (None) all kinds; returns how many.
    fn delete_account_tokens(&self, account_id: &str, kind: Option<&str>) -> Result<u64>;

    fn enqueue_mail(&self, mail: &OutboxRow) -> Result<i64>;
    /// Oldest undelivered messages.
    fn pending_mail(&self, limit: usize) -> Result<Vec<OutboxRow>>;
    fn mark_mail_sent(&self, seq: i64, at: i64) -> Result<()>;
}
