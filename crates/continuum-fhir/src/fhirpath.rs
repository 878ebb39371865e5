//! Search-value extraction: the FHIRPath subset used by the R4 search-parameter expressions, evaluated on a
//! resource, with the results converted into [`IndexEntry`] values by parameter type.
//!
//! Owns: parsing ([`parse`]), evaluation ([`eval`]), conversion ([`convert`]) and the per-resource-type plan
//! of parsed expressions, built once. Does not own: storage of the entries or query planning; composite and
//! special parameters produce nothing (yet).
//!
//! Supported FHIRPath: paths, `|`, `and`/`or`, `=`/`!=`, `is`/`as` (operators and functions), `ofType()`,
//! `where()`, `exists()`, `empty()`, `not()`, `first()`, `last()`, `resolve()` (type test only),
//! `extension('url')`, indexers, `$this`, `%resource`, string/number/boolean literals.

mod convert;
mod eval;
mod parse;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::index::{IndexEntry, IndexValue};
use crate::model::{model, TypeId};
use crate::registry::{registry, SearchParamType};
use parse::Expr;

pub use parse::ParseError;

/// Every search-index value of a resource, for every search parameter that applies to its type.
/// An unknown or missing `resourceType` yields nothing (validation rejects such resources first).
pub fn extract_all(resource: &Value) -> Vec<IndexEntry> {
    let Some(plan) = plan_for(resource) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in &plan.params {
        for value in param_values(p, resource, plan.ty) {
            out.push(IndexEntry {
                code: p.code.clone(),
                value,
            });
        }
    }
    out
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
                .map(|p| param_values(p, resource, plan.ty))
        })
        .unwrap_or_default()
}

fn plan_for(resource: &Value) -> Option<&'static Plan> {
    plans().get(resource.get("resourceType")?.as_str()?)
}

/// The distinct values of one parameter: the same value reached twice (two names with the same family) is
/// indexed once.
fn param_values(p: &Compiled, resource: &Value, ty: TypeId) -> Vec<IndexValue> {
    let mut values = Vec::new();
    for node in eval::evaluate(&p.expr, resource, ty) {
        convert::convert(p.kind, &node, &mut values);
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

/// True when the whole expression is within the supported subset.
pub fn is_supported(expression: &str) -> bool {
    parse::parse(expression).is_ok()
}

/// Why an expression is not supported, for diagnostics.
pub fn check(expression: &str) -> Result<(), ParseError> {
    parse::parse(expression).map(|_| ())
}

struct Compiled {
    code: String,
    kind: SearchParamType,
    expr: Expr,
}

struct Plan {
    ty: TypeId,
    params: Vec<Compiled>,
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
        for sp in reg.search_params_for(rt) {
            if matches!(
                sp.kind,
                SearchParamType::Composite | SearchParamType::Special
            ) {
                continue;
            }
            let Some(src) = sp.expression.as_deref() else {
                continue;
            };
            let expr = parsed.entry(src).or_insert_with(|| parse::parse(src).ok());
            if let Some(expr) = expr.as_ref().and_then(|e| prune(e, ty)) {
                params.push(Compiled {
                    code: sp.code.clone(),
                    kind: sp.kind,
                    expr,
                });
            }
        }
        plans.insert(rt.clone(), Plan { ty, params });
    }
    plans
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
