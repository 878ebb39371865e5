//! Reads shared by the store and its write transactions: current version, one version, history, search.
//!
//! Fixed statements are prepared once per connection; search and history SQL comes from the shared compiler
//! (`continuum_store::sql`) and is sent with explicit parameter types in a single round trip, since its text
//! varies with the query.

use continuum_store::sql::{self, Dialect, SqlValue};
use continuum_store::{
    from_micros, Cursor, HistoryPage, HistoryQuery, Method, Result, SearchPage, SearchQuery,
    SortKind, SortValue, StoreError, StoredResource,
};
use postgres::types::{ToSql, Type};
use postgres::Row;

use crate::conn::{db_error, Conn};

const READ_SQL: &str = "SELECT v.vpk, v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body \
     FROM resource r JOIN resource_version v ON v.vpk = r.current_vpk WHERE r.type = $1 AND r.id = $2";

const VREAD_SQL: &str =
    "SELECT v.vpk, v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body \
     FROM resource_version v WHERE v.type = $1 AND v.id = $2 AND v.version = $3";

/// A row in [`sql::VERSION_COLUMNS`] layout: the cursor column first, then the version.
fn stored(row: &Row) -> Result<(i64, StoredResource)> {
    let cursor: i64 = row.try_get(0).map_err(db_error)?;
    let deleted: i16 = row.try_get(5).map_err(db_error)?;
    let method: &str = row.try_get(6).map_err(db_error)?;
    let method = Method::parse(method).ok_or_else(|| {
        StoreError::Backend(format!("unknown method {method:?} in resource_version"))
    })?;
    Ok((
        cursor,
        StoredResource {
            resource_type: row.try_get(1).map_err(db_error)?,
            id: row.try_get(2).map_err(db_error)?,
            version: row.try_get(3).map_err(db_error)?,
            last_updated: from_micros(row.try_get(4).map_err(db_error)?),
            deleted: deleted != 0,
            method,
            body: row.try_get(7).map_err(db_error)?,
        },
    ))
}

pub(crate) fn read(
    conn: &mut Conn,
    resource_type: &str,
    id: &str,
) -> Result<Option<StoredResource>> {
    let stmt = conn.prepared(READ_SQL).map_err(db_error)?;
    let row = conn
        .client
        .query_opt(&stmt, &[&resource_type, &id])
        .map_err(db_error)?;
    row.map(|r| stored(&r).map(|(_, s)| s)).transpose()
}

pub(crate) fn vread(
    conn: &mut Conn,
    resource_type: &str,
    id: &str,
    version: i64,
) -> Result<Option<StoredResource>> {
    let stmt = conn.prepared(VREAD_SQL).map_err(db_error)?;
    let row = conn
        .client
        .query_opt(&stmt, &[&resource_type, &id, &version])
        .map_err(db_error)?;
    row.map(|r| stored(&r).map(|(_, s)| s)).transpose()
}

/// Bind compiled values with their PostgreSQL types. NULL is only ever bound for TEXT columns (the compiler's
/// contract), so it is typed as TEXT.
fn typed_params(values: &[SqlValue]) -> Vec<(Box<dyn ToSql + Sync>, Type)> {
    values
        .iter()
        .map(|v| -> (Box<dyn ToSql + Sync>, Type) {
            match v {
                SqlValue::Int(i) => (Box::new(*i), Type::INT8),
                SqlValue::Real(f) => (Box::new(*f), Type::FLOAT8),
                SqlValue::Text(s) => (Box::new(s.clone()), Type::TEXT),
                SqlValue::TextList(l) => (Box::new(l.clone()), Type::TEXT_ARRAY),
                SqlValue::Null => (Box::new(None::<String>), Type::TEXT),
            }
        })
        .collect()
}

fn run(conn: &mut Conn, compiled: &sql::Compiled) -> Result<Vec<Row>> {
    let owned = typed_params(&compiled.params);
    if compiled.plan_once {
        let types: Vec<Type> = owned.iter().map(|(_, t)| t.clone()).collect();
        let stmt = conn
            .prepared_search(&compiled.sql, &types)
            .map_err(db_error)?;
        let params: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|(v, _)| v.as_ref()).collect();
        return conn.client.query(&stmt, &params).map_err(db_error);
    }
    let params: Vec<(&(dyn ToSql + Sync), Type)> =
        owned.iter().map(|(v, t)| (v.as_ref(), t.clone())).collect();
    conn.client
        .query_typed(&sql::numbered_placeholders(&compiled.sql), &params)
        .map_err(db_error)
}

