//! The `search` benchmark: the fixed search mix of issue 3 against an existing database populated by
//! `continuum seed` (populations of a million resources are built once and reused), through the real HTTP
//! server on 127.0.0.1 with a service account's bearer token, at `--clients` concurrent keep-alive clients.
//!
//! Before the run, values are sampled from the database through the same API (`_sort=_id` over random UUIDs,
//! so a page is a random sample across the population): patients with observations of each code, patients
//! with active conditions, immunizations and reports, names and birth dates, clinics with the months their
//! encounters fall in, the clinics' names. Each request then picks a query kind at random (equal shares) and
//! its parameters at random from those values, so every query asks about data that exists.
//!
//! Server and load generator run in this process on separate tokio runtimes and share the machine's cores;
//! the machine's load average is printed at start and end, because other work on it changes the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use continuum_core::Fhir;
use continuum_store::{ResourceStore, SystemClock};
use continuum_web::{AppState, WebConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Url;
use serde_json::Value;

use crate::cores;

/// Codes sampled for the per-patient and population-wide observation queries: the issue's HbA1c, a few
/// labs (about half or fewer of the seeded patients have them) and vital signs (nearly all do). Codes the
/// database lacks are dropped with a notice.
const LOINC_CODES: &[&str] = &[
    "4548-4",  // Hemoglobin A1c
    "718-7",   // Hemoglobin
    "2093-3",  // Cholesterol
    "8867-4",  // Heart rate
    "29463-7", // Body weight
    "85354-9", // Blood pressure panel
    "39156-5", // BMI
];
const LOINC: &str = "http://loinc.org";
/// Items fetched per sampling page (the server's largest `_count`).
const PAGE: usize = 1000;
/// Most values kept per sampled list.
const SAMPLE_MAX: usize = 5000;
/// The service account the benchmark reads as (created on first use, reused afterwards).
const ACCOUNT: &str = "bench-search";

pub(crate) struct Options {
    pub(crate) database: String,
    pub(crate) clients: usize,
    pub(crate) seconds: f64,
    pub(crate) warmup_seconds: f64,
    /// Only these query kinds (by label); all when empty.
    pub(crate) only: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum QueryKind {
    ObsLatest,
    ActiveConditions,
    Immunizations,
    ReportsInclude,
    NameBirthdate,
    EncounterClinicMonth,
    CodeCount,
    Chain,
}

const ALL_KINDS: [QueryKind; 8] = [
    QueryKind::ObsLatest,
    QueryKind::ActiveConditions,
    QueryKind::Immunizations,
    QueryKind::ReportsInclude,
    QueryKind::NameBirthdate,
    QueryKind::EncounterClinicMonth,
    QueryKind::CodeCount,
    QueryKind::Chain,
];

impl QueryKind {
    fn label(self) -> &'static str {
        match self {
            QueryKind::ObsLatest => "obs-latest",
            QueryKind::ActiveConditions => "conditions",
            QueryKind::Immunizations => "immunizations",
            QueryKind::ReportsInclude => "reports-include",
            QueryKind::NameBirthdate => "name-birthdate",
            QueryKind::EncounterClinicMonth => "encounter-clinic",
            QueryKind::CodeCount => "code-count",
            QueryKind::Chain => "chain-2",
        }
    }

    fn shape(self) -> &'static str {
        match self {
            QueryKind::ObsLatest => {
                "Observation?patient=X&code=http://loinc.org|C&_sort=-date&_count=10"
            }
            QueryKind::ActiveConditions => "Condition?patient=X&clinical-status=active",
            QueryKind::Immunizations => "Immunization?patient=X",
            QueryKind::ReportsInclude => {
                "DiagnosticReport?patient=X&_include=DiagnosticReport:result"
            }
            QueryKind::NameBirthdate => "Patient?family=F&birthdate=YYYY-MM-DD",
            QueryKind::EncounterClinicMonth => {
                "Encounter?service-provider=Organization/O&date=geM&date=ltM+1 (one month)"
            }
            QueryKind::CodeCount => "Observation?code=http://loinc.org|C&_summary=count",
            QueryKind::Chain => {
                "Encounter?patient.organization.name=N (Patient.managingOrganization)"
            }
        }
    }

    /// Whether the sanity figure is the mean `total` (a count) rather than the share of non-empty answers.
    fn is_count(self) -> bool {
        self == QueryKind::CodeCount
    }
}

