//! The write buffer of a transaction: resource rows, versions and index rows decided by `put`/`delete` but not
//! yet sent, written together by one statement.
//!
//! Why: round trips, not the server's work, limit bulk import on a small machine. A put costs one round trip
//! (locking its row, see `tx`); everything it writes waits here and goes out in a single statement of
//! data-modifying CTEs over `UNNEST`ed arrays — at commit, before a read or search in the same transaction,
//! or when the buffer grows large. The statement text is the same for every flush (empty arrays insert
//! nothing), so it is prepared once per connection.

use std::collections::HashMap;
use std::fmt::Write as _;

use continuum_store::search::IndexTable;
use continuum_store::sql::{self, SqlValue};
use continuum_store::{Method, Result, StoreError};
use postgres::types::ToSql;

/// Flush on its own once this many versions wait, to bound the memory a huge transaction holds.
pub(crate) const AUTO_FLUSH_VERSIONS: usize = 1_000;

/// One array parameter.
enum Column {
    Int8(Vec<i64>),
    Int2(Vec<i16>),
    Float8(Vec<f64>),
    Text(Vec<Option<String>>),
    Bytea(Vec<Vec<u8>>),
}

impl Column {
    fn pg_type(&self) -> &'static str {
        match self {
            Column::Int8(_) => "int8",
            Column::Int2(_) => "int2",
            Column::Float8(_) => "float8",
            Column::Text(_) => "text",
            Column::Bytea(_) => "bytea",
        }
    }

    fn into_param(self) -> Box<dyn ToSql + Sync> {
        match self {
            Column::Int8(c) => Box::new(c),
            Column::Int2(c) => Box::new(c),
            Column::Float8(c) => Box::new(c),
            Column::Text(c) => Box::new(c),
            Column::Bytea(c) => Box::new(c),
        }
    }

    /// Append an index value; false when its kind does not fit the column.
    fn push(&mut self, v: &SqlValue) -> bool {
        match (self, v) {
            (Column::Int8(c), SqlValue::Int(i)) => c.push(*i),
            (Column::Float8(c), SqlValue::Real(f)) => c.push(*f),
            (Column::Text(c), SqlValue::Text(s)) => c.push(Some(s.clone())),
            (Column::Text(c), SqlValue::Null) => c.push(None),
            _ => return false,
        }
        true
    }
}

fn int8() -> Column {
    Column::Int8(Vec::new())
}
fn float8() -> Column {
    Column::Float8(Vec::new())
}
fn text() -> Column {
    Column::Text(Vec::new())
}

/// Columns of an index table, `res_pk` first, and their (empty) arrays, in [`sql::index_rows`] order.
fn index_layout(table: IndexTable) -> (&'static str, Vec<Column>) {
    match table {
        IndexTable::String => (
            "(res_pk, pid, norm, exact)",
            vec![int8(), int8(), text(), text()],
        ),
        IndexTable::Token => (
            "(res_pk, pid, sys_code_hash, code_hash, system, code, text)",
            vec![int8(), int8(), int8(), int8(), text(), text(), text()],
        ),
        IndexTable::Reference => (
            "(res_pk, pid, target_type, target_id, url)",
            vec![int8(), int8(), text(), text(), text()],
        ),
        IndexTable::Date => (
            "(res_pk, pid, low, high)",
            vec![int8(), int8(), int8(), int8()],
        ),
        IndexTable::Number => (
            "(res_pk, pid, value, low, high)",
            vec![int8(), int8(), float8(), float8(), float8()],
        ),
        IndexTable::Quantity => (
            "(res_pk, pid, system, code, unit, value, low, high)",
            vec![
                int8(),
                int8(),
                text(),
                text(),
                text(),
                float8(),
                float8(),
                float8(),
            ],
        ),
        IndexTable::Uri => ("(res_pk, pid, value)", vec![int8(), int8(), text()]),
    }
}

/// A resource row: new (inserted) or existing (updated).
#[derive(Debug, Clone)]
struct Row {
    pk: i64,
    resource_type: String,
    id: String,
    version: i64,
    last_updated: i64,
    deleted: bool,
    current_vpk: i64,
}

