//! [`AccountStore`] on this backend.
//!
//! Every method is one transaction on a pooled connection (READ COMMITTED), run again on serialisation
//! failures and deadlocks like resource writes. Concurrent login attempts on one account are serialised by
//! locking its row (`FOR UPDATE`); concurrent hits on one throttle key by a transaction-level advisory lock on
//! the key's hash (two-int form, a key space apart from the resource guards'). Consuming a token is a single
//! `DELETE ... RETURNING`: only one of two concurrent consumers gets the row.

use std::time::Duration;

use continuum_store::{AccountRow, AccountStore, Attempt, OutboxRow, Result, StoreError, TokenRow};
use postgres::error::SqlState;
use postgres::Row;

use crate::conn::{db_error, Conn};
use crate::{PostgresStore, MAX_ATTEMPTS};

const ACCOUNT_COLUMNS: &str = "id, username, cert_id, locked_until, body";
const TOKEN_COLUMNS: &str = "hash, kind, account_id, created, last_used, expires, data";

/// First key of the throttle's advisory locks (ASCII "THRO").
const THROTTLE_LOCK_CLASS: i32 = 0x5448_524F;

fn account(row: &Row) -> Result<AccountRow> {
    Ok(AccountRow {
        id: row.try_get(0).map_err(db_error)?,
        username: row.try_get(1).map_err(db_error)?,
        cert_id: row.try_get(2).map_err(db_error)?,
        locked_until: row.try_get(3).map_err(db_error)?,
        body: row.try_get(4).map_err(db_error)?,
    })
}

fn token(row: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        hash: row.try_get(0).map_err(db_error)?,
        kind: row.try_get(1).map_err(db_error)?,
        account_id: row.try_get(2).map_err(db_error)?,
        created: row.try_get(3).map_err(db_error)?,
        last_used: row.try_get(4).map_err(db_error)?,
        expires: row.try_get(5).map_err(db_error)?,
        data: row.try_get(6).map_err(db_error)?,
    })
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
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

