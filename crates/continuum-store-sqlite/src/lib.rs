//! SQLite backend of the [`ResourceStore`] port: the zero-set-up store a single clinic runs on.
//!
//! One writer connection (SQLite allows one writer at a time; serialising in-process avoids busy retries) with
//! group commit (`commit`), and a pool of reader connections, which WAL mode lets run beside the writer.
//! `synchronous=FULL` makes every acknowledged commit survive a crash or `kill -9`.

mod accounts;
mod audit;
mod clients;
mod commit;
mod migrate;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use continuum_store::sql::{self, Compiled, Dialect, SqlValue};
use continuum_store::{
    from_micros, Clock, Cursor, HistoryPage, HistoryQuery, Method, PoolStatus, Recount,
    ResourceStore, Result, SearchPage, SearchQuery, SortKind, SortValue, StoreError,
    StoredResource, WriteTx,
};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};

pub use migrate::{audit_path, migrate, MIGRATIONS};

pub struct SqliteStore {
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Readers of the audit file (reports, the chain, the sealer's reading): the clinical readers never open
    /// it, so an audit commit leaves their page caches alone.
    audit_readers: r2d2::Pool<SqliteConnectionManager>,
    /// The audit file as `main` with the clinical file attached as `clinical`: unqualified names reach either
    /// (no table is in both), and a transaction's audit rows commit before its clinical changes. Declared after
    /// the readers so that it is dropped last: the last connection to close checkpoints the WAL into the file
    /// and removes it, which a read-only reader cannot do (the file would be left needing its `-wal`).
    writer: commit::GroupCommit,
    clock: Arc<dyn Clock>,
}

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Statements kept prepared per connection. The default (16) is fewer than the write path uses (reads, 7 index
/// inserts, 7 index deletes, versions), and re-preparing on every write cost more than the inserts.
const STATEMENT_CACHE: usize = 128;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "mmap_size", 268_435_456)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

impl SqliteStore {
    /// Open (creating if missing) the database file at `path` and bring its schema up to date.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut clinical = Connection::open_with_flags(&path, flags).map_err(backend)?;
        configure(&clinical).map_err(backend)?;
        migrate::apply(&mut clinical)?;
        // What SQLite recommends for a long-lived database: analyse the tables whose statistics are missing or
        // stale (cheap when there is nothing to do; bounded by analysis_limit when there is).
        clinical
            .execute_batch("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
            .map_err(backend)?;
        let audit = migrate::audit_path(&path);
        // the audit file, up to date and paired with this database, becomes the writer
        let mut writer = migrate::open_audit(&path)?;
        pair_audit_file(&mut writer, &clinical, &audit, clock.as_ref())?;
        drop(clinical);
        configure(&writer).map_err(backend)?;
        // The writer reads the audit file through its page cache, not a map: mapped pages are initialised again
        // on every fetch, and the sealer's filing under patients touches a few thousand index leaves over and
        // over, which the cache keeps. With a log of 1-3 GB, patient-scoped searches (32 clients): 3,211-3,525
        // -> 3,447-3,639/s, p99 29-37 -> 27-30 ms.
        writer
            .pragma_update(None, "mmap_size", 0)
            .map_err(backend)?;
        let clinical_name = path
            .to_str()
            .ok_or_else(|| StoreError::Backend(format!("{} is not UTF-8", path.display())))?;
        writer
            .execute("ATTACH DATABASE ?1 AS clinical", [clinical_name])
            .map_err(backend)?;
        for (pragma, value) in [
            ("synchronous", "FULL".to_string()),
            ("cache_size", "-65536".to_string()),
            ("mmap_size", "268435456".to_string()),
        ] {
            writer
                .pragma_update(Some("clinical"), pragma, value)
                .map_err(backend)?;
        }
        let readers = reader_pool(&path, 8, 1)?;
        let audit_readers = reader_pool(&audit, 4, 0)?;
        Ok(SqliteStore {
            path,
            writer: commit::GroupCommit::new(writer),
            readers,
            audit_readers,
            clock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        self.readers.get().map_err(backend)
    }

    fn audit_reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>> {
        self.audit_readers.get().map_err(backend)
    }
}

/// How much of a file a reader maps: all of it. A page read through the map is a pointer into the OS page
/// cache; through `pread` it was a system call, a copy and a slot in the connection's own cache, a quarter of a
/// patient-scoped search's time at 1.1 M resources. Measured: 2,860 → 3,270 searches/s (+14 %), p99 28 → 24 ms;
/// with 50 commits/s to the same file alongside (each makes readers drop the map) it was no worse than `pread`.
/// (This was off while the audit log shared the file: every read's audit commit dropped every reader's map.)
/// The bundled SQLite caps the map at 2 GiB unless built with a larger `SQLITE_MAX_MMAP_SIZE` (`.cargo/config.toml`).
const READER_MMAP: i64 = 1 << 40;

/// A pool of read-only connections to the file at `path`.
fn reader_pool(
    path: &Path,
    max_size: u32,
    min_idle: u32,
) -> Result<r2d2::Pool<SqliteConnectionManager>> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|c| {
            c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            c.busy_timeout(std::time::Duration::from_secs(30))?;
            c.pragma_update(None, "cache_size", -32_768)?;
            c.pragma_update(None, "mmap_size", READER_MMAP)?;
            Ok(())
        });
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(min_idle))
        .build(manager)
        .map_err(backend)
}

