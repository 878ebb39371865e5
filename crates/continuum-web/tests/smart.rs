//! SMART App Launch 2 / OAuth 2 against a real server on 127.0.0.1 over SQLite: discovery, the standalone and
//! EHR launches with PKCE, backend services with `private_key_jwt`, refresh, revocation and introspection, and
//! the negative cases of the ONC (g)(10) test kit, each as its own test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::{now_us, status_json, Backend, TestApp};
use continuum_auth::oauth::{Client, ClientAuth, OAuth};
use continuum_auth::{Account, AccountKind, SessionPolicy};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde_json::{json, Value};

const REDIRECT: &str = "https://app.example/callback";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_text() -> String {
    continuum_auth::secret::new_token()
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!("{}{}", random_text(), random_text());
    let challenge = b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    Pkce {
        verifier,
        challenge,
    }
}

/// A server with two synthetic patients, their observations, a clinician caring for both, a patient account
/// for the first, and registered apps.
struct World {
    app: TestApp,
    /// Does not follow redirects.
    http: reqwest::Client,
    alice: String,
    bob: String,
    alice_lab: String,
    alice_vitals: String,
    bob_lab: String,
    patient_account: Account,
    clinician: Account,
    clinician_api: reqwest::Client,
    oauth: OAuth,
}

fn observation(patient: &str, category: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "effectiveDateTime": "2025-03-01T09:30:00Z"})
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

impl World {
    async fn new() -> World {
        World::on(Backend::Sqlite).await.unwrap()
    }

