//! The applied PostgreSQL schema has the same tables, columns (in order) and indexes as the SQLite schema, so
//! the two migration trees cannot drift apart; and migrating is idempotent and safe to race.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use postgres::{Client, NoTls};

const SQLITE_SCHEMA: &str =
    include_str!("../../continuum-store-sqlite/migrations/0001_resources.sql");

/// Every SQLite migration, in order: the applied PostgreSQL schema is compared with all of them.
const SQLITE_MIGRATIONS: &[&str] = &[
    SQLITE_SCHEMA,
    include_str!("../../continuum-store-sqlite/migrations/0002_accounts.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0003_audit.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0004_oauth.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0005_settings.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0006_covering_probes.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0007_date_spans.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0008_type_walk.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0009_audit_file.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0010_token_counts.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0011_type_counts.sql"),
    // SQLite keeps the audit log in a file of its own (migration 0003 again); PostgreSQL in the same database
    include_str!("../../continuum-store-sqlite/migrations/0003_audit.sql"),
    include_str!("../../continuum-store-sqlite/migrations/0012_audit_patient.sql"),
];

fn sqlite_schema() -> Schema {
    parse_sqlite(&SQLITE_MIGRATIONS.join("\n;\n"))
}

/// The versions of every migration: what migrating an empty database applies.
fn all_versions() -> Vec<i64> {
    continuum_store_postgres::MIGRATIONS
        .iter()
        .map(|m| m.0)
        .collect()
}

#[derive(Debug, Default, PartialEq)]
struct Schema {
    /// table → column names in order
    tables: BTreeMap<String, Vec<String>>,
    /// index → (unique, table, columns)
    indexes: BTreeMap<String, (bool, String, Vec<String>)>,
    /// trigger → table (compared one way: PostgreSQL also has TRUNCATE triggers, which SQLite has no use for)
    triggers: BTreeMap<String, String>,
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

/// `(a, b, c)` → `[a, b, c]`, taking the text between the first `(` and its matching `)`.
fn paren_list(s: &str) -> Vec<String> {
    let start = s.find('(').expect("(") + 1;
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut cur = String::new();
    for ch in s[start..].chars() {
        match ch {
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur.trim().to_string());
    parts
}

/// The CREATE TABLE / CREATE INDEX statements of a migration file, by simple string handling.
fn parse_sqlite(sql: &str) -> Schema {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut schema = Schema::default();
    // a trigger's body holds `;`s: skip its pieces up to the one ending in `END`
    let mut in_trigger = false;
    for stmt in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        if in_trigger {
            in_trigger = words.last() != Some(&"END");
            continue;
        }
        match words.as_slice() {
            ["CREATE", "TRIGGER", name, ..] => {
                let on = words.iter().position(|w| *w == "ON").expect("ON");
                schema
                    .triggers
                    .insert(unquote(name), unquote(words[on + 1]));
                in_trigger = words.last() != Some(&"END");
            }
            ["CREATE", "TABLE", name, ..] => {
                let cols = paren_list(stmt)
                    .iter()
                    .filter_map(|def| def.split_whitespace().next().map(unquote))
                    .filter(|c| {
                        !["PRIMARY", "UNIQUE", "CONSTRAINT", "FOREIGN", "CHECK"]
                            .contains(&c.as_str())
                    })
                    .collect();
                schema.tables.insert(unquote(name), cols);
            }
            ["ALTER", "TABLE", table, "ADD", "COLUMN", column, ..] => {
                schema
                    .tables
                    .get_mut(&unquote(table))
                    .expect("ALTER TABLE of a known table")
                    .push(unquote(column));
            }
            ["DROP", "TABLE", name] => {
                let name = unquote(name);
                schema.tables.remove(&name);
                schema.indexes.retain(|_, (_, table, _)| *table != name);
                schema.triggers.retain(|_, table| *table != name);
            }
            // data, not schema (a new table filled from existing rows)
            ["INSERT", ..] => {}
            ["DROP", "INDEX", name] => {
                schema.indexes.remove(&unquote(name));
            }
            ["CREATE", rest @ ..] => {
                let (unique, rest) = match rest {
                    ["UNIQUE", r @ ..] => (true, r),
                    r => (false, r),
                };
                let ["INDEX", name, "ON", table, ..] = rest else {
                    panic!("unexpected statement in the SQLite schema: {stmt}");
                };
                let table = unquote(table.split('(').next().unwrap());
                let cols = paren_list(stmt).iter().map(|c| unquote(c)).collect();
                schema.indexes.insert(unquote(name), (unique, table, cols));
            }
            _ => panic!("unexpected statement in the SQLite schema: {stmt}"),
        }
    }
    schema
}

fn applied(client: &mut Client) -> Schema {
    let mut schema = Schema::default();
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position",
            &[],
        )
        .unwrap();
    for r in rows {
        schema.tables.entry(r.get(0)).or_default().push(r.get(1));
    }
    let rows = client
        .query(
            "SELECT indexname::text, tablename::text, indexdef FROM pg_indexes \
             WHERE schemaname = 'public' AND tablename <> 'schema_migrations'",
            &[],
        )
        .unwrap();
    for r in rows {
        let name: String = r.get(0);
        let def: String = r.get(2);
        // Primary keys are part of the column definitions in SQLite (INTEGER PRIMARY KEY), not indexes.
        if name.ends_with("_pkey") {
            continue;
        }
        let cols = paren_list(&def).iter().map(|c| unquote(c)).collect();
        schema
            .indexes
            .insert(name, (def.starts_with("CREATE UNIQUE"), r.get(1), cols));
    }
    let rows = client
        .query(
            "SELECT t.tgname::text, c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT t.tgisinternal",
            &[],
        )
        .unwrap();
    for r in rows {
        schema.triggers.insert(r.get(0), r.get(1));
    }
    schema
}

