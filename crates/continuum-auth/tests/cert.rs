//! Smart-card login: a throwaway CA made here with rcgen (no key is ever committed) issues CAC-like
//! certificates that go through `continuum_auth::cert`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use continuum_auth::cert::{
    client_verifier, from_forwarded_header, server_config, verify_client_chain, CertError,
    IdentityField, TrustConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, Ia5String, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    OtherNameValue, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection, StreamOwned};
use time::OffsetDateTime;

const DAY: u64 = 86_400;
const CAC_CN: &str = "DOE.JANE.Q.1234567890";

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

    fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Issue a leaf; returns its DER and key.
    fn issue(&self, params: CertificateParams) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.der().to_vec(), key)
    }

    /// A CRL revoking `serials`, in PEM.
    fn crl_pem(&self, serials: &[u64]) -> String {
        self.crl(serials).pem().unwrap()
    }

    fn crl(&self, serials: &[u64]) -> rcgen::CertificateRevocationList {
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
fn cac_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "U.S. Government");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(SerialNumber::from(0x1234_5678u64));
    let t = now();
    params.not_before = at(t - DAY);
    params.not_after = at(t + 365 * DAY);
    params
}

fn trust(ca_pem: &str, crls: &[String], field: IdentityField) -> TrustConfig {
    let crls: Vec<Vec<u8>> = crls.iter().map(|c| c.as_bytes().to_vec()).collect();
    TrustConfig::from_pem(ca_pem.as_bytes(), &crls, field).unwrap()
}

fn cn_trust(ca: &Ca) -> TrustConfig {
    trust(&ca.pem(), &[], IdentityField::SubjectCommonNameSuffix)
}

#[test]
fn cac_certificate_maps_to_dod_id() {
    let ca = Ca::root("Test Root CA 1");
    let (der, _) = ca.issue(cac_params(CAC_CN));
    let id = verify_client_chain(&cn_trust(&ca), &der, &[], now()).unwrap();
    assert_eq!(id.id, "1234567890");
    assert!(
        id.subject.contains("CN=DOE.JANE.Q.1234567890"),
        "{}",
        id.subject
    );
    assert_eq!(id.serial_hex, "12345678");
    let expected_not_after = (now() + 365 * DAY) as i64;
    assert!((id.not_after_unix - expected_not_after).abs() < 60);
}

#[test]
fn chain_through_an_intermediate_verifies() {
    let root = Ca::root("Test Root CA 2");
    let issuing = root.intermediate("DOD ID CA-99", 99);
    let (der, _) = issuing.issue(cac_params(CAC_CN));
    let cfg = cn_trust(&root);
    let id = verify_client_chain(&cfg, &der, &[issuing.der()], now()).unwrap();
    assert_eq!(id.id, "1234567890");
    // Without the intermediate there is no path to the root.
    let err = verify_client_chain(&cfg, &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer), "{err:?}");
}

#[test]
fn several_cas_in_one_pem() {
    let a = Ca::root("Test Root CA A");
    let b = Ca::root("Test Root CA B");
    let cfg = trust(
        &format!("{}\n{}", a.pem(), b.pem()),
        &[],
        IdentityField::SubjectCommonNameSuffix,
    );
    for ca in [&a, &b] {
        let (der, _) = ca.issue(cac_params(CAC_CN));
        assert_eq!(
            verify_client_chain(&cfg, &der, &[], now()).unwrap().id,
            "1234567890"
        );
    }
}

#[test]
fn expired_certificate_is_rejected() {
    let ca = Ca::root("Test Root CA 3");
    let mut params = cac_params(CAC_CN);
    params.not_before = at(now() - 30 * DAY);
    params.not_after = at(now() - DAY);
    let (der, _) = ca.issue(params);
    let err = verify_client_chain(&cn_trust(&ca), &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::Expired), "{err:?}");
}

#[test]
fn not_yet_valid_certificate_is_rejected() {
    let ca = Ca::root("Test Root CA 4");
    let mut params = cac_params(CAC_CN);
    params.not_before = at(now() + DAY);
    let (der, _) = ca.issue(params);
    let cfg = cn_trust(&ca);
    let err = verify_client_chain(&cfg, &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::NotYetValid), "{err:?}");
    // The time is the caller's: two days on, the same certificate is fine.
    assert!(verify_client_chain(&cfg, &der, &[], now() + 2 * DAY).is_ok());
}