/// Values sampled from the database, one list per query kind.
#[derive(Default)]
struct Plan {
    /// (patient id, LOINC code) pairs that have at least one Observation.
    obs_pairs: Vec<(String, String)>,
    condition_patients: Vec<String>,
    immunization_patients: Vec<String>,
    report_patients: Vec<String>,
    /// (family, birthDate) of sampled Patients.
    names: Vec<(String, String)>,
    /// (Organization id, first day of a month, first day of the next month) of sampled Encounters.
    clinic_months: Vec<(String, String, String)>,
    /// LOINC codes with at least one Observation.
    count_codes: Vec<String>,
    /// Names of the managing organizations of sampled Patients (a name repeats with its patients).
    chain_names: Vec<String>,
}

impl Plan {
    fn len(&self, kind: QueryKind) -> usize {
        match kind {
            QueryKind::ObsLatest => self.obs_pairs.len(),
            QueryKind::ActiveConditions => self.condition_patients.len(),
            QueryKind::Immunizations => self.immunization_patients.len(),
            QueryKind::ReportsInclude => self.report_patients.len(),
            QueryKind::NameBirthdate => self.names.len(),
            QueryKind::EncounterClinicMonth => self.clinic_months.len(),
            QueryKind::CodeCount => self.count_codes.len(),
            QueryKind::Chain => self.chain_names.len(),
        }
    }

    /// The request URL of one query of `kind` with parameters drawn at random.
    fn url(&self, base: &Url, kind: QueryKind, rng: &mut StdRng) -> Url {
        fn pick<'a, T>(v: &'a [T], rng: &mut StdRng) -> &'a T {
            &v[rng.random_range(0..v.len())]
        }
        let (ty, params): (&str, Vec<(&str, String)>) = match kind {
            QueryKind::ObsLatest => {
                let (p, c) = pick(&self.obs_pairs, rng);
                (
                    "Observation",
                    vec![
                        ("patient", p.clone()),
                        ("code", format!("{LOINC}|{c}")),
                        ("_sort", "-date".into()),
                        ("_count", "10".into()),
                    ],
                )
            }
            QueryKind::ActiveConditions => (
                "Condition",
                vec![
                    ("patient", pick(&self.condition_patients, rng).clone()),
                    ("clinical-status", "active".into()),
                ],
            ),
            QueryKind::Immunizations => (
                "Immunization",
                vec![("patient", pick(&self.immunization_patients, rng).clone())],
            ),
            QueryKind::ReportsInclude => (
                "DiagnosticReport",
                vec![
                    ("patient", pick(&self.report_patients, rng).clone()),
                    ("_include", "DiagnosticReport:result".into()),
                ],
            ),
            QueryKind::NameBirthdate => {
                let (f, b) = pick(&self.names, rng);
                (
                    "Patient",
                    vec![("family", f.clone()), ("birthdate", b.clone())],
                )
            }
            QueryKind::EncounterClinicMonth => {
                let (o, from, to) = pick(&self.clinic_months, rng);
                (
                    "Encounter",
                    vec![
                        ("service-provider", format!("Organization/{o}")),
                        ("date", format!("ge{from}")),
                        ("date", format!("lt{to}")),
                    ],
                )
            }
            QueryKind::CodeCount => (
                "Observation",
                vec![
                    ("code", format!("{LOINC}|{}", pick(&self.count_codes, rng))),
                    ("_summary", "count".into()),
                ],
            ),
            QueryKind::Chain => (
                "Encounter",
                vec![(
                    "patient.organization.name",
                    pick(&self.chain_names, rng).clone(),
                )],
            ),
        };
        let mut url = base.clone();
        url.path_segments_mut()
            .map(|mut s| {
                s.push(ty);
            })
            .ok();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &params {
                q.append_pair(k, v);
            }
        }
        url
    }
}

