//! The FHIR R4 registry: resource types, element definitions, search parameters and compartments, parsed once
//! from the committed JSON that `tools/gen_fhir.py` generates from `../shared/fhir-r4`.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

const STRUCTURES: &str = include_str!("../generated/structures.json");
const SEARCH_PARAMETERS: &str = include_str!("../generated/search-parameters.json");
const COMPARTMENTS: &str = include_str!("../generated/compartments.json");

/// The version of the extraction code: bump it whenever a change to [`crate::index`] or the FHIRPath
/// evaluator changes which index rows a resource gets (a new value kind, a fixed function, a unit table), so
/// that databases indexed before the change report themselves stale and `continuum reindex` rebuilds them.
pub const INDEX_FORMAT: u32 = 7;

/// What the stored search-index rows depend on: the extraction code's version and the search-parameter
/// definitions. Stored by the database after a complete reindex and compared at start.
pub fn index_fingerprint() -> String {
    format!(
        "{INDEX_FORMAT}-{:016x}",
        xxhash_rust::xxh3::xxh3_64(SEARCH_PARAMETERS.as_bytes())
    )
}

/// One element of a structure, keyed in [`Structure::elements`] by its path below the type name
/// (`"name"`, `"contact.name"`, `"deceased[x]"`).
#[derive(Debug, Clone, Deserialize)]
pub struct ElementDef {
    pub min: u32,
    /// `"1"`, `"*"` or a number.
    pub max: String,
    /// Type codes (`"HumanName"`, `"string"`, `"BackboneElement"`); empty for `ref` elements.
    #[serde(default)]
    pub types: Vec<String>,
    /// Content reference (`"Questionnaire.item"`): the element has the same children as that path.
    #[serde(rename = "ref")]
    pub content_ref: Option<String>,
    /// Part of the summary view (`_summary=true`).
    #[serde(default)]
    pub summary: bool,
}

