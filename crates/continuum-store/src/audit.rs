//! The audit log port: one row per access to health information (and per login, logout, refusal), each row
//! holding a FHIR `AuditEvent` (IHE BALP shape) plus the columns reports filter on.
//!
//! Append-only: the schema refuses UPDATE and DELETE on audit rows (triggers on both backends). Tamper-evident:
//! a sealer links rows into a SHA-256 hash chain in a separate, also append-only, table; `verify` walks the chain
//! and names every altered, removed or unchained row. The chain is built by a sealer rather than at insert time
//! so that concurrent transactions on PostgreSQL never queue on one chain head: each access inserts one row, the
//! sealer (one at a time, under a lock) chains what has committed since.

use sha2::{Digest, Sha256};

use crate::Result;

/// One audit record to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When the access happened (µs since the Unix epoch).
    pub recorded: i64,
    /// Account id of the user, `system` for the server itself, or `anonymous` for a failed login of no known
    /// account.
    pub agent: String,
    /// Patient id the access concerned, when one.
    pub patient: Option<String>,
    /// AuditEvent.action: C, R, U, D or E.
    pub action: String,
    /// What happened: `read`, `vread`, `search`, `history`, `create`, `update`, `delete`, `login`, `logout`,
    /// `export`, `break-glass`, ...
    pub subtype: String,
    /// AuditEvent.outcome: `0` success, `4` minor failure (refused), `8` serious failure, `12` major failure.
    pub outcome: String,
    /// The AuditEvent resource as JSON.
    pub body: Vec<u8>,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Assigned by the store, increasing.
    pub seq: i64,
    pub record: AuditRecord,
}

/// Filters for audit reports; all optional, combined with AND. Rows come newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub agent: Option<String>,
    pub patient: Option<String>,
    /// `recorded >= from`
    pub from: Option<i64>,
    /// `recorded < to`
    pub to: Option<i64>,
    /// Only rows with `seq` below this (paging backwards).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// One link of the hash chain, joined with the row it seals (`None` when that row has gone).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainLink {
    /// Position in the chain: 1, 2, 3... without gaps.
    pub pos: i64,
    pub seq: i64,
    /// Hex SHA-256.
    pub prev_hash: String,
    pub hash: String,
    pub row: Option<AuditRow>,
}

/// `prev_hash` of the first link.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of a link: SHA-256 over the previous hash and every field of the row, each length-prefixed so that no
/// two different rows hash the same bytes.
pub fn link_hash(prev_hash: &str, row: &AuditRow) -> String {
    let mut h = Sha256::new();
    let r = &row.record;
    let fields: [&[u8]; 9] = [
        prev_hash.as_bytes(),
        &row.seq.to_be_bytes(),
        &r.recorded.to_be_bytes(),
        r.agent.as_bytes(),
        r.patient.as_deref().unwrap_or("").as_bytes(),
        r.action.as_bytes(),
        r.subtype.as_bytes(),
        r.outcome.as_bytes(),
        &r.body,
    ];
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f);
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The audit port.
pub trait AuditStore: Send + Sync {
    /// Append records in one transaction (reads and searches: the response is sent only after this returns).
    /// Writes append theirs inside their own transaction with [`crate::WriteTx::append_audit`].
    fn append_audit(&self, records: &[AuditRecord]) -> Result<()>;
    fn audit_search(&self, query: &AuditQuery) -> Result<Vec<AuditRow>>;
    /// Chain up to `max` unsealed rows, in `seq` order, under a lock so that only one sealer runs at a time
    /// across servers; returns how many were sealed.
    fn seal_audit(&self, max: usize) -> Result<usize>;
    /// Links with `pos > after_pos`, in order, at most `limit`.
    fn audit_chain(&self, after_pos: i64, limit: usize) -> Result<Vec<ChainLink>>;
    /// Rows with no link (not sealed yet, or whose link was removed), oldest first, at most `limit`.
    fn audit_unsealed(&self, limit: usize) -> Result<Vec<AuditRow>>;
}