#[test]
fn revoked_certificate_is_rejected_pem_crl() {
    let ca = Ca::root("Test Root CA 5");
    let mut revoked = cac_params(CAC_CN);
    revoked.serial_number = Some(SerialNumber::from(77u64));
    let (revoked_der, _) = ca.issue(revoked);
    let mut good = cac_params("ROE.RICHARD.1234500000");
    good.serial_number = Some(SerialNumber::from(78u64));
    let (good_der, _) = ca.issue(good);

    let cfg = trust(
        &ca.pem(),
        &[ca.crl_pem(&[77])],
        IdentityField::SubjectCommonNameSuffix,
    );
    let err = verify_client_chain(&cfg, &revoked_der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::Revoked), "{err:?}");
    assert_eq!(
        verify_client_chain(&cfg, &good_der, &[], now()).unwrap().id,
        "1234500000"
    );
}

#[test]
fn revoked_certificate_is_rejected_der_crl() {
    let ca = Ca::root("Test Root CA 6");
    let mut params = cac_params(CAC_CN);
    params.serial_number = Some(SerialNumber::from(4242u64));
    let (der, _) = ca.issue(params);
    let crl_der = ca.crl(&[4242]).der().to_vec();
    let cfg = TrustConfig::from_pem(
        ca.pem().as_bytes(),
        &[crl_der],
        IdentityField::SubjectCommonNameSuffix,
    )
    .unwrap();
    let err = verify_client_chain(&cfg, &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::Revoked), "{err:?}");
}

/// The documented policy: no CRL from the issuing CA means unknown status, accepted; a revoked
/// intermediate (on its issuer's CRL) takes its certificates with it.
#[test]
fn revocation_status_unknown_without_issuer_crl_and_revoked_intermediate() {
    let root = Ca::root("Test Root CA 7");
    let issuing = root.intermediate("DOD ID CA-7", 700);
    let (der, _) = issuing.issue(cac_params(CAC_CN));

    let root_crl_clean = trust(
        &root.pem(),
        &[root.crl_pem(&[1])],
        IdentityField::SubjectCommonNameSuffix,
    );
    assert!(verify_client_chain(&root_crl_clean, &der, &[issuing.der()], now()).is_ok());

    let root_crl_revoking = trust(
        &root.pem(),
        &[root.crl_pem(&[700])],
        IdentityField::SubjectCommonNameSuffix,
    );
    let err = verify_client_chain(&root_crl_revoking, &der, &[issuing.der()], now()).unwrap_err();
    assert!(matches!(err, CertError::Revoked), "{err:?}");
}

#[test]
fn stale_crl_is_used_unless_next_update_is_enforced() {
    let ca = Ca::root("Test Root CA 8");
    let (der, _) = ca.issue(cac_params(CAC_CN));
    let later = now() + 30 * DAY; // past the CRL's nextUpdate (7 days)
    let lenient = trust(
        &ca.pem(),
        &[ca.crl_pem(&[])],
        IdentityField::SubjectCommonNameSuffix,
    );
    assert!(verify_client_chain(&lenient, &der, &[], later).is_ok());
    let strict = trust(
        &ca.pem(),
        &[ca.crl_pem(&[])],
        IdentityField::SubjectCommonNameSuffix,
    )
    .enforce_crl_next_update();
    let err = verify_client_chain(&strict, &der, &[], later).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");
}

#[test]
fn certificate_from_another_ca_is_rejected() {
    let trusted = Ca::root("Test Root CA 9");
    let other = Ca::root("Evil Root CA");
    let (der, _) = other.issue(cac_params(CAC_CN));
    let err = verify_client_chain(&cn_trust(&trusted), &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer), "{err:?}");
}

#[test]
fn certificate_under_a_trusted_name_but_wrong_key_is_rejected() {
    let trusted = Ca::root("Test Root CA 10");
    let impostor = Ca::root("Test Root CA 10"); // same name, different key
    let (der, _) = impostor.issue(cac_params(CAC_CN));
    let err = verify_client_chain(&cn_trust(&trusted), &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer), "{err:?}");
}

#[test]
fn self_signed_certificate_is_rejected() {
    let ca = Ca::root("Test Root CA 11");
    let key = KeyPair::generate().unwrap();
    let der = cac_params(CAC_CN).self_signed(&key).unwrap().der().to_vec();
    let err = verify_client_chain(&cn_trust(&ca), &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer), "{err:?}");
}

#[test]
fn server_auth_only_is_wrong_usage() {
    let ca = Ca::root("Test Root CA 12");
    let mut params = cac_params(CAC_CN);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (der, _) = ca.issue(params);
    let err = verify_client_chain(&cn_trust(&ca), &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::WrongUsage(_)), "{err:?}");
}

#[test]
fn key_usage_without_digital_signature_is_wrong_usage() {
    let ca = Ca::root("Test Root CA 13");
    let mut params = cac_params(CAC_CN);
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let (der, _) = ca.issue(params);
    let err = verify_client_chain(&cn_trust(&ca), &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::WrongUsage(_)), "{err:?}");
}

