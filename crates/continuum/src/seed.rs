//! `continuum seed` and `continuum demo`: the synthetic population of `continuum-seed` loaded through the
//! same core calls as the REST API (`Fhir::bundle`), or written as FHIR NDJSON files; and the one-command
//! demo that seeds an embedded database on first start, then serves it.
//!
//! The population is streamed: chunks are generated one at a time on the main thread and handed to writer
//! threads through a small bounded channel, so memory does not grow with the number of patients. Shared data
//! (code systems, facilities, staff, slots) is written first and alone, because families reference it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use continuum_core::fhir::Handling;
use continuum_core::{Fhir, Prefer};
use continuum_seed::ndjson::Flattener;
use continuum_seed::{Chunk, ChunkKind, Population, StaffRole, SynthConfig};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use time::{Date, OffsetDateTime, Time};

/// Base URL for fullUrls in responses (never shown to anyone).
const BASE: &str = "urn:continuum:seed";
/// Error messages kept for the summary.
const MAX_ERRORS: usize = 50;

/// What was written, for the closing summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub patients: u64,
    pub families: u64,
    pub by_type: BTreeMap<String, u64>,
    pub errors: Vec<String>,
    pub failed: u64,
    pub seconds: f64,
    /// Where it went: a database backend or a folder.
    pub target: String,
}

impl Summary {
    pub fn resources(&self) -> u64 {
        self.by_type.values().sum()
    }

    fn count(&mut self, counts: BTreeMap<String, u64>) {
        for (k, v) in counts {
            *self.by_type.entry(k).or_insert(0) += v;
        }
    }

    fn error(&mut self, msg: String) {
        self.failed += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(msg);
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.resources();
        let rate = if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        };
        writeln!(
            f,
            "seeded {} synthetic patients in {} families: {n} resources to {} in {:.1} s ({rate:.0} resources/s)",
            self.patients, self.families, self.target, self.seconds
        )?;
        for (t, c) in &self.by_type {
            writeln!(f, "  {t:<28} {c:>10}")?;
        }
        if self.failed > 0 {
            writeln!(f, "{} bundles failed:", self.failed)?;
            for e in &self.errors {
                writeln!(f, "  {e}")?;
            }
        }
        Ok(())
    }
}

/// Family writers by default: two on SQLite (its group commit lets two writers share a transaction and an
/// fsync: 2,086 against 1,731 resources/s for 1,000 patients on two cores), four on PostgreSQL.
pub fn default_jobs(store: &dyn continuum_store::ResourceStore) -> usize {
    if store.backend() == "sqlite" {
        2
    } else {
        4
    }
}

/// "Now" of the simulation: the given date (`YYYY-MM-DD`, midnight UTC), else today at midnight UTC, so two
/// runs on one day produce the same population.
pub fn now_from(date: Option<&str>) -> Result<OffsetDateTime> {
    let day = match date {
        Some(d) => Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
            .with_context(|| format!("--now '{d}' is not a date like 2026-01-31"))?,
        None => OffsetDateTime::now_utc().date(),
    };
    Ok(day.with_time(Time::MIDNIGHT).assume_utc())
}

fn progress(patients: u64) -> ProgressBar {
    let bar = ProgressBar::new(patients);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} patients  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resource types of a bundle's entries, in order.
