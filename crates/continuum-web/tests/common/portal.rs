//! The portal's test harness: a real server on 127.0.0.1:0 over a temporary SQLite database with its
//! `AppState` at hand (accounts, the guarded core, the policy), a cookie-keeping visitor that does not follow
//! redirects (so tests see every 303 and `Set-Cookie`), and synthetic people to sign in as.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use continuum_auth::{totp, Account, AccountKind};
use continuum_core::access::{ProxyBasis, ProxyGrant};
use continuum_core::Fhir;
use continuum_store::SystemClock;
use continuum_web::{AppState, WebConfig};
use serde_json::{json, Value};

pub struct PortalApp {
    pub root: String,
    pub host: String,
    pub state: AppState,
    pub db_path: PathBuf,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn now_us() -> i64 {
    continuum_store::to_micros(time::OffsetDateTime::now_utc())
}

impl PortalApp {
    pub async fn start() -> PortalApp {
        Self::start_with(WebConfig::default()).await
    }

    pub async fn start_with(config: WebConfig) -> PortalApp {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("portal.db");
        let store =
            continuum_store_sqlite::SqliteStore::open(&db_path, Arc::new(SystemClock)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(Fhir::new(Arc::new(store)), config).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(continuum_web::serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        PortalApp {
            root: format!("http://{addr}"),
            host: addr.to_string(),
            state,
            db_path,
            _dir: dir,
            _shutdown: tx,
        }
    }

    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.root)
    }

    /// Store a resource as the system; returns its id.
    pub async fn create(&self, resource: Value) -> String {
        let fhir = self.state.fhir.clone();
        tokio::task::spawn_blocking(move || {
            let ty = resource["resourceType"].as_str().unwrap().to_string();
            fhir.create(&ty, resource, None).unwrap().id
        })
        .await
        .unwrap()
    }

    /// Create an account (with `password`); returns it as stored.
    pub async fn account(&self, account: Account, password: &str) -> Account {
        let auth = self.state.auth.clone();
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || auth.create(account, Some(&pw)).unwrap())
            .await
            .unwrap()
    }

