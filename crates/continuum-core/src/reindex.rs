//! Rebuilding the search index when what it is built from changes (`continuum reindex`).
//!
//! Index rows are extracted when a resource is written. A new release can change what they hold (a new
//! search parameter, composite or unit conversion, a fixed FHIRPath function): rows written before then stay
//! as they were until the resource is written again. The database records the fingerprint of the definitions
//! its rows were built with ([`continuum_fhir::index_fingerprint`]); when it differs from this build's, the
//! index is stale and this module rebuilds it.
//!
//! How: live resources in store-key order, a batch per transaction. Each batch rewrites its resources' rows
//! and records its last key in the same transaction, so an interrupted run resumes exactly where it stopped,
//! and readers are never blocked for longer than one batch (and never see a resource with no rows: old and
//! new rows swap inside the transaction). Writes that happen meanwhile index with the current code already.

use std::ops::ControlFlow;
use std::time::Instant;

use continuum_store::{ResourceStore, Result};

/// The fingerprint the stored index rows were completely built with.
pub const FINGERPRINT_KEY: &str = "search_index.fingerprint";
/// `FINGERPRINT@KEY` while a reindex to FINGERPRINT has done every resource up to store key KEY.
pub const CURSOR_KEY: &str = "search_index.reindex_cursor";
/// Resources per transaction: big enough to amortise the commit, small enough to keep writers to those
/// resources waiting only milliseconds.
pub const DEFAULT_BATCH: usize = 500;

/// The state of a database's search index relative to this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexState {
    /// Built with this build's definitions.
    Current,
    /// Built with other definitions (`None`: a database from before fingerprints were recorded).
    Stale { built_with: Option<String> },
    /// A reindex to this build's definitions stopped part-way; running it again resumes.
    Interrupted { done_through: i64 },
}

pub fn state(store: &dyn ResourceStore) -> Result<IndexState> {
    let target = continuum_fhir::index_fingerprint();
    if let Some(key) = resume_key(store, &target)? {
        return Ok(IndexState::Interrupted { done_through: key });
    }
    Ok(match store.setting(FINGERPRINT_KEY)? {
        Some(fp) if fp == target => IndexState::Current,
        built_with => IndexState::Stale { built_with },
    })
}

/// A database without resources is, trivially, indexed with this build's definitions: record it, so a new
/// database never reports itself stale. Called when the binary opens a database.
pub fn adopt_if_empty(store: &dyn ResourceStore) -> Result<()> {
    if store.setting(FINGERPRINT_KEY)?.is_none() && store.count_live(i64::MIN)? == 0 {
        let fp = continuum_fhir::index_fingerprint();
        store.write(&mut |tx| tx.set_setting(FINGERPRINT_KEY, Some(&fp)))?;
    }
    Ok(())
}

fn resume_key(store: &dyn ResourceStore, target: &str) -> Result<Option<i64>> {
    Ok(store.setting(CURSOR_KEY)?.and_then(|v| {
        let (fp, key) = v.rsplit_once('@')?;
        (fp == target).then(|| key.parse().ok()).flatten()
    }))
}

/// Where a running reindex is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Resources reindexed by this run.
    pub done: u64,
    /// Resources this run has to do (counted at its start; writes meanwhile can change it slightly).
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Resources reindexed by this run.
    pub resources: u64,
    /// The store key an interrupted earlier run had reached, when this run resumed it.
    pub resumed_after: Option<i64>,
    /// False when the caller stopped the run (it can be resumed).
    pub completed: bool,
    pub seconds: f64,
}

/// Rebuild every live resource's index rows with this build's definitions, resuming an interrupted run.
/// `on_step` is called after every committed batch; returning `Break` stops the run there (as a crash would,
/// but cleanly).
pub fn run(
    store: &dyn ResourceStore,
    batch: usize,
    on_step: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Summary> {
    let started = Instant::now();
    let target = continuum_fhir::index_fingerprint();
    let resumed_after = resume_key(store, &target)?;
    let mut after = resumed_after.unwrap_or(i64::MIN);
    let total = store.count_live(after)?;
    let mut done = 0u64;
    let batch = batch.max(1);
    loop {
        let mut step = None;
        store.write(&mut |tx| {
            step = tx.reindex_after(after, batch)?;
            match step {
                Some(s) => tx.set_setting(CURSOR_KEY, Some(&format!("{target}@{}", s.last_key))),
                None => {
                    tx.set_setting(FINGERPRINT_KEY, Some(&target))?;
                    tx.set_setting(CURSOR_KEY, None)
                }
            }
        })?;
        let Some(s) = step else {
            return Ok(Summary {
                resources: done,
                resumed_after,
                completed: true,
                seconds: started.elapsed().as_secs_f64(),
            });
        };
        after = s.last_key;
        done += s.resources as u64;
        if on_step(Progress {
            done,
            total: total.max(done),
        })
        .is_break()
        {
            return Ok(Summary {
                resources: done,
                resumed_after,
                completed: false,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
}
