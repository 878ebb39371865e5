//! [`AuditStore`] on this backend.
//!
//! An append is one `INSERT` (of every record, over `UNNEST`ed arrays), so it is its own transaction; inside a
//! write transaction [`insert`] runs on that transaction's connection and commits or rolls back with it. Rows
//! are never locked or chained at insert time, so concurrent requests do not queue on a chain head: the sealer
//! chains what has committed, one sealer at a time across servers under [`SEAL_LOCK`].

use continuum_store::audit::{link_hash, GENESIS};
use continuum_store::{AuditQuery, AuditRecord, AuditRow, AuditStore, ChainLink, Result};
use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use crate::conn::{db_error, Conn};
use crate::PostgresStore;

/// Key of the transaction-level advisory lock that makes the sealer exclusive: an arbitrary constant (ASCII
/// "CONTAUDT") that shares the key space with the hashed keys of `WriteTx::guard` and the migration lock,
/// colliding only by chance (a collision would only make the two wait for each other).
pub(crate) const SEAL_LOCK: i64 = 0x434F_4E54_4155_4454;

/// Rows of a report when the query gives no limit.
const DEFAULT_LIMIT: usize = 100;

const INSERT_SQL: &str =
    "INSERT INTO audit_event (recorded, agent, patient, action, subtype, outcome, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Many rows in one statement; `WITH ORDINALITY` and the `ORDER BY` draw seqs in the order of the records.
const INSERT_MANY_SQL: &str = "INSERT INTO audit_event (recorded, agent, patient, action, subtype, outcome, body) \
     SELECT recorded, agent, patient, action, subtype, outcome, body \
     FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[]) \
     WITH ORDINALITY AS r (recorded, agent, patient, action, subtype, outcome, body, n) ORDER BY n";

/// The columns [`row_at`] reads, from `audit_event e`.
const ROW_COLUMNS: &str =
    "e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body";

const UNSEALED_SQL: &str =
    "SELECT e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body \
     FROM audit_event e WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.seq = e.seq) \
     ORDER BY e.seq LIMIT $1";

/// `audit_event e` has no link. A scalar subquery, probed per row of the (short) range it follows: as
/// `NOT EXISTS` the planner chose a merge anti-join that read the whole chain from its first link on every seal
/// (0.3 s at a million links, and growing with the log).
macro_rules! unsealed {
    () => {
        "(SELECT 1 FROM audit_chain c WHERE c.seq = e.seq) IS NULL"
    };
}

/// The sealer's query: like [`UNSEALED_SQL`] but only from a little below the newest sealed row, so a seal
/// costs the same on a log of a billion rows as on an empty one. The margin covers rows that commit out of
/// `seq` order (PostgreSQL hands out sequence numbers before commit); a row older than that is still found
/// by `verify`, which scans everything.
const SEAL_SQL: &str = concat!(
    "SELECT e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body \
     FROM audit_event e \
     WHERE e.seq > (SELECT COALESCE(MAX(c.seq), 0) FROM audit_chain c) - $2 AND ",
    unsealed!(),
    " ORDER BY e.seq LIMIT $1"
);

/// How far below the newest sealed row the sealer looks for rows that committed late.
const SEAL_MARGIN: i64 = 10_000;

const CHAIN_SQL: &str = "SELECT c.pos, c.seq, c.prev_hash, c.hash, \
     e.seq, e.recorded, e.agent, e.patient, e.action, e.subtype, e.outcome, e.body, \
     e.patient IS NULL OR EXISTS (SELECT 1 FROM audit_patient p WHERE p.patient = e.patient AND p.seq = e.seq) \
     FROM audit_chain c LEFT JOIN audit_event e ON e.seq = c.seq \
     WHERE c.pos > $1 ORDER BY c.pos LIMIT $2";

const HEAD_SQL: &str = "SELECT pos, hash FROM audit_chain ORDER BY pos DESC LIMIT 1";

const LINKS_SQL: &str = "INSERT INTO audit_chain (pos, seq, prev_hash, hash) \
     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[])";

const FILE_SQL: &str = "INSERT INTO audit_patient (patient, seq) \
     SELECT patient, seq FROM UNNEST($1::text[], $2::int8[]) WITH ORDINALITY AS f (patient, seq, n) ORDER BY n";

/// Insert one audit row on `conn` (inside whatever transaction it has open).
pub(crate) fn insert(conn: &mut Conn, r: &AuditRecord) -> Result<()> {
    let stmt = conn.prepared(INSERT_SQL).map_err(db_error)?;
    conn.client
        .execute(
            &stmt,
            &[
                &r.recorded,
                &r.agent,
                &r.patient,
                &r.action,
                &r.subtype,
                &r.outcome,
                &r.body,
            ],
        )
        .map_err(db_error)?;
    Ok(())
}

