//! Schema migrations: the `.sql` files of `migrations/`, embedded in the binary and applied in order.
//!
//! All pending migrations run in one transaction under an advisory lock, so two servers starting at once
//! against the same database neither race nor leave a half-applied schema. Applied versions are recorded in
//! `schema_migrations`.

use postgres::Client;

/// `(version, name, sql)`, in the order they must be applied.
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
        10,
        "0010_token_counts",
        include_str!("../migrations/0010_token_counts.sql"),
    ),
    (
        11,
        "0011_type_counts",
        include_str!("../migrations/0011_type_counts.sql"),
    ),
    (
        12,
        "0012_audit_patient",
        include_str!("../migrations/0012_audit_patient.sql"),
    ),
];

/// Key of the transaction-level advisory lock serialising migrations: an arbitrary constant (ASCII "CONTMIGR")
/// that shares the key space with the hashed keys of `WriteTx::guard`, colliding only by chance.
const MIGRATION_LOCK: i64 = 0x434F_4E54_4D49_4752;

/// Apply every migration not yet recorded; returns the versions applied now.
pub(crate) fn migrate(
    client: &mut Client,
    applied_at_micros: i64,
) -> Result<Vec<i64>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT, applied_at BIGINT)",
    )?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if let Some(newest) = applied.iter().max() {
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if *newest > known {
            tracing::warn!(
                database = newest,
                binary = known,
                "the database schema is newer than this binary"
            );
        }
    }
    let mut now_applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &applied_at_micros],
        )?;
        now_applied.push(*version);
    }
    tx.commit()?;
    if !now_applied.is_empty() {
        tracing::info!(versions = ?now_applied, "applied PostgreSQL migrations");
    }
    Ok(now_applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        // Numbers follow SQLite's, whose 0009 (the audit log's own file) has no PostgreSQL counterpart.
        let mut last = 0;
        for (version, name, sql) in MIGRATIONS {
            assert!(*version > last, "{name} after {last}");
            assert!(
                *version <= last + 2,
                "{name}: a gap of more than the one SQLite migration"
            );
            last = *version;
            assert!(name.starts_with(&format!("{version:04}_")));
            assert!(!sql.trim().is_empty());
        }
    }
}
