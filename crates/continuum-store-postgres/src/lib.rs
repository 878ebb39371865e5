//! PostgreSQL backend of Continuum's [`ResourceStore`].
//!
//! Owns: the connection pool (sync `postgres` client through `r2d2_postgres`), the PostgreSQL migrations in
//! `migrations/`, reads and searches (SQL from the shared compiler in `continuum_store::sql`), and write
//! transactions with retry on contention.
//! Does not own: search semantics (the shared compiler), index-value extraction (`continuum-fhir`), FHIR REST
//! rules (`continuum-core`), or mapping errors to responses (the edge).
//!
//! The client is synchronous: call the store from blocking threads (`spawn_blocking`), never from an async
//! task directly.

mod accounts;
mod audit;
mod buffer;
mod clients;
mod conn;
mod migrate;
mod queries;
mod tx;

use std::sync::Arc;
use std::time::Duration;

use continuum_store::{
    from_micros, to_micros, Clock, HistoryPage, HistoryQuery, PoolStatus, Recount, ResourceStore,
    Result, SearchPage, SearchQuery, StoreError, StoredResource, SystemClock, WriteTx,
};
use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

use crate::conn::{db_error, pool_error, Conn, Manager};
pub use crate::migrate::MIGRATIONS;

/// How often a write closure runs before the store gives up with [`StoreError::Contention`].
const MAX_ATTEMPTS: u32 = 10;

/// Failures of opening the store, before it can answer with [`StoreError`]s.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("migrating the PostgreSQL schema failed: {0}")]
    Migrate(String),
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection.
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The PostgreSQL resource store.
pub struct PostgresStore {
    /// Always `Some` until the store is dropped.
    pool: Option<r2d2::Pool<Manager>>,
    clock: Arc<dyn Clock>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // A `postgres::Client` blocks on its own runtime when dropped, which panics on a tokio worker thread
        // (where a server's last reference to the store usually goes). Hand the pool to a plain thread.
        if let Some(pool) = self.pool.take() {
            std::thread::spawn(move || drop(pool));
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.as_ref().map(r2d2::Pool::state))
            .finish_non_exhaustive()
    }
}

fn config(url: &str) -> Result<postgres::Config, OpenError> {
    // The parser's message never quotes the URL, which may carry a password.
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| OpenError::Url(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name("continuum");
    }
    Ok(config)
}

/// Apply pending migrations to the database at `url`; returns the versions applied now.
pub fn migrate(url: &str) -> Result<Vec<i64>, OpenError> {
    migrate_at(url, &SystemClock)
}

fn migrate_at(url: &str, clock: &dyn Clock) -> Result<Vec<i64>, OpenError> {
    let mut client = config(url)?
        .connect(NoTls)
        .map_err(|e| OpenError::Connect(db_error(e).to_string()))?;
    migrate::migrate(&mut client, to_micros(clock.now()))
        .map_err(|e| OpenError::Migrate(db_error(e).to_string()))
}

impl PostgresStore {
    /// Connect with default pool settings and migrate the schema.
    pub fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with(url, clock, PgOptions::default())
    }

    pub fn open_with(
        url: &str,
        clock: Arc<dyn Clock>,
        options: PgOptions,
    ) -> Result<Self, StoreError> {
        migrate_at(url, clock.as_ref())?;
        let manager = Manager(PostgresConnectionManager::new(config(url)?, NoTls));
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections.max(1))
            // Open connections on demand: many stores (one per test, one per server) share a cluster's
            // connection limit.
            .min_idle(Some(1))
            // A check-out test costs a round trip on every read; a broken connection is detected by
            // `has_broken` when it comes back, and its one failed query surfaces as a backend error.
            .test_on_check_out(false)
            .connection_timeout(options.connect_timeout)
            .build(manager)
            .map_err(|e| StoreError::Backend(OpenError::Connect(e.to_string()).to_string()))?;
        Ok(PostgresStore {
            pool: Some(pool),
            clock,
        })
    }

    fn pool(&self) -> Result<&r2d2::Pool<Manager>> {
        self.pool
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the store is closed".into()))
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        self.pool()?.get().map_err(pool_error)
    }

    /// One run of a write closure in its own transaction.
    fn attempt(
        &self,
        conn: &mut Conn,
        work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>,
    ) -> Result<()> {
        // Stored instants have microsecond precision; truncate so `now()` equals what reads return.
        let now = from_micros(to_micros(self.clock.now()));
        let mut tx = tx::PgTx::begin(conn, now)?;
        match work(&mut tx) {
            Ok(()) => tx.commit(),
            Err(e) => {
                // The closure's error is the one to report; a failed ROLLBACK leaves a connection that
                // `has_broken` will drop.
                if let Err(rb) = tx.rollback() {
                    tracing::warn!(error = %rb, "rollback failed");
                }
                Err(e)
            }
        }
    }
}

