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
    /// A point on the earth (WGS84 degrees), for the special parameter `Location.near`.
    Position {
        latitude: f64,
        longitude: f64,
    },
}

/// Mean radius of the earth in kilometres (IUGG), for `near` distances.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The point at `latitude`, `longitude` (degrees) as a unit vector from the earth's centre. Two points are
/// within a great-circle distance `d` of each other exactly when the dot product of their vectors is at least
/// `cos(d / R)`: arithmetic a database can do without trigonometric functions (SQLite has none built in).
pub fn unit_vector(latitude: f64, longitude: f64) -> [f64; 3] {
    let (lat, lon) = (latitude.to_radians(), longitude.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
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

/// How the first (token) component of a composite search value names its token: `system|code`, `code` or
/// `|code`. (`system|`, any code of a system, is not offered for composites: it would cost a third row per
/// pair.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompositeKey<'a> {
    SystemCode(&'a str, &'a str),
    Code(&'a str),
    NoSystem(&'a str),
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
    }
}

/// Every key a stored token answers to: with a system, `system|code` and `code`; without one, `code` and
/// `|code`.
pub fn composite_keys<'a>(system: Option<&'a str>, code: &'a str) -> [CompositeKey<'a>; 2] {
    match system {
        Some(s) => [CompositeKey::SystemCode(s, code), CompositeKey::Code(code)],
        None => [CompositeKey::Code(code), CompositeKey::NoSystem(code)],
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

/// The UCUM code system.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// The index code of a quantity parameter's values in canonical UCUM units (`value-quantity$ucum`): a second
/// row beside the one in the written unit, for comparisons across units of one dimension (mg with g).
pub fn ucum_code(param: &str) -> String {
    format!("{param}$ucum")
}

/// Metric UCUM atoms that take prefixes: code → (factor to the base atom, base atom). Temperatures are left out
/// on purpose: Cel and [degF] are offsets, not factors.
const METRIC: &[(&str, f64, &str)] = &[
    ("g", 1.0, "g"),
    ("L", 1.0, "L"),
    ("l", 1.0, "L"),
    ("m", 1.0, "m"),
    ("mol", 1.0, "mol"),
    ("s", 1.0, "s"),
    ("Pa", 1.0, "Pa"),
    ("bar", 1e5, "Pa"),
    ("U", 1.0, "U"),
    ("eq", 1.0, "eq"),
    ("kat", 1.0, "kat"),
    ("Hz", 1.0, "/s"),
];

/// Non-metric UCUM atoms (no prefixes), by their UCUM definitions.
const OTHER: &[(&str, f64, &str)] = &[
    ("min", 60.0, "s"),
    ("h", 3_600.0, "s"),
    ("d", 86_400.0, "s"),
    ("wk", 604_800.0, "s"),
    // mean Julian month and year: a = 365.25 d, mo = a/12
    ("mo", 2_629_800.0, "s"),
    ("a", 31_557_600.0, "s"),
    ("t", 1e6, "g"),
    ("[lb_av]", 453.592_37, "g"),
    ("[oz_av]", 28.349_523_125, "g"),
    ("[in_i]", 0.025_4, "m"),
    ("[ft_i]", 0.304_8, "m"),
    ("mm[Hg]", 133.322, "Pa"),
    ("cm[H2O]", 98.066_5, "Pa"),
    ("[iU]", 1.0, "[iU]"),
    ("[IU]", 1.0, "[iU]"),
];

const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("k", 1e3),
    ("h", 1e2),
    ("d", 1e-1),
    ("c", 1e-2),
    ("m", 1e-3),
    ("u", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
    ("f", 1e-15),
];

/// One unit term (`mg`, `m2`, `10*3`, `{cells}`, `min`): factor to its canonical form, and that form
/// (empty for a pure number).
fn ucum_term(term: &str) -> Option<(f64, String)> {
    // annotations (`{beats}`) are unity
    let mut plain = String::with_capacity(term.len());
    let mut depth = 0;
    for c in term.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    if plain.is_empty() || plain == "1" {
        return Some((1.0, String::new()));
    }
    if let Some(exp) = plain
        .strip_prefix("10*")
        .or_else(|| plain.strip_prefix("10^"))
    {
        let n: i32 = exp.parse().ok()?;
        return Some((10f64.powi(n), String::new()));
    }
    if let Some(&(_, f, base)) = OTHER.iter().find(|(c, _, _)| *c == plain) {
        return Some((f, base.to_string()));
    }
    // a trailing power (`m2`, `cm3`) on a metric atom
    let (atom, power) = match plain.strip_suffix(['2', '3']) {
        Some(a) if !a.is_empty() && !a.ends_with(|c: char| c.is_ascii_digit()) => {
            (a, if plain.ends_with('2') { 2 } else { 3 })
        }
        _ => (plain.as_str(), 1),
    };
    let metric = |a: &str| {
        METRIC
            .iter()
            .find(|(c, _, _)| *c == a)
            .map(|&(_, f, b)| (f, b))
    };
    let (f, base) = match metric(atom) {
        Some(found) => found,
        None => PREFIXES.iter().find_map(|(p, pf)| {
            atom.strip_prefix(p)
                .and_then(metric)
                .map(|(f, b)| (f * pf, b))
        })?,
    };
    if power > 1 && base.starts_with('/') {
        return None;
    }
    let base = if power > 1 {
        format!("{base}{power}")
    } else {
        base.to_string()
    };
    Some((f.powi(power), base))
}

/// A UCUM unit code in canonical form: the factor from the unit to it and the canonical code (`mg/dL` →
/// 0.01, `g/L`; `mmol/L` → 0.001, `mol/L`; `/min` → 1/60, `/s`; `mm[Hg]` → 133.322, `Pa`). Covers the metric
/// prefixes on g, L, m, mol, s, Pa, U, eq, kat, the common clinical non-metric units, powers of ten, and one
/// `/`; `None` for anything else, temperatures included (offsets, not factors).
pub fn ucum_canonical(code: &str) -> Option<(f64, String)> {
    let (num, den) = match code.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (code, None),
    };
    if den.is_some_and(|d| d.contains('/')) || num.contains('.') {
        return None;
    }
    let (fnum, cnum) = ucum_term(num)?;
    let (factor, canon) = match den {
        None => (fnum, cnum),
        Some(d) => {
            let (fden, cden) = ucum_term(d)?;
            if cden.starts_with('/') || cnum.starts_with('/') {
                return None;
            }
            let canon = match (cnum.is_empty(), cden.is_empty()) {
                (_, true) => cnum,
                (true, false) => format!("/{cden}"),
                (false, false) => format!("{cnum}/{cden}"),
            };
            (fnum / fden, canon)
        }
    };
    if canon.is_empty() {
        // a pure number (`10*3`) has no dimension to compare on
        return None;
    }
    Some((factor, canon))
}

/// `value` times `factor`, rounded to 12 significant digits so that the same amount written in two units
/// compares equal (5 mmol/L and 5000 umol/L both become 0.005 mol/L). Open range ends (±f64::MAX) stay.
pub fn ucum_scale(value: f64, factor: f64) -> f64 {
    if !value.is_finite() || value.abs() >= f64::MAX / 1e20 {
        return value;
    }
    let x = value * factor;
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 12 - x.abs().log10().ceil() as i32;
    let m = 10f64.powi(digits);
    if !m.is_finite() || m == 0.0 {
        return x;
    }
    (x * m).round() / m
}

/// The canonical-unit copy of a UCUM quantity index value, when its unit converts.
pub fn ucum_canonical_value(v: &IndexValue) -> Option<IndexValue> {
    let IndexValue::Quantity {
        value,
        low,
        high,
        system: Some(system),
        code: Some(code),
        ..
    } = v
    else {
        return None;
    };
    if system != UCUM {
        return None;
    }
    let (factor, canon) = ucum_canonical(code)?;
    Some(IndexValue::Quantity {
        value: ucum_scale(*value, factor),
        low: ucum_scale(*low, factor),
        high: ucum_scale(*high, factor),
        system: Some(UCUM.to_string()),
        code: Some(canon),
        unit: None,
    })
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
    fn ucum_units_convert_to_canonical_form() {
        let conv = |c: &str| ucum_canonical(c).map(|(f, canon)| (ucum_scale(1.0, f), canon));
        assert_eq!(conv("mg"), Some((0.001, "g".to_string())));
        assert_eq!(conv("kg"), Some((1000.0, "g".to_string())));
        assert_eq!(conv("mg/dL"), Some((0.01, "g/L".to_string())));
        assert_eq!(conv("mmol/L"), Some((0.001, "mol/L".to_string())));
        assert_eq!(conv("umol/L"), Some((0.000001, "mol/L".to_string())));
        assert_eq!(conv("{beats}/min"), conv("/min"));
        assert_eq!(conv("mm[Hg]"), Some((133.322, "Pa".to_string())));
        assert_eq!(conv("kPa"), Some((1000.0, "Pa".to_string())));
        assert_eq!(conv("kg/m2"), Some((1000.0, "g/m2".to_string())));
        assert_eq!(conv("cm2"), Some((0.0001, "m2".to_string())));
        assert_eq!(conv("10*3/uL"), Some((1e9, "/L".to_string())));
        assert_eq!(conv("h"), Some((3600.0, "s".to_string())));
        assert_eq!(conv("dL"), Some((0.1, "L".to_string())));
        // offsets, unknown units, pure numbers and nested divisions are not converted
        for c in ["Cel", "[degF]", "K", "%", "10*3", "mg/kg/d", "foo", "{x"] {
            assert_eq!(ucum_canonical(c), None, "{c}");
        }
        // the same amount in two units compares equal after rounding
        let a = ucum_canonical("mmol/L").map(|(f, _)| ucum_scale(5.0, f));
        let b = ucum_canonical("umol/L").map(|(f, _)| ucum_scale(5000.0, f));
        assert_eq!(a, b);
        assert_eq!(ucum_scale(f64::MAX, 1e-3), f64::MAX);
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
