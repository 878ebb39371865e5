//! FHIR R4 (4.0.1) knowledge, without any I/O.
//!
//! Owns: the registry generated from the official definitions (`generated/`, written by `tools/gen_fhir.py`),
//! structural validation of resources, extraction of search-index values (a FHIRPath subset), and the
//! OperationOutcome shape. Does not own: storage, HTTP, access rules.

pub mod datetime;
pub mod fhirpath;
pub mod index;
mod model;
pub mod outcome;
pub mod registry;
pub mod validate;

pub use index::{extract_index, IndexEntry, IndexValue};
pub use outcome::{IssueSeverity, IssueType, OperationOutcome};
pub use registry::{index_fingerprint, registry, Registry, SearchParamDef, SearchParamType};
