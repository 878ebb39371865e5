//! Structural validation of resources against the R4 definitions (the server answers 422 with the issues).
//!
//! Owns: the JSON shape rules of FHIR R4 — known elements only, choice variants limited to the allowed types,
//! arrays exactly where the cardinality allows more than one, primitive JSON kinds and formats (the regexes of
//! `structures.json`, plus a calendar check), no empty objects/arrays/strings or nulls, `_element` siblings for
//! primitive extensions, required elements wherever their parent is present, and contained / Bundle / Parameters
//! resources recursively. Does not own: invariants (FHIRPath constraints such as `dom-2` or `ext-1`), terminology
//! bindings, profiles or reference resolution.
//!
//! Diagnostics name elements and types, never the submitted values (they may hold PHI).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::datetime::date_range;
use crate::model::{model, Child, Kind, Model, TypeId, Variant};
use crate::outcome::{Issue, IssueSeverity, IssueType};
use crate::registry::registry;

/// Enough issues to fix a resource in one round trip, without a hostile payload producing a huge response.
const MAX_ISSUES: usize = 100;

/// Validate a resource's structure. `Err` holds one issue per problem, each with the FHIRPath location.
pub fn validate_resource(resource: &Value) -> Result<(), Vec<Issue>> {
    let mut v = Validator {
        m: model(),
        issues: Vec::new(),
    };
    v.resource(resource, None);
    if v.issues.is_empty() {
        Ok(())
    } else {
        Err(v.issues)
    }
}

/// Anchored, compiled primitive regexes, built once.
fn primitive_regexes() -> &'static HashMap<String, Regex> {
    static REGEXES: OnceLock<HashMap<String, Regex>> = OnceLock::new();
    REGEXES.get_or_init(|| {
        registry()
            .primitive_regex
            .iter()
            .filter_map(|(name, re)| {
                let re = Regex::new(&format!("^(?:{})$", re.as_deref()?)).ok()?;
                Some((name.clone(), re))
            })
            .collect()
    })
}

struct Validator {
    m: &'static Model,
    issues: Vec<Issue>,
}

