//! Plain `.sql` migrations, embedded and applied in order; applied versions are recorded in
//! `schema_migrations`.

use std::path::{Path, PathBuf};

use continuum_store::{Result, StoreError};
use rusqlite::Connection;

use crate::backend;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_resources",
        include_str!("../migrations/0001_resources.sql"),
    ),
    (
        2,
        "0002_accounts",
        include_str!("../migrations/0002_accounts.sql"),
    ),
    (
        3,
        "0003_audit",
        include_str!("../migrations/0003_audit.sql"),
    ),
    (
        4,
        "0004_oauth",
        include_str!("../migrations/0004_oauth.sql"),
    ),
    (
        5,
        "0005_settings",
        include_str!("../migrations/0005_settings.sql"),
    ),
    (
        6,
        "0006_covering_probes",
        include_str!("../migrations/0006_covering_probes.sql"),
    ),
    (
        7,
        "0007_date_spans",
        include_str!("../migrations/0007_date_spans.sql"),
    ),
    (
        8,
        "0008_type_walk",
        include_str!("../migrations/0008_type_walk.sql"),
    ),
    (
        AUDIT_FILE_VERSION,
        "0009_audit_file",
        include_str!("../migrations/0009_audit_file.sql"),
    ),
    (
        10,
        "0010_token_counts",
        include_str!("../migrations/0010_token_counts.sql"),
    ),
    (
        11,
        "0011_type_counts",
        include_str!("../migrations/0011_type_counts.sql"),
    ),
];

/// The migration that drops the audit tables of the clinical file, once their rows are in the audit file.
const AUDIT_FILE_VERSION: i64 = 9;

/// The migrations of the audit file ([`audit_path`]), recorded in its own `schema_migrations`: the tables of
/// migration 0003, which 0009 then drops from the clinical file.
///
/// Why a file of its own: every read of health information appends a row, and each commit to a SQLite file
/// makes every other connection to that file drop its page cache before its next read. The store's writer has
/// this file as `main` and the clinical file attached, so a write's audit row commits first (SQLite commits
/// the files of a transaction in order): a crash in between can leave a record of a write that did not
/// happen, never a write without its record.
///
/// Later migrations of the audit file take their file name from the one numbering shared with the PostgreSQL
/// tree (which keeps these tables in its only database).
pub const AUDIT_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_audit_log",
        include_str!("../migrations/0003_audit.sql"),
    ),
    (
        2,
        "0012_audit_patient",
        include_str!("../migrations/0012_audit_patient.sql"),
    ),
];

/// The file holding the audit log of the database at `path`: `<path>-audit` (like SQLite's own `-wal`), so
/// the two files are copied, moved and removed together.
pub fn audit_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-audit");
    PathBuf::from(name)
}

/// Bring the clinical file on `conn` up to date; before the audit tables leave it, copy their rows into the
/// audit file.
pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    ensure_table(conn)?;
    if !applied(conn, AUDIT_FILE_VERSION)? && has_table(conn, "audit_event")? {
        let path = conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| StoreError::Backend("the database has no file".into()))?;
        move_audit_log(&path)?;
    }
    apply_list(conn, MIGRATIONS)
}

/// Bring the audit file on `conn` (its `main`) up to date.
pub(crate) fn apply_audit(conn: &mut Connection) -> Result<()> {
    ensure_table(conn)?;
    apply_list(conn, AUDIT_MIGRATIONS)
}

fn applied(conn: &Connection, version: i64) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
        [version],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
    .map_err(backend)
}

/// Copy the audit rows and links of the clinical file at `path` into its audit file, in one transaction of
/// the audit file alone (committed before migration 0009 drops the originals); rows already there are kept,
/// so repeating the copy after a crash changes nothing.
fn move_audit_log(path: &Path) -> Result<()> {
    let mut audit = open_audit(path)?;
    let clinical = path
        .to_str()
        .ok_or_else(|| StoreError::Backend(format!("{} is not UTF-8", path.display())))?;
    audit
        .execute("ATTACH DATABASE ?1 AS clinical", [clinical])
        .map_err(backend)?;
    let tx = audit
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let rows = tx
        .execute(
            "INSERT OR IGNORE INTO main.audit_event SELECT * FROM clinical.audit_event",
            [],
        )
        .map_err(backend)?;
    tx.execute(
        "INSERT OR IGNORE INTO main.audit_chain SELECT * FROM clinical.audit_chain",
        [],
    )
    .map_err(backend)?;
    // the audit file is already migrated: file the sealed rows by patient, as its migration 0012 did its own
    tx.execute(
        "INSERT OR IGNORE INTO main.audit_patient (patient, seq) \
         SELECT e.patient, e.seq FROM clinical.audit_event e JOIN clinical.audit_chain c ON c.seq = e.seq \
         WHERE e.patient IS NOT NULL ORDER BY e.patient, e.seq",
        [],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    tracing::info!(rows, "moved the audit log to its own file");
    Ok(())
}

/// Open (creating if missing) the audit file of the clinical file at `path` and bring it up to date.
pub(crate) fn open_audit(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(audit_path(path)).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(backend)?;
    apply_audit(&mut conn)?;
    Ok(conn)
}

fn ensure_table(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(backend)
}

fn apply_list(conn: &mut Connection, migrations: &[(i64, &str, &str)]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    for (version, name, sql) in migrations {
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if done {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Backend(format!("migration {name}: {e}")))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, now],
        )
        .map_err(backend)?;
        tracing::info!(migration = name, "applied migration");
    }
    tx.commit().map_err(backend)
}

/// Create or upgrade the database at `path` and its audit file without opening a store.
pub fn migrate(path: &Path) -> Result<()> {
    let mut conn = Connection::open(path).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    apply(&mut conn)?;
    open_audit(path).map(drop)
}
