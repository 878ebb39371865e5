//! FHIR search URLs → the store's search AST.
//!
//! Supported here: `_id`, `_lastUpdated`, and every generated search parameter of type reference, token,
//! string, date, uri, number, quantity and composite (two components, the first a token), with `:missing`,
//! `:exact`, `:contains`, `:not`, `:text`, `:in`/`:not-in`, `:of-type`, `:identifier`, `:above`/`:below` on
//! uris, typed references, chains and `_has`; keyset cursors in both directions. Anything else (token
//! `:above`/`:below`, three-component composites) is refused with 400 under `Prefer: handling=strict`,
//! otherwise ignored and reported back as a warning, never silently.

use continuum_fhir::index::normalize_string;
use continuum_fhir::registry::{registry, SearchParamType};
use continuum_store::search::{
    Comparator, Cursor, Filter, IndexTable, Predicate, SearchQuery, SortBy, SortKey, SortValue,
    StringMode, TokenSystem,
};

use crate::CoreError;
use continuum_fhir::datetime::date_range as parse_range;

pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 1000;

/// Parameters that shape the result rather than filter it.
const RESULT_PARAMS: &[&str] = &[
    "_count",
    "_total",
    "_summary",
    "_format",
    "_pretty",
    "_cursor",
    "_elements",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    #[default]
    Lenient,
    Strict,
}

/// A parsed search: the store query plus what the caller must report.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSearch {
    pub query: SearchQuery,
    /// Parameters that were ignored (lenient handling), for a warning in the result.
    pub ignored: Vec<String>,
    /// `_summary=count`.
    pub count_only: bool,
    /// `_include` (and `_include:iterate`) specifications.
    pub includes: Vec<Include>,
    /// `_revinclude` specifications.
    pub revincludes: Vec<Include>,
    /// `_elements`: top-level elements to keep.
    pub elements: Option<Vec<String>>,
    /// `_summary=text` or `_summary=data`.
    pub summary: Option<Summary>,
}

/// `Source:param[:Target]`, with `iterate` for `:iterate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub source: String,
    pub param: String,
    pub target: Option<String>,
    pub iterate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Only the elements the R4 definitions mark as summary.
    True,
    Text,
    Data,
}

fn parse_include(name: &str, value: &str) -> Result<Include, CoreError> {
    let iterate = name.ends_with(":iterate") || name.ends_with(":recurse");
    let mut parts = value.split(':');
    let (Some(source), Some(param)) = (parts.next(), parts.next()) else {
        return Err(bad(format!(
            "{name}={value}: expected Type:parameter[:TargetType]"
        )));
    };
    let target = parts.next().map(str::to_string);
    if !registry().is_resource_type(source) {
        return Err(bad(format!("{name}: unknown resource type '{source}'")));
    }
    match registry().search_param(source, param) {
        Some(d) if d.kind == SearchParamType::Reference => {}
        _ => {
            return Err(bad(format!(
                "{name}: {source} has no reference parameter '{param}'"
            )))
        }
    }
    if let Some(t) = &target {
        if !registry().is_resource_type(t) {
            return Err(bad(format!("{name}: unknown target type '{t}'")));
        }
    }
    Ok(Include {
        source: source.to_string(),
        param: param.to_string(),
        target,
        iterate,
    })
}

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::BadRequest(msg.into())
}

fn table_for(kind: SearchParamType) -> Option<IndexTable> {
    Some(match kind {
        SearchParamType::String => IndexTable::String,
        SearchParamType::Token => IndexTable::Token,
        SearchParamType::Reference => IndexTable::Reference,
        SearchParamType::Date => IndexTable::Date,
        SearchParamType::Number => IndexTable::Number,
        SearchParamType::Quantity => IndexTable::Quantity,
        SearchParamType::Uri => IndexTable::Uri,
        SearchParamType::Composite | SearchParamType::Special => return None,
    })
}

/// How far `near` reaches when the search gives no distance (R4 leaves it to the server).
pub const NEAR_DEFAULT_KM: f64 = 10.0;

/// `near=latitude|longitude|distance|units` (R4 4.0.1; distance and units optional, units a UCUM length:
/// km when omitted).
fn near_predicate(code: &str, value: &str) -> Result<Predicate, CoreError> {
    let parts: Vec<&str> = value.split('|').map(str::trim).collect();
    let number = |s: &str| s.parse::<f64>().ok().filter(|n| n.is_finite());
    let usage = || {
        bad(format!(
            "{code} takes latitude|longitude|distance|units (like 49.44|7.77|10|km), not '{value}'"
        ))
    };
    let (Some(latitude), Some(longitude)) = (
        parts.first().and_then(|s| number(s)),
        parts.get(1).and_then(|s| number(s)),
    ) else {
        return Err(usage());
    };
    if parts.len() > 4
        || !(-90.0..=90.0).contains(&latitude)
        || !(-180.0..=180.0).contains(&longitude)
    {
        return Err(usage());
    }
    let distance = match parts.get(2) {
        None | Some(&"") => None,
        Some(d) => Some(number(d).filter(|d| *d >= 0.0).ok_or_else(usage)?),
    };
    let km_per_unit = match parts.get(3).copied().unwrap_or("") {
        "" | "km" => 1.0,
        "m" => 0.001,
        "[mi_i]" | "mi" => 1.609_344,
        "[nmi_i]" => 1.852,
        other => {
            return Err(bad(format!(
                "{code}: distance units must be km, m, [mi_i] or [nmi_i], not '{other}'"
            )))
        }
    };
    Ok(Predicate::Near {
        param: code.to_string(),
        latitude,
        longitude,
        km: distance.map_or(NEAR_DEFAULT_KM, |d| d * km_per_unit),
    })
}

