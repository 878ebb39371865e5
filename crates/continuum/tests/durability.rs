//! A write the server acknowledged survives `kill -9` of the server: the real binary, real database,
//! killed mid-load and restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
}

fn start(database: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_continuum"))
        .args(["--database", database, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    // "Continuum is running at http://127.0.0.1:PORT/  (FHIR API: http://127.0.0.1:PORT/fhir)"
    let base = line
        .split("FHIR API: ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .to_string();
    Server { child, base }
}

/// A bearer token of a system integration, made with the real CLI.
fn integration_token(database: &str) -> String {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_continuum"))
            .args(["--database", database])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "admin",
        "create-user",
        "--kind",
        "service",
        "--username",
        "loader",
        "--name",
        "Load test",
    ]);
    run(&["admin", "create-token", "--username", "loader"])
        .trim()
        .to_string()
}

fn client(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

async fn load_then_kill(database: &str) {
    let token = integration_token(database);
    let mut server = start(database);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = client(&token);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (client, base, acked) = (client.clone(), server.base.clone(), acknowledged.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            loop {
                i += 1;
                let body = serde_json::json!({"resourceType": "Basic", "code": {"text": format!("synthetic {w}-{i}")}});
                let r = client
                    .post(format!("{base}/Basic"))
                    .header("content-type", "application/fhir+json")
                    .header("prefer", "return=minimal")
                    .body(body.to_string())
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status() == 201 => {
                        let loc = resp.headers()["location"].to_str().unwrap().to_string();
                        let id = loc.split("/Basic/").nth(1).unwrap().split('/').next().unwrap().to_string();
                        acked.lock().unwrap().push(id);
                    }
                    _ => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep_until(deadline.into()).await;
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let ids = acknowledged.lock().unwrap().clone();
    assert!(
        ids.len() > 20,
        "the load wrote something ({} acknowledged)",
        ids.len()
    );

    let mut server = start(database);
    let mut missing = Vec::new();
    for id in &ids {
        let r = client
            .get(format!("{}/Basic/{id}", server.base))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            missing.push(id.clone());
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {missing:?}",
        missing.len(),
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("durable.db").display());
    load_then_kill(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_postgres() {
    let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else {
        return;
    };
    load_then_kill(&url).await;
}