#[test]
fn missing_identity_field_is_no_identity() {
    let ca = Ca::root("Test Root CA 14");
    let cfg = cn_trust(&ca);
    for cn in ["Jane Doe", "DOE.JANE.Q.", "DOE.JANE.Q.12345X7890"] {
        let (der, _) = ca.issue(cac_params(cn));
        let err = verify_client_chain(&cfg, &der, &[], now()).unwrap_err();
        assert!(matches!(err, CertError::NoIdentity(_)), "{cn}: {err:?}");
    }
    // A SAN mapping with no SAN at all.
    let (der, _) = ca.issue(cac_params(CAC_CN));
    for field in [
        IdentityField::SanEmail,
        IdentityField::SanUri {
            prefix: "urn:uuid:".into(),
        },
        IdentityField::SanOtherNameUpn,
        IdentityField::SubjectSerialNumber,
    ] {
        let cfg = trust(&ca.pem(), &[], field.clone());
        let err = verify_client_chain(&cfg, &der, &[], now()).unwrap_err();
        assert!(
            matches!(err, CertError::NoIdentity(_)),
            "{field:?}: {err:?}"
        );
    }
}

fn san_params() -> CertificateParams {
    let mut params = cac_params(CAC_CN);
    params.subject_alt_names = vec![
        SanType::URI(Ia5String::try_from("urn:fasc-n:0001234567890").unwrap()),
        SanType::URI(Ia5String::try_from("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6").unwrap()),
        SanType::Rfc822Name(Ia5String::try_from("jane.q.doe.civ@mail.mil").unwrap()),
        SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            OtherNameValue::Utf8String("1234567890@mil".into()),
        )),
    ];
    params
        .distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 5]), "PIV-0042");
    params
}

#[test]
fn san_uri_email_upn_and_serial_number_mappings() {
    let ca = Ca::root("Test Root CA 15");
    let (der, _) = ca.issue(san_params());
    let cases = [
        (
            IdentityField::SanUri {
                prefix: "urn:uuid:".into(),
            },
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
        (
            IdentityField::SanUri {
                prefix: "URN:FASC-N:".into(),
            },
            "0001234567890",
        ),
        (
            IdentityField::SanUri {
                prefix: String::new(),
            },
            "urn:fasc-n:0001234567890",
        ),
        (IdentityField::SanEmail, "jane.q.doe.civ@mail.mil"),
        (IdentityField::SanOtherNameUpn, "1234567890@mil"),
        (IdentityField::SubjectSerialNumber, "PIV-0042"),
        (IdentityField::SubjectCommonNameSuffix, "1234567890"),
    ];
    for (field, want) in cases {
        let cfg = trust(&ca.pem(), &[], field.clone());
        let got = verify_client_chain(&cfg, &der, &[], now());
        assert_eq!(got.map(|i| i.id).ok().as_deref(), Some(want), "{field:?}");
    }
    // A prefix nothing matches.
    let cfg = trust(
        &ca.pem(),
        &[],
        IdentityField::SanUri {
            prefix: "https://".into(),
        },
    );
    let err = verify_client_chain(&cfg, &der, &[], now()).unwrap_err();
    assert!(matches!(err, CertError::NoIdentity(_)), "{err:?}");
}

#[test]
fn garbage_is_malformed() {
    let ca = Ca::root("Test Root CA 16");
    let err = verify_client_chain(&cn_trust(&ca), b"not a certificate", &[], now()).unwrap_err();
    assert!(matches!(err, CertError::Malformed(_)), "{err:?}");
}

#[test]
fn bad_configuration_is_reported() {
    let ca = Ca::root("Test Root CA 17");
    let field = IdentityField::SubjectCommonNameSuffix;
    let err = TrustConfig::from_pem(b"", &[], field.clone()).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");

    // A leaf in the CA bundle.
    let mut leaf = cac_params(CAC_CN);
    leaf.is_ca = IsCa::ExplicitNoCa;
    let key = KeyPair::generate().unwrap();
    let leaf_pem = leaf.signed_by(&key, &ca.cert, &ca.key).unwrap().pem();
    let err = TrustConfig::from_pem(leaf_pem.as_bytes(), &[], field.clone()).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");

    let err =
        TrustConfig::from_pem(ca.pem().as_bytes(), &[b"junk".to_vec()], field.clone()).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");
    let err = TrustConfig::from_pem(
        ca.pem().as_bytes(),
        &[b"-----BEGIN X509 CRL-----\n!!!\n-----END X509 CRL-----\n".to_vec()],
        field,
    )
    .unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");
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

#[test]
fn forwarded_header_decoding() {
    let ca = Ca::root("Test Root CA 18");
    let (der, _) = ca.issue(cac_params(CAC_CN));
    let pem = CertificateDer::from(der.clone());
    let pem = pem_of(&pem);

    let escaped = nginx_escape(&pem);
    assert!(escaped.contains("%0A") && !escaped.contains('\n'));
    assert_eq!(from_forwarded_header(&escaped).unwrap(), der);
    // Plain PEM with line breaks flattened (older nginx `$ssl_client_cert`, some load balancers).
    assert_eq!(from_forwarded_header(&pem.replace('\n', " ")).unwrap(), der);
    assert_eq!(
        from_forwarded_header(&pem.replace('\n', "\n\t")).unwrap(),
        der
    );
    // Bare base64 DER, quoted.
    let bare: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(from_forwarded_header(&format!("\"{bare}\"")).unwrap(), der);
    // And the result verifies like a direct certificate.
    assert_eq!(
        verify_client_chain(
            &cn_trust(&ca),
            &from_forwarded_header(&escaped).unwrap(),
            &[],
            now()
        )
        .unwrap()
        .id,
        "1234567890"
    );

    for bad in [
        "",
        "   ",
        "%ZZ",
        "%4",
        "-----BEGIN CERTIFICATE-----abc",
        "aGVsbG8=",
    ] {
        let err = from_forwarded_header(bad).unwrap_err();
        assert!(matches!(err, CertError::Malformed(_)), "{bad:?}: {err:?}");
    }
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A server certificate for `localhost`, and its key, in PEM.
fn server_cert(ca: &Ca) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn server_config_builds() {
    let ca = Ca::root("Test Root CA 19");
    let (chain, key) = server_cert(&ca);
    let cfg = cn_trust(&ca);
    for trust in [Some(&cfg), None] {
        let sc = server_config(chain.as_bytes(), key.as_bytes(), trust).unwrap();
        assert_eq!(
            sc.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
    let err = server_config(chain.as_bytes(), b"not a key", Some(&cfg)).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");
    let err = server_config(b"", key.as_bytes(), None).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");
    // A key that does not belong to the certificate.
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let err = server_config(chain.as_bytes(), other_key.as_bytes(), None).unwrap_err();
    assert!(matches!(err, CertError::Config(_)), "{err:?}");

    let verifier = client_verifier(&cfg).unwrap();
    assert!(verifier.offer_client_auth());
    assert!(!verifier.client_auth_mandatory());
    assert!(!verifier.root_hint_subjects().is_empty());
}

type PeerChain = Option<Vec<Vec<u8>>>;
/// The ALPN protocol the client got.
type Alpn = Option<Vec<u8>>;

/// One TLS connection over 127.0.0.1: the server reads "ping", answers "pong" and returns the client's
/// certificate chain (DER) if it sent one; the client side returns the ALPN protocol it got.
fn handshake(
    server: rustls::ServerConfig,
    client: ClientConfig,
) -> (Result<PeerChain, String>, Result<Alpn, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Arc::new(server);
    let server_side = thread::spawn(move || -> Result<PeerChain, String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = ServerConnection::new(server).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ping");
        let peer = tls
            .conn
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.to_vec()).collect());
        tls.write_all(b"pong").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        let _ = tls.flush();
        Ok(peer)
    });

    let client_side = (|| -> Result<Alpn, String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"ping").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"pong");
        Ok(tls.conn.alpn_protocol().map(|p| p.to_vec()))
    })();
    (server_side.join().unwrap(), client_side)
}