fn date_predicate(param: Option<&str>, value: &str) -> Result<Predicate, CoreError> {
    let (cmp, rest) = Comparator::parse_prefix(value);
    let (low, high) = parse_range(rest)
        .ok_or_else(|| bad(format!("'{value}' is not a valid date search value")))?;
    Ok(match param {
        None => Predicate::LastUpdated { cmp, low, high },
        Some(p) => Predicate::Date {
            param: p.to_string(),
            cmp,
            low,
            high,
        },
    })
}

/// Split on unescaped `sep`, keeping every escape in the pieces (for composites: `,` then `$`, then
/// [`split_or`] unescapes each part).
fn split_raw(value: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == sep {
            out.push(String::new());
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    last.push(next);
                }
            }
        }
    }
    out
}

/// Split a search value on unescaped commas (`\,` is a literal comma).
fn split_or(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some(',') | Some('\\') | Some('|') | Some('$')) => {
                if let (Some(next), Some(last)) = (chars.next(), out.last_mut()) {
                    last.push(next);
                }
            }
            ',' => out.push(String::new()),
            _ => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

fn reference_value(param: &str, modifier: Option<&str>, v: &str) -> Result<Predicate, CoreError> {
    // A canonical URL with `|version` matches the canonical regardless of version (the index keeps none).
    let v = match v.split_once('|') {
        Some((url, _)) if url.contains('/') => url,
        _ => v,
    };
    // An absolute URL (another server's resource, a canonical) is matched as written: the index keeps such
    // references whole.
    if v.contains("://") || v.starts_with("urn:") {
        return Ok(Predicate::Reference {
            param: param.to_string(),
            target_type: None,
            target_id: v.to_string(),
        });
    }
    let mut target_type = modifier.map(str::to_string);
    let mut target_id = v.to_string();
    // `Type/id`
    let segments: Vec<&str> = v.trim_end_matches('/').rsplitn(3, '/').collect();
    if segments.len() >= 2 && registry().is_resource_type(segments[1]) {
        if let Some(t) = &target_type {
            if t != segments[1] {
                return Err(bad(format!(
                    "reference '{v}' does not match the type modifier :{t}"
                )));
            }
        }
        target_type = Some(segments[1].to_string());
        target_id = segments[0].to_string();
    }
    if target_id.is_empty() {
        return Err(bad(format!("empty reference value for {param}")));
    }
    Ok(Predicate::Reference {
        param: param.to_string(),
        target_type,
        target_id,
    })
}

fn token_value(param: &str, negate: bool, v: &str) -> Result<Predicate, CoreError> {
    let (system, code) = match v.split_once('|') {
        None => (TokenSystem::Any, v.to_string()),
        Some(("", code)) => (TokenSystem::None, code.to_string()),
        Some((sys, "")) => (TokenSystem::OnlySystem(sys.to_string()), String::new()),
        Some((sys, code)) => (TokenSystem::Is(sys.to_string()), code.to_string()),
    };
    if code.is_empty() && !matches!(system, TokenSystem::OnlySystem(_)) {
        return Err(bad(format!("empty token value for {param}")));
    }
    Ok(Predicate::Token {
        param: param.to_string(),
        system,
        code,
        negate,
    })
}

/// `identifier:of-type=typesystem|TYPE|value`: the identifier's type coding and value, on the same
/// Identifier (indexed as the token `typesystem` / `TYPE|value` under `<param>:of-type`).
fn of_type_value(param: &str, v: &str) -> Result<Predicate, CoreError> {
    let parts: Vec<&str> = v.splitn(3, '|').collect();
    let [system, code, value] = parts.as_slice() else {
        return Err(bad(format!(
            "{param}:of-type takes system|code|value (the identifier type's coding, then the value), not '{v}'"
        )));
    };
    if code.is_empty() || value.is_empty() {
        return Err(bad(format!(
            "{param}:of-type needs a type code and a value: '{v}'"
        )));
    }
    Ok(Predicate::Token {
        param: continuum_fhir::index::of_type_code(param),
        system: if system.is_empty() {
            TokenSystem::None
        } else {
            TokenSystem::Is(system.to_string())
        },
        code: format!("{code}|{value}"),
        negate: false,
    })
}

