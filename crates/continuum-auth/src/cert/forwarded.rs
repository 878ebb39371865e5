//! Client certificates passed on by a TLS-terminating reverse proxy.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::CertError;

/// Header values are bounded by the HTTP server already; this only caps the work done on one.
const MAX_HEADER_LEN: usize = 64 * 1024;
const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode the client certificate a reverse proxy forwarded in a header into DER: URL-encoded PEM (nginx
/// `$ssl_client_escaped_cert`), plain PEM with its line breaks turned into spaces or tabs (nginx's older
/// `$ssl_client_cert`), or bare base64 DER (Traefik). Only the first certificate is taken (the leaf); an
/// empty value (nginx sends one when there was no certificate) is `Malformed`, so check for it first.
///
/// This decodes; it does not authenticate. Anyone who can reach the application directly can send this
/// header, so the web layer must honour it only on connections from the configured proxy addresses (and
/// the proxy must overwrite it on every request), then pass the DER to
/// [`super::verify_client_chain`] like a certificate from a direct TLS connection. The proxy must also have
/// required proof of key possession, which a header cannot carry.
pub fn from_forwarded_header(value: &str) -> Result<Vec<u8>, CertError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(malformed("forwarded certificate header too long"));
    }
    let decoded = if value.contains('%') {
        percent_decode(value)?
    } else {
        value.to_owned()
    };
    let text = decoded.trim().trim_matches('"');
    if text.is_empty() {
        return Err(malformed("forwarded certificate header is empty"));
    }

    let body = match text.find(BEGIN) {
        Some(start) => {
            let after = &text[start + BEGIN.len()..];
            let end = after
                .find(END)
                .ok_or_else(|| malformed("PEM certificate without an END line"))?;
            &after[..end]
        }
        None => text,
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = BASE64
        .decode(compact.as_bytes())
        .map_err(|e| malformed(&format!("forwarded certificate is not base64: {e}")))?;

    match x509_parser::parse_x509_certificate(&der) {
        Ok(([], _)) => Ok(der),
        Ok(_) => Err(malformed("trailing bytes after the forwarded certificate")),
        Err(e) => Err(malformed(&format!("forwarded certificate: {e}"))),
    }
}

fn malformed(why: &str) -> CertError {
    CertError::Malformed(why.to_owned())
}

/// RFC 3986 percent-decoding. `+` stays `+`: it is a base64 character here, not a space.
fn percent_decode(value: &str) -> Result<String, CertError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| malformed("bad percent-escape in forwarded certificate"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| malformed("forwarded certificate is not UTF-8"))
}
