//! Time-based one-time passwords (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps, which is what common
//! authenticator apps (Google Authenticator, Microsoft Authenticator, FreeOTP, 1Password…) assume when they
//! scan an `otpauth://` QR code.

use hmac::{Hmac, KeyInit as _, Mac as _};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore as _;
use sha1::Sha1;
use subtle::ConstantTimeEq as _;

/// Seconds per time step.
const PERIOD: i64 = 30;
/// Digits in a code.
const DIGITS: usize = 6;
/// 10^DIGITS.
const MODULUS: u32 = 1_000_000;
/// Bytes in a new secret: 160 bits, the HMAC-SHA-1 output size that RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// Everything but RFC 3986 unreserved characters is percent-encoded (a space becomes `%20`, not `+`).
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A new random secret of 20 bytes.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    // `rand::rng()` is a CSPRNG seeded from the OS.
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// RFC 4648 base32 without padding, the form authenticator apps take a secret in.
pub fn to_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// Reads a base32 secret as people type or paste it: case, spaces, dashes and trailing `=` are ignored.
/// `None` when it is not base32 or is empty.
pub fn from_base32(s: &str) -> Option<Vec<u8>> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .trim_end_matches('=')
        .to_ascii_uppercase();
    match data_encoding::BASE32_NOPAD.decode(cleaned.as_bytes()) {
        Ok(bytes) if !bytes.is_empty() => Some(bytes),
        _ => None,
    }
}

/// The 6-digit code (zero-padded) for the time step that contains `unix_seconds`; empty before 1970.
pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    step_code(secret, step_of(unix_seconds)).unwrap_or_default()
}

/// Accepts the code of the current 30-s step or the one before/after (clock drift). Refuses a step <= `last_used_step`
/// (replay of a code already used). Returns the step that matched, to be stored as the new `last_used_step`.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    // Apps show "123 456"; people type it that way.
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_seconds);
    let mut matched = None;
    // All candidates are computed and compared, so the time taken does not tell which one matched.
    for step in [now.saturating_sub(1), now, now.saturating_add(1)] {
        let Some(expected) = step_code(secret, step) else {
            continue;
        };
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        let fresh = last_used_step.is_none_or(|last| step > last);
        if equal && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// The Key URI that authenticator apps read from a QR code (Google's "Key Uri Format"):
/// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let account = utf8_percent_encode(account, URI_COMPONENT);
    let secret = to_base32(secret);
    if issuer.is_empty() {
        return format!(
            "otpauth://totp/{account}?secret={secret}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}"
        );
    }
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}"
    )
}

/// Title of the QR image, read out by screen readers in place of the picture.
const QR_TITLE: &str = "QR code to add this account to an authenticator app";

/// Shown instead when the URI is too long for a QR code.
const QR_UNAVAILABLE: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="200" height="40" viewBox="0 0 200 40"><title>QR code unavailable: enter the key by hand</title><text x="4" y="24">QR code unavailable</text></svg>"#;

/// An SVG image of the QR code for `uri`, ready to inline in HTML (no XML declaration), with `role="img"` and a
/// `<title>` for screen readers. Should the URI not fit in a QR code, an SVG that says so.
pub fn qr_svg(uri: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) else {
        return QR_UNAVAILABLE.to_owned();
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // The renderer starts with an XML declaration, which has no place inside an HTML page.
    let svg = match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg.as_str(),
    };
    match svg.find('>') {
        Some(end) => format!(
            r#"{} role="img"><title>{QR_TITLE}</title>{}"#,
            &svg[..end],
            &svg[end + 1..]
        ),
        None => svg.to_owned(),
    }
}

/// The RFC 6238 time step (counter) that contains `unix_seconds` (T0 = 0).
fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(PERIOD)
}