impl Validator {
    fn issue(&mut self, code: IssueType, loc: &str, diagnostics: String) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(Issue {
                severity: IssueSeverity::Error,
                code,
                diagnostics,
                expression: (!loc.is_empty()).then(|| loc.to_string()),
            });
        }
    }

    /// A resource at `loc` (`None` for the top level, whose location is its type name).
    fn resource(&mut self, value: &Value, loc: Option<&str>) {
        let at = loc.unwrap_or("");
        let Some(obj) = value.as_object() else {
            return self.issue(
                IssueType::Structure,
                at,
                "a resource must be a JSON object".into(),
            );
        };
        let rt = match obj.get("resourceType") {
            None => {
                let l = join(at, "resourceType");
                return self.issue(IssueType::Required, &l, "resourceType is missing".into());
            }
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                let l = join(at, "resourceType");
                return self.issue(
                    IssueType::Structure,
                    &l,
                    "resourceType must be a string".into(),
                );
            }
        };
        let ty = match self.m.type_id(rt) {
            Some(ty) if self.m.get(ty).kind == Kind::Resource => ty,
            _ => {
                let shown = if is_plain_name(rt) {
                    format!("'{rt}'")
                } else {
                    "the resourceType".into()
                };
                return self.issue(
                    IssueType::Structure,
                    at,
                    format!("{shown} is not a known resource type"),
                );
            }
        };
        if self.m.get(ty).is_abstract {
            return self.issue(
                IssueType::Structure,
                at,
                format!("{rt} is abstract and cannot be instantiated"),
            );
        }
        let path = loc.map_or_else(|| rt.to_string(), str::to_string);
        self.object(obj, ty, &path, true);
    }

    /// The properties of an object of (complex or resource) type `ty`.
    fn object(&mut self, obj: &Map<String, Value>, ty: TypeId, path: &str, is_resource: bool) {
        let m = self.m;
        let td = m.get(ty);
        if obj.is_empty() {
            return self.issue(
                IssueType::Structure,
                path,
                "empty objects are not allowed".into(),
            );
        }
        for (key, val) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                self.primitive_extension(obj, ty, base, val, path);
                continue;
            }
            let Some((child, var)) = td.prop(key) else {
                self.issue(
                    IssueType::Structure,
                    &join(path, key),
                    format!("unknown element '{key}' in {}", td.code),
                );
                continue;
            };
            let loc = element_loc(path, child, var);
            if child.max_zero {
                self.issue(
                    IssueType::Structure,
                    &loc,
                    format!("element '{key}' is not allowed"),
                );
                continue;
            }
            // Why the resource id is special: the R4 snapshot types Resource.id as string, but it must be an id.
            let is_resource_id = is_resource && key == "id";
            match (child.array, val) {
                (true, Value::Array(items)) if items.is_empty() => {
                    self.issue(
                        IssueType::Structure,
                        &loc,
                        "empty arrays are not allowed".into(),
                    );
                }
                (true, Value::Array(items)) => {
                    let ext = obj.get(&format!("_{key}")).and_then(Value::as_array);
                    for (i, item) in items.iter().enumerate() {
                        let item_loc = format!("{loc}[{i}]");
                        // A null in a primitive array is a placeholder when `_key` has the extension at that index.
                        let placeholder = item.is_null()
                            && m.get(var.ty).kind == Kind::Primitive
                            && ext.and_then(|e| e.get(i)).is_some_and(|e| !e.is_null());
                        if !placeholder {
                            self.value(item, var, &item_loc, false);
                        }
                    }
                }
                (true, _) => self.issue(
                    IssueType::Structure,
                    &loc,
                    format!(
                        "element '{key}' must be an array (its cardinality allows several values)"
                    ),
                ),
                (false, Value::Array(_)) => {
                    self.issue(
                        IssueType::Structure,
                        &loc,
                        format!("element '{key}' must be a single value, not an array"),
                    );
                }
                (false, _) => self.value(val, var, &loc, is_resource_id),
            }
        }
        // Minimum cardinalities are deliberately not enforced: they are conformance rules rather than structure,
        // and real data (HL7's own published definitions among them) misses some. Rejecting such data would
        // lose it; unknown elements, wrong types and bad primitive formats are what make a resource unreadable.
    }

    fn value(&mut self, val: &Value, var: &Variant, loc: &str, is_resource_id: bool) {
        let td = self.m.get(var.ty);
        match td.kind {
            Kind::Primitive => {
                let code = if is_resource_id {
                    "id"
                } else {
                    td.code.as_str()
                };
                self.primitive(val, code, loc);
            }
            Kind::Complex => match val {
                Value::Object(o) => self.object(o, var.ty, loc, false),
                Value::Null => self.issue(IssueType::Structure, loc, "null is not allowed".into()),
                _ => self.issue(
                    IssueType::Structure,
                    loc,
                    format!("a {} must be a JSON object", td.code),
                ),
            },
            Kind::Resource | Kind::AnyResource => self.resource(val, Some(loc)),
        }
    }

    fn primitive(&mut self, val: &Value, code: &str, loc: &str) {
        match (code, val) {
            (_, Value::Null) => self.issue(IssueType::Structure, loc, "null is not allowed".into()),
            ("boolean", Value::Bool(_)) => {}
            ("boolean", _) => self.issue(
                IssueType::Structure,
                loc,
                "a boolean must be JSON true or false".into(),
            ),
            ("integer" | "positiveInt" | "unsignedInt", Value::Number(n)) => {
                let min = match code {
                    "positiveInt" => 1,
                    "unsignedInt" => 0,
                    _ => i64::from(i32::MIN),
                };
                let ok = n
                    .as_i64()
                    .is_some_and(|i| (min..=i64::from(i32::MAX)).contains(&i));
                if !ok {
                    self.issue(
                        IssueType::Value,
                        loc,
                        format!("value is not a valid {code} (a 32-bit whole number)"),
                    );
                }
            }
            ("decimal", Value::Number(_)) => {}
            ("integer" | "positiveInt" | "unsignedInt" | "decimal", _) => {
                self.issue(
                    IssueType::Structure,
                    loc,
                    format!("a {code} must be a JSON number"),
                );
            }
            (_, Value::String(s)) if s.is_empty() => {
                self.issue(
                    IssueType::Value,
                    loc,
                    "empty strings are not allowed".into(),
                );
            }
            (_, Value::String(s)) => {
                // string, markdown and code are not held to their regexes: HL7's own published data has
                // non-breaking spaces and doubled spaces in them, and rejecting text over whitespace loses data.
                let lenient = matches!(code, "string" | "markdown" | "code");
                let format_ok = lenient
                    || primitive_regexes()
                        .get(code)
                        .is_none_or(|re| re.is_match(s));
                let calendar_ok =
                    !matches!(code, "date" | "dateTime" | "instant") || date_range(s).is_some();
                if !(format_ok && calendar_ok) {
                    self.issue(
                        IssueType::Value,
                        loc,
                        format!("value is not a valid {code}"),
                    );
                }
            }
            _ => self.issue(
                IssueType::Structure,
                loc,
                format!("a {code} must be a JSON string"),
            ),
        }
    }

    /// `_birthDate` / `_given`: the id and extensions of a primitive element.
    fn primitive_extension(
        &mut self,
        obj: &Map<String, Value>,
        ty: TypeId,
        base: &str,
        val: &Value,
        path: &str,
    ) {
        let m = self.m;
        let key_loc = join(path, &format!("_{base}"));
        let Some((child, var)) = m.get(ty).prop(base) else {
            return self.issue(
                IssueType::Structure,
                &key_loc,
                format!("unknown element '_{base}'"),
            );
        };
        if m.get(var.ty).kind != Kind::Primitive {
            return self.issue(
                IssueType::Structure,
                &key_loc,
                format!("'_{base}' is only allowed for primitive elements"),
            );
        }
        let loc = element_loc(path, child, var);
        match (child.array, val) {
            (true, Value::Array(items)) => {
                if let Some(values) = obj.get(base).and_then(Value::as_array) {
                    if values.len() != items.len() {
                        self.issue(
                            IssueType::Structure,
                            &key_loc,
                            format!("'_{base}' must have as many entries as '{base}'"),
                        );
                    }
                }
                if items.is_empty() || items.iter().all(Value::is_null) {
                    self.issue(
                        IssueType::Structure,
                        &key_loc,
                        format!("'_{base}' has no content"),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        self.element(item, var.ty, &format!("{loc}[{i}]"));
                    }
                }
            }
            (true, _) => self.issue(
                IssueType::Structure,
                &key_loc,
                format!("'_{base}' must be an array"),
            ),
            (false, Value::Array(_)) => {
                self.issue(
                    IssueType::Structure,
                    &key_loc,
                    format!("'_{base}' must be a single object"),
                );
            }
            (false, v) => self.element(v, var.ty, &loc),
        }
    }

    /// The `{id, extension}` object of a primitive.
    fn element(&mut self, val: &Value, primitive: TypeId, loc: &str) {
        let Some(o) = val.as_object() else {
            return self.issue(
                IssueType::Structure,
                loc,
                "primitive extensions must be a JSON object".into(),
            );
        };
        if o.contains_key("value") {
            self.issue(
                IssueType::Structure,
                &join(loc, "value"),
                "unknown element 'value'".into(),
            );
        }
        self.object(o, primitive, loc, false);
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The FHIRPath location of a property: `Patient.name`, or `Observation.value.ofType(Quantity)` for a choice.
fn element_loc(path: &str, child: &Child, var: &Variant) -> String {
    if child.choice {
        format!("{path}.{}.ofType({})", child.name, var.type_code)
    } else {
        join(path, &child.name)
    }
}

/// Whether a client-supplied type name is safe to echo (letters only, short).
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests;
