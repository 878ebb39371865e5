//! `continuum import`: FHIR Bundles (transaction, batch, collection), NDJSON files and folders of them,
//! written through the same core calls as the REST API.
//!
//! Synthea-style data sets put shared Organizations and Practitioners in batch bundles that patient bundles
//! reference conditionally, so files named `hospitalInformation*`/`practitionerInformation*` are loaded
//! first, in a phase of their own, before anything else.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use continuum_core::{Fhir, Prefer};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// Resources written per transaction when loading NDJSON or collection bundles.
const CHUNK: usize = 500;
/// Base URL used for fullUrls and locations in import responses (never shown to a client).
const BASE: &str = "urn:continuum:import";

#[derive(Debug, Default)]
pub struct Summary {
    pub files: usize,
    /// Resources written (created or updated), per type.
    pub by_type: BTreeMap<String, u64>,
    /// Conditional creates (`ifNoneExist`) that found their resource already there: nothing written.
    pub matched: u64,
    pub errors: Vec<String>,
    pub seconds: f64,
}

impl Summary {
    pub fn resources(&self) -> u64 {
        self.by_type.values().sum()
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
            "imported {n} resources from {} files in {:.2} s ({rate:.0} resources/s)",
            self.files, self.seconds
        )?;
        for (t, c) in &self.by_type {
            writeln!(f, "  {t:<28} {c:>10}")?;
        }
        if self.matched > 0 {
            writeln!(
                f,
                "{} conditional creates found their resource already present (not written again)",
                self.matched
            )?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "{} errors:", self.errors.len())?;
            for e in self.errors.iter().take(200) {
                writeln!(f, "  {e}")?;
            }
            if self.errors.len() > 200 {
                writeln!(f, "  … and {} more", self.errors.len() - 200)?;
            }
        }
        Ok(())
    }
}

/// One unit of work: a Bundle to post, with where it came from.
struct Unit {
    origin: String,
    /// Line or entry number of the first resource, for error messages of chunked NDJSON.
    first: usize,
    bundle: Value,
}

fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                for entry in
                    std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
                {
                    let path = entry?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if matches!(
                        path.extension().and_then(|e| e.to_str()),
                        Some("json" | "ndjson")
                    ) {
                        out.push(path);
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    Ok(out)
}

fn is_shared_data(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("hospitalInformation") || name.starts_with("practitionerInformation")
}

/// Entries that write `resource` (PUT with its id, else POST).
fn write_entry(resource: Value) -> Value {
    let ty = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match resource.get("id").and_then(Value::as_str) {
        Some(id) => {
            let url = format!("{ty}/{id}");
            json!({"fullUrl": format!("{ty}/{id}"), "resource": resource, "request": {"method": "PUT", "url": url}})
        }
        None => json!({"resource": resource, "request": {"method": "POST", "url": ty}}),
    }
}

fn chunk_bundle(resources: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": resources.into_iter().map(write_entry).collect::<Vec<_>>()})
}

/// Turn a file into units of work.
fn units_of(
    path: &Path,
    mut emit: impl FnMut(Unit) -> Result<()>,
    errors: &Mutex<Vec<String>>,
) -> Result<()> {
    let origin = path.display().to_string();
    let is_ndjson = path.extension().and_then(|e| e.to_str()) == Some("ndjson");
    if is_ndjson {
        let file = std::fs::File::open(path).with_context(|| format!("opening {origin}"))?;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut first = 1;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("reading {origin}"))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => chunk.push(v),
                Err(e) => lock(errors).push(format!("{origin} line {}: not JSON: {e}", i + 1)),
            }
            if chunk.len() == CHUNK {
                emit(Unit {
                    origin: origin.clone(),
                    first,
                    bundle: chunk_bundle(std::mem::take(&mut chunk)),
                })?;
                first = i + 2;
            }
        }
        if !chunk.is_empty() {
            emit(Unit {
                origin,
                first,
                bundle: chunk_bundle(chunk),
            })?;
        }
        return Ok(());
    }
    let text = std::fs::read(path).with_context(|| format!("reading {origin}"))?;
    let v: Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            lock(errors).push(format!("{origin}: not JSON: {e}"));
            return Ok(());
        }
    };
    let is_bundle = v.get("resourceType").and_then(Value::as_str) == Some("Bundle");
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    if is_bundle && (kind == "transaction" || kind == "batch") {
        emit(Unit {
            origin,
            first: 0,
            bundle: v,
        })
    } else if is_bundle {
        // collection, document, message, searchset: store the entries' resources as they are
        let resources: Vec<Value> = v
            .get("entry")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter_map(|x| x.get("resource").cloned())
                    .collect()
            })
            .unwrap_or_default();
        for (n, chunk) in resources.chunks(CHUNK).enumerate() {
            emit(Unit {
                origin: origin.clone(),
                first: n * CHUNK,
                bundle: chunk_bundle(chunk.to_vec()),
            })?;
        }
        Ok(())
    } else {
        emit(Unit {
            origin,
            first: 0,
            bundle: chunk_bundle(vec![v]),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Post one unit; returns resources written per type. Errors are recorded with file and entry.
fn process(fhir: &Fhir, unit: Unit, errors: &Mutex<Vec<String>>) -> (BTreeMap<String, u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut matched = 0;
    let posts: Vec<bool> = unit
        .bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .map(|e| e.pointer("/request/method").and_then(Value::as_str) == Some("POST"))
                .collect()
        })
        .unwrap_or_default();
    let request_types: Vec<String> = unit
        .bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .map(|e| {
                    e.pointer("/resource/resourceType")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let is_batch = unit.bundle.get("type").and_then(Value::as_str) == Some("batch");
    match fhir.bundle(BASE, unit.bundle, Prefer::Minimal) {
        Ok(bytes) => {
            let resp: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let entries = resp
                .get("entry")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (i, e) in entries.iter().enumerate() {
                let status = e
                    .pointer("/response/status")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ty = request_types.get(i).cloned().unwrap_or_default();
                if status.starts_with("200") && posts.get(i).copied().unwrap_or(false) {
                    // a POST answered 200: the conditional create matched an existing resource
                    matched += 1;
                } else if status.starts_with('2') {
                    if !ty.is_empty() {
                        *counts.entry(ty).or_insert(0) += 1;
                    }
                } else {
                    let msg = e
                        .pointer("/response/outcome/issue/0/diagnostics")
                        .and_then(Value::as_str)
                        .unwrap_or("failed");
                    lock(errors).push(format!(
                        "{} entry {}: {status} {msg}",
                        unit.origin,
                        unit.first + i
                    ));
                }
            }
        }
        Err(e) => {
            let what = if is_batch { "batch" } else { "transaction" };
            let detail = match &e {
                continuum_core::CoreError::Unprocessable(issues) => issues
                    .iter()
                    .map(|i| {
                        format!(
                            "{} ({})",
                            i.diagnostics,
                            i.expression.clone().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            lock(errors).push(format!(
                "{} ({what} from entry {}): {} {detail}",
                unit.origin,
                unit.first,
                e.status()
            ));
        }
    }
    (counts, matched)
}

pub fn run(fhir: Fhir, paths: &[PathBuf], jobs: usize) -> Result<Summary> {
    let started = Instant::now();
    let mut files = collect_files(paths)?;
    files.sort_by_key(|p| (!is_shared_data(p), p.clone()));
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let errors = Mutex::new(Vec::new());
    let totals = Mutex::new(BTreeMap::<String, u64>::new());
    let matched_total = std::sync::atomic::AtomicU64::new(0);
    let (shared, rest): (Vec<PathBuf>, Vec<PathBuf>) =
        files.iter().cloned().partition(|p| is_shared_data(p));
    for phase in [shared, rest] {
        if phase.is_empty() {
            continue;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Unit>(jobs * 2);
        let rx = Mutex::new(rx);
        std::thread::scope(|s| -> Result<()> {
            for _ in 0..jobs {
                s.spawn(|| loop {
                    let unit = match lock(&rx).recv() {
                        Ok(u) => u,
                        Err(_) => break,
                    };
                    let (counts, matched) = process(&fhir, unit, &errors);
                    matched_total.fetch_add(matched, std::sync::atomic::Ordering::Relaxed);
                    let mut t = lock(&totals);
                    for (k, v) in counts {
                        *t.entry(k).or_insert(0) += v;
                    }
                    let n: u64 = t.values().sum();
                    drop(t);
                    bar.set_message(format!("{n} resources"));
                });
            }
            for path in &phase {
                units_of(
                    path,
                    |u| {
                        tx.send(u)
                            .map_err(|_| anyhow::anyhow!("import workers stopped"))
                    },
                    &errors,
                )?;
                bar.inc(1);
            }
            drop(tx);
            Ok(())
        })?;
    }
    bar.finish_and_clear();
    Ok(Summary {
        files: files.len(),
        by_type: totals.into_inner().unwrap_or_else(|p| p.into_inner()),
        matched: matched_total.into_inner(),
        errors: errors.into_inner().unwrap_or_else(|p| p.into_inner()),
        seconds: started.elapsed().as_secs_f64(),
    })
}