/// The RFC 4226 HOTP code for a counter; `None` for a negative step (before 1970, never a real login).
fn step_code(secret: &[u8], step: i64) -> Option<String> {
    let counter = u64::try_from(step).ok()?;
    // HMAC takes keys of any length, so this never fails; no panic path all the same.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // Dynamic truncation (RFC 4226 §5.3).
    let offset = usize::from(digest.last()? & 0x0f);
    let word: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    let value = u32::from_be_bytes(word) & 0x7fff_ffff;
    Some(format!("{:0width$}", value % MODULUS, width = DIGITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_test_vectors() {
        // The 8-digit values of Appendix B; a 6-digit code is their last 6 digits.
        let vectors: [(i64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, eight) in vectors {
            assert_eq!(code_at(RFC_SECRET, time), &eight[2..], "time {time}");
        }
    }

    #[test]
    fn rfc4226_hotp_test_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                step_code(RFC_SECRET, counter as i64).as_deref(),
                Some(*code)
            );
        }
    }

    #[test]
    fn codes_are_zero_padded() {
        // 1111111109 gives 081804: the leading zero must survive.
        assert_eq!(code_at(RFC_SECRET, 1_111_111_109), "081804");
        for t in 0..200 {
            let code = code_at(RFC_SECRET, t * PERIOD);
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn verify_accepts_one_step_of_drift_either_way() {
        let now = 1_700_000_015; // step 56_666_667, 15 s into it
        let step = now / PERIOD;
        let current = code_at(RFC_SECRET, now);
        let previous = code_at(RFC_SECRET, now - PERIOD);
        let next = code_at(RFC_SECRET, now + PERIOD);
        assert_eq!(verify(RFC_SECRET, &current, now, None), Some(step));
        assert_eq!(verify(RFC_SECRET, &previous, now, None), Some(step - 1));
        assert_eq!(verify(RFC_SECRET, &next, now, None), Some(step + 1));

        let too_old = code_at(RFC_SECRET, now - 2 * PERIOD);
        let too_new = code_at(RFC_SECRET, now + 2 * PERIOD);
        assert_eq!(verify(RFC_SECRET, &too_old, now, None), None);
        assert_eq!(verify(RFC_SECRET, &too_new, now, None), None);
    }

    #[test]
    fn verify_refuses_replay_of_a_used_step() {
        let now = 1_700_000_015;
        let step = now / PERIOD;
        let current = code_at(RFC_SECRET, now);
        let used = verify(RFC_SECRET, &current, now, None);
        assert_eq!(used, Some(step));
        // The same code again, even seconds later within the window, is refused.
        assert_eq!(verify(RFC_SECRET, &current, now, used), None);
        assert_eq!(verify(RFC_SECRET, &current, now + PERIOD, used), None);
        // So is an older step's code once a newer one was used.
        let previous = code_at(RFC_SECRET, now - PERIOD);
        assert_eq!(verify(RFC_SECRET, &previous, now, used), None);
        // The next step's code is still good.
        let next = code_at(RFC_SECRET, now + PERIOD);
        assert_eq!(verify(RFC_SECRET, &next, now, used), Some(step + 1));
        // An older last-used step does not block the current one.
        assert_eq!(
            verify(RFC_SECRET, &current, now, Some(step - 1)),
            Some(step)
        );
    }

    #[test]
    fn verify_rejects_malformed_and_wrong_codes() {
        let now = 1_234_567_890;
        let code = code_at(RFC_SECRET, now);
        assert_eq!(code, "005924");
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(verify(RFC_SECRET, &spaced, now, None), Some(now / PERIOD));
        for bad in [
            "",
            "5924",
            "05924",
            "0005924",
            "00592a",
            "００５９２４",
            "-05924",
        ] {
            assert_eq!(verify(RFC_SECRET, bad, now, None), None, "{bad:?}");
        }
        assert_eq!(verify(b"another secret", &code, now, None), None);
    }

    #[test]
    fn verify_near_the_epoch_skips_negative_steps() {
        let code = code_at(RFC_SECRET, 0);
        assert_eq!(verify(RFC_SECRET, &code, 0, None), Some(0));
        assert_eq!(code_at(RFC_SECRET, -1), "");
    }

    #[test]
    fn base32_round_trip() {
        for _ in 0..20 {
            let secret = new_secret();
            assert_eq!(secret.len(), 20);
            let text = to_base32(&secret);
            assert_eq!(text.len(), 32);
            assert!(!text.contains('='));
            assert_eq!(from_base32(&text), Some(secret.clone()));
            // As typed by a person.
            let typed = text
                .to_ascii_lowercase()
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(from_base32(&typed), Some(secret));
        }
        // RFC 4648 §10 vectors.
        assert_eq!(to_base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(from_base32("MZXW6YTBOI======"), Some(b"foobar".to_vec()));
        assert_eq!(to_base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(from_base32(""), None);
        assert_eq!(from_base32("not base32!"), None);
        assert_eq!(from_base32("MZXW1"), None);
    }

    #[test]
    fn new_secrets_differ() {
        assert_ne!(new_secret(), new_secret());
    }

    #[test]
    fn otpauth_uri_format() {
        assert_eq!(
            otpauth_uri(RFC_SECRET, "Continuum", "alice"),
            "otpauth://totp/Continuum:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Continuum&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            otpauth_uri(RFC_SECRET, "St Mary's Clinic", "dr.jones@example.org"),
            "otpauth://totp/St%20Mary%27s%20Clinic:dr.jones%40example.org\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=St%20Mary%27s%20Clinic\
             &algorithm=SHA1&digits=6&period=30"
        );
        // A colon inside the issuer or account would split the label in the wrong place.
        let uri = otpauth_uri(RFC_SECRET, "A:B", "c:d&e=f");
        assert!(
            uri.starts_with("otpauth://totp/A%3AB:c%3Ad%26e%3Df?"),
            "{uri}"
        );
        assert_eq!(
            otpauth_uri(RFC_SECRET, "", "alice"),
            "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &algorithm=SHA1&digits=6&period=30"
        );
        // Non-ASCII is UTF-8 percent-encoded.
        assert!(otpauth_uri(RFC_SECRET, "Zürich", "zoë")
            .starts_with("otpauth://totp/Z%C3%BCrich:zo%C3%AB?"));
    }

    #[test]
    fn qr_svg_is_an_accessible_inline_svg() {
        let svg = qr_svg(&otpauth_uri(&new_secret(), "Continuum", "alice"));
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        assert!(svg.contains(r#" role="img"><title>QR code to add this account"#));
        assert_eq!(svg.matches("<title>").count(), 1);
        assert!(svg.contains("<path"));

        let too_long = qr_svg(&"x".repeat(10_000));
        assert!(too_long.starts_with("<svg") && too_long.contains("<title>"));
    }
}