impl ElementDef {
    pub fn is_array(&self) -> bool {
        self.max != "1" && self.max != "0"
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Structure {
    /// `resource`, `complex-type` or `primitive-type`.
    pub kind: String,
    #[serde(rename = "abstract")]
    pub is_abstract: bool,
    pub base: Option<String>,
    pub elements: BTreeMap<String, ElementDef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Component {
    pub definition: String,
    pub expression: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchParamDef {
    pub url: String,
    pub code: String,
    pub base: Vec<String>,
    #[serde(rename = "type")]
    pub kind: SearchParamType,
    pub expression: Option<String>,
    #[serde(default)]
    pub target: Vec<String>,
    #[serde(default)]
    pub modifier: Vec<String>,
    #[serde(default)]
    pub comparator: Vec<String>,
    #[serde(default)]
    pub component: Vec<Component>,
}

#[derive(Deserialize)]
struct StructuresFile {
    types: HashMap<String, Structure>,
    primitives: HashMap<String, Option<String>>,
}

/// Everything the server knows about FHIR R4, built once per process.
pub struct Registry {
    pub structures: HashMap<String, Structure>,
    /// Primitive type name → the regex its value must match (anchored by the validator).
    pub primitive_regex: HashMap<String, Option<String>>,
    pub search_params: Vec<SearchParamDef>,
    /// (resource type, code) → index into `search_params`; `Resource`/`DomainResource` parameters are
    /// listed under every concrete type.
    by_type_code: HashMap<(String, String), usize>,
    resource_types: Vec<String>,
    /// Compartment type (`Patient`) → resource type → parameter codes linking it to the compartment.
    pub compartments: HashMap<String, HashMap<String, Vec<String>>>,
}

/// The process-wide registry. Panics never: the embedded JSON is checked by this crate's tests.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::load)
}

impl Registry {
    fn load() -> Registry {
        // The embedded files are generated and tested; a parse failure is a build defect, so fall back to an
        // empty registry rather than panicking on a request path (tests catch the defect).
        let structures: StructuresFile =
            serde_json::from_str(STRUCTURES).unwrap_or(StructuresFile {
                types: HashMap::new(),
                primitives: HashMap::new(),
            });
        let search_params: Vec<SearchParamDef> =
            serde_json::from_str(SEARCH_PARAMETERS).unwrap_or_default();
        let compartments: HashMap<String, HashMap<String, Vec<String>>> =
            serde_json::from_str(COMPARTMENTS).unwrap_or_default();
        let mut resource_types: Vec<String> = structures
            .types
            .iter()
            .filter(|(_, s)| s.kind == "resource" && !s.is_abstract)
            .map(|(n, _)| n.clone())
            .collect();
        resource_types.sort();
        let mut by_type_code = HashMap::new();
        for (i, sp) in search_params.iter().enumerate() {
            for base in &sp.base {
                if base == "Resource" || base == "DomainResource" {
                    for rt in &resource_types {
                        let is_domain = rt != "Bundle" && rt != "Binary" && rt != "Parameters";
                        if base == "Resource" || is_domain {
                            by_type_code
                                .entry((rt.clone(), sp.code.clone()))
                                .or_insert(i);
                        }
                    }
                } else {
                    by_type_code.insert((base.clone(), sp.code.clone()), i);
                }
            }
        }
        Registry {
            structures: structures.types,
            primitive_regex: structures.primitives,
            search_params,
            by_type_code,
            resource_types,
            compartments,
        }
    }

    /// Concrete resource types, sorted.
    pub fn resource_types(&self) -> &[String] {
        &self.resource_types
    }

    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resource_types
            .binary_search_by(|t| t.as_str().cmp(name))
            .is_ok()
    }

    /// Whether a top-level element of a resource type is in its summary (`_summary=true`). Choice elements
    /// (`deceasedBoolean`) are looked up by their `[x]` name.
    pub fn is_summary_element(&self, resource_type: &str, json_name: &str) -> bool {
        let Some(s) = self.structures.get(resource_type) else {
            return false;
        };
        if let Some(e) = s.elements.get(json_name) {
            return e.summary;
        }
        s.elements
            .iter()
            .filter(|(k, _)| !k.contains('.'))
            .filter_map(|(k, e)| k.strip_suffix("[x]").map(|stem| (stem, e)))
            .any(|(stem, e)| {
                e.summary
                    && json_name.starts_with(stem)
                    && json_name[stem.len()..].starts_with(char::is_uppercase)
            })
    }

    pub fn structure(&self, name: &str) -> Option<&Structure> {
        self.structures.get(name)
    }

    pub fn search_param(&self, resource_type: &str, code: &str) -> Option<&SearchParamDef> {
        self.by_type_code
            .get(&(resource_type.to_string(), code.to_string()))
            .map(|&i| &self.search_params[i])
    }

    /// All search parameters that apply to a resource type (including `Resource`-level ones).
    pub fn search_params_for<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = &'a SearchParamDef> + 'a {
        let mut idx: Vec<usize> = self
            .by_type_code
            .iter()
            .filter(|((t, _), _)| t == resource_type)
            .map(|(_, &i)| i)
            .collect();
        idx.sort_by(|a, b| {
            self.search_params[*a]
                .code
                .cmp(&self.search_params[*b].code)
        });
        idx.into_iter().map(move |i| &self.search_params[i])
    }

    /// Parameter codes that put a resource of `resource_type` into the Patient compartment.
    pub fn patient_compartment_params(&self, resource_type: &str) -> &[String] {
        self.compartments
            .get("Patient")
            .and_then(|c| c.get(resource_type))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Stable 64-bit id of a search parameter for a resource type, used as the `pid` column of the index tables.
/// Hashing keeps the index rows small and needs no lookup table shared between processes or backends.
pub fn param_id(resource_type: &str, code: &str) -> i64 {
    let mut key = String::with_capacity(resource_type.len() + code.len() + 1);
    key.push_str(resource_type);
    key.push('.');
    key.push_str(code);
    xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_loads_every_r4_resource_type_and_parameter() {
        let r = registry();
        assert_eq!(r.search_params.len(), 1375);
        assert!(r.is_resource_type("Patient"));
        assert!(r.is_resource_type("Observation"));
        assert!(!r.is_resource_type("Resource"));
        assert!(!r.is_resource_type("HumanName"));
        assert_eq!(r.resource_types().len(), 146);
        let subject = r.search_param("Observation", "subject").map(|p| p.kind);
        assert_eq!(subject, Some(SearchParamType::Reference));
        assert!(r.search_param("Patient", "_id").is_some());
        assert!(r
            .patient_compartment_params("Observation")
            .contains(&"subject".to_string()));
    }
}
