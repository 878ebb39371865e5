//! FHIR date, dateTime and instant strings as ranges of microseconds since the Unix epoch (UTC).
//!
//! Owns: precision-aware parsing ("2020" covers the whole year) used for the date search index, and the
//! calendar check the validator adds to the format regex (which accepts `2021-02-30`). Does not own time
//! zones beyond the explicit offset: a dateTime without one is taken as UTC.

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

/// The inclusive range `[low, high]` a date/dateTime/instant covers at its precision, or `None` when the
/// string is not a calendar-valid FHIR date/time.
pub fn date_range(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    if b.len() == 4 {
        let low = days_from_civil(year, 1, 1) * MICROS_PER_DAY;
        return Some((low, days_from_civil(year + 1, 1, 1) * MICROS_PER_DAY - 1));
    }
    expect(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if b.len() == 7 {
        let low = days_from_civil(year, month, 1) * MICROS_PER_DAY;
        let high = low + days_in_month(year, month) * MICROS_PER_DAY - 1;
        return Some((low, high));
    }
    expect(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let day_start = days_from_civil(year, month, day) * MICROS_PER_DAY;
    if b.len() == 10 {
        return Some((day_start, day_start + MICROS_PER_DAY - 1));
    }
    expect(b, 10, b'T')?;
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b':')?;
    let minute = digits(b, 14, 2)?;
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut pos = 16;
    let mut second = 0;
    let mut frac_micros = 0;
    // Why minute precision is accepted although R4 requires seconds: it costs nothing and older data has it.
    let mut width = 60 * MICROS_PER_SEC;
    if b.get(pos) == Some(&b':') {
        second = digits(b, pos + 1, 2)?;
        if second > 60 {
            return None;
        }
        pos += 3;
        width = MICROS_PER_SEC;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            let n = pos - start;
            if n == 0 {
                return None;
            }
            let used = n.min(6);
            frac_micros = digits(b, start, used)? * 10_i64.pow((6 - used) as u32);
            width = 10_i64.pow((6 - used) as u32);
        }
    }
    let offset_secs = match b.get(pos) {
        None => 0,
        Some(b'Z') if b.len() == pos + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == pos + 6 => {
            let h = digits(b, pos + 1, 2)?;
            expect(b, pos + 3, b':')?;
            let m = digits(b, pos + 4, 2)?;
            if h > 14 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let local = day_start + (hour * 3600 + minute * 60 + second) * MICROS_PER_SEC + frac_micros;
    let low = local - offset_secs * MICROS_PER_SEC;
    Some((low, low + width - 1))
}

fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let slice = b.get(start..start + len)?;
    let mut n: i64 = 0;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn expect(b: &[u8], pos: usize, c: u8) -> Option<()> {
    (b.get(pos) == Some(&c)).then_some(())
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    // Reference points computed by hand: 2020-01-01T00:00:00Z is 1,577,836,800 s after the epoch;
    // 2020 is a leap year (366 days), so 2021-01-01 is 1,609,459,200 s.
    const Y2020: i64 = 1_577_836_800 * MICROS_PER_SEC;
    const Y2021: i64 = 1_609_459_200 * MICROS_PER_SEC;

    #[test]
    fn partial_dates_cover_their_precision() {
        assert_eq!(date_range("1970-01-01"), Some((0, MICROS_PER_DAY - 1)));
        assert_eq!(date_range("2020"), Some((Y2020, Y2021 - 1)));
        // March 2020 starts after Jan (31) + Feb (29) days and has 31 days.
        let march = Y2020 + 60 * MICROS_PER_DAY;
        assert_eq!(
            date_range("2020-03"),
            Some((march, march + 31 * MICROS_PER_DAY - 1))
        );
        let d4 = march + 3 * MICROS_PER_DAY;
        assert_eq!(
            date_range("2020-03-04"),
            Some((d4, d4 + MICROS_PER_DAY - 1))
        );
        // 10:00 at +02:00 is 08:00 UTC; second precision.
        let t = d4 + 8 * 3600 * MICROS_PER_SEC;
        assert_eq!(
            date_range("2020-03-04T10:00:00+02:00"),
            Some((t, t + MICROS_PER_SEC - 1))
        );
        assert_eq!(
            date_range("2020-03-04T08:00:00Z"),
            Some((t, t + MICROS_PER_SEC - 1))
        );
        // No zone: UTC.
        assert_eq!(
            date_range("2020-03-04T08:00:00"),
            Some((t, t + MICROS_PER_SEC - 1))
        );
        let ms = t + 250_000;
        assert_eq!(
            date_range("2020-03-04T08:00:00.25Z"),
            Some((ms, ms + 9_999))
        );
        let west = t + 5 * 3600 * MICROS_PER_SEC;
        assert_eq!(
            date_range("2020-03-04T03:00:00-05:00"),
            Some((t, t + MICROS_PER_SEC - 1))
        );
        assert_eq!(
            date_range("2020-03-04T08:00:00-05:00").map(|r| r.0),
            Some(west)
        );
    }

    #[test]
    fn invalid_dates_are_rejected() {
        for bad in [
            "2020-13",
            "2020-02-30",
            "2021-02-29",
            "2020-1-1",
            "20200",
            "2020-03-04T25:00:00Z",
            "2020-03-04T10:00:00+2",
            "abcd",
            "",
        ] {
            assert_eq!(date_range(bad), None, "{bad}");
        }
        assert!(date_range("2024-02-29").is_some());
        assert!(date_range("1900-02-29").is_none());
        assert!(date_range("2000-02-29").is_some());
    }
}
