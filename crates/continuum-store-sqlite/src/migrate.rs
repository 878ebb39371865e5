//! Plain `.sql` migrations, embedded and applied in order; applied versions are recorded in
//! `schema_migrations`.

use std::path::Path;

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
];

pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(backend)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    for (version, name, sql) in MIGRATIONS {
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

/// Create or upgrade the database at `path` without opening a store.
pub fn migrate(path: &Path) -> Result<()> {
    let mut conn = Connection::open(path).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    apply(&mut conn)
}
