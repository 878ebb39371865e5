//! One write transaction: versioned puts and deletes, guards, and reads that see the transaction's writes.
//!
//! A put costs one round trip: a statement that locks the resource row (`FOR UPDATE`) and draws the keys of
//! the new version (and of the resource, when it is new) from their sequences. What the put writes goes to
//! the [`WriteBuffer`] and reaches the database in one statement at commit, before any read or search in the
//! transaction, or when the buffer grows large. Rows locked or created here are remembered, so writing the
//! same resource twice in one transaction does not lock it again.

use std::collections::HashMap;

use continuum_fhir::index::token_hash;
use continuum_store::sql;
use continuum_store::{
    stamp, to_micros, type_and_id, Expect, Method, ReindexStep, Result, SearchPage, SearchQuery,
    StoreError, StoredResource, WriteTx, Written,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::buffer::{Version, WriteBuffer, AUTO_FLUSH_VERSIONS};
use crate::conn::{db_error, Conn};
use crate::queries;

/// Lock the resource row if it exists and draw the keys a write needs. The lateral sub-select carries the
/// `FOR UPDATE` because a lock cannot apply to the nullable side of an outer join; `CASE` draws a resource
/// key only for a resource that does not exist yet (volatile functions are not evaluated ahead of it).
const LOCK_ROW_SQL: &str = "SELECT r.pk, r.version, r.deleted, nextval('resource_version_vpk_seq'), \
     CASE WHEN r.pk IS NULL THEN nextval('resource_pk_seq') END \
     FROM (SELECT 1) AS one \
     LEFT JOIN LATERAL (SELECT pk, version, deleted FROM resource WHERE type = $1 AND id = $2 FOR UPDATE) AS r ON true";

/// Lock the next live resources after a key (waiting for writers of them to finish), in key order.
const REINDEX_LOCK_SQL: &str = "SELECT pk FROM resource WHERE pk > $1 AND deleted = 0 \
     ORDER BY pk LIMIT $2 FOR UPDATE";
/// Their current bodies, read after the lock so a write committed meanwhile is seen.
const REINDEX_BODIES_SQL: &str = "SELECT r.pk, r.type, v.body FROM resource r \
     JOIN resource_version v ON v.vpk = r.current_vpk \
     WHERE r.pk = ANY($1) AND r.deleted = 0 ORDER BY r.pk";

const NEXT_VPK_SQL: &str = "SELECT nextval('resource_version_vpk_seq')";

/// What this transaction knows of a resource row it has locked or created.
#[derive(Debug, Clone, Copy)]
struct Known {
    pk: i64,
    /// 0 for a resource that does not exist (yet); `pk` is then the key drawn for it.
    version: i64,
    deleted: bool,
    /// The row exists in the database (it did before, or a flush wrote it), rather than only in the buffer.
    stored: bool,
}

/// Why the transaction can no longer commit: PostgreSQL aborts a transaction at its first error, so if the
/// closure swallowed one, COMMIT would silently roll back. Remember it and report it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poisoned {
    Contention,
    Failed,
}

pub(crate) struct PgTx<'c> {
    conn: &'c mut Conn,
    now: OffsetDateTime,
    buffer: WriteBuffer,
    known: HashMap<(String, String), Known>,
    poisoned: Option<Poisoned>,
    finished: bool,
}

impl Known {
    /// The current version, when the resource exists and is not deleted.
    fn live(self) -> Option<i64> {
        (self.version > 0 && !self.deleted).then_some(self.version)
    }
}

