//! Mainland-China mobile number normalization.
//!
//! Platforms and exports write the same number many ways: `+86 138-0013-8000`,
//! `0086 13800138000`, `(86)13800138000`. We strip the country prefix and the
//! separators, then accept only an 11-digit mobile number `1[3-9]xxxxxxxxx`.
//! Masked values (`138****8000`) are recognised and never normalized: they
//! must not be hashed or used to join.

use std::fmt;

/// A validated 11-digit mainland mobile number. Its `Debug` form is masked so
/// that it cannot leak through logs by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedPhone(String);

impl NormalizedPhone {
    /// The 11 digits. Hash them before they leave the process.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The usual masked form, `138****8000`.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }

    /// True for numbers that are valid in form but are placeholders in
    /// practice: ten identical digits after the leading `1` (`13333333333`),
    /// eight identical trailing digits (`13800000000`), eight trailing
    /// digits counting up or down (`13812345678`, `13987654321`, wrapping
    /// past 9), or the well-known carrier service number `13800138000` that
    /// forms use as a dummy. Identity keeps these out of stitching.
    pub fn is_placeholder(&self) -> bool {
        let d = self.0.as_bytes();
        let tail = &d[3..];
        let step = |s: u8| {
            tail.windows(2)
                .all(|w| (w[0] - b'0' + s) % 10 == w[1] - b'0')
        };
        d[1..].iter().all(|&c| c == d[1])
            || step(0)
            || step(1)
            || step(9)
            || self.0 == "13800138000"
    }
}

impl fmt::Debug for NormalizedPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NormalizedPhone({})", self.masked())
    }
}

/// Why a value is not a usable mobile number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing but blanks or separators.
    #[error("phone is empty")]
    Empty,
    /// A masked value such as `138****8000`: kept as masked text only.
    #[error("phone is masked")]
    Masked,
    /// Not a mainland mobile number after normalization. The value itself is
    /// deliberately not part of the message.
    #[error("phone is not a mainland mobile number ({digits} digits)")]
    Invalid {
        /// How many digits were left after stripping prefixes and separators.
        digits: usize,
    },
}

/// The most separators that may stand between two digit groups of one
/// written number (`(+86) 139`: `) ` is two).
const MAX_SEPARATOR_RUN: usize = 3;

/// Normalize a phone number: strip blanks and separators (` -.()`), a leading
/// `+86`, `0086` or `86` country prefix, then require `1[3-9]` followed by nine
/// more digits.
pub fn normalize_phone(raw: &str) -> Result<NormalizedPhone, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.contains('*') {
        return Err(PhoneError::Masked);
    }
    let mut digits = String::with_capacity(16);
    // Separators since the last digit: more than three between two digits
    // is not one written number (and `find_phones` would not join them).
    let mut gap = 0;
    for c in trimmed.chars() {
        // Full-width digits and separators appear in hand-typed CRM exports.
        if let Some(d) = digit(c) {
            if gap > MAX_SEPARATOR_RUN && !digits.is_empty() {
                return Err(PhoneError::Invalid {
                    digits: digits.len(),
                });
            }
            digits.push(d);
            gap = 0;
        } else if is_separator(c) {
            gap += 1;
        } else {
            return Err(PhoneError::Invalid {
                digits: digits.len(),
            });
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    let national = if digits.len() == 15 && digits.starts_with("0086") {
        &digits[4..]
    } else if digits.len() == 13 && digits.starts_with("86") {
        &digits[2..]
    } else {
        &digits[..]
    };
    let b = national.as_bytes();
    if b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
        Ok(NormalizedPhone(national.to_string()))
    } else {
        Err(PhoneError::Invalid { digits: b.len() })
    }
}

/// The spans (byte ranges) of `text` that hold a mobile number in any form
/// [`normalize_phone`] accepts: plain, grouped by spaces, dashes, dots or
/// brackets (`139 1234 0101`, `139-1234-0101`, `(+86) 139.1234.0101`),
/// full-width (`１３９１２３４０１０１`, `＋86`), with a `86` or `0086`
/// prefix. Used to scrub free text such as quarantined raw records.
/// Numbers are matched on whole digit groups, so a longer id that
/// contains eleven digits (an order id) is not a phone.
pub fn find_phones(text: &str) -> Vec<(usize, usize)> {
    // Digit groups: (start, end, digits), with whether the gap before the
    // next group is a separator run short enough to join them.
    let mut groups: Vec<(usize, usize, String)> = Vec::new();
    let mut joins: Vec<bool> = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut gap = 0usize; // separator characters since the last group
    let mut gap_ok = false;
    while let Some((at, c)) = chars.next() {
        if let Some(d) = digit(c) {
            let mut digits = String::from(d);
            let mut end = at + c.len_utf8();
            while let Some(&(i, c)) = chars.peek() {
                match digit(c) {
                    Some(d) => {
                        digits.push(d);
                        end = i + c.len_utf8();
                        chars.next();
                    }
                    None => break,
                }
            }
            if !groups.is_empty() {
                joins.push(gap_ok && gap <= MAX_SEPARATOR_RUN);
            }
            groups.push((at, end, digits));
            gap = 0;
            gap_ok = true;
        } else if is_separator(c) {
            gap += 1;
        } else {
            gap_ok = false;
        }
    }
    let mut spans = Vec::new();
    let mut i = 0;
    while i < groups.len() {
        let mut digits = String::new();
        let mut found = None;
        for j in i..groups.len() {
            if j > i && !joins[j - 1] {
                break;
            }
            digits.push_str(&groups[j].2);
            let candidate = match digits.len() {
                11 => Some(&digits[..]),
                13 if digits.starts_with("86") => Some(&digits[2..]),
                15 if digits.starts_with("0086") => Some(&digits[4..]),
                n if n > 15 => break,
                _ => None,
            };
            if candidate.is_some_and(|c| normalize_phone(c).is_ok()) {
                found = Some(j);
                break;
            }
        }
        match found {
            Some(j) => {
                spans.push((groups[i].0, groups[j].1));
                i = j + 1;
            }
            None => i += 1,
        }
    }
    spans
}