/// A composite parameter (`code-value-quantity=http://loinc.org|8480-6$gt140`, OR with commas): the first
/// component, a token, selects the keyed index code ([`continuum_fhir::index::composite_code`]) in which the
/// second component is compared with its own type's rules and prefixes.
/// The keyed codes (one per composite in `parts`) under which the rows of a composite's first component
/// `first` (`system|code`, `code` or `|code`) are indexed; `None` for `system|` (any code of a system).
fn keyed_codes(
    code: &str,
    parts: &[String],
    first: &str,
) -> Result<Option<Vec<String>>, CoreError> {
    use continuum_fhir::index::{composite_code, CompositeKey};
    let Predicate::Token {
        system, code: c, ..
    } = token_value(code, false, first)?
    else {
        return Err(bad(format!("{code}: '{first}' is not a token")));
    };
    let key = match &system {
        TokenSystem::Any => CompositeKey::Code(&c),
        TokenSystem::None => CompositeKey::NoSystem(&c),
        TokenSystem::Is(sys) => CompositeKey::SystemCode(sys, &c),
        TokenSystem::OnlySystem(_) => return Ok(None),
    };
    Ok(Some(parts.iter().map(|p| composite_code(p, key)).collect()))
}

/// A MolecularSequence coordinate: `token$[prefix]start$[prefix]end` (R4: `chromosome-variant-coordinate=1$gt123$lt345`).
fn coordinate_filters(
    code: &str,
    modifier: Option<&str>,
    value: &str,
) -> Result<Vec<Filter>, CoreError> {
    if let Some(m) = modifier {
        return Err(bad(format!("{code} takes no modifier (:{m})")));
    }
    let mut any_of = Vec::new();
    for alternative in split_raw(value, ',') {
        let parts: Vec<String> = split_raw(&alternative, '$')
            .iter()
            .map(|p| split_or(p).join(","))
            .collect();
        let [first, start, end] = parts.as_slice() else {
            return Err(bad(format!(
                "{code} takes three values joined by $ (like 1$ge100$lt200), not '{alternative}'"
            )));
        };
        if first.is_empty() || start.is_empty() || end.is_empty() {
            return Err(bad(format!(
                "{code}: every component needs a value in '{alternative}'"
            )));
        }
        let Some(param) = keyed_codes(code, &[code.to_string()], first)?.and_then(|mut p| p.pop())
        else {
            return Err(bad(format!(
                "{code}: the first component needs a code, not only a system"
            )));
        };
        any_of.push(Predicate::Coordinate {
            param,
            start: Box::new(number_predicate(code, start)?),
            end: Box::new(number_predicate(code, end)?),
        });
    }
    Ok(vec![Filter { any_of }])
}

fn composite_filters(
    def: &continuum_fhir::registry::SearchParamDef,
    code: &str,
    modifier: Option<&str>,
    value: &str,
) -> Result<Result<Vec<Filter>, String>, CoreError> {
    if continuum_fhir::fhirpath::is_coordinate(def) {
        return coordinate_filters(code, modifier, value).map(Ok);
    }
    let Some([_, second]) = continuum_fhir::fhirpath::composite_components(def) else {
        return Ok(Err(format!(
            "search on the composite parameter {code} is not supported"
        )));
    };
    if let Some(m) = modifier {
        return Ok(Err(format!("search on {code}:{m} is not supported")));
    }
    let mut any_of = Vec::new();
    for alternative in split_raw(value, ',') {
        let parts: Vec<String> = split_raw(&alternative, '$')
            .iter()
            .map(|p| split_or(p).join(","))
            .collect();
        let [first, v] = parts.as_slice() else {
            return Err(bad(format!(
                "{code} takes two values joined by $ (like code$value), not '{alternative}'"
            )));
        };
        if first.is_empty() || v.is_empty() {
            return Err(bad(format!(
                "{code}: both components need a value in '{alternative}'"
            )));
        }
        // a union of other composites (`combo-…`) is searched through each part's rows
        let own = [code.to_string()];
        let parts = continuum_fhir::fhirpath::composite_union_of(def).unwrap_or(&own);
        let Some(params) = keyed_codes(code, parts, first)? else {
            return Ok(Err(format!(
                "{code}: a first component of the form system| (any code of a system) is not supported"
            )));
        };
        let mut alternatives = Vec::with_capacity(params.len());
        for param in params {
            alternatives.push(match second {
                SearchParamType::Token => token_value(&param, false, v)?,
                // composites keep the written unit only (no canonical UCUM rows)
                SearchParamType::Quantity => quantity_in_unit(&param, v)?,
                SearchParamType::Date => date_predicate(Some(&param), v)?,
                SearchParamType::Number => number_predicate(&param, v)?,
                SearchParamType::Reference => reference_value(&param, None, v)?,
                SearchParamType::String => Predicate::String {
                    param,
                    value: normalize_string(v),
                    mode: StringMode::Start,
                },
                SearchParamType::Uri => Predicate::Uri {
                    param,
                    value: v.clone(),
                },
                SearchParamType::Composite | SearchParamType::Special => {
                    return Ok(Err(format!(
                        "search on the composite parameter {code} is not supported"
                    )))
                }
            });
        }
        any_of.push(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            Predicate::Any(alternatives)
        });
    }
    Ok(Ok(vec![Filter { any_of }]))
}

