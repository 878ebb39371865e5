//! The storage port of Continuum.
//!
//! Owns: the [`ResourceStore`] trait every backend implements (current versions, full history, search,
//! atomic write transactions), the search AST ([`search`]), the SQL compiler both SQL backends share
//! ([`sql`]), [`StoreError`], and the conformance suite ([`conformance`]) that every backend must pass.
//! Does not own: HTTP, FHIR REST semantics (conditional operations, bundles: see `continuum-core`), access rules.
//!
//! The port is synchronous on purpose: both backends are driven from blocking threads (SQLite is a
//! synchronous library), and a synchronous write closure lets the core run a whole transaction Bundle —
//! conditional look-ups, id assignment, reference rewriting — inside one database transaction on either
//! backend without async-closure lifetimes.

pub mod accounts;
pub mod accounts_conformance;
pub mod audit;
pub mod audit_conformance;
pub mod clients;
pub mod clients_conformance;
pub mod conformance;
pub mod search;
pub mod sql;

use serde_json::Value;
use time::OffsetDateTime;

pub use accounts::{AccountRow, AccountStore, Attempt, OutboxRow, TokenRow};
pub use audit::{AuditQuery, AuditRecord, AuditRow, AuditStore, ChainLink};
pub use clients::{ClientRow, ClientStore, ServerKeyRow};
pub use search::{
    Comparator, Cursor, Filter, Predicate, SearchPage, SearchQuery, SortBy, SortKey, SortKind,
    SortValue, StringMode, TokenSystem,
};

/// How a version came to be; shown as `request.method` in history bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Create,
    Update,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Create => "POST",
            Method::Update => "PUT",
            Method::Delete => "DELETE",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "POST" => Some(Method::Create),
            "PUT" => Some(Method::Update),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }
}

/// One version of a resource as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: OffsetDateTime,
    pub deleted: bool,
    pub method: Method,
    /// The resource as JSON bytes, `meta.versionId`/`meta.lastUpdated` included; empty for a deletion.
    /// Served as-is, without re-serialising.
    pub body: Vec<u8>,
}

/// What a write expects to find, checked inside the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Create: fail with [`StoreError::AlreadyExists`] if a live resource has this id.
    Absent,
    /// Update or create-on-update.
    Any,
    /// Update only if the current version is this one (`If-Match`); else [`StoreError::VersionConflict`].
    Version(i64),
}

/// The result of writing a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub version: i64,
    pub last_updated: OffsetDateTime,
    /// True when there was no live version before (answer 201 rather than 200).
    pub created: bool,
    /// The stored JSON bytes.
    pub body: Vec<u8>,
}

/// What one step of a reindex did: see [`WriteTx::reindex_after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReindexStep {
    /// The store key of the last resource reindexed: where the next step starts.
    pub last_key: i64,
    /// Resources reindexed in this step.
    pub resources: usize,
}

/// What [`ResourceStore::recount`] corrected: keys whose kept count differed from the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recount {
    /// `token_count` keys (pid, kind, hash) set right.
    pub token_keys: u64,
    /// `type_count` types set right.
    pub types: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

/// A query over the version history: of one resource, of one type, or of the whole system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    pub resource_type: Option<String>,
    pub id: Option<String>,
    /// Only versions last updated at or after this instant (`_since`).
    pub since: Option<OffsetDateTime>,
    /// Only the version current at this instant, per resource (`_at`).
    pub at: Option<OffsetDateTime>,
    pub count: usize,
    /// Keyset cursor: only versions older (in store order) than this position.
    pub before: Option<i64>,
    /// Also count every matching version (cheap for one resource, a full scan for a type or the system).
    pub total: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    /// Newest first.
    pub entries: Vec<StoredResource>,
    /// Cursor for the next (older) page, when there is one.
    pub next: Option<i64>,
    pub total: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}/{1} already exists")]
    AlreadyExists(String, String),
    #[error("version conflict: expected version {expected}, current is {current:?}")]
    VersionConflict { expected: i64, current: Option<i64> },
    #[error("{0}/{1} does not exist")]
    NotFound(String, String),
    #[error("the write conflicted with a concurrent transaction")]
    Contention,
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("invalid resource: {0}")]
    InvalidResource(String),
    /// The caller's closure gave up; the caller holds the reason.
    #[error("transaction aborted")]
    Aborted,
    /// Database failure. The message is internal detail: log it, never send it to a client.
    #[error("database error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Operations available inside one atomic write transaction.
