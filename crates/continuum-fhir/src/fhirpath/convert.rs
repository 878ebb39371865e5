//! Conversion of evaluated nodes into search-index values, by search-parameter type and FHIR data type.
//!
//! Owns: which parts of a HumanName, Address, Coding, Identifier, Reference, Period, Quantity, ... a search
//! of each type matches, and the implicit precision of numbers. Does not own evaluation or storage.

use serde_json::{Map, Number, Value};

use super::eval::{split_reference, Node, Val};
use crate::datetime::date_range;
use crate::index::{normalize_string, IndexValue};
use crate::model::{model, Kind};
use crate::registry::SearchParamType;

const ISO_4217: &str = "urn:iso:std:iso:4217";

/// Append the index values of one node for a parameter of type `kind`. Nodes of a type the parameter type
/// cannot index (a Range for a date, an Age for a string) add nothing.
pub(crate) fn convert(kind: SearchParamType, node: &Node<'_>, out: &mut Vec<IndexValue>) {
    let m = model();
    let ty = node.ty.map(|t| m.get(t));
    let code = ty.map_or("", |t| t.code.as_str());
    let is_resource = ty.is_some_and(|t| t.kind == Kind::Resource);
    if let Some(s) = node.val.as_str() {
        return convert_str(kind, code, s, out);
    }
    if let Some(b) = node.val.as_bool() {
        if kind == SearchParamType::Token {
            out.push(token(None, if b { "true" } else { "false" }, None));
        }
        return;
    }
    match (kind, node.val) {
        (SearchParamType::Special, Val::Json(Value::Object(o))) => {
            // Location.position: WGS84 decimal degrees
            let (Some(latitude), Some(longitude)) = (
                o.get("latitude").and_then(Value::as_f64),
                o.get("longitude").and_then(Value::as_f64),
            ) else {
                return;
            };
            if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) {
                out.push(IndexValue::Position {
                    latitude,
                    longitude,
                });
            }
        }
        (SearchParamType::String, Val::Json(Value::Object(o))) => {
            let fields: &[&str] = match code {
                "HumanName" => &["family", "given", "text", "prefix", "suffix"],
                "Address" => &[
                    "line",
                    "city",
                    "district",
                    "state",
                    "postalCode",
                    "country",
                    "text",
                ],
                _ => &[],
            };
            for f in fields {
                for s in strings(o, f) {
                    push_string(s, out);
                }
            }
        }
        (SearchParamType::Token, Val::Json(Value::Number(n))) => {
            out.push(token(None, &n.to_string(), None))
        }
        (SearchParamType::Token, Val::Json(Value::Object(o))) => token_object(code, o, out),
        (SearchParamType::Reference, Val::Json(Value::Object(o))) if is_resource => {
            // `Bundle.entry[0].resource`: the resource itself stands for a reference to it.
            if let Some(id) = o.get("id").and_then(Value::as_str) {
                out.push(IndexValue::Reference {
                    target_type: Some(code.to_string()),
                    target_id: Some(id.to_string()),
                    url: None,
                });
            }
        }
        (SearchParamType::Reference, Val::Json(Value::Object(o))) if code == "Reference" => {
            if let Some(r) = o.get("reference").and_then(Value::as_str) {
                out.extend(reference(r));
            }
            // `Reference.identifier`, for the `:identifier` modifier: indexed as a token under the same
            // parameter (the token table), never as a reference.
            if let Some(Value::Object(id)) = o.get("identifier") {
                if let Some(value) = id
                    .get("value")
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                {
                    out.push(token(str_field(id, "system"), value, None));
                }
            }
        }
        (SearchParamType::Date, Val::Json(Value::Object(o))) => match code {
            "Period" => out.extend(period(o)),
            "Timing" => {
                for s in strings(o, "event") {
                    if let Some((low, high)) = date_range(s) {
                        out.push(IndexValue::Date { low, high });
                    }
                }
            }
            _ => {}
        },
        (SearchParamType::Number, Val::Json(Value::Number(n))) => {
            if let Some((value, low, high)) = number_range(n) {
                out.push(IndexValue::Number { value, low, high });
            }
        }
        (SearchParamType::Quantity, Val::Json(Value::Object(o))) => match code {
            // SimpleQuantity and MoneyQuantity are profiles: the definitions type those elements Quantity.
            "Quantity" | "Age" | "Duration" | "Distance" | "Count" => {
                out.extend(quantity(o));
            }
            "Money" => {
                if let Some((value, low, high)) = o
                    .get("value")
                    .and_then(Value::as_number)
                    .and_then(number_range)
                {
                    out.push(IndexValue::Quantity {
                        value,
                        low,
                        high,
                        system: Some(ISO_4217.to_string()),
                        code: str_field(o, "currency"),
                        unit: None,
                    });
                }
            }
            "Range" => out.extend(range(o)),
            _ => {}
        },
        _ => {}
    }
}