/// Map a row of [`sql::VERSION_COLUMNS`] (or the search query's equivalent) to a stored resource.
pub(crate) fn row_to_resource(row: &Row<'_>) -> rusqlite::Result<(i64, StoredResource)> {
    let cursor: i64 = row.get(0)?;
    let method: String = row.get(6)?;
    Ok((
        cursor,
        StoredResource {
            resource_type: row.get(1)?,
            id: row.get(2)?,
            version: row.get(3)?,
            last_updated: from_micros(row.get(4)?),
            deleted: row.get::<_, i64>(5)? != 0,
            method: Method::parse(&method).unwrap_or(Method::Update),
            body: row.get(7)?,
        },
    ))
}

fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        SqlValue::Int(i) => V::Integer(*i),
        SqlValue::Real(f) => V::Real(*f),
        SqlValue::Text(s) => V::Text(s.clone()),
        // written for PostgreSQL only (`= ANY(?)`, which SQLite would refuse to prepare anyway)
        SqlValue::TextList(_) => V::Null,
        SqlValue::Null => V::Null,
    }
}

pub(crate) fn bind(values: &[SqlValue]) -> impl Iterator<Item = rusqlite::types::Value> + '_ {
    values.iter().map(to_sql)
}

const READ_SQL: &str = "SELECT v.vpk, v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body \
     FROM resource r JOIN resource_version v ON v.vpk = r.current_vpk WHERE r.type = ?1 AND r.id = ?2";
const VREAD_SQL: &str =
    "SELECT v.vpk, v.type, v.id, v.version, v.last_updated, v.deleted, v.method, v.body \
     FROM resource_version v WHERE v.type = ?1 AND v.id = ?2 AND v.version = ?3";

pub(crate) fn read_current(
    conn: &Connection,
    ty: &str,
    id: &str,
) -> Result<Option<StoredResource>> {
    let mut stmt = conn.prepare_cached(READ_SQL).map_err(backend)?;
    let mut rows = stmt.query([ty, id]).map_err(backend)?;
    match rows.next().map_err(backend)? {
        Some(row) => Ok(Some(row_to_resource(row).map_err(backend)?.1)),
        None => Ok(None),
    }
}

pub(crate) fn run_search(conn: &Connection, q: &SearchQuery) -> Result<SearchPage> {
    if q.count == 0 {
        // a page of none (`_summary=count`, `_count=0`) has no rows and no next cursor: only the count
        // runs (the page query collected every match to return none of them)
        return Ok(SearchPage {
            matches: Vec::new(),
            next: None,
            total: if q.total { Some(count(conn, q)?) } else { None },
        });
    }
    let mut found = None;
    for first in sql::first_tries(Dialect::Sqlite, q)? {
        // a try that filled the page (and found one more) found the first matches of the whole query
        if let (matches, Some(next)) = page_rows(conn, q, &first.query)? {
            found = Some((matches, Some(next)));
            break;
        }
    }
    let (matches, next) = match found {
        Some(page) => page,
        None => page_rows(conn, q, &sql::compile_search(Dialect::Sqlite, q)?)?,
    };
    let total = if q.total { Some(count(conn, q)?) } else { None };
    Ok(SearchPage {
        matches,
        next,
        total,
    })
}

