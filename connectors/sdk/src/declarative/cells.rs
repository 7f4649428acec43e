//! Cell parsers for Chinese business exports: dates in every common shape
//! (`2024-03-18 10:00`, `2024/3/18`, `2024年3月18日 10时05分`, unix seconds or
//! milliseconds, Excel serials), yuan → fen, durations (`1分23秒`,
//! `00:01:23`), integers and phones.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use quanyu_schemas::time::yuan_to_fen;

/// Beijing time as a fixed offset (China has no DST).
fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// A cell as an error may quote it: escaped (no control bytes reach a
/// terminal) and cut to 40 characters (a 10 MB cell of binary garbage is
/// not repeated whole).
pub fn quoted(cell: &str) -> String {
    const MAX: usize = 40;
    match cell.char_indices().nth(MAX) {
        None => format!("{cell:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &cell[..cut], cell.chars().count()),
    }
}

const DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H:%M:%S",
    "%Y年%m月%d日 %H时%M分%S秒",
    "%Y年%m月%d日 %H时%M分",
    "%Y%m%d %H:%M:%S",
    "%Y%m%d%H%M%S",
];

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d"];

/// Parse a Beijing-time cell into UTC. Date-only values mean midnight.
pub fn parse_datetime(cell: &str) -> Result<DateTime<Utc>, String> {
    let s = cell.trim();
    if s.is_empty() {
        return Err("empty date".into());
    }
    // Unix seconds (10 digits) or milliseconds (13 digits).
    if s.bytes().all(|b| b.is_ascii_digit()) && (s.len() == 10 || s.len() == 13) {
        let n: i64 = s
            .parse()
            .map_err(|_| format!("bad timestamp {}", quoted(s)))?;
        let t = if s.len() == 13 {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        };
        return t.ok_or_else(|| format!("timestamp out of range {}", quoted(s)));
    }
    // An Excel date serial in an unstyled cell (`46327`, `46327.5`): five
    // digits of days (1927 to 2173), an optional fraction of a day.
    if let Some((days, frac)) = s.split_once('.').or(Some((s, "0"))) {
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if days.len() == 5 && digits(days) && digits(frac) {
            let serial: f64 = s
                .parse()
                .map_err(|_| format!("bad date serial {}", quoted(s)))?;
            return excel_serial(serial);
        }
    }
    // An offset given explicitly (RFC 3339, or a database's `+08`) wins.
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Ok(t.with_timezone(&Utc));
    }
    let local = DATETIME_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            DATE_FORMATS
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| format!("unrecognized date/time {}", quoted(s)))?;
    beijing()
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("invalid local time {}", quoted(s)))
}

/// An Excel date serial (days since 1899-12-30, fraction = time of day), in
/// Beijing time, to UTC.
pub fn excel_serial(days: f64) -> Result<DateTime<Utc>, String> {
    if !(1.0..=2_958_465.0).contains(&days) {
        return Err(format!("date serial {days} out of range"));
    }
    let base = NaiveDate::from_ymd_opt(1899, 12, 30)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("valid epoch");
    let secs = (days * 86_400.0).round() as i64;
    let local = base + Duration::seconds(secs);
    beijing()
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| "invalid local time".into())
}

/// Full-width ASCII (`１２．５０`, typed with a Chinese input method) as
/// ASCII; other characters unchanged.
fn half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Yuan text (`188`, `188.5`, `¥1,288.00`, `188元`, full-width digits) to
/// fen, exactly.
pub fn parse_yuan(cell: &str) -> Result<i64, String> {
    let cleaned: String = cell
        .trim()
        .trim_start_matches(['¥', '￥'])
        .trim_end_matches('元')
        .chars()
        .map(half_width)
        .filter(|c| *c != ',' && !c.is_whitespace())
        .collect();
    yuan_to_fen(&cleaned).map_err(|e| format!("amount {}: {e}", quoted(cell)))
}

/// An integer cell (`12`, `12.0` from spreadsheets, full-width digits).
pub fn parse_int(cell: &str) -> Result<i64, String> {
    let s: String = cell.trim().chars().map(half_width).collect();
    let s = s.as_str();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    match s.strip_suffix(".0").map(str::parse::<i64>) {
        Some(Ok(n)) => Ok(n),
        _ => Err(format!("not an integer {}", quoted(s))),
    }
}

