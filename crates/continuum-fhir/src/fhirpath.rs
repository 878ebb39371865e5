//! Search-value extraction: the FHIRPath subset used by the R4 search-parameter expressions, evaluated on a
//! resource, with the results converted into [`IndexEntry`] values by parameter type.
//!
//! Owns: parsing ([`parse`]), evaluation ([`eval`]), conversion ([`convert`]) and the per-resource-type plan
//! of parsed expressions, built once. Does not own: storage of the entries or query planning. Composite
//! parameters are indexed per occurrence under keyed codes ([`crate::index::composite_code`]); `:of-type`
//! values and ValueSet expansions are extra entries too; special parameters produce nothing.
//!
//! Supported FHIRPath: paths, `|`, `and`/`or`, `=`/`!=`, `is`/`as` (operators and functions), `ofType()`,
//! `where()`, `exists()`, `empty()`, `not()`, `first()`, `last()`, `resolve()` (type test only),
//! `extension('url')`, indexers, `$this`, `%resource`, string/number/boolean literals.

mod convert;
mod eval;
mod parse;
mod reads;

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::Value;

use crate::index::{composite_code, composite_keys, of_type_code, IndexEntry, IndexValue};
use crate::model::{model, TypeId};
use crate::registry::{registry, SearchParamDef, SearchParamType};
use parse::{Expr, Func};

pub use parse::ParseError;
pub use reads::parse_members;

/// Every search-index value of a resource, for every search parameter that applies to its type.
/// An unknown or missing `resourceType` yields nothing (validation rejects such resources first).
pub fn extract_all(resource: &Value) -> Vec<IndexEntry> {
    let Some(plan) = plan_for(resource) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut extra = Vec::new();
    for p in &plan.params {
        let mut of_type = Vec::new();
        let values = param_values(p, resource, plan.ty, Some(&mut of_type));
        if p.kind == SearchParamType::Quantity {
            push_ucum(&p.code, &values, &mut extra);
        }
        for value in values {
            out.push(IndexEntry {
                code: p.code.clone(),
                value,
            });
        }
        if !of_type.is_empty() {
            let code = of_type_code(&p.code);
            extra.extend(dedup(of_type).into_iter().map(|value| IndexEntry {
                code: code.clone(),
                value,
            }));
        }
    }
    for c in &plan.composites {
        composite_entries(c, resource, plan.ty, &mut extra);
    }
    // a ValueSet may list a concept twice; per code, like every parameter's values
    let mut by_code: Vec<(String, Vec<IndexValue>)> = Vec::new();
    for e in crate::index::value_set_entries(resource) {
        match by_code.iter_mut().find(|(c, _)| *c == e.code) {
            Some((_, values)) => values.push(e.value),
            None => by_code.push((e.code, vec![e.value])),
        }
    }
    for (code, values) in by_code {
        extra.extend(dedup(values).into_iter().map(|value| IndexEntry {
            code: code.clone(),
            value,
        }));
    }
    // composite pairs from different occurrences may repeat (an Observation's own code and value equal to a
    // component's): harmless for matching, and rare, so not searched for
    out.extend(extra);
    out
}

/// The canonical-unit copies of UCUM quantities (`<code>$ucum`), for comparisons across units.
fn push_ucum(code: &str, values: &[IndexValue], out: &mut Vec<IndexEntry>) {
    let ucum = crate::index::ucum_code(code);
    out.extend(
        values
            .iter()
            .filter_map(crate::index::ucum_canonical_value)
            .map(|value| IndexEntry {
                code: ucum.clone(),
                value,
            }),
    );
}

