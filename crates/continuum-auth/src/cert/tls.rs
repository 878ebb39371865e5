//! rustls configuration for a port that serves both password and smart-card logins.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::{CertError, TrustConfig};

/// A verifier that asks every client for a certificate from the configured CAs (the CA names go out as
/// hints, so browsers offer only matching cards) but lets clients without one through, so password logins
/// work on the same port. A certificate that is offered must pass chain, time, EKU and CRL checks (same
/// policy as [`super::verify_client_chain`]) or the handshake fails.
///
/// The handshake proves possession of the key; it does not map an account: call
/// [`super::verify_client_chain`] on the peer certificate at login.
pub fn client_verifier(cfg: &TrustConfig) -> Result<Arc<dyn ClientCertVerifier>, CertError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(cfg.roots.clone(), cfg.provider.clone())
            .with_crls(cfg.crl_ders.iter().cloned())
            .allow_unknown_revocation_status()
            .allow_unauthenticated();
    if cfg.enforce_crl_next_update {
        builder = builder.enforce_revocation_expiration();
    }
    builder
        .build()
        .map_err(|e| CertError::Config(format!("client verifier: {e}")))
}

/// A TLS server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`) from a PEM
/// certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1). With `trust`, clients
/// are asked for a smart-card certificate ([`client_verifier`]); without, they are not.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    trust: Option<&TrustConfig>,
) -> Result<ServerConfig, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Config(format!("server certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(CertError::Config(
            "no certificate in the server certificate PEM".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| CertError::Config(format!("server key PEM: {e}")))?;

    let provider = match trust {
        Some(t) => t.provider.clone(),
        None => Arc::new(rustls::crypto::ring::default_provider()),
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Config(format!("TLS versions: {e}")))?;
    let builder = match trust {
        Some(t) => builder.with_client_cert_verifier(client_verifier(t)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| CertError::Config(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
