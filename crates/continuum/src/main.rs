//! The `continuum` binary: one program for every role — `serve`, `migrate`, `import`, `seed`, `demo`.

mod admin;
mod import;
mod reindex;
mod seed;

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
        default_value = DEFAULT_DATABASE,
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
        #[arg(long, env = "CONTINUUM_MAX_BODY_BYTES", default_value_t = 128 * 1024 * 1024)]
        max_body_bytes: usize,
        /// Public base URL of the FHIR API, when behind a proxy.
        #[arg(long, env = "CONTINUUM_PUBLIC_BASE")]
        public_base: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// Accounts, API tokens, proxy grants, unlocking.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// The audit log: verify its hash chain, reports.
    Audit {
        #[command(subcommand)]
        command: admin::AuditCommand,
    },
    /// Show the SQL and the database's plan for a FHIR search, e.g.
    /// `continuum explain 'Observation?patient=123&code=http://loinc.org|4548-4&_sort=-date'`.
    Explain {
        /// A search as in the REST API, relative to the FHIR base: `Type?params` or `?params` (system-wide).
        search: String,
    },
    /// Rebuild the search index after the index definitions changed (a new release says so at start), with
    /// a progress bar. Safe while the server runs; Ctrl-C stops it and the next run resumes.
    Reindex {
        /// Resources per transaction.
        #[arg(long, default_value_t = continuum_core::reindex::DEFAULT_BATCH)]
        batch: usize,
        /// Only say whether the index needs rebuilding.
        #[arg(long)]
        status: bool,
        /// Rebuild even if the index is current.
        #[arg(long, conflicts_with = "status")]
        force: bool,
        /// Only check the kept counts (of each code, of each type) against the index and set right any that
        /// differ; writes wait while it runs.
        #[arg(long, conflicts_with_all = ["status", "force"])]
        recount: bool,
    },
    /// Load FHIR Bundles (transaction, batch, collection), NDJSON files or folders of them.
    Import {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Parallel writers (default: 1 on SQLite, 4 on PostgreSQL).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Generate a synthetic population (facilities, staff, families and their records) and load it, or
    /// write it as FHIR NDJSON with --out. All of it is fake.
    Seed {
        /// Patients to generate (in families of one to eight).
        #[arg(long, default_value_t = 100)]
        patients: u64,
        /// Random seed: the same seed (and --now) gives the same population.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The simulation's "now" (YYYY-MM-DD, midnight UTC); default today.
        #[arg(long)]
        now: Option<String>,
        /// Write `<Type>.ndjson` files into this folder instead of loading the database.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Parallel writers (default: 1 on SQLite, 4 on PostgreSQL).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Run the demo: an embedded database (continuum-demo.db) seeded with synthetic patients on first start.
    Demo {
        /// Address to listen on.
        #[arg(long, env = "CONTINUUM_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Patients to seed on first start.
        #[arg(long, default_value_t = 100)]
        patients: u64,
    },
}

/// Built-in TLS and smart-card (client certificate) login for `serve`.
#[derive(clap::Args)]
struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM, server certificate first); plain HTTP without.
    #[arg(long, env = "CONTINUUM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CONTINUUM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Smart-card login: CA certificates (PEM) client certificates must chain to. Clients are asked for a
    /// certificate but not required to send one. Also needed for certificates forwarded by a proxy.
    #[arg(long, env = "CONTINUUM_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// A certificate revocation list (PEM or DER) for one of the client CAs; repeatable. A CA without a CRL
    /// here gets no revocation check.
    #[arg(
        long = "crl",
        env = "CONTINUUM_CRL",
        value_delimiter = ',',
        requires = "client_ca"
    )]
    crls: Vec<PathBuf>,
    /// Which certificate field names the account: cn-suffix (the digits after the last '.' of the
    /// subject CN, a CAC's DoD ID), serial (subject serialNumber), san-uri:PREFIX (the rest of the first
    /// SAN URI starting with PREFIX), san-email, upn.
    #[arg(
        long,
        env = "CONTINUUM_CERT_IDENTITY_FIELD",
        default_value = "cn-suffix",
        value_parser = parse_identity_field
    )]
    cert_identity_field: continuum_auth::cert::IdentityField,
    /// A reverse proxy (IP address) whose X-SSL-Client-Cert / X-Client-Cert header is trusted; repeatable.
    /// The proxy must set or remove both headers on every request.
    #[arg(
        long = "trusted-proxy",
        env = "CONTINUUM_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
}