/// One composite parameter's entries: for every occurrence (the repeating element the parameter is defined
/// on), every pair of a first-component token and a second-component value found on that same occurrence, the
/// second value under each key of the token.
fn composite_entries(
    c: &CompiledComposite,
    resource: &Value,
    ty: TypeId,
    out: &mut Vec<IndexEntry>,
) {
    let [(_, first_expr), (second_kind, second_expr)] = &c.components;
    for occurrence in eval::evaluate(&c.occurrence, resource, ty) {
        // the second component first: most occurrences have no value of its type (an Observation with a
        // Quantity has no CodeableConcept), and then the first needs no work
        let mut seconds = Vec::new();
        for node in eval::evaluate_on(second_expr, resource, ty, occurrence) {
            convert::convert(*second_kind, &node, &mut seconds);
        }
        if seconds.is_empty() {
            continue;
        }
        let seconds = match &c.end {
            // a coordinate: one row per start and end of this occurrence, the start as low, the end as high
            Some(end_expr) => {
                let mut ends = Vec::new();
                for node in eval::evaluate_on(end_expr, resource, ty, occurrence) {
                    convert::convert(SearchParamType::Number, &node, &mut ends);
                }
                let whole = |v: &IndexValue| match v {
                    IndexValue::Number { value, .. } if value.fract() == 0.0 => Some(*value as i64),
                    _ => None,
                };
                let mut rows = Vec::new();
                for start in seconds.iter().filter_map(whole) {
                    for end in ends.iter().filter_map(whole) {
                        rows.push(IndexValue::Date {
                            low: start,
                            high: end,
                        });
                    }
                }
                rows
            }
            None => seconds,
        };
        let seconds = dedup(seconds);
        let mut firsts = Vec::new();
        for node in eval::evaluate_on(first_expr, resource, ty, occurrence) {
            convert::convert(SearchParamType::Token, &node, &mut firsts);
        }
        // the same token twice (a code repeated with another display) would repeat every pair
        let firsts = dedup(firsts);
        for first in &firsts {
            let IndexValue::Token { system, code, .. } = first else {
                continue;
            };
            for key in composite_keys(system.as_deref(), code) {
                let code = composite_code(&c.code, key);
                for second in &seconds {
                    out.push(IndexEntry {
                        code: code.clone(),
                        value: second.clone(),
                    });
                }
            }
        }
    }
}

/// The component types of a composite parameter this server indexes and searches: two components, the first
/// a token, the second a token, quantity, date, string, reference, number or uri. `None` for the others (R4's
/// MolecularSequence coordinates have three components: see [`is_coordinate`]) and for non-composites.
///
/// A component's type is its definition's type, except where R4 lists the definitions crosswise
/// (`DocumentReference.relationship`: the `code` component points at the reference parameter `relatesto`): a
/// component whose expression is a plain element name takes the type of the component definition whose
/// expression ends in that element.
pub fn composite_components(def: &SearchParamDef) -> Option<[SearchParamType; 2]> {
    static KINDS: OnceLock<HashMap<String, Option<[SearchParamType; 2]>>> = OnceLock::new();
    KINDS
        .get_or_init(|| {
            registry()
                .search_params
                .iter()
                .filter(|p| p.kind == SearchParamType::Composite)
                .map(|p| (p.url.clone(), resolve_components(p)))
                .collect()
        })
        .get(&def.url)
        .copied()
        .flatten()
}

/// The composites whose union a composite is, when it is one: R4's `combo-code-value-quantity` is defined on
/// `Observation | Observation.component` with the same components as `code-value-quantity` (on `Observation`)
/// and `component-code-value-quantity` (on `Observation.component`). Such a composite gets no index rows of its
/// own; a search on it is the OR of searches on its parts.
pub fn composite_union_of(def: &SearchParamDef) -> Option<&'static [String]> {
    static UNIONS: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    UNIONS
        .get_or_init(|| {
            let reg = registry();
            let components = |d: &SearchParamDef| -> Vec<String> {
                d.component.iter().map(|c| c.expression.clone()).collect()
            };
            let mut unions = HashMap::new();
            for d in reg
                .search_params
                .iter()
                .filter(|p| p.kind == SearchParamType::Composite)
            {
                let Some(expr) = d.expression.as_deref() else {
                    continue;
                };
                let branches: Vec<&str> = expr.split('|').map(str::trim).collect();
                if branches.len() < 2 {
                    continue;
                }
                let parts: Option<Vec<String>> = branches
                    .iter()
                    .map(|b| {
                        reg.search_params
                            .iter()
                            .find(|o| {
                                o.kind == SearchParamType::Composite
                                    && o.url != d.url
                                    && o.base == d.base
                                    && o.expression.as_deref().map(str::trim) == Some(*b)
                                    && components(o) == components(d)
                            })
                            .map(|o| o.code.clone())
                    })
                    .collect();
                if let Some(parts) = parts {
                    unions.insert(d.url.clone(), parts);
                }
            }
            unions
        })
        .get(&def.url)
        .map(Vec::as_slice)
}

