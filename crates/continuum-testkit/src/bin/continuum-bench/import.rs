//! The `import` benchmark: synthetic patient bundles written through `Fhir::bundle`.
//!
//! Bundles are generated one at a time on the main thread and handed to `jobs` writer threads through a
//! small bounded channel, so only a few exist at once. The elapsed time counts only the time during which
//! at least one `Fhir::bundle` call is running; generation is timed on its own.

use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use continuum_core::{CoreError, Fhir, Prefer};
use continuum_testkit::synth::{patient_bundles, provider_bundle, SynthConfig};
use serde_json::Value;

use crate::{cores, mib, peak_rss, print_table, reset_peak_rss, DiskSize, Kind, Target};

/// Base URL for fullUrls in responses (as in `continuum import`; never shown to anyone).
const BASE: &str = "urn:continuum:bench";
/// Error messages kept for printing.
const MAX_ERRORS: usize = 5;

pub(crate) struct ImportFigures {
    kind: Kind,
    patients: u64,
    jobs: usize,
    bundles: u64,
    /// Entries answered with a 2xx status.
    resources: u64,
    /// Entries of batch bundles that failed, plus every entry of transaction bundles that failed.
    failed_entries: u64,
    failed_bundles: u64,
    errors: Vec<String>,
    /// Wall time during which at least one `Fhir::bundle` call was running.
    elapsed: Duration,
    /// The provider batch alone (part of `elapsed`).
    provider_elapsed: Duration,
    /// Time spent generating bundles (on the producer thread, overlapping the writes).
    generation: Duration,
    peak_rss: Option<u64>,
    peak_rss_reset: bool,
    size: Option<DiskSize>,
    empty_size: Option<DiskSize>,
}

impl ImportFigures {
    fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.resources as f64 / s
        } else {
            0.0
        }
    }

    pub(crate) fn print(&self) {
        println!(
            "\nimport: backend {}, {} patients, {} writer thread(s), {} core(s)",
            self.kind.name(),
            self.patients,
            self.jobs,
            cores()
        );
        println!(
            "  resources written   {} in {} bundles ({} failed entries in {} failed bundles)",
            self.resources, self.bundles, self.failed_entries, self.failed_bundles
        );
        println!(
            "  elapsed             {:.2} s in Fhir::bundle (provider batch alone: {:.2} s)",
            self.elapsed.as_secs_f64(),
            self.provider_elapsed.as_secs_f64()
        );
        println!("  throughput          {:.0} resources/s", self.rate());
        println!(
            "  generation          {:.2} s (not in elapsed; runs on the producer thread beside the writers)",
            self.generation.as_secs_f64()
        );
        let rss = self.peak_rss.map_or_else(|| "n/a".to_string(), mib);
        let note = if self.peak_rss_reset {
            "this run"
        } else {
            "whole process: could not reset VmHWM"
        };
        let server = if self.kind == Kind::Postgres {
            "; PostgreSQL server processes not included"
        } else {
            ""
        };
        println!("  peak RSS (VmHWM)    {rss} ({note}{server})");
        let size = self
            .size
            .map_or_else(|| "n/a".to_string(), |s| s.describe());
        let empty = self
            .empty_size
            .map_or_else(|| "n/a".to_string(), |s| mib(s.total));
        println!("  database size       {size}; empty schema {empty}");
        for e in &self.errors {
            println!("  error: {e}");
        }
    }
}

pub(crate) fn print_comparison(kinds: &[Kind], results: &[ImportFigures]) {
    let row = |label: &str, f: &dyn Fn(&ImportFigures) -> String| {
        (label.to_string(), results.iter().map(f).collect::<Vec<_>>())
    };
    let rows = vec![
        row("patients", &|r| r.patients.to_string()),
        row("writer threads", &|r| r.jobs.to_string()),
        row("resources written", &|r| r.resources.to_string()),
        row("failed entries", &|r| r.failed_entries.to_string()),
        row("elapsed (s)", &|r| {
            format!("{:.2}", r.elapsed.as_secs_f64())
        }),
        row("resources/s", &|r| format!("{:.0}", r.rate())),
        row("generation (s)", &|r| {
            format!("{:.2}", r.generation.as_secs_f64())
        }),
        row("peak RSS", &|r| {
            r.peak_rss.map_or_else(|| "n/a".into(), mib)
        }),
        row("database size", &|r| {
            r.size.map_or_else(|| "n/a".into(), |s| mib(s.total))
        }),
    ];
    print_table("import, side by side", kinds, &rows);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Union of the intervals during which at least one timed call runs.
#[derive(Default)]
struct BusyClock {
    state: Mutex<BusyState>,
}

#[derive(Default)]
struct BusyState {
    in_flight: usize,
    since: Option<Instant>,
    total: Duration,
}

impl BusyClock {
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut s = lock(&self.state);
            if s.in_flight == 0 {
                s.since = Some(Instant::now());
            }
            s.in_flight += 1;
        }
        let out = f();
        let mut s = lock(&self.state);
        s.in_flight -= 1;
        if s.in_flight == 0 {
            if let Some(since) = s.since.take() {
                s.total += since.elapsed();
            }
        }
        out
    }

    fn total(&self) -> Duration {
        lock(&self.state).total
    }
}

