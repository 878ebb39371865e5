//! FHIRPath subset used by the search-parameter expressions. (Placeholder being replaced.)
use crate::index::IndexEntry;
use serde_json::Value;

pub fn extract_all(_resource: &Value) -> Vec<IndexEntry> {
    Vec::new()
}

pub fn is_supported(_expression: &str) -> bool {
    false
}