/// Open the store a database URL names (`sqlite://PATH` or `postgres://…`), as `continuum --database` does.
fn open_store(url: &str) -> Result<Arc<dyn ResourceStore>> {
    let clock = Arc::new(SystemClock);
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--database sqlite:// needs a path: sqlite:///path/to/file.db");
        }
        if !std::path::Path::new(path).is_file() {
            bail!(
                "{path} does not exist: populate it first with `continuum --database {url} seed`"
            );
        }
        let store = continuum_store_sqlite::SqliteStore::open(path, clock)
            .with_context(|| format!("opening SQLite database {path}"))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = continuum_store_postgres::PostgresStore::open(url, clock)
            .context("opening the PostgreSQL database")?;
        Ok(Arc::new(store))
    } else {
        bail!("unsupported database URL '{url}': use sqlite:///path/file.db or postgres://...")
    }
}

/// The 1-, 5- and 15-minute load averages of the machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "n/a".into())
}

/// A bearer token of the benchmark's service account (a system integration: unrestricted, audited).
fn bench_token(state: &AppState) -> Result<String> {
    let account = match state.auth.by_username(ACCOUNT)? {
        Some(a) => a,
        None => state.auth.create(
            continuum_auth::Account::new(
                continuum_auth::AccountKind::Service,
                ACCOUNT,
                "Search benchmark client",
            ),
            None,
        )?,
    };
    if account.kind != continuum_auth::AccountKind::Service || account.disabled {
        bail!("the account '{ACCOUNT}' exists but is not an enabled service account");
    }
    let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
    Ok(state
        .auth
        .issue_token(&account.id, "api", now, 86_400, b"{}")?)
}

pub(crate) fn run(opts: Options) -> Result<()> {
    let kinds: Vec<QueryKind> = if opts.only.is_empty() {
        ALL_KINDS.to_vec()
    } else {
        let mut ks = Vec::new();
        for name in &opts.only {
            let k = ALL_KINDS
                .iter()
                .copied()
                .find(|k| k.label() == name.as_str())
                .ok_or_else(|| {
                    let labels: Vec<_> = ALL_KINDS.iter().map(|k| k.label()).collect();
                    anyhow!(
                        "--only: unknown query kind '{name}' (kinds: {})",
                        labels.join(", ")
                    )
                })?;
            if !ks.contains(&k) {
                ks.push(k);
            }
        }
        ks
    };
    let store = open_store(&opts.database)?;
    let backend = store.backend().to_string();
    // as `continuum serve` does: sealing is part of what the audit log costs
    continuum_core::audit::spawn_sealer(store.clone());
    let fhir = Fhir::new(store);

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
    let state = AppState::new(fhir, WebConfig::default()).map_err(|e| anyhow!("{e}"))?;
    let token = bench_token(&state)?;
    let server = server_rt.spawn(continuum_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .context("starting the client runtime")?;
    let outcome = client_rt.block_on(async {
        let base = Url::parse(&format!("http://{addr}/fhir")).context("base URL")?;
        let client = http_client(&token)?;
        let started = Instant::now();
        let population = population(&client, &base).await;
        let plan = sample(&client, &base, &kinds).await?;
        let sampling = started.elapsed();
        let load_start = load_average();
        let load = generate_load(
            addr,
            &token,
            Arc::new(plan),
            &kinds,
            opts.clients,
            Duration::from_secs_f64(opts.warmup_seconds),
            Duration::from_secs_f64(opts.seconds),
        )
        .await?;
        let load_end = load_average();
        Ok::<_, anyhow::Error>((population, sampling, load, load_start, load_end))
    });
    drop(client_rt);

    let _ = stop_tx.send(());
    match server_rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })
    {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e).context("the server failed"),
        Ok(Err(e)) => return Err(e).context("the server task failed"),
        Err(_) => eprintln!("note: the server did not shut down within 10 s"),
    }
    let (population, sampling, load, load_start, load_end) = outcome?;

    println!(
        "\nsearch: backend {backend}, {} clients, {:.1} s measured after {:.1} s warm-up",
        opts.clients,
        load.window.as_secs_f64(),
        opts.warmup_seconds
    );
    println!("  database            {}", redact(&opts.database));
    println!("  population          {population}");
    println!(
        "  sampling            {:.1} s: {}",
        sampling.as_secs_f64(),
        load.sample_sizes
    );
    println!("  load average        start {load_start}   end {load_end}   (1/5/15 min)");
    println!(
        "  note                load generator and server share this machine's {} core(s); kinds drawn with equal shares",
        cores()
    );
    load.print(&kinds);
    Ok(())
}

