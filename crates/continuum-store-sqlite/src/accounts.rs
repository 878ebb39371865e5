//! [`AccountStore`] on this backend.

use continuum_store::{AccountRow, AccountStore, Attempt, OutboxRow, Result, StoreError, TokenRow};

use crate::SqliteStore;

fn todo() -> StoreError {
    StoreError::Backend("accounts are not implemented on this backend yet".into())
}

impl AccountStore for SqliteStore {
    fn create_account(&self, _account: &AccountRow) -> Result<()> {
        Err(todo())
    }
    fn update_account(&self, _account: &AccountRow) -> Result<()> {
        Err(todo())
    }
    fn account_by_id(&self, _id: &str) -> Result<Option<AccountRow>> {
        Err(todo())
    }
    fn account_by_username(&self, _username: &str) -> Result<Option<AccountRow>> {
        Err(todo())
    }
    fn account_by_cert(&self, _cert_id: &str) -> Result<Option<AccountRow>> {
        Err(todo())
    }
    fn list_accounts(&self, _after: Option<&str>, _limit: usize) -> Result<Vec<AccountRow>> {
        Err(todo())
    }
    fn reserve_login_attempt(
        &self,
        _account_id: &str,
        _now: i64,
        _window: i64,
        _max: u32,
        _lock_for: i64,
    ) -> Result<Attempt> {
        Err(todo())
    }
    fn login_succeeded(&self, _account_id: &str) -> Result<()> {
        Err(todo())
    }
    fn throttle_hit(&self, _key: &str, _now: i64, _window: i64) -> Result<u32> {
        Err(todo())
    }
    fn insert_token(&self, _token: &TokenRow) -> Result<()> {
        Err(todo())
    }
    fn token(&self, _hash: &str, _kind: &str, _now: i64) -> Result<Option<TokenRow>> {
        Err(todo())
    }
    fn touch_token(&self, _hash: &str, _now: i64) -> Result<()> {
        Err(todo())
    }
    fn take_token(&self, _hash: &str, _kind: &str, _now: i64) -> Result<Option<TokenRow>> {
        Err(todo())
    }
    fn delete_token(&self, _hash: &str) -> Result<()> {
        Err(todo())
    }
    fn delete_account_tokens(&self, _account_id: &str, _kind: Option<&str>) -> Result<u64> {
        Err(todo())
    }
    fn enqueue_mail(&self, _mail: &OutboxRow) -> Result<i64> {
        Err(todo())
    }
    fn pending_mail(&self, _limit: usize) -> Result<Vec<OutboxRow>> {
        Err(todo())
    }
    fn mark_mail_sent(&self, _seq: i64, _at: i64) -> Result<()> {
        Err(todo())
    }
}
