//! The portal over HTTP against a real server (SQLite): sign-in answers that reveal nothing, lockout and its
//! race, TOTP enrolment, session cookies, fixation, logout, idle and absolute limits, CSRF on every mutating
//! route, security headers, the dependent switcher, "who viewed my record", forgotten passwords.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/portal.rs"]
mod portal_common;

use std::time::Duration;

use continuum_auth::{totp, SessionPolicy};
use continuum_web::WebConfig;
use portal_common::*;

/// Synthetic passwords: 15+ characters work without a second factor.
const LONG_PW: &str = "quartz-meadow-plover-7391";
const SHORT_PW: &str = "Vy7#kq2Lmw";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn enrolled_patient(app: &PortalApp, username: &str) -> (String, Vec<u8>, String) {
    let pid = app.patient("Riley", "Synthetic", 30, 3).await;
    let mut acct = patient_account(username, "Riley Synthetic", &pid);
    let secret = with_totp(&mut acct);
    let acct = app.account(acct, SHORT_PW).await;
    (acct.id, secret, pid)
}

async fn enrolled_staff(app: &PortalApp, username: &str, roles: &[&str]) -> (String, Vec<u8>) {
    let mut acct = staff_account(username, "Dr Quinn Example", roles);
    let secret = with_totp(&mut acct);
    let acct = app.account(acct, SHORT_PW).await;
    (acct.id, secret)
}