#[derive(Default)]
struct Tally {
    bundles: u64,
    resources: u64,
    failed_entries: u64,
    failed_bundles: u64,
    errors: Vec<String>,
}

impl Tally {
    fn record(&mut self, entries: usize, result: Result<Vec<u8>, CoreError>) {
        self.bundles += 1;
        match result {
            Ok(bytes) => {
                let resp: Value = match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        self.failed_bundles += 1;
                        self.failed_entries += entries as u64;
                        self.error(format!("response is not JSON: {e}"));
                        return;
                    }
                };
                let statuses = resp
                    .get("entry")
                    .and_then(Value::as_array)
                    .map(|es| {
                        es.iter()
                            .map(|e| {
                                e.pointer("/response/status")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string()
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                for status in statuses {
                    if status.starts_with('2') {
                        self.resources += 1;
                    } else {
                        self.failed_entries += 1;
                        self.error(format!("entry answered {status}"));
                    }
                }
            }
            Err(e) => {
                self.failed_bundles += 1;
                self.failed_entries += entries as u64;
                self.error(format!("bundle failed with {}: {e:?}", e.status()));
            }
        }
    }

    fn error(&mut self, msg: String) {
        if self.errors.len() < MAX_ERRORS {
            let mut msg = msg;
            if msg.len() > 300 {
                let mut cut = 300;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
                msg.push('…');
            }
            self.errors.push(msg);
        }
    }
}

fn entry_count(bundle: &Value) -> usize {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

pub(crate) fn run(kind: Kind, patients: u64, jobs: Option<usize>) -> Result<ImportFigures> {
    let jobs = jobs
        .unwrap_or(match kind {
            Kind::Sqlite => 1,
            Kind::Postgres => 4,
        })
        .max(1);
    let target = Target::open(kind)?;
    let fhir = Fhir::new(target.store.clone());
    let cfg = SynthConfig::default();
    let peak_rss_reset = reset_peak_rss();

    let busy = BusyClock::default();
    let tally = Mutex::new(Tally::default());
    let mut generation = Duration::ZERO;

    // The providers first, alone: patient bundles reference them conditionally.
    let t = Instant::now();
    let providers = provider_bundle(&cfg);
    generation += t.elapsed();
    let n = entry_count(&providers);
    let result = busy.time(|| fhir.bundle(BASE, providers, Prefer::Minimal));
    lock(&tally).record(n, result);
    let provider_elapsed = busy.total();

    let (tx, rx) = sync_channel::<Value>(jobs * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let bundle = match lock(&rx).recv() {
                    Ok(b) => b,
                    Err(_) => break,
                };
                let n = entry_count(&bundle);
                let result = busy.time(|| fhir.bundle(BASE, bundle, Prefer::Minimal));
                lock(&tally).record(n, result);
            });
        }
        let t = Instant::now();
        let mut bundles = patient_bundles(&cfg, patients);
        generation += t.elapsed();
        loop {
            let t = Instant::now();
            let next = bundles.next();
            generation += t.elapsed();
            let Some(bundle) = next else { break };
            tx.send(bundle)
                .map_err(|_| anyhow!("the writer threads stopped"))?;
        }
        drop(tx);
        Ok(())
    })?;

    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(ImportFigures {
        kind,
        patients,
        jobs,
        bundles: tally.bundles,
        resources: tally.resources,
        failed_entries: tally.failed_entries,
        failed_bundles: tally.failed_bundles,
        errors: tally.errors,
        elapsed: busy.total(),
        provider_elapsed,
        generation,
        peak_rss: peak_rss(),
        peak_rss_reset,
        size: target.size_on_disk().ok(),
        empty_size: target.empty_size,
    })
}
