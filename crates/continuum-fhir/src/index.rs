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
