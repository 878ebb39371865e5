//! The write transaction: versions, the current-version pointer and index rows, written together.

use std::collections::{BTreeMap, BTreeSet};

use continuum_store::search::IndexTable;
use continuum_store::sql::{self, CountKey, ALL_INDEX_TABLES};
use continuum_store::{
    stamp, to_micros, type_and_id, Expect, Method, ReindexStep, Result, SearchPage, SearchQuery,
    StoreError, StoredResource, WriteTx, Written,
};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{backend, bind, read_current, run_search};

/// The next live resources after a key, with their current bodies.
const REINDEX_BATCH_SQL: &str = "SELECT r.pk, r.type, v.body FROM resource r \
     JOIN resource_version v ON v.vpk = r.current_vpk \
     WHERE r.pk > ?1 AND r.deleted = 0 ORDER BY r.pk LIMIT ?2";

pub(crate) struct SqliteTx<'a> {
    txn: &'a Connection,
    now: OffsetDateTime,
    /// `token_count` changes of this transaction's writes, applied once per key before it ends or reads
    /// (a bundle's resources share most of their codes: one update per code instead of one per resource).
    counts: BTreeMap<CountKey, i64>,
    /// `type_count` changes likewise: +1 per resource created (or created again), -1 per resource deleted.
    type_counts: BTreeMap<String, i64>,
}

impl<'a> SqliteTx<'a> {
    pub(crate) fn new(txn: &'a Connection, now: OffsetDateTime) -> Self {
        // Stored instants have microsecond precision; truncate so what we return equals what we read back.
        let now = now
            .replace_nanosecond(now.microsecond() * 1_000)
            .unwrap_or(now);
        SqliteTx {
            txn,
            now,
            counts: BTreeMap::new(),
            type_counts: BTreeMap::new(),
        }
    }

