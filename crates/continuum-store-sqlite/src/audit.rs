//! [`AuditStore`] on this backend.
//!
//! Appends and seals go through the writer (`commit`), so they share transactions and fsyncs with other
//! writes; the writer also makes the sealer exclusive (one writer connection per process, and `BEGIN IMMEDIATE`
//! holds SQLite's write lock against other processes). Reports and the chain are read from the reader pool.

use continuum_store::audit::{link_hash, GENESIS};
use continuum_store::{
    AuditQuery, AuditRecord, AuditRow, AuditStore, ChainLink, ResourceStore, Result, WriteTx,
};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::{backend, SqliteStore};

/// Rows of a report when the query gives no limit.
const DEFAULT_LIMIT: usize = 100;

const INSERT_SQL: &str =
    "INSERT INTO audit_event (recorded, agent, patient, action, subtype, outcome, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The columns [`row_at`] reads, from `audit_event e`.
const ROW_COLUMNS: &str =
    "e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body";

const UNSEALED_SQL: &str =
    "SELECT e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body \
     FROM audit_event e WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq) \
     ORDER BY e.seq LIMIT ?1";

/// The sealer's query: like [`UNSEALED_SQL`] but only from a little below the newest sealed row, so a seal
/// costs the same on a log of a billion rows as on an empty one. The margin covers rows that commit out of
/// `seq` order (PostgreSQL hands out sequence numbers before commit); a row older than that is still found
/// by `verify`, which scans everything.
const SEAL_SQL: &str =
    "SELECT e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body \
     FROM audit_event e \
     WHERE e.seq > (SELECT COALESCE(MAX(c.seq), 0) FROM audit_chain c) - ?2 \
     AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq) \
     ORDER BY e.seq LIMIT ?1";

/// How far below the newest sealed row the sealer looks for rows that committed late.
const SEAL_MARGIN: i64 = 10_000;

const CHAIN_SQL: &str = "SELECT c.pos, c.seq, c.prev_hash, c.hash, \
     e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body \
     FROM audit_chain c LEFT JOIN audit_event e ON e.seq = c.seq \
     WHERE c.pos > ?1 ORDER BY c.pos LIMIT ?2";

const HEAD_SQL: &str = "SELECT pos, hash FROM audit_chain ORDER BY pos DESC LIMIT 1";

const LINK_SQL: &str =
    "INSERT INTO audit_chain (pos, seq, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)";

/// Insert one audit row on `conn` (inside whatever transaction it has open).
pub(crate) fn insert(conn: &Connection, r: &AuditRecord) -> Result<()> {
    conn.prepare_cached(INSERT_SQL)
        .map_err(backend)?
        .execute(params![
            r.recorded, r.agent, r.patient, r.action, r.subtype, r.outcome, r.body
        ])
        .map_err(backend)?;
    Ok(())
}

/// An [`AuditRow`] from the 8 columns of [`ROW_COLUMNS`] starting at `at`; `None` when they are NULL (the
/// outer side of a join).
fn row_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<AuditRow>> {
    let Some(seq) = row.get::<_, Option<i64>>(at)? else {
        return Ok(None);
    };
    Ok(Some(AuditRow {
        seq,
        record: AuditRecord {
            recorded: row.get(at + 1)?,
            agent: row.get(at + 2)?,
            patient: row.get(at + 3)?,
            action: row.get(at + 4)?,
            subtype: row.get(at + 5)?,
            outcome: row.get(at + 6)?,
            body: row.get(at + 7)?,
        },
    }))
}

fn unsealed(conn: &Connection, limit: usize) -> Result<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(UNSEALED_SQL).map_err(backend)?;
    let rows = stmt
        .query_map([sql_limit(limit)], |r| row_at(r, 0))
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(row) = row.map_err(backend)? {
            out.push(row);
        }
    }
    Ok(out)
}

/// Chain up to `max` unsealed rows on `conn`, which must hold the write lock.
fn seal(conn: &Connection, max: usize) -> Result<usize> {
    let head: Option<(i64, String)> = conn
        .prepare_cached(HEAD_SQL)
        .map_err(backend)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    let (mut pos, mut prev) = head.unwrap_or_else(|| (0, GENESIS.to_string()));
    let rows = {
        let mut stmt = conn.prepare_cached(SEAL_SQL).map_err(backend)?;
        let found = stmt
            .query_map(params![sql_limit(max), SEAL_MARGIN], |r| row_at(r, 0))
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in found {
            if let Some(row) = row.map_err(backend)? {
                out.push(row);
            }
        }
        out
    };
    let mut stmt = conn.prepare_cached(LINK_SQL).map_err(backend)?;
    for row in &rows {
        let hash = link_hash(&prev, row);
        pos += 1;
        stmt.execute(params![pos, row.seq, prev, hash])
            .map_err(backend)?;
        prev = hash;
    }
    Ok(rows.len())
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl AuditStore for SqliteStore {
    fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.write(&mut |tx: &mut dyn WriteTx| {
            for r in records {
                tx.append_audit(r)?;
            }
            Ok(())
        })
    }

    fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        let mut sql = format!("SELECT {ROW_COLUMNS} FROM audit_event e WHERE 1 = 1");
        let mut values: Vec<Value> = Vec::new();
        let mut filter = |sql: &mut String, cond: &str, v: Value| {
            values.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", values.len()));
        };
        if let Some(agent) = &q.agent {
            filter(&mut sql, "e.agent =", Value::Text(agent.clone()));
        }
        if let Some(patient) = &q.patient {
            filter(&mut sql, "e.patient =", Value::Text(patient.clone()));
        }
        if let Some(from) = q.from {
            filter(&mut sql, "e.recorded >=", Value::Integer(from));
        }
        if let Some(to) = q.to {
            filter(&mut sql, "e.recorded <", Value::Integer(to));
        }
        if let Some(before) = q.before_seq {
            filter(&mut sql, "e.seq <", Value::Integer(before));
        }
        let limit = if q.limit == 0 { DEFAULT_LIMIT } else { q.limit };
        values.push(Value::Integer(sql_limit(limit)));
        sql.push_str(&format!(" ORDER BY e.seq DESC LIMIT ?{}", values.len()));

        let conn = self.audit_reader()?;
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(values), |r| row_at(r, 0))
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            if let Some(row) = row.map_err(backend)? {
                out.push(row);
            }
        }
        Ok(out)
    }

    fn seal_audit(&self, max: usize) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        let mut sealed = 0;
        self.writer.run(&mut |conn: &Connection| {
            sealed = seal(conn, max)?;
            Ok(())
        })?;
        Ok(sealed)
    }

    fn audit_chain(&self, after_pos: i64, limit: usize) -> Result<Vec<ChainLink>> {
        let conn = self.audit_reader()?;
        let mut stmt = conn.prepare_cached(CHAIN_SQL).map_err(backend)?;
        let rows = stmt
            .query_map(params![after_pos, sql_limit(limit)], |r| {
                Ok(ChainLink {
                    pos: r.get(0)?,
                    seq: r.get(1)?,
                    prev_hash: r.get(2)?,
                    hash: r.get(3)?,
                    row: row_at(r, 4)?,
                })
            })
            .map_err(backend)?;
        rows.map(|r| r.map_err(backend)).collect()
    }

    fn audit_unsealed(&self, limit: usize) -> Result<Vec<AuditRow>> {
        unsealed(&*self.audit_reader()?, limit)
    }
}
