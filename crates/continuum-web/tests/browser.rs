//! The portal in real headless Chromium (WebDriver through chromedriver, started by
//! `continuum_testkit::browser`): a patient signs in and enrols their authenticator app, sees their summary
//! and who viewed it, signs out; a sponsor switches between an 8-year-old (everything shown) and a
//! 14-year-old (sensitive items hidden); a staff member reaches the workspace. Every page visited is checked
//! with axe-core run in the page: no serious or critical violation is allowed.
//!
//! Without Chromium the test prints a notice and passes; under `CI=true` it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/portal.rs"]
mod portal_common;

use std::time::Duration;

use continuum_auth::totp;
use continuum_testkit::browser::{self, fantoccini};
use fantoccini::{Client, Locator};
use portal_common::*;
use serde_json::Value;

/// axe-core 4.14.1, unchanged from the npm package (see `tests/vendor/README.md`).
const AXE: &str = include_str!("vendor/axe.min.js");

const LONG_PW: &str = "quartz-meadow-plover-7391";
const SHORT_PW: &str = "Vy7#kq2Lmw";

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

/// Wait (up to 15 s) until the browser shows `path`.
async fn wait_path(c: &Client, path: &str) {
    for _ in 0..150 {
        if path_of(c).await == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the browser is at {} instead of {path}:\n{}",
        path_of(c).await,
        c.source().await.unwrap_or_default()
    );
}

/// Wait (up to 15 s) until the element's text contains `text`.
async fn wait_text(c: &Client, css: &str, text: &str) {
    for _ in 0..150 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.text().await.unwrap_or_default().contains(text) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{css} never showed '{text}':\n{}",
        c.source().await.unwrap_or_default()
    );
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Run axe-core in the page; fail on any serious or critical violation (printing them all). With
/// `CONTINUUM_SCREENSHOTS=DIR`, also save a screenshot of the page there (to look at what people see).
async fn accessible(c: &Client, page: &str) {
    if let Some(dir) = std::env::var_os("CONTINUUM_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        let name: String = page
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .collect();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
    c.execute(AXE, vec![]).await.unwrap();
    let result = c
        .execute_async(
            r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] })
              .then(r => done(r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || ''))
              }))))
              .catch(e => done({ error: String(e) }));
            "#,
            vec![],
        )
        .await
        .unwrap();
    let Value::Array(violations) = result else {
        panic!("axe did not run on {page}: {result}");
    };
    let (bad, minor): (Vec<&Value>, Vec<&Value>) = violations
        .iter()
        .partition(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")));
    for v in &minor {
        eprintln!("axe ({page}): {} {}: {}", v["impact"], v["id"], v["help"]);
    }
    if !bad.is_empty() {
        for v in &bad {
            eprintln!(
                "axe ({page}): {} {}: {}\n  {}",
                v["impact"],
                v["id"],
                v["help"],
                serde_json::to_string_pretty(&v["nodes"]).unwrap()
            );
        }
        panic!(
            "{} serious or critical accessibility violation(s) on {page}",
            bad.len()
        );
    }
}

/// On a phone-sized window: still accessible and nothing wider than the screen.
async fn fits_a_phone(c: &Client, page: &str) {
    c.set_window_size(390, 844).await.unwrap();
    accessible(c, &format!("{page} (phone)")).await;
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "{page} scrolls sideways on a phone by {overflow} px"
    );
    c.set_window_size(1280, 900).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_in_headless_chromium() {
    let Some(browser) = browser::start_or_skip().await else {
        return;
    };
    let app = PortalApp::start().await;
    patient_enrols_and_sees_their_summary(&app, &browser.client).await;
    browser.client.delete_all_cookies().await.unwrap();
    sponsor_switches_between_children(&app, &browser.client).await;
    browser.client.delete_all_cookies().await.unwrap();
    staff_reach_the_workspace(&app, &browser.client).await;
    browser.quit().await.unwrap();
}