/// A string-valued node (any primitive written as a JSON string, or a string literal).
fn convert_str(kind: SearchParamType, code: &str, s: &str, out: &mut Vec<IndexValue>) {
    if s.is_empty() {
        return;
    }
    match kind {
        SearchParamType::String => push_string(s, out),
        SearchParamType::Token => out.push(token(None, s, None)),
        // A canonical or uri for a reference parameter: searched by its URL without `|version` (a relative
        // one, `Questionnaire/q1`, by that `Type/id`).
        SearchParamType::Reference => {
            if s.starts_with('#') {
                return;
            }
            let bare = s.split_once('|').map_or(s, |(url, _)| url);
            let absolute = bare.contains("://") || bare.starts_with("urn:");
            let parts = (!absolute).then(|| split_reference(bare)).flatten();
            out.push(IndexValue::Reference {
                target_type: parts.map(|(t, _)| t.to_string()),
                target_id: Some(parts.map_or(bare, |(_, id)| id).to_string()),
                url: Some(s.to_string()),
            });
        }
        // A `string` choice on a date parameter (`CarePlan.activity.detail.scheduledString`,
        // `Procedure.performedString`) is free text, but when it is written as a FHIR date or dateTime a user
        // searching that date expects to find it; text that is not a date ("every morning") is left out.
        SearchParamType::Date if matches!(code, "date" | "dateTime" | "instant" | "string") => {
            if let Some((low, high)) = date_range(s) {
                out.push(IndexValue::Date { low, high });
            }
        }
        SearchParamType::Uri => out.push(IndexValue::Uri {
            value: s.to_string(),
        }),
        _ => {}
    }
}

fn push_string(s: &str, out: &mut Vec<IndexValue>) {
    let normalized = normalize_string(s);
    if !normalized.is_empty() {
        out.push(IndexValue::String {
            normalized,
            exact: s.to_string(),
        });
    }
}

/// The string values of a property that is a string or an array of strings.
fn strings<'a>(o: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a str> + 'a {
    let v = o.get(key);
    let single = v.and_then(Value::as_str);
    let many = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    single.into_iter().chain(many)
}