/// An [`AuditRow`] from the 8 columns of [`ROW_COLUMNS`] starting at `at`; `None` when they are NULL (the
/// outer side of a join).
fn row_at(row: &Row, at: usize) -> Result<Option<AuditRow>> {
    let Some(seq) = row.try_get::<_, Option<i64>>(at).map_err(db_error)? else {
        return Ok(None);
    };
    Ok(Some(AuditRow {
        seq,
        record: AuditRecord {
            recorded: row.try_get(at + 1).map_err(db_error)?,
            agent: row.try_get(at + 2).map_err(db_error)?,
            patient: row.try_get(at + 3).map_err(db_error)?,
            action: row.try_get(at + 4).map_err(db_error)?,
            subtype: row.try_get(at + 5).map_err(db_error)?,
            outcome: row.try_get(at + 6).map_err(db_error)?,
            body: row.try_get(at + 7).map_err(db_error)?,
        },
    }))
}

fn rows(rows: &[Row]) -> Result<Vec<AuditRow>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(row) = row_at(r, 0)? {
            out.push(row);
        }
    }
    Ok(out)
}

fn unsealed(client: &mut impl GenericClient, limit: usize) -> Result<Vec<AuditRow>> {
    let found = client
        .query(UNSEALED_SQL, &[&sql_limit(limit)])
        .map_err(db_error)?;
    rows(&found)
}

