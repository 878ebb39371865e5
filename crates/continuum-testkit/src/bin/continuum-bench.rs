//! `continuum-bench`: figures for the resource store on SQLite and PostgreSQL. Prints, never asserts.
//!
//! ```text
//! continuum-bench import --backend sqlite|postgres|both --patients 40 [--jobs N]
//! continuum-bench read   --backend sqlite|postgres|both --resources 20000 --clients 32 --seconds 10
//! continuum-bench search --database sqlite:///tmp/bench.db --clients 32 --seconds 20
//! ```
//!
//! Owns: the benchmarks (`import`: synthetic Synthea-like bundles through `Fhir::bundle`, the code path of
//! `continuum import` and `POST /fhir`; `read`: concurrent `GET /fhir/Patient/{id}` against the real HTTP
//! server on 127.0.0.1; `search`: issue 3's search mix over HTTP on an existing seeded database), opening a
//! throwaway store per run for `import` and `read` (SQLite in a temporary directory, PostgreSQL in a fresh
//! database of the testkit's throwaway cluster) and printing the figures.
//! Does not own: the data generator (`continuum_testkit::synth`), the cluster (`continuum_testkit::pg`), or
//! any FHIR or HTTP behaviour (it only calls `continuum-core` and `continuum-web`).

// A crate root finds modules beside it, so the split-out files are named by path.
#[path = "continuum-bench/import.rs"]
mod import;
#[path = "continuum-bench/read.rs"]
mod read;
#[path = "continuum-bench/search.rs"]
mod search;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use continuum_store::{ResourceStore, SystemClock};