/// An ASCII or full-width digit, as ASCII.
fn digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '０'..='９' => char::from_u32('0' as u32 + (c as u32 - '０' as u32)),
        _ => None,
    }
}

/// What may stand between the digit groups of one written phone number.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-'
            | '.'
            | '('
            | ')'
            | '+'
            | '\u{3000}'
            | '\t'
            | '－'
            | '＋'
            | '（'
            | '）'
            | '．'
            | '\u{a0}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `phone` fuzz target: digits scattered over long runs of
    /// separators normalized to a phone that `find_phones` (and so scrubbing)
    /// did not see. Whatever normalizes is found.
    #[test]
    fn what_normalizes_is_what_scrubbing_finds() {
        let scattered = format!(".15 -+73)7{}0.15 -+73)7", "\t".repeat(33));
        assert!(normalize_phone(&scattered).is_err());
        assert!(find_phones(&scattered).is_empty());
        for raw in ["139 1234 0101", "(+86) 139.1234.0101", "139 - 1234 - 0101"] {
            assert!(normalize_phone(raw).is_ok(), "{raw}");
            assert_eq!(find_phones(raw).len(), 1, "{raw}");
        }
        assert!(normalize_phone("139    1234 0101").is_err());
    }

    #[test]
    fn strips_prefixes_and_separators() {
        for raw in [
            "13800138000",
            "+86 138-0013-8000",
            "0086 13800138000",
            "86-13800138000",
            "(+86) 138.0013.8000",
            " 138 0013 8000 ",
            "１３８００１３８０００",
        ] {
            assert_eq!(
                normalize_phone(raw).unwrap().digits(),
                "13800138000",
                "{raw}"
            );
        }
    }

    #[test]
    fn rejects_non_mobiles() {
        assert_eq!(normalize_phone(""), Err(PhoneError::Empty));
        assert_eq!(normalize_phone(" - "), Err(PhoneError::Empty));
        assert_eq!(normalize_phone("138****8000"), Err(PhoneError::Masked));
        assert_eq!(normalize_phone("1*********5"), Err(PhoneError::Masked));
        for raw in [
            "010-88886666",
            "12800138000",
            "1380013800",
            "138001380001",
            "null",
        ] {
            let invalid = matches!(normalize_phone(raw), Err(PhoneError::Invalid { .. }));
            assert!(invalid, "{raw}");
        }
    }

    #[test]
    fn error_messages_do_not_contain_the_number() {
        let err = normalize_phone("1280013800x").unwrap_err().to_string();
        assert!(!err.contains("128001"), "{err}");
    }

    #[test]
    fn debug_is_masked() {
        let p = normalize_phone("13912345678").unwrap();
        assert_eq!(format!("{p:?}"), "NormalizedPhone(139****5678)");
        assert_eq!(p.masked(), "139****5678");
    }

    #[test]
    fn placeholders() {
        for junk in [
            "13333333333",
            "18888888888",
            "13800000000",
            "13800138000",
            "15555555555",
            "13812345678",
            "13987654321",
            "17756789012",
        ] {
            assert!(normalize_phone(junk).unwrap().is_placeholder(), "{junk}");
        }
        for real in ["13912345679", "13800138001", "18612345977"] {
            assert!(!normalize_phone(real).unwrap().is_placeholder(), "{real}");
        }
    }

    #[test]
    fn finds_phones_in_every_written_form() {
        for written in [
            "13912340101",
            "139 1234 0101",
            "139-1234-0101",
            "139.1234.0101",
            "(+86) 139.1234.0101",
            "+86 139 1234 0101",
            "＋86 139 1234 0101",
            "0086-13912340101",
            "8613912340101",
            "１３９１２３４０１０１",
            "１３９－１２３４－０１０１",
            "139\u{3000}1234\u{3000}0101",
        ] {
            let text = format!(r#"{{"tel":"{written}","n":2}}"#);
            let spans = find_phones(&text);
            assert_eq!(spans.len(), 1, "{written}");
            let found = &text[spans[0].0..spans[0].1];
            assert_eq!(
                normalize_phone(found).unwrap().digits(),
                "13912340101",
                "{written}: {found}"
            );
            assert!(written.ends_with(found), "{written}: {found}");
        }
        // Not phones: order ids, a phone's digits inside a longer id, two
        // numbers apart, landlines.
        for text in [
            "3100000000001",
            "tid 313912340101",
            "010-88886666",
            "13912340101999",
            "1391234 and then 0101",
        ] {
            assert!(find_phones(text).is_empty(), "{text}");
        }
        // Beside other numbers.
        let text = "order 3100000000001 13912340101, 2 items, 18612345977";
        assert_eq!(find_phones(text).len(), 2);
    }

    #[test]
    fn finds_phones_in_text() {
        let text = r#"{"mobile":"13912345678","tid":"1234567890123","x":"8613912345678"}"#;
        let spans = find_phones(text);
        assert_eq!(spans.len(), 2);
        assert_eq!(&text[spans[0].0..spans[0].1], "13912345678");
    }
}
