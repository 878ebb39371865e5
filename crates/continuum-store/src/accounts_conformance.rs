//! Conformance cases of the [`crate::AccountStore`] port (being written).