fn parse_identity_field(s: &str) -> Result<continuum_auth::cert::IdentityField, String> {
    use continuum_auth::cert::IdentityField;
    Ok(match s {
        "cn-suffix" => IdentityField::SubjectCommonNameSuffix,
        "serial" => IdentityField::SubjectSerialNumber,
        "san-email" => IdentityField::SanEmail,
        "upn" => IdentityField::SanOtherNameUpn,
        _ => match s.strip_prefix("san-uri:") {
            Some(prefix) => IdentityField::SanUri {
                prefix: prefix.to_owned(),
            },
            None => {
                return Err(
                    "expected cn-suffix, serial, san-uri:PREFIX, san-email or upn".to_owned(),
                )
            }
        },
    })
}

/// What `serve` needs of [`TlsArgs`], read and checked before the server starts.
#[derive(Default)]
struct Tls {
    /// Certificate chain and key, PEM.
    server: Option<(Vec<u8>, Vec<u8>)>,
    client_trust: Option<Arc<continuum_auth::cert::TrustConfig>>,
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl TlsArgs {
    fn load(self) -> Result<Tls> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
        };
        let server = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some((read(cert, "TLS certificate")?, read(key, "TLS key")?))
            }
            _ => None,
        };
        let client_trust = match &self.client_ca {
            Some(ca) => {
                let crls = self
                    .crls
                    .iter()
                    .map(|p| read(p, "CRL"))
                    .collect::<Result<Vec<_>>>()?;
                let trust = continuum_auth::cert::TrustConfig::from_pem(
                    &read(ca, "client CA")?,
                    &crls,
                    self.cert_identity_field,
                )
                .with_context(|| format!("loading --client-ca {}", ca.display()))?;
                Some(Arc::new(trust))
            }
            None => None,
        };
        if !self.trusted_proxies.is_empty() && client_trust.is_none() {
            tracing::warn!(
                "--trusted-proxy without --client-ca: forwarded certificates are not used"
            );
        }
        Ok(Tls {
            server,
            client_trust,
            trusted_proxies: self.trusted_proxies,
        })
    }
}

/// The database `demo` uses unless --database / CONTINUUM_DATABASE_URL names another than the default.
const DEMO_DATABASE: &str = "sqlite://continuum-demo.db";
const DEFAULT_DATABASE: &str = "sqlite://continuum.db";

/// Open the store named by a database URL, migrating it.
fn open_store(url: &str) -> Result<Arc<dyn ResourceStore>> {
    let store = open_backend(url)?;
    continuum_core::reindex::adopt_if_empty(store.as_ref())?;
    Ok(store)
}

