//! What Continuum does, independent of any door (HTTP, CLI, feeds).
//!
//! Owns: the FHIR interactions over the store ([`fhir`]): create/read/update/delete with their conditional
//! forms, JSON Patch, history, search-URL parsing, transaction and batch Bundles. Does not own: HTTP, storage
//! engines, wire formats of other systems. Compiles without axum, SQL drivers or templates.

pub mod access;
pub mod audit;
mod audit_batch;
pub mod error;
pub mod fhir;
pub mod reindex;

pub use error::CoreError;
pub use fhir::{Fhir, Prefer, Saved};