    /// (pk, version, deleted) of the resource row.
    fn current(&self, ty: &str, id: &str) -> Result<Option<(i64, i64, bool)>> {
        let mut stmt = self
            .txn
            .prepare_cached("SELECT pk, version, deleted FROM resource WHERE type = ?1 AND id = ?2")
            .map_err(backend)?;
        stmt.query_row([ty, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))
        })
        .optional()
        .map_err(backend)
    }

    /// Delete the index rows of a resource; the count keys its token rows had.
    fn clear_index(&self, res_pk: i64) -> Result<BTreeSet<CountKey>> {
        let mut old = Vec::new();
        for table in ALL_INDEX_TABLES {
            if table == IndexTable::Token {
                let mut stmt = self
                    .txn
                    .prepare_cached(
                        "DELETE FROM idx_token WHERE res_pk = ?1 RETURNING pid, sys_code_hash, code_hash",
                    )
                    .map_err(backend)?;
                let rows = stmt
                    .query_map([res_pk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(backend)?;
                old = rows.collect::<rusqlite::Result<_>>().map_err(backend)?;
                continue;
            }
            let sql = format!("DELETE FROM {} WHERE res_pk = ?1", table.name());
            self.txn
                .prepare_cached(&sql)
                .map_err(backend)?
                .execute([res_pk])
                .map_err(backend)?;
        }
        Ok(sql::count_keys(old))
    }

    /// Extract the search values of `resource` and insert its index rows; the count keys of its token rows.
    fn insert_index(&self, res_pk: i64, ty: &str, resource: &Value) -> Result<BTreeSet<CountKey>> {
        let entries = continuum_fhir::extract_index(resource);
        let rows = sql::index_rows(ty, &entries);
        for (table, values) in &rows {
            let mut stmt = self
                .txn
                .prepare_cached(sql::insert_sql(*table))
                .map_err(backend)?;
            let all = std::iter::once(rusqlite::types::Value::Integer(res_pk)).chain(bind(values));
            stmt.execute(params_from_iter(all)).map_err(backend)?;
        }
        Ok(sql::count_keys(rows.iter().filter_map(
            |(table, values)| {
                (*table == IndexTable::Token)
                    .then(|| sql::token_row_key(values))
                    .flatten()
            },
        )))
    }

    /// Replace the index rows of a resource (`resource` None: it was deleted) and keep `token_count` in step.
    fn reindex(
        &mut self,
        res_pk: i64,
        ty: &str,
        resource: Option<&Value>,
        stored: bool,
    ) -> Result<()> {
        let old = if stored {
            self.clear_index(res_pk)?
        } else {
            BTreeSet::new()
        };
        let new = match resource {
            Some(r) => self.insert_index(res_pk, ty, r)?,
            None => BTreeSet::new(),
        };
        for (key, delta) in sql::count_deltas(&old, &new) {
            *self.counts.entry(key).or_default() += delta;
        }
        Ok(())
    }

    /// Apply the pending `token_count` and `type_count` changes: before the transaction's own searches and at its end.
    pub(crate) fn apply_counts(&mut self) -> Result<()> {
        // the common case before a transaction's own searches: nothing written yet
        if self.counts.is_empty() && self.type_counts.is_empty() {
            return Ok(());
        }
        let mut stmt = self
            .txn
            .prepare_cached(
                "INSERT INTO token_count (pid, kind, hash, shard, n) VALUES (?1, ?2, ?3, 0, ?4) \
                 ON CONFLICT (pid, kind, hash, shard) DO UPDATE SET n = n + excluded.n",
            )
            .map_err(backend)?;
        for ((pid, kind, hash), delta) in std::mem::take(&mut self.counts) {
            if delta != 0 {
                stmt.execute(params![pid, kind, hash, delta])
                    .map_err(backend)?;
            }
        }
        let mut stmt = self
            .txn
            .prepare_cached(
                "INSERT INTO type_count (type, shard, n) VALUES (?1, 0, ?2) \
                 ON CONFLICT (type, shard) DO UPDATE SET n = n + excluded.n",
            )
            .map_err(backend)?;
        for (ty, delta) in std::mem::take(&mut self.type_counts) {
            if delta != 0 {
                stmt.execute(params![ty, delta]).map_err(backend)?;
            }
        }
        Ok(())
    }

    /// Insert a version row and point the resource row at it, creating the resource row when needed.
    #[allow(clippy::too_many_arguments)]
    fn write_version(
        &self,
        existing: Option<i64>,
        ty: &str,
        id: &str,
        version: i64,
        deleted: bool,
        method: Method,
        body: &[u8],
    ) -> Result<i64> {
        let at = to_micros(self.now);
        let res_pk = match existing {
            Some(pk) => pk,
            None => {
                let mut stmt = self
                    .txn
                    .prepare_cached(
                        "INSERT INTO resource (type, id, version, last_updated, deleted, current_vpk) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
                    )
                    .map_err(backend)?;
                stmt.execute(params![ty, id, version, at, deleted as i64])
                    .map_err(backend)?;
                self.txn.last_insert_rowid()
            }
        };
        let mut stmt = self
            .txn
            .prepare_cached(
                "INSERT INTO resource_version (res_pk, type, id, version, last_updated, deleted, method, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(backend)?;
        stmt.execute(params![
            res_pk,
            ty,
            id,
            version,
            at,
            deleted as i64,
            method.as_str(),
            body
        ])
        .map_err(backend)?;
        let vpk = self.txn.last_insert_rowid();
        let mut stmt = self
            .txn
            .prepare_cached("UPDATE resource SET version = ?1, last_updated = ?2, deleted = ?3, current_vpk = ?4 WHERE pk = ?5")
            .map_err(backend)?;
        stmt.execute(params![version, at, deleted as i64, vpk, res_pk])
            .map_err(backend)?;
        Ok(res_pk)
    }
}

fn check(expect: Expect, ty: &str, id: &str, live_version: Option<i64>) -> Result<()> {
    match expect {
        Expect::Absent if live_version.is_some() => {
            Err(StoreError::AlreadyExists(ty.into(), id.into()))
        }
        Expect::Version(v) if live_version != Some(v) => Err(StoreError::VersionConflict {
            expected: v,
            current: live_version,
        }),
        _ => Ok(()),
    }
}

impl WriteTx for SqliteTx<'_> {
    fn now(&self) -> OffsetDateTime {
        self.now
    }

    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        read_current(self.txn, resource_type, id)
    }

    fn search(&mut self, query: &SearchQuery) -> Result<SearchPage> {
        self.apply_counts()?;
        run_search(self.txn, query)
    }

    fn guard(&mut self, _key: &str) -> Result<()> {
        // The single writer connection already serialises every write transaction.
        Ok(())
    }

    fn put(&mut self, resource: &mut Value, expect: Expect) -> Result<Written> {
        let (ty, id) = type_and_id(resource)?;
        let current = self.current(&ty, &id)?;
        let live = current.and_then(|(_, v, deleted)| (!deleted).then_some(v));
        check(expect, &ty, &id, live)?;
        let version = current.map_or(1, |(_, v, _)| v + 1);
        let body = stamp(resource, version, self.now)?;
        let method = if live.is_some() {
            Method::Update
        } else {
            Method::Create
        };
        let res_pk = self.write_version(
            current.map(|c| c.0),
            &ty,
            &id,
            version,
            false,
            method,
            &body,
        )?;
        self.reindex(res_pk, &ty, Some(resource), current.is_some())?;
        if live.is_none() {
            *self.type_counts.entry(ty.clone()).or_default() += 1;
        }
        Ok(Written {
            version,
            last_updated: self.now,
            created: live.is_none(),
            body,
        })
    }

    fn append_audit(&mut self, record: &continuum_store::AuditRecord) -> Result<()> {
        crate::audit::insert(self.txn, record)
    }

    fn reindex_after(&mut self, after: i64, limit: usize) -> Result<Option<ReindexStep>> {
        // The single writer connection serialises this with every other write: no lock needed.
        let rows: Vec<(i64, String, Vec<u8>)> = {
            let mut stmt = self
                .txn
                .prepare_cached(REINDEX_BATCH_SQL)
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)?
        };
        let Some(last_key) = rows.last().map(|r| r.0) else {
            return Ok(None);
        };
        for (pk, ty, body) in &rows {
            let resource: Value = serde_json::from_slice(body).map_err(|e| {
                StoreError::Backend(format!("stored body of {ty} is not JSON: {e}"))
            })?;
            self.reindex(*pk, ty, Some(&resource), true)?;
        }
        Ok(Some(ReindexStep {
            last_key,
            resources: rows.len(),
        }))
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.txn.prepare_cached(
                "INSERT INTO store_setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![key, v])),
            None => self
                .txn
                .prepare_cached("DELETE FROM store_setting WHERE key = ?1")
                .and_then(|mut s| s.execute(params![key])),
        }
        .map(|_| ())
        .map_err(backend)
    }

    fn delete(&mut self, resource_type: &str, id: &str, expect: Expect) -> Result<Option<i64>> {
        let current = self.current(resource_type, id)?;
        let live = current.and_then(|(_, v, deleted)| (!deleted).then_some(v));
        if let Expect::Version(_) = expect {
            check(expect, resource_type, id, live)?;
        }
        let Some((pk, version, false)) = current else {
            return Ok(None);
        };
        let version = version + 1;
        self.write_version(
            Some(pk),
            resource_type,
            id,
            version,
            true,
            Method::Delete,
            b"",
        )?;
        self.reindex(pk, resource_type, None, true)?;
        *self
            .type_counts
            .entry(resource_type.to_string())
            .or_default() -= 1;
        Ok(Some(version))
    }
}
