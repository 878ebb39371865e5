//! The type model shared by the validator and the FHIRPath evaluator: the flat element lists of
//! `structures.json` compiled once into a graph of types with their children.
//!
//! Owns: resolving element paths (`"contact.name"`), inline backbone elements, content references
//! (`"ref": "Questionnaire.item"`) and choice elements (`value[x]` → `valueQuantity`, `valueString`, ...) into
//! type ids. Does not own: any checking or evaluation; those live in `validate` and `fhirpath`.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::registry::{registry, Registry};

/// Index into [`Model::types`].
pub(crate) type TypeId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `string`, `date`, ...: the JSON value itself is the value.
    Primitive,
    /// A data type (`HumanName`) or an inline backbone element (`Observation.component`).
    Complex,
    /// A concrete or abstract resource type.
    Resource,
    /// An element typed `Resource` (`contained`, `Bundle.entry.resource`): the actual type comes from the
    /// JSON's `resourceType`.
    AnyResource,
}

#[derive(Debug)]
pub(crate) struct TypeDef {
    /// The FHIR type name FHIRPath sees (`BackboneElement` for inline elements).
    pub code: String,
    pub kind: Kind,
    pub is_abstract: bool,
    /// The base type, followed by `is`/`as` so an `Age` is a `Quantity`.
    pub base: Option<TypeId>,
    pub children: HashMap<String, Child>,
    /// JSON property name (`valueQuantity`) → (child name, variant index).
    pub props: HashMap<String, (String, usize)>,
    /// Names of the children with `min >= 1`, sorted (so issues come out in a stable order).
    pub required: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Child {
    /// Name without `[x]`.
    pub name: String,
    pub min: u32,
    pub max_zero: bool,
    pub array: bool,
    pub choice: bool,
    pub variants: Vec<Variant>,
}

#[derive(Debug)]
pub(crate) struct Variant {
    /// The JSON property name (`value` or `valueQuantity`).
    pub json_name: String,
    /// The type code as written in the definition (`Quantity`, `dateTime`).
    pub type_code: String,
    pub ty: TypeId,
}

pub(crate) struct Model {
    pub types: Vec<TypeDef>,
    by_name: HashMap<String, TypeId>,
    pub boolean: TypeId,
}

/// The process-wide model, built from [`registry()`] on first use.
pub(crate) fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::build(registry()))
}

impl Model {
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, id: TypeId) -> &TypeDef {
        &self.types[id]
    }

    /// The type of a JSON resource, from its `resourceType`.
    pub fn resource_type_of(&self, value: &serde_json::Value) -> Option<TypeId> {
        let name = value.get("resourceType")?.as_str()?;
        let id = self.type_id(name)?;
        (self.types[id].kind == Kind::Resource).then_some(id)
    }

    /// True when type `id` is `name` or derives from it. `Resource` matches every resource.
    pub fn is_a(&self, id: TypeId, name: &str) -> bool {
        let mut cur = Some(id);
        while let Some(t) = cur {
            let def = &self.types[t];
            if def.code == name {
                return true;
            }
            if def.kind == Kind::Resource && name == "Resource" {
                return true;
            }
            // Why primitives stop here: `canonical` derives from `uri` and `code` from `string`, but the R4
            // search expressions use `as uri` / `as canonical` to pick one variant of a choice element.
            if def.kind == Kind::Primitive {
                return false;
            }
            cur = def.base;
        }
        false
    }

    fn build(reg: &Registry) -> Model {
        let mut types: Vec<TypeDef> = Vec::new();
        let mut by_name: HashMap<String, TypeId> = HashMap::new();
        let mut names: Vec<&String> = reg.structures.keys().collect();
        names.sort();
        // First pass: one type per structure and per inline element, so references can be resolved in the
        // second pass regardless of order.
        for name in &names {
            let Some(s) = reg.structure(name) else {
                continue;
            };
            let kind = match s.kind.as_str() {
                "primitive-type" => Kind::Primitive,
                "resource" => Kind::Resource,
                _ => Kind::Complex,
            };
            by_name.insert((*name).clone(), types.len());
            types.push(TypeDef::new(name, kind, s.is_abstract));
            // An element with children listed under its path is an inline (backbone) element.
            let parents: std::collections::BTreeSet<&str> = s
                .elements
                .keys()
                .filter_map(|k| k.rfind('.').map(|i| &k[..i]))
                .collect();
            for path in s.elements.keys() {
                if parents.contains(path.as_str()) {
                    let full = format!("{name}.{path}");
                    by_name.insert(full.clone(), types.len());
                    types.push(TypeDef::new("BackboneElement", Kind::Complex, false));
                }
            }
        }
        let any_resource = types.len();
        types.push(TypeDef::new("Resource", Kind::AnyResource, true));
        for (name, s) in &reg.structures {
            if let (Some(&id), Some(base)) = (by_name.get(name), s.base.as_ref()) {
                types[id].base = by_name.get(base).copied();
            }
        }
        // Second pass: children.
        for name in &names {
            let Some(s) = reg.structure(name) else {
                continue;
            };
            for (path, def) in &s.elements {
                let (parent, last) = match path.rfind('.') {
                    Some(i) => (format!("{name}.{}", &path[..i]), &path[i + 1..]),
                    None => ((*name).clone(), path.as_str()),
                };
                let Some(&parent_id) = by_name.get(&parent) else {
                    continue;
                };
                let (child_name, choice) = match last.strip_suffix("[x]") {
                    Some(n) => (n.to_string(), true),
                    None => (last.to_string(), false),
                };
                let full = format!("{name}.{path}");
                let mut variants = Vec::new();
                if let Some(&inline) = by_name.get(&full) {
                    variants.push(Variant {
                        json_name: child_name.clone(),
                        type_code: "BackboneElement".into(),
                        ty: inline,
                    });
                } else if let Some(target) = &def.content_ref {
                    if let Some(&ty) = by_name.get(target) {
                        variants.push(Variant {
                            json_name: child_name.clone(),
                            type_code: "BackboneElement".into(),
                            ty,
                        });
                    }
                } else {
                    for code in &def.types {
                        let ty = if code == "Resource" {
                            Some(any_resource)
                        } else {
                            by_name.get(code).copied()
                        };
                        let Some(ty) = ty else { continue };
                        let json_name = if choice {
                            format!("{child_name}{}", capitalize(code))
                        } else {
                            child_name.clone()
                        };
                        variants.push(Variant {
                            json_name,
                            type_code: code.clone(),
                            ty,
                        });
                    }
                }
                let td = &mut types[parent_id];
                for (i, v) in variants.iter().enumerate() {
                    td.props
                        .insert(v.json_name.clone(), (child_name.clone(), i));
                }
                td.children.insert(
                    child_name.clone(),
                    Child {
                        name: child_name,
                        min: def.min,
                        max_zero: def.max == "0",
                        array: def.is_array(),
                        choice,
                        variants,
                    },
                );
            }
        }
        for td in &mut types {
            let mut required: Vec<String> = td
                .children
                .values()
                .filter(|c| c.min >= 1 && !c.max_zero)
                .map(|c| c.name.clone())
                .collect();
            required.sort();
            td.required = required;
        }
        let boolean = by_name.get("boolean").copied().unwrap_or(any_resource);
        Model {
            types,
            by_name,
            boolean,
        }
    }
}

