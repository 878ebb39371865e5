//! Which top-level elements of a resource an expression reads, so a caller that needs one parameter's values
//! of a stored body (the Patient compartment for audit records) can parse only those members instead of the
//! whole resource. Parsing every match of a search page into a full `Value` was a tenth of a search's time.

use std::collections::BTreeSet;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::parse::{Expr, Func};

/// Add the top-level element names `e` reads to `out`; `Some(true)` when its result may be the resource itself,
/// `None` when it may read anything (then the whole resource must be parsed).
pub(super) fn reads(e: &Expr, out: &mut BTreeSet<String>) -> Option<bool> {
    match e {
        Expr::This | Expr::Root => Some(true),
        Expr::Lit(_) => Some(false),
        Expr::Child(inner, name) => {
            if !reads(inner, out)? {
                return Some(false);
            }
            // an upper-case name on the resource is a type filter (`Observation.subject`): still the resource
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                Some(true)
            } else {
                out.insert(name.clone());
                Some(false)
            }
        }
        Expr::Call(inner, f) => {
            let root = reads(inner, out)?;
            match f {
                Func::Where(p) | Func::Exists(Some(p)) => {
                    // evaluated on the input's items: only a root input or `%resource` reaches further
                    if root || mentions_root(p) {
                        return None;
                    }
                    Some(false)
                }
                Func::Extension(_) if root => {
                    out.insert("extension".into());
                    Some(false)
                }
                Func::OfType(_) | Func::As(_) | Func::First | Func::Last => Some(root),
                _ if root => None,
                _ => Some(false),
            }
        }
        Expr::Index(inner, _) | Expr::As(inner, _) => reads(inner, out),
        Expr::Is(inner, _) => reads(inner, out).map(|_| false),
        Expr::Union(items) => {
            let mut root = false;
            for i in items {
                root |= reads(i, out)?;
            }
            Some(root)
        }
        Expr::Eq { left, right, .. } | Expr::And(left, right) | Expr::Or(left, right) => {
            reads(left, out)?;
            reads(right, out)?;
            Some(false)
        }
    }
}

fn mentions_root(e: &Expr) -> bool {
    match e {
        Expr::Root => true,
        Expr::This | Expr::Lit(_) => false,
        Expr::Child(i, _) | Expr::Index(i, _) | Expr::Is(i, _) | Expr::As(i, _) => mentions_root(i),
        Expr::Call(i, f) => {
            mentions_root(i)
                || match f {
                    Func::Where(p) | Func::Exists(Some(p)) => mentions_root(p),
                    _ => false,
                }
        }
        Expr::Union(items) => items.iter().any(mentions_root),
        Expr::Eq { left, right, .. } | Expr::And(left, right) | Expr::Or(left, right) => {
            mentions_root(left) || mentions_root(right)
        }
    }
}

/// Parse a JSON object, building values only for the members whose name `keep` accepts; the others are
/// checked as JSON and skipped.
pub fn parse_members(body: &[u8], keep: &dyn Fn(&str) -> bool) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = Members(keep).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

struct Members<'k>(&'k dyn Fn(&str) -> bool);

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if (self.0)(&key) {
                let v: Value = map.next_value()?;
                out.insert(key, v);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }
}