fn open_backend(url: &str) -> Result<Arc<dyn ResourceStore>> {
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
            tls,
        } => {
            let tls = tls.load()?;
            let store = open_store(&cli.database)?;
            serve(store, &listen, max_body_bytes, public_base, tls, None)
        }
        Command::Migrate => {
            let store = open_store(&cli.database)?;
            println!("database is up to date ({})", store.backend());
            Ok(())
        }
        Command::Admin { command } => admin::run_admin(open_store(&cli.database)?, command),
        Command::Audit { command } => admin::run_audit(open_store(&cli.database)?, command),
        Command::Explain { search } => {
            let store = open_store(&cli.database)?;
            let (path, query) = search.split_once('?').unwrap_or((search.as_str(), ""));
            let path = path.trim_matches('/');
            let resource_type = (!path.is_empty()).then_some(path);
            let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let plan = Fhir::new(store)
                .explain(resource_type, &params)
                .map_err(|e| anyhow::anyhow!("{} {e}", e.status()))?;
            print!("{plan}");
            Ok(())
        }
        Command::Reindex {
            batch,
            status,
            force,
            recount,
        } => {
            let store = open_store(&cli.database)?;
            if recount {
                return reindex::recount(store.as_ref());
            }
            reindex::run(store.as_ref(), batch, status, force)?;
            if !status {
                finish_bulk(store.as_ref(), "continuum reindex", "search index")?;
            }
            Ok(())
        }
        Command::Import { paths, jobs } => {
            let store = open_store(&cli.database)?;
            let jobs = jobs
                .unwrap_or(if store.backend() == "sqlite" { 1 } else { 4 })
                .max(1);
            let summary = import::run(Fhir::new(store.clone()), &paths, jobs)?;
            finish_bulk(
                store.as_ref(),
                "continuum import",
                &format!("{} files", paths.len()),
            )?;
            print!("{summary}");
            if summary.errors.is_empty() {
                Ok(())
            } else {
                bail!("{} entries failed to import", summary.errors.len())
            }
        }
        Command::Seed {
            patients,
            seed,
            now,
            out,
            jobs,
        } => {
            let cfg = continuum_seed::SynthConfig {
                seed,
                now: seed::now_from(now.as_deref())?,
                ..continuum_seed::SynthConfig::default()
            };
            let summary = match out {
                Some(dir) => seed::to_ndjson(&dir, &cfg, patients)?,
                None => {
                    let store = open_store(&cli.database)?;
                    let fhir = Fhir::new(store.clone());
                    if let Some((first, _)) = continuum_seed::sponsor_bounds(&cfg, patients) {
                        if seed::patient_id(&fhir, &first)?.is_some() {
                            bail!("this database already holds the population of seed {seed}: use another --seed or an empty database");
                        }
                    }
                    let jobs = jobs.unwrap_or(seed::default_jobs(store.as_ref())).max(1);
                    let summary = seed::to_store(&fhir, &cfg, patients, jobs)?;
                    finish_bulk(
                        store.as_ref(),
                        "continuum seed",
                        &format!("{patients} patients"),
                    )?;
                    summary
                }
            };
            print!("{summary}");
            println!("All of this data is synthetic: no real person is described.");
            if summary.failed > 0 {
                bail!("{} bundles failed", summary.failed);
            }
            Ok(())
        }
        Command::Demo { listen, patients } => {
            let database = if cli.database == DEFAULT_DATABASE {
                DEMO_DATABASE
            } else {
                cli.database.as_str()
            };
            let store = open_store(database)?;
            let fhir = Fhir::new(store.clone());
            // The showcase's identifiers depend on the seed only, so any day's "now" finds them.
            let cfg = continuum_seed::SynthConfig {
                seed: 1,
                now: seed::now_from(None)?,
                ..continuum_seed::SynthConfig::default()
            };
            let (first, last) = continuum_seed::sponsor_bounds(&cfg, patients.max(1))
                .context("the demo needs at least one patient")?;
            match (seed::patient_id(&fhir, &first)?, seed::patient_id(&fhir, &last)?) {
                (Some(_), Some(_)) => {
                    println!("Using the synthetic population already in {database}.")
                }
                (Some(_), None) => bail!(
                    "{database} holds an incomplete demo population (an interrupted first start?): delete it and run the demo again"
                ),
                _ => {
                    println!("First start: seeding {patients} synthetic patients into {database} (under a minute)...");
                    let jobs = seed::default_jobs(store.as_ref());
                    let summary = seed::to_store(&fhir, &cfg, patients.max(1), jobs)?;
                    finish_bulk(store.as_ref(), "continuum demo", &format!("{patients} patients"))?;
                    print!("{summary}");
                    if summary.failed > 0 {
                        bail!("{} bundles failed", summary.failed);
                    }
                }
            }
            let base = format!("http://{listen}");
            let guide = seed::guide(&fhir, &cfg, &base)?;
            let token = demo_token(store.clone())?;
            let logins = seed::demo_accounts(store.clone(), &fhir, &cfg)?;
            let mut login_lines = String::new();
            for l in &logins {
                login_lines.push_str(&format!(
                    "  {:<44} user {:<12} TOTP secret {}\n",
                    l.label, l.username, l.totp_secret
                ));
            }
            // `admin` defaults to continuum.db, so name the demo's database
            let db_flag = format!(" --database {database}");
            let banner = format!(
                "\n== Continuum demo ==\nEVERY PERSON, CLINIC AND RECORD HERE IS SYNTHETIC: generated, fake, never a real patient.\n\n{guide}\nDemo logins at {base}/login (password for all: {}); the 6-digit code comes from an authenticator app\ngiven the TOTP secret, or from `continuum{db_flag} admin totp-code --username USER`:\n{login_lines}\nThe FHIR API needs a bearer token; this one (a demo integration account, valid 7 days) sees everything:\n  export TOKEN={token}\n  curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Patient?identifier={}|{}'\n  curl -H \"Authorization: Bearer $TOKEN\" '{base}/fhir/Appointment?status=booked'\nMore accounts: continuum admin create-user --help\n",
                seed::DEMO_PASSWORD,
                continuum_seed::DODID_SYSTEM,
                continuum_seed::showcase(&cfg).sponsor
            );
            // the landing page says the data is synthetic
            std::env::set_var("CONTINUUM_DEMO", "1");
            serve(
                store,
                &listen,
                128 * 1024 * 1024,
                None,
                Tls::default(),
                Some(banner),
            )
        }
    }
}

