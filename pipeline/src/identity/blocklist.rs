//! Junk identifiers that never link anything: empty and null-like values,
//! test and demo accounts, one character repeated, placeholder phones
//! (all-same, sequential, 13800138000), plus the config's values and
//! patterns.

use std::collections::HashSet;

use anyhow::{Context, Result};
use quanyu_schemas::{normalize_phone, PiiHasher};
use regex::RegexSet;

use super::config::IdentityConfig;

/// Values that are never identifiers, whatever their type (compared after
/// trimming and lower-casing, and before an `@shop` scope).
const JUNK_VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "null",
    "nil",
    "none",
    "undefined",
    "nan",
    "n/a",
    "na",
    "-",
    "--",
    "unknown",
    "default",
    "guest",
    "anonymous",
    "匿名",
    "未知",
    "无",
    "空",
    "暂无",
];

/// Patterns of test and demo accounts and filler values (whole value,
/// case-insensitive).
const JUNK_PATTERNS: &[&str] = &[
    r"(test|demo|dummy|sample|tester|测试|演示)[-_ .]?[0-9]{0,6}",
    r"(test|demo|测试)[-_ .]?(account|user|buyer|shop|账号|用户|号)[-_ .]?[0-9]{0,6}",
];

/// The blocklist of one lake: junk values, patterns and the keyed hashes of
/// placeholder phones.
pub struct Blocklist {
    values: HashSet<String>,
    /// The longest value in `values`, in bytes: longer ones skip the lookup.
    longest_value: usize,
    builtin: RegexSet,
    patterns: RegexSet,
    phone_hashes: HashSet<String>,
    phone_packed: HashSet<Vec<u8>>,
}

/// Why an identifier is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// A null-like or configured value.
    JunkValue,
    /// A test / demo / filler pattern.
    JunkPattern,
    /// A placeholder or configured phone number.
    PlaceholderPhone,
}

impl BlockReason {
    /// The reason as written to `identity_map` and `identity_audit`.
    pub fn text(self) -> &'static str {
        match self {
            BlockReason::JunkValue => "blocklisted value",
            BlockReason::JunkPattern => "matches a test/demo/filler pattern",
            BlockReason::PlaceholderPhone => "placeholder phone number",
        }
    }
}

impl Blocklist {
    /// The default list plus the config's values and patterns, phones
    /// hashed with `hasher`.
    pub fn new(hasher: &PiiHasher, cfg: &IdentityConfig) -> Result<Self> {
        let mut values: HashSet<String> = JUNK_VALUES.iter().map(|s| s.to_string()).collect();
        let mut phone_hashes: HashSet<String> = placeholder_phones()
            .map(|p| hasher.phone_text(&p).expect("valid form"))
            .collect();
        for e in &cfg.blocklist {
            match normalize_phone(e) {
                Ok(p) => {
                    phone_hashes.insert(hasher.phone(&p));
                }
                Err(_) => {
                    values.insert(e.trim().to_lowercase());
                }
            }
        }
        let anchored = |p: &str| format!("(?i)^(?:{p})$");
        let builtin = RegexSet::new(JUNK_PATTERNS.iter().map(|p| anchored(p)))
            .expect("the built-in patterns compile");
        let patterns = RegexSet::new(cfg.blocklist_patterns.iter().map(|p| anchored(p)))
            .context("identity.blocklist_patterns")?;
        let longest_value = values.iter().map(String::len).max().unwrap_or(0);
        let phone_packed = phone_hashes
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .collect();
        Ok(Blocklist {
            values,
            longest_value,
            builtin,
            patterns,
            phone_hashes,
            phone_packed,
        })
    }

    /// Why a phone hash given as its 32 raw bytes is blocked, if it is.
    pub fn placeholder_packed(&self, raw: &[u8]) -> Option<BlockReason> {
        self.phone_packed
            .contains(raw)
            .then_some(BlockReason::PlaceholderPhone)
    }

    /// Why `value` of `id_type` is blocked, if it is.
    pub fn reason(&self, id_type: &str, value: &str) -> Option<BlockReason> {
        if id_type == "phone_hash" {
            return self
                .phone_hashes
                .contains(value)
                .then_some(BlockReason::PlaceholderPhone);
        }
        let base = base_value(id_type, value).trim();
        // Junk values are short; most identifiers skip the lookup.
        if (base.len() <= self.longest_value && self.values.contains(&base.to_lowercase()))
            || one_char_repeated(base)
        {
            return Some(BlockReason::JunkValue);
        }
        // The built-in patterns all start with t, d, s, 测 or 演.
        let first = base.chars().next().map(|c| c.to_ascii_lowercase());
        let builtin =
            matches!(first, Some('t' | 'd' | 's' | '测' | '演')) && self.builtin.is_match(base);
        (builtin || self.patterns.is_match(base)).then_some(BlockReason::JunkPattern)
    }
}