#[test]
fn sqlite_schema_parses() {
    let s = parse_sqlite(SQLITE_SCHEMA);
    assert_eq!(
        s.tables["resource"],
        [
            "pk",
            "type",
            "id",
            "version",
            "last_updated",
            "deleted",
            "current_vpk"
        ]
    );
    assert_eq!(
        s.indexes["resource_type_id"],
        (
            true,
            "resource".to_string(),
            vec!["type".to_string(), "id".to_string()]
        )
    );
    assert_eq!(s.tables.len(), 9);
}

#[test]
fn sqlite_accounts_schema_parses() {
    let s = parse_sqlite(SQLITE_MIGRATIONS[1]);
    assert_eq!(
        s.tables["account"],
        ["id", "username", "cert_id", "locked_until", "body"]
    );
    assert_eq!(
        s.tables["auth_token"],
        [
            "hash",
            "kind",
            "account_id",
            "created",
            "last_used",
            "expires",
            "data"
        ]
    );
    assert_eq!(
        s.tables["outbox"],
        ["seq", "created", "recipient", "subject", "body", "sent"]
    );
    assert!(s.indexes["account_username"].0);
    assert!(s.indexes["account_cert"].0);
    assert_eq!(s.tables.len(), 5);
    // SQLite has two more: 0009 moves the audit log out of the clinical file, and the audit file's own
    assert_eq!(
        SQLITE_MIGRATIONS.len(),
        continuum_store_postgres::MIGRATIONS.len() + 2,
        "every migration is compared"
    );
}

#[test]
fn sqlite_audit_schema_parses() {
    let s = parse_sqlite(SQLITE_MIGRATIONS[2]);
    assert_eq!(
        s.tables["audit_event"],
        ["seq", "recorded", "agent", "patient", "action", "subtype", "outcome", "body"]
    );
    assert_eq!(s.tables["audit_chain"], ["pos", "seq", "prev_hash", "hash"]);
    assert!(s.indexes["audit_chain_seq"].0);
    assert_eq!(s.tables.len(), 2);
    assert_eq!(s.indexes.len(), 4);
    // UPDATE and DELETE refused on both tables
    assert_eq!(s.triggers.len(), 4);
    assert_eq!(s.triggers["audit_chain_no_update"], "audit_chain");
}

#[test]
fn postgres_schema_matches_sqlite_schema() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    assert_eq!(
        continuum_store_postgres::migrate(&url).unwrap(),
        all_versions()
    );
    let mut client = Client::connect(&url, NoTls).unwrap();
    let pg = applied(&mut client);
    let sqlite = sqlite_schema();
    assert_eq!(pg.tables, sqlite.tables);
    assert_eq!(pg.indexes, sqlite.indexes);
    for (name, table) in &sqlite.triggers {
        assert_eq!(pg.triggers.get(name), Some(table), "trigger {name}");
    }
}

#[test]
fn migrating_is_idempotent_and_safe_to_race() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    let applied: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| continuum_store_postgres::migrate(&url).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        applied.iter().filter(|a| **a == all_versions()).count(),
        1,
        "exactly one run applies: {applied:?}"
    );
    assert!(continuum_store_postgres::migrate(&url).unwrap().is_empty());
    let mut client = Client::connect(&url, NoTls).unwrap();
    let rows = client
        .query("SELECT version, name FROM schema_migrations", &[])
        .unwrap();
    assert_eq!(rows.len(), continuum_store_postgres::MIGRATIONS.len());
    assert_eq!(rows[0].get::<_, String>(1), "0001_resources");
}
