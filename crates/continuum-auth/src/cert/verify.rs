//! Chain, time, revocation and usage checks for a client certificate.

use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use webpki::{
    EndEntityCert, ExpirationPolicy, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy,
};

use super::identity::identity_of;
use super::{CertError, CertIdentity, TrustConfig};

/// Verify `end_entity_der` (with the `intermediates` the client sent, in any order) at
/// `now_unix` and map it to an account identifier.
///
/// Checks: a chain to one of the configured CAs, every certificate in it valid at `now_unix`, revocation
/// against the configured CRLs (see [`TrustConfig::from_pem`] for the policy), the clientAuth extended
/// key usage on every certificate that has an EKU extension (RFC 5280: none means any purpose), the
/// digitalSignature key usage on the end entity when it has a key-usage extension, and the configured
/// identity field. Proof that the client holds the private key is the TLS handshake's job.
///
/// A configured CRL that cannot be used (bad signature, or stale when
/// [`TrustConfig::enforce_crl_next_update`] is set) fails with [`CertError::Config`]: the operator's problem.
pub fn verify_client_chain(
    cfg: &TrustConfig,
    end_entity_der: &[u8],
    intermediates: &[Vec<u8>],
    now_unix: u64,
) -> Result<CertIdentity, CertError> {
    let (rest, parsed) = x509_parser::parse_x509_certificate(end_entity_der)
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Malformed(
            "trailing bytes after the certificate".into(),
        ));
    }

    let ee_der = CertificateDer::from(end_entity_der);
    let ee = EndEntityCert::try_from(&ee_der).map_err(|e| CertError::Malformed(e.to_string()))?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();

    let crl_refs: Vec<&webpki::CertRevocationList<'static>> = cfg.crls.iter().collect();
    // `new` fails only on an empty list, which means "no revocation checking".
    let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
        b.with_depth(RevocationCheckDepth::Chain)
            .with_status_policy(UnknownStatusPolicy::Allow)
            .with_expiration_policy(if cfg.enforce_crl_next_update {
                ExpirationPolicy::Enforce
            } else {
                ExpirationPolicy::Ignore
            })
            .build()
    });

    ee.verify_for_usage(
        cfg.provider.signature_verification_algorithms.all,
        &cfg.roots.roots,
        &intermediates,
        UnixTime::since_unix_epoch(Duration::from_secs(now_unix)),
        KeyUsage::client_auth(),
        revocation,
        None,
    )
    .map_err(map_webpki_error)?;

    // webpki leaves key usage to the caller; PIV authentication keys are digitalSignature keys.
    match parsed.key_usage() {
        Ok(Some(ku)) if !ku.value.digital_signature() => {
            return Err(CertError::WrongUsage(
                "key usage lacks digitalSignature".into(),
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(CertError::Malformed(format!("key usage: {e}"))),
    }

    let id = identity_of(&parsed, &cfg.field)?;
    Ok(CertIdentity {
        id,
        subject: parsed.subject().to_string(),
        serial_hex: hex_lower(parsed.raw_serial()),
        not_after_unix: parsed.validity().not_after.timestamp(),
    })
}

pub(super) fn map_webpki_error(e: webpki::Error) -> CertError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => CertError::Expired,
        E::CertNotValidYet { .. } => CertError::NotYetValid,
        E::CertRevoked => CertError::Revoked,
        // A forged signature under a trusted CA's name is, for the caller, an unknown issuer too.
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => CertError::UnknownIssuer,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            CertError::WrongUsage("extended key usage lacks clientAuth".into())
        }
        E::CaUsedAsEndEntity => CertError::WrongUsage("a CA certificate was presented".into()),
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::UnsupportedCertVersion => {
            CertError::Malformed(format!("{e:?}"))
        }
        // CRL problems are the operator's to fix, not the card holder's.
        E::CrlExpired { .. }
        | E::InvalidCrlSignatureForPublicKey
        | E::IssuerNotCrlSigner
        | E::UnsupportedCrlVersion
        | E::UnsupportedDeltaCrl
        | E::UnsupportedIndirectCrl
        | E::UnsupportedCrlIssuingDistributionPoint
        | E::UnsupportedRevocationReasonsPartitioning => {
            CertError::Config(format!("CRL unusable: {e:?}"))
        }
        other => CertError::Invalid(format!("{other:?}")),
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