/// Runs the HTTP server until Ctrl-C. `banner` is printed once the address is bound.
fn serve(
    store: Arc<dyn ResourceStore>,
    listen: &str,
    max_body_bytes: usize,
    public_base: Option<String>,
    tls: Tls,
    banner: Option<String>,
) -> Result<()> {
    let server_tls = match &tls.server {
        Some((cert, key)) => Some(
            continuum_auth::cert::server_config(cert, key, tls.client_trust.as_deref())
                .context("loading --tls-cert and --tls-key")?,
        ),
        None => None,
    };
    // Before the runtime starts: the PostgreSQL client is synchronous and must not run on a runtime thread.
    match continuum_core::reindex::state(store.as_ref()) {
        Ok(continuum_core::reindex::IndexState::Current) => {}
        // Searches still answer from the rows there are; only what the new definitions add is missing.
        Ok(state) => tracing::warn!("{}", reindex::describe(&state)),
        Err(e) => tracing::warn!(error = %e, "cannot read the search index state"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let state = continuum_web::AppState::new(
            Fhir::new(store.clone()),
            continuum_web::WebConfig {
                max_body_bytes,
                public_base,
                tls: server_tls.is_some(),
                client_trust: tls.client_trust,
                trusted_proxies: tls.trusted_proxies,
                ..continuum_web::WebConfig::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        continuum_core::audit::spawn_sealer(store.clone());
        spawn_mail_delivery(store.clone(), mailer_from_env()?);
        tracing::info!(backend = store.backend(), %addr, "serving");
        if let Some(b) = banner {
            println!("{b}");
        }
        let scheme = if server_tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("Continuum is running at {scheme}://{addr}/  (FHIR API: {scheme}://{addr}/fhir)");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match server_tls {
            Some(config) => {
                continuum_web::tls::serve_tls(listener, state, config, shutdown).await?
            }
            None => continuum_web::serve(listener, state, shutdown).await?,
        }
        Ok(())
    })
}

/// After a bulk load by the command line: fresh planner statistics, and one audit record (per-resource records
/// would double the writes of a million-resource load; the load itself is the access).
fn finish_bulk(store: &dyn ResourceStore, who: &str, what: &str) -> Result<()> {
    // fresh planner statistics: a bulk load changes the tables' shape the most
    if let Err(e) = store.analyze() {
        tracing::warn!(error = %e, "could not refresh the planner statistics");
    }
    let principal = continuum_core::access::Principal::system(who);
    let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
    let rec = continuum_core::audit::record(
        &principal,
        now,
        continuum_core::audit::Event::Transaction,
        continuum_core::audit::Outcome::Success,
        None,
        &[what.to_string()],
        None,
        None,
    );
    store.audit().append_audit(&[rec])?;
    Ok(())
}

/// The demo's integration account and a fresh 7-day API token for it.
fn demo_token(store: Arc<dyn ResourceStore>) -> Result<String> {
    let auth = continuum_auth::Auth::new(store, continuum_auth::LoginPolicy::default());
    let account = match auth.by_username("demo-integration")? {
        Some(a) => a,
        None => auth.create(
            continuum_auth::Account::new(
                continuum_auth::AccountKind::Service,
                "demo-integration",
                "Demo integration",
            ),
            None,
        )?,
    };
    let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
    Ok(auth.issue_token(&account.id, "api", now, 7 * 86_400, b"{}")?)
}

/// The outbox's delivery: SMTP when `CONTINUUM_SMTP_URL` is set (with `CONTINUUM_MAIL_FROM`, and
/// `CONTINUUM_SECURITY_OFFICER_EMAIL` for alerts), otherwise `.eml` files in `CONTINUUM_MAIL_DROP` (default
/// `./mail-outbox`).
fn mailer_from_env() -> Result<continuum_auth::mail::Mailer> {
    use continuum_auth::mail::Mailer;
    match std::env::var("CONTINUUM_SMTP_URL") {
        Ok(url) => {
            let from = std::env::var("CONTINUUM_MAIL_FROM")
                .context("CONTINUUM_SMTP_URL needs CONTINUUM_MAIL_FROM (the sender address)")?;
            let mut aliases = Vec::new();
            if let Ok(officer) = std::env::var("CONTINUUM_SECURITY_OFFICER_EMAIL") {
                aliases.push(("security-officer".to_string(), officer));
            }
            Mailer::smtp(&url, &from, aliases).map_err(|e| anyhow::anyhow!("{e}"))
        }
        Err(_) => Ok(Mailer::FileDrop(
            std::env::var("CONTINUUM_MAIL_DROP")
                .unwrap_or_else(|_| "mail-outbox".into())
                .into(),
        )),
    }
}

/// Delivers the outbox every few seconds, on a plain thread (SMTP and the store are synchronous).
fn spawn_mail_delivery(store: Arc<dyn ResourceStore>, mailer: continuum_auth::mail::Mailer) {
    std::thread::spawn(move || loop {
        let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
        if let Err(e) = continuum_auth::mail::deliver_pending(store.as_ref(), &mailer, now) {
            tracing::warn!(error = %e, "delivering mail failed");
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
}