impl<'c> PgTx<'c> {
    /// `BEGIN` on `conn`; `now` is the timestamp of every version this transaction writes.
    pub fn begin(conn: &'c mut Conn, now: OffsetDateTime) -> Result<PgTx<'c>> {
        // READ COMMITTED: each statement sees everything committed before it started, which is what makes a
        // search after `guard` see the previous guard holder's writes; row locks (FOR UPDATE) serialise
        // writers of the same resource.
        // enable_seqscan off, for this transaction only: every statement a write runs has an index path, but
        // during a bulk import the statistics lag far behind the tables' growth, and a plan made when a table
        // was nearly empty (the flush statement's plan is cached per connection) would keep scanning it
        // whole, once per flush. Sent in the same round trip as BEGIN.
        conn.client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL enable_seqscan = off")
            .map_err(db_error)?;
        Ok(PgTx {
            conn,
            now,
            buffer: WriteBuffer::default(),
            known: HashMap::new(),
            poisoned: None,
            finished: false,
        })
    }

    /// Write the buffer, then COMMIT.
    pub fn commit(mut self) -> Result<()> {
        self.flush()?;
        self.finished = true;
        self.conn.client.batch_execute("COMMIT").map_err(db_error)
    }

    pub fn rollback(mut self) -> Result<()> {
        self.finished = true;
        self.conn.client.batch_execute("ROLLBACK").map_err(db_error)
    }

    fn check_poison(&self) -> Result<()> {
        match self.poisoned {
            None => Ok(()),
            Some(Poisoned::Contention) => Err(StoreError::Contention),
            Some(Poisoned::Failed) => Err(StoreError::Backend(
                "an earlier statement of the transaction failed".into(),
            )),
        }
    }

    /// Note an error of a statement of this transaction (which PostgreSQL has now aborted). Once contention
    /// has aborted it, every later error is reported as contention too, so the write loop retries the whole
    /// closure.
    fn note(&mut self, e: StoreError) -> StoreError {
        let kind = match e {
            StoreError::Contention => Poisoned::Contention,
            StoreError::Backend(_) => Poisoned::Failed,
            // Checked before any SQL ran: the transaction is intact.
            _ => return e,
        };
        match *self.poisoned.get_or_insert(kind) {
            Poisoned::Contention => StoreError::Contention,
            Poisoned::Failed => e,
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.check_poison()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let res = self.write_buffer();
        res.map_err(|e| self.note(e))?;
        for k in self.known.values_mut().filter(|k| k.version > 0) {
            k.stored = true;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<()> {
        let (sql, params) = self.buffer.take_statement()?;
        let stmt = self.conn.prepared(&sql).map_err(db_error)?;
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref()).collect();
        self.conn.client.execute(&stmt, &refs).map_err(db_error)?;
        Ok(())
    }

    /// The resource's row as this transaction sees it, locked, and the key of the version about to be written.
    fn lock_row(&mut self, resource_type: &str, id: &str) -> Result<(Known, i64)> {
        self.check_poison()?;
        let key = (resource_type.to_string(), id.to_string());
        if let Some(known) = self.known.get(&key).copied() {
            let vpk = self.query_vpk().map_err(|e| self.note(e))?;
            return Ok((known, vpk));
        }
        let (known, vpk) = self
            .query_lock(resource_type, id)
            .map_err(|e| self.note(e))?;
        self.known.insert(key, known);
        Ok((known, vpk))
    }

    fn query_lock(&mut self, resource_type: &str, id: &str) -> Result<(Known, i64)> {
        let stmt = self.conn.prepared(LOCK_ROW_SQL).map_err(db_error)?;
        let row = self
            .conn
            .client
            .query_one(&stmt, &[&resource_type, &id])
            .map_err(db_error)?;
        let pk: Option<i64> = row.try_get(0).map_err(db_error)?;
        let vpk: i64 = row.try_get(3).map_err(db_error)?;
        match pk {
            Some(pk) => {
                let version: i64 = row.try_get(1).map_err(db_error)?;
                let deleted: i16 = row.try_get(2).map_err(db_error)?;
                Ok((
                    Known {
                        pk,
                        version,
                        deleted: deleted != 0,
                        stored: true,
                    },
                    vpk,
                ))
            }
            None => {
                let new_pk: Option<i64> = row.try_get(4).map_err(db_error)?;
                let new_pk = new_pk
                    .ok_or_else(|| StoreError::Backend("no key drawn for a new resource".into()))?;
                Ok((
                    Known {
                        pk: new_pk,
                        version: 0,
                        deleted: false,
                        stored: false,
                    },
                    vpk,
                ))
            }
        }
    }

    fn query_reindex_batch(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, Vec<u8>)>> {
        let lock = self.conn.prepared(REINDEX_LOCK_SQL).map_err(db_error)?;
        let pks: Vec<i64> = self
            .conn
            .client
            .query(&lock, &[&after, &(limit as i64)])
            .map_err(db_error)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(db_error)?;
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let bodies = self.conn.prepared(REINDEX_BODIES_SQL).map_err(db_error)?;
        self.conn
            .client
            .query(&bodies, &[&pks])
            .map_err(db_error)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, postgres::Error>>()
            .map_err(db_error)
    }

    fn query_vpk(&mut self) -> Result<i64> {
        let stmt = self.conn.prepared(NEXT_VPK_SQL).map_err(db_error)?;
        let row = self.conn.client.query_one(&stmt, &[]).map_err(db_error)?;
        row.try_get(0).map_err(db_error)
    }

    /// Buffer version `version` of a resource and remember the row's new state.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        known: Known,
        vpk: i64,
        ty: &str,
        id: &str,
        version: i64,
        method: Method,
        body: Vec<u8>,
        resource: Option<&Value>,
    ) -> Result<()> {
        let deleted = method == Method::Delete;
        // a live count per type: +1 when a resource comes to life, -1 when it dies, 0 for an update
        let delta = i64::from(!deleted) - i64::from(known.live().is_some());
        self.buffer.count_type(ty, delta);
        let index = match resource {
            Some(r) => sql::index_rows(ty, &continuum_fhir::extract_index(r)),
            None => Vec::new(),
        };
        let v = Version {
            vpk,
            res_pk: known.pk,
            resource_type: ty.to_string(),
            id: id.to_string(),
            version,
            last_updated: to_micros(self.now),
            deleted,
            method,
            body,
        };
        self.buffer.write(v, known.stored, index);
        self.known.insert(
            (ty.to_string(), id.to_string()),
            Known {
                version,
                deleted,
                ..known
            },
        );
        if self.buffer.len() >= AUTO_FLUSH_VERSIONS {
            self.flush()?;
        }
        Ok(())
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        // The closure panicked or an error skipped commit/rollback: never return a connection to the pool
        // with a transaction open.
        if !self.finished {
            let _ = self.conn.client.batch_execute("ROLLBACK");
        }
    }
}

impl WriteTx for PgTx<'_> {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        self.flush()?;
        queries::read(self.conn, resource_type, id).map_err(|e| self.note(e))
    }