fn resolve_components(def: &SearchParamDef) -> Option<[SearchParamType; 2]> {
    match component_kinds(def)?.as_slice() {
        [SearchParamType::Token, second]
            if matches!(
                second,
                SearchParamType::Token
                    | SearchParamType::Quantity
                    | SearchParamType::Date
                    | SearchParamType::String
                    | SearchParamType::Reference
                    | SearchParamType::Number
                    | SearchParamType::Uri
            ) =>
        {
            Some([SearchParamType::Token, *second])
        }
        _ => None,
    }
}

/// Whether a composite is one of MolecularSequence's coordinates: a token (chromosome or reference sequence)
/// and two integers (start and end) of the same variant or window. Their rows are `idx_date` rows under the
/// keyed code of the token, with the start as `low` and the end as `high`, so both numbers come from the same
/// occurrence.
pub fn is_coordinate(def: &SearchParamDef) -> bool {
    static COORDINATES: OnceLock<HashMap<String, bool>> = OnceLock::new();
    COORDINATES
        .get_or_init(|| {
            registry()
                .search_params
                .iter()
                .filter(|p| p.kind == SearchParamType::Composite)
                .map(|p| {
                    let kinds = component_kinds(p);
                    let coordinate = matches!(
                        kinds.as_deref(),
                        Some([
                            SearchParamType::Token,
                            SearchParamType::Number,
                            SearchParamType::Number
                        ])
                    );
                    (p.url.clone(), coordinate)
                })
                .collect()
        })
        .get(&def.url)
        .copied()
        .unwrap_or(false)
}

/// The types of a composite's components, from the definitions they name (a component expression that is a
/// bare element name takes the type of the parameter defined on that element).
fn component_kinds(def: &SearchParamDef) -> Option<Vec<SearchParamType>> {
    let reg = registry();
    let defs: Vec<&SearchParamDef> = def
        .component
        .iter()
        .map(|c| reg.search_params.iter().find(|p| p.url == c.definition))
        .collect::<Option<_>>()?;
    let ends_in = |d: &SearchParamDef, name: &str| {
        d.expression.as_deref().is_some_and(|e| {
            e.split('|')
                .map(|b| b.trim().trim_matches(|c| c == '(' || c == ')').trim())
                .any(|b| b.ends_with(&format!(".{name}")))
        })
    };
    let mut kinds = Vec::new();
    for (c, d) in def.component.iter().zip(&defs) {
        let plain = c
            .expression
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        let kind = if plain && !ends_in(d, &c.expression) {
            defs.iter()
                .find(|o| ends_in(o, &c.expression))
                .map_or(d.kind, |o| o.kind)
        } else {
            d.kind
        };
        parse::parse(&c.expression).ok()?;
        kinds.push(kind);
    }
    Some(kinds)
}

/// The index values of one parameter of a resource (e.g. `subject` of an Observation), for callers that need a
/// single parameter, such as compartment membership; empty when the parameter is unknown, composite, special or
/// unsupported.
pub fn extract_param(resource: &Value, code: &str) -> Vec<IndexValue> {
    plan_for(resource)
        .and_then(|plan| {
            plan.params
                .iter()
                .find(|p| p.code == code)
                .map(|p| param_values(p, resource, plan.ty, None))
        })
        .unwrap_or_default()
}

