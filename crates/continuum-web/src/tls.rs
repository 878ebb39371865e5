//! Built-in TLS serving and the smart-card (client certificate) identity of a request.
//!
//! [`serve_tls`] terminates TLS itself (rustls through `tokio-rustls`, HTTP/1.1 and HTTP/2): the server
//! configuration comes from [`continuum_auth::cert::server_config`], which asks every client for a
//! certificate from the configured CAs but lets clients without one through, so password and smart-card
//! logins share the port. Each request of a connection carries the connection's peer certificate chain
//! ([`PeerCertificates`]) and address (`ConnectInfo<SocketAddr>`) in its extensions.
//!
//! [`client_identity`] turns that into a verified [`CertIdentity`], or, behind a TLS-terminating reverse
//! proxy, the certificate the proxy forwarded in a header — honoured only on connections from
//! [`WebConfig::trusted_proxies`](crate::WebConfig::trusted_proxies).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::Request;
use axum::response::Response;
use continuum_auth::cert::{from_forwarded_header, verify_client_chain, CertIdentity, TrustConfig};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{Layer, Service};

use crate::{AppState, WebConfig};

/// A client that has not finished its TLS handshake by then is dropped (it holds a task and a socket).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers in which a TLS-terminating reverse proxy passes on the client certificate (nginx
/// `$ssl_client_escaped_cert`, Traefik, load balancers). Honoured only from a trusted proxy, which must
/// set or clear **both** on every request.
pub const FORWARDED_CERT_HEADERS: [&str; 2] = ["x-ssl-client-cert", "x-client-cert"];

/// The certificate chain the client presented in the TLS handshake (end entity first), as rustls
/// accepted it. Put in every request's extensions by [`serve_tls`]; absent when the client sent none.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Serve the whole application over TLS until `shutdown` resolves, then wait for open connections to
/// finish their requests. The router is the one [`crate::serve`] serves (trailing slashes trimmed).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    config: rustls::ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash()
        .layer(crate::app(state));
    serve_tls_service(listener, service, config, shutdown).await
}

/// [`serve_tls`] for any service (such as a `Router` with its state): the accept loop, the TLS handshake
/// and HTTP/1.1 + HTTP/2, with [`PeerCertificates`] and `ConnectInfo<SocketAddr>` in every request's
/// extensions. A failed or slow handshake drops that connection only.
pub async fn serve_tls_service<S>(
    listener: TcpListener,
    service: S,
    config: rustls::ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    handle_accept_error(e).await;
                    continue;
                }
            },
        };
        // Taken before the handshake, so a shutdown during it still waits for (and ends) this connection.
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    log_handshake_error(remote, &e);
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let certs = tls.get_ref().1.peer_certificates().map(|chain| {
                PeerCertificates(Arc::new(
                    chain.iter().map(|c| c.clone().into_owned()).collect(),
                ))
            });
            let service = TowerToHyperService::new(ConnectionService {
                inner: service,
                remote,
                certs,
            });
            let mut builder = Builder::new(TokioExecutor::new());
            // The timer makes hyper's HTTP/1 header read timeout (30 s) apply.
            builder.http1().timer(TokioTimer::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, error = %e, "TLS connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A certificate refused in the handshake is worth an administrator's attention; anything else (port
/// scanners, plain HTTP on the TLS port, clients that give up) is noise.
fn log_handshake_error(remote: SocketAddr, e: &std::io::Error) {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(
            err @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::InvalidCertRevocationList(_)),
        ) => {
            tracing::info!(%remote, error = %err, "TLS handshake failed: client certificate refused")
        }
        _ => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
    }
}

/// As `axum::serve`: errors about one connection are skipped; others (out of file descriptors) pause
/// the loop for a second rather than spin.
async fn handle_accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The service of one connection: the application with the connection's facts added to each request.
#[derive(Clone)]
struct ConnectionService<S> {
    inner: S,
    remote: SocketAddr,
    certs: Option<PeerCertificates>,
}

impl<S, B> Service<Request<B>> for ConnectionService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let extensions = req.extensions_mut();
        extensions.insert(ConnectInfo(self.remote));
        match &self.certs {
            Some(certs) => {
                extensions.insert(certs.clone());
            }
            None => {
                extensions.remove::<PeerCertificates>();
            }
        }
        self.inner.call(req)
    }
}

