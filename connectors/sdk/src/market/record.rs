//! What a platform's mapping makes of one record.

use quanyu_schemas::OrderRow;

/// A mapped order and its phone ciphertext, when the platform sent one
/// (for the decrypt API; never stored).
#[derive(Debug, Clone)]
pub struct MappedOrder {
    /// The canonical row.
    pub row: OrderRow,
    /// The receiver phone's ciphertext, when it came encrypted.
    pub cipher: Option<String>,
}

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The record's key (order id), when it could be read.
    pub key: Option<String>,
    /// Why.
    pub reason: String,
}

impl Rejected {
    /// The record read as the platform's `what` order object, or why not.
    pub fn parse<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, Rejected> {
        serde_json::from_str(raw).map_err(|e| Rejected {
            key: None,
            reason: format!("order is not a valid {what} order object: {e}"),
        })
    }

    /// A record without its key `field`.
    pub fn missing(field: &str) -> Rejected {
        Rejected {
            key: None,
            reason: format!("order has no {field}"),
        }
    }

    /// A rejection of the record keyed `key`.
    pub fn new(key: Option<&str>, reason: impl Into<String>) -> Self {
        Rejected {
            key: key.map(str::to_string),
            reason: reason.into(),
        }
    }
}

/// A JSON number, or a string holding one, as an integer.
pub fn int_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON number or non-empty string as text (ids sent either way).
pub fn text_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// A platform's answer `body` read as `T` (borrowing from it where `T`
/// does), or a protocol error saying which answer did not read.
pub fn read_answer<'a, T: serde::Deserialize<'a>>(
    ctx: &crate::error::RequestContext,
    body: &'a [u8],
    what: &str,
) -> Result<T, crate::error::ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ConnectorError::new(
            ctx,
            crate::error::ErrorKind::Protocol,
            format!("unreadable {what} answer: {e}"),
        )
    })
}

/// A receiver phone as a row keeps it: `(hash, mask)` of a mobile in
/// clear; the platform's own mask when it sent one; nothing for a blank,
/// a ciphertext or anything else (never stored).
pub fn phone_fields(
    text: Option<&str>,
    hasher: &quanyu_schemas::PiiHasher,
) -> (Option<String>, Option<String>) {
    let t = text.map(str::trim).unwrap_or("");
    match quanyu_schemas::normalize_phone(t) {
        _ if t.is_empty() => (None, None),
        Ok(p) => (Some(hasher.phone(&p)), Some(p.masked())),
        Err(quanyu_schemas::PhoneError::Masked) => (None, Some(t.to_string())),
        Err(_) => (None, None),
    }
}

/// A token endpoint's answer read as `T`; one that is not JSON was cut
/// off on the way and is retried (transient).
pub fn read_token_answer<T: serde::de::DeserializeOwned>(
    ctx: &crate::error::RequestContext,
    body: &[u8],
) -> Result<T, crate::error::ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ConnectorError::new(
            ctx,
            crate::error::ErrorKind::Transient,
            format!("the token answer is not a JSON object: {e}"),
        )
    })
}

/// For each `(order id, ciphertext)` of a decrypt batch, the phone of the
/// result that `matches` it, as `phone` reads it (`None` where the platform
/// returned no usable result for the item).
pub fn phones_for<R>(
    items: &[(&str, &str)],
    results: &[R],
    matches: impl Fn(&R, &str, &str) -> bool,
    phone: impl Fn(&R) -> Option<String>,
) -> Vec<Option<String>> {
    items
        .iter()
        .map(|(id, cipher)| {
            results
                .iter()
                .find(|r| matches(r, id, cipher))
                .and_then(&phone)
        })
        .collect()
}

/// The scalar values of every `"key":` in a JSON answer, read from its
/// bytes without parsing it (quotes stripped): how a platform's `attempt`
/// tells a page from an error envelope before the page's reader parses it
/// once. An object or array value is yielded as its first byte.
pub fn values_of<'a>(body: &'a [u8], key: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
    let pattern = format!("\"{key}\"");
    let ends: Vec<usize> = memchr::memmem::find_iter(body, pattern.as_bytes())
        .map(|at| at + pattern.len())
        .collect();
    ends.into_iter().filter_map(move |end| {
        let rest = &body[end..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest[colon] != b':' {
            return None;
        }
        let rest = &rest[colon + 1..];
        let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = &rest[start..];
        match rest[0] {
            b'"' => {
                let len = memchr::memchr(b'"', &rest[1..])?;
                Some(&rest[1..1 + len])
            }
            b'{' | b'[' => Some(&rest[..1]),
            _ => {
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                Some(&rest[..len])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_kept_hashed_masked_or_not_at_all() {
        let h = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([3; 32]));
        let (hash, mask) = phone_fields(Some(" 139 1234 5678 "), &h);
        assert_eq!(hash, h.phone_text("13912345678"));
        assert_eq!(mask.as_deref(), Some("139****5678"));
        assert_eq!(
            phone_fields(Some("138****0000"), &h),
            (None, Some("138****0000".into()))
        );
        for none in [
            None,
            Some(""),
            Some("  "),
            Some("$Y/YK1$AgAAAAEx$0$$"),
            Some("0755-8888"),
        ] {
            assert_eq!(phone_fields(none, &h), (None, None), "{none:?}");
        }
    }

    #[test]
    fn values_of_reads_scalars_without_parsing() {
        let body = br#"{"code": "0", "x":{"code":12,"ok":true}, "list":[{"code" :false}], "codes":1, "code":{"a":1}}"#;
        let got: Vec<&[u8]> = values_of(body, "code").collect();
        assert_eq!(got, [&b"0"[..], b"12", b"false", b"{"]);
        assert_eq!(values_of(b"{}", "code").count(), 0);
        assert_eq!(values_of(br#"{"code"#, "code").count(), 0, "cut off");
        assert_eq!(values_of(br#"{"code":"#, "code").count(), 0, "cut off");
    }

    /// Each item gets the phone of the result naming it, in any order; an
    /// item with no matching result, or a result for another ciphertext,
    /// gets none.
    #[test]
    fn phones_follow_their_items_not_the_answer_order() {
        let results = [
            ("b", "cb", "139"),
            ("a", "ca", "138"),
            ("c", "other", "137"),
        ];
        let phones = phones_for(
            &[("a", "ca"), ("b", "cb"), ("c", "cc"), ("d", "cd")],
            &results,
            |r, id, cipher| r.0 == id && r.1 == cipher,
            |r| Some(r.2.to_string()),
        );
        assert_eq!(phones, [Some("138".into()), Some("139".into()), None, None]);
    }

    /// An answer that does not read names which answer it was.
    #[test]
    fn an_unreadable_answer_says_which() {
        let ctx = crate::error::RequestContext::new("t", Some("s"), "api");
        let e = read_answer::<serde_json::Value>(&ctx, b"{", "decrypt").unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Protocol);
        assert!(e.message.starts_with("unreadable decrypt answer"), "{e}");
        assert_eq!(int_of(&serde_json::json!(" 42 ")), Some(42));
        assert_eq!(text_of(&serde_json::json!(7)), Some("7".into()));
        assert_eq!(text_of(&serde_json::json!("  ")), None);
    }
}
