//! [`ClientStore`] on this backend. Each method is one or two single statements on a pooled connection (each
//! atomic on its own). Get-or-create of a server key inserts with `ON CONFLICT DO NOTHING` (which waits for a
//! racing insert of the same name to commit) and then reads the stored row, so every racer gets the winner's.

use continuum_store::{ClientRow, ClientStore, Result, ServerKeyRow, StoreError};
use postgres::Row;

use crate::conn::db_error;
use crate::PostgresStore;

const CLIENT_COLUMNS: &str = "client_id, created, updated, body";

fn client(row: &Row) -> Result<ClientRow> {
    Ok(ClientRow {
        client_id: row.try_get(0).map_err(db_error)?,
        created: row.try_get(1).map_err(db_error)?,
        updated: row.try_get(2).map_err(db_error)?,
        body: row.try_get(3).map_err(db_error)?,
    })
}

fn server_key(row: &Row) -> Result<ServerKeyRow> {
    Ok(ServerKeyRow {
        name: row.try_get(0).map_err(db_error)?,
        created: row.try_get(1).map_err(db_error)?,
        body: row.try_get(2).map_err(db_error)?,
    })
}

impl ClientStore for PostgresStore {
    fn create_client(&self, c: &ClientRow) -> Result<()> {
        let mut conn = self.conn()?;
        let stmt = conn
            .prepared(
                "INSERT INTO oauth_client (client_id, created, updated, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .map_err(db_error)?;
        let inserted = conn
            .client
            .execute(&stmt, &[&c.client_id, &c.created, &c.updated, &c.body])
            .map_err(db_error)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(
                "Client".into(),
                c.client_id.clone(),
            ));
        }
        Ok(())
    }

    fn update_client(&self, c: &ClientRow) -> Result<()> {
        let mut conn = self.conn()?;
        let stmt = conn
            .prepared("UPDATE oauth_client SET updated = $2, body = $3 WHERE client_id = $1")
            .map_err(db_error)?;
        let updated = conn
            .client
            .execute(&stmt, &[&c.client_id, &c.updated, &c.body])
            .map_err(db_error)?;
        if updated == 0 {
            return Err(StoreError::NotFound("Client".into(), c.client_id.clone()));
        }
        Ok(())
    }

    fn client(&self, client_id: &str) -> Result<Option<ClientRow>> {
        let mut conn = self.conn()?;
        let stmt = conn
            .prepared(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id = $1"
            ))
            .map_err(db_error)?;
        conn.client
            .query_opt(&stmt, &[&client_id])
            .map_err(db_error)?
            .as_ref()
            .map(client)
            .transpose()
    }

    fn list_clients(&self, after: Option<&str>, limit: usize) -> Result<Vec<ClientRow>> {
        let mut conn = self.conn()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = conn
            .prepared(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE client_id > $1 ORDER BY client_id LIMIT $2"
            ))
            .map_err(db_error)?;
        conn.client
            .query(&stmt, &[&after.unwrap_or(""), &limit])
            .map_err(db_error)?
            .iter()
            .map(client)
            .collect()
    }

    fn server_key(&self, name: &str) -> Result<Option<ServerKeyRow>> {
        let mut conn = self.conn()?;
        let stmt = conn
            .prepared("SELECT name, created, body FROM server_key WHERE name = $1")
            .map_err(db_error)?;
        conn.client
            .query_opt(&stmt, &[&name])
            .map_err(db_error)?
            .as_ref()
            .map(server_key)
            .transpose()
    }

    fn server_key_or_insert(&self, candidate: &ServerKeyRow) -> Result<ServerKeyRow> {
        let mut conn = self.conn()?;
        let insert = conn
            .prepared(
                "INSERT INTO server_key (name, created, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .map_err(db_error)?;
        conn.client
            .execute(
                &insert,
                &[&candidate.name, &candidate.created, &candidate.body],
            )
            .map_err(db_error)?;
        let select = conn
            .prepared("SELECT name, created, body FROM server_key WHERE name = $1")
            .map_err(db_error)?;
        let row = conn
            .client
            .query_one(&select, &[&candidate.name])
            .map_err(db_error)?;
        server_key(&row)
    }
}
