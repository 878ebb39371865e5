//! Search-index values extracted from a resource: what the store writes into its typed index tables in the
//! same transaction as the resource itself.
//!
//! Normalisation happens here, once, so both storage backends index exactly the same values.

use serde_json::Value;

/// One value of one search parameter of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The parameter code (`subject`, `code`, `_lastUpdated` is not indexed here: it lives on the resource row).
    pub code: String,
    pub value: IndexValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// `normalized`: lower-cased, accents removed, whitespace collapsed (for default and `:contains` matching);
    /// `exact`: the value as written (for `:exact`).
    String {
        normalized: String,
        exact: String,
    },
    /// A coded value; `system` is `None` when the element has no system. `text` is the display (for `:text`).
    Token {
        system: Option<String>,
        code: String,
        text: Option<String>,
    },
    /// A reference. `target_type`/`target_id` are set for relative (`Patient/123`) and resolvable absolute
    /// references; `url` keeps the literal reference for canonical and absolute URLs.
    Reference {
        target_type: Option<String>,
        target_id: Option<String>,
        url: Option<String>,
    },
    /// A date, dateTime, instant or Period as an inclusive range of microseconds since the Unix epoch (UTC):
    /// a date of partial precision covers its whole span.
    Date {
        low: i64,
        high: i64,
    },
    /// A number with its implicit precision range (`100` covers [99.5, 100.5)).
    Number {
        value: f64,
        low: f64,
        high: f64,
    },
    /// A quantity: value with precision range, plus unit system and code.
    Quantity {
        value: f64,
        low: f64,
        high: f64,
        system: Option<String>,
        code: Option<String>,
        unit: Option<String>,
    },
    Uri {
        value: String,
    },
}

/// Extract every search-index value of a resource, for every search parameter that applies to its type.
///
/// Parameters whose expression uses FHIRPath the evaluator does not support produce no entries (and are left
/// out of the CapabilityStatement by the caller via [`crate::fhirpath::is_supported`]).
pub fn extract_index(resource: &Value) -> Vec<IndexEntry> {
    crate::fhirpath::extract_all(resource)
}