/// Sign in with password and a fresh code; asserts it worked.
async fn signed_in(app: &PortalApp, username: &str, account_id: &str, secret: &[u8]) -> Visitor {
    let mut v = app.visitor();
    let r = v
        .login(
            username,
            SHORT_PW,
            &next_code(app, account_id, secret).await,
        )
        .await;
    assert_eq!(r.status, 303, "sign-in failed: {}", r.body);
    assert!(v.session_cookie().is_some());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_identical_for_unknown_users_and_wrong_passwords() {
    let app = PortalApp::start().await;
    let (id, _secret, _) = enrolled_patient(&app, "riley").await;
    let mut v = app.visitor();
    let unknown = v.login("nobody-here", SHORT_PW, "123456").await;
    let wrong_pw = v.login("riley", "not-the-password", "123456").await;
    let wrong_code = v.login("riley", SHORT_PW, "000000").await;
    for r in [&unknown, &wrong_pw, &wrong_code] {
        assert_eq!(r.status, 401);
        assert!(v.session_cookie().is_none());
    }
    let msg = unknown.alert().unwrap();
    assert_eq!(wrong_pw.alert().unwrap(), msg);
    assert_eq!(wrong_code.alert().unwrap(), msg);
    assert!(msg.contains("wrong"), "{msg}");
    // apart from the user name echoed into the form, the pages are the same
    assert_eq!(
        unknown.body.replace("nobody-here", "X"),
        wrong_pw.body.replace("riley", "X")
    );
    // every refusal is audited, for the known account under its id
    let rows = app.audit_of_agent(&id).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r.record.subtype == "login" && r.record.outcome == "4")
            .count(),
        2
    );
    let anon = app.audit_of_agent("anonymous").await;
    assert!(anon.iter().any(|r| r.record.subtype == "login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_account() {
    let app = PortalApp::start().await;
    let (id, secret, _) = enrolled_patient(&app, "lockme").await;
    let mut v = app.visitor();
    for _ in 0..5 {
        let r = v.login("lockme", "wrong-password-x", "123456").await;
        assert_eq!(r.status, 401);
    }
    let r = v.login("lockme", SHORT_PW, &code_now(&secret)).await;
    assert_eq!(
        r.status, 401,
        "the right password must fail on a locked account"
    );
    assert!(v.session_cookie().is_none());
    assert!(app.reload(&id).await.locked_until.is_some());
    // and the message is the same one
    let unknown = v.login("nobody", "x", "").await;
    assert_eq!(r.alert(), unknown.alert());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_get_at_most_five_checks() {
    let app = PortalApp::start().await;
    let (id, secret, _) = enrolled_patient(&app, "racer").await;
    let mut v = app.visitor();
    let csrf = v.get("/login").await.csrf();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut v = v.clone();
        let csrf = csrf.clone();
        tasks.push(tokio::spawn(async move {
            let pw = format!("wrong-password-{i}");
            v.post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("username", "racer"),
                    ("password", &pw),
                    ("code", "123456"),
                ],
            )
            .await
            .status
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status == 401 || status == 429, "status {status}");
    }
    // the store counted at most 5 attempts (each one is counted before its password check)
    let db = rusqlite::Connection::open(&app.db_path).unwrap();
    let counted: i64 = db
        .query_row(
            "SELECT count(*) FROM login_attempt WHERE account_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(counted <= 5, "{counted} password checks");
    assert!(counted >= 1);
    assert!(app.reload(&id).await.locked_until.is_some());
    // the right password fails now (from another address the throttle would not apply: call the service)
    let auth = app.state.auth.clone();
    let code = code_now(&secret);
    let r = tokio::task::spawn_blocking(move || {
        auth.login("racer", SHORT_PW, Some(&code), "192.0.2.10", now_us())
    })
    .await
    .unwrap();
    assert!(r.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_attributes_and_no_fixation() {
    let app = PortalApp::start().await;
    let (id, secret, _) = enrolled_patient(&app, "cookie").await;
    let mut v = app.visitor();
    // a session id planted before sign-in is not the one after
    v.cookies.insert(
        "continuum_session".into(),
        "planted-by-an-attacker-000000000000000000".into(),
    );
    let r = v.login("cookie", SHORT_PW, &code_now(&secret)).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location().as_deref(), Some("/portal"));
    let set = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("continuum_session="))
        .unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let first = v.session_cookie().unwrap();
    assert_ne!(first, "planted-by-an-attacker-000000000000000000");
    assert_eq!(v.get("/portal").await.status, 200);

    // signing in again (e.g. a shared computer) gives a new id and ends the old session
    let r = v
        .login("cookie", SHORT_PW, &next_code(&app, &id, &secret).await)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let second = v.session_cookie().unwrap();
    assert_ne!(first, second);
    let mut old = app.visitor();
    old.cookies.insert("continuum_session".into(), first);
    let r = old.get("/portal").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location().as_deref(), Some("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls_the_cookie_is_host_prefixed_and_secure_and_hsts_is_sent() {
    let app = PortalApp::start_with(WebConfig {
        tls: true,
        ..WebConfig::default()
    })
    .await;
    let (_, secret, _) = enrolled_patient(&app, "tlsuser").await;
    let mut v = app.visitor();
    v.origin = Some(format!("https://{}", app.host));
    let page = v.get("/login").await;
    assert!(page
        .header("strict-transport-security")
        .unwrap()
        .contains("max-age=31536000"));
    assert!(v.cookies.contains_key("__Host-continuum_csrf"));
    let r = v.login("tlsuser", SHORT_PW, &code_now(&secret)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-continuum_session="))
        .unwrap();
    assert!(set.contains("; Secure"), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"));
    // an http:// origin is not this https server
    let mut plain = app.visitor();
    let csrf = plain.get("/login").await.csrf();
    let r = plain
        .post(
            "/login",
            &[("csrf", &csrf), ("username", "tlsuser"), ("password", "x")],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_at_once() {
    let app = PortalApp::start().await;
    let (id, secret, _) = enrolled_patient(&app, "leaver").await;
    let mut v = signed_in(&app, "leaver", &id, &secret).await;
    let cookie = v.session_cookie().unwrap();
    let portal = v.get("/portal").await;
    assert_eq!(portal.status, 200);
    let r = v.post("/logout", &[("csrf", &portal.csrf())]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location().as_deref(), Some("/"));
    assert!(r
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("continuum_session=;") && c.contains("Max-Age=0")));
    let mut replay = app.visitor();
    replay.cookies.insert("continuum_session".into(), cookie);
    let r = replay.get("/portal").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location().as_deref(), Some("/login"));
    let rows = app.audit_of_agent(&id).await;
    assert!(rows.iter().any(|r| r.record.subtype == "logout"));
    assert!(rows
        .iter()
        .any(|r| r.record.subtype == "login" && r.record.outcome == "0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_absolute_limits_with_a_controlled_clock() {
    let app = PortalApp::start().await;
    let (id, _) = enrolled_staff(&app, "clocked", &["physician"]).await;
    let account = app.reload(&id).await;
    let auth = app.state.auth.clone();
    tokio::task::spawn_blocking(move || {
        let policy = SessionPolicy::default(); // staff 15 min idle, 12 h absolute
        let sec = 1_000_000i64;
        let t0 = 1_900_000_000 * sec;
        let (token, _) = auth.start_session(&policy, &account, t0).unwrap();
        assert!(auth
            .session(&policy, &token, t0 + 14 * 60 * sec)
            .unwrap()
            .is_some());
        // idle: 15 minutes after the last use it is gone, and stays gone
        assert!(auth
            .session(&policy, &token, t0 + (14 + 15) * 60 * sec)
            .unwrap()
            .is_none());
        assert!(auth
            .session(&policy, &token, t0 + 30 * 60 * sec)
            .unwrap()
            .is_none());

        // a use within a fifteenth of the limit (a minute) is not written, so the limit runs from the last
        // written use: used at 30 s, it ends 15 minutes after it began
        let (token, _) = auth.start_session(&policy, &account, t0).unwrap();
        assert!(auth
            .session(&policy, &token, t0 + 30 * sec)
            .unwrap()
            .is_some());
        assert!(auth
            .session(&policy, &token, t0 + 15 * 60 * sec)
            .unwrap()
            .is_none());

        // absolute: used every 10 minutes, it still ends 12 hours after it began
        let (token, _) = auth.start_session(&policy, &account, t0).unwrap();
        let mut t = t0;
        while t + 10 * 60 * sec < t0 + 12 * 3600 * sec {
            t += 10 * 60 * sec;
            assert!(
                auth.session(&policy, &token, t).unwrap().is_some(),
                "at {t}"
            );
        }
        assert!(auth
            .session(&policy, &token, t0 + 12 * 3600 * sec)
            .unwrap()
            .is_none());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_over_http() {
    let app = PortalApp::start_with(WebConfig {
        sessions: SessionPolicy {
            staff_idle_secs: 1,
            patient_idle_secs: 1,
            absolute_secs: 3600,
        },
        ..WebConfig::default()
    })
    .await;
    let (id, secret) = enrolled_staff(&app, "idler", &["nurse"]).await;
    let mut v = signed_in(&app, "idler", &id, &secret).await;
    assert_eq!(v.get("/workspace").await.status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = v.get("/workspace").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location().as_deref(), Some("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_limit_over_http() {
    let app = PortalApp::start_with(WebConfig {
        sessions: SessionPolicy {
            staff_idle_secs: 3600,
            patient_idle_secs: 3600,
            absolute_secs: 2,
        },
        ..WebConfig::default()
    })
    .await;
    let (id, secret) = enrolled_staff(&app, "marathon", &["nurse"]).await;
    let mut v = signed_in(&app, "marathon", &id, &secret).await;
    for _ in 0..3 {
        assert_eq!(v.get("/workspace").await.status, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = v.get("/workspace").await;
    assert_eq!(
        r.status, 303,
        "kept in use, the session still ends at its absolute limit"
    );
}

/// Every POST route: no token, a wrong token, a foreign Origin, and neither Origin nor Referer are refused
/// (403); the right token from this origin is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_on_every_mutating_route() {
    let app = PortalApp::start().await;
    let (id, secret, pid) = enrolled_patient(&app, "csrfuser").await;
    let child = app.patient("Kit", "Synthetic", 8, 10).await;
    let auth = app.state.auth.clone();
    let child2 = child.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || {
        let mut a = auth.by_id(&id2).unwrap().unwrap();
        a.proxies.push(parent_of(&child2));
        auth.update(&a).unwrap();
    })
    .await
    .unwrap();

    // pre-session forms
    let mut anon = app.visitor();
    let pre = anon.get("/login").await.csrf();
    let pre_routes: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "/login",
            vec![("username", "csrfuser"), ("password", SHORT_PW)],
        ),
        ("/login/card", vec![]),
        ("/enroll-totp", vec![("code", "123456")]),
        ("/forgot", vec![("username", "csrfuser")]),
        (
            "/reset",
            vec![("token", "x"), ("password", "p"), ("confirm", "p")],
        ),
    ];
    for (route, fields) in &pre_routes {
        let attempts = forged(&anon, &pre, fields);
        for (what, mut v, fields) in attempts {
            let r = v.post(route, &fields).await;
            assert_eq!(r.status, 403, "{route}: {what}: {}", r.body);
        }
    }

    // signed-in forms
    let mut v = signed_in(&app, "csrfuser", &id, &secret).await;
    let token = v.get("/portal").await.csrf();
    let session_routes: [(&str, Vec<(&str, &str)>); 2] = [
        ("/portal/switch", vec![("patient", child.as_str())]),
        ("/logout", vec![]),
    ];
    for (route, fields) in &session_routes {
        for (what, mut forger, fields) in forged(&v, &token, fields) {
            let r = forger.post(route, &fields).await;
            assert_eq!(r.status, 403, "{route}: {what}");
        }
    }
    // the pre-session token is no session token
    let r = v
        .post("/portal/switch", &[("csrf", &pre), ("patient", &child)])
        .await;
    assert_eq!(r.status, 403);
    // the session is untouched by all that, and the genuine forms work
    let r = v
        .post("/portal/switch", &[("csrf", &token), ("patient", &child)])
        .await;
    assert_eq!(r.status, 303);
    let r = v
        .post("/portal/switch", &[("csrf", &token), ("patient", &pid)])
        .await;
    assert_eq!(r.status, 303);
    // what a browser sends for our own pages (Referrer-Policy: no-referrer): Origin null, Fetch Metadata
    // same-origin
    let mut browser_like = v.clone();
    browser_like.origin = Some("null".into());
    browser_like.fetch_site = Some("same-origin".into());
    let r = browser_like
        .post("/portal/switch", &[("csrf", &token), ("patient", &child)])
        .await;
    assert_eq!(r.status, 303);
    // a Referer of this site stands in for a missing Origin (older browsers)
    let mut referred = v.clone();
    referred.origin = None;
    let r = referred
        .client
        .post(format!("{}/logout", app.root))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "cookie",
            format!("continuum_session={}", v.session_cookie().unwrap()),
        )
        .header("referer", format!("{}/portal", app.root))
        .body(format!("csrf={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(v.get("/portal").await.status, 303, "logged out");
}

/// A forged form: what is wrong with it, who sends it, its fields.
type Forged<'a> = (&'static str, Visitor, Vec<(&'a str, &'a str)>);

/// Copies of `v` sending the form with no token, a wrong token, a foreign origin, no origin at all, `null`
/// origins from elsewhere.
fn forged<'a>(v: &Visitor, token: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<Forged<'a>> {
    let with = |t: &'a str| {
        let mut f = vec![("csrf", t)];
        f.extend_from_slice(fields);
        f
    };
    let mut foreign = v.clone();
    foreign.origin = Some("https://evil.example".into());
    let mut foreign_http = v.clone();
    foreign_http.origin = Some(format!("{}.evil.example", v.root));
    let mut null_origin = v.clone();
    null_origin.origin = Some("null".into());
    let mut no_origin = v.clone();
    no_origin.origin = None;
    let mut null_cross_site = v.clone();
    null_cross_site.origin = Some("null".into());
    null_cross_site.fetch_site = Some("cross-site".into());
    let mut null_same_site = v.clone();
    null_same_site.origin = Some("null".into());
    null_same_site.fetch_site = Some("same-site".into());
    let mut foreign_claiming_same = v.clone();
    foreign_claiming_same.origin = Some("https://evil.example".into());
    foreign_claiming_same.fetch_site = Some("same-origin".into());
    vec![
        ("no token", v.clone(), fields.to_vec()),
        ("empty token", v.clone(), with("")),
        (
            "wrong token",
            v.clone(),
            with("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
        ("foreign origin", foreign, with(token)),
        ("look-alike origin", foreign_http, with(token)),
        ("null origin", null_origin, with(token)),
        ("no origin or referer", no_origin, with(token)),
        (
            "null origin from another site",
            null_cross_site,
            with(token),
        ),
        (
            "null origin from a sibling site",
            null_same_site,
            with(token),
        ),
        ("foreign origin", foreign_claiming_same, with(token)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_pages_api_errors_and_assets() {
    let app = PortalApp::start().await;
    let mut v = app.visitor();
    let api = reqwest::get(format!("{}/fhir/metadata", app.root))
        .await
        .unwrap();
    let api_headers = api.headers().clone();
    let api_denied = reqwest::get(format!("{}/fhir/Patient", app.root))
        .await
        .unwrap();
    let pages = [
        ("page", v.get("/login").await.headers),
        ("landing", v.get("/").await.headers),
        ("404", v.get("/no/such/page").await.headers),
        ("api", api_headers),
        ("api 401", api_denied.headers().clone()),
    ];
    for (what, h) in &pages {
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            get("content-security-policy").as_deref(),
            Some(CSP),
            "{what}"
        );
        assert_eq!(
            get("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            get("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{what}"
        );
        assert_eq!(
            get("cross-origin-opener-policy").as_deref(),
            Some("same-origin"),
            "{what}"
        );
        assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{what}");
        assert_eq!(get("cache-control").as_deref(), Some("no-store"), "{what}");
        assert!(
            get("strict-transport-security").is_none(),
            "{what}: no HSTS on plain HTTP"
        );
    }
    let css = v.get("/static/portal.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(!css.header("cache-control").unwrap().contains("no-store"));
    assert_eq!(css.header("content-security-policy").as_deref(), Some(CSP));
    // the pages carry no inline script or style
    for path in ["/", "/login", "/forgot"] {
        let body = v.get(path).await.body;
        assert!(!body.contains("<script"), "{path}");
        assert!(!body.contains("style="), "{path}");
        assert!(body.contains("<html lang=\"en\">"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_over_http() {
    let app = PortalApp::start().await;
    let pid = app.patient("Emery", "Synthetic", 40, 0).await;
    app.condition(&pid, "Seasonal allergic rhinitis", false)
        .await;
    let acct = app
        .account(patient_account("emery", "Emery Synthetic", &pid), LONG_PW)
        .await;
    let mut v = app.visitor();
    let r = v.login("emery", LONG_PW, "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location().as_deref(), Some("/enroll-totp"));
    assert!(
        v.session_cookie().is_none(),
        "no session before the second factor"
    );
    let page = v.get("/enroll-totp").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg"), "QR code");
    let start = page.body.find("id=\"totp-secret\">").unwrap() + "id=\"totp-secret\">".len();
    let end = page.body[start..].find('<').unwrap();
    let secret = totp::from_base32(&page.body[start..start + end]).unwrap();
    let csrf = page.csrf();
    // a wrong code keeps the visitor on the page
    let r = v
        .post("/enroll-totp", &[("csrf", &csrf), ("code", "000000")])
        .await;
    assert_eq!(r.status, 400);
    assert!(r.alert().is_some());
    let r = v
        .post(
            "/enroll-totp",
            &[("csrf", &csrf), ("code", &code_now(&secret))],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location().as_deref(), Some("/portal"));
    let home = v.get("/portal").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("Seasonal allergic rhinitis"));
    let stored = app.reload(&acct.id).await;
    assert!(stored.totp_secret.is_some());
    // the enrolment cannot be replayed
    let r = v.get("/enroll-totp").await;
    assert_eq!(r.status, 303);
    // from now on the code is required
    let mut other = app.visitor();
    let r = other.login("emery", LONG_PW, "").await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_summary_and_the_switcher_follow_the_policy() {
    let app = PortalApp::start().await;
    let own = app.patient("Sam", "Sponsor", 38, 0).await;
    let young = app.patient("Ada", "Sponsor", 8, 30).await;
    let teen = app.patient("Ben", "Sponsor", 14, 30).await;
    let stranger = app.patient("Other", "Person", 9, 0).await;
    app.condition(&own, "Hypertension", false).await;
    app.medication(&own, "Lisinopril 10 mg").await;
    app.allergy(&own, "Peanut").await;
    app.lab(&own, "Hemoglobin A1c", 5.4, "%", "2025-01-10")
        .await;
    app.lab(&own, "Older glucose", 5.0, "mmol/L", "2023-01-10")
        .await;
    app.condition(&young, "Ear infection", false).await;
    app.condition(&young, "Young child counselling", true).await;
    app.condition(&teen, "Sprained ankle", false).await;
    app.condition(&teen, "Teen anxiety care", true).await;
    app.condition(&stranger, "Stranger condition", false).await;
    let mut acct = patient_account("sam", "Sam Sponsor", &own);
    acct.proxies = vec![parent_of(&young), parent_of(&teen)];
    let secret = with_totp(&mut acct);
    let acct = app.account(acct, SHORT_PW).await;
    let mut v = signed_in(&app, "sam", &acct.id, &secret).await;

    let home = v.get("/portal").await;
    assert_eq!(home.status, 200);
    for text in [
        "Hypertension",
        "Lisinopril 10 mg",
        "Peanut",
        "Hemoglobin A1c",
        "Ada Sponsor",
        "Ben Sponsor",
    ] {
        assert!(home.body.contains(text), "{text}");
    }
    assert!(
        home.body.find("Hemoglobin A1c").unwrap() < home.body.find("Older glucose").unwrap(),
        "newest result first"
    );
    assert!(!home.body.contains("Stranger"));
    let token = home.csrf();

    // a patient out of reach is refused, and nothing changes
    let r = v
        .post(
            "/portal/switch",
            &[("csrf", &token), ("patient", &stranger)],
        )
        .await;
    assert_eq!(r.status, 403);
    let home = v.get("/portal").await;
    assert!(home.body.contains("Hypertension") && !home.body.contains("Stranger"));

    let r = v
        .post("/portal/switch", &[("csrf", &token), ("patient", &young)])
        .await;
    assert_eq!(r.status, 303);
    let page = v.get("/portal").await;
    assert!(page.body.contains("Ear infection"));
    assert!(
        page.body.contains("Young child counselling"),
        "under 12: everything"
    );
    assert!(!page.body.contains("Hypertension"));

    let r = v
        .post("/portal/switch", &[("csrf", &token), ("patient", &teen)])
        .await;
    assert_eq!(r.status, 303);
    let page = v.get("/portal").await;
    assert!(page.body.contains("Sprained ankle"));
    assert!(
        !page.body.contains("Teen anxiety care"),
        "12 to 17: no sensitive items"
    );
    assert!(page.body.contains("id=\"hidden-note\""));

    // the access log is the account's own record's, whoever is being viewed
    let log = v.get("/portal/access-log").await;
    assert_eq!(log.status, 200);
    assert!(!log.body.contains("Teen anxiety care"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_shows_a_staff_read() {
    let app = PortalApp::start().await;
    let (id, secret, pid) = enrolled_patient(&app, "watched").await;
    let (staff_id, _) = enrolled_staff(&app, "pharm", &["pharmacist"]).await;
    let api = app.api_client(&staff_id).await;
    let r = api
        .get(format!("{}/fhir/Patient/{pid}", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut v = signed_in(&app, "watched", &id, &secret).await;
    let log = v.get("/portal/access-log").await;
    assert_eq!(log.status, 200);
    assert!(
        log.body.contains("Dr Quinn Example (pharmacist)"),
        "{}",
        log.body
    );
    assert!(log.body.contains("Opened"));
    assert!(log.body.contains("Allowed"));
    // the patient's own portal views are not listed as someone else's
    v.get("/portal").await;
    let log = v.get("/portal/access-log").await;
    assert!(!log.body.contains("<td>Riley Synthetic"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_land_on_the_workspace_and_patients_cannot_open_it() {
    let app = PortalApp::start().await;
    let (sid, ssecret) = enrolled_staff(&app, "medic1", &["medic", "nurse"]).await;
    let mut staff = app.visitor();
    let r = staff.login("medic1", SHORT_PW, &code_now(&ssecret)).await;
    assert_eq!(r.location().as_deref(), Some("/workspace"));
    let w = staff.get("/workspace").await;
    assert_eq!(w.status, 200);
    assert!(
        w.body.contains("Dr Quinn Example") && w.body.contains("medic") && w.body.contains("nurse")
    );
    assert_eq!(
        staff.get("/portal").await.location().as_deref(),
        Some("/workspace")
    );
    let _ = sid;
    let (pid, psecret, _) = enrolled_patient(&app, "pat1").await;
    let mut p = signed_in(&app, "pat1", &pid, &psecret).await;
    assert_eq!(
        p.get("/workspace").await.location().as_deref(),
        Some("/portal")
    );
    // and without a session, every page sends to the sign-in page
    let mut anon = app.visitor();
    for path in ["/portal", "/portal/access-log", "/workspace"] {
        assert_eq!(
            anon.get(path).await.location().as_deref(),
            Some("/login"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_password_reset_unlocks_and_ends_sessions() {
    let app = PortalApp::start().await;
    let (id, secret, _) = enrolled_patient(&app, "forgetful").await;
    let mut session = signed_in(&app, "forgetful", &id, &secret).await;
    // lock the account
    let mut v = app.visitor();
    for _ in 0..5 {
        v.login("forgetful", "wrong-password-x", "").await;
    }
    assert!(app.reload(&id).await.locked_until.is_some());

    let form = v.get("/forgot").await;
    let r_known = v
        .post(
            "/forgot",
            &[("csrf", &form.csrf()), ("username", "forgetful")],
        )
        .await;
    let r_unknown = v
        .post(
            "/forgot",
            &[("csrf", &form.csrf()), ("username", "no-such-user")],
        )
        .await;
    assert_eq!(r_known.status, 200);
    assert_eq!(r_known.body, r_unknown.body, "same answer either way");
    assert!(r_known.body.contains("If the account exists"));

    // the mail is written after the answer: wait for it
    let store = app.state.fhir.store().clone();
    let mut mail = None;
    for _ in 0..50 {
        let s = store.clone();
        let pending = tokio::task::spawn_blocking(move || s.accounts().pending_mail(10).unwrap())
            .await
            .unwrap();
        if let Some(m) = pending.into_iter().next() {
            mail = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = mail.expect("a reset mail in the outbox");
    assert_eq!(mail.recipient, "forgetful@example.invalid");
    let link_start = mail.body.find("/reset?token=").unwrap() + "/reset?token=".len();
    let token: String = mail.body[link_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert!(mail.body.contains(&format!("{}/reset?token=", app.root)));

    let page = v.get(&format!("/reset?token={token}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("name=\"code\""),
        "the TOTP code is asked for"
    );
    let csrf = page.csrf();
    let new_pw = "Granite-Orchid-Lantern-58";
    // the TOTP code is required
    let r = v
        .post(
            "/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", new_pw),
                ("confirm", new_pw),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    let code = next_code(&app, &id, &secret).await;
    let r = v
        .post(
            "/reset",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", new_pw),
                ("confirm", new_pw),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location().as_deref(), Some("/login?m=reset"));
    // unlocked, old sessions gone, link used up
    assert!(app.reload(&id).await.locked_until.is_none());
    assert_eq!(session.get("/portal").await.status, 303);
    let again = v.get(&format!("/reset?token={token}")).await;
    assert_eq!(again.status, 400);
    // the new password works
    let mut fresh = app.visitor();
    let r = fresh
        .login("forgetful", new_pw, &next_code(&app, &id, &secret).await)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_returns_to_a_local_next_page_only() {
    let app = PortalApp::start().await;
    let (id, secret) = enrolled_staff(&app, "nexter", &["physician"]).await;
    let mut v = app.visitor();
    let page = v
        .get("/login?next=%2Foauth%2Fauthorize%3Fclient_id%3Dapp")
        .await;
    assert_eq!(
        hidden_field(&page.body, "next").as_deref(),
        Some("/oauth/authorize?client_id=app")
    );
    let r = v
        .post(
            "/login",
            &[
                ("csrf", &page.csrf()),
                ("username", "nexter"),
                ("password", SHORT_PW),
                ("code", &next_code(&app, &id, &secret).await),
                ("next", "/oauth/authorize?client_id=app"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.location().as_deref(),
        Some("/oauth/authorize?client_id=app")
    );
    // never to another site
    let evil_targets = [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
    ];
    for (n, evil) in evil_targets.into_iter().enumerate() {
        // one account per case: each signs in with its own first code, without waiting for a new one
        let username = format!("nexter{n}");
        let (id, secret) = enrolled_staff(&app, &username, &["physician"]).await;
        let page = v.get("/login").await;
        assert!(hidden_field(&page.body, "next").is_none());
        let r = v
            .post(
                "/login",
                &[
                    ("csrf", &page.csrf()),
                    ("username", &username),
                    ("password", SHORT_PW),
                    ("code", &next_code(&app, &id, &secret).await),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{evil}: {}", r.body);
        assert_eq!(r.location().as_deref(), Some("/workspace"), "{evil}");
    }
}

/// A throwaway CA (made here with rcgen) and a CAC-like card certificate: (CA PEM, card PEM).
fn card_certificates(ca_name: &str, card_cn: &str) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(30);
    ca.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut card = CertificateParams::default();
    card.distinguished_name.push(DnType::CommonName, card_cn);
    card.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    card.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    card.not_before = now - time::Duration::days(1);
    card.not_after = now + time::Duration::days(365);
    let card_key = KeyPair::generate().unwrap();
    let card_cert = card.signed_by(&card_key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), card_cert.pem())
}

/// nginx's `$ssl_client_escaped_cert`.
fn escaped(pem: &str) -> String {
    pem.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_card_sign_in_through_a_trusted_proxy() {
    use continuum_auth::cert::{IdentityField, TrustConfig};
    let (ca_pem, card_pem) = card_certificates("Synthetic Test Root CA", "DOE.JANE.Q.1234567890");
    let (_, stranger_pem) = card_certificates("Synthetic Test Root CA", "ROE.RICHARD.5550001111");
    let (_, foreign_pem) = card_certificates("Another Root CA", "DOE.JANE.Q.1234567890");
    let trust = TrustConfig::from_pem(
        ca_pem.as_bytes(),
        &[],
        IdentityField::SubjectCommonNameSuffix,
    )
    .unwrap();
    let app = PortalApp::start_with(WebConfig {
        client_trust: Some(std::sync::Arc::new(trust)),
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..WebConfig::default()
    })
    .await;
    let mut acct = staff_account("jdoe", "Jane Doe", &["physician"]);
    acct.cert_id = Some("1234567890".into());
    let acct = app.account(acct, LONG_PW).await;

    let mut v = app.visitor();
    let page = v.get("/login").await;
    assert!(page.body.contains("Sign in with smart card"));
    // a card of the right CA but linked to no account, and the right name from another CA: refused alike
    for pem in [&stranger_pem, &foreign_pem] {
        let mut c = v.clone();
        c.headers = vec![("x-ssl-client-cert".into(), escaped(pem))];
        let r = c.post("/login/card", &[("csrf", &page.csrf())]).await;
        assert_eq!(r.status, 401);
        assert!(r.alert().unwrap().contains("smart card"));
        assert!(c.session_cookie().is_none());
    }
    v.headers = vec![("x-ssl-client-cert".into(), escaped(&card_pem))];
    let r = v.post("/login/card", &[("csrf", &page.csrf())]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location().as_deref(), Some("/workspace"));
    assert!(v.get("/workspace").await.body.contains("Jane Doe"));
    let rows = app.audit_of_agent(&acct.id).await;
    assert!(rows
        .iter()
        .any(|r| r.record.subtype == "login" && r.record.outcome == "0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_card_without_a_certificate_is_refused() {
    let app = PortalApp::start().await;
    let mut v = app.visitor();
    let csrf = v.get("/login").await.csrf();
    let r = v.post("/login/card", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 401);
    assert!(r.alert().unwrap().contains("smart card"));
    assert!(v.session_cookie().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_see_audit_reports_and_others_do_not() {
    let app = PortalApp::start().await;
    let (_, _, pid) = enrolled_patient(&app, "audited").await;
    let (staff_id, _) = enrolled_staff(&app, "pharm2", &["pharmacist"]).await;
    let api = app.api_client(&staff_id).await;
    let r = api
        .get(format!("{}/fhir/Patient/{pid}", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let (admin_id, admin_secret) = enrolled_staff(&app, "admin1", &["administrator"]).await;
    let mut admin = app.visitor();
    admin
        .login(
            "admin1",
            SHORT_PW,
            &next_code(&app, &admin_id, &admin_secret).await,
        )
        .await;
    let w = admin.get("/workspace").await;
    assert!(w.body.contains("id=\"audit-link\""), "{}", w.body);
    let report = admin.get(&format!("/workspace/audit?patient={pid}")).await;
    assert_eq!(report.status, 200);
    assert!(report.body.contains("pharm2"), "{}", report.body);
    assert!(report.body.contains("read"), "{}", report.body);
    let by_user = admin.get("/workspace/audit?user=pharm2").await;
    assert!(by_user.body.contains(&pid), "{}", by_user.body);
    let bad = admin.get("/workspace/audit?from=yesterday").await;
    assert_eq!(bad.status, 400);
    // looking at the log is itself recorded
    let again = admin.get("/workspace/audit?user=admin1").await;
    assert!(again.body.contains("search-type"), "{}", again.body);

    let (other_id, other_secret) = enrolled_staff(&app, "nurse9", &["nurse"]).await;
    let mut nurse = app.visitor();
    nurse
        .login(
            "nurse9",
            SHORT_PW,
            &next_code(&app, &other_id, &other_secret).await,
        )
        .await;
    let w = nurse.get("/workspace").await;
    assert!(!w.body.contains("audit-link"));
    assert_eq!(nurse.get("/workspace/audit").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_see_query_plans_and_others_do_not() {
    let app = PortalApp::start().await;
    let (admin_id, admin_secret) = enrolled_staff(&app, "admin2", &["administrator"]).await;
    let mut admin = app.visitor();
    admin
        .login(
            "admin2",
            SHORT_PW,
            &next_code(&app, &admin_id, &admin_secret).await,
        )
        .await;
    assert!(admin
        .get("/workspace")
        .await
        .body
        .contains("id=\"explain-link\""));
    let empty = admin.get("/workspace/explain").await;
    assert_eq!(empty.status, 200);
    assert!(!empty.body.contains("id=\"plan\""));

    // a patient-scoped search: the plan looks the patient up in the reference index, no table scan
    let r = admin
        .get("/workspace/explain?search=Observation%3Fpatient%3D123%26code%3Dhttp%3A%2F%2Floinc.org%7C4548-4%26_sort%3D-date")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("id=\"plan\""), "{}", r.body);
    assert!(r.body.contains("idx_reference"), "{}", r.body);
    assert!(
        r.body.contains("USING"),
        "SQLite names the index it uses: {}",
        r.body
    );
    assert!(
        !r.body.contains("SCAN r\n") && !r.body.contains("SCAN resource\n"),
        "no scan of the resource table: {}",
        r.body
    );
    // copied with the base URL in front works too
    let full = admin
        .get("/workspace/explain?search=http%3A%2F%2Fexample.org%2Ffhir%2FPatient%3Ffamily%3DSynthetic")
        .await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert!(full.body.contains("idx_string"), "{}", full.body);
    // a parameter that would be ignored is an error here, so the plan shown is always the whole query's
    let bad = admin
        .get("/workspace/explain?search=Patient%3Fnot-a-parameter%3D1")
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id=\"explain-error\""), "{}", bad.body);
    let unknown = admin
        .get("/workspace/explain?search=Nonsense%3Fx%3D1")
        .await;
    assert!(
        unknown.status == 400 || unknown.status == 404,
        "{}",
        unknown.status
    );

    // each view is audited, the refused one as refused
    let rows = app.audit_of_agent(&admin_id).await;
    let explains = rows
        .iter()
        .filter(|r| r.record.subtype == "search-type")
        .count();
    assert!(explains >= 3, "{rows:?}");
    assert!(rows.iter().any(|r| r.record.outcome == "4"));

    let (nurse_id, nurse_secret) = enrolled_staff(&app, "nurse8", &["nurse"]).await;
    let mut nurse = app.visitor();
    nurse
        .login(
            "nurse8",
            SHORT_PW,
            &next_code(&app, &nurse_id, &nurse_secret).await,
        )
        .await;
    assert!(!nurse.get("/workspace").await.body.contains("explain-link"));
    assert_eq!(
        nurse.get("/workspace/explain?search=Patient").await.status,
        403
    );
}