/// The rows of one page query, and the cursor of the next page when there is one.
fn page_rows(
    conn: &Connection,
    q: &SearchQuery,
    compiled: &Compiled,
) -> Result<(Vec<StoredResource>, Option<Cursor>)> {
    let Compiled { sql, params, .. } = compiled;
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let sort_count = q.sort.len();
    let rows = stmt
        .query_map(params_from_iter(bind(params)), |row| {
            let (pk, res) = row_to_resource(row)?;
            let mut values = Vec::with_capacity(sort_count);
            for (i, key) in q.sort.iter().enumerate() {
                use rusqlite::types::Value as V;
                values.push(match (row.get::<_, V>(8 + i)?, key.by.kind()) {
                    (V::Integer(n), SortKind::Real) => SortValue::Real(n as f64),
                    (V::Integer(n), _) => SortValue::Int(n),
                    (V::Real(f), _) => SortValue::Real(f),
                    (V::Text(t), _) => SortValue::Text(t),
                    _ => SortValue::Null,
                });
            }
            Ok((pk, res, values))
        })
        .map_err(backend)?;
    let mut matches = Vec::with_capacity(q.count.min(1000));
    let mut last = None;
    let mut more = false;
    for row in rows {
        let (pk, res, values) = row.map_err(backend)?;
        // count + 1 rows were asked for: one more than a page means there is a next page
        if matches.len() == q.count {
            more = true;
            break;
        }
        last = Some(Cursor { pk, values });
        matches.push(res);
    }
    Ok((matches, if more { last } else { None }))
}