    pub async fn reload(&self, id: &str) -> Account {
        let auth = self.state.auth.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || auth.by_id(&id).unwrap().unwrap())
            .await
            .unwrap()
    }

    /// A synthetic patient resource born `years` (and `days` more) before today; returns its id.
    pub async fn patient(&self, given: &str, family: &str, years: i32, days: i64) -> String {
        self.create(json!({
            "resourceType": "Patient",
            "name": [{ "use": "official", "given": [given], "family": family }],
            "gender": "unknown",
            "birthDate": birth_date(years, days),
            "address": [{ "line": ["1 Synthetic Way"], "city": "Testville", "state": "ZZ" }]
        }))
        .await
    }

    pub async fn condition(&self, patient: &str, text: &str, sensitive: bool) -> String {
        let mut c = json!({
            "resourceType": "Condition",
            "subject": { "reference": format!("Patient/{patient}") },
            "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active", "display": "Active" }] },
            "code": { "text": text },
            "onsetDateTime": "2024-01-15"
        });
        if sensitive {
            c["meta"] = json!({ "security": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY" }] });
        }
        self.create(c).await
    }

    pub async fn lab(
        &self,
        patient: &str,
        text: &str,
        value: f64,
        unit: &str,
        when: &str,
    ) -> String {
        self.create(json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory" }] }],
            "code": { "text": text },
            "subject": { "reference": format!("Patient/{patient}") },
            "effectiveDateTime": when,
            "valueQuantity": { "value": value, "unit": unit },
            "referenceRange": [{ "low": { "value": 4.0, "unit": unit }, "high": { "value": 5.6, "unit": unit } }]
        }))
        .await
    }

    pub async fn medication(&self, patient: &str, text: &str) -> String {
        self.create(json!({
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": { "text": text },
            "subject": { "reference": format!("Patient/{patient}") },
            "authoredOn": "2024-02-01",
            "dosageInstruction": [{ "text": "one tablet daily" }]
        }))
        .await
    }

    pub async fn allergy(&self, patient: &str, text: &str) -> String {
        self.create(json!({
            "resourceType": "AllergyIntolerance",
            "patient": { "reference": format!("Patient/{patient}") },
            "code": { "text": text },
            "criticality": "high",
            "reaction": [{ "manifestation": [{ "text": "hives" }] }]
        }))
        .await
    }

    /// Audit rows about `patient`, newest first.
    pub async fn audit_of_patient(&self, patient: &str) -> Vec<continuum_store::AuditRow> {
        let store = self.state.fhir.store().clone();
        let p = patient.to_string();
        tokio::task::spawn_blocking(move || {
            store
                .audit()
                .audit_search(&continuum_store::AuditQuery {
                    patient: Some(p),
                    limit: 1000,
                    ..Default::default()
                })
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// Audit rows of one agent (account id), newest first.
    pub async fn audit_of_agent(&self, agent: &str) -> Vec<continuum_store::AuditRow> {
        let store = self.state.fhir.store().clone();
        let a = agent.to_string();
        tokio::task::spawn_blocking(move || {
            store
                .audit()
                .audit_search(&continuum_store::AuditQuery {
                    agent: Some(a),
                    limit: 1000,
                    ..Default::default()
                })
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// A bearer-token client for the FHIR API acting as `account_id`.
    pub async fn api_client(&self, account_id: &str) -> reqwest::Client {
        let auth = self.state.auth.clone();
        let id = account_id.to_string();
        let token = tokio::task::spawn_blocking(move || {
            auth.issue_token(&id, "api", now_us(), 3600, b"{}").unwrap()
        })
        .await
        .unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }
}

/// `YYYY-MM-DD` of `years` years and `days` days before today.
pub fn birth_date(years: i32, days: i64) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    let mut d = today
        .replace_year(today.year() - years)
        .unwrap_or_else(|_| {
            today
                .replace_day(28)
                .unwrap()
                .replace_year(today.year() - years)
                .unwrap()
        });
    d -= time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A synthetic patient account linked to `patient`, premium level.
pub fn patient_account(username: &str, name: &str, patient: &str) -> Account {
    let mut a = Account::new(AccountKind::Patient, username, name);
    a.patient = Some(patient.to_string());
    a.level = Some("premium".into());
    a.email = Some(format!("{username}@example.invalid"));
    a
}

pub fn staff_account(username: &str, name: &str, roles: &[&str]) -> Account {
    let mut a = Account::new(AccountKind::Staff, username, name);
    a.roles = roles.iter().map(|r| r.to_string()).collect();
    a.email = Some(format!("{username}@example.invalid"));
    a
}

pub fn parent_of(patient: &str) -> ProxyGrant {
    ProxyGrant {
        patient: patient.to_string(),
        basis: ProxyBasis::Parent,
        expires: None,
        revoked: false,
    }
}

/// Give an account a TOTP secret (before it is created); returns the raw secret for computing codes.
pub fn with_totp(account: &mut Account) -> Vec<u8> {
    let secret = totp::new_secret();
    account.totp_secret = Some(totp::to_base32(&secret));
    secret
}

/// The code for `secret` now.
pub fn code_now(secret: &[u8]) -> String {
    totp::code_at(secret, now_us() / 1_000_000)
}

/// A code for `secret` that the account `account_id` has not used yet: the current step's, the next one's
/// when the current one was used (one step of drift is accepted), or, when that too was used, the next
/// step's after waiting for it.
pub async fn next_code(app: &PortalApp, account_id: &str, secret: &[u8]) -> String {
    loop {
        let last = app.reload(account_id).await.totp_last_step;
        let now = now_us() / 1_000_000;
        let step = now / 30;
        match last {
            Some(l) if l > step => {
                let wait = 30 - now % 30;
                tokio::time::sleep(std::time::Duration::from_secs(wait as u64)).await;
            }
            Some(l) if l == step => return totp::code_at(secret, now + 30),
            _ => return totp::code_at(secret, now),
        }
    }
}

/// A response kept whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        hidden_field(&self.body, "csrf").expect("the page has a csrf field")
    }

    /// The text of the page's alert (the error message), if any.
    pub fn alert(&self) -> Option<String> {
        let start = self.body.find("role=\"alert\"")?;
        let rest = &self.body[start..];
        let open = rest.find('>')? + 1;
        let close = rest[open..].find("</p>")?;
        Some(rest[open..open + close].trim().to_string())
    }
}

pub fn hidden_field(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_string())
}

/// A browser-like client: keeps cookies, sends `Origin` on POSTs, never follows redirects.
#[derive(Clone)]
pub struct Visitor {
    pub root: String,
    pub client: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Sent as `Origin` on POSTs; `None` sends none.
    pub origin: Option<String>,
    /// Sent as `Sec-Fetch-Site` on POSTs (Fetch Metadata, as browsers do); `None` sends none.
    pub fetch_site: Option<String>,
    /// More headers sent with every request (e.g. a proxy's forwarded client certificate).
    pub headers: Vec<(String, String)>,
}

impl Visitor {
    pub fn new(root: &str) -> Visitor {
        Visitor {
            root: root.to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            origin: Some(root.to_string()),
            fetch_site: None,
            headers: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for sc in headers.get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let first = sc.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            if sc.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let body = r.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut req = self.client.get(format!("{}{path}", self.root));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let r = req.send().await.unwrap();
        self.keep(r).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .client
            .post(format!("{}{path}", self.root))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        if let Some(o) = &self.origin {
            req = req.header("origin", o);
        }
        if let Some(site) = &self.fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let r = req.send().await.unwrap();
        self.keep(r).await
    }

    /// GET the sign-in page and post the form.
    pub async fn login(&mut self, username: &str, password: &str, code: &str) -> Page {
        let form = self.get("/login").await;
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("code", code),
            ],
        )
        .await
    }

    pub fn session_cookie(&self) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k.ends_with("continuum_session"))
            .map(|(_, v)| v.clone())
    }
}
