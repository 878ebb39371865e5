//! Evaluation of parsed expressions over a borrowed JSON resource.
//!
//! Owns: the typed walk (each result node carries its FHIR type, derived from the model as the path is
//! followed, so `Observation.effective` knows an `effectivePeriod` is a Period). Does not own: parsing or the
//! conversion of results into index values.

use serde_json::Value;

use super::parse::{Expr, Func, Literal};
use crate::model::{model, Kind, Model, TypeId};
use crate::registry::registry;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Json(&'a Value),
    Bool(bool),
    Str(&'a str),
    Num(f64),
    /// What `resolve()` yields for a reference: we cannot fetch the target, but its type is in the reference
    /// itself, which is all `resolve() is Patient` needs.
    Resolved(&'a str),
}

impl<'a> Val<'a> {
    /// A string value, whether from the resource or a literal.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Val::Json(Value::String(s)) => Some(s.as_str()),
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Val::Json(Value::Bool(b)) => Some(*b),
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    pub val: Val<'a>,
    /// The FHIR type of a JSON node; `None` for literals and computed values.
    pub ty: Option<TypeId>,
}

/// Evaluate `expr` with the resource (of type `ty`) as both the context and `%resource`.
pub(crate) fn evaluate<'a>(expr: &'a Expr, resource: &'a Value, ty: TypeId) -> Vec<Node<'a>> {
    let root = Node {
        val: Val::Json(resource),
        ty: Some(ty),
    };
    let cx = Cx { m: model(), root };
    cx.eval(expr, &[root])
}

/// Evaluate `expr` with `input` as the context (a composite's component, evaluated on one occurrence) and the
/// resource (of type `ty`) as `%resource`.
pub(crate) fn evaluate_on<'a>(
    expr: &'a Expr,
    resource: &'a Value,
    ty: TypeId,
    input: Node<'a>,
) -> Vec<Node<'a>> {
    let root = Node {
        val: Val::Json(resource),
        ty: Some(ty),
    };
    let cx = Cx { m: model(), root };
    cx.eval(expr, &[input])
}

struct Cx<'a> {
    m: &'static Model,
    root: Node<'a>,
}

