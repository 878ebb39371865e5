//! Throwaway PostgreSQL clusters for tests and benchmarks.
//!
//! Owns: finding the server binaries, creating a cluster in a temporary directory on a free port, creating
//! databases in it, and making sure the server dies with the test process. One cluster is shared per test
//! process ([`shared_cluster`]); each test gets its own database ([`fresh_database`]).
//! Does not own: schemas or migrations (each store adapter migrates its own database), or any SQL client: the
//! cluster is driven with the `initdb`/`pg_ctl`/`createdb` binaries so this crate needs no database driver.
//!
//! When the binaries are missing, [`fresh_database_or_skip`] prints a loud notice and returns `None` so the
//! test can return early; under `CI=true` it fails instead, so CI never silently skips the PostgreSQL half of
//! the conformance suite.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use anyhow::{anyhow, bail, Context};

/// Environment variable naming the directory holding `initdb`, `pg_ctl` and `createdb`, overriding discovery.
pub const BIN_DIR_ENV: &str = "CONTINUUM_PG_BIN";

const SKIP_NOTICE: &str = "\n\
    ************************************************************************************************\n\
    *  PostgreSQL binaries not found: install postgresql (apt-get install postgresql) — skipping      *\n\
    *  PostgreSQL tests. (Set CONTINUUM_PG_BIN to the directory holding initdb/pg_ctl if installed.) *\n\
    ************************************************************************************************\n";

/// A running PostgreSQL cluster in a temporary directory, stopped and removed on drop.
#[derive(Debug)]
pub struct PgCluster {
    bin_dir: PathBuf,
    /// Parent of the data directory; also the Unix-socket directory. Kept so it is removed on drop.
    root: tempfile::TempDir,
    port: u16,
    /// Whether server-side commands must run as the `postgres` user (we are root, which `initdb` refuses).
    as_postgres: bool,
    next_db: AtomicU64,
}

impl PgCluster {
    /// Create and start a new cluster. Fails when the binaries are missing or the server does not start.
    pub fn start() -> anyhow::Result<PgCluster> {
        let bin_dir = find_bin_dir()
            .ok_or_else(|| anyhow!("PostgreSQL binaries (initdb, pg_ctl) not found"))?;
        let as_postgres = running_as_root()?;
        let root = tempfile::Builder::new()
            .prefix("continuum-pg-")
            .tempdir()
            .context("creating the cluster directory")?;
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(root.path()))
            .context("giving the cluster directory to the postgres user")?;
        }
        let mut cluster = PgCluster {
            bin_dir,
            root,
            port: 0,
            as_postgres,
            next_db: AtomicU64::new(0),
        };
        // Before initdb, so a test process killed at any point from here on leaves nothing behind.
        cluster.spawn_watchdog()?;
        let data = cluster.data_dir();
        // --no-sync: the cluster is thrown away, so durability of initdb's files does not matter; the
        // server itself runs with fsync on so benchmarks measure realistic commits.
        run(cluster.server_command("initdb").arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]))
        .context("initdb")?;

        // The port is free when we look but may be taken before the server binds it; try a few.
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
                cluster.root.path().display()
            );
            let log = cluster.root.path().join("server.log");
            let res = run(cluster
                .server_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(&opts)
                .args(["-w", "-t", "60", "start"]));
            match res {
                Ok(_) => {
                    cluster.port = port;
                    last_err = None;
                    break;
                }
                Err(e) => {
                    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                    last_err = Some(e.context(format!("pg_ctl start; server log:\n{log_text}")));
                }
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL of a database in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Create a database and return its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("database names are restricted to [A-Za-z0-9_]: {name:?}");
        }
        // createdb is a client: it connects over TCP with trust auth, so it need not run as postgres.
        run(Command::new(self.bin_dir.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(name))
        .with_context(|| format!("createdb {name}"))?;
        Ok(self.url(name))
    }

    /// Create a database with a name unique in this cluster and return its URL.
    pub fn fresh_database(&self) -> anyhow::Result<String> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("t_{}_{n}", std::process::id()))
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn server_command(&self, program: &str) -> Command {
        let exe = self.bin_dir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// A static cluster is never dropped, and a killed test process runs no destructors: a detached shell
    /// waits for this process to exit, then stops the server and removes its directory, so test runs do not
    /// leak servers.
    fn spawn_watchdog(&self) -> anyhow::Result<()> {
        let stop = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"])
            .get_args()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let program = shell_quote(
            &self
                .server_command("pg_ctl")
                .get_program()
                .to_string_lossy(),
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {program} {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = shell_quote(&self.root.path().to_string_lossy()),
        );
        // Null stdio: the watchdog must not hold the test harness's pipes open after the test process exits.
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the cluster watchdog")?;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        let _ = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .output();
        // The TempDir field removes the directory after this.
    }
}

/// The cluster shared by every test of this process, started on first use.
pub fn shared_cluster() -> anyhow::Result<&'static PgCluster> {
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    // Keep a failure too, so every test reports the same start error instead of retrying initdb each time.
    match CLUSTER.get_or_init(|| PgCluster::start().map_err(|e| format!("{e:#}"))) {
        Ok(c) => Ok(c),
        Err(e) => Err(anyhow!(
            "starting the shared PostgreSQL cluster failed: {e}"
        )),
    }
}