/// The top-level elements of a `resource_type` resource that parameter `code` reads (`subject`, `performer`),
/// or `None` when it may read more than named members (or is unknown): then the whole resource is needed.
/// Worked out once, when the plans are built.
pub fn param_members(resource_type: &str, code: &str) -> Option<&'static BTreeSet<String>> {
    plans()
        .get(resource_type)?
        .params
        .iter()
        .find(|p| p.code == code)?
        .members
        .as_ref()
}

/// A stored body parsed only as far as parameters `codes` of `resource_type` read it (the whole body when one
/// of them may read more), for callers that extract a few parameters from many bodies: the patients of every
/// match of a page (audit records), the targets of `_include`. A member `value` also keeps its choice-type
/// forms (`valueQuantity`) and `_value`; `resourceType`, which evaluation starts from, is always kept.
pub fn parse_for_params(
    resource_type: &str,
    codes: &[String],
    body: &[u8],
) -> serde_json::Result<Value> {
    let mut sets = Vec::with_capacity(codes.len());
    for code in codes {
        match param_members(resource_type, code) {
            Some(m) => sets.push(m),
            None => return serde_json::from_slice(body),
        }
    }
    parse_members(body, &|key| {
        let k = key.strip_prefix('_').unwrap_or(key);
        key == "resourceType"
            || sets
                .iter()
                .flat_map(|m| m.iter())
                .any(|m| k.starts_with(m.as_str()))
    })
}

fn plan_for(resource: &Value) -> Option<&'static Plan> {
    plans().get(resource.get("resourceType")?.as_str()?)
}

/// The distinct values of one parameter: the same value reached twice (two names with the same family) is
/// indexed once. `of_type`, when given, gets the `:of-type` values of a token parameter's Identifiers.
fn param_values(
    p: &Compiled,
    resource: &Value,
    ty: TypeId,
    mut of_type: Option<&mut Vec<IndexValue>>,
) -> Vec<IndexValue> {
    let mut values = Vec::new();
    for node in eval::evaluate(&p.expr, resource, ty) {
        convert::convert(p.kind, &node, &mut values);
        if let (SearchParamType::Token, Some(out)) = (p.kind, of_type.as_deref_mut()) {
            convert::identifier_of_type(&node, out);
        }
    }
    dedup(values)
}

/// Drop repeated values, keeping first occurrences in order. Hash-bucketed: a linear `contains` made a
/// CodeSystem with 98,000 concepts take 104 s to index.
fn dedup(values: Vec<IndexValue>) -> Vec<IndexValue> {
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    if values.len() < 16 {
        let mut unique: Vec<IndexValue> = Vec::with_capacity(values.len());
        for v in values {
            if !unique.contains(&v) {
                unique.push(v);
            }
        }
        return unique;
    }
    let key = |v: &IndexValue| {
        // f64 is not Hash; the Debug text is an exact rendering of every field, floats included
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{v:?}").hash(&mut h);
        h.finish()
    };
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(values.len());
    let mut unique: Vec<IndexValue> = Vec::with_capacity(values.len());
    for v in values {
        let bucket = seen.entry(key(&v)).or_default();
        if bucket.iter().any(|&i| unique[i] == v) {
            continue;
        }
        bucket.push(unique.len());
        unique.push(v);
    }
    unique
}

/// True when the whole expression is within the supported subset. The R4 expressions' answers are worked out
/// once (every search asked, and parsing the 30-branch `patient` expression was 2 % of a simple search).
pub fn is_supported(expression: &str) -> bool {
    static KNOWN: OnceLock<HashMap<&'static str, bool>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        registry()
            .search_params
            .iter()
            .filter_map(|p| p.expression.as_deref())
            .chain(
                registry()
                    .search_params
                    .iter()
                    .flat_map(|p| p.component.iter().map(|c| c.expression.as_str())),
            )
            .map(|e| (e, parse::parse(e).is_ok()))
            .collect()
    });
    match known.get(expression) {
        Some(ok) => *ok,
        None => parse::parse(expression).is_ok(),
    }
}

/// Why an expression is not supported, for diagnostics.
pub fn check(expression: &str) -> Result<(), ParseError> {
    parse::parse(expression).map(|_| ())
}