/// A version to insert.
pub(crate) struct Version {
    pub vpk: i64,
    pub res_pk: i64,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: i64,
    pub deleted: bool,
    pub method: Method,
    pub body: Vec<u8>,
}

#[derive(Default)]
pub(crate) struct WriteBuffer {
    inserts: Vec<Row>,
    updates: Vec<Row>,
    /// pk → position in `inserts` or `updates`, so a resource written twice before a flush is one row.
    rows: HashMap<i64, (bool, usize)>,
    versions: Vec<Version>,
    /// Resources whose stored index rows must go (their new ones, if any, are in `index`).
    clear: Vec<i64>,
    index: Vec<(i64, IndexTable, Vec<SqlValue>)>,
    /// Live resources gained (+) or lost (-) per type, for `type_count`.
    types: std::collections::BTreeMap<String, i64>,
}

impl WriteBuffer {
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.clear.is_empty() && self.index.is_empty()
    }

    /// A resource of type `ty` came to life (+1), died (-1) or neither (0).
    pub fn count_type(&mut self, ty: &str, delta: i64) {
        if delta != 0 {
            *self.types.entry(ty.to_string()).or_default() += delta;
        }
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Record a version and the resource row's new state. `stored` says whether the row already exists in
    /// the database (then it is updated and its stored index rows cleared) or is new in this buffer.
    pub fn write(&mut self, v: Version, stored: bool, index: Vec<(IndexTable, Vec<SqlValue>)>) {
        let row = Row {
            pk: v.res_pk,
            resource_type: v.resource_type.clone(),
            id: v.id.clone(),
            version: v.version,
            last_updated: v.last_updated,
            deleted: v.deleted,
            current_vpk: v.vpk,
        };
        match self.rows.get(&row.pk).copied() {
            Some((true, i)) => self.inserts[i] = row,
            Some((false, i)) => self.updates[i] = row,
            None if stored => {
                self.rows.insert(row.pk, (false, self.updates.len()));
                self.clear.push(row.pk);
                self.updates.push(row);
            }
            None => {
                self.rows.insert(row.pk, (true, self.inserts.len()));
                self.inserts.push(row);
            }
        }
        let pk = v.res_pk;
        self.index.retain(|(p, _, _)| *p != pk);
        self.index
            .extend(index.into_iter().map(|(t, values)| (pk, t, values)));
        self.versions.push(v);
    }

    /// Replace the stored index rows of an existing resource whose version does not change (reindex).
    pub fn reindex(&mut self, pk: i64, index: Vec<(IndexTable, Vec<SqlValue>)>) {
        self.clear.push(pk);
        self.index.retain(|(p, _, _)| *p != pk);
        self.index
            .extend(index.into_iter().map(|(t, values)| (pk, t, values)));
    }

    /// The flush statement and its parameters; empties the buffer.
    pub fn take_statement(&mut self) -> Result<(String, Vec<Box<dyn ToSql + Sync>>)> {
        let b = std::mem::take(self);
        let rows = |rows: &[Row], with_names: bool| -> Vec<Column> {
            let mut cols = vec![Column::Int8(rows.iter().map(|r| r.pk).collect())];
            if with_names {
                cols.push(Column::Text(
                    rows.iter().map(|r| Some(r.resource_type.clone())).collect(),
                ));
                cols.push(Column::Text(
                    rows.iter().map(|r| Some(r.id.clone())).collect(),
                ));
            }
            cols.push(Column::Int8(rows.iter().map(|r| r.version).collect()));
            cols.push(Column::Int8(rows.iter().map(|r| r.last_updated).collect()));
            cols.push(Column::Int2(
                rows.iter().map(|r| i16::from(r.deleted)).collect(),
            ));
            cols.push(Column::Int8(rows.iter().map(|r| r.current_vpk).collect()));
            cols
        };
        let mut parts: Vec<(String, Vec<Column>, &'static str)> = vec![
            (
                "nr AS (INSERT INTO resource (pk, type, id, version, last_updated, deleted, current_vpk) SELECT * FROM UNNEST(".into(),
                rows(&b.inserts, true),
                "))",
            ),
            (
                "ur AS (UPDATE resource r SET version = u.version, last_updated = u.last_updated, deleted = u.deleted, \
                 current_vpk = u.current_vpk FROM UNNEST("
                    .into(),
                rows(&b.updates, false),
                ") AS u (pk, version, last_updated, deleted, current_vpk) WHERE r.pk = u.pk AND r.pk = ANY(${first}::int8[]))",
            ),
            (
                "nv AS (INSERT INTO resource_version (vpk, res_pk, type, id, version, last_updated, deleted, method, body) \
                 SELECT * FROM UNNEST("
                    .into(),
                vec![
                    Column::Int8(b.versions.iter().map(|v| v.vpk).collect()),
                    Column::Int8(b.versions.iter().map(|v| v.res_pk).collect()),
                    Column::Text(b.versions.iter().map(|v| Some(v.resource_type.clone())).collect()),
                    Column::Text(b.versions.iter().map(|v| Some(v.id.clone())).collect()),
                    Column::Int8(b.versions.iter().map(|v| v.version).collect()),
                    Column::Int8(b.versions.iter().map(|v| v.last_updated).collect()),
                    Column::Int2(b.versions.iter().map(|v| i16::from(v.deleted)).collect()),
                    Column::Text(b.versions.iter().map(|v| Some(v.method.as_str().to_string())).collect()),
                    Column::Bytea(b.versions.into_iter().map(|v| v.body).collect()),
                ],
                "))",
            ),
        ];
        // `r.pk = ANY(..)` repeats the join condition on purpose: as an index condition it keeps the update
        // at one index probe per row whatever plan the (possibly stale) statistics suggest for the join.
        // Sibling CTEs share one snapshot: these deletes see only index rows stored before this statement, never
        // the ones it inserts below, so clearing and re-indexing a resource can go in the same statement.
        // The token rows report what they carried and now carry, for `token_count` below.
        let token_keys = |table: &IndexTable| {
            if *table == IndexTable::Token {
                ") RETURNING res_pk, pid, sys_code_hash, code_hash)"
            } else {
                "))"
            }
        };
        for (i, table) in sql::ALL_INDEX_TABLES.iter().enumerate() {
            parts.push((
                format!("d{i} AS (DELETE FROM {} WHERE res_pk = ANY(", table.name()),
                vec![Column::Int8(b.clear.clone())],
                token_keys(table),
            ));
        }
        for (i, table) in sql::ALL_INDEX_TABLES.iter().enumerate() {
            let (names, mut cols) = index_layout(*table);
            for (pk, _, values) in b.index.iter().filter(|(_, t, _)| t == table) {
                let (first, rest) = cols.split_at_mut(1);
                let fits = values.len() == rest.len()
                    && first[0].push(&SqlValue::Int(*pk))
                    && rest.iter_mut().zip(values).all(|(c, v)| c.push(v));
                if !fits {
                    return Err(StoreError::Backend(format!(
                        "index row does not fit the {} layout",
                        table.name()
                    )));
                }
            }
            parts.push((
                format!(
                    "i{i} AS (INSERT INTO {} {names} SELECT * FROM UNNEST(",
                    table.name()
                ),
                cols,
                token_keys(table),
            ));
        }
        // Counts per token key (the shared `count_keys`/`count_deltas` in SQL): -1 for each key a cleared
        // resource had, +1 for each it has now, each once per resource; keys that stay cancel out and lock
        // nothing. The connection's shard keeps concurrent writers of one common code apart, and key order
        // keeps the row locks of every flush in one order.
        let t = sql::ALL_INDEX_TABLES
            .iter()
            .position(|t| *t == IndexTable::Token)
            .unwrap_or_default();
        let (by_sys, by_code, shards) = (
            sql::COUNT_BY_SYSTEM_AND_CODE,
            sql::COUNT_BY_CODE,
            sql::COUNT_SHARDS,
        );
        let types: Vec<(String, i64)> = b.types.into_iter().filter(|(_, d)| *d != 0).collect();
        parts.push((
            format!(
                "ty AS (INSERT INTO type_count (type, shard, n) \
                 SELECT t, pg_backend_pid() % {shards}, d FROM UNNEST("
            ),
            vec![
                Column::Text(types.iter().map(|(t, _)| Some(t.clone())).collect()),
                Column::Int8(types.iter().map(|(_, d)| *d).collect()),
            ],
            ") AS u (t, d) ON CONFLICT (type, shard) DO UPDATE SET n = type_count.n + excluded.n)",
        ));
        parts.push((
            format!(
                "tc AS (INSERT INTO token_count (pid, kind, hash, shard, n) \
                 SELECT pid, kind, hash, pg_backend_pid() % {shards}, SUM(delta)::int8 FROM (\
                 SELECT DISTINCT res_pk, pid, {by_sys}::int8 AS kind, sys_code_hash AS hash, -1 AS delta FROM d{t} \
                 UNION ALL SELECT DISTINCT res_pk, pid, {by_code}::int8, code_hash, -1 FROM d{t} \
                 UNION ALL SELECT DISTINCT res_pk, pid, {by_sys}::int8, sys_code_hash, 1 FROM i{t} \
                 UNION ALL SELECT DISTINCT res_pk, pid, {by_code}::int8, code_hash, 1 FROM i{t}\
                 ) c GROUP BY pid, kind, hash HAVING SUM(delta) <> 0 ORDER BY pid, kind, hash \
                 ON CONFLICT (pid, kind, hash, shard) DO UPDATE SET n = token_count.n + excluded.n)"
            ),
            Vec::new(),
            "",
        ));

        let mut sql = String::from("WITH ");
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        for (i, (head, cols, tail)) in parts.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let first = params.len() + 1;
            sql.push_str(&head);
            for (j, col) in cols.into_iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(sql, "${}::{}[]", params.len() + 1, col.pg_type());
                params.push(col.into_param());
            }
            sql.push_str(&tail.replace("{first}", &first.to_string()));
        }
        sql.push_str(" SELECT 1");
        Ok((sql, params))
    }
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values: they are health information.
        write!(f, "Column({})", self.pg_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index arrays must name the same columns, in the same order, as the shared compiler's layout.
    #[test]
    fn index_layout_matches_the_shared_insert_sql() {
        for table in sql::ALL_INDEX_TABLES {
            let (names, cols) = index_layout(table);
            let shared = sql::insert_sql(table);
            assert!(
                shared.contains(&format!("INSERT INTO {} {names} VALUES", table.name())),
                "{shared}"
            );
            assert_eq!(shared.matches('?').count(), cols.len(), "{}", table.name());
        }
    }

    #[test]
    fn columns_refuse_mismatched_values() {
        let mut c = int8();
        assert!(c.push(&SqlValue::Int(1)));
        assert!(!c.push(&SqlValue::Text("x".into())));
        assert!(text().push(&SqlValue::Null));
    }

    fn version(pk: i64, vpk: i64, v: i64) -> Version {
        Version {
            vpk,
            res_pk: pk,
            resource_type: "Patient".into(),
            id: format!("p{pk}"),
            version: v,
            last_updated: 0,
            deleted: false,
            method: Method::Create,
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn the_statement_is_the_same_for_every_flush() {
        let mut a = WriteBuffer::default();
        let (empty_sql, params) = a.take_statement().unwrap_or_else(|e| panic!("{e}"));
        // every parameter is used, and no placeholder goes beyond them
        assert!(empty_sql.contains(&format!("${}::", params.len())));
        assert!(!empty_sql.contains(&format!("${}", params.len() + 1)));
        a.write(
            version(1, 10, 1),
            false,
            vec![(
                IndexTable::Uri,
                vec![SqlValue::Int(5), SqlValue::Text("u".into())],
            )],
        );
        a.write(version(1, 11, 2), false, vec![]);
        a.write(version(2, 12, 3), true, vec![]);
        assert_eq!(
            (
                a.inserts.len(),
                a.updates.len(),
                a.versions.len(),
                a.clear.len()
            ),
            (1, 1, 3, 1)
        );
        assert!(
            a.index.is_empty(),
            "a rewrite replaces the buffered index rows"
        );
        assert_eq!(a.inserts[0].current_vpk, 11);
        let (sql, _) = a.take_statement().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sql, empty_sql);
        assert!(
            sql.contains("u.current_vpk FROM UNNEST($8::int8[], "),
            "{sql}"
        );
        assert!(
            sql.contains("r.pk = u.pk AND r.pk = ANY($8::int8[])"),
            "{sql}"
        );
        assert!(a.is_empty());
    }
}