/// Parse search parameters (already percent-decoded name/value pairs) for `resource_type` (or a system-wide
/// search when `None`).
pub fn parse_search(
    resource_type: Option<&str>,
    params: &[(String, String)],
    handling: Handling,
) -> Result<ParsedSearch, CoreError> {
    let mut query = SearchQuery {
        resource_type: resource_type.map(str::to_string),
        count: DEFAULT_COUNT,
        ..Default::default()
    };
    let mut ignored = Vec::new();
    let mut count_only = false;
    let mut includes = Vec::new();
    let mut revincludes = Vec::new();
    let mut elements = None;
    let mut summary = None;
    for (name, value) in params {
        let code = name.split(':').next().unwrap_or_default();
        match code {
            "_count" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| bad(format!("_count must be a number, not '{value}'")))?;
                query.count = n.min(MAX_COUNT);
                continue;
            }
            "_total" => {
                match value.as_str() {
                    "accurate" | "estimate" => query.total = true,
                    "none" => query.total = false,
                    _ => {
                        return Err(bad(format!(
                            "_total must be none, estimate or accurate, not '{value}'"
                        )))
                    }
                }
                continue;
            }
            "_summary" => {
                match value.as_str() {
                    "count" => {
                        count_only = true;
                        query.total = true;
                        query.count = 0;
                    }
                    "false" => {}
                    "true" => summary = Some(Summary::True),
                    "text" => summary = Some(Summary::Text),
                    "data" => summary = Some(Summary::Data),
                    _ => {
                        if handling == Handling::Strict {
                            return Err(bad(format!("_summary={value} is not supported yet")));
                        }
                        ignored.push(format!("_summary={value}"));
                    }
                }
                continue;
            }
            "_cursor" => {
                let (cursor, backward, inclusive) =
                    decode_cursor(value).ok_or_else(|| bad("invalid paging cursor"))?;
                query.after = Some(cursor);
                query.backward = backward;
                query.inclusive = inclusive;
                continue;
            }
            "_sort" => {
                query.sort = parse_sort(resource_type, value)?;
                continue;
            }
            "_type" if resource_type.is_none() => {
                for t in value.split(',') {
                    if !registry().is_resource_type(t) {
                        return Err(bad(format!("_type names an unknown resource type '{t}'")));
                    }
                    query.types.push(t.to_string());
                }
                continue;
            }
            "_include" => {
                includes.push(parse_include(name, value)?);
                continue;
            }
            "_revinclude" => {
                revincludes.push(parse_include(name, value)?);
                continue;
            }
            "_elements" => {
                elements = Some(
                    value
                        .split(',')
                        .map(|e| e.trim().to_string())
                        .filter(|e| !e.is_empty())
                        .collect(),
                );
                continue;
            }
            c if RESULT_PARAMS.contains(&c) => {
                if matches!(c, "_format" | "_pretty") {
                    continue;
                }
                if handling == Handling::Strict {
                    return Err(bad(format!("search parameter {c} is not supported yet")));
                }
                ignored.push(name.clone());
                continue;
            }
            _ => {}
        }
        match filters_for(resource_type, name, value)? {
            Ok(filters) => query.filters.extend(filters),
            Err(why) => {
                if handling == Handling::Strict {
                    return Err(bad(why));
                }
                ignored.push(name.clone());
            }
        }
    }
    Ok(ParsedSearch {
        query,
        ignored,
        count_only,
        includes,
        revincludes,
        elements,
        summary,
    })
}