fn str_field(o: &Map<String, Value>, key: &str) -> Option<String> {
    o.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn token(system: Option<String>, code: &str, text: Option<String>) -> IndexValue {
    IndexValue::Token {
        system,
        code: code.to_string(),
        text,
    }
}

fn token_object(code: &str, o: &Map<String, Value>, out: &mut Vec<IndexValue>) {
    match code {
        "Coding" => out.extend(coding(o, None)),
        "CodeableConcept" => {
            let text = o.get("text").and_then(Value::as_str);
            for c in o
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(c) = c.as_object() {
                    out.extend(coding(c, text));
                }
            }
        }
        "Identifier" => {
            if let Some(value) = o
                .get("value")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            {
                let text = o
                    .get("type")
                    .and_then(|t| t.get("text"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                out.push(token(str_field(o, "system"), value, text));
            }
        }
        // ContactPoint.system is `phone`/`email`, not a code system: the value is searched on its own.
        "ContactPoint" => {
            if let Some(value) = o
                .get("value")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            {
                out.push(token(None, value, None));
            }
        }
        _ => {}
    }
}

fn coding(c: &Map<String, Value>, concept_text: Option<&str>) -> Option<IndexValue> {
    let code = c
        .get("code")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())?;
    let text = concept_text
        .or_else(|| c.get("display").and_then(Value::as_str))
        .map(str::to_string);
    Some(token(str_field(c, "system"), code, text))
}

/// A literal reference as an index value; local (`#id`) references are not indexed.
fn reference(r: &str) -> Option<IndexValue> {
    if r.is_empty() || r.starts_with('#') {
        return None;
    }
    // An absolute URL points at another server (a transaction's own full URLs are made relative before
    // storing), so it is not a local `Type/id`: it is matched by its whole text, not followed by chains,
    // includes or compartments. So is any other text that is not `Type/id` (`urn:uuid:…`).
    let absolute = r.contains("://") || r.starts_with("urn:");
    let parts = (!absolute).then(|| split_reference(r)).flatten();
    Some(IndexValue::Reference {
        target_type: parts.map(|(t, _)| t.to_string()),
        target_id: Some(parts.map_or(r, |(_, id)| id).to_string()),
        url: (absolute || parts.is_none()).then(|| r.to_string()),
    })
}

fn period(o: &Map<String, Value>) -> Option<IndexValue> {
    let start = o.get("start").and_then(Value::as_str);
    let end = o.get("end").and_then(Value::as_str);
    if start.is_none() && end.is_none() {
        return None;
    }
    let low = match start {
        Some(s) => date_range(s)?.0,
        None => i64::MIN,
    };
    let high = match end {
        Some(s) => date_range(s)?.1,
        None => i64::MAX,
    };
    Some(IndexValue::Date { low, high })
}

fn quantity(o: &Map<String, Value>) -> Option<IndexValue> {
    let (value, low, high) = number_range(o.get("value")?.as_number()?)?;
    Some(IndexValue::Quantity {
        value,
        low,
        high,
        system: str_field(o, "system"),
        code: str_field(o, "code"),
        unit: str_field(o, "unit"),
    })
}

/// A Range as one quantity spanning from the low bound's lower edge to the high bound's upper edge (an open end
/// is ±f64::MAX). `value` is the low value when present, else the high one; the unit comes from the same side.
fn range(o: &Map<String, Value>) -> Option<IndexValue> {
    let low = o.get("low").and_then(Value::as_object).and_then(quantity);
    let high = o.get("high").and_then(Value::as_object).and_then(quantity);
    let lo_edge = match &low {
        Some(IndexValue::Quantity { low, .. }) => *low,
        _ => f64::MIN,
    };
    let hi_edge = match &high {
        Some(IndexValue::Quantity { high, .. }) => *high,
        _ => f64::MAX,
    };
    match low.or(high)? {
        IndexValue::Quantity {
            value,
            system,
            code,
            unit,
            ..
        } => Some(IndexValue::Quantity {
            value,
            low: lo_edge,
            high: hi_edge,
            system,
            code,
            unit,
        }),
        _ => None,
    }
}

/// A JSON number with its implicit precision range: `100` → [99.5, 100.5), `1.5` → [1.45, 1.55).
///
/// The precision comes from the number's text as serde_json keeps it; trailing zeros of a decimal (`1.50`) are
/// lost in parsing (serde_json without `arbitrary_precision`), so `1.50` is treated like `1.5`.
pub(crate) fn number_range(n: &Number) -> Option<(f64, f64, f64)> {
    let v = n.as_f64()?;
    let text = n.to_string();
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text.as_str(), 0),
    };
    let decimals = mantissa.find('.').map_or(0, |i| mantissa.len() - i - 1) as i32;
    let half = 0.5 * 10f64.powi(exp - decimals);
    Some((v, v - half, v + half))
}

/// The `:of-type` values of an Identifier node: one token per coding of `Identifier.type`, with the coding's
/// system and `code|value` as the code (searched as `typesystem|code|value`). Other nodes add nothing.
pub(crate) fn identifier_of_type(node: &Node<'_>, out: &mut Vec<IndexValue>) {
    let m = model();
    let is_identifier = node.ty.is_some_and(|t| m.get(t).code == "Identifier");
    let (true, Val::Json(Value::Object(o))) = (is_identifier, node.val) else {
        return;
    };
    let Some(value) = o
        .get("value")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    let codings = o
        .get("type")
        .and_then(|t| t.get("coding"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object);
    for c in codings {
        if let Some(code) = c
            .get("code")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            out.push(token(
                str_field(c, "system"),
                &format!("{code}|{value}"),
                None,
            ));
        }
    }
}
