//! From an access token's granted scopes to the access policy's [`Scope`]s.
//!
//! `user/` scopes become scopes as written. `patient/` scopes are confined to the token's patient context: a
//! scope on a type of the Patient compartment gets an extra restriction "in Patient/P's compartment" (on
//! `Patient` itself: "is Patient/P"), so that the account's own reach (a clinician's care relationships, a
//! proxy's dependents) is further narrowed to that one patient by the policy's scope intersection. Types
//! outside the compartment (directory types such as `Practitioner`) keep the account's reach. A wildcard
//! `patient/*.rs` is expanded per type for this. Without a patient context a `patient/` scope grants nothing.
//! `system/` scopes count only in backend-service tokens, the others only in user tokens.

use continuum_core::access::Scope;
use continuum_fhir::registry::registry;
use continuum_store::{Filter, Predicate};

use continuum_auth::oauth::ScopeParts;

/// Whose token this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    User,
    Backend,
}

/// The access-policy scopes of a token's `scope` claim.
pub(crate) fn access_scopes(scope: &str, kind: TokenKind, patient: Option<&str>) -> Vec<Scope> {
    let mut out = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        let Some(parts) = ScopeParts::parse(s) else {
            continue;
        };
        let Ok(parsed) = Scope::parse(parts.body) else {
            continue;
        };
        match (parts.context, kind) {
            ("system", TokenKind::Backend) | ("user", TokenKind::User) => out.push(parsed),
            ("patient", TokenKind::User) => {
                if let Some(p) = patient {
                    confine(parsed, p, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

fn confine(scope: Scope, patient: &str, out: &mut Vec<Scope>) {
    match &scope.resource_type {
        None => {
            for ty in registry().resource_types() {
                confine(
                    Scope {
                        resource_type: Some(ty.clone()),
                        interactions: scope.interactions.clone(),
                        filters: scope.filters.clone(),
                    },
                    patient,
                    out,
                );
            }
        }
        Some(ty) => {
            let mut scope = scope.clone();
            if ty == "Patient" {
                scope
                    .filters
                    .push(Filter::one(Predicate::Id(patient.to_string())));
            } else {
                let params = registry().patient_compartment_params(ty);
                if !params.is_empty() {
                    scope.filters.push(Filter::one(Predicate::Compartment {
                        target_type: "Patient".into(),
                        target_id: patient.to_string(),
                        params: params.to_vec(),
                    }));
                }
            }
            out.push(scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_scopes_are_confined_to_the_patient() {
        let s = access_scopes(
            "launch/patient patient/Observation.rs?category=laboratory patient/Patient.rs \
             patient/Practitioner.rs user/Condition.rs system/*.rs",
            TokenKind::User,
            Some("p1"),
        );
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].resource_type.as_deref(), Some("Observation"));
        assert_eq!(s[0].filters.len(), 2, "category and compartment");
        assert_eq!(s[1].filters, vec![Filter::one(Predicate::Id("p1".into()))]);
        assert!(s[2].filters.is_empty(), "a directory type keeps its reach");
        assert_eq!(s[3].resource_type.as_deref(), Some("Condition"));
        assert!(s[3].filters.is_empty());
        // no patient context: patient scopes grant nothing
        assert_eq!(
            access_scopes("patient/*.rs", TokenKind::User, None),
            Vec::new()
        );
        let all = access_scopes("patient/*.rs", TokenKind::User, Some("p1"));
        assert_eq!(all.len(), registry().resource_types().len());
        assert!(all.iter().all(|s| s.resource_type.is_some()));
        // backend tokens: only system scopes
        let b = access_scopes("system/Patient.rs user/*.rs", TokenKind::Backend, None);
        assert_eq!(b.len(), 1);
    }
}