impl ResourceStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> Result<()> {
        self.conn()?
            .client
            .batch_execute("SELECT 1")
            .map_err(db_error)
    }

    fn pool_status(&self) -> PoolStatus {
        match &self.pool {
            Some(pool) => {
                let state = pool.state();
                PoolStatus {
                    connections: state.connections,
                    idle: state.idle_connections,
                    max: pool.max_size(),
                }
            }
            None => PoolStatus::default(),
        }
    }

    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>> {
        queries::read(&mut *self.conn()?, resource_type, id)
    }

    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>> {
        queries::vread(&mut *self.conn()?, resource_type, id, version)
    }

    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        queries::history(&mut *self.conn()?, query)
    }

    fn explain(&self, query: &SearchQuery) -> Result<String> {
        queries::explain(&mut *self.conn()?, query)
    }

    fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        queries::search(&mut *self.conn()?, query)
    }

    fn analyze(&self) -> Result<()> {
        // autovacuum gets there eventually; after a bulk load, plans should not wait for it
        let mut conn = self.conn()?;
        conn.client.batch_execute("ANALYZE").map_err(db_error)
    }

    fn recount(&self) -> Result<Recount> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction().map_err(db_error)?;
        // Writers change the counts in the statement that changes the index, holding the tables' row locks
        // until they commit. EXCLUSIVE waits for those and holds off new ones (reads go on), so the recount's
        // statements see an index and counts that agree except where something else changed them.
        tx.batch_execute("LOCK TABLE token_count, type_count IN EXCLUSIVE MODE")
            .map_err(db_error)?;
        let token_keys = tx
            .execute(continuum_store::sql::RECOUNT_TOKENS, &[])
            .map_err(db_error)?;
        let types = tx
            .execute(continuum_store::sql::RECOUNT_TYPES, &[])
            .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(Recount { token_keys, types })
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        let mut conn = self.conn()?;
        let stmt = conn
            .prepared("SELECT value FROM store_setting WHERE key = $1")
            .map_err(db_error)?;
        let row = conn.client.query_opt(&stmt, &[&key]).map_err(db_error)?;
        row.map(|r| r.try_get(0)).transpose().map_err(db_error)
    }

    fn count_live(&self, after: i64) -> Result<u64> {
        let mut conn = self.conn()?;
        let row = conn
            .client
            .query_one(
                "SELECT count(*) FROM resource WHERE pk > $1 AND deleted = 0",
                &[&after],
            )
            .map_err(db_error)?;
        let n: i64 = row.try_get(0).map_err(db_error)?;
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
        let mut conn = self.conn()?;
        let mut attempt = 1;
        loop {
            match self.attempt(&mut conn, work) {
                Err(StoreError::Contention) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(
                        attempt,
                        "write transaction met contention; running it again"
                    );
                    // Short, growing pauses: contention here is two requests on the same resource, which
                    // clears as soon as the other transaction commits.
                    std::thread::sleep(Duration::from_millis(u64::from(attempt * attempt)));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