/// The verified smart-card identity of the request: from the TLS connection's client certificate, or from a
/// forwarded-certificate header sent by a configured trusted proxy. `None` when there is none or it fails
/// (the reason is logged). Checked at the current time.
pub fn client_identity(parts: &Parts, state: &AppState) -> Option<CertIdentity> {
    client_identity_at(parts, &state.config, unix_now())
}

/// [`client_identity`] at a given time (seconds since the Unix epoch).
///
/// - No [`WebConfig::client_trust`](crate::WebConfig::client_trust): smart cards are off, `None`.
/// - A certificate from the TLS handshake ([`PeerCertificates`]): verified again here (chain, time,
///   usage, CRLs, identity mapping) with the intermediates the client sent. Forwarded headers are then
///   not looked at.
/// - Otherwise a forwarded certificate header ([`FORWARDED_CERT_HEADERS`]) is used only when the
///   connection comes from one of [`WebConfig::trusted_proxies`](crate::WebConfig::trusted_proxies); from
///   any other address it is a forgery attempt, ignored and logged at warn. Exactly one value must be
///   present (two, or both headers, are refused as ambiguous); an empty value means no certificate.
///   Proxies forward the end entity only, so intermediates must be in the configured CA bundle.
pub fn client_identity_at(
    parts: &Parts,
    config: &WebConfig,
    now_unix: u64,
) -> Option<CertIdentity> {
    let trust = config.client_trust.as_deref()?;
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let forwarded_names: Vec<&str> = FORWARDED_CERT_HEADERS
        .into_iter()
        .filter(|name| parts.headers.contains_key(*name))
        .collect();
    let from_proxy = remote.is_some_and(|r| is_trusted_proxy(config, r.ip()));
    if !forwarded_names.is_empty() && !from_proxy {
        tracing::warn!(
            remote = ?remote,
            headers = ?forwarded_names,
            "forwarded client certificate header from an address that is not a trusted proxy: ignored"
        );
    }

    if let Some(PeerCertificates(chain)) = parts.extensions.get::<PeerCertificates>() {
        let (ee, rest) = chain.split_first()?;
        let intermediates: Vec<Vec<u8>> = rest.iter().map(|c| c.as_ref().to_vec()).collect();
        return verified(trust, ee.as_ref(), &intermediates, now_unix, "TLS", remote);
    }

    if forwarded_names.is_empty() || !from_proxy {
        return None;
    }
    let mut values = forwarded_names
        .iter()
        .flat_map(|name| parts.headers.get_all(*name).iter());
    let (Some(value), None) = (values.next(), values.next()) else {
        tracing::warn!(
            remote = ?remote,
            headers = ?forwarded_names,
            "more than one forwarded client certificate header value: ignored"
        );
        return None;
    };
    let Ok(value) = value.to_str() else {
        tracing::info!(remote = ?remote, "forwarded client certificate header is not ASCII");
        return None;
    };
    if value.trim().is_empty() {
        return None;
    }
    match from_forwarded_header(value) {
        Ok(der) => verified(trust, &der, &[], now_unix, "forwarded header", remote),
        Err(e) => {
            tracing::info!(remote = ?remote, error = %e, "forwarded client certificate refused");
            None
        }
    }
}

fn verified(
    trust: &TrustConfig,
    ee: &[u8],
    intermediates: &[Vec<u8>],
    now_unix: u64,
    source: &'static str,
    remote: Option<SocketAddr>,
) -> Option<CertIdentity> {
    match verify_client_chain(trust, ee, intermediates, now_unix) {
        Ok(identity) => Some(identity),
        Err(e) => {
            tracing::info!(source, remote = ?remote, error = %e, "client certificate refused");
            None
        }
    }
}

/// IPv4 peers of a dual-stack socket show up as `::ffff:a.b.c.d`: compare canonical forms.
fn is_trusted_proxy(config: &WebConfig, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    config
        .trusted_proxies
        .iter()
        .any(|p| p.to_canonical() == ip)
}

/// Before the epoch (a broken clock) everything reads as not yet valid: refused.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
