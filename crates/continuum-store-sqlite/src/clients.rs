//! [`ClientStore`] on this backend: writes through the single writer (so get-or-create of a server key cannot
//! race), reads from the reader pool.

use continuum_store::{ClientRow, ClientStore, Result, ServerKeyRow, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::{backend, SqliteStore};

const CLIENT_COLUMNS: &str = "client_id, created, updated, body";

fn client(row: &Row<'_>) -> rusqlite::Result<ClientRow> {
    Ok(ClientRow {
        client_id: row.get(0)?,
        created: row.get(1)?,
        updated: row.get(2)?,
        body: row.get(3)?,
    })
}

fn server_key(row: &Row<'_>) -> rusqlite::Result<ServerKeyRow> {
    Ok(ServerKeyRow {
        name: row.get(0)?,
        created: row.get(1)?,
        body: row.get(2)?,
    })
}

impl SqliteStore {
    /// Run `work` on the writer connection (its own savepoint of the shared batch); returns once committed.
    fn on_client_writer<T>(&self, mut work: impl FnMut(&Connection) -> Result<T>) -> Result<T> {
        let mut out = None;
        self.writer.run(&mut |conn| {
            out = Some(work(conn)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Backend("the writer did not run the work".into()))
    }
}

impl ClientStore for SqliteStore {
    fn create_client(&self, c: &ClientRow) -> Result<()> {
        self.on_client_writer(|conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO oauth_client (client_id, created, updated, body) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                )
                .map_err(backend)?
                .execute(params![c.client_id, c.created, c.updated, c.body])
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(
                    "Client".into(),
                    c.client_id.clone(),
                ));
            }
            Ok(())
        })
    }

    fn update_client(&self, c: &ClientRow) -> Result<()> {
        self.on_client_writer(|conn| {
            let updated = conn
                .prepare_cached(
                    "UPDATE oauth_client SET updated = ?2, body = ?3 WHERE client_id = ?1",
                )
                .map_err(backend)?
                .execute(params![c.client_id, c.updated, c.body])
                .map_err(backend)?;
            if updated == 0 {
                return Err(StoreError::NotFound("Client".into(), c.client_id.clone()));
            }
            Ok(())
        })
    }

    fn client(&self, client_id: &str) -> Result<Option<ClientRow>> {
        let conn = self.reader()?;
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id = ?1");
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        stmt.query_row([client_id], client)
            .optional()
            .map_err(backend)
    }

    fn list_clients(&self, after: Option<&str>, limit: usize) -> Result<Vec<ClientRow>> {
        let conn = self.reader()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // '' sorts before every id, so "after nothing" is "after ''"
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id > ?1 ORDER BY client_id LIMIT ?2"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params![after.unwrap_or(""), limit], client)
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<_>>().map_err(backend)
    }

    fn server_key(&self, name: &str) -> Result<Option<ServerKeyRow>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT name, created, body FROM server_key WHERE name = ?1")
            .map_err(backend)?;
        stmt.query_row([name], server_key)
            .optional()
            .map_err(backend)
    }

    fn server_key_or_insert(&self, candidate: &ServerKeyRow) -> Result<ServerKeyRow> {
        self.on_client_writer(|conn| {
            conn.prepare_cached(
                "INSERT INTO server_key (name, created, body) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![candidate.name, candidate.created, candidate.body])
            .map_err(backend)?;
            conn.prepare_cached("SELECT name, created, body FROM server_key WHERE name = ?1")
                .map_err(backend)?
                .query_row([&candidate.name], server_key)
                .map_err(backend)
        })
    }
}