/// The filters of `q` other than the patient, on `audit_event e`, as ` AND ...` with their values appended to
/// `params`; `seq` names the column paged on.
fn filters<'a>(q: &'a AuditQuery, params: &mut Vec<&'a (dyn ToSql + Sync)>, seq: &str) -> String {
    let mut conds: Vec<(String, &(dyn ToSql + Sync))> = Vec::new();
    if let Some(agent) = &q.agent {
        conds.push(("e.agent =".into(), agent));
    }
    if let Some(from) = &q.from {
        conds.push(("e.recorded >=".into(), from));
    }
    if let Some(to) = &q.to {
        conds.push(("e.recorded <".into(), to));
    }
    if let Some(before) = &q.before_seq {
        conds.push((format!("{seq} <"), before));
    }
    let mut sql = String::new();
    for (cond, value) in conds {
        params.push(value);
        sql.push_str(&format!(" AND {cond} ${}", params.len()));
    }
    sql
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl AuditStore for PostgresStore {
    fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        match records {
            [] => Ok(()),
            [one] => insert(&mut *self.conn()?, one),
            many => {
                let mut recorded = Vec::with_capacity(many.len());
                let mut agent = Vec::with_capacity(many.len());
                let mut patient = Vec::with_capacity(many.len());
                let mut action = Vec::with_capacity(many.len());
                let mut subtype = Vec::with_capacity(many.len());
                let mut outcome = Vec::with_capacity(many.len());
                let mut body = Vec::with_capacity(many.len());
                for r in many {
                    recorded.push(r.recorded);
                    agent.push(r.agent.as_str());
                    patient.push(r.patient.as_deref());
                    action.push(r.action.as_str());
                    subtype.push(r.subtype.as_str());
                    outcome.push(r.outcome.as_str());
                    body.push(r.body.as_slice());
                }
                let mut conn = self.conn()?;
                let stmt = conn.prepared(INSERT_MANY_SQL).map_err(db_error)?;
                conn.client
                    .execute(
                        &stmt,
                        &[
                            &recorded, &agent, &patient, &action, &subtype, &outcome, &body,
                        ],
                    )
                    .map_err(db_error)?;
                Ok(())
            }
        }
    }

    fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        let limit = sql_limit(if q.limit == 0 { DEFAULT_LIMIT } else { q.limit });
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(8);
        let sql = match &q.patient {
            None => {
                let conds = filters(q, &mut params, "e.seq");
                params.push(&limit);
                format!(
                    "SELECT {ROW_COLUMNS} FROM audit_event e WHERE true{conds} ORDER BY e.seq DESC LIMIT ${}",
                    params.len()
                )
            }
            Some(patient) => {
                // the rows filed under the patient, and the patient's rows the sealer has not reached yet
                params.push(patient);
                params.push(&limit);
                params.push(&SEAL_MARGIN);
                let filed = filters(q, &mut params, "p.seq");
                let tail = filters(q, &mut params, "e.seq");
                format!(
                    "SELECT * FROM (SELECT {ROW_COLUMNS} FROM audit_patient p JOIN audit_event e ON e.seq = p.seq \
                     WHERE p.patient = $1{filed} ORDER BY p.seq DESC LIMIT $2) f \
                     UNION ALL SELECT * FROM (SELECT {ROW_COLUMNS} FROM audit_event e \
                     WHERE e.seq > (SELECT COALESCE(MAX(c.seq), 0) FROM audit_chain c) - $3 AND e.patient = $1 \
                     AND {}{tail} \
                     ORDER BY e.seq DESC LIMIT $2) u \
                     ORDER BY 1 DESC LIMIT $2",
                    unsealed!()
                )
            }
        };

        let mut conn = self.conn()?;
        // at most 32 shapes of statement: worth preparing once per connection
        let stmt = conn.prepared(&sql).map_err(db_error)?;
        let found = conn.client.query(&stmt, &params).map_err(db_error)?;
        rows(&found)
    }

    fn seal_audit(&self, max: usize) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        let mut conn = self.conn()?;
        // Dropping an uncommitted `Transaction` rolls it back (and releases the lock).
        let mut tx = conn.client.transaction().map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SEAL_LOCK])
            .map_err(db_error)?;
        // The estimate of reading a margin of rows with their bodies is high enough to make PostgreSQL compile
        // the query to machine code on every seal: 70 ms of compiling for 16 ms of work.
        tx.batch_execute("SET LOCAL jit = off").map_err(db_error)?;
        // READ COMMITTED: statements from here on see the previous sealer's committed links.
        let head = tx.query_opt(HEAD_SQL, &[]).map_err(db_error)?;
        let (mut pos, mut prev) = match head {
            Some(r) => (
                r.try_get::<_, i64>(0).map_err(db_error)?,
                r.try_get::<_, String>(1).map_err(db_error)?,
            ),
            None => (0, GENESIS.to_string()),
        };
        let found = tx
            .query(SEAL_SQL, &[&sql_limit(max), &SEAL_MARGIN])
            .map_err(db_error)?;
        let rows = rows(&found)?;
        if rows.is_empty() {
            tx.commit().map_err(db_error)?;
            return Ok(0);
        }
        let mut positions = Vec::with_capacity(rows.len());
        let mut seqs = Vec::with_capacity(rows.len());
        let mut prevs = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        for row in &rows {
            let hash = link_hash(&prev, row);
            pos += 1;
            positions.push(pos);
            seqs.push(row.seq);
            prevs.push(std::mem::replace(&mut prev, hash.clone()));
            hashes.push(hash);
        }
        tx.execute(LINKS_SQL, &[&positions, &seqs, &prevs, &hashes])
            .map_err(db_error)?;
        let (patients, filed): (Vec<&str>, Vec<i64>) = continuum_store::audit::by_patient(&rows)
            .into_iter()
            .unzip();
        if !patients.is_empty() {
            tx.execute(FILE_SQL, &[&patients, &filed])
                .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
        Ok(rows.len())
    }

    fn audit_chain(&self, after_pos: i64, limit: usize) -> Result<Vec<ChainLink>> {
        let mut conn = self.conn()?;
        let stmt = conn.prepared(CHAIN_SQL).map_err(db_error)?;
        let found = conn
            .client
            .query(&stmt, &[&after_pos, &sql_limit(limit)])
            .map_err(db_error)?;
        found
            .iter()
            .map(|r| {
                Ok(ChainLink {
                    pos: r.try_get(0).map_err(db_error)?,
                    seq: r.try_get(1).map_err(db_error)?,
                    prev_hash: r.try_get(2).map_err(db_error)?,
                    hash: r.try_get(3).map_err(db_error)?,
                    row: row_at(r, 4)?,
                    filed: r.try_get(12).map_err(db_error)?,
                })
            })
            .collect()
    }

    fn audit_unsealed(&self, limit: usize) -> Result<Vec<AuditRow>> {
        unsealed(&mut self.conn()?.client, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use continuum_store::audit_conformance::record;
    use continuum_store::SystemClock;
    use std::sync::Arc;

    /// The sealer probes the chain for each row of its short range, whatever the statistics say, instead of
    /// reading the chain from its first link (what `NOT EXISTS` planned to, on a log of a million links).
    #[test]
    fn the_sealer_probes_the_chain_per_row() {
        let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
            return;
        };
        let store = PostgresStore::open(&url, Arc::new(SystemClock)).unwrap();
        let records: Vec<_> = (0..2_000)
            .map(|i| record("u1", Some("p1"), 1_000 + i))
            .collect();
        store.append_audit(&records).unwrap();
        while store.seal_audit(500).unwrap() > 0 {}
        store.append_audit(&records[..10]).unwrap();
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute("ANALYZE audit_event; ANALYZE audit_chain")
            .unwrap();
        // the plan PostgreSQL keeps for the prepared statement, and the one for these values
        for setting in ["force_generic_plan", "force_custom_plan"] {
            client
                .batch_execute(&format!("SET plan_cache_mode = {setting}"))
                .unwrap();
            let plan: Vec<String> = client
                .query(
                    &format!("EXPLAIN {SEAL_SQL}"),
                    &[&sql_limit(10_000), &SEAL_MARGIN],
                )
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("Anti Join"), "{setting}:\n{plan}");
            assert!(plan.contains("(seq = e.seq)"), "{setting}:\n{plan}");
        }
    }
}