    /// `None` when the backend is not available on this machine (PostgreSQL outside CI).
    async fn on(backend: Backend) -> Option<World> {
        let app = TestApp::start(backend).await?;
        let prac = app
            .create(
                &json!({"resourceType": "Practitioner", "name": [{"family": "Synthetic-Medic"}]}),
            )
            .await;
        let prac_id = prac["id"].as_str().unwrap().to_string();
        let patient = |family: &str| {
            json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}],
                   "birthDate": "1980-01-01", "generalPractitioner": [{"reference": format!("Practitioner/{prac_id}")}]})
        };
        let id = |v: Value| v["id"].as_str().unwrap().to_string();
        let alice = id(app.create(&patient("Synthetic-Alpha")).await);
        let bob = id(app.create(&patient("Synthetic-Bravo")).await);
        let alice_lab = id(app
            .create(&observation(&alice, "laboratory", "2345-7"))
            .await);
        let alice_vitals = id(app
            .create(&observation(&alice, "vital-signs", "8867-4"))
            .await);
        let bob_lab = id(app.create(&observation(&bob, "laboratory", "2345-7")).await);

        let mut pa = Account::new(AccountKind::Patient, "alpha.patient", "Alpha Patient");
        pa.patient = Some(alice.clone());
        pa.level = Some("premium".into());
        let mut doc = Account::new(AccountKind::Staff, "medic.one", "Medic One");
        doc.roles = vec!["physician".into()];
        doc.practitioner = Some(prac_id);
        let auth = app.auth.clone();
        let (patient_account, clinician) = {
            let (pa, doc) = (pa.clone(), doc.clone());
            blocking(move || {
                (
                    auth.create(pa, None).unwrap(),
                    auth.create(doc, None).unwrap(),
                )
            })
            .await
        };
        let clinician_api = {
            let auth = app.auth.clone();
            let id = clinician.id.clone();
            let token =
                blocking(move || auth.issue_token(&id, "api", now_us(), 3600, b"{}").unwrap())
                    .await;
            common::client_with_token(&token)
        };
        let oauth = OAuth::new(app.store.clone());
        let o = oauth.clone();
        blocking(move || {
            o.register(
                Client {
                    client_id: "growth-app".into(),
                    name: "Growth Chart (synthetic)".into(),
                    redirect_uris: vec![REDIRECT.into()],
                    scopes: [
                        "launch",
                        "launch/patient",
                        "offline_access",
                        "patient/*.rs",
                        "user/*.rs",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    auth: ClientAuth::Public,
                    revoked: false,
                },
                now_us(),
            )
            .unwrap();
        })
        .await;
        Some(World {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            app,
            alice,
            bob,
            alice_lab,
            alice_vitals,
            bob_lab,
            patient_account,
            clinician,
            clinician_api,
            oauth,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.root)
    }

    /// A portal session for `account`: (cookie header value, CSRF token).
    async fn session(&self, account: &Account) -> (String, String) {
        let auth = self.app.auth.clone();
        let account = account.clone();
        let (secret, session) = blocking(move || {
            auth.start_session(&SessionPolicy::default(), &account, now_us())
                .unwrap()
        })
        .await;
        (format!("continuum_session={secret}"), session.data.csrf)
    }

    fn authorize_params(&self, scope: &str, pkce: &Pkce) -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", "growth-app"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-123"),
            ("aud", &self.app.base),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    async fn get_authorize(
        &self,
        params: &[(String, String)],
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.get(self.url("/oauth/authorize")).query(params);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// Approve on the consent page; returns the redirect's Location.
    async fn approve(&self, params: &[(String, String)], account: &Account) -> String {
        let (cookie, csrf) = self.session(account).await;
        let page = self.get_authorize(params, Some(&cookie)).await;
        assert_eq!(page.status(), 200, "consent page");
        let html = page.text().await.unwrap();
        assert!(html.contains("Growth Chart (synthetic)"));
        assert!(!html.contains("<script"), "no script on the consent page");
        let mut form = params.to_vec();
        form.push(("csrf".into(), csrf));
        form.push(("decision".into(), "approve".into()));
        let r = self
            .http
            .post(self.url("/oauth/authorize"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        location(&r)
    }

    async fn code_for(&self, scope: &str, pkce: &Pkce, account: &Account) -> String {
        let params = self.authorize_params(scope, pkce);
        let loc = self.approve(&params, account).await;
        assert_eq!(
            query_param(&loc, "state").as_deref(),
            Some("st-123"),
            "state echoed"
        );
        query_param(&loc, "code").expect("a code")
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    async fn exchange(&self, code: &str, pkce: &Pkce) -> (u16, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
            ("client_id", "growth-app"),
        ])
        .await
    }

    /// The whole standalone launch for the patient account.
    async fn patient_tokens(&self, scope: &str) -> Value {
        let p = pkce();
        let code = self.code_for(scope, &p, &self.patient_account).await;
        let (status, body) = self.exchange(&code, &p).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn fhir(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/{path}", self.app.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    async fn register(&self, client: Client) -> Option<String> {
        let o = self.oauth.clone();
        blocking(move || o.register(client, now_us()).unwrap()).await
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["resource"]["id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------
// Discovery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_configuration_is_published_at_both_places() {
    let w = World::new().await;
    for path in [
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
    ] {
        let r = w.http.get(w.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let (_, c) = status_json(r).await;
        assert_eq!(c["token_endpoint"], format!("{}/oauth/token", w.app.root));
        assert_eq!(
            c["authorization_endpoint"],
            format!("{}/oauth/authorize", w.app.root)
        );
        assert_eq!(c["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            c["grant_types_supported"],
            json!(["authorization_code", "client_credentials", "refresh_token"])
        );
        let caps: Vec<&str> = c["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for cap in [
            "launch-ehr",
            "launch-standalone",
            "client-public",
            "client-confidential-asymmetric",
            "context-ehr-patient",
            "context-standalone-patient",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
        ] {
            assert!(caps.contains(&cap), "{cap}");
        }
        assert!(!caps.contains(&"sso-openid-connect"));
    }
    let (status, cs) = w.app.get("metadata").await;
    assert_eq!(status, 200);
    let security = &cs["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        security["extension"][0]["extension"][1]["valueUri"],
        format!("{}/oauth/token", w.app.root)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_the_signing_key_named_in_tokens() {
    let w = World::new().await;
    let tokens = w.patient_tokens("patient/Patient.rs").await;
    let (status, jwks) = status_json(w.http.get(w.url("/oauth/jwks")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    let header = jwt_part(tokens["access_token"].as_str().unwrap(), 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], key["kid"]);
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["aud"], w.app.base);
    assert_eq!(claims["iss"], w.app.root);
    assert_eq!(claims["sub"], w.patient_account.id);
    assert_eq!(claims["client_id"], "growth-app");
    assert_eq!(claims["patient"], w.alice);
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() == 3600);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// The launches

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_patient_launch_reads_own_record_and_only_lab_results() {
    let w = World::new().await;
    let tokens = w
        .patient_tokens("launch/patient patient/Patient.rs patient/Observation.rs?category=laboratory offline_access")
        .await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["patient"], w.alice);
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(tokens["expires_in"], 3600);
    let at = tokens["access_token"].as_str().unwrap();

    let (s, p) = w.fhir(at, &format!("Patient/{}", w.alice)).await;
    assert_eq!(s, 200, "own Patient: {p}");
    assert_eq!(
        w.fhir(at, &format!("Patient/{}", w.bob)).await.0,
        404,
        "another patient"
    );
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.alice_lab)).await.0,
        200,
        "own lab result"
    );
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.alice_vitals))
            .await
            .0,
        404,
        "vital signs are outside the scope"
    );
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.bob_lab)).await.0,
        404
    );
    let (s, bundle) = w.fhir(at, "Observation").await;
    assert_eq!(s, 200);
    assert_eq!(ids(&bundle), vec![w.alice_lab.clone()]);
    // not granted at all
    assert_eq!(w.fhir(at, "Condition").await.0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehr_launch_carries_the_patient_and_confines_the_clinician_to_it() {
    let w = World::new().await;
    // the clinician's own API token reaches both patients (both are in their care)
    let r = w
        .clinician_api
        .get(format!("{}/Patient/{}", w.app.base, w.bob))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = w
        .clinician_api
        .post(w.url("/oauth/launch"))
        .json(&json!({"patient": w.alice}))
        .send()
        .await
        .unwrap();
    let (status, launch) = status_json(r).await;
    assert_eq!(status, 200, "{launch}");
    let launch = launch["launch"].as_str().unwrap().to_string();

    let p = pkce();
    let mut params = w.authorize_params("launch patient/*.rs", &p);
    params.push(("launch".into(), launch.clone()));
    let loc = w.approve(&params, &w.clinician).await;
    let code = query_param(&loc, "code").unwrap();
    let (status, tokens) = w.exchange(&code, &p).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["patient"], w.alice);
    assert_eq!(tokens["scope"], "launch patient/*.rs");
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.alice)).await.0, 200);
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.alice_vitals))
            .await
            .0,
        200
    );
    assert_eq!(
        w.fhir(at, &format!("Patient/{}", w.bob)).await.0,
        404,
        "confined to the launch patient"
    );
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.bob_lab)).await.0,
        404
    );
    let (_, all) = w.fhir(at, "Observation").await;
    let mut got = ids(&all);
    got.sort();
    let mut want = vec![w.alice_lab.clone(), w.alice_vitals.clone()];
    want.sort();
    assert_eq!(got, want);

    // another user cannot use this launch
    let p2 = pkce();
    let mut params = w.authorize_params("launch patient/*.rs", &p2);
    params.push(("launch".into(), launch));
    let (cookie, _) = w.session(&w.patient_account).await;
    let r = w.get_authorize(&params, Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_is_only_for_patients_the_clinician_may_see() {
    let w = World::new().await;
    let r = w
        .clinician_api
        .post(w.url("/oauth/launch"))
        .json(&json!({"patient": "no-such-patient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = w
        .http
        .post(w.url("/oauth/launch"))
        .json(&json!({"patient": w.alice}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "needs a bearer token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_user_is_sent_to_sign_in() {
    let w = World::new().await;
    let params = w.authorize_params("patient/Patient.rs", &pkce());
    let r = w.get_authorize(&params, None).await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(loc.starts_with("/login?next="), "{loc}");
    let next = query_param(&loc, "next").unwrap();
    assert!(next.starts_with("/oauth/authorize?"));
    assert!(next.contains("client_id=growth-app"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denying_consent_redirects_with_access_denied() {
    let w = World::new().await;
    let params = w.authorize_params("patient/Patient.rs", &pkce());
    let (cookie, csrf) = w.session(&w.patient_account).await;
    let mut form = params.clone();
    form.push(("csrf".into(), csrf));
    form.push(("decision".into(), "deny".into()));
    let r = w
        .http
        .post(w.url("/oauth/authorize"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_without_the_csrf_token_is_refused() {
    let w = World::new().await;
    let params = w.authorize_params("patient/Patient.rs", &pkce());
    let (cookie, _) = w.session(&w.patient_account).await;
    let mut form = params.clone();
    form.push(("csrf".into(), "forged".into()));
    form.push(("decision".into(), "approve".into()));
    let r = w
        .http
        .post(w.url("/oauth/authorize"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // and from another site
    let (cookie, csrf) = w.session(&w.patient_account).await;
    let mut form = params;
    form.push(("csrf".into(), csrf));
    form.push(("decision".into(), "approve".into()));
    let r = w
        .http
        .post(w.url("/oauth/authorize"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

// ---------------------------------------------------------------------------------------------------------
// PKCE (ONC (g)(10))

async fn authorize_error(w: &World, params: &[(String, String)]) -> String {
    let (cookie, _) = w.session(&w.patient_account).await;
    let r = w.get_authorize(params, Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    query_param(&loc, "error").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_missing_challenge_is_refused() {
    let w = World::new().await;
    let mut params = w.authorize_params("patient/Patient.rs", &pkce());
    params.retain(|(k, _)| k != "code_challenge" && k != "code_challenge_method");
    assert_eq!(authorize_error(&w, &params).await, "invalid_request");
    let mut params = w.authorize_params("patient/Patient.rs", &pkce());
    params.retain(|(k, _)| k != "code_challenge");
    assert_eq!(authorize_error(&w, &params).await, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_blank_challenge_is_refused() {
    let w = World::new().await;
    let mut params = w.authorize_params("patient/Patient.rs", &pkce());
    for (k, v) in params.iter_mut() {
        if k == "code_challenge" {
            *v = String::new();
        }
    }
    assert_eq!(authorize_error(&w, &params).await, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_plain_is_refused() {
    let w = World::new().await;
    let p = pkce();
    let mut params = w.authorize_params("patient/Patient.rs", &p);
    for (k, v) in params.iter_mut() {
        if k == "code_challenge_method" {
            *v = "plain".into();
        }
        if k == "code_challenge" {
            *v = p.verifier.clone();
        }
    }
    assert_eq!(authorize_error(&w, &params).await, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_wrong_or_missing_verifier_is_refused() {
    let w = World::new().await;
    let p = pkce();
    let code = w
        .code_for("patient/Patient.rs", &p, &w.patient_account)
        .await;
    let wrong = pkce();
    let (status, body) = w.exchange(&code, &wrong).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    // the code is spent even though the verifier was wrong
    assert_eq!(w.exchange(&code, &p).await.0, 400);

    let code = w
        .code_for("patient/Patient.rs", &p, &w.patient_account)
        .await;
    let (status, body) = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    let code = w
        .code_for("patient/Patient.rs", &p, &w.patient_account)
        .await;
    let (status, _) = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", ""),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 400, "blank verifier");
}

// ---------------------------------------------------------------------------------------------------------
// Codes, redirect URIs, clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_fails_and_revokes_its_tokens() {
    let w = World::new().await;
    let p = pkce();
    let code = w
        .code_for("patient/Patient.rs offline_access", &p, &w.patient_account)
        .await;
    let (status, tokens) = w.exchange(&code, &p).await;
    assert_eq!(status, 200);
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.alice)).await.0, 200);
    let (status, body) = w.exchange(&code, &p).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        w.fhir(at, &format!("Patient/{}", w.alice)).await.0,
        401,
        "tokens from the code are revoked"
    );
    let (status, _) = w
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 400, "and so is the refresh token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redirect_uri_is_refused() {
    let w = World::new().await;
    let mut params = w.authorize_params("patient/Patient.rs", &pkce());
    for (k, v) in params.iter_mut() {
        if k == "redirect_uri" {
            *v = "https://evil.example/callback".into();
        }
    }
    let (cookie, _) = w.session(&w.patient_account).await;
    let r = w.get_authorize(&params, Some(&cookie)).await;
    assert_eq!(
        r.status(),
        400,
        "an error page, never a redirect to an unregistered URI"
    );
    assert!(r.headers().get("location").is_none());

    // at the token endpoint: the redirect URI must be the authorization request's
    let p = pkce();
    let code = w
        .code_for("patient/Patient.rs", &p, &w.patient_account)
        .await;
    let (status, body) = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", &p.verifier),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_aud_in_the_authorization_request_is_refused() {
    let w = World::new().await;
    let mut params = w.authorize_params("patient/Patient.rs", &pkce());
    for (k, v) in params.iter_mut() {
        if k == "aud" {
            *v = "https://other.example/fhir".into();
        }
    }
    assert_eq!(authorize_error(&w, &params).await, "invalid_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_the_app_is_not_registered_for_are_not_granted() {
    let w = World::new().await;
    let tokens = w
        .patient_tokens("patient/Patient.rs patient/Observation.cruds system/*.rs")
        .await;
    assert_eq!(tokens["scope"], "patient/Patient.rs");
    let params = w.authorize_params("system/*.rs", &pkce());
    assert_eq!(authorize_error(&w, &params).await, "invalid_scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_is_refused() {
    let w = World::new().await;
    let mut params = w.authorize_params("patient/Patient.rs", &pkce());
    for (k, v) in params.iter_mut() {
        if k == "client_id" {
            *v = "no-such-app".into();
        }
    }
    let (cookie, _) = w.session(&w.patient_account).await;
    let r = w.get_authorize(&params, Some(&cookie)).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let (status, body) = w
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce().verifier),
            ("client_id", "no-such-app"),
        ])
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
}

async fn dev_client(w: &World) -> String {
    w.register(Client {
        client_id: "dev-tool".into(),
        name: "Local development tool".into(),
        redirect_uris: vec![],
        scopes: vec!["system/Patient.rs".into()],
        auth: ClientAuth::DevSecret {
            secret_hash: String::new(),
        },
        revoked: false,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_secret_is_refused() {
    let w = World::new().await;
    let secret = dev_client(&w).await;
    let r = w
        .http
        .post(w.url("/oauth/token"))
        .basic_auth("dev-tool", Some("wrong-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let (_, body) = status_json(r).await;
    assert_eq!(body["error"], "invalid_client");
    // the right secret works (local development only)
    let r = w
        .http
        .post(w.url("/oauth/token"))
        .basic_auth("dev-tool", Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_cannot_use_client_credentials() {
    let w = World::new().await;
    let (status, body) = w
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "growth-app"),
            ("scope", "system/*.rs"),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unauthorized_client");
    let (status, body) = w
        .token(&[("grant_type", "password"), ("client_id", "growth-app")])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
}

// ---------------------------------------------------------------------------------------------------------
// Refresh tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_bad_one_fails() {
    let w = World::new().await;
    let tokens = w
        .patient_tokens("launch/patient patient/Patient.rs offline_access")
        .await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_string();
    let refresh = |t: String| {
        let w = &w;
        async move {
            w.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t),
                ("client_id", "growth-app"),
            ])
            .await
        }
    };
    let (status, fresh) = refresh(r1.clone()).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["patient"], w.alice);
    let r2 = fresh["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "rotated");
    let at2 = fresh["access_token"].as_str().unwrap().to_string();
    assert_eq!(w.fhir(&at2, &format!("Patient/{}", w.alice)).await.0, 200);

    let (status, body) = refresh(random_text()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    // the rotated-out token fails, and its replay revokes the grant
    let (status, _) = refresh(r1).await;
    assert_eq!(status, 400);
    assert_eq!(w.fhir(&at2, &format!("Patient/{}", w.alice)).await.0, 401);
    assert_eq!(refresh(r2).await.0, 400);
}

// ---------------------------------------------------------------------------------------------------------
// Revoked apps, revocation, introspection

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_app_loses_its_tokens_at_once() {
    let w = World::new().await;
    let tokens = w.patient_tokens("patient/Patient.rs offline_access").await;
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.alice)).await.0, 200);
    let o = w.oauth.clone();
    blocking(move || o.revoke_client("growth-app", now_us()).unwrap()).await;
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.alice)).await.0, 401);
    let (status, body) = w
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    let (cookie, _) = w.session(&w.patient_account).await;
    let r = w
        .get_authorize(
            &w.authorize_params("patient/Patient.rs", &pkce()),
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_introspection() {
    let w = World::new().await;
    let secret = dev_client(&w).await;
    let tokens = w.patient_tokens("patient/Patient.rs offline_access").await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let introspect = |token: String| {
        let (w, secret) = (&w, secret.clone());
        async move {
            let r = w
                .http
                .post(w.url("/oauth/introspect"))
                .basic_auth("dev-tool", Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            status_json(r).await
        }
    };
    let (status, info) = introspect(at.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "growth-app");
    assert_eq!(info["scope"], "patient/Patient.rs offline_access");
    assert_eq!(info["patient"], w.alice);
    assert_eq!(introspect(rt.clone()).await.1["active"], true);
    assert_eq!(introspect("garbage".into()).await.1["active"], false);

    // introspection needs client authentication
    let r = w
        .http
        .post(w.url("/oauth/introspect"))
        .form(&[("token", at.as_str()), ("client_id", "growth-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // the app revokes its access token: it stops working at once
    let r = w
        .http
        .post(w.url("/oauth/revoke"))
        .form(&[("token", at.as_str()), ("client_id", "growth-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.fhir(&at, &format!("Patient/{}", w.alice)).await.0, 401);
    assert_eq!(introspect(at.clone()).await.1["active"], false);
    // revoking an unknown token is not an error
    let r = w
        .http
        .post(w.url("/oauth/revoke"))
        .form(&[("token", "nothing"), ("client_id", "growth-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // another client cannot revoke it
    let r = w
        .http
        .post(w.url("/oauth/revoke"))
        .basic_auth("dev-tool", Some(&secret))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(rt.clone()).await.1["active"], true);
    // revoking the refresh token ends the grant
    let r = w
        .http
        .post(w.url("/oauth/revoke"))
        .form(&[("token", rt.as_str()), ("client_id", "growth-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(rt.clone()).await.1["active"], false);
    let (status, _) = w
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 400);
}

// ---------------------------------------------------------------------------------------------------------
// Forged access tokens

async fn valid_token(w: &World) -> String {
    w.patient_tokens("patient/Patient.rs").await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_with_alg_none_is_refused() {
    let w = World::new().await;
    let at = valid_token(&w).await;
    let payload = at.split('.').nth(1).unwrap();
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "kid": jwt_part(&at, 0)["kid"]}),
    ] {
        let forged = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        assert_eq!(
            w.fhir(&forged, &format!("Patient/{}", w.alice)).await.0,
            401
        );
    }
    // HS256 "signed" with the public key (algorithm confusion)
    let h = json!({"alg": "HS256", "kid": jwt_part(&at, 0)["kid"]});
    let forged = format!(
        "{}.{payload}.{}",
        b64(h.to_string().as_bytes()),
        at.split('.').nth(2).unwrap()
    );
    assert_eq!(
        w.fhir(&forged, &format!("Patient/{}", w.alice)).await.0,
        401
    );
    assert_eq!(w.fhir(&at, &format!("Patient/{}", w.alice)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_with_a_wrong_kid_is_refused() {
    let w = World::new().await;
    let at = valid_token(&w).await;
    let mut parts: Vec<String> = at.split('.').map(str::to_string).collect();
    let mut header = jwt_part(&at, 0);
    header["kid"] = json!("some-other-key");
    parts[0] = b64(header.to_string().as_bytes());
    assert_eq!(
        w.fhir(&parts.join("."), &format!("Patient/{}", w.alice))
            .await
            .0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refused() {
    let w = World::new().await;
    let at = valid_token(&w).await;
    // the same claims, expired, signed with the server's own key
    let mut claims = jwt_part(&at, 1);
    let now = now_us() / 1_000_000;
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    let o = w.oauth.clone();
    let expired = blocking(move || o.signing_key(now_us()).unwrap().sign(&claims).unwrap()).await;
    let r = w
        .http
        .get(format!("{}/Patient/{}", w.app.base, w.alice))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_access_token_is_refused() {
    let w = World::new().await;
    let at = valid_token(&w).await;
    let parts: Vec<&str> = at.split('.').collect();
    // another patient in the payload
    let mut claims = jwt_part(&at, 1);
    claims["patient"] = json!(w.bob);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(w.fhir(&forged, &format!("Patient/{}", w.bob)).await.0, 401);
    // a changed signature
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap();
    sig[10] ^= 1;
    let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    assert_eq!(
        w.fhir(&forged, &format!("Patient/{}", w.alice)).await.0,
        401
    );
    // a token for another server
    let mut claims = jwt_part(&at, 1);
    claims["aud"] = json!("https://other.example/fhir");
    let o = w.oauth.clone();
    let other = blocking(move || o.signing_key(now_us()).unwrap().sign(&claims).unwrap()).await;
    assert_eq!(w.fhir(&other, &format!("Patient/{}", w.alice)).await.0, 401);
}

// ---------------------------------------------------------------------------------------------------------
// Backend services

struct Backend384 {
    pair: EcdsaKeyPair,
    jwks: Value,
}

fn es384_key() -> Backend384 {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = pair.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "backend-key-1", "use": "sig", "alg": "ES384",
                                "x": b64(&public[1..49]), "y": b64(&public[49..97])}]});
    Backend384 { pair, jwks }
}

impl Backend384 {
    fn assertion(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES384", "kid": "backend-key-1", "typ": "JWT"});
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", b64(sig.as_ref()))
    }
}

async fn backend_world() -> (World, Backend384) {
    backend_world_on(World::new().await).await
}

async fn backend_world_on(w: World) -> (World, Backend384) {
    let key = es384_key();
    w.register(Client {
        client_id: "bulk-export".into(),
        name: "Population health export (synthetic)".into(),
        redirect_uris: vec![],
        scopes: vec![
            "system/Patient.rs".into(),
            "system/Observation.rs?category=laboratory".into(),
        ],
        auth: ClientAuth::PrivateKeyJwt {
            jwks: key.jwks.clone(),
        },
        revoked: false,
    })
    .await;
    (w, key)
}

fn assertion_claims(w: &World, jti: &str) -> Value {
    let now = now_us() / 1_000_000;
    json!({"iss": "bulk-export", "sub": "bulk-export", "aud": format!("{}/oauth/token", w.app.root),
           "exp": now + 240, "jti": jti})
}

async fn client_credentials(w: &World, assertion: &str, scope: &str) -> (u16, Value) {
    w.token(&[
        ("grant_type", "client_credentials"),
        ("scope", scope),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_service_with_an_es384_key_gets_system_scopes_only() {
    let (w, key) = backend_world().await;
    let a = key.assertion(&assertion_claims(&w, &random_text()));
    let (status, tokens) = client_credentials(
        &w,
        &a,
        "system/Patient.rs system/Observation.rs?category=laboratory system/Condition.rs",
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        tokens["scope"],
        "system/Patient.rs system/Observation.rs?category=laboratory"
    );
    assert!(tokens.get("refresh_token").is_none());
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 1)["sub"], "bulk-export");
    // every patient, but only the granted types and categories
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.alice)).await.0, 200);
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.bob)).await.0, 200);
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.bob_lab)).await.0,
        200
    );
    assert_eq!(
        w.fhir(at, &format!("Observation/{}", w.alice_vitals))
            .await
            .0,
        404
    );
    assert_eq!(w.fhir(at, "Condition").await.0, 403);
    let (status, _) = w.fhir(at, "Patient").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_assertion_with_a_wrong_aud_is_refused() {
    let (w, key) = backend_world().await;
    let mut claims = assertion_claims(&w, &random_text());
    claims["aud"] = json!(w.app.base);
    let (status, body) = client_credentials(&w, &key.assertion(&claims), "system/Patient.rs").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_assertion_jti_is_refused() {
    let (w, key) = backend_world().await;
    let jti = random_text();
    let (status, _) = client_credentials(
        &w,
        &key.assertion(&assertion_claims(&w, &jti)),
        "system/Patient.rs",
    )
    .await;
    assert_eq!(status, 200);
    // the same jti in a new assertion
    let (status, body) = client_credentials(
        &w,
        &key.assertion(&assertion_claims(&w, &jti)),
        "system/Patient.rs",
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_assertions_signed_by_another_key_or_too_long_lived_are_refused() {
    let (w, key) = backend_world().await;
    let stranger = es384_key();
    let (status, _) = client_credentials(
        &w,
        &stranger.assertion(&assertion_claims(&w, &random_text())),
        "system/Patient.rs",
    )
    .await;
    assert_eq!(status, 401, "signed by a key not in the JWKS");
    let mut claims = assertion_claims(&w, &random_text());
    claims["exp"] = json!(now_us() / 1_000_000 + 3600);
    assert_eq!(
        client_credentials(&w, &key.assertion(&claims), "system/Patient.rs")
            .await
            .0,
        401
    );
    let mut claims = assertion_claims(&w, &random_text());
    claims["exp"] = json!(now_us() / 1_000_000 - 10);
    assert_eq!(
        client_credentials(&w, &key.assertion(&claims), "system/Patient.rs")
            .await
            .0,
        401
    );
    let mut claims = assertion_claims(&w, &random_text());
    claims["sub"] = json!("growth-app");
    assert_eq!(
        client_credentials(&w, &key.assertion(&claims), "system/Patient.rs")
            .await
            .0,
        401
    );
    let mut claims = assertion_claims(&w, &random_text());
    claims["iss"] = json!("no-such-client");
    claims["sub"] = json!("no-such-client");
    assert_eq!(
        client_credentials(&w, &key.assertion(&claims), "system/Patient.rs")
            .await
            .0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_api_tokens_keep_working() {
    let w = World::new().await;
    let r = w
        .clinician_api
        .get(format!("{}/Patient/{}", w.app.base, w.alice))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        w.app
            .get(&format!("Observation/{}", w.alice_vitals))
            .await
            .0,
        200
    );
}

// ---------------------------------------------------------------------------------------------------------
// The same flows on PostgreSQL (clients, keys, codes and revocation records in the other backend)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_standalone_refresh_revocation_and_backend_flows() {
    let Some(w) = World::on(Backend::Postgres).await else {
        return;
    };
    let tokens = w
        .patient_tokens("launch/patient patient/Patient.rs patient/Observation.rs?category=laboratory offline_access")
        .await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(w.fhir(&at, &format!("Patient/{}", w.alice)).await.0, 200);
    assert_eq!(w.fhir(&at, &format!("Patient/{}", w.bob)).await.0, 404);
    assert_eq!(
        w.fhir(&at, &format!("Observation/{}", w.alice_vitals))
            .await
            .0,
        404
    );
    let (status, fresh) = w
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "growth-app"),
        ])
        .await;
    assert_eq!(status, 200, "{fresh}");
    let r = w
        .http
        .post(w.url("/oauth/revoke"))
        .form(&[("token", at.as_str()), ("client_id", "growth-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.fhir(&at, &format!("Patient/{}", w.alice)).await.0, 401);

    let (w, key) = backend_world_on(w).await;
    let jti = random_text();
    let (status, tokens) = client_credentials(
        &w,
        &key.assertion(&assertion_claims(&w, &jti)),
        "system/Patient.rs",
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap();
    assert_eq!(w.fhir(at, &format!("Patient/{}", w.bob)).await.0, 200);
    assert_eq!(w.fhir(at, "Condition").await.0, 403);
    let (status, _) = client_credentials(
        &w,
        &key.assertion(&assertion_claims(&w, &jti)),
        "system/Patient.rs",
    )
    .await;
    assert_eq!(status, 401, "jti replay");
}
