//! The pages' template structs (askama, templates in `crates/continuum-web/templates/`, HTML-escaped by
//! default) and the small helpers that turn FHIR JSON into what the templates show.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::session::SignedIn;

/// What every page's frame shows: the demo notice, who is signed in (with the logout form's token).
#[derive(Clone)]
pub(crate) struct Chrome {
    pub demo: bool,
    pub user: Option<NavUser>,
}

#[derive(Clone)]
pub(crate) struct NavUser {
    pub name: String,
    pub csrf: String,
    pub patient: bool,
}

impl Chrome {
    pub fn anonymous() -> Chrome {
        Chrome {
            demo: super::demo(),
            user: None,
        }
    }

    pub fn for_user(s: &SignedIn) -> Chrome {
        Chrome {
            demo: super::demo(),
            user: Some(NavUser {
                name: s.account().display_name.clone(),
                csrf: s.session.data.csrf.clone(),
                patient: s.is_patient(),
            }),
        }
    }
}

#[derive(Template)]
#[template(path = "landing.html")]
pub(crate) struct Landing {
    pub chrome: Chrome,
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct Login {
    pub chrome: Chrome,
    pub csrf: String,
    pub username: String,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// A path on this server to go to after signing in.
    pub next: Option<String>,
    /// Smart-card sign-in is configured.
    pub card: bool,
}

#[derive(Template)]
#[template(path = "enroll.html")]
pub(crate) struct Enroll {
    pub chrome: Chrome,
    pub csrf: String,
    /// Inline SVG from `totp::qr_svg` (built by us, not from input).
    pub qr: String,
    /// The secret in groups of four, for typing by hand.
    pub secret: String,
    pub username: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub(crate) struct Forgot {
    pub chrome: Chrome,
    pub csrf: String,
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "reset.html")]
pub(crate) struct Reset {
    pub chrome: Chrome,
    pub csrf: String,
    pub token: String,
    pub needs_code: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct Message {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    /// A link onwards: (href, text).
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "workspace.html")]
pub(crate) struct Workspace {
    pub chrome: Chrome,
    pub name: String,
    pub username: String,
    pub roles: Vec<String>,
    /// Administrators get the audit reports.
    pub admin: bool,
}

/// Someone a patient account may view: itself or a dependent.
pub(crate) struct Person {
    pub id: String,
    pub name: String,
    pub current: bool,
    pub own: bool,
}

/// A part of the summary: its rows, or why it cannot be shown.
pub(crate) struct Section<T> {
    pub rows: Vec<T>,
    pub unavailable: Option<String>,
}

impl<T> Section<T> {
    pub fn empty() -> Section<T> {
        Section {
            rows: Vec::new(),
            unavailable: None,
        }
    }
}

pub(crate) struct Problem {
    pub name: String,
    pub status: String,
    pub onset: String,
}

pub(crate) struct Medication {
    pub name: String,
    pub status: String,
    pub dosage: String,
    pub authored: String,
}

pub(crate) struct Allergy {
    pub name: String,
    pub criticality: String,
    pub reactions: String,
}

pub(crate) struct LabResult {
    pub name: String,
    pub value: String,
    pub range: String,
    pub flag: String,
    pub date: String,
}

#[derive(Template)]
#[template(path = "portal.html")]
pub(crate) struct Portal {
    pub chrome: Chrome,
    pub csrf: String,
    pub people: Vec<Person>,
    /// Viewing a dependent rather than one's own record.
    pub viewing_other: bool,
    /// Some of this record is hidden from this viewer (12- to 17-year-olds' sensitive items).
    pub hidden_note: bool,
    /// `None`: the account is linked to no record it may see.
    pub name: Option<String>,
    pub demographics: Vec<(String, String)>,
    pub problems: Section<Problem>,
    pub medications: Section<Medication>,
    pub allergies: Section<Allergy>,
    pub results: Section<LabResult>,
}

pub(crate) struct LogRow {
    pub when: String,
    pub who: String,
    pub action: String,
    pub what: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "access_log.html")]
pub(crate) struct AccessLog {
    pub chrome: Chrome,
    pub has_record: bool,
    pub rows: Vec<LogRow>,
    /// More entries exist than are shown.
    pub truncated: bool,
}

pub(crate) struct AuditRow {
    pub seq: i64,
    pub when: String,
    pub who: String,
    pub patient: String,
    pub action: String,
    pub subtype: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "audit_report.html")]
