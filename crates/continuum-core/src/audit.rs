//! Audit records: one FHIR `AuditEvent` per access, in the shape of IHE Basic Audit Log Patterns (BALP): who
//! (agent with account and network address), what (entities: the patient, the resources, the query), when,
//! outcome and purpose. Stored through the store's append-only, hash-chained audit log.

use base64::Engine;
use continuum_store::{format_instant, from_micros, AuditRecord};
use serde_json::{json, Value};

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
    let login = matches!(event, Event::Login | Event::Logout);
    let (type_system, type_code, type_display, subtype_system) = if login {
        (
            "http://dicom.nema.org/resources/ontology/DCM",
            "110114",
            "User Authentication",
            "http://dicom.nema.org/resources/ontology/DCM",
        )
    } else {
        (
            "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "rest",
            "RESTful Operation",
            "http://hl7.org/fhir/restful-interaction",
        )
    };
    let subtype = match event {
        Event::Login => json!({ "system": subtype_system, "code": "110122", "display": "Login" }),
        Event::Logout => json!({ "system": subtype_system, "code": "110123", "display": "Logout" }),
        e => json!({ "system": subtype_system, "code": e.code() }),
    };
    let mut agent = json!({
        "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient" }] },
        "who": { "identifier": { "system": "urn:continuum:account", "value": principal.account_id }, "display": principal.username },
        "requestor": true
    });
    if let Some(addr) = &principal.address {
        agent["network"] = json!({ "address": addr, "type": "2" });
    }
    let mut entities: Vec<Value> = Vec::new();
    if let Some(p) = patient {
        entities.push(json!({
            "what": { "reference": format!("Patient/{p}") },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" },
            "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient" }
        }));
    }
    for r in resources.iter().take(100) {
        entities.push(json!({
            "what": { "reference": r },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" }
        }));
    }
    if let Some(q) = query {
        entities.push(json!({
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" },
            "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query" },
            "query": base64::engine::general_purpose::STANDARD.encode(q.as_bytes())
        }));
    }
    let mut event_json = json!({
        "resourceType": "AuditEvent",
        "type": { "system": type_system, "code": type_code, "display": type_display },
        "subtype": [subtype],
        "action": event.action(),
        "recorded": format_instant(from_micros(now_us)),
        "outcome": outcome.code(),
        "agent": [agent],
        "source": {
            "observer": { "display": "Continuum" },
            "type": [{ "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server" }]
        }
    });
    if let Some(d) = detail {
        event_json["outcomeDesc"] = json!(d);
    }
    if event == Event::BreakGlass {
        event_json["purposeOfEvent"] = json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG", "display": "break the glass" }] }]);
    }
    if !entities.is_empty() {
        event_json["entity"] = Value::Array(entities);
    }
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