pub trait WriteTx {
    /// The transaction's timestamp: every version it writes gets this `lastUpdated`.
    fn now(&self) -> OffsetDateTime;
    /// Current version of a resource (including a deletion marker), seeing this transaction's own writes.
    fn read(&mut self, resource_type: &str, id: &str) -> Result<Option<StoredResource>>;
    /// Search, seeing this transaction's own writes.
    fn search(&mut self, query: &SearchQuery) -> Result<SearchPage>;
    /// Serialise with every other transaction that takes the same key until this one ends. Used by
    /// conditional create/update so that two concurrent requests with the same criteria cannot both miss.
    fn guard(&mut self, key: &str) -> Result<()>;
    /// Write a new version. `resource` must carry `resourceType` and `id`; the store sets `meta.versionId` and
    /// `meta.lastUpdated` in it, stores it, and indexes it in the same transaction.
    fn put(&mut self, resource: &mut Value, expect: Expect) -> Result<Written>;
    /// Mark a resource deleted (a new version without body). `Ok(None)` when it does not exist or is already
    /// deleted (deleting is idempotent).
    fn delete(&mut self, resource_type: &str, id: &str, expect: Expect) -> Result<Option<i64>>;
    /// Append an audit record in this transaction: a write and its audit record commit or roll back together.
    fn append_audit(&mut self, record: &AuditRecord) -> Result<()>;
    /// Rebuild the search-index rows of up to `limit` live resources whose store key is greater than `after`,
    /// in key order, from their current bodies (`continuum reindex`). The resources are locked for the rest
    /// of the transaction, so a concurrent write cannot interleave old and new index rows. `None` when no
    /// live resource is left after `after`. Readers see either the old or the new rows of a resource, never
    /// neither.
    fn reindex_after(&mut self, after: i64, limit: usize) -> Result<Option<ReindexStep>>;
    /// Set (or with `None` remove) a store-wide setting, in this transaction.
    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()>;
}

/// The storage port.
pub trait ResourceStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Is the database reachable?
    fn ping(&self) -> Result<()>;
    fn pool_status(&self) -> PoolStatus;
    /// Current version (deleted ones included, with `deleted` set).
    fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredResource>>;
    fn vread(&self, resource_type: &str, id: &str, version: i64) -> Result<Option<StoredResource>>;
    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage>;
    fn search(&self, query: &SearchQuery) -> Result<SearchPage>;
    /// The SQL a search runs and the database's plan for it, for administrators checking that a query uses
    /// its indexes. Never shown to clients: the CLI is the only door.
    fn explain(&self, query: &SearchQuery) -> Result<String>;
    /// Run `work` in one atomic transaction; commit when it returns `Ok`, roll back otherwise. The store may
    /// run `work` again after [`StoreError::Contention`], so it must not have side effects outside the
    /// transaction other than recording its results.
    fn write(&self, work: &mut dyn FnMut(&mut dyn WriteTx) -> Result<()>) -> Result<()>;
    /// Refresh the query planner's statistics. Run after bulk loads (seed, import, reindex): without them
    /// SQLite plans every search from the resource-type index and scans a whole type.
    fn analyze(&self) -> Result<()>;
    /// Check the kept counts (`token_count`, `type_count`) against the index and the resources, and set
    /// right any that differ (`continuum reindex --recount`). Every write keeps them exact, so this finds
    /// nothing unless the database was changed by hand; writes wait while it runs.
    fn recount(&self) -> Result<Recount>;
    /// A store-wide setting (see [`WriteTx::set_setting`]).
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Live (not deleted) resources whose store key is greater than `after`: the work left for a reindex.
    fn count_live(&self, after: i64) -> Result<u64>;
    /// Accounts, tokens and login counters, in the same database.
    fn accounts(&self) -> &dyn AccountStore;
    /// The audit log, in the same database.
    fn audit(&self) -> &dyn AuditStore;
    /// OAuth clients and the server's signing keys, in the same database.
    fn clients(&self) -> &dyn ClientStore;
}

/// Source of time for the store (passed in so tests control it).
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Microseconds since the Unix epoch, the unit of every stored instant.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Format an instant as a FHIR `instant` (UTC, microseconds).
pub fn format_instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Set `meta.versionId` and `meta.lastUpdated` of a resource and serialise it: what every backend stores.
pub fn stamp(resource: &mut Value, version: i64, at: OffsetDateTime) -> Result<Vec<u8>> {
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| StoreError::InvalidResource("not a JSON object".into()))?;
    let meta = obj
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    let meta = meta
        .as_object_mut()
        .ok_or_else(|| StoreError::InvalidResource("meta is not an object".into()))?;
    meta.insert("versionId".into(), Value::String(version.to_string()));
    meta.insert("lastUpdated".into(), Value::String(format_instant(at)));
    serde_json::to_vec(resource).map_err(|e| StoreError::InvalidResource(e.to_string()))
}

/// `resourceType` and `id` of a resource about to be written.
pub fn type_and_id(resource: &Value) -> Result<(String, String)> {
    let ty = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::InvalidResource("missing resourceType".into()))?;
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::InvalidResource("missing id".into()))?;
    Ok((ty.to_string(), id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_in_micros() {
        let t = from_micros(1_700_000_000_123_456);
        assert_eq!(to_micros(t), 1_700_000_000_123_456);
        assert_eq!(format_instant(t), "2023-11-14T22:13:20.123456Z");
    }
}
