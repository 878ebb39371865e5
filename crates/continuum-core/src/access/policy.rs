//! The access policy as data: role permissions (SMART v2 scopes), whose records each role reaches, the
//! sensitivity labels hidden from adolescents' parents, and the proxy age bands. Sites change the JSON, not
//! the code (PRODUCT.md P9: some sources put the adolescent boundary at 13).

use std::collections::BTreeMap;

use continuum_fhir::registry::registry;
use continuum_store::Filter;
use serde::Deserialize;

use super::Interaction;
use crate::fhir::{parse_search, Handling};
use crate::CoreError;

/// The policy Continuum ships with (`crates/continuum-core/policy/default.json`).
pub const DEFAULT_POLICY: &str = include_str!("../../policy/default.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub system: String,
    pub code: String,
    #[serde(default)]
    pub display: String,
}

/// What a proxy sees of the patient they act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sees {
    All,
    NotSensitive,
    Nothing,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AgeBand {
    pub from_years: u32,
    /// Exclusive; open-ended when absent.
    #[serde(default)]
    pub to_years: Option<u32>,
    pub parent_sees: Sees,
}

/// Whose records a staff role reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReachKind {
    /// Every patient (pharmacy, scheduling, public health, administration: their scopes limit the types).
    All,
    /// Patients in a care relationship: the user is their PCM, or works for their managing organisation.
    Care,
    /// No patient's records.
    None,
}

#[derive(Debug, Clone, Deserialize)]
struct RoleDoc {
    scopes: Vec<String>,
    reach: ReachKind,
}

#[derive(Debug, Clone, Deserialize)]
struct LevelDoc {
    scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PolicyDoc {
    sensitive_labels: Vec<Label>,
    proxy_age_bands: Vec<AgeBand>,
    granted_proxy_sees: Sees,
    legal_representative_sees: Sees,
    directory_types: Vec<String>,
    roles: BTreeMap<String, RoleDoc>,
    patient_levels: BTreeMap<String, LevelDoc>,
}

/// One permission: interactions on a type (or every type), optionally only on resources matching a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// `None` for `*`.
    pub resource_type: Option<String>,
    /// Letters of `cruds`.
    pub interactions: String,
    /// The scope's search restriction (`Observation.rs?category=laboratory`), parsed.
    pub filters: Vec<Filter>,
}

impl Scope {
    /// Parse a SMART scope body (`Observation.rs?category=laboratory`, `*.cruds`, v1 `Observation.read`,
    /// `*.write`, `*.*`); a `patient/`, `user/` or `system/` prefix is ignored here (the caller knows it).
    pub fn parse(text: &str) -> Result<Scope, String> {
        let body = text
            .strip_prefix("patient/")
            .or_else(|| text.strip_prefix("user/"))
            .or_else(|| text.strip_prefix("system/"))
            .unwrap_or(text);
        let (head, query) = match body.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (body, None),
        };
        let (ty, perms) = head
            .split_once('.')
            .ok_or_else(|| format!("scope '{text}' is not Type.permissions"))?;
        let resource_type = match ty {
            "*" => None,
            t if registry().is_resource_type(t) => Some(t.to_string()),
            t => {
                return Err(format!(
                    "scope '{text}': '{t}' is not a FHIR R4 resource type"
                ))
            }
        };
        let interactions = match perms {
            "read" => "rs".to_string(),
            "write" => "cud".to_string(),
            "*" => "cruds".to_string(),
            p if !p.is_empty() && p.chars().all(|c| "cruds".contains(c)) && is_in_order(p) => {
                p.to_string()
            }
            p => {
                return Err(format!(
                    "scope '{text}': '{p}' is not a permission (cruds, read, write, *)"
                ))
            }
        };
        let filters = match query {
            None => Vec::new(),
            Some(q) => {
                let Some(t) = &resource_type else {
                    return Err(format!(
                        "scope '{text}': a restriction needs a resource type"
                    ));
                };
                let pairs: Vec<(String, String)> =
                    form_urlencoded::parse(q.as_bytes()).into_owned().collect();
                parse_search(Some(t), &pairs, Handling::Strict)
                    .map_err(|e| format!("scope '{text}': {e}"))?
                    .query
                    .filters
            }
        };
        Ok(Scope {
            resource_type,
            interactions,
            filters,
        })
    }

    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
            && self.interactions.contains(interaction.letter())
    }
}

/// SMART v2 requires the letters in `cruds` order.
fn is_in_order(p: &str) -> bool {
    let order = "cruds";
    let positions: Vec<usize> = p.chars().filter_map(|c| order.find(c)).collect();
    positions.windows(2).all(|w| w[0] < w[1])
}

#[derive(Debug, Clone)]
pub struct RolePolicy {
    pub scopes: Vec<Scope>,
    pub reach: ReachKind,
}

/// The parsed, checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub sensitive_labels: Vec<Label>,
    pub proxy_age_bands: Vec<AgeBand>,
    pub granted_proxy_sees: Sees,
    pub legal_representative_sees: Sees,
    pub directory_types: Vec<String>,
    pub roles: BTreeMap<String, RolePolicy>,
    pub patient_levels: BTreeMap<String, Vec<Scope>>,
}

