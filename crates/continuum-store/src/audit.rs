//! The audit log port: one row per access to health information (and per login, logout, refusal), each row
//! holding a FHIR `AuditEvent` (IHE BALP shape) plus the columns reports filter on.
//!
//! Append-only: the schema refuses UPDATE and DELETE on audit rows (triggers on both backends). Tamper-evident:
//! a sealer links rows into a SHA-256 hash chain in a separate, also append-only, table; `verify` walks the chain
//! and names every altered, removed or unchained row. The chain is built by a sealer rather than at insert time
//! so that concurrent transactions on PostgreSQL never queue on one chain head: each access inserts one row, the
//! sealer (one at a time, under a lock) chains what has committed since.
//!
//! The sealer also files each row it chains under its patient (`audit_patient`), sorted by patient within a
//! batch, for "who viewed my record". An index on the rows themselves would cost every read's audit commit one
//! random index leaf per patient it showed; a patient's rows not sealed yet are found in the short unsealed end
//! of the log. `verify` reports a chained row missing from its patient's list.

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
    /// The row is filed under its patient (`audit_patient`), where "who viewed my record" finds it; true for a
    /// row of no patient and for a missing row.
    pub filed: bool,
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

/// The entries the sealer files under patients for the rows it chains: `(patient, seq)` in key order, so that
/// a patient's rows of one batch are written to the same index leaf together.
pub fn by_patient(rows: &[AuditRow]) -> Vec<(&str, i64)> {
    let mut entries: Vec<(&str, i64)> = rows
        .iter()
        .filter_map(|r| r.record.patient.as_deref().map(|p| (p, r.seq)))
        .collect();
    entries.sort_unstable();
    entries
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

/// One thing wrong with the audit log, found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The link at `pos` seals row `seq`, which is no longer there (removed).
    MissingRow { pos: i64, seq: i64 },
    /// Row `seq` no longer hashes to the hash its link (at `pos`) recorded: the row, or the link, was altered
    /// after sealing.
    Altered { pos: i64, seq: i64 },
    /// The link at `pos` (sealing row `seq`) does not follow on from the link before it: its `prev_hash` is not
    /// that link's hash (a link was altered or replaced). Reported only where positions are contiguous; a gap is
    /// reported as [`Problem::Gap`] instead.
    BrokenLink { pos: i64, seq: i64 },
    /// Positions `after_pos + 1 .. next_pos` are missing before the link at `next_pos` (sealing row `seq`):
    /// links were removed (at the start of the chain when `after_pos` is 0).
    Gap {
        after_pos: i64,
        next_pos: i64,
        seq: i64,
    },
    /// Row `seq` has no link although a newer row (`newest_sealed`) is sealed: its link was removed, or it was
    /// never sealed. On PostgreSQL a row whose transaction committed after the last seal can show this until
    /// the next seal (rows can commit out of `seq` order), so verify right after sealing.
    Unchained { seq: i64, newest_sealed: i64 },
    /// Row `seq` (chain link `pos`) concerns a patient but is not filed under that patient: the entry the sealer
    /// made was removed, and the patient's "who viewed my record" no longer shows this access.
    Unfiled { pos: i64, seq: i64 },
}

impl Problem {
    /// The row the problem concerns.
    pub fn seq(&self) -> i64 {
        match self {
            Problem::MissingRow { seq, .. }
            | Problem::Altered { seq, .. }
            | Problem::BrokenLink { seq, .. }
            | Problem::Gap { seq, .. }
            | Problem::Unchained { seq, .. }
            | Problem::Unfiled { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingRow { pos, seq } => {
                write!(f, "audit row {seq} (chain link {pos}) is missing: removed")
            }
            Problem::Altered { pos, seq } => write!(
                f,
                "audit row {seq} (chain link {pos}) does not match its hash: altered after sealing"
            ),
            Problem::BrokenLink { pos, seq } => write!(
                f,
                "audit row {seq}: chain link {pos} does not follow on from link {}: a link was altered",
                pos - 1
            ),
            Problem::Gap {
                after_pos,
                next_pos,
                seq,
            } => write!(
                f,
                "audit row {seq}: chain links {}..{} before link {next_pos} are missing: removed",
                after_pos + 1,
                next_pos - 1
            ),
            Problem::Unchained { seq, newest_sealed } => write!(
                f,
                "audit row {seq} is not chained although newer row {newest_sealed} is: its link was removed, \
                 or it was never sealed"
            ),
            Problem::Unfiled { pos, seq } => write!(
                f,
                "audit row {seq} (chain link {pos}) is missing from its patient's list of accesses: removed"
            ),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Links walked.
    pub links: u64,
    /// Empty when the log is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walk the whole chain, `batch` links at a time (0: 1,000), and name every altered, removed, unchained or
/// unfiled row.
/// Reads only: never seals.
///
/// Each link is checked on its own (the row's hash is recomputed from the link's own `prev_hash`), and its
/// linkage with the link before it separately, so that one altered row is reported once, as that row.
pub fn verify(store: &dyn AuditStore, batch: usize) -> Result<VerifyReport> {
    let batch = if batch == 0 { 1_000 } else { batch };
    let mut report = VerifyReport::default();
    let mut prev_pos = 0i64;
    let mut prev_hash = GENESIS.to_string();
    let mut newest_sealed: Option<i64> = None;
    loop {
        let links = store.audit_chain(prev_pos, batch)?;
        let done = links.len() < batch;
        for link in links {
            report.links += 1;
            if link.pos != prev_pos + 1 {
                report.problems.push(Problem::Gap {
                    after_pos: prev_pos,
                    next_pos: link.pos,
                    seq: link.seq,
                });
            } else if link.prev_hash != prev_hash {
                report.problems.push(Problem::BrokenLink {
                    pos: link.pos,
                    seq: link.seq,
                });
            }
            match &link.row {
                None => report.problems.push(Problem::MissingRow {
                    pos: link.pos,
                    seq: link.seq,
                }),
                Some(row) => {
                    if link_hash(&link.prev_hash, row) != link.hash {
                        report.problems.push(Problem::Altered {
                            pos: link.pos,
                            seq: link.seq,
                        });
                    }
                    if !link.filed {
                        report.problems.push(Problem::Unfiled {
                            pos: link.pos,
                            seq: link.seq,
                        });
                    }
                }
            }
            newest_sealed = newest_sealed.max(Some(link.seq));
            prev_pos = link.pos;
            prev_hash = link.hash;
        }
        if done {
            break;
        }
    }
    let Some(newest_sealed) = newest_sealed else {
        return Ok(report);
    };
    // Unsealed rows older than the newest sealed one. The port pages unsealed rows by limit only, so ask for
    // more until the answer reaches past `newest_sealed` (there are normally none, or a handful).
    let mut limit = batch;
    loop {
        let rows = store.audit_unsealed(limit)?;
        let complete = rows.len() < limit || rows.last().is_some_and(|r| r.seq > newest_sealed);
        if complete {
            report
                .problems
                .extend(rows.iter().take_while(|r| r.seq < newest_sealed).map(|r| {
                    Problem::Unchained {
                        seq: r.seq,
                        newest_sealed,
                    }
                }));
            break;
        }
        limit = limit.saturating_mul(2);
    }
    Ok(report)
}
