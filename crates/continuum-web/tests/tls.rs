//! Built-in TLS serving with optional smart cards, and the verified card identity of a request.
//!
//! A throwaway CA made here with rcgen (no key is ever committed) issues the server certificate and
//! CAC-like client certificates. The whole application is served with `serve_tls`; the identity is checked
//! end to end through a small test router served by the same TLS loop (`serve_tls_service`), and unit by
//! unit on hand-built request parts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use continuum_auth::cert::{server_config, IdentityField, TrustConfig};
use continuum_core::Fhir;
use continuum_store::SystemClock;
use continuum_web::tls::{
    client_identity, client_identity_at, serve_tls, serve_tls_service, PeerCertificates,
};
use continuum_web::{AppState, WebConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

const DAY: u64 = 86_400;
const CAC_CN: &str = "DOE.JANE.Q.1234567890";
const CAC_ID: &str = "1234567890";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn at(unix: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix as i64).unwrap()
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A client certificate: DER, PEM and its key in PEM.
struct Card {
    der: Vec<u8>,
    pem: String,
    key_pem: String,
}

impl Ca {
    fn root(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let cert = ca_params(name).self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn intermediate(&self, name: &str, serial: u64) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = ca_params(name);
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, params: CertificateParams) -> Card {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Card {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn crl_pem(&self, serials: &[u64]) -> String {
        let t = now();
        CertificateRevocationListParams {
            this_update: at(t - 3600),
            next_update: at(t + 7 * DAY),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: at(t - 60),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.cert, &self.key)
        .unwrap()
        .pem()
        .unwrap()
    }

    /// A server certificate for `localhost`: (chain PEM, key PEM).
    fn server_cert(&self) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Test DoD");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let t = now();
    params.not_before = at(t - 30 * DAY);
    params.not_after = at(t + 3650 * DAY);
    params
}

/// A CAC-like PIV authentication certificate: clientAuth, digitalSignature, valid now.
fn cac_params(cn: &str, serial: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "U.S. Government");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from(serial));
    let t = now();
    params.not_before = at(t - DAY);
    params.not_after = at(t + 365 * DAY);
    params
}

fn trust(ca_pem: &str, crls: &[String]) -> Arc<TrustConfig> {
    let crls: Vec<Vec<u8>> = crls.iter().map(|c| c.as_bytes().to_vec()).collect();
    Arc::new(
        TrustConfig::from_pem(
            ca_pem.as_bytes(),
            &crls,
            IdentityField::SubjectCommonNameSuffix,
        )
        .unwrap(),
    )
}

fn config(trust: Option<Arc<TrustConfig>>, proxies: &[IpAddr]) -> WebConfig {
    WebConfig {
        client_trust: trust,
        trusted_proxies: proxies.to_vec(),
        tls: true,
        ..WebConfig::default()
    }
}

/// Application state over a temporary SQLite database (kept alive by the returned directory).
fn state(config: WebConfig) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        continuum_store_sqlite::SqliteStore::open(dir.path().join("t.db"), Arc::new(SystemClock))
            .unwrap();
    let state = AppState::new(Fhir::new(Arc::new(store)), config).unwrap();
    (state, dir)
}

/// A running TLS server; dropping it stops it.
struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.task.take().unwrap())
            .await
            .expect("server stops")
            .unwrap()
    }
}