/// A database URL without its password, for printing.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn http_client(token: &str) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("token header")?,
    );
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/fhir+json"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building an HTTP client")
}

/// GET a URL and parse the JSON answer; a non-2xx answer is an error carrying its body.
async fn get_json(client: &reqwest::Client, url: Url) -> Result<Value> {
    let resp = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer to GET {url}"))?;
    if !status.is_success() {
        bail!(
            "GET {url} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        );
    }
    serde_json::from_slice(&body).with_context(|| format!("the answer to GET {url} is not JSON"))
}

fn search_url(base: &Url, ty: &str, params: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    if !ty.is_empty() {
        url.path_segments_mut()
            .map(|mut s| {
                s.push(ty);
            })
            .ok();
    }
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url
}

/// The resources of a search's match entries, following `next` links until `max` are collected.
async fn sample_resources(client: &reqwest::Client, first: Url, max: usize) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        let mut bundle = get_json(client, url).await?;
        if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
            for e in entries.iter_mut() {
                let is_match = e
                    .pointer("/search/mode")
                    .and_then(Value::as_str)
                    .is_none_or(|m| m == "match");
                if is_match {
                    if let Some(r) = e.get_mut("resource") {
                        out.push(r.take());
                    }
                }
            }
        }
        if out.len() >= max {
            out.truncate(max);
            break;
        }
        next = bundle
            .get("link")
            .and_then(Value::as_array)
            .and_then(|ls| {
                ls.iter()
                    .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
            })
            .and_then(|l| l.get("url"))
            .and_then(Value::as_str)
            .map(Url::parse)
            .transpose()
            .context("a next link is not a URL")?;
    }
    Ok(out)
}

/// The id in a reference `Type/id` (relative) found at `pointer`, when it is of that type.
fn ref_id(resource: &Value, pointer: &str, ty: &str) -> Option<String> {
    let r = resource.pointer(pointer)?.as_str()?;
    let (t, id) = r.rsplit_once('/')?;
    let t = t.rsplit('/').next()?;
    (t == ty && !id.is_empty()).then(|| id.to_string())
}

/// Distinct ids of the patients referenced at `pointer` by a random sample of `ty` matching `params`.
async fn sample_patients(
    client: &reqwest::Client,
    base: &Url,
    ty: &str,
    params: &[(&str, &str)],
    element: &str,
) -> Result<Vec<String>> {
    let mut p: Vec<(&str, &str)> = params.to_vec();
    let count = PAGE.to_string();
    p.extend([("_sort", "_id"), ("_count", &count), ("_elements", element)]);
    let resources = sample_resources(client, search_url(base, ty, &p), SAMPLE_MAX).await?;
    let pointer = format!("/{element}/reference");
    let ids: BTreeSet<String> = resources
        .iter()
        .filter_map(|r| ref_id(r, &pointer, "Patient"))
        .collect();
    Ok(ids.into_iter().collect())
}

