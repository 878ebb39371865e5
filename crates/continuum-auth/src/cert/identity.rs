//! Reading the account identifier out of a (verified) certificate.

use x509_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_SERIALNUMBER};

use super::{CertError, IdentityField};

const UPN_OID: &str = "1.3.6.1.4.1.311.20.2.3";

pub(super) fn identity_of(
    cert: &X509Certificate<'_>,
    field: &IdentityField,
) -> Result<String, CertError> {
    let id = match field {
        IdentityField::SubjectCommonNameSuffix => cn_suffix(cert)?,
        IdentityField::SubjectSerialNumber => {
            let attr = cert
                .subject()
                .iter_by_oid(&OID_X509_SERIALNUMBER)
                .next()
                .ok_or_else(|| no_identity("no subject serialNumber"))?;
            attr.as_str()
                .map_err(|_| no_identity("subject serialNumber is not a string"))?
                .trim()
                .to_owned()
        }
        IdentityField::SanUri { prefix } => san_names(cert)?
            .iter()
            .find_map(|name| match name {
                GeneralName::URI(uri) => strip_prefix_ignore_case(uri, prefix),
                _ => None,
            })
            .ok_or_else(|| no_identity("no SAN URI with the configured prefix"))?
            .to_owned(),
        IdentityField::SanEmail => san_names(cert)?
            .iter()
            .find_map(|name| match name {
                GeneralName::RFC822Name(email) => Some(email.trim().to_owned()),
                _ => None,
            })
            .ok_or_else(|| no_identity("no SAN e-mail address"))?,
        IdentityField::SanOtherNameUpn => san_names(cert)?
            .iter()
            .find_map(|name| match name {
                GeneralName::OtherName(oid, value) if oid.to_id_string() == UPN_OID => {
                    Some(upn_value(value))
                }
                _ => None,
            })
            .ok_or_else(|| no_identity("no SAN user principal name"))??,
    };
    if id.is_empty() {
        return Err(no_identity("the identity field is empty"));
    }
    Ok(id)
}

fn no_identity(why: &str) -> CertError {
    CertError::NoIdentity(why.to_owned())
}

/// The DoD ID after the last `.` of the (last) common name.
fn cn_suffix(cert: &X509Certificate<'_>) -> Result<String, CertError> {
    let cn = cert
        .subject()
        .iter_by_oid(&OID_X509_COMMON_NAME)
        .last()
        .ok_or_else(|| no_identity("no subject common name"))?
        .as_str()
        .map_err(|_| no_identity("subject common name is not a string"))?;
    let (_, suffix) = cn
        .rsplit_once('.')
        .ok_or_else(|| no_identity("subject common name has no '.'-separated suffix"))?;
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(no_identity(
            "subject common name suffix is not a numeric ID",
        ));
    }
    Ok(suffix.to_owned())
}

fn san_names<'a>(cert: &'a X509Certificate<'a>) -> Result<&'a [GeneralName<'a>], CertError> {
    match cert.subject_alternative_name() {
        Ok(Some(san)) => Ok(&san.value.general_names),
        Ok(None) => Err(no_identity("no subject alternative name")),
        Err(e) => Err(CertError::Malformed(format!(
            "subject alternative name: {e}"
        ))),
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    let rest = value.get(prefix.len()..)?;
    head.eq_ignore_ascii_case(prefix).then_some(rest.trim())
}

/// otherName value: `[0] EXPLICIT UTF8String` (x509-parser hands over the bytes after the OID).
fn upn_value(value: &[u8]) -> Result<String, CertError> {
    let bad = |what: &str| CertError::Malformed(format!("SAN user principal name: {what}"));
    let (_, outer) = Any::from_der(value).map_err(|e| bad(&e.to_string()))?;
    if outer.tag() != Tag(0) {
        return Err(bad("expected [0]"));
    }
    let (_, inner) = Any::from_der(outer.data).map_err(|e| bad(&e.to_string()))?;
    if inner.tag() != Tag::Utf8String {
        return Err(bad("not a UTF8String"));
    }
    let upn = std::str::from_utf8(inner.data).map_err(|_| bad("invalid UTF-8"))?;
    Ok(upn.trim().to_owned())
}