/// A search value as a number with its implicit precision range: `100` covers [99.5, 100.5), `1.5` covers
/// [1.45, 1.55), `1e2` covers [95, 105).
fn number_range(v: &str) -> Option<(f64, f64, f64)> {
    let value: f64 = v.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let (mantissa, exp) = match v.find(['e', 'E']) {
        Some(i) => (&v[..i], v[i + 1..].parse::<i32>().ok()?),
        None => (v, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i32);
    let half = 0.5 * 10f64.powi(exp - decimals);
    Some((value, value - half, value + half))
}

fn number_predicate(code: &str, v: &str) -> Result<Predicate, CoreError> {
    let (cmp, rest) = Comparator::parse_prefix(v);
    let (value, low, high) =
        number_range(rest).ok_or_else(|| bad(format!("'{v}' is not a number")))?;
    Ok(Predicate::Number {
        param: code.to_string(),
        cmp,
        value,
        low,
        high,
    })
}

/// `[prefix]value|system|code` compared in the unit written only.
fn quantity_in_unit(code: &str, v: &str) -> Result<Predicate, CoreError> {
    let (cmp, rest) = Comparator::parse_prefix(v);
    let mut parts = rest.splitn(3, '|');
    let number = parts.next().unwrap_or_default();
    let system = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let unit = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    if system.is_some() && unit.is_none() {
        return Err(bad(format!("quantity '{v}' names a system without a code")));
    }
    let (value, low, high) =
        number_range(number).ok_or_else(|| bad(format!("'{v}' is not a quantity")))?;
    Ok(Predicate::Quantity {
        param: code.to_string(),
        cmp,
        value,
        low,
        high,
        system,
        code: unit,
    })
}

fn quantity_predicate(code: &str, v: &str) -> Result<Predicate, CoreError> {
    let written = quantity_in_unit(code, v)?;
    let Predicate::Quantity {
        cmp,
        value,
        low,
        high,
        system: Some(system),
        code: Some(unit),
        ..
    } = &written
    else {
        return Ok(written);
    };
    use continuum_fhir::index::{ucum_canonical, ucum_code, ucum_scale, UCUM};
    // A UCUM unit that converts also matches every amount of the same dimension, through the canonical rows
    // (`<param>$ucum`); the rows in the written unit still answer for data indexed before those existed.
    let canonical = if system == UCUM {
        ucum_canonical(unit)
    } else {
        None
    };
    let Some((factor, canon)) = canonical else {
        return Ok(written);
    };
    let canonical = Predicate::Quantity {
        param: ucum_code(code),
        cmp: *cmp,
        value: ucum_scale(*value, factor),
        low: ucum_scale(*low, factor),
        high: ucum_scale(*high, factor),
        system: Some(UCUM.to_string()),
        code: Some(canon),
    };
    Ok(Predicate::Any(vec![written, canonical]))
}

/// Filters for one `name=value` pair on `resource_type`. `Ok(Err(reason))` when the parameter is valid FHIR but
/// not supported here (the caller ignores or refuses it by the handling preference); `Err` for bad input.
fn filters_for(
    resource_type: Option<&str>,
    name: &str,
    value: &str,
) -> Result<Result<Vec<Filter>, String>, CoreError> {
    // reverse chain: _has:Type:param:rest
    if let Some(rest) = name.strip_prefix("_has:") {
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(param), Some(inner)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(format!(
                "'{name}' must look like _has:Type:parameter:search"
            )));
        };
        if !registry().is_resource_type(source) {
            return Err(bad(format!(
                "_has names an unknown resource type '{source}'"
            )));
        }
        match registry().search_param(source, param) {
            Some(d) if d.kind == SearchParamType::Reference => {}
            _ => {
                return Err(bad(format!(
                    "{source} has no reference parameter '{param}'"
                )))
            }
        }
        let filters = match filters_for(Some(source), inner, value)? {
            Ok(f) => f,
            Err(why) => return Ok(Err(why)),
        };
        return Ok(Ok(vec![Filter::one(Predicate::Has {
            source_type: source.to_string(),
            param: param.to_string(),
            filters,
        })]));
    }
    // chain: param[:Type].rest
    if let Some((head, rest)) = name.split_once('.') {
        let Some(ty) = resource_type else {
            return Ok(Err(format!(
                "chained parameter {name} needs a resource type"
            )));
        };
        let (code, type_modifier) = match head.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (head, None),
        };
        let Some(def) = registry().search_param(ty, code) else {
            return Ok(Err(format!("unknown search parameter {code} for {ty}")));
        };
        if def.kind != SearchParamType::Reference {
            return Err(bad(format!(
                "{code} is not a reference parameter and cannot be chained"
            )));
        }
        let inner_code = rest.split(['.', ':']).next().unwrap_or_default();
        let candidates: Vec<String> = match type_modifier {
            Some(t) if registry().is_resource_type(t) => vec![t.to_string()],
            Some(t) => return Err(bad(format!("'{t}' is not a resource type"))),
            None if def.target.is_empty() || def.target.iter().any(|t| t == "Resource") => {
                registry()
                    .resource_types()
                    .iter()
                    .filter(|t| registry().search_param(t, inner_code).is_some())
                    .cloned()
                    .collect()
            }
            None => def
                .target
                .iter()
                .filter(|t| registry().search_param(t, inner_code).is_some())
                .cloned()
                .collect(),
        };
        if candidates.is_empty() {
            return Err(bad(format!(
                "no target of {code} has a search parameter '{inner_code}'"
            )));
        }
        let mut targets = Vec::new();
        for t in candidates {
            match filters_for(Some(&t), rest, value)? {
                Ok(f) => targets.push((t, f)),
                Err(why) => return Ok(Err(why)),
            }
        }
        return Ok(Ok(vec![Filter::one(Predicate::Chain {
            param: code.to_string(),
            targets,
        })]));
    }
    let (code, modifier) = match name.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (name, None),
    };
    let values = split_or(value);
    if values.iter().any(String::is_empty) && modifier != Some("missing") {
        return Err(bad(format!("empty value for search parameter {name}")));
    }
    let mut any_of = Vec::new();
    if matches!(code, "_id" | "_lastUpdated") && modifier == Some("missing") {
        // Every resource has an id and a last-updated time: `:missing=true` matches none, `false` all.
        return match value {
            "true" => Ok(Ok(vec![Filter::one(Predicate::Id(String::new()))])),
            "false" => Ok(Ok(Vec::new())),
            _ => Err(bad(format!("{name} takes true or false"))),
        };
    }
    if code == "_id" {
        match modifier {
            None => any_of.extend(values.iter().map(|v| Predicate::Id(v.clone()))),
            Some("not") => any_of.extend(values.iter().map(|v| Predicate::NotId(v.clone()))),
            Some(m) => return Ok(Err(format!("modifier :{m} on _id is not supported"))),
        }
    } else if code == "_lastUpdated" {
        if modifier.is_some() {
            return Err(bad("_lastUpdated takes no modifier"));
        }
        for v in &values {
            any_of.push(date_predicate(None, v)?);
        }
    } else {
        let Some(ty) = resource_type else {
            return Ok(Err(format!("parameter {code} needs a resource type")));
        };
        let Some(def) = registry().search_param(ty, code) else {
            return Ok(Err(format!("unknown search parameter {code} for {ty}")));
        };
        // R4 parameters without an expression (`_text`, `_content`, `_query`) have no index values: searching
        // them would silently match nothing
        if !def
            .expression
            .as_deref()
            .is_some_and(continuum_fhir::fhirpath::is_supported)
        {
            return Ok(Err(format!("search parameter {code} is not supported")));
        }
        if def.kind == SearchParamType::Composite {
            return composite_filters(def, code, modifier, value);
        }
        if modifier == Some("missing") {
            let missing = match value {
                "true" => true,
                "false" => false,
                _ => return Err(bad(format!("{name} takes true or false"))),
            };
            let Some(table) = table_for(def.kind) else {
                return Ok(Err(format!("{code}:missing is not supported")));
            };
            return Ok(Ok(vec![Filter::one(Predicate::Missing {
                param: code.to_string(),
                table,
                missing,
            })]));
        }
        for v in &values {
            let p = match (def.kind, modifier) {
                (SearchParamType::Reference, None) => reference_value(code, None, v)?,
                // Reference.identifier is indexed as a token under the reference parameter
                (SearchParamType::Reference, Some("identifier")) => token_value(code, false, v)?,
                (SearchParamType::Token, Some("text")) => Predicate::TokenText {
                    param: code.to_string(),
                    value: normalize_string(v),
                },
                (SearchParamType::Uri, Some("below")) => Predicate::UriPrefix {
                    param: code.to_string(),
                    value: v.clone(),
                    below: true,
                },
                (SearchParamType::Uri, Some("above")) => Predicate::UriPrefix {
                    param: code.to_string(),
                    value: v.clone(),
                    below: false,
                },
                (SearchParamType::Reference, Some(m)) if registry().is_resource_type(m) => {
                    reference_value(code, Some(m), v)?
                }
                (SearchParamType::Token, None) => token_value(code, false, v)?,
                (SearchParamType::Token, Some("not")) => token_value(code, true, v)?,
                (SearchParamType::Token, Some("of-type")) => of_type_value(code, v)?,
                (SearchParamType::Token, Some(m @ ("in" | "not-in"))) => {
                    let (url, version) = match v.split_once('|') {
                        Some((u, ver)) if !ver.is_empty() => (u, Some(ver.to_string())),
                        Some((u, _)) => (u, None),
                        None => (v.as_str(), None),
                    };
                    Predicate::TokenInValueSet {
                        param: code.to_string(),
                        url: url.to_string(),
                        version,
                        negate: m == "not-in",
                    }
                }
                (SearchParamType::String, None) => Predicate::String {
                    param: code.to_string(),
                    value: normalize_string(v),
                    mode: StringMode::Start,
                },
                (SearchParamType::String, Some("exact")) => Predicate::String {
                    param: code.to_string(),
                    value: v.clone(),
                    mode: StringMode::Exact,
                },
                (SearchParamType::String, Some("contains")) => Predicate::String {
                    param: code.to_string(),
                    value: normalize_string(v),
                    mode: StringMode::Contains,
                },
                (SearchParamType::Date, None) => date_predicate(Some(code), v)?,
                (SearchParamType::Uri, None) => Predicate::Uri {
                    param: code.to_string(),
                    value: v.clone(),
                },
                (SearchParamType::Number, None) => number_predicate(code, v)?,
                (SearchParamType::Special, None) if code == "near" => near_predicate(code, v)?,
                (SearchParamType::Quantity, None) => quantity_predicate(code, v)?,
                (kind, m) => {
                    let what = match m {
                        Some(m) => format!("{code}:{m}"),
                        None => format!("{code} ({kind:?} parameters)"),
                    };
                    return Ok(Err(format!("search on {what} is not supported yet")));
                }
            };
            any_of.push(p);
        }
    }
    // `:not` (and `:not-in`) with several values means none of them: AND of negations
    if any_of.iter().all(|p| {
        matches!(
            p,
            Predicate::Token { negate: true, .. }
                | Predicate::TokenInValueSet { negate: true, .. }
                | Predicate::NotId(_)
        )
    }) {
        Ok(Ok(any_of.into_iter().map(Filter::one).collect()))
    } else {
        Ok(Ok(vec![Filter { any_of }]))
    }
}

