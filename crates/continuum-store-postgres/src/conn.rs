//! Pooled connections: a `postgres::Client` plus a per-connection cache of prepared statements, and the mapping
//! of database errors to [`StoreError`].
//!
//! Why a cache: a query sent as text is parsed and planned on every call and costs two round trips (prepare,
//! then execute); the hot statements of reads and writes are prepared once per connection instead.

use std::collections::HashMap;

use continuum_store::sql::numbered_placeholders;
use continuum_store::StoreError;
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, NoTls, Statement};
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;

/// A pooled connection.
pub(crate) struct Conn {
    pub client: Client,
    /// Keyed by SQL text; only the adapter's fixed statements are cached, so the map stays small.
    statements: HashMap<String, Statement>,
    /// Searches planned once (`sql::plan_once`), keyed by their compiled SQL (`?` placeholders) and then by
    /// parameter types, so a hit needs neither renumbering nor a new key; bounded by [`SEARCH_STATEMENTS`].
    searches: HashMap<String, Vec<(Vec<Type>, Statement)>>,
}

/// Search shapes kept prepared per connection. A shape is the SQL of one combination of parameters, modifiers
/// and `OR` lengths (a list of ids is one array), so an application's steady traffic uses a few dozen; past the
/// bound the map is emptied and fills again (the statements are closed on the server as they drop).
const SEARCH_STATEMENTS: usize = 256;

impl Conn {
    /// The prepared form of one of the adapter's fixed statements.
    pub fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// The prepared form of a compiled search statement (`?` placeholders) with these parameter types.
    pub fn prepared_search(
        &mut self,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, postgres::Error> {
        if let Some((_, s)) = self
            .searches
            .get(sql)
            .and_then(|shapes| shapes.iter().find(|(t, _)| t.as_slice() == types))
        {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare_typed(&numbered_placeholders(sql), types)?;
        if self.searches.len() >= SEARCH_STATEMENTS {
            self.searches.clear();
        }
        self.searches
            .entry(sql.to_string())
            .or_default()
            .push((types.to_vec(), s.clone()));
        Ok(s)
    }
}

/// r2d2 manager: `r2d2_postgres` connects and checks health; this wrapper adds the statement cache.
#[derive(Debug)]
pub(crate) struct Manager(pub PostgresConnectionManager<NoTls>);

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: HashMap::new(),
            searches: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// The unique index whose violation means two transactions created the same new resource at once.
const RESOURCE_TYPE_ID: &str = "resource_type_id";

/// Is this a failure that running the transaction again can cure?
pub(crate) fn is_contention(e: &postgres::Error) -> bool {
    let Some(db) = e.as_db_error() else {
        return false;
    };
    let code = db.code();
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || (*code == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(RESOURCE_TYPE_ID))
}

/// Map a database error. Contention becomes [`StoreError::Contention`] (the write loop retries it); anything
/// else becomes [`StoreError::Backend`] with the SQLSTATE and primary message only: the DETAIL part can quote
/// row values (ids, index values), which must not reach logs.
pub(crate) fn db_error(e: postgres::Error) -> StoreError {
    if is_contention(&e) {
        return StoreError::Contention;
    }
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("{} {}", db.code().code(), db.message())),
        None => StoreError::Backend(e.to_string()),
    }
}

pub(crate) fn pool_error(e: r2d2::Error) -> StoreError {
    StoreError::Backend(format!("connection pool: {e}"))
}