    fn search(&mut self, query: &SearchQuery) -> Result<SearchPage> {
        self.flush()?;
        queries::search(self.conn, query).map_err(|e| self.note(e))
    }

    fn guard(&mut self, key: &str) -> Result<()> {
        self.check_poison()?;
        let res = self
            .conn
            .prepared("SELECT pg_advisory_xact_lock($1)")
            .and_then(|stmt| self.conn.client.execute(&stmt, &[&token_hash(None, key)]));
        res.map(|_| ()).map_err(|e| self.note(db_error(e)))
    }

    fn put(&mut self, resource: &mut Value, expect: Expect) -> Result<Written> {
        let (ty, id) = type_and_id(resource)?;
        let (known, vpk) = self.lock_row(&ty, &id)?;
        let live = known.live();
        match (expect, live) {
            (Expect::Absent, Some(_)) => return Err(StoreError::AlreadyExists(ty, id)),
            (Expect::Version(v), Some(cur)) if cur != v => {
                return Err(StoreError::VersionConflict {
                    expected: v,
                    current: Some(cur),
                })
            }
            (Expect::Version(v), None) => {
                return Err(StoreError::VersionConflict {
                    expected: v,
                    current: None,
                })
            }
            _ => {}
        }
        let version = known.version + 1;
        let body = stamp(resource, version, self.now)?;
        let method = if live.is_some() {
            Method::Update
        } else {
            Method::Create
        };
        self.record(
            known,
            vpk,
            &ty,
            &id,
            version,
            method,
            body.clone(),
            Some(resource),
        )?;
        Ok(Written {
            version,
            last_updated: self.now,
            created: live.is_none(),
            body,
        })
    }

    fn append_audit(&mut self, record: &continuum_store::AuditRecord) -> Result<()> {
        // Straight to the transaction's connection: nothing orders audit rows against the buffered resource
        // writes, which commit (or roll back) in the same transaction anyway.
        self.check_poison()?;
        crate::audit::insert(self.conn, record).map_err(|e| self.note(e))
    }

    fn reindex_after(&mut self, after: i64, limit: usize) -> Result<Option<ReindexStep>> {
        self.flush()?;
        let res = self.query_reindex_batch(after, limit);
        let rows = res.map_err(|e| self.note(e))?;
        let Some(last_key) = rows.last().map(|r| r.0) else {
            return Ok(None);
        };
        for (pk, ty, body) in &rows {
            let resource: Value = serde_json::from_slice(body).map_err(|e| {
                StoreError::Backend(format!("stored body of {ty} is not JSON: {e}"))
            })?;
            let index = sql::index_rows(ty, &continuum_fhir::extract_index(&resource));
            self.buffer.reindex(*pk, index);
        }
        // the whole batch's rows go out in one statement
        self.flush()?;
        Ok(Some(ReindexStep {
            last_key,
            resources: rows.len(),
        }))
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        self.check_poison()?;
        let res = match value {
            Some(v) => self
                .conn
                .prepared(
                    "INSERT INTO store_setting (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|stmt| self.conn.client.execute(&stmt, &[&key, &v])),
            None => self
                .conn
                .prepared("DELETE FROM store_setting WHERE key = $1")
                .and_then(|stmt| self.conn.client.execute(&stmt, &[&key])),
        };
        res.map(|_| ()).map_err(|e| self.note(db_error(e)))
    }

    fn delete(&mut self, resource_type: &str, id: &str, expect: Expect) -> Result<Option<i64>> {
        let (known, vpk) = self.lock_row(resource_type, id)?;
        let Some(current) = known.live() else {
            // Deleting what is not there is idempotent, unless the caller insisted on a version.
            return match expect {
                Expect::Version(v) => Err(StoreError::VersionConflict {
                    expected: v,
                    current: None,
                }),
                _ => Ok(None),
            };
        };
        if let Expect::Version(v) = expect {
            if v != current {
                return Err(StoreError::VersionConflict {
                    expected: v,
                    current: Some(current),
                });
            }
        }
        let version = current + 1;
        self.record(
            known,
            vpk,
            resource_type,
            id,
            version,
            Method::Delete,
            Vec::new(),
            None,
        )?;
        Ok(Some(version))
    }
}
