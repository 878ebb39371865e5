//! Built-in TLS serving and smart-card (client certificate) identity (being written).

use axum::http::request::Parts;
use continuum_auth::cert::CertIdentity;

use crate::AppState;

/// The verified smart-card identity of the request: from the TLS connection's client certificate, or from a
/// forwarded-certificate header sent by a configured trusted proxy. `None` when there is none or it fails.
pub fn client_identity(_parts: &Parts, _state: &AppState) -> Option<CertIdentity> {
    None
}