impl TypeDef {
    fn new(code: &str, kind: Kind, is_abstract: bool) -> TypeDef {
        TypeDef {
            code: code.to_string(),
            kind,
            is_abstract,
            base: None,
            children: HashMap::new(),
            props: HashMap::new(),
            required: Vec::new(),
        }
    }

    /// The child and variant a JSON property name denotes (`valueQuantity` → `value`, Quantity).
    pub fn prop(&self, json_name: &str) -> Option<(&Child, &Variant)> {
        let (child, i) = self.props.get(json_name)?;
        let c = self.children.get(child)?;
        Some((c, c.variants.get(*i)?))
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn resolves_choices_backbones_and_content_references() {
        let m = model();
        let obs = m.get(m.type_id("Observation").unwrap());
        let (value, qty) = obs.prop("valueQuantity").unwrap();
        assert!(value.choice && !value.array);
        assert_eq!(m.get(qty.ty).code, "Quantity");
        assert!(obs.prop("valueFoo").is_none());
        let comp = &obs.children["component"];
        assert!(comp.array);
        let comp_def = m.get(comp.variants[0].ty);
        assert_eq!(comp_def.code, "BackboneElement");
        // component.referenceRange has the children of Observation.referenceRange.
        let rr = comp_def.prop("referenceRange").unwrap().1.ty;
        assert!(m.get(rr).children.contains_key("low"));
        // Resource-level elements are in every concrete resource's snapshot.
        for name in [
            "id",
            "meta",
            "implicitRules",
            "language",
            "text",
            "contained",
            "extension",
        ] {
            assert!(obs.children.contains_key(name), "{name}");
        }
        // Timing.repeat is typed `Element` with inline children.
        let timing = m.get(m.type_id("Timing").unwrap());
        let repeat = m.get(timing.prop("repeat").unwrap().1.ty);
        assert!(repeat.prop("boundsPeriod").is_some());
        assert_eq!(
            m.get(obs.prop("contained").unwrap().1.ty).kind,
            Kind::AnyResource
        );
    }

    #[test]
    fn subtypes() {
        let m = model();
        let age = m.type_id("Age").unwrap();
        assert!(m.is_a(age, "Quantity"));
        let canonical = m.type_id("canonical").unwrap();
        assert!(!m.is_a(canonical, "uri"));
        let patient = m.type_id("Patient").unwrap();
        assert!(m.is_a(patient, "DomainResource"));
        assert!(m.is_a(patient, "Resource"));
        assert!(!m.is_a(patient, "Observation"));
    }
}
