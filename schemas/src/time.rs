//! Platform times are Beijing time (UTC+8, no daylight saving since 1991);
//! the lake stores UTC. These helpers parse every form the platforms use.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The Asia/Shanghai offset, fixed at +08:00 for all dates quanyu handles.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Why a time or amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable value {value:?}: expected {expected}")]
pub struct ParseError {
    /// The offending text (times and amounts are not PII), cut to 40 characters.
    pub value: String,
    /// What form was expected.
    pub expected: &'static str,
}

/// Parse Beijing wall-clock text: `yyyy-MM-dd HH:mm:ss`, with `T` or `/`
/// variants, optional fractional seconds, or a bare date (midnight).
pub fn parse_beijing(text: &str) -> Result<DateTime<Utc>, ParseError> {
    let t = text.trim();
    // The platforms' own shape, read without a format string (most
    // records' times are this).
    if let Some(naive) = plain_datetime(t) {
        return Ok(from_beijing_naive(naive));
    }
    const FORMATS: [&str; 6] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M",
    ];
    for f in FORMATS {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(from_beijing_naive(naive));
        }
    }
    for f in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return Ok(from_beijing_naive(
                d.and_hms_opt(0, 0, 0).expect("midnight"),
            ));
        }
    }
    Err(ParseError {
        value: t.chars().take(40).collect(),
        expected: "Beijing time yyyy-MM-dd HH:mm:ss",
    })
}

/// `yyyy-MM-dd HH:mm:ss` exactly, read digit by digit; `None` for any
/// other shape or an impossible date or time (the formats decide then).
fn plain_datetime(t: &str) -> Option<NaiveDateTime> {
    let b = t.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?.and_hms_opt(
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    )
}

/// Beijing wall-clock time to UTC.
pub fn from_beijing_naive(naive: NaiveDateTime) -> DateTime<Utc> {
    beijing()
        .from_local_datetime(&naive)
        .single()
        .expect("a fixed offset is never ambiguous")
        .with_timezone(&Utc)
}

/// UTC to Beijing wall-clock text `yyyy-MM-dd HH:mm:ss`, as platforms expect
/// in request parameters.
pub fn format_beijing(t: DateTime<Utc>) -> String {
    t.with_timezone(&beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Unix seconds to UTC.
pub fn from_unix_seconds(secs: i64) -> Result<DateTime<Utc>, ParseError> {
    DateTime::from_timestamp(secs, 0).ok_or(ParseError {
        value: secs.to_string(),
        expected: "unix seconds",
    })
}

/// Unix milliseconds to UTC.
pub fn from_unix_millis(ms: i64) -> Result<DateTime<Utc>, ParseError> {
    DateTime::from_timestamp_millis(ms).ok_or(ParseError {
        value: ms.to_string(),
        expected: "unix milliseconds",
    })
}

/// A yuan amount as text or number (`"188.00"`, `188`, `"0.5"`) to integer
/// fen, exactly: no floating point is involved for text input.
pub fn yuan_to_fen(text: &str) -> Result<i64, ParseError> {
    let t = text.trim();
    let bad = || ParseError {
        value: t.chars().take(40).collect(),
        expected: "a yuan amount with at most two decimals",
    };
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 2 {
        return Err(bad());
    }
    let int_val: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut frac_val: i64 = 0;
    for (i, b) in frac_trimmed.bytes().enumerate() {
        frac_val += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    let fen = int_val
        .checked_mul(100)
        .and_then(|v| v.checked_add(frac_val))
        .ok_or_else(bad)?;
    Ok(if neg { -fen } else { fen })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_text_is_eight_hours_ahead() {
        let t = parse_beijing("2024-01-01 08:00:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-01T00:00:00+00:00");
        assert_eq!(parse_beijing("2024/01/01 08:00:00").unwrap(), t);
        assert_eq!(parse_beijing("2024-01-01T08:00:00").unwrap(), t);
        assert_eq!(parse_beijing("2024-01-01 08:00").unwrap(), t);
        assert_eq!(
            parse_beijing("2024-01-01").unwrap().to_rfc3339(),
            "2023-12-31T16:00:00+00:00"
        );
        assert_eq!(format_beijing(t), "2024-01-01 08:00:00");
        assert!(parse_beijing("yesterday").is_err());
        assert!(parse_beijing("2024-13-01 00:00:00").is_err());
        // The plain shape read digit by digit agrees with the formats.
        assert!(parse_beijing("2024-02-30 08:00:00").is_err());
        assert!(parse_beijing("2024-01-01 24:00:00").is_err());
        assert!(parse_beijing("2024-0a-01 08:00:00").is_err());
        assert_eq!(
            parse_beijing("2024-02-29 23:59:59").unwrap().to_rfc3339(),
            "2024-02-29T15:59:59+00:00"
        );
    }

    #[test]
    fn unix_times() {
        assert_eq!(
            from_unix_seconds(1704067200).unwrap().to_rfc3339(),
            "2024-01-01T00:00:00+00:00"
        );
        assert_eq!(
            from_unix_millis(1704067200123)
                .unwrap()
                .timestamp_subsec_millis(),
            123
        );
        assert!(from_unix_seconds(i64::MAX).is_err());
    }

    #[test]
    fn yuan_is_exact() {
        assert_eq!(yuan_to_fen("188.00").unwrap(), 18800);
        assert_eq!(yuan_to_fen("0.1").unwrap(), 10);
        assert_eq!(yuan_to_fen("19.99").unwrap(), 1999);
        assert_eq!(yuan_to_fen("7").unwrap(), 700);
        assert_eq!(yuan_to_fen(".5").unwrap(), 50);
        assert_eq!(yuan_to_fen("-3.20").unwrap(), -320);
        assert_eq!(yuan_to_fen("1.230").unwrap(), 123);
        assert!(yuan_to_fen("1.234").is_err());
        assert!(yuan_to_fen("abc").is_err());
        assert!(yuan_to_fen("").is_err());
        assert!(yuan_to_fen("1e5").is_err());
        assert!(yuan_to_fen("99999999999999999999").is_err());
    }
}
