//! A real Continuum server on 127.0.0.1:0 over a real database (a temporary SQLite file or a fresh database
//! in a throwaway PostgreSQL cluster), and a client for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use continuum_core::Fhir;
use continuum_store::{ResourceStore, SystemClock};
use continuum_web::{AppState, WebConfig};
use serde_json::Value;

pub struct TestApp {
    pub base: String,
    pub root: String,
    /// A client carrying the bearer token of a system integration (unrestricted): the FHIR behaviour tests.
    pub client: reqwest::Client,
    /// A client without credentials.
    pub anonymous: reqwest::Client,
    pub store: Arc<dyn ResourceStore>,
    pub auth: continuum_auth::Auth,
    _dir: Option<tempfile::TempDir>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestApp {
    /// Start a server; `None` when the backend is not available on this machine (outside CI only).
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, WebConfig::default()).await
    }

    pub async fn start_with(backend: Backend, config: WebConfig) -> Option<TestApp> {
        let (store, dir): (Arc<dyn ResourceStore>, _) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = continuum_store_sqlite::SqliteStore::open(
                    dir.path().join("t.db"),
                    Arc::new(SystemClock),
                )
                .unwrap();
                (Arc::new(store), Some(dir))
            }
            Backend::Postgres => {
                let url = continuum_testkit::pg::fresh_database_or_skip()?;
                let store = tokio::task::spawn_blocking(move || {
                    continuum_store_postgres::PostgresStore::open(&url, Arc::new(SystemClock))
                        .unwrap()
                })
                .await
                .unwrap();
                (Arc::new(store), None)
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(Fhir::new(store.clone()), config).unwrap();
        let auth = state.auth.clone();
        let token = {
            let auth = auth.clone();
            tokio::task::spawn_blocking(move || {
                let svc = continuum_auth::Account::new(
                    continuum_auth::AccountKind::Service,
                    "test-integration",
                    "Test integration",
                );
                let svc = auth.create(svc, None).unwrap();
                auth.issue_token(&svc.id, "api", now_us(), 3600, b"{}")
                    .unwrap()
            })
            .await
            .unwrap()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(continuum_web::serve(listener, state, async {
            let _ = rx.await;
        }));
        Some(TestApp {
            base: format!("http://{addr}/fhir"),
            root: format!("http://{addr}"),
            client: client_with_token(&token),
            anonymous: reqwest::Client::new(),
            store,
            auth,
            _dir: dir,
            _shutdown: tx,
        })
    }

    /// A client acting as `account` (created here, with an API token).
    pub async fn client_for(&self, account: continuum_auth::Account) -> reqwest::Client {
        let auth = self.auth.clone();
        let token = tokio::task::spawn_blocking(move || {
            let a = auth.create(account, None).unwrap();
            auth.issue_token(&a.id, "api", now_us(), 3600, b"{}")
                .unwrap()
        })
        .await
        .unwrap();
        client_with_token(&token)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        status_json(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .put(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Create and return the stored resource.
    pub async fn create(&self, body: &Value) -> Value {
        let ty = body["resourceType"].as_str().unwrap().to_string();
        let (status, v) = self.post(&ty, body).await;
        assert_eq!(status, 201, "create {ty}: {v}");
        v
    }
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// Generates `mod sqlite { #[tokio::test] fn case() }` and `mod postgres { … }` for each case; every case is
/// an `async fn(&TestApp)` in the including file.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let app = $crate::common::TestApp::start($crate::common::Backend::Sqlite).await.unwrap();
                    super::$case(&app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(app) = $crate::common::TestApp::start($crate::common::Backend::Postgres).await else { return };
                    super::$case(&app).await;
                }
            )*
        }
    };
}

pub fn now_us() -> i64 {
    continuum_store::to_micros(time::OffsetDateTime::now_utc())
}

pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