/// Counts for the header: all resources (system-wide `_summary=count`), Patients, Observations.
async fn population(client: &reqwest::Client, base: &Url) -> String {
    let mut parts = Vec::new();
    for (label, ty) in [
        ("resources", ""),
        ("Patients", "Patient"),
        ("Observations", "Observation"),
    ] {
        let url = search_url(base, ty, &[("_summary", "count")]);
        let figure = match get_json(client, url).await {
            Ok(v) => v
                .get("total")
                .and_then(Value::as_u64)
                .map_or_else(|| "no total".to_string(), |n| n.to_string()),
            Err(e) => format!("n/a ({})", first_line(&format!("{e:#}"))),
        };
        parts.push(format!("{figure} {label}"));
    }
    parts.join(", ")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// Draws the values every query kind in `kinds` takes its parameters from.
async fn sample(client: &reqwest::Client, base: &Url, kinds: &[QueryKind]) -> Result<Plan> {
    let wants = |k: QueryKind| kinds.contains(&k);
    let mut plan = Plan::default();

    if wants(QueryKind::ObsLatest) || wants(QueryKind::CodeCount) {
        for code in LOINC_CODES {
            let coded = format!("{LOINC}|{code}");
            let patients =
                sample_patients(client, base, "Observation", &[("code", &coded)], "subject")
                    .await?;
            if patients.is_empty() {
                eprintln!("note: no Observation has the code {coded}; it is left out of the mix");
                continue;
            }
            plan.count_codes.push((*code).to_string());
            plan.obs_pairs
                .extend(patients.into_iter().map(|p| (p, (*code).to_string())));
        }
    }
    if wants(QueryKind::ActiveConditions) {
        plan.condition_patients = sample_patients(
            client,
            base,
            "Condition",
            &[("clinical-status", "active")],
            "subject",
        )
        .await?;
    }
    if wants(QueryKind::Immunizations) {
        plan.immunization_patients =
            sample_patients(client, base, "Immunization", &[], "patient").await?;
    }
    if wants(QueryKind::ReportsInclude) {
        plan.report_patients =
            sample_patients(client, base, "DiagnosticReport", &[], "subject").await?;
    }
    if wants(QueryKind::NameBirthdate) || wants(QueryKind::Chain) {
        let count = PAGE.to_string();
        let url = search_url(
            base,
            "Patient",
            &[
                ("_sort", "_id"),
                ("_count", &count),
                ("_elements", "name,birthDate,managingOrganization"),
            ],
        );
        let patients = sample_resources(client, url, SAMPLE_MAX).await?;
        for p in &patients {
            let family = p.pointer("/name/0/family").and_then(Value::as_str);
            let birth = p.get("birthDate").and_then(Value::as_str);
            if let (Some(f), Some(b)) = (family, birth) {
                plan.names.push((f.to_string(), b.to_string()));
            }
        }
        if wants(QueryKind::Chain) {
            let url = search_url(
                base,
                "Organization",
                &[("_count", &count), ("_elements", "name")],
            );
            let names: BTreeMap<String, String> = sample_resources(client, url, SAMPLE_MAX)
                .await?
                .iter()
                .filter_map(|o| {
                    let id = o.get("id")?.as_str()?;
                    let name = o.get("name")?.as_str()?;
                    Some((id.to_string(), name.to_string()))
                })
                .collect();
            plan.chain_names = patients
                .iter()
                .filter_map(|p| ref_id(p, "/managingOrganization/reference", "Organization"))
                .filter_map(|id| names.get(&id).cloned())
                .collect();
        }
    }
    if wants(QueryKind::EncounterClinicMonth) {
        let count = PAGE.to_string();
        let url = search_url(
            base,
            "Encounter",
            &[
                ("_sort", "_id"),
                ("_count", &count),
                ("_elements", "serviceProvider,period"),
            ],
        );
        let encounters = sample_resources(client, url, SAMPLE_MAX).await?;
        for e in &encounters {
            let org = ref_id(e, "/serviceProvider/reference", "Organization");
            let month = e
                .pointer("/period/start")
                .and_then(Value::as_str)
                .and_then(month_window);
            if let (Some(o), Some((from, to))) = (org, month) {
                plan.clinic_months.push((o, from, to));
            }
        }
    }

    for &k in kinds {
        if plan.len(k) == 0 {
            bail!(
                "no values to run '{}' ({}) with: was the database populated by `continuum seed`?",
                k.label(),
                k.shape()
            );
        }
    }
    Ok(plan)
}

/// The month of a FHIR dateTime `YYYY-MM…` as `[YYYY-MM-01, next month's first day)`.
fn month_window(date: &str) -> Option<(String, String)> {
    let year: i32 = date.get(0..4)?.parse().ok()?;
    let month: u32 = date.get(5..7)?.parse().ok()?;
    if !(1..=12).contains(&month) {
        return None;
    }
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Some((
        format!("{year:04}-{month:02}-01"),
        format!("{ny:04}-{nm:02}-01"),
    ))
}

/// What one query kind measured.
#[derive(Default)]
struct KindStats {
    /// Latencies of the successful measured requests, in microseconds (sorted after the run).
    latencies: Vec<u64>,
    errors: u64,
    warmup_errors: u64,
    /// Successful measured answers with at least one entry.
    non_empty: u64,
    /// Sum of `total` over successful measured answers that carry one.
    total_sum: u64,
    with_total: u64,
    first_error: Option<String>,
}

impl KindStats {
    fn merge(&mut self, other: KindStats) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        self.non_empty += other.non_empty;
        self.total_sum += other.total_sum;
        self.with_total += other.with_total;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

struct Load {
    window: Duration,
    by_kind: BTreeMap<QueryKind, KindStats>,
    sample_sizes: String,
}

impl Load {
    fn print(&self, kinds: &[QueryKind]) {
        let secs = self.window.as_secs_f64().max(1e-9);
        println!(
            "\n  {:<17} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7}  sanity",
            "query", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
        );
        let mut all = KindStats::default();
        for &k in kinds {
            let Some(s) = self.by_kind.get(&k) else {
                continue;
            };
            let n = s.latencies.len();
            let sanity = if k.is_count() {
                if s.with_total > 0 {
                    format!("mean total {:.0}", s.total_sum as f64 / s.with_total as f64)
                } else {
                    "no total in answers".to_string()
                }
            } else if n > 0 {
                format!("{:.1}% ≥1 entry", 100.0 * s.non_empty as f64 / n as f64)
            } else {
                "-".to_string()
            };
            println!(
                "  {:<17} {:>8} {:>8.0} {:>9.2} {:>9.2} {:>9.2} {:>7}  {sanity}",
                k.label(),
                n,
                n as f64 / secs,
                percentile(&s.latencies, 50.0),
                percentile(&s.latencies, 99.0),
                s.latencies.last().map_or(0.0, |&us| us as f64 / 1000.0),
                s.errors
            );
            all.latencies.extend(s.latencies.iter().copied());
            all.errors += s.errors;
            all.warmup_errors += s.warmup_errors;
        }
        all.latencies.sort_unstable();
        let n = all.latencies.len();
        println!(
            "  {:<17} {:>8} {:>8.0} {:>9.2} {:>9.2} {:>9.2} {:>7}  (+{} errors in warm-up)",
            "all",
            n,
            n as f64 / secs,
            percentile(&all.latencies, 50.0),
            percentile(&all.latencies, 99.0),
            all.latencies.last().map_or(0.0, |&us| us as f64 / 1000.0),
            all.errors,
            all.warmup_errors
        );
        println!("\n  query shapes:");
        for &k in kinds {
            println!("    {:<17} {}", k.label(), k.shape());
        }
        for &k in kinds {
            if let Some(e) = self.by_kind.get(&k).and_then(|s| s.first_error.as_ref()) {
                println!("\n  first error of {}: {e}", k.label());
            }
        }
    }
}

/// An error with its sources (reqwest's own message omits the cause, e.g. a timeout).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Where `"key"` is followed (after blanks) by `:`; the index just past the colon.
fn after_key(body: &[u8], key: &[u8]) -> Option<usize> {
    let mut from = 0;
    while from + key.len() <= body.len() {
        let at = body[from..].windows(key.len()).position(|w| w == key)? + from;
        let mut i = at + key.len();
        while i < body.len() && body[i].is_ascii_whitespace() {
            i += 1;
        }
        if body.get(i) == Some(&b':') {
            return Some(i + 1);
        }
        from = at + 1;
    }
    None
}

fn skip_blanks(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && body[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Whether a Bundle's JSON has a non-empty `entry` array (the Bundle's own key comes before any resource).
fn has_entries(body: &[u8]) -> bool {
    after_key(body, b"\"entry\"").is_some_and(|i| {
        let i = skip_blanks(body, i);
        body.get(i) == Some(&b'[') && body.get(skip_blanks(body, i + 1)) != Some(&b']')
    })
}

/// A Bundle's `total`, when present.
fn total(body: &[u8]) -> Option<u64> {
    let i = skip_blanks(body, after_key(body, b"\"total\"")?);
    let digits: String = body[i..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    digits.parse().ok()
}

async fn generate_load(
    addr: SocketAddr,
    token: &str,
    plan: Arc<Plan>,
    kinds: &[QueryKind],
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Load> {
    let base = Url::parse(&format!("http://{addr}/fhir")).context("base URL")?;
    let sample_sizes = kinds
        .iter()
        .map(|&k| format!("{} {}", k.label(), plan.len(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        // One client per task, each keeping its own connection alive, like independent users.
        let client = http_client(token)?;
        let plan = plan.clone();
        let base = base.clone();
        let kinds = kinds.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x5EA4C4 + c as u64);
            let mut out: BTreeMap<QueryKind, KindStats> = BTreeMap::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let kind = kinds[rng.random_range(0..kinds.len())];
                let url = plan.url(&base, kind, &mut rng);
                let result = match client.get(url.clone()).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(body) if status.is_success() => Ok(body),
                            Ok(body) => Err(format!(
                                "HTTP {status} for GET {url}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(2000)])
                            )),
                            Err(e) => Err(format!("reading the body of GET {url}: {}", chain(&e))),
                        }
                    }
                    Err(e) => Err(format!("GET {url}: {}", chain(&e))),
                };
                let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                let measured = t0 >= measure_from;
                let stats = out.entry(kind).or_default();
                match result {
                    Ok(body) if measured => {
                        stats.latencies.push(micros);
                        if has_entries(&body) {
                            stats.non_empty += 1;
                        }
                        if let Some(t) = total(&body) {
                            stats.total_sum += t;
                            stats.with_total += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if measured {
                            stats.errors += 1;
                        } else {
                            stats.warmup_errors += 1;
                        }
                        stats.first_error.get_or_insert(e);
                    }
                }
            }
            out
        }));
    }
    let mut by_kind: BTreeMap<QueryKind, KindStats> = BTreeMap::new();
    for task in tasks {
        let r = task.await.context("a client task failed")?;
        for (k, s) in r {
            by_kind.entry(k).or_default().merge(s);
        }
    }
    let window = Instant::now().saturating_duration_since(measure_from);
    for s in by_kind.values_mut() {
        s.latencies.sort_unstable();
    }
    Ok(Load {
        window,
        by_kind,
        sample_sizes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entries_and_totals() {
        assert!(has_entries(
            br#"{"resourceType":"Bundle","entry": [ {"x":1}]}"#
        ));
        assert!(!has_entries(br#"{"resourceType":"Bundle","entry":[ ]}"#));
        assert!(!has_entries(br#"{"resourceType":"Bundle","total":0}"#));
        assert!(!has_entries(br#"{"note":"entry","x":1}"#));
        assert_eq!(total(br#"{"type":"searchset","total" : 1234}"#), Some(1234));
        assert_eq!(total(br#"{"type":"searchset"}"#), None);
    }

    #[test]
    fn month_windows() {
        assert_eq!(
            month_window("2019-12-31T08:30:00-05:00"),
            Some(("2019-12-01".into(), "2020-01-01".into()))
        );
        assert_eq!(
            month_window("2020-02"),
            Some(("2020-02-01".into(), "2020-03-01".into()))
        );
        assert_eq!(month_window("20"), None);
    }

    #[test]
    fn reference_ids() {
        let v = serde_json::json!({"subject": {"reference": "Patient/abc"}});
        assert_eq!(
            ref_id(&v, "/subject/reference", "Patient"),
            Some("abc".into())
        );
        assert_eq!(ref_id(&v, "/subject/reference", "Group"), None);
    }
}
