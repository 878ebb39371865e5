//! [`AccountStore`] on this backend.
//!
//! Writes go through the single writer (`GroupCommit::run`: a savepoint of the shared batch, acknowledged after
//! its COMMIT), which serialises them: a login attempt's read-count-insert cannot interleave with another's.
//! Reads use the reader pool and see every acknowledged write.

use continuum_store::{AccountRow, AccountStore, Attempt, OutboxRow, Result, StoreError, TokenRow};
use rusqlite::{ffi, params, Connection, ErrorCode, OptionalExtension, Row};

use crate::{backend, SqliteStore};

const ACCOUNT_COLUMNS: &str = "id, username, cert_id, locked_until, body";
const TOKEN_COLUMNS: &str = "hash, kind, account_id, created, last_used, expires, data";

fn account(row: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: row.get(0)?,
        username: row.get(1)?,
        cert_id: row.get(2)?,
        locked_until: row.get(3)?,
        body: row.get(4)?,
    })
}

fn token(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        hash: row.get(0)?,
        kind: row.get(1)?,
        account_id: row.get(2)?,
        created: row.get(3)?,
        last_used: row.get(4)?,
        expires: row.get(5)?,
        data: row.get(6)?,
    })
}

/// A UNIQUE or PRIMARY KEY constraint refused the row.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && (f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound("Account".into(), id.to_string())
}