fn count(conn: &mut Conn, compiled: &sql::Compiled) -> Result<u64> {
    let rows = run(conn, compiled)?;
    let n: i64 = match rows.first() {
        Some(row) => row.try_get(0).map_err(db_error)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Keep the first `count` rows; the cursor of the last kept row when more were found.
fn page(rows: Vec<Row>, count: usize) -> Result<(Vec<StoredResource>, Option<i64>)> {
    let more = rows.len() > count;
    let mut out = Vec::with_capacity(rows.len().min(count));
    let mut last = None;
    for row in rows.iter().take(count) {
        let (cursor, s) = stored(row)?;
        last = Some(cursor);
        out.push(s);
    }
    Ok((out, if more { last } else { None }))
}

/// The sort values of a row (columns 8 onwards), for the next page's cursor.
fn sort_values(row: &Row, q: &SearchQuery) -> Result<Vec<SortValue>> {
    let mut out = Vec::with_capacity(q.sort.len());
    for (i, key) in q.sort.iter().enumerate() {
        let idx = 8 + i;
        let v = match key.by.kind() {
            SortKind::Int => row
                .try_get::<_, Option<i64>>(idx)
                .map_err(db_error)?
                .map(SortValue::Int),
            SortKind::Real => row
                .try_get::<_, Option<f64>>(idx)
                .map_err(db_error)?
                .map(SortValue::Real),
            SortKind::Text => row
                .try_get::<_, Option<String>>(idx)
                .map_err(db_error)?
                .map(SortValue::Text),
        };
        out.push(v.unwrap_or(SortValue::Null));
    }
    Ok(out)
}

pub(crate) fn search(conn: &mut Conn, q: &SearchQuery) -> Result<SearchPage> {
    // a page of none (`_summary=count`, `_count=0`) has no rows and no next cursor: only the count runs
    let rows = if q.count == 0 {
        Vec::new()
    } else {
        let mut found = None;
        for first in sql::first_tries(Dialect::Postgres, q)? {
            // a try that filled the page (and found one more) found the first matches of the whole query
            let rows = run(conn, &first.query)?;
            if rows.len() > q.count {
                found = Some(rows);
                break;
            }
        }
        match found {
            Some(rows) => rows,
            None => run(conn, &sql::compile_search(Dialect::Postgres, q)?)?,
        }
    };
    let more = rows.len() > q.count;
    let mut matches = Vec::with_capacity(rows.len().min(q.count));
    let mut last = None;
    for row in rows.iter().take(q.count) {
        let (pk, s) = stored(row)?;
        last = Some(Cursor {
            pk,
            values: sort_values(row, q)?,
        });
        matches.push(s);
    }
    let next = if more { last } else { None };
    let total = if q.total {
        Some(count(conn, &sql::compile_count(Dialect::Postgres, q)?)?)
    } else {
        None
    };
    Ok(SearchPage {
        matches,
        next,
        total,
    })
}

pub(crate) fn history(conn: &mut Conn, q: &HistoryQuery) -> Result<HistoryPage> {
    let rows = run(conn, &sql::compile_history(Dialect::Postgres, q))?;
    let (entries, next) = page(rows, q.count)?;
    let total = if q.total {
        Some(count(
            conn,
            &sql::compile_history_count(Dialect::Postgres, q),
        )?)
    } else {
        None
    };
    Ok(HistoryPage {
        entries,
        next,
        total,
    })
}

pub(crate) fn explain(conn: &mut Conn, q: &SearchQuery) -> Result<String> {
    sql::explain_search(Dialect::Postgres, q, |query, out| {
        explain_into(conn, query, out)
    })
}

/// The SQL of one query and PostgreSQL's plan for it.
fn explain_into(conn: &mut Conn, compiled: &sql::Compiled, out: &mut String) -> Result<()> {
    let plan = sql::Compiled {
        sql: format!("EXPLAIN {}", compiled.sql),
        params: compiled.params.clone(),
        plan_once: false,
    };
    let rows = run(conn, &plan)?;
    if compiled.plan_once {
        out.push_str("-- prepared once per connection (PostgreSQL may keep a generic plan after five calls):\n");
    }
    out.push_str(&sql::numbered_placeholders(&compiled.sql));
    out.push('\n');
    push_lines(&rows, out)?;
    if compiled.plan_once {
        out.push_str("-- the generic plan it may keep instead:\n");
        let generic = generic_plan(conn, compiled);
        // whatever happened, the pooled connection goes back to planning as usual. (Not `DEALLOCATE ALL`:
        // that would drop the connection's cached protocol-level statements too.)
        let reset = conn
            .client
            .batch_execute("RESET plan_cache_mode")
            .map_err(db_error);
        let dropped = conn
            .client
            .batch_execute("DEALLOCATE continuum_explain")
            .map_err(db_error);
        push_lines(&generic?, out)?;
        reset?;
        dropped?;
    }
    Ok(())
}

fn push_lines(rows: &[Row], out: &mut String) -> Result<()> {
    for row in rows {
        let line: String = row.try_get(0).map_err(db_error)?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(())
}

/// The generic plan of a statement planned once: PostgreSQL 15 has no `EXPLAIN (GENERIC_PLAN)`, so the
/// statement is prepared under `plan_cache_mode = force_generic_plan` and explained through `EXECUTE`.
fn generic_plan(conn: &mut Conn, compiled: &sql::Compiled) -> Result<Vec<Row>> {
    let owned = typed_params(&compiled.params);
    let types: Vec<&str> = owned
        .iter()
        .map(|(_, t)| match *t {
            Type::INT8 => "int8",
            Type::FLOAT8 => "float8",
            Type::TEXT_ARRAY => "text[]",
            _ => "text",
        })
        .collect();
    conn.client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE continuum_explain ({}) AS {}",
            types.join(", "),
            sql::numbered_placeholders(&compiled.sql)
        ))
        .map_err(db_error)?;
    // A generic plan does not depend on the values, and `EXECUTE` under `EXPLAIN` takes no bound
    // parameters: typed NULLs stand in for them, so no value is written into SQL.
    let args: Vec<String> = types.iter().map(|t| format!("NULL::{t}")).collect();
    conn.client
        .query(
            &format!("EXPLAIN EXECUTE continuum_explain({})", args.join(", ")),
            &[],
        )
        .map_err(db_error)
}
