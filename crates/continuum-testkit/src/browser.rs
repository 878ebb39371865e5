//! Real headless Chromium for browser tests, driven over WebDriver (`chromedriver`) with `fantoccini`.
//!
//! Owns: finding the binaries (`chromium` and `chromedriver` on `PATH`, Debian's `/usr/bin/chromedriver`, or
//! `CONTINUUM_CHROMIUM` / `CONTINUUM_CHROMEDRIVER`), starting chromedriver on a free port on 127.0.0.1 in its
//! own process group, opening a session with a fresh profile directory, and stopping everything: the session
//! on [`Browser::quit`], the process group (chromedriver and the browser it started) on drop, even when a
//! test panics.
//!
//! When the binaries are missing, [`start_or_skip`] prints a loud notice and returns `None` so the test can
//! return early; under `CI=true` it fails instead (`scripts/ensure-test-deps` installs them as root).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

pub use fantoccini;

/// Environment variables naming the binaries, overriding discovery.
pub const CHROMIUM_ENV: &str = "CONTINUUM_CHROMIUM";
pub const CHROMEDRIVER_ENV: &str = "CONTINUUM_CHROMEDRIVER";

const SKIP_NOTICE: &str = "\n\
    ************************************************************************************************\n\
    *  Chromium or chromedriver not found: install them (apt-get install chromium chromium-driver,   *\n\
    *  or run scripts/ensure-test-deps as root) — skipping browser tests. Under CI=true they fail.   *\n\
    ************************************************************************************************\n";

/// The flags every test browser runs with.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--window-size=1280,900",
];

/// A browser session. Call [`Browser::quit`] at the end of a test; dropping it also stops everything.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn from_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| is_executable(p))
}

/// `(chromium, chromedriver)` when both are installed.
pub fn find_binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = from_env(CHROMIUM_ENV).or_else(|| {
        on_path(&[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ])
    })?;
    let driver = from_env(CHROMEDRIVER_ENV)
        .or_else(|| on_path(&["chromedriver"]))
        .or_else(|| {
            ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
                .iter()
                .map(PathBuf::from)
                .find(|p| is_executable(p))
        })?;
    Some((chromium, driver))
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A started browser, or `None` (with a loud notice) when Chromium is not installed; panics under `CI=true`
/// when it is missing or does not start.
pub async fn start_or_skip() -> Option<Browser> {
    let Some((chromium, driver)) = find_binaries() else {
        if ci() {
            panic!("chromium/chromedriver not found and CI=true: install chromium and chromium-driver (scripts/ensure-test-deps)");
        }
        static NOTICE: Once = Once::new();
        NOTICE.call_once(|| eprintln!("{SKIP_NOTICE}"));
        return None;
    };
    match start(&chromium, &driver).await {
        Ok(b) => Some(b),
        Err(e) => panic!("could not start headless Chromium: {e:#}"),
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Start chromedriver and open a headless Chromium session through it.
pub async fn start(chromium: &Path, chromedriver: &Path) -> anyhow::Result<Browser> {
    let profile = tempfile::Builder::new()
        .prefix("continuum-chromium-")
        .tempdir()
        .context("creating the profile directory")?;
    let port = free_port()?;
    let mut driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // its own process group, so that the browser it starts is stopped with it
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", chromedriver.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    if let Err(e) = wait_until_ready(&url, &mut driver).await {
        kill_group(&mut driver);
        return Err(e);
    }
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": chromium.display().to_string(), "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await;
    match client {
        Ok(client) => Ok(Browser {
            client,
            driver,
            _profile: profile,
        }),
        Err(e) => {
            kill_group(&mut driver);
            Err(anyhow!("opening a WebDriver session: {e}"))
        }
    }
}

async fn wait_until_ready(url: &str, driver: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    loop {
        if let Some(status) = driver.try_wait()? {
            bail!("chromedriver exited at start ({status})");
        }
        if let Ok(r) = http.get(format!("{url}/status")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("chromedriver did not answer on {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stop chromedriver's process group (chromedriver and the browser processes it started).
fn kill_group(driver: &mut Child) {
    let pgid = driver.id();
    // the group id is chromedriver's pid (process_group(0)); `kill -- -PGID` signals the whole group
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Browser {
    /// End the session (the browser exits), then stop chromedriver.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        kill_group(&mut self.driver);
        closed.map_err(|e| anyhow!("closing the WebDriver session: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait() {
            kill_group(&mut self.driver);
        }
    }
}