fn entry_types(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    e["resource"]["resourceType"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes one chunk through the core; resources written per type, or why it failed.
fn write_chunk(fhir: &Fhir, chunk: Chunk) -> Result<BTreeMap<String, u64>, String> {
    let types = entry_types(&chunk.bundle);
    let started = Instant::now();
    let what = match chunk.kind {
        ChunkKind::Terminology => "code systems",
        ChunkKind::Site => "site data",
        ChunkKind::Family => "family",
    };
    let bytes = fhir
        .bundle(BASE, chunk.bundle, Prefer::Minimal)
        .map_err(|e| format!("{what}: {} {e}", e.status()))?;
    let resp: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{what}: response not JSON: {e}"))?;
    let mut counts = BTreeMap::new();
    for (i, e) in resp["entry"].as_array().into_iter().flatten().enumerate() {
        let status = e["response"]["status"].as_str().unwrap_or("");
        if !status.starts_with('2') {
            return Err(format!("{what}: entry {i} answered {status}"));
        }
        if let Some(t) = types.get(i).filter(|t| !t.is_empty()) {
            *counts.entry(t.clone()).or_insert(0) += 1;
        }
    }
    tracing::debug!(
        what,
        entries = types.len(),
        ms = started.elapsed().as_millis() as u64,
        "chunk written"
    );
    Ok(counts)
}

/// Loads the population through `Fhir::bundle` with `jobs` writers for the families.
pub fn to_store(fhir: &Fhir, cfg: &SynthConfig, patients: u64, jobs: usize) -> Result<Summary> {
    let started = Instant::now();
    let bar = progress(patients);
    let summary = Mutex::new(Summary {
        target: fhir.store().backend().to_string(),
        ..Summary::default()
    });
    let mut population = Population::new(cfg, patients);
    // Shared data first, on this thread: families reference it conditionally.
    bar.set_message("code systems, facilities, staff, slots");
    let mut first_family = None;
    for chunk in population.by_ref() {
        if chunk.kind == ChunkKind::Family {
            first_family = Some(chunk);
            break;
        }
        let result = write_chunk(fhir, chunk);
        let mut s = lock(&summary);
        match result {
            Ok(c) => s.count(c),
            Err(e) => s.error(e),
        }
    }
    if lock(&summary).failed > 0 {
        bar.finish_and_clear();
        let s = summary.into_inner().unwrap_or_else(|p| p.into_inner());
        bail!("the shared data could not be written, so no family was:\n{s}");
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(jobs * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let chunk = match lock(&rx).recv() {
                    Ok(c) => c,
                    Err(_) => break,
                };
                let patients = chunk.patients;
                let result = write_chunk(fhir, chunk);
                let mut s = lock(&summary);
                match result {
                    Ok(c) => {
                        s.count(c);
                        s.patients += patients;
                        s.families += 1;
                    }
                    Err(e) => s.error(e),
                }
                let n = s.resources();
                drop(s);
                bar.inc(patients);
                bar.set_message(format!("{n} resources"));
            });
        }
        for chunk in first_family.into_iter().chain(population.by_ref()) {
            tx.send(chunk)
                .map_err(|_| anyhow!("the writer threads stopped"))?;
        }
        drop(tx);
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut s = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}

/// `--out /dev/null`: generate, flatten and serialise everything as for a folder, then drop the bytes (to
/// measure the generator's speed and memory without a database or disk in the way).
const DISCARD: &str = "/dev/null";

/// Writes the population as `DIR/<Type>.ndjson`, ids assigned and references resolved; with
/// [`DISCARD`] as `DIR`, every file is a sink.
pub fn to_ndjson(dir: &Path, cfg: &SynthConfig, patients: u64) -> Result<Summary> {
    let started = Instant::now();
    let discard = dir == Path::new(DISCARD);
    if !discard {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = progress(patients);
    let mut summary = Summary {
        target: dir.display().to_string(),
        ..Summary::default()
    };
    let mut files: BTreeMap<String, BufWriter<Box<dyn Write>>> = BTreeMap::new();
    let mut write = |summary: &mut Summary, resource: Value| -> Result<()> {
        let ty = resource["resourceType"]
            .as_str()
            .unwrap_or("Unknown")
            .to_string();
        let out = match files.entry(ty.clone()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let f: Box<dyn Write> = if discard {
                    Box::new(std::io::sink())
                } else {
                    let path = dir.join(format!("{ty}.ndjson"));
                    Box::new(
                        File::create(&path)
                            .with_context(|| format!("creating {}", path.display()))?,
                    )
                };
                v.insert(BufWriter::new(f))
            }
        };
        serde_json::to_writer(&mut *out, &resource)?;
        out.write_all(b"\n")?;
        *summary.by_type.entry(ty).or_insert(0) += 1;
        Ok(())
    };
    let mut flattener = Flattener::new();
    for chunk in Population::new(cfg, patients) {
        let (kind, n) = (chunk.kind, chunk.patients);
        for r in flattener.flatten(kind, chunk.bundle)? {
            write(&mut summary, r)?;
        }
        if kind == ChunkKind::Family {
            summary.patients += n;
            summary.families += 1;
            bar.inc(n);
            bar.set_message(format!("{} resources", summary.resources()));
        }
    }
    for slot in flattener.finish() {
        write(&mut summary, slot)?;
    }
    for (ty, mut f) in files {
        f.flush().with_context(|| format!("writing {ty}.ndjson"))?;
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Whether a Patient with this synthetic DoD ID is stored; its id if so.
pub fn patient_id(fhir: &Fhir, dodid: &str) -> Result<Option<String>> {
    find_id(
        fhir,
        "Patient",
        &format!("{}|{dodid}", continuum_seed::DODID_SYSTEM),
    )
}

fn find_id(fhir: &Fhir, ty: &str, identifier: &str) -> Result<Option<String>> {
    let params = vec![("identifier".to_string(), identifier.to_string())];
    let bytes = fhir
        .search(BASE, Some(ty), &params, Handling::Strict)
        .map_err(|e| anyhow!("searching {ty}: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes)?;
    Ok(v["entry"][0]["resource"]["id"].as_str().map(str::to_string))
}

/// The demo's guide: where to look, and who to look at.
pub fn guide(fhir: &Fhir, cfg: &SynthConfig, url: &str) -> Result<String> {
    let show = continuum_seed::showcase(cfg);
    let mut out = String::new();
    let line = |out: &mut String, label: &str, ty: &str, id: Option<String>, note: &str| {
        let id = id.map_or_else(|| "(not found)".to_string(), |i| format!("{ty}/{i}"));
        out.push_str(&format!("  {label:<34} {url}/fhir/{id}  {note}\n"));
    };
    out.push_str(&format!(
        "The Example family ({}), a sample sponsor with a child in every proxy age band:\n",
        show.facility
    ));
    line(
        &mut out,
        "sponsor (active duty)",
        "Patient",
        patient_id(fhir, &show.sponsor)?,
        "",
    );
    line(
        &mut out,
        "spouse",
        "Patient",
        patient_id(fhir, &show.spouse)?,
        "",
    );
    for (dodid, age) in &show.children {
        let band = match continuum_seed::AgeBand::of(f64::from(*age)) {
            continuum_seed::AgeBand::Child => "0-11",
            continuum_seed::AgeBand::Adolescent => "12-17, has a restricted record",
            continuum_seed::AgeBand::Adult => "18+",
        };
        line(
            &mut out,
            &format!("child, {age} year{}", if *age == 1 { "" } else { "s" }),
            "Patient",
            patient_id(fhir, dodid)?,
            &format!("(age band {band})"),
        );
    }
    out.push_str("Staff at that facility:\n");
    for (role, staff_id) in &show.staff {
        let label = match role {
            r if r.is_pcm() => "primary care manager (the sponsor's)",
            StaffRole::Nurse => "nurse",
            StaffRole::Medic => "medic",
            StaffRole::Dentist => "dentist",
            StaffRole::Pharmacist => "pharmacist",
            StaffRole::Scheduler => "scheduler",
            StaffRole::Administrator => "administrator",
            _ => "staff",
        };
        let id = find_id(
            fhir,
            "Practitioner",
            &format!("{}|{staff_id}", continuum_seed::STAFF_SYSTEM),
        )?;
        line(&mut out, label, "Practitioner", id, "");
    }
    Ok(out)
}

/// The password of every demo account: long enough for NIST SP 800-63B without a second factor, and printed
/// on purpose — the demo holds only synthetic data.
pub const DEMO_PASSWORD: &str = "synthetic-demo-only-2026";

/// One demo login.
pub struct DemoLogin {
    pub label: String,
    pub username: String,
    pub totp_secret: String,
}

/// Create (or find) the demo's accounts: the showcase family's sponsor (a parent proxy of every child, one
/// per age band), the spouse, the adolescent and the young adult with their own accounts, and the staff at their
/// facility. Each has [`DEMO_PASSWORD`] and a TOTP second factor whose current code `continuum admin totp-code`
/// prints (demo accounts only).
pub fn demo_accounts(
    store: std::sync::Arc<dyn continuum_store::ResourceStore>,
    fhir: &Fhir,
    cfg: &SynthConfig,
) -> Result<Vec<DemoLogin>> {
    use continuum_auth::{Account, AccountKind, Auth, LoginPolicy};
    use continuum_core::access::{ProxyBasis, ProxyGrant};
    let auth = Auth::new(store, LoginPolicy::default());
    let show = continuum_seed::showcase(cfg);
    let mut plans: Vec<(String, Account)> = Vec::new();
    let pid = |dodid: &str| -> Result<String> {
        patient_id(fhir, dodid)?.ok_or_else(|| anyhow!("the demo family is not in the database"))
    };
    let sponsor_id = pid(&show.sponsor)?;
    let mut sponsor = Account::new(AccountKind::Patient, "sponsor", "Example sponsor");
    sponsor.patient = Some(sponsor_id);
    sponsor.level = Some("premium".into());
    let mut ages = Vec::new();
    for (dodid, age) in &show.children {
        sponsor.proxies.push(ProxyGrant {
            patient: pid(dodid)?,
            basis: ProxyBasis::Parent,
            expires: None,
            revoked: false,
        });
        ages.push(age.to_string());
    }
    plans.push((
        format!("sponsor, parent of children aged {}", ages.join(", ")),
        sponsor,
    ));
    let mut spouse = Account::new(AccountKind::Patient, "spouse", "Example spouse");
    spouse.patient = Some(pid(&show.spouse)?);
    spouse.level = Some("premium".into());
    plans.push(("spouse (a patient)".into(), spouse));
    for (dodid, age) in &show.children {
        let (username, label) = match continuum_seed::AgeBand::of(f64::from(*age)) {
            continuum_seed::AgeBand::Adolescent => {
                ("teen", format!("the {age}-year-old's own account"))
            }
            continuum_seed::AgeBand::Adult => {
                ("young-adult", format!("the {age}-year-old's own account"))
            }
            continuum_seed::AgeBand::Child => continue,
        };
        if plans.iter().any(|(_, a)| a.username == username) {
            continue;
        }
        let mut a = Account::new(
            AccountKind::Patient,
            username,
            &format!("Example {username}"),
        );
        a.patient = Some(pid(dodid)?);
        a.level = Some("premium".into());
        plans.push((label, a));
    }
    for (role, staff_id) in &show.staff {
        let (username, policy_role, label) = match role {
            r if r.is_pcm() => ("pcm", "physician", "primary care manager"),
            StaffRole::Nurse => ("nurse", "nurse", "nurse"),
            StaffRole::Medic => ("medic", "medic", "medic"),
            StaffRole::Dentist => ("dentist", "dentist", "dentist"),
            StaffRole::Pharmacist => ("pharmacist", "pharmacist", "pharmacist"),
            StaffRole::Scheduler => ("scheduler", "scheduler", "scheduler"),
            StaffRole::Administrator => ("admin", "administrator", "administrator"),
            _ => continue,
        };
        if plans.iter().any(|(_, a)| a.username == username) {
            continue;
        }
        let practitioner = find_id(
            fhir,
            "Practitioner",
            &format!("{}|{staff_id}", continuum_seed::STAFF_SYSTEM),
        )?;
        let mut a = Account::new(AccountKind::Staff, username, &format!("Example {label}"));
        a.roles = vec![policy_role.to_string()];
        a.practitioner = practitioner;
        plans.push((label.to_string(), a));
    }
    let mut out = Vec::new();
    for (label, mut account) in plans {
        let existing = auth.by_username(&account.username)?;
        let account = match existing {
            Some(a) => a,
            None => {
                account.demo = true;
                account.totp_secret = Some(continuum_auth::totp::to_base32(
                    &continuum_auth::totp::new_secret(),
                ));
                auth.create(account, Some(DEMO_PASSWORD))?
            }
        };
        out.push(DemoLogin {
            label,
            username: account.username.clone(),
            totp_secret: account.totp_secret.clone().unwrap_or_default(),
        });
    }
    Ok(out)
}