/// A new, empty database in the shared cluster; returns its URL.
pub fn fresh_database() -> anyhow::Result<String> {
    shared_cluster()?.fresh_database()
}

/// The binaries' directory when PostgreSQL is installed. Otherwise prints a loud notice (once) and returns `None`,
/// or panics when `CI=true`: CI must run the PostgreSQL tests, never skip them.
pub fn require_postgres() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    found_or_skip(find_bin_dir(), ci)
}

fn found_or_skip(found: Option<PathBuf>, ci: bool) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    if ci {
        panic!("PostgreSQL binaries not found and CI=true: install postgresql (apt-get install postgresql)");
    }
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| eprintln!("{SKIP_NOTICE}"));
    None
}

/// For tests: the URL of a fresh database, or `None` (after a loud notice) when PostgreSQL is not installed.
/// Panics when the binaries exist but the cluster cannot be started: that is a real failure, not a skip.
///
/// ```text
/// let Some(url) = continuum_testkit::pg::fresh_database_or_skip() else { return; };
/// ```
pub fn fresh_database_or_skip() -> Option<String> {
    require_postgres()?;
    match fresh_database() {
        Ok(url) => Some(url),
        Err(e) => panic!("{e:#}"),
    }
}

/// Directory holding `initdb` and `pg_ctl`: `$CONTINUUM_PG_BIN`, then `PATH` (symlinks resolved, so the
/// sibling `createdb` is found), then the newest `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_bins = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).map(PathBuf::from) {
        if has_bins(&dir) {
            return Some(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if !initdb.is_file() {
                continue;
            }
            if let Some(real) = std::fs::canonicalize(&initdb)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
            {
                if has_bins(&real) {
                    return Some(real);
                }
            }
            if has_bins(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_bins(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> anyhow::Result<bool> {
    // /proc/self belongs to the effective user: a way to learn the uid without libc or unsafe code.
    let uid = std::fs::metadata("/proc/self")
        .context("reading /proc/self")?
        .uid();
    Ok(uid == 0)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn missing_binaries_skip_locally() {
        assert_eq!(found_or_skip(None, false), None);
        let dir = PathBuf::from("/opt/pg/bin");
        assert_eq!(found_or_skip(Some(dir.clone()), true), Some(dir));
    }

    #[test]
    #[should_panic(expected = "CI=true")]
    fn missing_binaries_fail_in_ci() {
        found_or_skip(None, true);
    }

    #[test]
    fn cluster_starts_and_creates_databases() {
        if require_postgres().is_none() {
            return;
        }
        let cluster = match PgCluster::start() {
            Ok(c) => c,
            Err(e) => panic!("{e:#}"),
        };
        let url = match cluster.create_database("smoke") {
            Ok(u) => u,
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:{}/smoke", cluster.port())
        );
        assert!(cluster.create_database("bad name").is_err());
        let dir = cluster.root.path().to_path_buf();
        drop(cluster);
        assert!(!dir.exists(), "the cluster directory is removed on drop");
    }
}
