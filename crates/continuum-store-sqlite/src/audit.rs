//! [`AuditStore`] on this backend.

use continuum_store::{AuditQuery, AuditRecord, AuditRow, AuditStore, ChainLink, Result, StoreError};

use crate::SqliteStore;

fn todo() -> StoreError {
    StoreError::Backend("the audit log is not implemented on this backend yet".into())
}

impl AuditStore for SqliteStore {
    fn append_audit(&self, _records: &[AuditRecord]) -> Result<()> {
        Err(todo())
    }
    fn audit_search(&self, _query: &AuditQuery) -> Result<Vec<AuditRow>> {
        Err(todo())
    }
    fn seal_audit(&self, _max: usize) -> Result<usize> {
        Err(todo())
    }
    fn audit_chain(&self, _after_pos: i64, _limit: usize) -> Result<Vec<ChainLink>> {
        Err(todo())
    }
    fn audit_unsealed(&self, _limit: usize) -> Result<Vec<AuditRow>> {
        Err(todo())
    }
}
