//! Keyed hashing of personal identifiers (PIPL).
//!
//! Phones are stored as HMAC-SHA256 under a lake key that lives outside the
//! lake, so the lake alone cannot be reversed by enumerating the ~1.6 billion
//! possible mobile numbers.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

use crate::phone::{find_phones, normalize_phone, NormalizedPhone};

/// The secret key that all PII hashes of one lake are computed with.
#[derive(Clone)]
pub struct LakeKey(Vec<u8>);

/// Why a lake key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LakeKeyError {
    /// The key text is not 64 hex characters (32 bytes).
    #[error("lake key must be 64 hex characters (32 bytes), got {0} characters")]
    BadLength(usize),
    /// The key text is not hexadecimal.
    #[error("lake key is not hexadecimal")]
    NotHex,
}

impl LakeKey {
    /// Parse the hex form written by `quanyu init` (surrounding blanks are ignored).
    pub fn from_hex(text: &str) -> Result<Self, LakeKeyError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(LakeKeyError::BadLength(text.len()));
        }
        hex::decode(text)
            .map(LakeKey)
            .map_err(|_| LakeKeyError::NotHex)
    }

    /// A key from raw bytes (tests and freshly generated keys).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        LakeKey(bytes.to_vec())
    }

    /// The hex form, for writing the key file.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Debug for LakeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LakeKey(<redacted>)")
    }
}

/// Hashes PII values with the lake key. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PiiHasher {
    mac: Hmac<Sha256>,
}

impl PiiHasher {
    /// A hasher for one lake.
    pub fn new(key: &LakeKey) -> Self {
        PiiHasher {
            mac: Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length"),
        }
    }

    /// Lower-case hex HMAC-SHA256 of an arbitrary value.
    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The hash of a normalized phone: the only form a phone takes in the lake.
    pub fn phone(&self, phone: &NormalizedPhone) -> String {
        self.hash(phone.digits())
    }

    /// Normalize then hash; `None` for empty, masked or invalid values.
    pub fn phone_text(&self, raw: &str) -> Option<String> {
        normalize_phone(raw).ok().map(|p| self.phone(&p))
    }

    /// A keyed hash of who a parcel goes to: the receiver's name and address
    /// as the platform shows them (masked or in clear; blanks removed), or
    /// `None` when neither carries anything beyond mask characters. Stored
    /// only as this hash, and used only to count the people behind a shared
    /// identifier, never to link records.
    pub fn receiver(&self, name: Option<&str>, address: Option<&str>) -> Option<String> {
        let clean = |s: Option<&str>| -> String {
            s.unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect()
        };
        let (name, address) = (clean(name), clean(address));
        let informative = |s: &str| s.chars().any(|c| c != '*');
        if !informative(&name) && !informative(&address) {
            return None;
        }
        Some(self.hash(&format!("receiver\u{1f}{name}\u{1f}{address}")))
    }

    /// Replace every mobile number in free text (a raw record bound for
    /// quarantine) by `[phone:<hash>]`, so it can be traced without leaking.
    /// The brackets keep the hash's digits from joining the digits around
    /// it into something that reads as a phone again.
    pub fn scrub(&self, text: &str) -> String {
        let spans = find_phones(text);
        if spans.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + spans.len() * 64);
        let mut last = 0;
        for (start, end) in spans {
            out.push_str(&text[last..start]);
            out.push_str("[phone:");
            match normalize_phone(&text[start..end]) {
                Ok(p) => out.push_str(&self.hash(p.digits())),
                Err(_) => out.push_str("unreadable"),
            }
            out.push(']');
            last = end;
        }
        out.push_str(&text[last..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([7; 32]))
    }

    #[test]
    fn hmac_sha256_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        let h = PiiHasher { mac };
        assert_eq!(
            h.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn same_phone_any_format_same_hash() {
        let h = hasher();
        assert_eq!(
            h.phone_text("+86 139-1234-5678"),
            h.phone_text("13912345678")
        );
        assert_eq!(h.phone_text("139****5678"), None);
        let other = PiiHasher::new(&LakeKey::from_bytes([8; 32]));
        assert_ne!(h.phone_text("13912345678"), other.phone_text("13912345678"));
    }

    #[test]
    fn key_hex_round_trip_and_errors() {
        let key = LakeKey::from_bytes([0xab; 32]);
        assert_eq!(LakeKey::from_hex(&key.to_hex()).unwrap().0, key.0);
        assert!(matches!(
            LakeKey::from_hex("abc"),
            Err(LakeKeyError::BadLength(3))
        ));
        assert!(matches!(
            LakeKey::from_hex(&"zz".repeat(32)),
            Err(LakeKeyError::NotHex)
        ));
        assert_eq!(format!("{key:?}"), "LakeKey(<redacted>)");
    }

    #[test]
    fn receiver_hash_ignores_blanks_and_bare_masks() {
        let h = hasher();
        let a = h.receiver(Some("林*坤"), Some("西湖区文三路**号"));
        assert!(a.is_some());
        assert_eq!(a, h.receiver(Some(" 林*坤 "), Some("西湖区 文三路**号")));
        assert_ne!(a, h.receiver(Some("林*明"), Some("西湖区文三路**号")));
        assert_eq!(h.receiver(Some("***"), Some("")), None);
        assert_eq!(h.receiver(None, None), None);
        assert!(!a.unwrap().contains('林'));
    }

    #[test]
    fn scrub_replaces_phones() {
        let h = hasher();
        let out = h.scrub(r#"{"receiver_mobile":"13912345678","tid":"3000000000001"}"#);
        assert!(!out.contains("13912345678"));
        assert!(out.contains(&format!("phone:{}", h.phone_text("13912345678").unwrap())));
        assert!(out.contains("3000000000001"));
        let tagged = format!("[phone:{}]", h.phone_text("13912340101").unwrap());
        for (written, kept) in [
            ("139 1234 0101", ""),
            ("＋86 １３９-1234-0101", "＋"),
            ("(86) 139.1234.0101", "("),
        ] {
            let out = h.scrub(&format!("tel={written};"));
            assert_eq!(out, format!("tel={kept}{tagged};"), "{written}");
        }
    }

    /// Found by the `phone` fuzz target: a hash ending in digits, joined by
    /// separators to the digits after it, read as a phone again.
    #[test]
    fn a_scrubbed_phone_does_not_join_its_neighbours_into_another() {
        let h = hasher();
        let text = "*1-17-20+7150-0)+13-0502-77310+-050";
        for seed in 0..200u8 {
            let h2 = PiiHasher::new(&crate::LakeKey::from_bytes([seed; 32]));
            let out = h2.scrub(text);
            let outside: String = out
                .split('[')
                .map(|p| p.split_once(']').map_or(p, |(_, rest)| rest))
                .collect::<Vec<_>>()
                .join("|");
            assert!(find_phones(&outside).is_empty(), "{out}");
        }
        assert!(h.scrub(text).contains("[phone:"));
    }
}