#[derive(Parser)]
#[command(
    name = "continuum-bench",
    about = "Benchmarks of Continuum's resource store (prints figures, asserts nothing)"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Load synthetic patient bundles through `Fhir::bundle` (the `continuum import` / `POST /fhir` path).
    Import {
        #[arg(long, value_enum)]
        backend: BackendArg,
        /// Patients to generate and load (one transaction bundle each, ~230 entries).
        #[arg(long, default_value_t = 40)]
        patients: u64,
        /// Writer threads (default: 1 on SQLite, 4 on PostgreSQL).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Concurrent `GET /fhir/Patient/{id}` against the in-process HTTP server.
    Read {
        #[arg(long, value_enum)]
        backend: BackendArg,
        /// Patients stored before the run (ids `bench-000000`…).
        #[arg(long, default_value_t = 20_000)]
        resources: usize,
        /// Concurrent clients, each a keep-alive HTTP client issuing one request at a time.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Length of the measured run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Unmeasured warm-up before the run (connections, caches).
        #[arg(long, default_value_t = 1.0)]
        warmup_seconds: f64,
        /// Clients create Patients (`POST /fhir/Patient`, `Prefer: return=minimal`) instead of reading: the
        /// concurrent single-resource write path (group commit on SQLite).
        #[arg(long)]
        create: bool,
    },
    /// The search mix of issue 3 over HTTP against an existing database populated by `continuum seed`.
    Search {
        /// `sqlite:///path/file.db` or `postgres://user@host:port/db`, already seeded (it is not emptied).
        #[arg(long)]
        database: String,
        /// Concurrent clients, each a keep-alive HTTP client issuing one request at a time.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Length of the measured run.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Unmeasured warm-up before the run (connections, caches).
        #[arg(long, default_value_t = 3.0)]
        warmup_seconds: f64,
        /// Only these query kinds (comma-separated labels, e.g. `obs-latest,chain-2`); all by default.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

impl BackendArg {
    fn kinds(self) -> Vec<Kind> {
        match self {
            BackendArg::Sqlite => vec![Kind::Sqlite],
            BackendArg::Postgres => vec![Kind::Postgres],
            BackendArg::Both => vec![Kind::Sqlite, Kind::Postgres],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    }
}

/// Where a run's data lives; dropping it removes the SQLite directory (the PostgreSQL database goes with the
/// throwaway cluster when the process exits).
enum Location {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
    },
}

/// A freshly created, migrated, empty store.
pub(crate) struct Target {
    pub(crate) store: Arc<dyn ResourceStore>,
    location: Location,
    /// Size right after migrations, so the data's own footprint can be told apart from the empty schema.
    pub(crate) empty_size: Option<DiskSize>,
}

impl Target {
    pub(crate) fn open(kind: Kind) -> Result<Target> {
        let clock = Arc::new(SystemClock);
        let (store, location): (Arc<dyn ResourceStore>, Location) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("continuum-bench-")
                    .tempdir()
                    .context("creating a temporary directory")?;
                let path = dir.path().join("bench.db");
                let store = continuum_store_sqlite::SqliteStore::open(&path, clock)
                    .with_context(|| format!("opening SQLite database {}", path.display()))?;
                (Arc::new(store), Location::Sqlite { path, _dir: dir })
            }
            Kind::Postgres => {
                let url = continuum_testkit::pg::fresh_database()?;
                let store = continuum_store_postgres::PostgresStore::open(&url, clock)
                    .context("opening the PostgreSQL database")?;
                (Arc::new(store), Location::Postgres { url })
            }
        };
        let mut target = Target {
            store,
            location,
            empty_size: None,
        };
        target.empty_size = target.size_on_disk().ok();
        Ok(target)
    }

    /// SQLite: the database file and its audit file (`-audit`), each with its `-wal`. PostgreSQL:
    /// `pg_database_size` (relation files, no WAL), asked through `psql`.
    pub(crate) fn size_on_disk(&self) -> Result<DiskSize> {
        match &self.location {
            Location::Sqlite { path, .. } => {
                let with_suffix = |suffix: &str| {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    file_len(Path::new(&name)).unwrap_or(0)
                };
                let main = file_len(path)?;
                let wal = with_suffix("-wal") + with_suffix("-audit-wal");
                Ok(DiskSize {
                    total: main + with_suffix("-audit") + wal,
                    wal: Some(wal),
                })
            }
            Location::Postgres { url } => Ok(DiskSize {
                total: pg_database_size(url)?,
                wal: None,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DiskSize {
    pub(crate) total: u64,
    /// SQLite only: how much of `total` is the write-ahead log.
    pub(crate) wal: Option<u64>,
}

impl DiskSize {
    pub(crate) fn describe(&self) -> String {
        match self.wal {
            Some(wal) => format!(
                "{} (file {} + wal {})",
                mib(self.total),
                mib(self.total - wal),
                mib(wal)
            ),
            None => format!("{} (pg_database_size)", mib(self.total)),
        }
    }
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len())
}

fn pg_database_size(url: &str) -> Result<u64> {
    let psql = continuum_testkit::pg::find_bin_dir()
        .map(|d| d.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"));
    let out = Command::new(&psql)
        .arg(url)
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT pg_database_size(current_database())",
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", psql.display()))?;
    if !out.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing pg_database_size")
}

/// Reset the process's peak RSS (`VmHWM`) so each run reports its own peak. Returns whether it worked
/// (Linux ≥ 4.0 accepts `5` in `/proc/self/clear_refs`).
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident set size of this process in bytes (`VmHWM` of `/proc/self/status`).
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Print rows of `(label, one value per backend)` as a table with the backends as columns.
pub(crate) fn print_table(title: &str, backends: &[Kind], rows: &[(String, Vec<String>)]) {
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(6);
    let col_width = rows
        .iter()
        .flat_map(|(_, vs)| vs.iter().map(|v| v.chars().count()))
        .chain(backends.iter().map(|k| k.name().len()))
        .max()
        .unwrap_or(8);
    println!("\n{title}");
    let mut header = format!("  {:<label_width$}", "");
    for k in backends {
        header.push_str(&format!("  {:>col_width$}", k.name()));
    }
    println!("{header}");
    for (label, values) in rows {
        let mut line = format!("  {label:<label_width$}");
        for v in values {
            line.push_str(&format!("  {v:>col_width$}"));
        }
        println!("{line}");
    }
}

/// mimalloc instead of the system allocator: the import path allocates and frees many small JSON values, and
/// glibc's malloc spent a quarter of the import time consolidating and unlinking chunks (perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Bench::Import {
            backend,
            patients,
            jobs,
        } => {
            if jobs == Some(0) {
                bail!("--jobs must be at least 1");
            }
            let kinds = backend.kinds();
            let mut results = Vec::new();
            for &kind in &kinds {
                let figures = import::run(kind, patients, jobs)?;
                figures.print();
                results.push(figures);
            }
            if results.len() > 1 {
                import::print_comparison(&kinds, &results);
            }
        }
        Bench::Read {
            backend,
            resources,
            clients,
            seconds,
            warmup_seconds,
            create,
        } => {
            if resources == 0 || clients == 0 {
                bail!("--resources and --clients must be at least 1");
            }
            let valid = seconds > 0.0
                && seconds.is_finite()
                && warmup_seconds >= 0.0
                && warmup_seconds.is_finite();
            if !valid {
                bail!("--seconds must be positive and --warmup-seconds not negative");
            }
            let kinds = backend.kinds();
            let mut results = Vec::new();
            for &kind in &kinds {
                let figures = read::run(kind, resources, clients, seconds, warmup_seconds, create)?;
                figures.print();
                results.push(figures);
            }
            if results.len() > 1 {
                read::print_comparison(&kinds, &results);
            }
        }
        Bench::Search {
            database,
            clients,
            seconds,
            warmup_seconds,
            only,
        } => {
            let valid = clients > 0
                && seconds > 0.0
                && seconds.is_finite()
                && warmup_seconds >= 0.0
                && warmup_seconds.is_finite();
            if !valid {
                bail!("--clients and --seconds must be positive and --warmup-seconds not negative");
            }
            search::run(search::Options {
                database,
                clients,
                seconds,
                warmup_seconds,
                only,
            })?;
        }
    }
    Ok(())
}