/// A count from SQL as the port's `u32` (saturating; counts are bounded by `max` in practice).
fn count_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// SQL `LIMIT` from the port's `usize`.
fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Run `work` on the writer connection (its own savepoint of the shared batch); returns once committed.
    fn on_writer<T>(&self, mut work: impl FnMut(&Connection) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.writer.run(&mut |conn| {
            out = Some(work(conn)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Backend("the writer did not run the work".into()))
    }

    fn one_account(&self, column: &str, value: &str) -> Result<Option<AccountRow>> {
        let conn = self.reader()?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE {column} = ?1");
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        stmt.query_row([value], account).optional().map_err(backend)
    }
}

impl AccountStore for SqliteStore {
    fn create_account(&self, a: &AccountRow) -> Result<()> {
        let username = a.username.to_lowercase();
        self.on_writer(|conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO account (id, username, cert_id, locked_until, body) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT DO NOTHING",
                )
                .map_err(backend)?
                .execute(params![a.id, username, a.cert_id, a.locked_until, a.body])
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(
                    "Account".into(),
                    username.clone(),
                ));
            }
            Ok(())
        })
    }

    fn update_account(&self, a: &AccountRow) -> Result<()> {
        let username = a.username.to_lowercase();
        self.on_writer(|conn| {
            let updated = conn
                .prepare_cached(
                    "UPDATE account SET username = ?2, cert_id = ?3, body = ?4 WHERE id = ?1",
                )
                .map_err(backend)?
                .execute(params![a.id, username, a.cert_id, a.body])
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists("Account".into(), username.clone())
                    } else {
                        backend(e)
                    }
                })?;
            if updated == 0 {
                return Err(not_found(&a.id));
            }
            Ok(())
        })
    }

    fn account_by_id(&self, id: &str) -> Result<Option<AccountRow>> {
        self.one_account("id", id)
    }

    fn account_by_username(&self, username: &str) -> Result<Option<AccountRow>> {
        self.one_account("username", &username.to_lowercase())
    }

    fn account_by_cert(&self, cert_id: &str) -> Result<Option<AccountRow>> {
        self.one_account("cert_id", cert_id)
    }

    fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<AccountRow>> {
        let conn = self.reader()?;
        let limit = limit_i64(limit);
        let rows = match after {
            Some(after) => {
                let sql = format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM account WHERE username > ?1 ORDER BY username LIMIT ?2"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let rows = stmt
                    .query_map(params![after.to_lowercase(), limit], account)
                    .map_err(backend)?;
                rows.collect::<rusqlite::Result<_>>()
            }
            None => {
                let sql =
                    format!("SELECT {ACCOUNT_COLUMNS} FROM account ORDER BY username LIMIT ?1");
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let rows = stmt.query_map([limit], account).map_err(backend)?;
                rows.collect::<rusqlite::Result<_>>()
            }
        };
        rows.map_err(backend)
    }

    fn reserve_login_attempt(
        &self,
        account_id: &str,
        now: i64,
        window: i64,
        max: u32,
        lock_for: i64,
    ) -> Result<Attempt> {
        let since = now.saturating_sub(window);
        let lock_until = now.saturating_add(lock_for);
        // The single writer serialises this whole function against every other write.
        self.on_writer(|conn| {
            let locked_until: Option<i64> = conn
                .prepare_cached("SELECT locked_until FROM account WHERE id = ?1")
                .map_err(backend)?
                .query_row([account_id], |r| r.get(0))
                .optional()
                .map_err(backend)?
                .ok_or_else(|| not_found(account_id))?;
            if let Some(until) = locked_until.filter(|u| *u > now) {
                return Ok(Attempt::Locked { until });
            }
            conn.prepare_cached("DELETE FROM login_attempt WHERE account_id = ?1 AND at <= ?2")
                .map_err(backend)?
                .execute(params![account_id, since])
                .map_err(backend)?;
            let count: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM login_attempt WHERE account_id = ?1 AND at > ?2",
                )
                .map_err(backend)?
                .query_row(params![account_id, since], |r| r.get(0))
                .map_err(backend)?;
            let count = count_u32(count);
            let lock = |conn: &Connection| -> Result<()> {
                conn.prepare_cached("UPDATE account SET locked_until = ?2 WHERE id = ?1")
                    .map_err(backend)?
                    .execute(params![account_id, lock_until])
                    .map_err(backend)?;
                Ok(())
            };
            if count >= max {
                lock(conn)?;
                return Ok(Attempt::Locked { until: lock_until });
            }
            conn.prepare_cached("INSERT INTO login_attempt (account_id, at) VALUES (?1, ?2)")
                .map_err(backend)?
                .execute(params![account_id, now])
                .map_err(backend)?;
            let count = count + 1;
            if count == max {
                lock(conn)?;
            }
            Ok(Attempt::Allowed { count })
        })
    }

    fn login_succeeded(&self, account_id: &str) -> Result<()> {
        self.on_writer(|conn| {
            let updated = conn
                .prepare_cached("UPDATE account SET locked_until = NULL WHERE id = ?1")
                .map_err(backend)?
                .execute([account_id])
                .map_err(backend)?;
            if updated == 0 {
                return Err(not_found(account_id));
            }
            conn.prepare_cached("DELETE FROM login_attempt WHERE account_id = ?1")
                .map_err(backend)?
                .execute([account_id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn throttle_hit(&self, key: &str, now: i64, window: i64) -> Result<u32> {
        let since = now.saturating_sub(window);
        self.on_writer(|conn| {
            conn.prepare_cached("DELETE FROM throttle WHERE key = ?1 AND at <= ?2")
                .map_err(backend)?
                .execute(params![key, since])
                .map_err(backend)?;
            conn.prepare_cached("INSERT INTO throttle (key, at) VALUES (?1, ?2)")
                .map_err(backend)?
                .execute(params![key, now])
                .map_err(backend)?;
            let count: i64 = conn
                .prepare_cached("SELECT count(*) FROM throttle WHERE key = ?1 AND at > ?2")
                .map_err(backend)?
                .query_row(params![key, since], |r| r.get(0))
                .map_err(backend)?;
            Ok(count_u32(count))
        })
    }

    fn insert_token(&self, t: &TokenRow) -> Result<()> {
        self.on_writer(|conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO auth_token (hash, kind, account_id, created, last_used, expires, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )
                .map_err(backend)?
                .execute(params![
                    t.hash,
                    t.kind,
                    t.account_id,
                    t.created,
                    t.last_used,
                    t.expires,
                    t.data
                ])
                .map_err(backend)?;
            if inserted == 0 {
                // The hash is not quoted: it identifies a secret.
                return Err(StoreError::AlreadyExists("Token".into(), t.kind.clone()));
            }
            Ok(())
        })
    }

    fn token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<TokenRow>> {
        let conn = self.reader()?;
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM auth_token WHERE hash = ?1 AND kind = ?2 AND expires > ?3"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        stmt.query_row(params![hash, kind, now], token)
            .optional()
            .map_err(backend)
    }

    fn account_by_token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<AccountRow>> {
        let conn = self.reader()?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM account WHERE id = \
             (SELECT account_id FROM auth_token WHERE hash = ?1 AND kind = ?2 AND expires > ?3)"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        stmt.query_row(params![hash, kind, now], account)
            .optional()
            .map_err(backend)
    }

    fn touch_token(&self, hash: &str, now: i64) -> Result<()> {
        self.on_writer(|conn| {
            conn.prepare_cached("UPDATE auth_token SET last_used = ?2 WHERE hash = ?1")
                .map_err(backend)?
                .execute(params![hash, now])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn take_token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<TokenRow>> {
        // One statement: whoever deletes the row gets it; an expired token is deleted and not returned.
        let sql = format!(
            "DELETE FROM auth_token WHERE hash = ?1 AND kind = ?2 RETURNING {TOKEN_COLUMNS}"
        );
        let taken = self.on_writer(|conn| {
            conn.prepare_cached(&sql)
                .map_err(backend)?
                .query_row(params![hash, kind], token)
                .optional()
                .map_err(backend)
        })?;
        Ok(taken.filter(|t| t.expires > now))
    }

    fn delete_token(&self, hash: &str) -> Result<()> {
        self.on_writer(|conn| {
            conn.prepare_cached("DELETE FROM auth_token WHERE hash = ?1")
                .map_err(backend)?
                .execute([hash])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn delete_account_tokens(&self, account_id: &str, kind: Option<&str>) -> Result<u64> {
        self.on_writer(|conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM auth_token WHERE account_id = ?1 AND (?2 IS NULL OR kind = ?2)",
                )
                .map_err(backend)?
                .execute(params![account_id, kind])
                .map_err(backend)?;
            Ok(n as u64)
        })
    }

    fn enqueue_mail(&self, m: &OutboxRow) -> Result<i64> {
        self.on_writer(|conn| {
            conn.prepare_cached(
                "INSERT INTO outbox (created, recipient, subject, body) VALUES (?1, ?2, ?3, ?4) RETURNING seq",
            )
            .map_err(backend)?
            .query_row(params![m.created, m.recipient, m.subject, m.body], |r| {
                r.get(0)
            })
            .map_err(backend)
        })
    }

    fn pending_mail(&self, limit: usize) -> Result<Vec<OutboxRow>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, created, recipient, subject, body FROM outbox WHERE sent IS NULL \
                 ORDER BY seq LIMIT ?1",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([limit_i64(limit)], |r| {
                Ok(OutboxRow {
                    seq: r.get(0)?,
                    created: r.get(1)?,
                    recipient: r.get(2)?,
                    subject: r.get(3)?,
                    body: r.get(4)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend)
    }

    fn mark_mail_sent(&self, seq: i64, at: i64) -> Result<()> {
        self.on_writer(|conn| {
            let updated = conn
                .prepare_cached("UPDATE outbox SET sent = ?2 WHERE seq = ?1")
                .map_err(backend)?
                .execute(params![seq, at])
                .map_err(backend)?;
            if updated == 0 {
                return Err(StoreError::NotFound("Mail".into(), seq.to_string()));
            }
            Ok(())
        })
    }
}
