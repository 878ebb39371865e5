//! Conformance cases of the [`crate::AuditStore`] port (being written).
