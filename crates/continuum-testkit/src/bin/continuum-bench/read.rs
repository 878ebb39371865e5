//! The `read` benchmark: `--resources` small Patients written with PUT in transaction bundles, then
//! `--clients` concurrent keep-alive HTTP clients reading random ones from the real server on 127.0.0.1.
//!
//! Server and load generator run in this process on separate tokio runtimes, and share the machine's cores:
//! the figures are a floor for a server that has the machine to itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use continuum_core::{Fhir, Prefer};
use continuum_web::{AppState, WebConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::{cores, print_table, Kind, Target};

/// Entries per seeding transaction.
const CHUNK: usize = 500;
const BASE: &str = "urn:continuum:bench";

pub(crate) struct ReadFigures {
    kind: Kind,
    resources: usize,
    clients: usize,
    seed_elapsed: Duration,
    /// From the end of the warm-up until the last measured request finished.
    window: Duration,
    /// Latencies of the successful measured requests, sorted, in microseconds.
    latencies: Vec<u64>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
}

impl ReadFigures {
    fn requests_per_second(&self) -> f64 {
        let s = self.window.as_secs_f64();
        if s > 0.0 {
            self.latencies.len() as f64 / s
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile, in milliseconds.
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i] as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latencies.last().map_or(0.0, |&us| us as f64 / 1000.0)
    }

    pub(crate) fn print(&self) {
        println!(
            "\nread: backend {}, {} Patients, {} clients, {:.1} s measured",
            self.kind.name(),
            self.resources,
            self.clients,
            self.window.as_secs_f64()
        );
        println!(
            "  seeding             {:.2} s ({:.0} resources/s, PUT in transactions of {CHUNK})",
            self.seed_elapsed.as_secs_f64(),
            self.resources as f64 / self.seed_elapsed.as_secs_f64().max(1e-9)
        );
        println!(
            "  requests            {} ok, {} errors (+{} during warm-up)",
            self.latencies.len(),
            self.errors,
            self.warmup_errors
        );
        println!(
            "  throughput          {:.0} requests/s",
            self.requests_per_second()
        );
        println!(
            "  latency (ms)        p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.percentile(50.0),
            self.percentile(90.0),
            self.percentile(99.0),
            self.max_ms()
        );
        println!(
            "  note                load generator and server share this machine's {} core(s)",
            cores()
        );
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

pub(crate) fn print_comparison(kinds: &[Kind], results: &[ReadFigures]) {
    let row = |label: &str, f: &dyn Fn(&ReadFigures) -> String| {
        (label.to_string(), results.iter().map(f).collect::<Vec<_>>())
    };
    let rows = vec![
        row("patients", &|r| r.resources.to_string()),
        row("clients", &|r| r.clients.to_string()),
        row("seeding (s)", &|r| {
            format!("{:.2}", r.seed_elapsed.as_secs_f64())
        }),
        row("requests/s", &|r| format!("{:.0}", r.requests_per_second())),
        row("p50 (ms)", &|r| format!("{:.2}", r.percentile(50.0))),
        row("p90 (ms)", &|r| format!("{:.2}", r.percentile(90.0))),
        row("p99 (ms)", &|r| format!("{:.2}", r.percentile(99.0))),
        row("max (ms)", &|r| format!("{:.2}", r.max_ms())),
        row("errors", &|r| (r.errors + r.warmup_errors).to_string()),
    ];
    print_table(
        &format!(
            "read, side by side (load generator and server share {} core(s))",
            cores()
        ),
        kinds,
        &rows,
    );
}

fn patient_id(i: usize) -> String {
    format!("bench-{i:06}")
}

fn patient(i: usize) -> Value {
    let given = ["Alex", "Sam", "Jordan", "Casey", "Riley", "Morgan"][i % 6];
    let gender = ["female", "male"][i % 2];
    json!({
        "resourceType": "Patient",
        "id": patient_id(i),
        "active": true,
        "name": [{"use": "official", "family": format!("Bench{}", i % 997), "given": [given]}],
        "gender": gender,
        "birthDate": format!("{}-{:02}-{:02}", 1950 + i % 60, 1 + i % 12, 1 + i % 28),
    })
}

/// Write patients `0..n` with PUT (so their ids are known) in transactions of [`CHUNK`].
fn seed(fhir: &Fhir, n: usize) -> Result<Duration> {
    let started = Instant::now();
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        let entries: Vec<Value> = (start..end)
            .map(|i| {
                let url = format!("Patient/{}", patient_id(i));
                json!({"fullUrl": url, "resource": patient(i), "request": {"method": "PUT", "url": url}})
            })
            .collect();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let resp = fhir.bundle(BASE, bundle, Prefer::Minimal).map_err(|e| {
            anyhow::anyhow!("seeding transaction failed with {}: {e:?}", e.status())
        })?;
        let resp: Value = serde_json::from_slice(&resp).context("seeding response is not JSON")?;
        let ok = resp.get("entry").and_then(Value::as_array).map_or(0, |es| {
            es.iter()
                .filter(|e| {
                    e.pointer("/response/status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.starts_with('2'))
                })
                .count()
        });
        if ok != end - start {
            bail!(
                "seeding wrote {ok} of {} patients in a transaction",
                end - start
            );
        }
        start = end;
    }
    Ok(started.elapsed())
}

pub(crate) fn run(
    kind: Kind,
    resources: usize,
    clients: usize,
    seconds: f64,
    warmup_seconds: f64,
    create: bool,
) -> Result<ReadFigures> {
    let target = Target::open(kind)?;
    let fhir = Fhir::new(target.store.clone());
    let seed_elapsed = seed(&fhir, resources)?;

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-server")
        .build()
        .context("starting the server runtime")?;
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(fhir, WebConfig::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Reads are authorised and audited like any client's: a system integration's bearer token.
    let token = {
        let account = state.auth.create(
            continuum_auth::Account::new(
                continuum_auth::AccountKind::Service,
                "bench",
                "Benchmark client",
            ),
            None,
        )?;
        let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
        state
            .auth
            .issue_token(&account.id, "api", now, 86_400, b"{}")?
    };
    let server = server_rt.spawn(continuum_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .context("starting the client runtime")?;
    let load = client_rt.block_on(generate_load(
        addr,
        resources,
        clients,
        Duration::from_secs_f64(warmup_seconds),
        Duration::from_secs_f64(seconds),
        create,
        token,
    ));
    drop(client_rt);

    let _ = stop_tx.send(());
    match server_rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })
    {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("the server failed"),
        Ok(Err(e)) => return Err(e).context("the server task failed"),
        Err(_) => eprintln!("note: the server did not shut down within 10 s"),
    }
    let load = load?;
    Ok(ReadFigures {
        kind,
        resources,
        clients,
        seed_elapsed,
        window: load.window,
        latencies: load.latencies,
        errors: load.errors,
        warmup_errors: load.warmup_errors,
        first_error: load.first_error,
    })
}

struct Load {
    window: Duration,
    latencies: Vec<u64>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
}

#[derive(Default)]
struct ClientResult {
    latencies: Vec<u64>,
    errors: u64,
    warmup_errors: u64,
    first_error: Option<String>,
}

async fn generate_load(
    addr: SocketAddr,
    resources: usize,
    clients: usize,
    warmup: Duration,
    measure: Duration,
    create: bool,
    token: String,
) -> Result<Load> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        // One client per task, each keeping its own connection alive, like independent users.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("token header")?,
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building an HTTP client")?;
        let base = format!("http://{addr}/fhir/Patient/");
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64);
            let mut out = ClientResult::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let pick = rng.random_range(0..resources);
                let (request, expected) = if create {
                    let mut body = patient(pick);
                    if let Some(o) = body.as_object_mut() {
                        o.remove("id");
                    }
                    let req = client
                        .post(base.trim_end_matches('/'))
                        .header("content-type", "application/fhir+json")
                        .header("prefer", "return=minimal")
                        .body(body.to_string());
                    (req, reqwest::StatusCode::CREATED)
                } else {
                    (
                        client.get(format!("{base}{}", patient_id(pick))),
                        reqwest::StatusCode::OK,
                    )
                };
                let result = match request.send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(_) if status == expected => Ok(()),
                            Ok(_) => Err(format!("HTTP {status}")),
                            Err(e) => Err(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                let measured = t0 >= measure_from;
                match result {
                    Ok(()) if measured => out.latencies.push(micros),
                    Ok(()) => {}
                    Err(e) => {
                        if measured {
                            out.errors += 1;
                        } else {
                            out.warmup_errors += 1;
                        }
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    let mut load = Load {
        window: Duration::ZERO,
        latencies: Vec::new(),
        errors: 0,
        warmup_errors: 0,
        first_error: None,
    };
    for task in tasks {
        let r = task.await.context("a client task failed")?;
        load.latencies.extend(r.latencies);
        load.errors += r.errors;
        load.warmup_errors += r.warmup_errors;
        if load.first_error.is_none() {
            load.first_error = r.first_error;
        }
    }
    load.window = Instant::now().saturating_duration_since(measure_from);
    load.latencies.sort_unstable();
    Ok(load)
}