impl<'a> Cx<'a> {
    fn eval(&self, e: &'a Expr, input: &[Node<'a>]) -> Vec<Node<'a>> {
        match e {
            Expr::This => input.to_vec(),
            Expr::Root => vec![self.root],
            Expr::Lit(l) => vec![match l {
                Literal::Str(s) => Node {
                    val: Val::Str(s),
                    ty: None,
                },
                Literal::Bool(b) => self.boolean(*b),
                Literal::Num(n) => Node {
                    val: Val::Num(*n),
                    ty: None,
                },
            }],
            Expr::Child(inner, name) => {
                let base = self.eval(inner, input);
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    // A type name: `Observation.code` on an Observation keeps it, on anything else yields nothing.
                    return base.into_iter().filter(|n| self.is_type(n, name)).collect();
                }
                let mut out = Vec::new();
                for n in &base {
                    self.children(n, name, &mut out);
                }
                out
            }
            Expr::Call(inner, f) => {
                let base = self.eval(inner, input);
                self.call(base, f)
            }
            Expr::Index(inner, i) => self
                .eval(inner, input)
                .get(*i)
                .copied()
                .into_iter()
                .collect(),
            Expr::Is(inner, t) => {
                let base = self.eval(inner, input);
                self.is_op(&base, t)
            }
            Expr::As(inner, t) => self
                .eval(inner, input)
                .into_iter()
                .filter(|n| self.is_type(n, t))
                .collect(),
            Expr::Union(items) => {
                let mut out: Vec<Node<'a>> = Vec::new();
                for item in items {
                    for n in self.eval(item, input) {
                        if !out.iter().any(|o| same_node(o, &n)) {
                            out.push(n);
                        }
                    }
                }
                out
            }
            Expr::Eq {
                left,
                right,
                negate,
            } => {
                let l = self.eval(left, input);
                let r = self.eval(right, input);
                if l.is_empty() || r.is_empty() {
                    return Vec::new();
                }
                let eq = l.len() == r.len() && l.iter().zip(&r).all(|(a, b)| equal(a, b));
                vec![self.boolean(eq != *negate)]
            }
            Expr::And(a, b) => {
                let l = as_bool(&self.eval(a, input));
                if l == Some(false) {
                    return vec![self.boolean(false)];
                }
                let r = as_bool(&self.eval(b, input));
                match (l, r) {
                    (_, Some(false)) => vec![self.boolean(false)],
                    (Some(true), Some(true)) => vec![self.boolean(true)],
                    _ => Vec::new(),
                }
            }
            Expr::Or(a, b) => {
                let l = as_bool(&self.eval(a, input));
                if l == Some(true) {
                    return vec![self.boolean(true)];
                }
                let r = as_bool(&self.eval(b, input));
                match (l, r) {
                    (_, Some(true)) => vec![self.boolean(true)],
                    (Some(false), Some(false)) => vec![self.boolean(false)],
                    _ => Vec::new(),
                }
            }
        }
    }

    fn call(&self, base: Vec<Node<'a>>, f: &'a Func) -> Vec<Node<'a>> {
        match f {
            Func::Where(crit) => base
                .into_iter()
                .filter(|n| truthy(&self.eval(crit, &[*n])))
                .collect(),
            Func::Exists(None) => vec![self.boolean(!base.is_empty())],
            Func::Exists(Some(crit)) => {
                vec![self.boolean(base.iter().any(|n| truthy(&self.eval(crit, &[*n]))))]
            }
            Func::Empty => vec![self.boolean(base.is_empty())],
            Func::Not => as_bool(&base)
                .map(|b| self.boolean(!b))
                .into_iter()
                .collect(),
            Func::First => base.first().copied().into_iter().collect(),
            Func::Last => base.last().copied().into_iter().collect(),
            Func::Resolve => base
                .iter()
                .filter_map(|n| reference_text(n))
                .filter_map(|s| {
                    split_reference(s).map(|(t, _)| Node {
                        val: Val::Resolved(t),
                        ty: None,
                    })
                })
                .collect(),
            Func::OfType(t) | Func::As(t) => {
                base.into_iter().filter(|n| self.is_type(n, t)).collect()
            }
            Func::Is(t) => self.is_op(&base, t),
            Func::Extension(url) => {
                let mut exts = Vec::new();
                for n in &base {
                    self.children(n, "extension", &mut exts);
                }
                exts.retain(|e| matches!(e.val, Val::Json(v) if v.get("url").and_then(Value::as_str) == Some(url)));
                exts
            }
        }
    }

    /// `x is T`: defined for a single item only.
    fn is_op(&self, base: &[Node<'a>], t: &str) -> Vec<Node<'a>> {
        match base {
            [single] => vec![self.boolean(self.is_type(single, t))],
            _ => Vec::new(),
        }
    }

    fn boolean(&self, b: bool) -> Node<'a> {
        Node {
            val: Val::Bool(b),
            ty: Some(self.m.boolean),
        }
    }

    /// The children called `name` (all present variants of a choice element), typed.
    fn children(&self, node: &Node<'a>, name: &str, out: &mut Vec<Node<'a>>) {
        let (Val::Json(Value::Object(obj)), Some(ty)) = (node.val, node.ty) else {
            return;
        };
        let td = self.m.get(ty);
        let Some(child) = td.children.get(name) else {
            return;
        };
        if !child.choice {
            for var in &child.variants {
                if let Some(v) = obj.get(&var.json_name) {
                    self.push_values(v, var.ty, out);
                }
            }
            return;
        }
        // Scanning the (few) keys beats probing every variant: Extension.value[x] has 50.
        for (key, v) in obj {
            if key.len() > name.len() && key.starts_with(name) {
                if let Some((c, var)) = td.prop(key) {
                    if c.name == name {
                        self.push_values(v, var.ty, out);
                    }
                }
            }
        }
    }

    fn push_values(&self, v: &'a Value, ty: TypeId, out: &mut Vec<Node<'a>>) {
        match v {
            Value::Array(items) => {
                for item in items {
                    self.push_value(item, ty, out);
                }
            }
            other => self.push_value(other, ty, out),
        }
    }

    fn push_value(&self, v: &'a Value, ty: TypeId, out: &mut Vec<Node<'a>>) {
        if v.is_null() {
            return;
        }
        let ty = if self.m.get(ty).kind == Kind::AnyResource {
            self.m.resource_type_of(v).unwrap_or(ty)
        } else {
            ty
        };
        out.push(Node {
            val: Val::Json(v),
            ty: Some(ty),
        });
    }

    fn is_type(&self, n: &Node<'a>, name: &str) -> bool {
        match (n.val, n.ty) {
            (Val::Resolved(t), _) => {
                t == name
                    || name == "Resource"
                    || (name == "DomainResource"
                        && !matches!(t, "Bundle" | "Binary" | "Parameters"))
            }
            (_, Some(ty)) => {
                self.m.is_a(ty, name) || system_type(name).is_some_and(|p| self.m.is_a(ty, p))
            }
            (Val::Str(_), None) => matches!(name, "string" | "String"),
            (Val::Num(_), None) => matches!(name, "decimal" | "Decimal"),
            _ => false,
        }
    }
}