/// Normalise a string for default string search: lower case, accents folded, whitespace collapsed.
pub fn normalize_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = true;
    for ch in s.chars() {
        if ch.is_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            continue;
        }
        last_space = false;
        for lc in ch.to_lowercase() {
            out.push(fold_accent(lc));
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Fold common Latin accented letters to their base letter (why by hand: a full Unicode decomposition crate is
/// heavy for the handful of letters names actually use).
fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => 'i',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
        'ř' => 'r',
        'ś' | 'š' | 'ş' => 's',
        'ť' | 'ţ' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

/// Hash of a token (`system|code`, or just `code` when `system` is `None`), for the hashed token index.
pub fn token_hash(system: Option<&str>, code: &str) -> i64 {
    let h = match system {
        Some(s) => {
            let mut k = String::with_capacity(s.len() + code.len() + 1);
            k.push_str(s);
            k.push('|');
            k.push_str(code);
            xxhash_rust::xxh3::xxh3_64(k.as_bytes())
        }
        None => xxhash_rust::xxh3::xxh3_64(code.as_bytes()),
    };
    h as i64
}

/// How the first (token) component of a composite search value names its token: the four token forms of FHIR
/// search (`system|code`, `code`, `|code`, `system|`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompositeKey<'a> {
    SystemCode(&'a str, &'a str),
    Code(&'a str),
    NoSystem(&'a str),
    System(&'a str),
}

/// The index code under which one composite occurrence's second component is stored, keyed by its first
/// component: `code-value-quantity=http://loinc.org|8480-6$gt140` looks up the quantity rows of the parameter
/// code `code-value-quantity$shttp://loinc.org|8480-6`. The index tables key rows by `param_id(type, code)`, so
/// the first component becomes part of the row's parameter id and the second one is compared in the ordinary
/// table of its type; both always come from the same repeating element (see docs/ARCHITECTURE.md).
pub fn composite_code(param: &str, key: CompositeKey<'_>) -> String {
    match key {
        CompositeKey::SystemCode(system, code) => format!("{param}$s{system}|{code}"),
        CompositeKey::Code(code) => format!("{param}$c{code}"),
        CompositeKey::NoSystem(code) => format!("{param}$n{code}"),
        CompositeKey::System(system) => format!("{param}$y{system}"),
    }
}

/// Every key a stored token answers to: with a system, `system|code`, `code` and `system|`; without one, `code`
/// and `|code`.
pub fn composite_keys<'a>(system: Option<&'a str>, code: &'a str) -> Vec<CompositeKey<'a>> {
    match system {
        Some(s) => vec![
            CompositeKey::SystemCode(s, code),
            CompositeKey::Code(code),
            CompositeKey::System(s),
        ],
        None => vec![CompositeKey::Code(code), CompositeKey::NoSystem(code)],
    }
}

/// The index code of `:of-type` values of a token parameter (`identifier:of-type=typesystem|TYPE|value`):
/// token rows whose system is the identifier type's coding system and whose code is `TYPE|value`.
pub fn of_type_code(param: &str) -> String {
    format!("{param}:of-type")
}

/// Index codes of a ValueSet's own expansion, read by `:in`/`:not-in` searches in SQL: included concepts
/// (tokens, from `compose.include.concept` and `expansion.contains`), whole code systems included (URIs), and
/// the excluded ones; [`VS_UNEXPANDABLE`] marks a ValueSet this server cannot expand without a terminology
/// service (filters, imported value sets).
pub const VS_CODE: &str = "$vs-code";
pub const VS_SYSTEM: &str = "$vs-system";
pub const VS_NOT_CODE: &str = "$vs-not-code";
pub const VS_NOT_SYSTEM: &str = "$vs-not-system";
pub const VS_UNEXPANDABLE: &str = "$vs-unexpandable";

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> + 'a {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn text_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Whether this server can expand a ValueSet from its own content: an `expansion` that lists every code, or a
/// `compose` whose includes and excludes name a code system, with or without explicit concepts. `Err` says why
/// not, for the OperationOutcome of a refused `:in` search.
pub fn value_set_expandable(vs: &Value) -> Result<(), String> {
    if vs.get("expansion").is_some_and(complete_expansion) {
        return Ok(());
    }
    let Some(compose) = vs.get("compose") else {
        return Err("it has neither compose nor a complete expansion".into());
    };
    if items(compose, "include").next().is_none() {
        return Err("compose has no include".into());
    }
    for part in ["include", "exclude"] {
        for (i, inc) in items(compose, part).enumerate() {
            if items(inc, "filter").next().is_some() {
                return Err(format!(
                    "compose.{part}[{i}] uses a filter, which needs a terminology service"
                ));
            }
            if items(inc, "valueSet").next().is_some() {
                return Err(format!(
                    "compose.{part}[{i}] imports other value sets, which is not supported"
                ));
            }
            if text_field(inc, "system").is_none() {
                return Err(format!("compose.{part}[{i}] names no code system"));
            }
        }
    }
    Ok(())
}

/// An expansion that lists codes and no more than it says it has (a paged expansion is incomplete).
fn complete_expansion(exp: &Value) -> bool {
    let listed = count_contains(exp);
    let total = exp.get("total").and_then(Value::as_u64);
    listed > 0 && total.is_none_or(|t| t <= listed as u64)
}

fn count_contains(v: &Value) -> usize {
    items(v, "contains").map(|c| 1 + count_contains(c)).sum()
}

fn expansion_codes(v: &Value, out: &mut Vec<IndexEntry>) {
    for c in items(v, "contains") {
        if let (Some(system), Some(code)) = (text_field(c, "system"), text_field(c, "code")) {
            out.push(vs_token(VS_CODE, system, code));
        }
        expansion_codes(c, out);
    }
}

fn vs_token(code: &str, system: &str, value: &str) -> IndexEntry {
    IndexEntry {
        code: code.to_string(),
        value: IndexValue::Token {
            system: Some(system.to_string()),
            code: value.to_string(),
            text: None,
        },
    }
}

/// The expansion entries of a ValueSet resource (see [`VS_CODE`]); nothing for other resources.
pub fn value_set_entries(vs: &Value) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    if vs.get("resourceType").and_then(Value::as_str) != Some("ValueSet") {
        return out;
    }
    if value_set_expandable(vs).is_err() {
        out.push(IndexEntry {
            code: VS_UNEXPANDABLE.to_string(),
            value: IndexValue::Token {
                system: None,
                code: "true".into(),
                text: None,
            },
        });
        return out;
    }
    if let Some(exp) = vs.get("expansion").filter(|e| complete_expansion(e)) {
        // a complete expansion is the answer; compose is how it was computed
        expansion_codes(exp, &mut out);
    } else if let Some(compose) = vs.get("compose") {
        for (part, code_key, system_key) in [
            ("include", VS_CODE, VS_SYSTEM),
            ("exclude", VS_NOT_CODE, VS_NOT_SYSTEM),
        ] {
            for inc in items(compose, part) {
                let Some(system) = text_field(inc, "system") else {
                    continue;
                };
                let mut concepts = items(inc, "concept").peekable();
                if concepts.peek().is_none() {
                    out.push(IndexEntry {
                        code: system_key.to_string(),
                        value: IndexValue::Uri {
                            value: system.to_string(),
                        },
                    });
                }
                for c in concepts {
                    if let Some(code) = text_field(c, "code") {
                        out.push(vs_token(code_key, system, code));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_fold_case_accents_and_spaces() {
        assert_eq!(normalize_string("  José   Müller "), "jose muller");
        assert_eq!(normalize_string("ÉMILE"), "emile");
    }

    #[test]
    fn token_hash_distinguishes_system() {
        assert_ne!(
            token_hash(Some("http://loinc.org"), "1234-5"),
            token_hash(None, "1234-5")
        );
        assert_eq!(token_hash(Some("a"), "b"), token_hash(Some("a"), "b"));
    }
}
