//! Smart-card (CAC/PIV) login: verify a TLS client certificate and map it to an account identifier.
//!
//! The flow: the TLS layer ([`client_verifier`], [`server_config`]) asks for, but does not require, a client
//! certificate, so password logins keep working on the same port. The web layer then passes the peer
//! certificate (from the TLS connection, or from a trusted proxy's header via [`from_forwarded_header`]) to
//! [`verify_client_chain`], which re-checks the chain at the given time and returns a [`CertIdentity`]
//! whose `id` is looked up among accounts.
//!
//! Revocation is checked against CRLs loaded at start-up; OCSP is not supported.

mod forwarded;
mod identity;
mod tls;
mod verify;

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::RootCertStore;

pub use forwarded::from_forwarded_header;
pub use tls::{client_verifier, server_config};
pub use verify::verify_client_chain;

/// Which part of a verified certificate names the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityField {
    /// The digits after the last `.` of the subject common name: DoD CACs carry
    /// `LAST.FIRST.MIDDLE.1234567890`, whose suffix is the 10-digit DoD ID (EDIPI). A suffix that is empty
    /// or not all ASCII digits is no identity.
    SubjectCommonNameSuffix,
    /// The subject `serialNumber` attribute (OID 2.5.4.5), as written.
    SubjectSerialNumber,
    /// The first subject-alternative-name URI that starts with `prefix` (compared ASCII
    /// case-insensitively, e.g. `urn:uuid:` for the PIV card UUID); the identifier is the rest of the URI,
    /// as written. An empty prefix takes the whole first URI.
    SanUri { prefix: String },
    /// The first subject-alternative-name e-mail address (rfc822Name), as written: the account store
    /// decides about case.
    SanEmail,
    /// The first Microsoft user principal name (otherName 1.3.6.1.4.1.311.20.2.3, a UTF8String).
    SanOtherNameUpn,
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The account identifier chosen by [`IdentityField`].
    pub id: String,
    /// The subject distinguished name, for logs and audit.
    pub subject: String,
    /// The certificate serial number, lowercase hex without separators.
    pub serial_hex: String,
    /// When the certificate expires: a session started with it should not outlive it.
    pub not_after_unix: i64,
}

/// Why a certificate was not accepted. Messages are for logs and administrators: show users a generic
/// message.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate (or one in its chain) has expired")]
    Expired,
    #[error("certificate (or one in its chain) is not valid yet")]
    NotYetValid,
    #[error("certificate (or one in its chain) is revoked")]
    Revoked,
    #[error("certificate is not issued by a trusted CA")]
    UnknownIssuer,
    #[error("certificate may not be used for client authentication: {0}")]
    WrongUsage(String),
    #[error("certificate carries no account identifier: {0}")]
    NoIdentity(String),
    #[error("certificate chain rejected: {0}")]
    Invalid(String),
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("smart-card configuration: {0}")]
    Config(String),
}

/// Trusted CAs, their CRLs and the identity mapping, parsed once at start-up. Not `Clone` (CRLs can be
/// megabytes): share it in an `Arc`.
pub struct TrustConfig {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) roots: Arc<RootCertStore>,
    /// For the rustls verifier, which parses its own copy.
    pub(crate) crl_ders: Vec<CertificateRevocationListDer<'static>>,
    pub(crate) crls: Vec<webpki::CertRevocationList<'static>>,
    pub(crate) field: IdentityField,
    pub(crate) enforce_crl_next_update: bool,
}

impl TrustConfig {
    /// `ca_pem` holds one or more CA certificates (roots, and intermediates to trust directly); each entry
    /// of `crl_pems` is a CRL in PEM (one or more blocks) or DER.
    ///
    /// Revocation policy: a certificate is checked against the CRL of its issuer when one is configured
    /// (the end entity and any intermediates it sent); when none of the configured CRLs is from its issuer
    /// the status is unknown and the certificate is accepted. That keeps CAs without a published CRL
    /// usable, at the cost that a missing CRL file silently disables revocation for that CA: configure one
    /// CRL per issuing CA. A CRL past its nextUpdate is still used unless
    /// [`enforce_crl_next_update`](Self::enforce_crl_next_update) is set.
    pub fn from_pem(
        ca_pem: &[u8],
        crl_pems: &[Vec<u8>],
        field: IdentityField,
    ) -> Result<Self, CertError> {
        let mut roots = RootCertStore::empty();
        for (i, der) in CertificateDer::pem_slice_iter(ca_pem).enumerate() {
            let der = der.map_err(|e| CertError::Config(format!("CA PEM: {e}")))?;
            check_is_ca(&der, i)?;
            roots
                .add(der)
                .map_err(|e| CertError::Config(format!("CA certificate {i}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(CertError::Config(
                "no CA certificate found in the CA PEM".into(),
            ));
        }

        let mut crl_ders = Vec::new();
        for (i, input) in crl_pems.iter().enumerate() {
            if looks_like_pem(input) {
                let before = crl_ders.len();
                for der in CertificateRevocationListDer::pem_slice_iter(input) {
                    crl_ders.push(der.map_err(|e| CertError::Config(format!("CRL {i}: {e}")))?);
                }
                if crl_ders.len() == before {
                    return Err(CertError::Config(format!(
                        "CRL {i}: PEM without an X509 CRL block"
                    )));
                }
            } else {
                crl_ders.push(CertificateRevocationListDer::from(input.clone()));
            }
        }
        let crls = crl_ders
            .iter()
            .enumerate()
            .map(|(i, der)| {
                webpki::OwnedCertRevocationList::from_der(der.as_ref())
                    .map(webpki::CertRevocationList::from)
                    .map_err(|e| CertError::Config(format!("CRL {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        if let IdentityField::SanUri { prefix } = &field {
            if prefix.trim() != prefix {
                return Err(CertError::Config(
                    "SAN URI prefix has surrounding whitespace".into(),
                ));
            }
        }

        Ok(Self {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots: Arc::new(roots),
            crl_ders,
            crls,
            field,
            enforce_crl_next_update: false,
        })
    }

    /// Reject certificates whose issuer's CRL is past its nextUpdate (fail closed when CRL refresh stops;
    /// smart-card logins then fail until fresh CRLs are loaded).
    pub fn enforce_crl_next_update(mut self) -> Self {
        self.enforce_crl_next_update = true;
        self
    }

    /// The configured identity mapping.
    pub fn identity_field(&self) -> &IdentityField {
        &self.field
    }
}

impl fmt::Debug for TrustConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustConfig")
            .field("cas", &self.roots.len())
            .field("crls", &self.crls.len())
            .field("field", &self.field)
            .field("enforce_crl_next_update", &self.enforce_crl_next_update)
            .finish()
    }
}

fn looks_like_pem(input: &[u8]) -> bool {
    input.windows(10).any(|w| w == b"-----BEGIN")
}

/// A leaf pasted into the CA bundle is a misconfiguration worth failing start-up for; v1 roots without
/// basicConstraints are still accepted.
fn check_is_ca(der: &CertificateDer<'_>, index: usize) -> Result<(), CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| CertError::Config(format!("CA certificate {index}: {e}")))?;
    match cert.basic_constraints() {
        Ok(Some(bc)) if !bc.value.ca => Err(CertError::Config(format!(
            "CA certificate {index} ({}) is not a CA",
            cert.subject()
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(CertError::Config(format!("CA certificate {index}: {e}"))),
    }
}
