//! Audit records: one FHIR `AuditEvent` per access, in the shape of IHE Basic Audit Log Patterns (BALP): who
//! (agent with account and network address), what (entities: the patient, the resources, the query), when,
//! outcome and purpose. Stored through the store's append-only, hash-chained audit log.

use continuum_store::AuditRecord;

use crate::access::Principal;

/// What happened, as AuditEvent.action and a subtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Create,
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    Search,
    History,
    Everything,
    Transaction,
    Login,
    Logout,
    BreakGlass,
    Export,
}

impl Event {
    pub fn action(self) -> &'static str {
        match self {
            Event::Create | Event::Transaction => "C",
            Event::Update | Event::Patch => "U",
            Event::Delete => "D",
            Event::Read
            | Event::Vread
            | Event::Search
            | Event::History
            | Event::Everything
            | Event::Export => "R",
            Event::Login | Event::Logout | Event::BreakGlass => "E",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Read => "read",
            Event::Vread => "vread",
            Event::Update => "update",
            Event::Patch => "patch",
            Event::Delete => "delete",
            Event::Search => "search-type",
            Event::History => "history",
            Event::Everything => "everything",
            Event::Transaction => "transaction",
            Event::Login => "login",
            Event::Logout => "logout",
            Event::BreakGlass => "break-glass",
            Event::Export => "export",
        }
    }
}

/// AuditEvent.outcome codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused (not permitted, not found, bad credentials).
    Refused,
    Failed,
}

impl Outcome {
    fn code(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::Refused => "4",
            Outcome::Failed => "8",
        }
    }
}

/// Build the record of one access. `patient` is the patient whose record was touched (one row per patient:
/// "who viewed my record" filters on it); `resources` are `Type/id` references; `query` the search or
/// operation as sent.
///
/// Written straight from borrowed fields ([`body`]): a search over a clinic's month of encounters builds
/// about 20 of these per request, and building a `serde_json::Value` tree first took 11.5 µs each.
#[allow(clippy::too_many_arguments)]
pub fn record(
    principal: &Principal,
    now_us: i64,
    event: Event,
    outcome: Outcome,
    patient: Option<&str>,
    resources: &[String],
    query: Option<&str>,
    detail: Option<&str>,
) -> AuditRecord {
    let event_json = body::event(
        principal, now_us, event, outcome, patient, resources, query, detail,
    );
    AuditRecord {
        recorded: now_us,
        agent: principal.account_id.clone(),
        patient: patient.map(str::to_string),
        action: event.action().to_string(),
        subtype: event.code().to_string(),
        outcome: outcome.code().to_string(),
        body: serde_json::to_vec(&event_json).unwrap_or_default(),
    }
}

/// The AuditEvent as serde structs over borrowed fields, in the element order FHIR's JSON examples use.
mod body {
    use base64::Engine;
    use serde::Serialize;

    use super::{Event, Outcome};
    use crate::access::Principal;
    use continuum_store::{format_instant, from_micros};

