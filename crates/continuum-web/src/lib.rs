//! Continuum's HTTP doors.
//!
//! Owns: the axum routers — `fhir/` (FHIR R4 REST), operational endpoints (`/healthz`, `/readyz`,
//! `/metrics`) — content negotiation, body limits, and the one mapping from core errors to HTTP responses
//! (an OperationOutcome with the right status). Does not own: FHIR rules (in `continuum-core`), storage.

pub mod fhir;
mod metrics;
mod oauth;
mod ops;
pub mod portal;
mod security;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use continuum_auth::{Auth, LoginPolicy};
use continuum_core::access::Policy;
use continuum_core::{CoreError, Fhir};
use tower::Layer;

pub use metrics::Metrics;

/// Settings of the HTTP layer.
#[derive(Clone)]
pub struct WebConfig {
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Public base URL of the FHIR API (`https://ehr.example.mil/fhir`); when unset it is derived from the
    /// request's Host header.
    pub public_base: Option<String>,
    /// Browser sessions: idle and absolute limits.
    pub sessions: continuum_auth::SessionPolicy,
    /// Smart-card login: the CAs (and CRLs) client certificates must chain to; none disables it.
    pub client_trust: Option<Arc<continuum_auth::cert::TrustConfig>>,
    /// Reverse proxies whose forwarded client-certificate header is trusted (never anyone else's).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// True when served over TLS (cookies get `Secure` and the `__Host-` prefix, HSTS is sent).
    pub tls: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            max_body_bytes: 128 * 1024 * 1024,
            public_base: None,
            sessions: continuum_auth::SessionPolicy::default(),
            client_trust: None,
            trusted_proxies: Vec::new(),
            tls: false,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub fhir: Fhir,
    pub auth: Auth,
    pub policy: Arc<Policy>,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State with the default access policy and login policy.
    pub fn new(fhir: Fhir, config: WebConfig) -> Result<Self, CoreError> {
        Ok(Self::with_policy(fhir, config, Policy::default_policy()?))
    }

    pub fn with_policy(fhir: Fhir, config: WebConfig, policy: Policy) -> Self {
        AppState {
            auth: Auth::new(fhir.store().clone(), LoginPolicy::default()),
            fhir,
            policy: Arc::new(policy),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ops::router())
        .merge(portal::router())
        .merge(oauth::router())
        .nest("/fhir", fhir::router())
        .fallback(fhir::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Trailing slashes are trimmed before routing, so `/fhir/` and `/fhir/Patient/` work like their
    // slash-less forms.
    let service =
        tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash().layer(app(state));
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