fn parse_sort(resource_type: Option<&str>, value: &str) -> Result<Vec<SortKey>, CoreError> {
    let mut keys = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (descending, name) = match item.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, item),
        };
        let by = match name {
            "_id" => SortBy::Id,
            "_lastUpdated" => SortBy::LastUpdated,
            code => {
                let ty = resource_type
                    .ok_or_else(|| bad(format!("_sort={code} needs a resource type")))?;
                let def = registry().search_param(ty, code).ok_or_else(|| {
                    bad(format!("_sort: unknown search parameter {code} for {ty}"))
                })?;
                let table = table_for(def.kind).ok_or_else(|| {
                    bad(format!(
                        "_sort: {code} is a {:?} parameter and cannot be sorted",
                        def.kind
                    ))
                })?;
                SortBy::Param {
                    param: code.to_string(),
                    table,
                }
            }
        };
        keys.push(SortKey { by, descending });
    }
    Ok(keys)
}

/// The `_cursor` of a next link: the plain store key when the search is unsorted, otherwise the last row's
/// sort values and key as URL-safe base64 JSON. Opaque to clients.
pub fn encode_cursor(c: &Cursor) -> String {
    encode_page_cursor(c, false, false)
}

/// A cursor with its direction: forward from after the position (the plain form of [`encode_cursor`]), or
/// `backward` (a `previous` link), `inclusive` of the position itself (the way back to a page reached from the
/// other side). The direction is a third JSON element: `"b"`, `"bi"` or `"fi"`.
pub fn encode_page_cursor(c: &Cursor, backward: bool, inclusive: bool) -> String {
    use base64::Engine;
    let flag = match (backward, inclusive) {
        (false, false) => None,
        (false, true) => Some("fi"),
        (true, false) => Some("b"),
        (true, true) => Some("bi"),
    };
    if c.values.is_empty() && flag.is_none() {
        return c.pk.to_string();
    }
    let values: Vec<serde_json::Value> = c
        .values
        .iter()
        .map(|v| match v {
            SortValue::Int(i) => serde_json::json!({"i": i}),
            SortValue::Real(f) => serde_json::json!({"r": f}),
            SortValue::Text(t) => serde_json::json!({"t": t}),
            SortValue::Null => serde_json::Value::Null,
        })
        .collect();
    let doc = match flag {
        Some(f) => serde_json::json!([c.pk, values, f]),
        None => serde_json::json!([c.pk, values]),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// The `next` and `previous` cursors of a page, turning a backward page round into the query's order.
///
/// A page read forward from a cursor has a previous page: the rows up to that cursor (inclusive when the page
/// itself excluded it). A page read backward has a next page from its cursor on, and a previous one when the
/// store found more rows before it. The first page (no cursor) has no previous page.
pub fn page_cursors(
    q: &SearchQuery,
    page: &mut continuum_store::SearchPage,
) -> (Option<String>, Option<String>) {
    if q.backward {
        page.matches.reverse();
        let previous = page
            .next
            .as_ref()
            .map(|c| encode_page_cursor(c, true, false));
        let next = q
            .after
            .as_ref()
            .map(|c| encode_page_cursor(c, false, !q.inclusive));
        (next, previous)
    } else {
        let next = page.next.as_ref().map(encode_cursor);
        let previous = q
            .after
            .as_ref()
            .map(|c| encode_page_cursor(c, true, !q.inclusive));
        (next, previous)
    }
}

/// Refuse (400) a search whose `:in`/`:not-in` names a ValueSet that is not stored here or that this server
/// cannot expand from its own content, rather than answer it as an empty set. Looks inside chains and `_has`.
pub fn check_value_sets(
    q: &SearchQuery,
    store: &dyn continuum_store::ResourceStore,
) -> Result<(), CoreError> {
    fn walk<'a>(filters: &'a [Filter], out: &mut Vec<(&'a str, Option<&'a str>, &'a str)>) {
        fn one<'a>(p: &'a Predicate, out: &mut Vec<(&'a str, Option<&'a str>, &'a str)>) {
            match p {
                Predicate::TokenInValueSet {
                    param,
                    url,
                    version,
                    ..
                } => out.push((url, version.as_deref(), param)),
                Predicate::Chain { targets, .. } => {
                    for (_, f) in targets {
                        walk(f, out);
                    }
                }
                Predicate::Has { filters, .. } => walk(filters, out),
                Predicate::All(ps) | Predicate::Any(ps) => {
                    for p in ps {
                        one(p, out);
                    }
                }
                _ => {}
            }
        }
        for f in filters {
            for p in &f.any_of {
                one(p, out);
            }
        }
    }
    let mut wanted = Vec::new();
    walk(&q.filters, &mut wanted);
    for (url, version, param) in wanted {
        let mut filters = vec![Filter::one(Predicate::Uri {
            param: "url".into(),
            value: url.to_string(),
        })];
        if let Some(v) = version {
            filters.push(Filter::one(Predicate::Token {
                param: "version".into(),
                system: TokenSystem::Any,
                code: v.to_string(),
                negate: false,
            }));
        }
        let found = store.search(&SearchQuery {
            resource_type: Some("ValueSet".into()),
            filters,
            count: 20,
            ..Default::default()
        })?;
        let named = match version {
            Some(v) => format!("{url}|{v}"),
            None => url.to_string(),
        };
        if found.matches.is_empty() {
            return Err(bad(format!(
                "{param}:in/:not-in: the ValueSet {named} is not stored on this server, so it cannot be expanded"
            )));
        }
        for m in &found.matches {
            let vs: serde_json::Value = serde_json::from_slice(&m.body)
                .map_err(|e| CoreError::Internal(format!("stored ValueSet: {e}")))?;
            if let Err(why) = continuum_fhir::index::value_set_expandable(&vs) {
                return Err(bad(format!(
                    "{param}:in/:not-in: the ValueSet {named} cannot be expanded: {why}"
                )));
            }
        }
    }
    Ok(())
}

fn decode_cursor(s: &str) -> Option<(Cursor, bool, bool)> {
    use base64::Engine;
    if let Ok(pk) = s.parse::<i64>() {
        return Some((
            Cursor {
                pk,
                values: Vec::new(),
            },
            false,
            false,
        ));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let pk = doc.get(0)?.as_i64()?;
    let mut values = Vec::new();
    for v in doc.get(1)?.as_array()? {
        values.push(if v.is_null() {
            SortValue::Null
        } else if let Some(i) = v.get("i").and_then(serde_json::Value::as_i64) {
            SortValue::Int(i)
        } else if let Some(f) = v.get("r").and_then(serde_json::Value::as_f64) {
            SortValue::Real(f)
        } else {
            SortValue::Text(v.get("t")?.as_str()?.to_string())
        });
    }
    let (backward, inclusive) = match doc.get(2).map(serde_json::Value::as_str) {
        None => (false, false),
        Some(Some("fi")) => (false, true),
        Some(Some("b")) => (true, false),
        Some(Some("bi")) => (true, true),
        Some(_) => return None,
    };
    Some((Cursor { pk, values }, backward, inclusive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    #[test]
    fn reference_forms() {
        let p = parse_search(
            Some("Observation"),
            &pairs("subject=Patient/1&patient=2&subject:Patient=3"),
            Handling::Strict,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.query.filters[0].any_of[0],
            Predicate::Reference {
                param: "subject".into(),
                target_type: Some("Patient".into()),
                target_id: "1".into()
            }
        );
        assert_eq!(
            p.query.filters[1].any_of[0],
            Predicate::Reference {
                param: "patient".into(),
                target_type: None,
                target_id: "2".into()
            }
        );
        assert_eq!(
            p.query.filters[2].any_of[0],
            Predicate::Reference {
                param: "subject".into(),
                target_type: Some("Patient".into()),
                target_id: "3".into()
            }
        );
    }

    #[test]
    fn tokens_and_or() {
        let p = parse_search(
            Some("Patient"),
            &pairs("identifier=urn:a|1,|2,3"),
            Handling::Strict,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let any = &p.query.filters[0].any_of;
        assert_eq!(any.len(), 3);
        assert!(
            matches!(&any[0], Predicate::Token { system: TokenSystem::Is(s), code, .. } if s == "urn:a" && code == "1")
        );
        assert!(matches!(
            &any[1],
            Predicate::Token {
                system: TokenSystem::None,
                ..
            }
        ));
        assert!(matches!(
            &any[2],
            Predicate::Token {
                system: TokenSystem::Any,
                ..
            }
        ));
    }

    #[test]
    fn unknown_parameters_strict_and_lenient() {
        let err = parse_search(Some("Patient"), &pairs("nonsense=1"), Handling::Strict);
        assert!(matches!(err, Err(CoreError::BadRequest(_))));
        let ok = parse_search(Some("Patient"), &pairs("nonsense=1"), Handling::Lenient)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.ignored, vec!["nonsense".to_string()]);
        assert!(ok.query.filters.is_empty());
    }

    #[test]
    fn bad_values_are_400() {
        for q in [
            "_count=x",
            "_lastUpdated=yesterday",
            "birthdate=2020-13",
            "_total=maybe",
            "subject=",
        ] {
            let r = parse_search(
                Some(if q.starts_with("subject") {
                    "Observation"
                } else {
                    "Patient"
                }),
                &pairs(q),
                Handling::Lenient,
            );
            assert!(matches!(r, Err(CoreError::BadRequest(_))), "{q}");
        }
    }

    #[test]
    fn cursors_carry_their_direction() {
        let c = Cursor {
            pk: 42,
            values: vec![SortValue::Text("x".into()), SortValue::Null],
        };
        for (backward, inclusive) in [(false, false), (false, true), (true, false), (true, true)] {
            let text = encode_page_cursor(&c, backward, inclusive);
            assert_eq!(decode_cursor(&text), Some((c.clone(), backward, inclusive)));
        }
        let plain = Cursor {
            pk: 9,
            values: Vec::new(),
        };
        assert_eq!(encode_cursor(&plain), "9");
        let back = encode_page_cursor(&plain, true, false);
        assert_eq!(decode_cursor(&back), Some((plain, true, false)));
    }

    #[test]
    fn composites_key_the_second_component_by_the_first() {
        let p = parse_search(
            Some("Observation"),
            &pairs("component-code-value-quantity=http://loinc.org|8480-6$gt140,8462-4$lt90"),
            Handling::Strict,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let any = &p.query.filters[0].any_of;
        assert!(
            matches!(&any[0], Predicate::Quantity { param, cmp: Comparator::Gt, value, .. }
            if param == "component-code-value-quantity$shttp://loinc.org|8480-6" && *value == 140.0)
        );
        assert!(
            matches!(&any[1], Predicate::Quantity { param, cmp: Comparator::Lt, .. }
            if param == "component-code-value-quantity$c8462-4")
        );
        let bad = parse_search(
            Some("Observation"),
            &pairs("component-code-value-quantity=8480-6"),
            Handling::Lenient,
        );
        assert!(matches!(bad, Err(CoreError::BadRequest(_))));
    }

    #[test]
    fn raw_split_keeps_escapes() {
        assert_eq!(
            split_raw(r"a\$b$c\,d", '$'),
            vec![r"a\$b".to_string(), r"c\,d".to_string()]
        );
    }

    #[test]
    fn escaped_commas() {
        assert_eq!(
            split_or(r"a\,b,c"),
            vec!["a,b".to_string(), "c".to_string()]
        );
    }
}