fn client_config(server_ca: &Ca, client_cert: Option<(Vec<u8>, KeyPair)>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.cert.der().clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((der, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(der)],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[test]
fn tls_handshake_with_and_without_a_smart_card() {
    let ca = Ca::root("Test Root CA 20");
    let (chain, key) = server_cert(&ca);
    let cfg = cn_trust(&ca);
    let server = || server_config(chain.as_bytes(), key.as_bytes(), Some(&cfg)).unwrap();

    // With a card: the server sees the certificate and maps it.
    let (cac_der, cac_key) = ca.issue(cac_params(CAC_CN));
    let (server_got, client_got) = handshake(
        server(),
        client_config(&ca, Some((cac_der.clone(), cac_key))),
    );
    assert_eq!(client_got.unwrap(), Some(b"http/1.1".to_vec()));
    let peer = server_got.unwrap().expect("client certificate");
    assert_eq!(peer[0], cac_der);
    let id = verify_client_chain(&cfg, &peer[0], &peer[1..], now()).unwrap();
    assert_eq!(id.id, "1234567890");

    // Without a card: the handshake still succeeds (password login on the same port).
    let (server_got, client_got) = handshake(server(), client_config(&ca, None));
    assert!(client_got.is_ok(), "{client_got:?}");
    assert_eq!(server_got.unwrap(), None);

    // A card from another CA: the handshake fails on the server.
    let other = Ca::root("Evil Root CA 2");
    let (bad_der, bad_key) = other.issue(cac_params(CAC_CN));
    let (server_got, _) = handshake(server(), client_config(&ca, Some((bad_der, bad_key))));
    let err = server_got.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}