pub(crate) struct AuditReport {
    pub chrome: Chrome,
    pub user: String,
    pub patient: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<AuditRow>,
    /// The page is full: older rows exist.
    pub full: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "explain.html")]
pub(crate) struct Explain {
    pub chrome: Chrome,
    pub search: String,
    /// `sqlite` or `postgres`: whose plan this is.
    pub backend: &'static str,
    pub plan: Option<String>,
    pub error: Option<String>,
}

/// An HTML response with `status`; a template failure becomes a plain 500.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown\n",
            )
                .into_response()
        }
    }
}

pub(crate) fn message_page(
    status: StatusCode,
    chrome: Chrome,
    title: &str,
    message: &str,
) -> Response {
    render(
        status,
        &Message {
            chrome,
            title: title.into(),
            message: message.into(),
            link: None,
        },
    )
}

/// A form refused by the CSRF defences.
pub(crate) fn forbidden_form(chrome: Chrome) -> Response {
    render(
        StatusCode::FORBIDDEN,
        &Message {
            chrome,
            title: "This form cannot be accepted".into(),
            message: "The form has expired or was sent from another site. Go back, reload the page and try again.".into(),
            link: Some(("/".into(), "Go to the start page".into())),
        },
    )
}

// ---- FHIR JSON to text ----

/// A CodeableConcept as words: its text, else the first coding's display, else its code.
pub(crate) fn concept(v: &Value) -> String {
    if let Some(t) = v.get("text").and_then(Value::as_str) {
        return t.to_string();
    }
    let codings = v.get("coding").and_then(Value::as_array);
    codings
        .and_then(|c| {
            c.iter()
                .find_map(|x| x.get("display").and_then(Value::as_str))
                .or_else(|| c.iter().find_map(|x| x.get("code").and_then(Value::as_str)))
        })
        .unwrap_or("")
        .to_string()
}

/// A date or dateTime shown as its date part (`2024-05-01`).
pub(crate) fn date(v: Option<&Value>) -> String {
    v.and_then(Value::as_str)
        .map(|s| s.chars().take(10).collect())
        .unwrap_or_default()
}

/// A HumanName as "Given Family": official use first, else the first name given.
pub(crate) fn human_name(patient: &Value) -> String {
    let names = patient.get("name").and_then(Value::as_array);
    let Some(names) = names else {
        return String::new();
    };
    let name = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first());
    let Some(name) = name else {
        return String::new();
    };
    if let Some(t) = name.get("text").and_then(Value::as_str) {
        return t.to_string();
    }
    let mut parts: Vec<&str> = name
        .get("given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(f) = name.get("family").and_then(Value::as_str) {
        parts.push(f);
    }
    parts.join(" ")
}

/// A Quantity as "5.4 mmol/L".
pub(crate) fn quantity(q: &Value) -> String {
    let value = match q.get("value") {
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let unit = q
        .get("unit")
        .or_else(|| q.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let comparator = q.get("comparator").and_then(Value::as_str).unwrap_or("");
    format!("{comparator}{value} {unit}").trim().to_string()
}

/// Resources of one type from a searchset Bundle (leaves out OperationOutcomes and the like).
pub(crate) fn bundle_resources(bundle: &[u8], resource_type: &str) -> Vec<Value> {
    let Ok(v) = serde_json::from_slice::<Value>(bundle) else {
        return Vec::new();
    };
    v.get("entry")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e.get("resource"))
                .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(resource_type))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// An instant (µs) as "2025-03-01 14:05 UTC".
pub(crate) fn instant(us: i64) -> String {
    let t = continuum_store::from_micros(us);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fhir_values_as_text() {
        assert_eq!(concept(&json!({"text": "Asthma"})), "Asthma");
        assert_eq!(
            concept(&json!({"coding": [{"code": "x"}, {"display": "Hay fever"}]})),
            "Hay fever"
        );
        assert_eq!(concept(&json!({"coding": [{"code": "J45"}]})), "J45");
        assert_eq!(date(Some(&json!("2024-05-01T10:00:00Z"))), "2024-05-01");
        assert_eq!(
            human_name(
                &json!({"name": [{"use": "usual", "given": ["Al"]}, {"use": "official", "given": ["Alex", "J"], "family": "Doe"}]})
            ),
            "Alex J Doe"
        );
        assert_eq!(
            quantity(&json!({"value": 5.4, "unit": "mmol/L"})),
            "5.4 mmol/L"
        );
        assert_eq!(instant(0), "1970-01-01 00:00 UTC");
    }
}