/// The part of a value that carries the identity: an order without its
/// `channel:` prefix, a scoped id without its `@shop`.
pub fn base_value<'a>(id_type: &str, value: &'a str) -> &'a str {
    if id_type == "order" {
        return value.split_once(':').map_or(value, |(_, rest)| rest);
    }
    match value.rsplit_once('@') {
        Some((base, _)) if id_type.ends_with("_buyer") => base,
        _ => value,
    }
}

/// Every placeholder mobile number in mainland form: ten same digits after
/// the `1`, or a `1[3-9]x` prefix followed by eight same digits or eight
/// digits counting up or down (`13812345678`, `13987654321`), and
/// `13800138000`.
pub fn placeholder_phones() -> impl Iterator<Item = String> {
    let mut out = vec!["13800138000".to_string()];
    for d in 0..10u8 {
        out.push(format!(
            "1{}",
            std::iter::repeat_n((b'0' + d) as char, 10).collect::<String>()
        ));
    }
    let mut tails = Vec::new();
    for start in 0..10u8 {
        let same: String = std::iter::repeat_n((b'0' + start) as char, 8).collect();
        let up: String = (0..8).map(|i| (b'0' + (start + i) % 10) as char).collect();
        let down: String = (0..8)
            .map(|i| (b'0' + (start + 10 - i) % 10) as char)
            .collect();
        tails.extend([same, up, down]);
    }
    for second in 3..=9u8 {
        for third in 0..=9u8 {
            for t in &tails {
                out.push(format!("1{second}{third}{t}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out.into_iter().filter(|p| {
        normalize_phone(p)
            .map(|n| n.is_placeholder())
            .unwrap_or(false)
    })
}

/// `0000`, `xxx`, `———`: one character three or more times (case aside).
fn one_char_repeated(s: &str) -> bool {
    let mut chars = s.chars().map(|c| c.to_ascii_lowercase());
    match chars.next() {
        Some(first) => s.chars().count() >= 3 && chars.all(|c| c == first),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn list(extra: &[&str], patterns: &[&str]) -> (PiiHasher, Blocklist) {
        let h = PiiHasher::new(&LakeKey::from_bytes([9; 32]));
        let cfg = IdentityConfig {
            blocklist: extra.iter().map(|s| s.to_string()).collect(),
            blocklist_patterns: patterns.iter().map(|s| s.to_string()).collect(),
            ..IdentityConfig::default()
        };
        let b = Blocklist::new(&h, &cfg).unwrap();
        (h, b)
    }

    #[test]
    fn junk_values_test_accounts_and_patterns() {
        let (_, b) = list(&["VIP-STAFF"], &["vip9999[0-9]+"]);
        for (t, v) in [
            ("unionid", "null"),
            ("unionid", " NULL "),
            ("unionid", ""),
            ("taobao_buyer", "test@tmall-flagship"),
            ("jushuitan_buyer", "TEST_ACCOUNT@jst"),
            ("crm_member", "测试账号"),
            ("crm_member", "demo01"),
            ("crm_member", "0000"),
            ("crm_member", "vip-staff"),
            ("crm_member", "VIP999912"),
            ("order", "taobao:0"),
        ] {
            assert!(b.reason(t, v).is_some(), "{t}:{v} should be blocked");
        }
        for (t, v) in [
            ("taobao_buyer", "f19a3c0b77aa@tmall-flagship"),
            ("crm_member", "VIP000123"),
            ("unionid", "oUn0000001a2b3c4d5e6f7a8b"),
            ("order", "taobao:3100000000000123"),
            ("wecom_external_userid", "wmTestimonial0001"),
        ] {
            assert_eq!(b.reason(t, v), None, "{t}:{v} is a real identifier");
        }
    }

    #[test]
    fn placeholder_phones_are_blocked_by_hash() {
        let (h, b) = list(&["13912340000"], &[]);
        for junk in [
            "13333333333",
            "18800000000",
            "13800138000",
            "13812345678",
            "13987654321",
            "15011111111",
            "13912340000",
            "17756789012",
        ] {
            let hash = h.phone_text(junk).unwrap();
            assert_eq!(
                b.reason("phone_hash", &hash),
                Some(BlockReason::PlaceholderPhone),
                "{junk}"
            );
        }
        for real in ["13912345679", "18612345977", "13800138001"] {
            assert_eq!(
                b.reason("phone_hash", &h.phone_text(real).unwrap()),
                None,
                "{real}"
            );
        }
        assert!(placeholder_phones().count() > 1000);
    }
}