/// The FHIR primitive that a FHIRPath system type (`System.String`, written `String`) stands for.
fn system_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "String" => "string",
        "Boolean" => "boolean",
        "Integer" => "integer",
        "Decimal" => "decimal",
        "Date" => "date",
        "DateTime" => "dateTime",
        "Time" => "time",
        _ => return None,
    })
}

fn same_node(a: &Node<'_>, b: &Node<'_>) -> bool {
    match (a.val, b.val) {
        (Val::Json(x), Val::Json(y)) => std::ptr::eq(x, y),
        _ => false,
    }
}

#[derive(PartialEq)]
enum Prim<'a> {
    Str(&'a str),
    Bool(bool),
    Num(f64),
}

fn prim<'a>(n: &Node<'a>) -> Option<Prim<'a>> {
    if let Some(s) = n.val.as_str() {
        return Some(Prim::Str(s));
    }
    if let Some(b) = n.val.as_bool() {
        return Some(Prim::Bool(b));
    }
    match n.val {
        Val::Json(Value::Number(x)) => x.as_f64().map(Prim::Num),
        Val::Num(x) => Some(Prim::Num(x)),
        _ => None,
    }
}

fn equal(a: &Node<'_>, b: &Node<'_>) -> bool {
    if let (Val::Json(x), Val::Json(y)) = (a.val, b.val) {
        return x == y;
    }
    match (prim(a), prim(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A collection as a single boolean (FHIRPath singleton evaluation): empty is unknown.
fn as_bool(nodes: &[Node<'_>]) -> Option<bool> {
    match nodes {
        [] => None,
        [n] => Some(n.val.as_bool().unwrap_or(true)),
        _ => None,
    }
}

fn truthy(nodes: &[Node<'_>]) -> bool {
    as_bool(nodes) == Some(true)
}

/// The literal reference of a Reference node (`reference`), or a canonical/uri string.
pub(crate) fn reference_text<'a>(n: &Node<'a>) -> Option<&'a str> {
    match n.val {
        Val::Json(Value::Object(o)) => o.get("reference").and_then(Value::as_str),
        Val::Json(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// `Patient/123`, `Patient/123/_history/2` or `http://host/fhir/Patient/123` → (`Patient`, `123`), when the
/// type is a known resource type and the id is a valid id. Local (`#p1`) and conditional references give `None`.
pub(crate) fn split_reference(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('#') || s.contains('?') || s.starts_with("urn:") {
        return None;
    }
    let mut segs = s.rsplit('/');
    let mut id = segs.next()?;
    let mut ty = segs.next()?;
    if ty == "_history" {
        id = segs.next()?;
        ty = segs.next()?;
    }
    let valid_id = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (valid_id && registry().is_resource_type(ty)).then_some((ty, id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_type_and_id() {
        assert_eq!(split_reference("Patient/123"), Some(("Patient", "123")));
        assert_eq!(
            split_reference("Patient/123/_history/4"),
            Some(("Patient", "123"))
        );
        assert_eq!(
            split_reference("https://ex.org/fhir/Group/g-1"),
            Some(("Group", "g-1"))
        );
        assert_eq!(split_reference("#p1"), None);
        assert_eq!(split_reference("Patient?identifier=x|1"), None);
        assert_eq!(
            split_reference("urn:uuid:2f1c0e36-1b5e-4b3a-9d7b-0c6a3f5d8e11"),
            None
        );
        assert_eq!(split_reference("Unicorn/1"), None);
        assert_eq!(split_reference("Patient/a_b"), None);
    }
}
