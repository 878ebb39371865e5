//! The CapabilityStatement, generated from what the server really supports: every R4 resource type with the
//! same interactions, and per type the search parameters the search parser and the index extractor both
//! handle. `capability-statement.json` beside this crate is the committed copy; a test keeps them equal.

use continuum_fhir::registry::{registry, SearchParamType};
use serde_json::{json, Value};

/// Parameter types the search parser turns into store predicates.
fn searchable(kind: SearchParamType) -> bool {
    matches!(
        kind,
        SearchParamType::Reference
            | SearchParamType::Token
            | SearchParamType::String
            | SearchParamType::Date
            | SearchParamType::Uri
            | SearchParamType::Number
            | SearchParamType::Quantity
    )
}

/// The search modifiers and forms the parser accepts, by parameter type (R4 has no structured element for
/// them). Token `:above`/`:below` (subsumption) need a terminology service and are not offered.
const MODIFIERS: &str = "Search modifiers: string :exact, :contains; token :not, :text, :in, :not-in \
(ValueSets stored on this server, expanded from compose concepts and whole-system includes or a complete \
expansion), :of-type (Identifier type system|code|value); reference :[type], :identifier, chains and _has; uri \
:above, :below; every type :missing (except composites). Prefixes eq, ne, gt, lt, ge, le, sa, eb, ap on \
number, date and quantity values, also on the second component of a composite (code$value: token with \
token, quantity, date, string, reference, number or uri; the first component as system|code, code or |code), \
and MolecularSequence coordinates (token$start$end, both numbers on the same variant or window). \
Location near=latitude|longitude|distance|units (great-circle distance on a sphere of the earth's mean radius; \
units km, m, [mi_i] or [nmi_i], km when omitted; 10 km when no distance is given). _id:not. \
Quantity parameters with a UCUM system and code also match amounts of the same dimension in other units (mg \
with g, mmol/L with umol/L; not temperatures, not composites). Paging: next, previous and first links (keyset \
cursors).";

fn type_name(kind: SearchParamType) -> &'static str {
    match kind {
        SearchParamType::Number => "number",
        SearchParamType::Date => "date",
        SearchParamType::String => "string",
        SearchParamType::Token => "token",
        SearchParamType::Reference => "reference",
        SearchParamType::Composite => "composite",
        SearchParamType::Quantity => "quantity",
        SearchParamType::Uri => "uri",
        SearchParamType::Special => "special",
    }
}

/// The statement for a server whose FHIR base is `base`. Built once; only the URL differs per request.
pub fn capability_statement(base: &str) -> Value {
    static BUILT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let mut cs = BUILT.get_or_init(build).clone();
    cs["implementation"]["url"] = Value::String(base.to_string());
    // SMART on FHIR: the OAuth endpoints sit at the server's root, beside `/fhir`.
    let root = base.trim_end_matches('/');
    let root = root.strip_suffix("/fhir").unwrap_or(root);
    if let Some(uris) = cs
        .pointer_mut("/rest/0/security/extension/0/extension")
        .and_then(Value::as_array_mut)
    {
        for u in uris {
            let path = match u["url"].as_str() {
                Some("authorize") => "/oauth/authorize",
                Some("token") => "/oauth/token",
                Some("revoke") => "/oauth/revoke",
                Some("introspect") => "/oauth/introspect",
                _ => continue,
            };
            u["valueUri"] = Value::String(format!("{root}{path}"));
        }
    }
    cs
}

fn build() -> Value {
    let reg = registry();
    let interactions: Vec<Value> = [
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ]
    .iter()
    .map(|c| json!({"code": c}))
    .collect();
    let resources: Vec<Value> = reg
        .resource_types()
        .iter()
        .map(|ty| {
            let mut params = vec![
                json!({"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"}),
                json!({"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"}),
            ];
            for p in reg.search_params_for(ty) {
                let composite = p.kind == SearchParamType::Composite
                    && (continuum_fhir::fhirpath::composite_components(p).is_some()
                        || continuum_fhir::fhirpath::is_coordinate(p));
                // `_id` and `_lastUpdated` are listed above; `_tag`, `_security`, `_profile` and `_source` come
                // from the registry like any other parameter.
                let near = p.kind == SearchParamType::Special && p.code == "near";
                if matches!(p.code.as_str(), "_id" | "_lastUpdated")
                    || !(searchable(p.kind) || composite || near)
                {
                    continue;
                }
                let Some(expr) = &p.expression else { continue };
                if !continuum_fhir::fhirpath::is_supported(expr) {
                    continue;
                }
                params.push(json!({"name": p.code, "definition": p.url, "type": type_name(p.kind)}));
            }
            // `_include=Type:param` works for every reference parameter of the type; `_revinclude` for every
            // reference parameter of any type that may point here.
            let includes: Vec<String> = reg
                .search_params_for(ty)
                .filter(|p| p.kind == SearchParamType::Reference && !p.code.starts_with('_'))
                .map(|p| format!("{ty}:{}", p.code))
                .collect();
            let mut revincludes: Vec<String> = Vec::new();
            for source in reg.resource_types() {
                for p in reg.search_params_for(source) {
                    let targets_here = p.target.iter().any(|t| t == ty || t == "Resource");
                    if p.kind == SearchParamType::Reference && !p.code.starts_with('_') && targets_here {
                        revincludes.push(format!("{source}:{}", p.code));
                    }
                }
            }
            let mut resource = json!({
                "type": ty,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{ty}"),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchInclude": includes,
                "searchRevInclude": revincludes,
                "searchParam": params,
            });
            if ty == "Patient" {
                resource["operation"] = json!([{
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                }]);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "Continuum",
        "kind": "instance",
        "software": {"name": "Continuum", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Continuum FHIR R4 server", "url": ""},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "authorize", "valueUri": ""},
                        {"url": "token", "valueUri": ""},
                        {"url": "revoke", "valueUri": ""},
                        {"url": "introspect", "valueUri": ""}
                    ]
                }],
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR"
                    }],
                    "text": "OAuth 2 with SMART App Launch 2 (see /.well-known/smart-configuration)"
                }],
                "description": "Bearer tokens: SMART on FHIR access tokens (authorization code with PKCE, backend services with private_key_jwt) or API tokens issued by an administrator."
            },
            "documentation": MODIFIERS,
            "resource": resources,
            "interaction": [
                {"code": "transaction"}, {"code": "batch"}, {"code": "search-system"}, {"code": "history-system"}
            ],
            "searchParam": [
                {"name": "_id", "type": "token"},
                {"name": "_lastUpdated", "type": "date"},
                {"name": "_type", "type": "token"}
            ]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed statement must equal the generated one. Regenerate with
    /// `UPDATE_CAPABILITY=1 cargo test -p continuum-web capability`.
    #[test]
    fn committed_capability_statement_matches_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/capability-statement.json");
        let generated = capability_statement("http://localhost:8080/fhir");
        let text = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
        if std::env::var("UPDATE_CAPABILITY").is_ok() {
            std::fs::write(path, &text).unwrap_or_else(|e| panic!("write {path}: {e}"));
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == text,
            "capability-statement.json is stale: run UPDATE_CAPABILITY=1 cargo test -p continuum-web capability"
        );
    }
}