struct Compiled {
    code: String,
    kind: SearchParamType,
    expr: Expr,
    /// The top-level members `expr` reads; `None` when it may read more (see [`param_members`]).
    members: Option<BTreeSet<String>>,
    /// A date parameter with at most one value per resource (see [`single_date`]).
    single: bool,
}

struct CompiledComposite {
    code: String,
    /// The repeating element both components are evaluated on (`Observation.component`).
    occurrence: Expr,
    components: [(SearchParamType, Expr); 2],
    /// The end of a MolecularSequence coordinate (the second component is then its start).
    end: Option<Expr>,
}

struct Plan {
    ty: TypeId,
    params: Vec<Compiled>,
    composites: Vec<CompiledComposite>,
}

/// Parsed expressions per resource type, with union branches for other types removed, so the 30-branch
/// `patient` expression costs one branch on an Observation.
fn plans() -> &'static HashMap<String, Plan> {
    static PLANS: OnceLock<HashMap<String, Plan>> = OnceLock::new();
    PLANS.get_or_init(build_plans)
}

fn build_plans() -> HashMap<String, Plan> {
    let reg = registry();
    let m = model();
    let mut parsed: HashMap<&str, Option<Expr>> = HashMap::new();
    let mut plans = HashMap::new();
    for rt in reg.resource_types() {
        let Some(ty) = m.type_id(rt) else { continue };
        let mut params = Vec::new();
        let mut composites = Vec::new();
        for sp in reg.search_params_for(rt) {
            if sp.kind == SearchParamType::Composite {
                composites.extend(compile_composite(sp, ty));
                continue;
            }
            // `Location.near` is the one special parameter with values of its own (a position); the others
            // (`_text`, `_content`, `_list`, `_query`…) have no expression to index
            if sp.kind == SearchParamType::Special && sp.code != "near" {
                continue;
            }
            let Some(src) = sp.expression.as_deref() else {
                continue;
            };
            let expr = parsed.entry(src).or_insert_with(|| parse::parse(src).ok());
            if let Some(expr) = expr.as_ref().and_then(|e| prune(e, ty)) {
                let mut members = BTreeSet::new();
                let members = match reads::reads(&expr, &mut members) {
                    Some(false) => Some(members),
                    _ => None,
                };
                let single =
                    sp.kind == SearchParamType::Date && one_date(&expr, ty).unwrap_or(false);
                params.push(Compiled {
                    code: sp.code.clone(),
                    kind: sp.kind,
                    expr,
                    members,
                    single,
                });
            }
        }
        plans.insert(
            rt.clone(),
            Plan {
                ty,
                params,
                composites,
            },
        );
    }
    plans
}

fn compile_composite(sp: &SearchParamDef, ty: TypeId) -> Option<CompiledComposite> {
    if composite_union_of(sp).is_some() {
        // searched through its parts' rows
        return None;
    }
    let coordinate = is_coordinate(sp);
    let [first, second] = match composite_components(sp) {
        Some(kinds) => kinds,
        None if coordinate => [SearchParamType::Token, SearchParamType::Number],
        None => return None,
    };
    let occurrence = prune(&parse::parse(sp.expression.as_deref()?).ok()?, ty)?;
    let (c0, c1) = (sp.component.first()?, sp.component.get(1)?);
    let end = match coordinate {
        true => Some(parse::parse(&sp.component.get(2)?.expression).ok()?),
        false => None,
    };
    Some(CompiledComposite {
        code: sp.code.clone(),
        occurrence,
        components: [
            (first, parse::parse(&c0.expression).ok()?),
            (second, parse::parse(&c1.expression).ok()?),
        ],
        end,
    })
}

/// The expression restricted to the branches that can match resource type `ty`; `None` when none can.
fn prune(e: &Expr, ty: TypeId) -> Option<Expr> {
    let applies = |e: &Expr| leading_type(e).is_none_or(|t| model().is_a(ty, t));
    match e {
        Expr::Union(items) => {
            let mut kept: Vec<Expr> = items.iter().filter(|i| applies(i)).cloned().collect();
            match kept.len() {
                0 => None,
                1 => kept.pop(),
                _ => Some(Expr::Union(kept)),
            }
        }
        other => applies(other).then(|| other.clone()),
    }
}

