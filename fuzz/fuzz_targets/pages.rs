//! Every platform's answer parsing: the envelope check (error codes,
//! throttling, token expiry) and the record mapping (orders with their
//! lines, and refunds) and the kit's list reader, on arbitrary bytes. The first byte picks the
//! platform and, for the marketplaces, orders or refunds. A rejection's reason never holds a
//! phone that was in the record.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quanyu_connector_sdk::market::ListAnswer;
use quanyu_connector_sdk::RequestContext;
use quanyu_schemas::phone::find_phones;
use quanyu_schemas::{LakeKey, PiiHasher};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let hasher = PiiHasher::new(&LakeKey::from_bytes([7; 32]));
    let text = String::from_utf8_lossy(body);
    let ctx = RequestContext::new("fuzz", Some("shop"), "api");
    // The kit's list reader: whatever the bytes, a page or a clear error.
    let answer = ListAnswer::records("r.page.list")
        .total("r.total")
        .next_until("r.page.cursor", "nomore");
    let _ = answer.read(&ctx, body, |raw| Ok(raw.len()));
    if which >= 128 {
        // A marketplace's refund or after-sale record.
        let refund = match which % 8 {
            0 => quanyu_taobao::MAPPING.refund(&text, "shop"),
            1 => quanyu_jd::MAPPING.refund(&text, "shop"),
            2 => quanyu_pdd::MAPPING.refund(&text, "shop"),
            3 => quanyu_douyin::MAPPING.refund(&text, "shop"),
            4 => quanyu_kuaishou::MAPPING.refund(&text, "shop"),
            5 => quanyu_jushuitan::MAPPING.refund(&text, "shop"),
            6 => quanyu_youzan::MAPPING.refund(&text, "shop"),
            _ => quanyu_wechat_shop::MAPPING.refund(&text, "shop"),
        };
        if let Err(r) = refund {
            assert_no_phone_outside_hashes(&hasher, &r.reason);
        }
        return;
    }
    let reason = match which % 11 {
        0 => {
            let _ = quanyu_taobao::client::check_envelope(&ctx, body);
            quanyu_taobao::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        1 => {
            let _ = quanyu_jd::client::check_envelope(&ctx, body);
            quanyu_jd::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        2 => {
            let _ = quanyu_pdd::client::check_envelope(&ctx, body);
            quanyu_pdd::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        3 => {
            let _ = quanyu_douyin::client::check_envelope(&ctx, body);
            quanyu_douyin::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        4 => {
            let _ = quanyu_kuaishou::client::check_envelope(&ctx, body);
            quanyu_kuaishou::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        5 => {
            let _ = quanyu_jushuitan::client::check_envelope(&ctx, body);
            quanyu_jushuitan::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        6 => quanyu_wecom::mapping::map_contact(&text, chrono_now(), &hasher)
            .err()
            .map(|r| r.reason),
        7 => {
            let _ = quanyu_wecom::callback::parse_envelope(&text);
            quanyu_wecom::callback::parse_event(&text)
                .err()
                .map(|e| e.to_string())
        }
        8 => {
            let _ = quanyu_youzan::client::check_envelope(&ctx, body);
            quanyu_youzan::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        9 => {
            let _ = quanyu_wechat_shop::client::check_envelope(&ctx, body);
            quanyu_wechat_shop::MAPPING.order(&text, "shop", &hasher)
                .err()
                .map(|r| r.reason)
        }
        _ => {
            let mapping = quanyu_aicall::CallMapping::default();
            for vendor in [
                quanyu_aicall::Vendor::Baiying,
                quanyu_aicall::Vendor::Yiwise,
            ] {
                let _ = quanyu_aicall::map_callback(vendor, body, "acct", &mapping, &hasher);
            }
            None
        }
    };
    if let Some(reason) = reason {
        assert_no_phone_outside_hashes(&hasher, &reason);
    }
});

/// What a rejection says goes to quarantine after scrubbing; outside its
/// `[phone:<hash>]` tokens the scrubbed reason holds no phone.
fn assert_no_phone_outside_hashes(hasher: &PiiHasher, reason: &str) {
    let scrubbed = hasher.scrub(reason);
    let outside: String = scrubbed
        .split("[phone:")
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                p
            } else {
                p.split_once(']').map_or("", |(_, r)| r)
            }
        })
        .collect::<Vec<_>>()
        .join("|");
    assert!(find_phones(&outside).is_empty(), "{reason:?}");
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}