    #[derive(Serialize)]
    pub(super) struct Coding<'a> {
        system: &'a str,
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        display: Option<&'a str>,
    }

    const fn coding<'a>(system: &'a str, code: &'a str, display: &'a str) -> Coding<'a> {
        Coding {
            system,
            code,
            display: Some(display),
        }
    }

    #[derive(Serialize)]
    pub(super) struct Concept<'a> {
        coding: [Coding<'a>; 1],
    }

    #[derive(Serialize)]
    struct Identifier<'a> {
        system: &'a str,
        value: &'a str,
    }

    #[derive(Serialize)]
    struct Who<'a> {
        identifier: Identifier<'a>,
        display: &'a str,
    }

    #[derive(Serialize)]
    struct Network<'a> {
        address: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }

    #[derive(Serialize)]
    struct Agent<'a> {
        #[serde(rename = "type")]
        kind: Concept<'a>,
        who: Who<'a>,
        requestor: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        network: Option<Network<'a>>,
    }

    #[derive(Serialize)]
    struct Observer {
        display: &'static str,
    }

    #[derive(Serialize)]
    struct Source<'a> {
        observer: Observer,
        #[serde(rename = "type")]
        kind: [Coding<'a>; 1],
    }

    #[derive(Serialize)]
    struct Reference<'a> {
        reference: std::borrow::Cow<'a, str>,
    }

    /// The patient (what, type, role), a resource (what, type) or the query (type, role, query).
    #[derive(Serialize)]
    struct Entity<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        what: Option<Reference<'a>>,
        #[serde(rename = "type")]
        kind: Coding<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<Coding<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    }

    #[derive(Serialize)]
    pub(super) struct AuditEvent<'a> {
        #[serde(rename = "resourceType")]
        resource_type: &'static str,
        #[serde(rename = "type")]
        kind: Coding<'a>,
        subtype: [Coding<'a>; 1],
        action: &'a str,
        recorded: String,
        outcome: &'a str,
        agent: [Agent<'a>; 1],
        source: Source<'a>,
        #[serde(rename = "outcomeDesc", skip_serializing_if = "Option::is_none")]
        outcome_desc: Option<&'a str>,
        #[serde(rename = "purposeOfEvent", skip_serializing_if = "Option::is_none")]
        purpose_of_event: Option<[Concept<'a>; 1]>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        entity: Vec<Entity<'a>>,
    }

    const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
    const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

    #[allow(clippy::too_many_arguments)]
    pub(super) fn event<'a>(
        principal: &'a Principal,
        now_us: i64,
        event: Event,
        outcome: Outcome,
        patient: Option<&'a str>,
        resources: &'a [String],
        query: Option<&str>,
        detail: Option<&'a str>,
    ) -> AuditEvent<'a> {
        let login = matches!(event, Event::Login | Event::Logout);
        let (kind, subtype_system) = if login {
            (
                coding(
                    "http://dicom.nema.org/resources/ontology/DCM",
                    "110114",
                    "User Authentication",
                ),
                "http://dicom.nema.org/resources/ontology/DCM",
            )
        } else {
            (
                coding(
                    "http://terminology.hl7.org/CodeSystem/audit-event-type",
                    "rest",
                    "RESTful Operation",
                ),
                "http://hl7.org/fhir/restful-interaction",
            )
        };
        let subtype = match event {
            Event::Login => coding(subtype_system, "110122", "Login"),
            Event::Logout => coding(subtype_system, "110123", "Logout"),
            e => Coding {
                system: subtype_system,
                code: e.code(),
                display: None,
            },
        };
        let agent = Agent {
            kind: Concept {
                coding: [coding(
                    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "IRCP",
                    "information recipient",
                )],
            },
            who: Who {
                identifier: Identifier {
                    system: "urn:continuum:account",
                    value: &principal.account_id,
                },
                display: &principal.username,
            },
            requestor: true,
            network: principal
                .address
                .as_deref()
                .map(|address| Network { address, kind: "2" }),
        };
        let mut entity = Vec::with_capacity(2 + resources.len().min(100));
        if let Some(p) = patient {
            entity.push(Entity {
                what: Some(Reference {
                    reference: format!("Patient/{p}").into(),
                }),
                kind: coding(ENTITY_TYPE, "1", "Person"),
                role: Some(coding(OBJECT_ROLE, "1", "Patient")),
                query: None,
            });
        }
        for r in resources.iter().take(100) {
            entity.push(Entity {
                what: Some(Reference {
                    reference: r.as_str().into(),
                }),
                kind: coding(ENTITY_TYPE, "2", "System Object"),
                role: None,
                query: None,
            });
        }
        if let Some(q) = query {
            entity.push(Entity {
                what: None,
                kind: coding(ENTITY_TYPE, "2", "System Object"),
                role: Some(coding(OBJECT_ROLE, "24", "Query")),
                query: Some(base64::engine::general_purpose::STANDARD.encode(q.as_bytes())),
            });
        }
        AuditEvent {
            resource_type: "AuditEvent",
            kind,
            subtype: [subtype],
            action: event.action(),
            recorded: format_instant(from_micros(now_us)),
            outcome: outcome.code(),
            agent: [agent],
            source: Source {
                observer: Observer {
                    display: "Continuum",
                },
                kind: [coding(
                    "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "4",
                    "Application Server",
                )],
            },
            outcome_desc: detail,
            purpose_of_event: (event == Event::BreakGlass).then(|| {
                [Concept {
                    coding: [coding(
                        "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "BTG",
                        "break the glass",
                    )],
                }]
            }),
            entity,
        }
    }
}

/// Rows one seal takes (on SQLite it reads and hashes them off the writer, then appends in short turns).
pub const SEAL_BATCH: usize = 10_000;

