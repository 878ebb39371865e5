//! The `continuum` binary: one program for every role — `serve`, `migrate`, `import`.

mod import;

/// mimalloc instead of the system allocator: the import path allocates and frees many small JSON values, and
/// glibc's malloc spent a quarter of the import time consolidating and unlinking chunks (perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use continuum_core::Fhir;
use continuum_store::{ResourceStore, SystemClock};

#[derive(Parser)]
#[command(
    name = "continuum",
    version,
    about = "Continuum: an open-source EHR and patient portal on FHIR R4"
)]
struct Cli {
    /// Database: `sqlite://PATH` (embedded, default) or `postgres://user@host:port/db`.
    #[arg(
        long = "database",
        env = "CONTINUUM_DATABASE_URL",
        default_value = "sqlite://continuum.db",
        global = true
    )]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (FHIR API at /fhir, /healthz, /readyz, /metrics).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CONTINUUM_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Largest accepted request body in bytes.
        #[arg(long, env = "CONTINUUM_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
        max_body_bytes: usize,
        /// Public base URL of the FHIR API, when behind a proxy.
        #[arg(long, env = "CONTINUUM_PUBLIC_BASE")]
        public_base: Option<String>,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// Load FHIR Bundles (transaction, batch, collection), NDJSON files or folders of them.
    Import {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Parallel writers (default: 1 on SQLite, 4 on PostgreSQL).
        #[arg(long)]
        jobs: Option<usize>,
    },
}

/// Open the store named by a database URL, migrating it.
fn open_store(url: &str) -> Result<Arc<dyn ResourceStore>> {
    let clock = Arc::new(SystemClock);
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = if path.is_empty() {
            "continuum.db"
        } else {
            path
        };
        let store = continuum_store_sqlite::SqliteStore::open(path, clock)
            .with_context(|| format!("opening SQLite database {path}"))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = continuum_store_postgres::PostgresStore::open(url, clock)
            .context("opening PostgreSQL database")?;
        Ok(Arc::new(store))
    } else {
        bail!("unsupported database URL '{url}': use sqlite://PATH or postgres://...")
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            max_body_bytes,
            public_base,
        } => {
            let store = open_store(&cli.database)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let addr = listener.local_addr()?;
                let state = continuum_web::AppState::new(
                    Fhir::new(store.clone()),
                    continuum_web::WebConfig {
                        max_body_bytes,
                        public_base,
                    },
                );
                tracing::info!(backend = store.backend(), %addr, "serving");
                println!("Continuum is running at http://{addr}/  (FHIR API: http://{addr}/fhir)");
                continuum_web::serve(listener, state, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
                Ok(())
            })
        }
        Command::Migrate => {
            let store = open_store(&cli.database)?;
            println!("database is up to date ({})", store.backend());
            Ok(())
        }
        Command::Import { paths, jobs } => {
            let store = open_store(&cli.database)?;
            let jobs = jobs
                .unwrap_or(if store.backend() == "sqlite" { 1 } else { 4 })
                .max(1);
            let summary = import::run(Fhir::new(store), &paths, jobs)?;
            print!("{summary}");
            if summary.errors.is_empty() {
                Ok(())
            } else {
                bail!("{} entries failed to import", summary.errors.len())
            }
        }
    }
}