/// Run one of the module's fixed statements, returning the number of rows it changed.
fn execute(
    conn: &mut Conn,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<u64> {
    let stmt = conn.prepared(sql).map_err(db_error)?;
    conn.client.execute(&stmt, params).map_err(db_error)
}

fn query(
    conn: &mut Conn,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>> {
    let stmt = conn.prepared(sql).map_err(db_error)?;
    conn.client.query(&stmt, params).map_err(db_error)
}

fn query_opt(
    conn: &mut Conn,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Option<Row>> {
    let stmt = conn.prepared(sql).map_err(db_error)?;
    conn.client.query_opt(&stmt, params).map_err(db_error)
}

impl PostgresStore {
    /// Run `work` in one transaction, again (up to [`MAX_ATTEMPTS`] times) when it meets contention.
    fn in_tx<T>(&self, mut work: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let mut attempt = 1;
        loop {
            let outcome = conn
                .client
                .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                .map_err(db_error)
                .and_then(|()| work(&mut conn));
            let outcome = match outcome {
                Ok(v) => conn
                    .client
                    .batch_execute("COMMIT")
                    .map_err(db_error)
                    .map(|()| v),
                Err(e) => {
                    // The work's error is the one to report; a failed ROLLBACK leaves a connection that
                    // `has_broken` will drop.
                    if let Err(rb) = conn.client.batch_execute("ROLLBACK") {
                        tracing::warn!(error = %rb, "rollback failed");
                    }
                    Err(e)
                }
            };
            match outcome {
                Err(StoreError::Contention) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(
                        attempt,
                        "account transaction met contention; running it again"
                    );
                    std::thread::sleep(Duration::from_millis(u64::from(attempt * attempt)));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// A read outside any explicit transaction (one statement is atomic on its own).
    fn one_account(&self, sql: &str, value: &str) -> Result<Option<AccountRow>> {
        let mut conn = self.conn()?;
        query_opt(&mut conn, sql, &[&value])?
            .as_ref()
            .map(account)
            .transpose()
    }
}

impl AccountStore for PostgresStore {
    fn create_account(&self, a: &AccountRow) -> Result<()> {
        let username = a.username.to_lowercase();
        self.in_tx(|conn| {
            // ON CONFLICT DO NOTHING: a taken id, username or certificate leaves no aborted transaction.
            let inserted = execute(
                conn,
                "INSERT INTO account (id, username, cert_id, locked_until, body) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
                &[&a.id, &username, &a.cert_id, &a.locked_until, &a.body],
            )?;
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
        self.in_tx(|conn| {
            let stmt = conn
                .prepared("UPDATE account SET username = $2, cert_id = $3, body = $4 WHERE id = $1")
                .map_err(db_error)?;
            let updated = conn
                .client
                .execute(&stmt, &[&a.id, &username, &a.cert_id, &a.body])
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::AlreadyExists("Account".into(), username.clone())
                    } else {
                        db_error(e)
                    }
                })?;
            if updated == 0 {
                return Err(not_found(&a.id));
            }
            Ok(())
        })
    }

    fn account_by_id(&self, id: &str) -> Result<Option<AccountRow>> {
        self.one_account(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE id = $1"),
            id,
        )
    }

    fn account_by_username(&self, username: &str) -> Result<Option<AccountRow>> {
        self.one_account(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE username = $1"),
            &username.to_lowercase(),
        )
    }

    fn account_by_cert(&self, cert_id: &str) -> Result<Option<AccountRow>> {
        self.one_account(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE cert_id = $1"),
            cert_id,
        )
    }

    fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<AccountRow>> {
        let mut conn = self.conn()?;
        let limit = limit_i64(limit);
        let rows = match after {
            Some(after) => query(
                &mut conn,
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM account WHERE username > $1 ORDER BY username LIMIT $2"
                ),
                &[&after.to_lowercase(), &limit],
            )?,
            None => query(
                &mut conn,
                &format!("SELECT {ACCOUNT_COLUMNS} FROM account ORDER BY username LIMIT $1"),
                &[&limit],
            )?,
        };
        rows.iter().map(account).collect()
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
        self.in_tx(|conn| {
            // The row lock serialises every attempt on this account until COMMIT; READ COMMITTED gives each
            // later statement a snapshot that includes the previous holder's attempt.
            let row = query_opt(
                conn,
                "SELECT locked_until FROM account WHERE id = $1 FOR UPDATE",
                &[&account_id],
            )?
            .ok_or_else(|| not_found(account_id))?;
            let locked_until: Option<i64> = row.try_get(0).map_err(db_error)?;
            if let Some(until) = locked_until.filter(|u| *u > now) {
                return Ok(Attempt::Locked { until });
            }
            execute(
                conn,
                "DELETE FROM login_attempt WHERE account_id = $1 AND at <= $2",
                &[&account_id, &since],
            )?;
            let count: i64 = query_opt(
                conn,
                "SELECT count(*) FROM login_attempt WHERE account_id = $1 AND at > $2",
                &[&account_id, &since],
            )?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(db_error)?
            .unwrap_or(0);
            let count = count_u32(count);
            const LOCK_SQL: &str = "UPDATE account SET locked_until = $2 WHERE id = $1";
            if count >= max {
                execute(conn, LOCK_SQL, &[&account_id, &lock_until])?;
                return Ok(Attempt::Locked { until: lock_until });
            }
            execute(
                conn,
                "INSERT INTO login_attempt (account_id, at) VALUES ($1, $2)",
                &[&account_id, &now],
            )?;
            let count = count + 1;
            if count == max {
                execute(conn, LOCK_SQL, &[&account_id, &lock_until])?;
            }
            Ok(Attempt::Allowed { count })
        })
    }

    fn login_succeeded(&self, account_id: &str) -> Result<()> {
        self.in_tx(|conn| {
            let updated = execute(
                conn,
                "UPDATE account SET locked_until = NULL WHERE id = $1",
                &[&account_id],
            )?;
            if updated == 0 {
                return Err(not_found(account_id));
            }
            execute(
                conn,
                "DELETE FROM login_attempt WHERE account_id = $1",
                &[&account_id],
            )?;
            Ok(())
        })
    }

    fn throttle_hit(&self, key: &str, now: i64, window: i64) -> Result<u32> {
        let since = now.saturating_sub(window);
        self.in_tx(|conn| {
            // Serialise hits on this key (a hash collision only serialises two keys needlessly).
            execute(
                conn,
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&THROTTLE_LOCK_CLASS, &key],
            )?;
            execute(
                conn,
                "DELETE FROM throttle WHERE key = $1 AND at <= $2",
                &[&key, &since],
            )?;
            execute(
                conn,
                "INSERT INTO throttle (key, at) VALUES ($1, $2)",
                &[&key, &now],
            )?;
            let count: i64 = query_opt(
                conn,
                "SELECT count(*) FROM throttle WHERE key = $1 AND at > $2",
                &[&key, &since],
            )?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(db_error)?
            .unwrap_or(0);
            Ok(count_u32(count))
        })
    }

    fn insert_token(&self, t: &TokenRow) -> Result<()> {
        self.in_tx(|conn| {
            let inserted = execute(
                conn,
                "INSERT INTO auth_token (hash, kind, account_id, created, last_used, expires, data) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &t.hash,
                    &t.kind,
                    &t.account_id,
                    &t.created,
                    &t.last_used,
                    &t.expires,
                    &t.data,
                ],
            )?;
            if inserted == 0 {
                // The hash is not quoted: it identifies a secret.
                return Err(StoreError::AlreadyExists("Token".into(), t.kind.clone()));
            }
            Ok(())
        })
    }

    fn token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<TokenRow>> {
        let mut conn = self.conn()?;
        query_opt(
            &mut conn,
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM auth_token WHERE hash = $1 AND kind = $2 AND expires > $3"
            ),
            &[&hash, &kind, &now],
        )?
        .as_ref()
        .map(token)
        .transpose()
    }

    fn account_by_token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<AccountRow>> {
        let mut conn = self.conn()?;
        query_opt(
            &mut conn,
            &format!(
                "SELECT {ACCOUNT_COLUMNS} FROM account WHERE id = \
                 (SELECT account_id FROM auth_token WHERE hash = $1 AND kind = $2 AND expires > $3)"
            ),
            &[&hash, &kind, &now],
        )?
        .as_ref()
        .map(account)
        .transpose()
    }

    fn touch_token(&self, hash: &str, now: i64) -> Result<()> {
        self.in_tx(|conn| {
            execute(
                conn,
                "UPDATE auth_token SET last_used = $2 WHERE hash = $1",
                &[&hash, &now],
            )?;
            Ok(())
        })
    }

    fn take_token(&self, hash: &str, kind: &str, now: i64) -> Result<Option<TokenRow>> {
        // One statement: whoever deletes the row gets it; an expired token is deleted and not returned.
        let sql = format!(
            "DELETE FROM auth_token WHERE hash = $1 AND kind = $2 RETURNING {TOKEN_COLUMNS}"
        );
        let taken = self.in_tx(|conn| {
            query_opt(conn, &sql, &[&hash, &kind])?
                .as_ref()
                .map(token)
                .transpose()
        })?;
        Ok(taken.filter(|t| t.expires > now))
    }

    fn delete_token(&self, hash: &str) -> Result<()> {
        self.in_tx(|conn| {
            execute(conn, "DELETE FROM auth_token WHERE hash = $1", &[&hash])?;
            Ok(())
        })
    }

    fn delete_account_tokens(&self, account_id: &str, kind: Option<&str>) -> Result<u64> {
        self.in_tx(|conn| match kind {
            Some(kind) => execute(
                conn,
                "DELETE FROM auth_token WHERE account_id = $1 AND kind = $2",
                &[&account_id, &kind],
            ),
            None => execute(
                conn,
                "DELETE FROM auth_token WHERE account_id = $1",
                &[&account_id],
            ),
        })
    }

    fn enqueue_mail(&self, m: &OutboxRow) -> Result<i64> {
        self.in_tx(|conn| {
            let row = query_opt(
                conn,
                "INSERT INTO outbox (created, recipient, subject, body) VALUES ($1, $2, $3, $4) RETURNING seq",
                &[&m.created, &m.recipient, &m.subject, &m.body],
            )?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
            row.try_get(0).map_err(db_error)
        })
    }

    fn pending_mail(&self, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut conn = self.conn()?;
        let rows = query(
            &mut conn,
            "SELECT seq, created, recipient, subject, body FROM outbox WHERE sent IS NULL \
             ORDER BY seq LIMIT $1",
            &[&limit_i64(limit)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    seq: r.try_get(0).map_err(db_error)?,
                    created: r.try_get(1).map_err(db_error)?,
                    recipient: r.try_get(2).map_err(db_error)?,
                    subject: r.try_get(3).map_err(db_error)?,
                    body: r.try_get(4).map_err(db_error)?,
                })
            })
            .collect()
    }

    fn mark_mail_sent(&self, seq: i64, at: i64) -> Result<()> {
        self.in_tx(|conn| {
            let updated = execute(
                conn,
                "UPDATE outbox SET sent = $2 WHERE seq = $1",
                &[&seq, &at],
            )?;
            if updated == 0 {
                return Err(StoreError::NotFound("Mail".into(), seq.to_string()));
            }
            Ok(())
        })
    }
}