/// Chain new audit rows into the hash chain (and file them under their patients) every second, on a plain
/// thread (the store is synchronous); straight on while a full batch was sealed.
pub fn spawn_sealer(store: std::sync::Arc<dyn continuum_store::ResourceStore>) {
    let spawned = std::thread::Builder::new()
        .name("audit-sealer".into())
        .spawn(move || loop {
            match store.audit().seal_audit(SEAL_BATCH) {
                Ok(n) if n == SEAL_BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "sealing the audit log failed"),
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the audit sealer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(address: Option<&str>) -> Principal {
        Principal {
            account_id: "acc-1".into(),
            username: "Nurse \"Quote\" Ünïcode".into(),
            kind: crate::access::PrincipalKind::System,
            address: address.map(str::to_string),
            token_scopes: None,
        }
    }

    const AT: i64 = 1_700_000_000_123_456;

    /// The stored bodies, byte for byte (they are the hash chain's input, so a change of element order or
    /// escaping would be a change of format). These are the bytes the earlier `serde_json::Value` builder
    /// wrote; the structs were checked against it over every event, outcome and optional part when they
    /// replaced it.
    #[test]
    fn bodies_are_written_byte_for_byte() {
        let search = record(
            &principal(Some("127.0.0.1")),
            AT,
            Event::Search,
            Outcome::Success,
            Some("p-1"),
            &["Encounter".to_string()],
            Some("name=a&b=é/ü"),
            None,
        );
        assert_eq!(String::from_utf8_lossy(&search.body), SEARCH);
        assert_eq!(
            (
                search.agent.as_str(),
                search.patient.as_deref(),
                search.action.as_str()
            ),
            ("acc-1", Some("p-1"), "R")
        );
        assert_eq!(
            (search.subtype.as_str(), search.outcome.as_str()),
            ("search-type", "0")
        );
        let login = record(
            &principal(None),
            AT,
            Event::Login,
            Outcome::Refused,
            None,
            &[],
            None,
            Some("refused: \"why\""),
        );
        assert_eq!(String::from_utf8_lossy(&login.body), LOGIN);
        let glass = record(
            &principal(Some("10.0.0.2")),
            AT,
            Event::BreakGlass,
            Outcome::Success,
            Some("p-1"),
            &[],
            None,
            None,
        );
        assert_eq!(String::from_utf8_lossy(&glass.body), BREAK_GLASS);
    }

    /// At most 100 resources are named, after the patient and before the query.
    #[test]
    fn at_most_100_resources_are_named() {
        let many: Vec<String> = (0..150).map(|i| format!("Observation/o{i}")).collect();
        let r = record(
            &principal(None),
            AT,
            Event::Search,
            Outcome::Success,
            Some("p-1"),
            &many,
            Some("code=x"),
            None,
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let entity = body["entity"].as_array().unwrap();
        assert_eq!(entity.len(), 1 + 100 + 1);
        assert_eq!(entity[0]["what"]["reference"], "Patient/p-1");
        assert_eq!(entity[100]["what"]["reference"], "Observation/o99");
        assert_eq!(entity[101]["role"]["code"], "24");
    }

    const SEARCH: &str = r#"{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"search-type"}],"action":"R","recorded":"2023-11-14T22:13:20.123456Z","outcome":"0","agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},"who":{"identifier":{"system":"urn:continuum:account","value":"acc-1"},"display":"Nurse \"Quote\" Ünïcode"},"requestor":true,"network":{"address":"127.0.0.1","type":"2"}}],"source":{"observer":{"display":"Continuum"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"entity":[{"what":{"reference":"Patient/p-1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}},{"what":{"reference":"Encounter"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"}},{"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2","display":"System Object"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"24","display":"Query"},"query":"bmFtZT1hJmI9w6kvw7w="}]}"#;
    const LOGIN: &str = r#"{"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110114","display":"User Authentication"},"subtype":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110122","display":"Login"}],"action":"E","recorded":"2023-11-14T22:13:20.123456Z","outcome":"4","agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},"who":{"identifier":{"system":"urn:continuum:account","value":"acc-1"},"display":"Nurse \"Quote\" Ünïcode"},"requestor":true}],"source":{"observer":{"display":"Continuum"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"outcomeDesc":"refused: \"why\""}"#;
    const BREAK_GLASS: &str = r#"{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest","display":"RESTful Operation"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"break-glass"}],"action":"E","recorded":"2023-11-14T22:13:20.123456Z","outcome":"0","agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP","display":"information recipient"}]},"who":{"identifier":{"system":"urn:continuum:account","value":"acc-1"},"display":"Nurse \"Quote\" Ünïcode"},"requestor":true,"network":{"address":"10.0.0.2","type":"2"}}],"source":{"observer":{"display":"Continuum"},"type":[{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4","display":"Application Server"}]},"purposeOfEvent":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"BTG","display":"break the glass"}]}],"entity":[{"what":{"reference":"Patient/p-1"},"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1","display":"Person"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1","display":"Patient"}}]}"#;
}
