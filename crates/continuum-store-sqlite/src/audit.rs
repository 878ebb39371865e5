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

/// The rows after the newest sealed one: where the sealer starts, and where a patient's unsealed rows are.
/// Only after it, unlike PostgreSQL's margin below it: SQLite has one writer at a time and hands out `seq`
/// inside its transaction, so rows commit in `seq` order and every row below the newest sealed one is sealed
/// (or its link was removed, which `verify` reports, scanning everything). The margin only made every seal,
/// and every patient's list, read 10,000 sealed rows again.
const AFTER_SEALED: &str = "e.seq > (SELECT COALESCE(MAX(c.seq), 0) FROM audit_chain c) \
     AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq)";

/// The sealer's query: like [`UNSEALED_SQL`] but only [`AFTER_SEALED`], so a seal costs the same on a log of a
/// billion rows as on an empty one.
fn seal_sql() -> String {
    format!("SELECT {ROW_COLUMNS} FROM audit_event e WHERE {AFTER_SEALED} ORDER BY e.seq LIMIT ?1")
}

const CHAIN_SQL: &str = "SELECT c.pos, c.seq, c.prev_hash, c.hash, \
     e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body, \
     e.patient IS NULL OR EXISTS (SELECT 1 FROM audit_patient p WHERE p.patient = e.patient AND p.seq = e.seq) \
     FROM audit_chain c LEFT JOIN audit_event e ON e.seq = c.seq \
     WHERE c.pos > ?1 ORDER BY c.pos LIMIT ?2";

const HEAD_SQL: &str = "SELECT pos, hash FROM audit_chain ORDER BY pos DESC LIMIT 1";

const LINK_SQL: &str =
    "INSERT INTO audit_chain (pos, seq, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)";

const FILE_SQL: &str = "INSERT INTO audit_patient (patient, seq) VALUES (?1, ?2)";

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

/// The head of the chain, `(pos, hash)` (`(0, GENESIS)` before the first link).
fn head(conn: &Connection) -> Result<(i64, String)> {
    let head: Option<(i64, String)> = conn
        .prepare_cached(HEAD_SQL)
        .map_err(backend)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    Ok(head.unwrap_or_else(|| (0, GENESIS.to_string())))
}

/// Links of one seal appended per writer transaction. The writer is shared by every audit append and write,
/// so a seal takes it in short turns instead of for the whole batch (10,000 rows in one turn: p99 of a clinic
/// search 115-130 ms). Larger turns file more of a patient's rows into one leaf (a clinic search alone: 972/s
/// at 250, 1,112/s at 1,000); smaller turns keep patient-scoped p99 lower (22-23 ms at 250 against 26-27 ms
/// at 1,000, 32 clients), with the mix at the same rate either way.
const LINKS_PER_TURN: usize = 250;

/// Chain up to `max` unsealed rows. The rows are read and hashed on a reader, off the writer; then each turn
/// on the writer checks that the chain's head is still the one the links follow on from (another process may
/// have sealed meanwhile: then this seal stops there) and appends its links, filing their rows under their
/// patients in the same transaction.
fn seal(store: &SqliteStore, max: usize) -> Result<usize> {
    let (seen, rows) = {
        let conn = store.audit_reader()?;
        // one snapshot for the head and the rows after it
        let tx = conn.unchecked_transaction().map_err(backend)?;
        let seen = head(&tx)?;
        let mut stmt = tx.prepare_cached(&seal_sql()).map_err(backend)?;
        let found = stmt
            .query_map(params![sql_limit(max)], |r| row_at(r, 0))
            .map_err(backend)?;
        let mut rows = Vec::new();
        for row in found {
            if let Some(row) = row.map_err(backend)? {
                rows.push(row);
            }
        }
        (seen, rows)
    };
    let (mut pos, mut prev) = seen;
    let mut sealed = 0;
    for turn in rows.chunks(LINKS_PER_TURN) {
        let follows = (pos, prev.clone());
        let mut links = Vec::with_capacity(turn.len());
        for row in turn {
            let hash = link_hash(&prev, row);
            pos += 1;
            links.push((
                pos,
                row.seq,
                std::mem::replace(&mut prev, hash.clone()),
                hash,
            ));
        }
        let mut moved = false;
        store.writer.run(&mut |conn: &Connection| {
            if head(conn)? != follows {
                moved = true;
                return Ok(());
            }
            let mut stmt = conn.prepare_cached(LINK_SQL).map_err(backend)?;
            for (pos, seq, prev, hash) in &links {
                stmt.execute(params![pos, seq, prev, hash])
                    .map_err(backend)?;
            }
            // in key order, so a patient's rows of this turn go to the same leaf together
            let mut stmt = conn.prepare_cached(FILE_SQL).map_err(backend)?;
            for (patient, seq) in continuum_store::audit::by_patient(turn) {
                stmt.execute(params![patient, seq]).map_err(backend)?;
            }
            Ok(())
        })?;
        if moved {
            break;
        }
        sealed += turn.len();
    }
    Ok(sealed)
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
        let limit = Value::Integer(sql_limit(if q.limit == 0 {
            DEFAULT_LIMIT
        } else {
            q.limit
        }));
        let mut values: Vec<Value> = Vec::new();
        // the filters other than the patient, on `audit_event e`; `seq` names the column paged on
        let filters = |values: &mut Vec<Value>, seq: &str| {
            let mut sql = String::new();
            let mut filter = |cond: &str, v: Value| {
                values.push(v);
                sql.push_str(&format!(" AND {cond} ?{}", values.len()));
            };
            if let Some(agent) = &q.agent {
                filter("e.agent =", Value::Text(agent.clone()));
            }
            if let Some(from) = q.from {
                filter("e.recorded >=", Value::Integer(from));
            }
            if let Some(to) = q.to {
                filter("e.recorded <", Value::Integer(to));
            }
            if let Some(before) = q.before_seq {
                filter(&format!("{seq} <"), Value::Integer(before));
            }
            sql
        };
        let sql = match &q.patient {
            None => {
                let conds = filters(&mut values, "e.seq");
                values.push(limit);
                format!(
                    "SELECT {ROW_COLUMNS} FROM audit_event e WHERE 1 = 1{conds} ORDER BY e.seq DESC LIMIT ?{}",
                    values.len()
                )
            }
            Some(patient) => {
                // the rows filed under the patient, and the patient's rows the sealer has not reached yet
                values.push(Value::Text(patient.clone()));
                values.push(limit);
                let filed = filters(&mut values, "p.seq");
                let unsealed = filters(&mut values, "e.seq");
                format!(
                    "SELECT * FROM (SELECT {ROW_COLUMNS} FROM audit_patient p JOIN audit_event e ON e.seq = p.seq \
                     WHERE p.patient = ?1{filed} ORDER BY p.seq DESC LIMIT ?2) \
                     UNION ALL SELECT * FROM (SELECT {ROW_COLUMNS} FROM audit_event e \
                     WHERE {AFTER_SEALED} AND e.patient = ?1{unsealed} \
                     ORDER BY e.seq DESC LIMIT ?2) \
                     ORDER BY 1 DESC LIMIT ?2"
                )
            }
        };

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
        seal(self, max)
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
                    filed: r.get(12)?,
                })
            })
            .map_err(backend)?;
        rows.map(|r| r.map_err(backend)).collect()
    }

    fn audit_unsealed(&self, limit: usize) -> Result<Vec<AuditRow>> {
        unsealed(&*self.audit_reader()?, limit)
    }
}