/// The type name a path starts with (`Observation` in `Observation.subject.where(...)`).
/// Whether date parameter `code` of `resource_type` has at most one value (one index row) per resource: its
/// expression is a path of non-repeating elements ending in a date, dateTime, instant or Period (a Timing
/// has one row per event). `Encounter.period` is; `Observation.effective` (which may be a Timing) and
/// `Goal.target.due` are not. Variants that give no date (`Immunization.occurrenceString`) do not count. Then several conditions on the parameter hold for one stored row together, and a
/// window `ge A` with `lt B` is one bounded range of the index instead of two open ones.
pub fn single_date(resource_type: &str, code: &str) -> bool {
    plans()
        .get(resource_type)
        .and_then(|p| p.params.iter().find(|c| c.code == code))
        .is_some_and(|c| c.single)
}

/// `Some(true)` when `e`, evaluated on a resource of type `ty`, yields at most one date-like value.
fn one_date(e: &Expr, ty: TypeId) -> Option<bool> {
    let m = model();
    let types = one_node(e, ty)?;
    // a Timing gives one row per event; the other non-date variants (`onsetString`, `onsetAge`) give none
    Some(types.iter().all(|t| m.get(*t).code != "Timing"))
}

/// The possible types of the single node a path expression yields; `None` when it may yield several (a
/// repeating element) or is not a plain path.
fn one_node(e: &Expr, ty: TypeId) -> Option<Vec<TypeId>> {
    let m = model();
    match e {
        Expr::Child(inner, name) if matches!(inner.as_ref(), Expr::This | Expr::Root) => {
            // the leading type filter (`Encounter.period`)
            (name.starts_with(|c: char| c.is_ascii_uppercase()) && m.is_a(ty, name))
                .then(|| vec![ty])
        }
        Expr::Child(inner, name) => {
            let mut out = Vec::new();
            for t in one_node(inner, ty)? {
                let child = m.get(t).children.get(name)?;
                if child.array {
                    return None;
                }
                out.extend(child.variants.iter().map(|v| v.ty));
            }
            Some(out)
        }
        Expr::As(inner, name) | Expr::Call(inner, Func::As(name) | Func::OfType(name)) => Some(
            one_node(inner, ty)?
                .into_iter()
                .filter(|t| m.is_a(*t, name))
                .collect(),
        ),
        // `Condition.onset.as(dateTime) | Condition.onset.as(Period)`: variants of one element
        Expr::Union(items) => {
            let base = |e: &Expr| match e {
                Expr::As(inner, _) | Expr::Call(inner, Func::As(_) | Func::OfType(_)) => {
                    inner.as_ref().clone()
                }
                other => other.clone(),
            };
            let first = base(items.first()?);
            if !items.iter().all(|i| base(i) == first) {
                return None;
            }
            let mut out = Vec::new();
            for i in items {
                out.extend(one_node(i, ty)?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn leading_type(e: &Expr) -> Option<&str> {
    match e {
        Expr::Child(inner, name) => match inner.as_ref() {
            Expr::This if name.starts_with(|c: char| c.is_ascii_uppercase()) => Some(name),
            other => leading_type(other),
        },
        Expr::Call(inner, _) | Expr::Index(inner, _) | Expr::Is(inner, _) | Expr::As(inner, _) => {
            leading_type(inner)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod dedup_tests {
    use super::*;

    #[test]
    fn many_values_keep_first_occurrences_in_order() {
        let token = |c: usize| IndexValue::Token {
            system: Some("urn:x".into()),
            code: format!("c{c}"),
            text: None,
        };
        let values: Vec<IndexValue> = (0..1000).map(|i| token(i % 300)).collect();
        let unique = dedup(values);
        assert_eq!(unique, (0..300).map(token).collect::<Vec<_>>());
    }
}