impl Policy {
    pub fn from_json(text: &str) -> Result<Policy, CoreError> {
        let bad = |m: String| CoreError::BadRequest(format!("access policy: {m}"));
        let doc: PolicyDoc = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let parse_all = |scopes: &[String]| -> Result<Vec<Scope>, CoreError> {
            scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(bad))
                .collect()
        };
        let mut roles = BTreeMap::new();
        for (name, r) in &doc.roles {
            roles.insert(
                name.clone(),
                RolePolicy {
                    scopes: parse_all(&r.scopes)?,
                    reach: r.reach,
                },
            );
        }
        let mut levels = BTreeMap::new();
        for (name, l) in &doc.patient_levels {
            levels.insert(name.clone(), parse_all(&l.scopes)?);
        }
        // The bands must cover every age from 0 without gaps or overlaps, or some child would have no rule.
        let mut expect = 0;
        for (i, b) in doc.proxy_age_bands.iter().enumerate() {
            if b.from_years != expect {
                return Err(bad(format!(
                    "proxy_age_bands must start at 0 and follow each other (band {i} starts at {}, expected {expect})",
                    b.from_years
                )));
            }
            match b.to_years {
                Some(t) if t > b.from_years => expect = t,
                Some(_) => return Err(bad(format!("proxy age band {i} is empty"))),
                None if i + 1 == doc.proxy_age_bands.len() => expect = u32::MAX,
                None => return Err(bad("only the last proxy age band may be open-ended".into())),
            }
        }
        if expect != u32::MAX {
            return Err(bad("the last proxy age band must be open-ended".into()));
        }
        for t in &doc.directory_types {
            if !registry().is_resource_type(t) {
                return Err(bad(format!(
                    "directory type '{t}' is not a FHIR R4 resource type"
                )));
            }
        }
        Ok(Policy {
            sensitive_labels: doc.sensitive_labels,
            proxy_age_bands: doc.proxy_age_bands,
            granted_proxy_sees: doc.granted_proxy_sees,
            legal_representative_sees: doc.legal_representative_sees,
            directory_types: doc.directory_types,
            roles,
            patient_levels: levels,
        })
    }

    pub fn default_policy() -> Result<Policy, CoreError> {
        Policy::from_json(DEFAULT_POLICY)
    }

    /// What a parent sees of a child of this age (whole years).
    pub fn parent_sees(&self, age_years: u32) -> Sees {
        self.proxy_age_bands
            .iter()
            .find(|b| age_years >= b.from_years && b.to_years.is_none_or(|t| age_years < t))
            .map_or(Sees::Nothing, |b| b.parent_sees)
    }

    pub fn labels(&self) -> Vec<(String, String)> {
        self.sensitive_labels
            .iter()
            .map(|l| (l.system.clone(), l.code.clone()))
            .collect()
    }

    pub fn is_sensitive(&self, system: &str, code: &str) -> bool {
        self.sensitive_labels
            .iter()
            .any(|l| l.system == system && l.code == code)
    }
}

/// Age in whole years on `today` of someone born on `birth` (a FHIR date: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
/// A partial date takes its earliest possible day, so the person counts as the oldest they could be: with
/// age bands that only ever narrow what a parent sees, this errs on the side of privacy.
pub fn age_on(birth: &str, today: time::Date) -> Option<u32> {
    let mut parts = birth.splitn(3, '-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next().map_or(Some(1), |m| m.parse().ok())?;
    let d: u8 = parts
        .next()
        .map_or(Some(1), |d| d.get(..2).unwrap_or(d).parse().ok())?;
    let mut age = today.year() - y;
    if (u8::from(today.month()), today.day()) < (m, d) {
        age -= 1;
    }
    u32::try_from(age).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_default_policy_parses() {
        let p = Policy::default_policy().unwrap();
        assert_eq!(p.parent_sees(11), Sees::All);
        assert_eq!(p.parent_sees(12), Sees::NotSensitive);
        assert_eq!(p.parent_sees(17), Sees::NotSensitive);
        assert_eq!(p.parent_sees(18), Sees::Nothing);
        assert!(p.roles.contains_key("physician"));
        assert!(p.is_sensitive(
            "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
            "R"
        ));
    }

    #[test]
    fn scopes_parse_v1_and_v2() {
        let s = Scope::parse("patient/Observation.rs?category=laboratory").unwrap();
        assert_eq!(s.resource_type.as_deref(), Some("Observation"));
        assert_eq!(s.interactions, "rs");
        assert_eq!(s.filters.len(), 1);
        assert_eq!(Scope::parse("user/*.read").unwrap().interactions, "rs");
        assert_eq!(Scope::parse("*.*").unwrap().interactions, "cruds");
        assert!(Scope::parse("Observation.sr").is_err());
        assert!(Scope::parse("Nothing.rs").is_err());
        assert!(Scope::parse("Observation.rs?bogus=1").is_err());
    }

    #[test]
    fn ages_at_the_birthday_boundaries() {
        let today = date!(2026 - 11 - 23);
        assert_eq!(age_on("2014-11-24", today), Some(11)); // 11 years 364 days
        assert_eq!(age_on("2014-11-23", today), Some(12));
        assert_eq!(age_on("2008-11-24", today), Some(17));
        assert_eq!(age_on("2008-11-23", today), Some(18));
        assert_eq!(age_on("2008", today), Some(18));
        assert_eq!(age_on("2008-12", today), Some(17));
        assert_eq!(age_on("bogus", today), None);
    }

    #[test]
    fn age_bands_must_cover_every_age() {
        let bad = DEFAULT_POLICY.replace("\"from_years\": 12", "\"from_years\": 13");
        assert!(Policy::from_json(&bad).is_err());
        let moved = DEFAULT_POLICY
            .replace("\"to_years\": 12", "\"to_years\": 13")
            .replace("\"from_years\": 12", "\"from_years\": 13");
        let p = Policy::from_json(&moved).unwrap();
        assert_eq!(p.parent_sees(12), Sees::All);
        assert_eq!(p.parent_sees(13), Sees::NotSensitive);
    }
}
