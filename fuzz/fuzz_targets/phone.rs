//! The phone normalizer and the scrubber that must find every phone it
//! accepts: any text that normalizes to a mobile number is found by
//! `find_phones`, and after `scrub` no phone-like number is left outside
//! the `[phone:<hash>]` tokens.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quanyu_schemas::phone::{find_phones, normalize_phone};
use quanyu_schemas::{LakeKey, PiiHasher};

/// `text` with every `[phone:…]` token replaced by `|`.
fn outside_tokens(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("[phone:") {
        out.push_str(&rest[..at]);
        out.push('|');
        rest = rest[at..].split_once(']').map_or("", |(_, r)| r);
    }
    out.push_str(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("[phone:") {
        return;
    }
    let spans = find_phones(text);
    for &(start, end) in &spans {
        assert!(
            start <= end
                && end <= text.len()
                && text.is_char_boundary(start)
                && text.is_char_boundary(end)
        );
    }
    if normalize_phone(text).is_ok() {
        assert!(
            !spans.is_empty(),
            "{text:?} normalizes to a phone that find_phones misses"
        );
    }
    let hasher = PiiHasher::new(&LakeKey::from_bytes([7; 32]));
    let scrubbed = hasher.scrub(text);
    let left = outside_tokens(&scrubbed);
    assert!(
        find_phones(&left).is_empty(),
        "{text:?} → {scrubbed:?} still holds a phone"
    );
});