/// The number of matches of `q` (`_total`, `_summary=count`).
fn count(conn: &Connection, q: &SearchQuery) -> Result<u64> {
    let Compiled { sql, params, .. } = sql::compile_count(Dialect::Sqlite, q)?;
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let n: i64 = stmt
        .query_row(params_from_iter(bind(&params)), |r| r.get(0))
        .map_err(backend)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

impl ResourceStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> Result<()> {
        let conn = self.reader()?;
        conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend)
    }

    fn pool_status(&self) -> PoolStatus {
        let s = self.readers.state();
        PoolStatus {
            connections: s.connections + 1,
            idle: s.idle_connections,
            max: self.readers.max_size() + 1,
        }
    }

    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        let conn = self.reader()?;
        read_current(&conn, resource_type, id)
    }

    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(VREAD_SQL).map_err(backend)?;
        let mut rows = stmt
            .query(rusqlite::params![resource_type, id, version])
            .map_err(backend)?;
        match rows.next().map_err(backend)? {
            Some(row) => Ok(Some(row_to_resource(row).map_err(backend)?.1)),
            None => Ok(None),
        }
    }

    fn history(&self, q: &HistoryQuery) -> Result<HistoryPage> {
        let conn = self.reader()?;
        let Compiled { sql, params, .. } = sql::compile_history(Dialect::Sqlite, q);
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(bind(&params)), row_to_resource)
            .map_err(backend)?;
        let mut entries = Vec::new();
        let mut last = None;
        let mut more = false;
        for row in rows {
            let (vpk, res) = row.map_err(backend)?;
            if entries.len() == q.count {
                more = true;
                break;
            }
            last = Some(vpk);
            entries.push(res);
        }
        let total = if q.total {
            drop(stmt);
            let Compiled { sql, params, .. } = sql::compile_history_count(Dialect::Sqlite, q);
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let n: i64 = stmt
                .query_row(params_from_iter(bind(&params)), |r| r.get(0))
                .map_err(backend)?;
            Some(n as u64)
        } else {
            None
        };
        Ok(HistoryPage {
            entries,
            next: if more { last } else { None },
            total,
        })
    }

    fn search(&self, q: &SearchQuery) -> Result<SearchPage> {
        let conn = self.reader()?;
        run_search(&conn, q)
    }

    fn explain(&self, q: &SearchQuery) -> Result<String> {
        let conn = self.reader()?;
        sql::explain_search(Dialect::Sqlite, q, |query, out| {
            explain_into(&conn, query, out)
        })
    }

    fn analyze(&self) -> Result<()> {
        // Its own connection: ANALYZE takes the write lock only to store sqlite_stat1, and waits for it.
        // analysis_limit samples each index instead of reading it whole (seconds, not minutes, at 1 M).
        let conn = Connection::open(&self.path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(backend)?;
        conn.execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;")
            .map_err(backend)
    }

    fn recount(&self) -> Result<Recount> {
        // On the writer, as one member of a batch: writes queue behind it instead of timing out on the lock,
        // and every earlier member has already applied its count deltas.
        let mut out = Recount::default();
        self.writer.run(&mut |conn| {
            out.token_keys = conn
                .execute(continuum_store::sql::RECOUNT_TOKENS, [])
                .map_err(backend)? as u64;
            out.types = conn
                .execute(continuum_store::sql::RECOUNT_TYPES, [])
                .map_err(backend)? as u64;
            Ok(())
        })?;
        Ok(out)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT value FROM store_setting WHERE key = ?1")
            .map_err(backend)?;
        stmt.query_row([key], |r| r.get(0))
            .optional()
            .map_err(backend)
    }

    fn count_live(&self, after: i64) -> Result<u64> {
        let conn = self.reader()?;
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM resource WHERE pk > ?1 AND deleted = 0",
                [after],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(n as u64)
    }

    fn accounts(&self) -> &dyn continuum_store::AccountStore {
        self
    }

    fn audit(&self) -> &dyn continuum_store::AuditStore {
        self
    }

    fn clients(&self) -> &dyn continuum_store::ClientStore {
        self
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()> {
        self.writer.write(self.clock.as_ref(), work)
    }
}

/// The `store_setting` naming the audit file a database was written with.
const AUDIT_FILE_SETTING: &str = "audit.file";

/// Check that the audit file belongs to this database. The audit file carries a random identity in its header
/// (`PRAGMA user_version`) and the database records it on first use: an audit file deleted, lost in a partial
/// restore or swapped for another one would otherwise be replaced by a new, empty log without a word.
fn pair_audit_file(
    log: &mut Connection,
    clinical: &Connection,
    audit: &Path,
    clock: &dyn Clock,
) -> Result<()> {
    // one transaction, so two processes opening a new database at once agree on one identity
    let tx = log
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let mut id: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if id == 0 {
        // an identity, not a secret: distinct per file is all that is needed
        id = (clock.now().unix_timestamp_nanos() as i64 & 0x7fff_fffe) | 1;
        tx.pragma_update(None, "user_version", id)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    clinical
        .execute(
            "INSERT INTO store_setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            rusqlite::params![AUDIT_FILE_SETTING, id.to_string()],
        )
        .map_err(backend)?;
    let recorded: String = clinical
        .query_row(
            "SELECT value FROM store_setting WHERE key = ?1",
            [AUDIT_FILE_SETTING],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if recorded != id.to_string() {
        return Err(StoreError::Backend(format!(
            "{} is not the audit log this database was written with (it records audit file {recorded}, the file \
             is {id}): restore the database's own audit file (from the same backup) rather than start a new log",
            audit.display()
        )));
    }
    Ok(())
}

/// One query's SQL and SQLite plan, appended to `out` (what `continuum explain` prints).
fn explain_into(conn: &Connection, compiled: &Compiled, out: &mut String) -> Result<()> {
    let Compiled { sql, params, .. } = compiled;
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(bind(params)), |r| r.get::<_, String>(3))
        .map_err(backend)?;
    out.push_str(sql);
    out.push('\n');
    for row in rows {
        out.push_str(&row.map_err(backend)?);
        out.push('\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use continuum_store::SystemClock;

    /// The reader map is only as large as the SQLite build allows: without the `SQLITE_MAX_MMAP_SIZE` of
    /// `.cargo/config.toml` SQLite quietly caps it at 2 GiB and readers of a larger file fall back to `pread`.
    #[test]
    fn readers_map_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("m.db"), Arc::new(SystemClock)).unwrap();
        let reader = store.reader().unwrap();
        let mapped: i64 = reader
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mapped, READER_MMAP);
    }

    /// The writer reads the audit file (its `main`) through its page cache, never a map (see `open`).
    #[test]
    fn the_writer_does_not_map_the_audit_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("w.db"), Arc::new(SystemClock)).unwrap();
        let mut mapped = -1;
        store
            .writer
            .run(&mut |conn: &Connection| {
                mapped = conn
                    .query_row("PRAGMA main.mmap_size", [], |r| r.get(0))
                    .map_err(backend)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(mapped, 0);
    }
}