/// A duration in seconds: `83`, `83秒`, `1分23秒`, `1小时2分3秒`, `01:23`,
/// `00:01:23`.
pub fn parse_duration(cell: &str) -> Result<i64, String> {
    let s = cell.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let bad = || format!("bad duration {}", quoted(s));
    // A call or visit lasts less than a year; more is a broken cell, and
    // sums that overflow must not wrap to a small number.
    const MAX_SECS: i64 = 366 * 86_400;
    let checked = |secs: Option<i64>| match secs {
        Some(n) if (0..=MAX_SECS).contains(&n) => Ok(n),
        _ => Err(format!(
            "duration {} is negative or longer than a year",
            quoted(s)
        )),
    };
    if let Ok(n) = parse_int(s) {
        return checked(Some(n));
    }
    if s.contains(':') {
        let parts: Vec<i64> = s
            .split(':')
            .map(|p| p.trim().parse::<i64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if parts.iter().any(|p| *p < 0) {
            return Err(bad());
        }
        let secs = match parts.as_slice() {
            [m, sec] => m.checked_mul(60).and_then(|m| m.checked_add(*sec)),
            [h, m, sec] => h
                .checked_mul(3600)
                .and_then(|h| m.checked_mul(60).and_then(|m| h.checked_add(m)))
                .and_then(|hm| hm.checked_add(*sec)),
            _ => return Err(bad()),
        };
        return checked(secs);
    }
    let mut total = Some(0i64);
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            '时' | '小' => 3600,
            '分' => 60,
            '秒' => 1,
            '钟' => continue,
            _ => return Err(bad()),
        };
        if c == '小' {
            continue; // 小时: the unit is read at 时
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        total = total.and_then(|t| n.checked_mul(unit).and_then(|x| t.checked_add(x)));
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    checked(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_dates_in_every_shape() {
        let want = "2024-03-18T02:05:00+00:00";
        for s in [
            "2024-03-18 10:05:00",
            "2024-03-18 10:05",
            "2024/3/18 10:05",
            "2024年3月18日 10:05",
            "2024年03月18日 10时05分",
            "2024.03.18 10:05:00",
        ] {
            assert_eq!(parse_datetime(s).unwrap().to_rfc3339(), want, "{s}");
        }
        assert_eq!(
            parse_datetime("2024年3月18日").unwrap().to_rfc3339(),
            "2024-03-17T16:00:00+00:00"
        );
        assert_eq!(parse_datetime("1710727500").unwrap().to_rfc3339(), want);
        assert_eq!(
            parse_datetime("2024-03-18 10:05:00+08")
                .unwrap()
                .to_rfc3339(),
            want
        );
        assert_eq!(
            parse_datetime("2024-03-18 02:05:00.000000+00:00")
                .unwrap()
                .to_rfc3339(),
            want
        );
        assert_eq!(
            parse_datetime("2024-03-18 10:05:00.000")
                .unwrap()
                .to_rfc3339(),
            want
        );
        assert_eq!(parse_datetime("1710727500000").unwrap().to_rfc3339(), want);
        assert!(parse_datetime("18/03/2024").is_err());
        assert!(parse_datetime("").is_err());
        assert_eq!(excel_serial(45369.4201388889).unwrap().to_rfc3339(), want);
        // Unstyled serials, as an XLSX reader hands them over.
        assert_eq!(
            parse_datetime("45369.4201388889").unwrap().to_rfc3339(),
            want
        );
        assert_eq!(
            parse_datetime("46327").unwrap(),
            excel_serial(46327.0).unwrap()
        );
        assert_eq!(
            parse_datetime("46327.5").unwrap() - parse_datetime("46327").unwrap(),
            Duration::hours(12)
        );
        assert!(parse_datetime("2024").is_err());
    }

    #[test]
    fn money_ints_and_durations() {
        assert_eq!(parse_yuan("¥1,288.50").unwrap(), 128_850);
        assert_eq!(parse_yuan("0.3元").unwrap(), 30);
        assert!(parse_yuan("abc").is_err());
        assert_eq!(parse_int("12.0").unwrap(), 12);
        assert!(parse_int("1.5").is_err());
        assert_eq!(parse_duration("83").unwrap(), 83);
        assert_eq!(parse_duration("83秒").unwrap(), 83);
        assert_eq!(parse_duration("1分23秒").unwrap(), 83);
        assert_eq!(parse_duration("1小时2分3秒").unwrap(), 3723);
        assert_eq!(parse_duration("01:23").unwrap(), 83);
        assert_eq!(parse_duration("00:01:23").unwrap(), 83);
        assert!(parse_duration("1分钟多").is_err());
        // Overflow and nonsense are errors, never a wrapped small number.
        for bad in [
            "9223372036854775807:59",
            "3074457345618258602:00:00",
            "99999999999999小时",
            "-5",
            "00:-1:00",
            "400天",
            "9000:00:00",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("100:00:00").unwrap(), 360_000);
    }

    #[test]
    fn errors_quote_a_cell_escaped_and_short() {
        let garbage: String = "\u{1b}[2J\u{0}".repeat(5_000);
        for err in [
            parse_int(&garbage).unwrap_err(),
            parse_datetime(&garbage).unwrap_err(),
            parse_duration(&garbage).unwrap_err(),
            parse_yuan(&garbage).unwrap_err(),
        ] {
            assert!(err.len() < 600, "{} bytes", err.len());
            assert!(!err.contains('\u{1b}') && !err.contains('\u{0}'), "{err}");
        }
    }

    #[test]
    fn full_width_digits_read_as_numbers() {
        assert_eq!(parse_yuan("１２．５０").unwrap(), 1250);
        assert_eq!(parse_yuan("￥１，２８８元").unwrap(), 128_800);
        assert_eq!(parse_int("６５").unwrap(), 65);
        assert_eq!(parse_duration("６５").unwrap(), 65);
        assert!(parse_yuan("１２．５０５").is_err());
    }
}