/// Serve the whole application over TLS with a server certificate from `server_ca`.
async fn start_app(server_ca: &Ca, config: WebConfig) -> Server {
    let (state, dir) = state(config);
    let tls = tls_config(server_ca, &state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_tls(listener, state, tls, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

/// Serve a router whose `/whoami` answers `client_identity` ("none" without one), the peer address it
/// saw and the HTTP version, over the same TLS loop.
async fn start_whoami(server_ca: &Ca, config: WebConfig) -> Server {
    let (state, dir) = state(config);
    let tls = tls_config(server_ca, &state);
    let router = Router::new()
        .route(
            "/whoami",
            get(
                |State(state): State<AppState>,
                 ConnectInfo(remote): ConnectInfo<SocketAddr>,
                 parts: Parts| async move {
                    let id = client_identity(&parts, &state)
                        .map(|i| i.id)
                        .unwrap_or_else(|| "none".into());
                    format!("{id} {} {:?}", remote.ip(), parts.version)
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_tls_service(listener, router, tls, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        shutdown: Some(tx),
        task: Some(task),
        _dir: dir,
    }
}

fn tls_config(server_ca: &Ca, state: &AppState) -> rustls::ServerConfig {
    let (chain, key) = server_ca.server_cert();
    server_config(
        chain.as_bytes(),
        key.as_bytes(),
        state.config.client_trust.as_deref(),
    )
    .unwrap()
}

/// A client that trusts `server_ca` for the server and presents `card` (with `extra_chain` after it).
fn client(server_ca: &Ca, addr: SocketAddr, card: Option<(&Card, &str)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(server_ca.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(20));
    if let Some((card, extra_chain)) = card {
        let pem = format!("{}{}{}", card.key_pem, card.pem, extra_chain);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn url(server: &Server, path: &str) -> String {
    format!("https://localhost:{}{path}", server.addr.port())
}

async fn get_text(client: &reqwest::Client, url: &str) -> (u16, reqwest::Version, String) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let version = r.version();
    (status, version, r.text().await.unwrap())
}

// ---------------------------------------------------------------------------------------------------
// The whole application over TLS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_fhir_metadata_over_tls_with_and_without_a_card() {
    let ca = Ca::root("Test Root CA TLS 1");
    let server = start_app(&ca, config(Some(trust(&ca.pem(), &[])), &[])).await;
    let card = ca.issue(cac_params(CAC_CN, 1));

    // With a card, over HTTP/2 (ALPN h2).
    let with_card = client(&ca, server.addr, Some((&card, "")));
    let (status, version, body) = get_text(&with_card, &url(&server, "/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(version, reqwest::Version::HTTP_2);

    // Without a card (password logins on the same port), over HTTP/1.1.
    let without = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("localhost", server.addr)
        .http1_only()
        .build()
        .unwrap();
    let (status, version, body) = get_text(&without, &url(&server, "/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(version, reqwest::Version::HTTP_11);

    // The FHIR API: the capability statement, trailing slash trimmed as in plain-HTTP serving.
    for (client, path) in [
        (&with_card, "/fhir/metadata"),
        (&without, "/fhir/metadata/"),
    ] {
        let r = client.get(url(&server, path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let cs: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(cs["resourceType"], "CapabilityStatement", "{path}");
    }
    // And it still asks for a token where plain HTTP does.
    let r = without
        .get(url(&server, "/fhir/Patient"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_smart_cards_configured() {
    let ca = Ca::root("Test Root CA TLS 2");
    let server = start_app(&ca, config(None, &[])).await;
    let (status, _, body) =
        get_text(&client(&ca, server.addr, None), &url(&server, "/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_drop_only_that_connection() {
    let ca = Ca::root("Test Root CA TLS 3");
    let server = start_app(&ca, config(Some(trust(&ca.pem(), &[])), &[])).await;

    // A card from another CA: refused in the handshake.
    let evil = Ca::root("Evil Root CA TLS");
    let forged = evil.issue(cac_params(CAC_CN, 2));
    let r = client(&ca, server.addr, Some((&forged, "")))
        .get(url(&server, "/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "a card from another CA got through: {r:?}");

    // A client that does not trust the server's certificate.
    let r = client(&evil, server.addr, None)
        .get(url(&server, "/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");

    // Plain HTTP on the TLS port, and a connection that says nothing and goes away.
    let r = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    assert!(r.map(|r| !r.status().is_success()).unwrap_or(true));
    drop(tokio::net::TcpStream::connect(server.addr).await.unwrap());

    // The server keeps serving.
    let (status, _, body) = get_text(
        &client(
            &ca,
            server.addr,
            Some((&ca.issue(cac_params(CAC_CN, 3)), "")),
        ),
        &url(&server, "/healthz"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_stops_accepting() {
    let ca = Ca::root("Test Root CA TLS 4");
    let server = start_app(&ca, config(None, &[])).await;
    let c = client(&ca, server.addr, None);
    let (status, _, _) = get_text(&c, &url(&server, "/healthz")).await;
    assert_eq!(status, 200);
    let addr = server.addr;
    // An open keep-alive connection does not hold the shutdown up: it is told to close.
    server.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

// ---------------------------------------------------------------------------------------------------
// The identity end to end: certificate from the TLS connection, or from a trusted proxy's header.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_identity_through_the_tls_connection() {
    let root = Ca::root("Test Root CA TLS 5");
    let issuing = root.intermediate("DOD ID CA-TLS", 500);
    let server = start_whoami(&root, config(Some(trust(&root.pem(), &[])), &[])).await;
    let whoami = url(&server, "/whoami");

    let card = root.issue(cac_params(CAC_CN, 5));
    let (status, _, body) = get_text(&client(&root, server.addr, Some((&card, ""))), &whoami).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "1234567890 127.0.0.1 HTTP/2.0")
    );

    // A card from an intermediate CA, the client sending the intermediate after its certificate.
    let card = issuing.issue(cac_params("ROE.RICHARD.1234500000", 6));
    let chain = issuing.pem();
    let (_, _, body) = get_text(
        &client(&root, server.addr, Some((&card, chain.as_str()))),
        &whoami,
    )
    .await;
    assert!(body.starts_with("1234500000 "), "{body}");

    // No card: no identity, the request is served.
    let (status, _, body) = get_text(&client(&root, server.addr, None), &whoami).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("none 127.0.0.1 "), "{body}");

    // A card without the identity field passes the handshake (it chains) but maps to nothing.
    let card = root.issue(cac_params("Jane Doe", 7));
    let (_, _, body) = get_text(&client(&root, server.addr, Some((&card, ""))), &whoami).await;
    assert!(body.starts_with("none "), "{body}");

    // A header cannot override the connection's card, nor give a cardless client (not a proxy) one.
    let other = root.issue(cac_params("ROE.RICHARD.1234500000", 8));
    let card = root.issue(cac_params(CAC_CN, 9));
    let (_, _, body) = get_text_with_header(
        &client(&root, server.addr, Some((&card, ""))),
        &whoami,
        &nginx_escape(&other.pem),
    )
    .await;
    assert!(body.starts_with("1234567890 "), "{body}");
    let (_, _, body) = get_text_with_header(
        &client(&root, server.addr, None),
        &whoami,
        &nginx_escape(&other.pem),
    )
    .await;
    assert!(body.starts_with("none "), "{body}");

    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_certificate_only_from_a_trusted_proxy() {
    let ca = Ca::root("Test Root CA TLS 6");
    let card = ca.issue(cac_params(CAC_CN, 10));
    let header = nginx_escape(&card.pem);

    // 127.0.0.1 is the trusted proxy: it terminated the card's TLS and passes the certificate on.
    let server = start_whoami(
        &ca,
        config(
            Some(trust(&ca.pem(), &[])),
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ),
    )
    .await;
    let proxy = client(&ca, server.addr, None);
    let whoami = url(&server, "/whoami");
    let (_, _, body) = get_text_with_header(&proxy, &whoami, &header).await;
    assert!(body.starts_with("1234567890 "), "{body}");
    // Without the header (or empty, as nginx sends for no certificate): none.
    let (_, _, body) = get_text(&proxy, &whoami).await;
    assert!(body.starts_with("none "), "{body}");
    let (_, _, body) = get_text_with_header(&proxy, &whoami, "").await;
    assert!(body.starts_with("none "), "{body}");
    // A forwarded certificate from another CA is verified like any other.
    let evil = Ca::root("Evil Root CA TLS 6").issue(cac_params(CAC_CN, 11));
    let (_, _, body) = get_text_with_header(&proxy, &whoami, &nginx_escape(&evil.pem)).await;
    assert!(body.starts_with("none "), "{body}");
    server.stop().await.unwrap();

    // The same header from an address that is not a configured proxy is a forgery: ignored.
    let server = start_whoami(
        &ca,
        config(Some(trust(&ca.pem(), &[])), &["10.0.0.1".parse().unwrap()]),
    )
    .await;
    let (status, _, body) = get_text_with_header(
        &client(&ca, server.addr, None),
        &url(&server, "/whoami"),
        &header,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.starts_with("none "), "{body}");
    server.stop().await.unwrap();
}

async fn get_text_with_header(
    client: &reqwest::Client,
    url: &str,
    cert_header: &str,
) -> (u16, reqwest::Version, String) {
    let r = client
        .get(url)
        .header("X-SSL-Client-Cert", cert_header)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let version = r.version();
    (status, version, r.text().await.unwrap())
}

/// nginx's `$ssl_client_escaped_cert`: everything but unreserved characters percent-encoded.
fn nginx_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// `client_identity` on hand-built request parts.

struct PartsBuilder {
    certs: Option<Vec<Vec<u8>>>,
    remote: Option<SocketAddr>,
    headers: Vec<(&'static str, String)>,
}

fn parts() -> PartsBuilder {
    PartsBuilder {
        certs: None,
        remote: Some(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 50000))),
        headers: Vec::new(),
    }
}

impl PartsBuilder {
    fn card(mut self, chain: &[&[u8]]) -> Self {
        self.certs = Some(chain.iter().map(|c| c.to_vec()).collect());
        self
    }
    fn from(mut self, remote: Option<IpAddr>) -> Self {
        self.remote = remote.map(|ip| SocketAddr::new(ip, 50000));
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
    fn build(self) -> Parts {
        let mut req = Request::builder().uri("/login/card");
        for (name, value) in self.headers {
            req = req.header(name, value);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        if let Some(chain) = self.certs {
            parts.extensions.insert(PeerCertificates(Arc::new(
                chain.into_iter().map(CertificateDer::from).collect(),
            )));
        }
        if let Some(remote) = self.remote {
            parts.extensions.insert(ConnectInfo(remote));
        }
        parts
    }
}

#[test]
fn identity_of_a_tls_client_certificate() {
    let ca = Ca::root("Test Root CA TLS 7");
    let (state, _dir) = state(config(Some(trust(&ca.pem(), &[])), &[]));

    let card = ca.issue(cac_params(CAC_CN, 20));
    let id = client_identity(&parts().card(&[&card.der]).build(), &state).unwrap();
    assert_eq!(id.id, CAC_ID);
    assert!(id.subject.contains(CAC_CN), "{}", id.subject);

    // Expired.
    let mut params = cac_params(CAC_CN, 21);
    params.not_before = at(now() - 30 * DAY);
    params.not_after = at(now() - DAY);
    let expired = ca.issue(params);
    assert_eq!(
        client_identity(&parts().card(&[&expired.der]).build(), &state),
        None
    );

    // Not yet valid.
    let mut params = cac_params(CAC_CN, 22);
    params.not_before = at(now() + DAY);
    let early = ca.issue(params);
    assert_eq!(
        client_identity(&parts().card(&[&early.der]).build(), &state),
        None
    );

    // From another CA.
    let other = Ca::root("Evil Root CA TLS 7").issue(cac_params(CAC_CN, 23));
    assert_eq!(
        client_identity(&parts().card(&[&other.der]).build(), &state),
        None
    );

    // Server-auth only.
    let mut params = cac_params(CAC_CN, 24);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let wrong_usage = ca.issue(params);
    assert_eq!(
        client_identity(&parts().card(&[&wrong_usage.der]).build(), &state),
        None
    );

    // Garbage, and an empty chain.
    assert_eq!(
        client_identity(&parts().card(&[b"junk"]).build(), &state),
        None
    );
    assert_eq!(client_identity(&parts().card(&[]).build(), &state), None);

    // No certificate at all.
    assert_eq!(client_identity(&parts().build(), &state), None);
}

#[test]
fn revoked_card_has_no_identity() {
    let ca = Ca::root("Test Root CA TLS 8");
    let (state, _dir) = state(config(Some(trust(&ca.pem(), &[ca.crl_pem(&[77])])), &[]));
    let revoked = ca.issue(cac_params(CAC_CN, 77));
    assert_eq!(
        client_identity(&parts().card(&[&revoked.der]).build(), &state),
        None
    );
    let good = ca.issue(cac_params(CAC_CN, 78));
    assert_eq!(
        client_identity(&parts().card(&[&good.der]).build(), &state).map(|i| i.id),
        Some(CAC_ID.to_string())
    );
}

#[test]
fn intermediates_from_the_connection_are_used() {
    let root = Ca::root("Test Root CA TLS 9");
    let issuing = root.intermediate("DOD ID CA-9", 900);
    let (state, _dir) = state(config(Some(trust(&root.pem(), &[])), &[]));
    let card = issuing.issue(cac_params(CAC_CN, 30));
    let issuing_der = issuing.cert.der().to_vec();
    assert_eq!(
        client_identity(&parts().card(&[&card.der, &issuing_der]).build(), &state).map(|i| i.id),
        Some(CAC_ID.to_string())
    );
    assert_eq!(
        client_identity(&parts().card(&[&card.der]).build(), &state),
        None
    );
}

#[test]
fn no_identity_when_smart_cards_are_off() {
    let ca = Ca::root("Test Root CA TLS 10");
    let card = ca.issue(cac_params(CAC_CN, 40));
    let proxy: IpAddr = Ipv4Addr::new(192, 0, 2, 7).into();
    let (state, _dir) = state(config(None, &[proxy]));
    assert_eq!(
        client_identity(&parts().card(&[&card.der]).build(), &state),
        None
    );
    let p = parts()
        .from(Some(proxy))
        .header("x-ssl-client-cert", &nginx_escape(&card.pem))
        .build();
    assert_eq!(client_identity(&p, &state), None);
}

#[test]
fn time_is_the_callers() {
    let ca = Ca::root("Test Root CA TLS 11");
    let cfg = config(Some(trust(&ca.pem(), &[])), &[]);
    let card = ca.issue(cac_params(CAC_CN, 50)); // valid from a day ago for a year
    let p = parts().card(&[&card.der]).build();
    assert!(client_identity_at(&p, &cfg, now()).is_some());
    assert_eq!(client_identity_at(&p, &cfg, now() - 2 * DAY), None);
    assert_eq!(client_identity_at(&p, &cfg, now() + 400 * DAY), None);
}

#[test]
fn forwarded_header_from_trusted_and_untrusted_addresses() {
    let ca = Ca::root("Test Root CA TLS 12");
    let proxy_v4: IpAddr = Ipv4Addr::new(192, 0, 2, 7).into();
    let proxy_v6: IpAddr = "2001:db8::7".parse().unwrap();
    let (state, _dir) = state(config(
        Some(trust(&ca.pem(), &[ca.crl_pem(&[66])])),
        &[proxy_v4, proxy_v6],
    ));
    let card = ca.issue(cac_params(CAC_CN, 60));
    let escaped = nginx_escape(&card.pem);
    let id = |p: Parts| client_identity(&p, &state).map(|i| i.id);
    let want = Some(CAC_ID.to_string());

    // From a trusted proxy, under either header name, in either encoding; IPv4 proxies also when seen
    // as IPv4-mapped IPv6 peers.
    for name in ["x-ssl-client-cert", "X-Client-Cert"] {
        let p = parts().from(Some(proxy_v4)).header(name, &escaped).build();
        assert_eq!(id(p), want, "{name}");
    }
    let p = parts()
        .from(Some(proxy_v4))
        .header("x-ssl-client-cert", &card.pem.trim().replace('\n', " "))
        .build();
    assert_eq!(id(p), want);
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    let p = parts()
        .from(Some(mapped))
        .header("x-ssl-client-cert", &escaped)
        .build();
    assert_eq!(id(p), want);
    let p = parts()
        .from(Some(proxy_v6))
        .header("x-ssl-client-cert", &escaped)
        .build();
    assert_eq!(id(p), want);

    // From anyone else, or an unknown address: ignored.
    for remote in [
        Some(IpAddr::from(Ipv4Addr::new(192, 0, 2, 8))),
        Some(IpAddr::from(Ipv6Addr::LOCALHOST)),
        Some(IpAddr::from(Ipv4Addr::LOCALHOST)),
        None,
    ] {
        let p = parts()
            .from(remote)
            .header("x-ssl-client-cert", &escaped)
            .build();
        assert_eq!(id(p), None, "{remote:?}");
    }

    // Ambiguous (both headers, or one twice), empty, malformed: refused.
    let p = parts()
        .from(Some(proxy_v4))
        .header("x-ssl-client-cert", &escaped)
        .header("x-client-cert", &escaped)
        .build();
    assert_eq!(id(p), None);
    let p = parts()
        .from(Some(proxy_v4))
        .header("x-ssl-client-cert", &escaped)
        .header("x-ssl-client-cert", &escaped)
        .build();
    assert_eq!(id(p), None);
    for bad in ["", "  ", "%ZZ", "not a certificate"] {
        let p = parts()
            .from(Some(proxy_v4))
            .header("x-ssl-client-cert", bad)
            .build();
        assert_eq!(id(p), None, "{bad:?}");
    }

    // A forwarded certificate is checked like a direct one: revoked, other CA, expired.
    let revoked = ca.issue(cac_params(CAC_CN, 66));
    let other = Ca::root("Evil Root CA TLS 12").issue(cac_params(CAC_CN, 61));
    let mut params = cac_params(CAC_CN, 62);
    params.not_before = at(now() - 30 * DAY);
    params.not_after = at(now() - DAY);
    let expired = ca.issue(params);
    for bad in [&revoked, &other, &expired] {
        let p = parts()
            .from(Some(proxy_v4))
            .header("x-ssl-client-cert", &nginx_escape(&bad.pem))
            .build();
        assert_eq!(id(p), None);
    }

    // A direct certificate wins over a header, even from a proxy.
    let other_card = ca.issue(cac_params("ROE.RICHARD.1234500000", 63));
    let p = parts()
        .from(Some(proxy_v4))
        .card(&[&other_card.der])
        .header("x-ssl-client-cert", &escaped)
        .build();
    assert_eq!(id(p), Some("1234500000".to_string()));
}