async fn patient_enrols_and_sees_their_summary(app: &PortalApp, c: &Client) {
    let pid = app.patient("Alex", "Synthetic", 34, 12).await;
    app.condition(&pid, "Mild intermittent asthma", false).await;
    app.medication(&pid, "Albuterol inhaler").await;
    app.allergy(&pid, "Penicillin").await;
    app.lab(&pid, "Hemoglobin A1c", 5.9, "%", "2025-03-02")
        .await;
    app.account(patient_account("alex", "Alex Synthetic", &pid), LONG_PW)
        .await;
    // someone on staff looks at Alex's record through the API
    let mut staff = staff_account("pharm-b", "Pat Pharmacist", &["pharmacist"]);
    with_totp(&mut staff);
    let staff = app.account(staff, SHORT_PW).await;
    let api = app.api_client(&staff.id).await;
    let r = api
        .get(format!("{}/fhir/Patient/{pid}", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    c.goto(&format!("{}/", app.root)).await.unwrap();
    accessible(c, "landing").await;
    fits_a_phone(c, "landing").await;
    click(c, "a.button[href='/login']").await;
    wait_path(c, "/login").await;
    accessible(c, "login").await;

    fill(c, "#username", "alex").await;
    fill(c, "#password", LONG_PW).await;
    click(c, "#sign-in").await;
    wait_path(c, "/enroll-totp").await;
    accessible(c, "TOTP enrolment").await;
    let shown = c
        .find(Locator::Css("#totp-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = totp::from_base32(&shown).expect("the secret is shown as text");
    c.find(Locator::Css(".qr svg[role='img']")).await.unwrap();
    fill(c, "#code", &code_now(&secret)).await;
    click(c, "#confirm-code").await;
    wait_path(c, "/portal").await;
    wait_text(c, "#record-name", "Your health summary").await;
    accessible(c, "portal").await;
    fits_a_phone(c, "portal").await;
    let problems = c.find(Locator::Css("#problems")).await.unwrap();
    assert!(problems
        .text()
        .await
        .unwrap()
        .contains("Mild intermittent asthma"));
    let page = c.source().await.unwrap();
    for text in ["Albuterol inhaler", "Penicillin", "Hemoglobin A1c", "5.9 %"] {
        assert!(page.contains(text), "{text}");
    }

    click(c, "a[href='/portal/access-log']").await;
    wait_path(c, "/portal/access-log").await;
    accessible(c, "access log").await;
    let log = c.find(Locator::Css("#access-log")).await.unwrap();
    assert!(log
        .text()
        .await
        .unwrap()
        .contains("Pat Pharmacist (pharmacist)"));

    click(c, "#logout").await;
    wait_path(c, "/").await;
    c.goto(&format!("{}/portal", app.root)).await.unwrap();
    wait_path(c, "/login").await;

    c.goto(&format!("{}/forgot", app.root)).await.unwrap();
    accessible(c, "forgotten password").await;
    fill(c, "#username", "alex").await;
    click(c, "form[action='/forgot'] button[type='submit']").await;
    wait_text(c, "#forgot-sent", "If the account exists").await;
    accessible(c, "forgotten password (sent)").await;
}

async fn sponsor_switches_between_children(app: &PortalApp, c: &Client) {
    let own = app.patient("Jordan", "Family", 41, 0).await;
    // birth dates relative to today: 8 years and a month, 14 years and a month
    let young = app.patient("Ada", "Family", 8, 30).await;
    let teen = app.patient("Ben", "Family", 14, 30).await;
    app.condition(&own, "Lower back pain", false).await;
    app.condition(&young, "Ear infection", false).await;
    app.condition(&young, "Play therapy for anxiety", true)
        .await;
    app.condition(&teen, "Sprained ankle", false).await;
    app.condition(&teen, "Teen counselling for depression", true)
        .await;
    let mut acct = patient_account("jordan", "Jordan Family", &own);
    acct.proxies = vec![parent_of(&young), parent_of(&teen)];
    let secret = with_totp(&mut acct);
    app.account(acct, SHORT_PW).await;

    c.goto(&format!("{}/login", app.root)).await.unwrap();
    fill(c, "#username", "jordan").await;
    fill(c, "#password", SHORT_PW).await;
    fill(c, "#code", &code_now(&secret)).await;
    click(c, "#sign-in").await;
    wait_path(c, "/portal").await;
    wait_text(c, "#record-name", "Your health summary").await;
    assert!(c.source().await.unwrap().contains("Lower back pain"));

    click(c, &format!("button[data-patient='{young}']")).await;
    wait_text(c, "#record-name", "Ada Family").await;
    let page = c.source().await.unwrap();
    assert!(page.contains("Ear infection"));
    assert!(
        page.contains("Play therapy for anxiety"),
        "under 12: the parent sees everything"
    );
    assert!(!page.contains("Lower back pain"));

    click(c, &format!("button[data-patient='{teen}']")).await;
    wait_text(c, "#record-name", "Ben Family").await;
    let page = c.source().await.unwrap();
    assert!(page.contains("Sprained ankle"));
    assert!(
        !page.contains("Teen counselling for depression"),
        "12 to 17: sensitive items are hidden from the parent"
    );
    c.find(Locator::Css("#hidden-note")).await.unwrap();
    accessible(c, "portal (dependent)").await;

    click(c, "#logout").await;
    wait_path(c, "/").await;
}

async fn staff_reach_the_workspace(app: &PortalApp, c: &Client) {
    let mut acct = staff_account(
        "drlee",
        "Dr Lee Synthetic",
        &["physician", "dentist", "administrator"],
    );
    let secret = with_totp(&mut acct);
    app.account(acct, SHORT_PW).await;
    c.goto(&format!("{}/login", app.root)).await.unwrap();
    fill(c, "#username", "drlee").await;
    fill(c, "#password", SHORT_PW).await;
    fill(c, "#code", &code_now(&secret)).await;
    click(c, "#sign-in").await;
    wait_path(c, "/workspace").await;
    wait_text(c, "#staff-name", "Dr Lee Synthetic").await;
    let roles = c
        .find(Locator::Css("#roles"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(roles.contains("physician") && roles.contains("dentist"));
    accessible(c, "workspace").await;
    // administrators: the audit reports
    click(c, "#audit-link").await;
    wait_path(c, "/workspace/audit").await;
    wait_text(c, "h1", "Audit reports").await;
    accessible(c, "audit report").await;
    // and the query plans
    c.goto(&format!("{}/workspace", app.root)).await.unwrap();
    click(c, "#explain-link").await;
    wait_path(c, "/workspace/explain").await;
    fill(
        c,
        "#search",
        "Observation?patient=123&code=http://loinc.org|4548-4",
    )
    .await;
    c.find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "#plan", "idx_reference").await;
    accessible(c, "query plan").await;
    click(c, "#logout").await;
    wait_path(c, "/").await;
}
