//! Every platform's answer parsing: the envelope check (error codes,
//! throttling, token expiry) and the record mapping (orders with their
//! lines, and refunds) and the kit's list reader, on arbitrary bytes. The first byte picks the
//! platform and, for the marketplaces, orders or refunds. A rejection's reason never holds a
//! phone that was in the record.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quanyu_connector_sdk::market::{ListAnswer, RecordMapping};
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
    // The eight marketplaces: their envelope check and record mapping.
    type Envelope = fn(&RequestContext, &[u8]) -> Result<(), quanyu_connector_sdk::ConnectorError>;
    let markets: [(Envelope, &RecordMapping); 8] = [
        (quanyu_taobao::client::check_envelope, &quanyu_taobao::MAPPING),
        (quanyu_jd::client::check_envelope, &quanyu_jd::MAPPING),
        (quanyu_pdd::client::check_envelope, &quanyu_pdd::MAPPING),
        (quanyu_douyin::client::check_envelope, &quanyu_douyin::MAPPING),
        (quanyu_kuaishou::client::check_envelope, &quanyu_kuaishou::MAPPING),
        (quanyu_jushuitan::client::check_envelope, &quanyu_jushuitan::MAPPING),
        (quanyu_youzan::client::check_envelope, &quanyu_youzan::MAPPING),
        (quanyu_wechat_shop::client::check_envelope, &quanyu_wechat_shop::MAPPING),
    ];
    let reason = match which {
        // A marketplace's refund or after-sale record.
        128.. => markets[usize::from(which % 8)].1.refund(&text, "shop").err().map(|r| r.reason),
        // A marketplace's order page and order record.
        0..=79 => {
            let (envelope, mapping) = markets[usize::from(which % 8)];
            let _ = envelope(&ctx, body);
            mapping.order(&text, "shop", &hasher).err().map(|r| r.reason)
        }
        80..=95 => quanyu_wecom::mapping::map_contact(&text, chrono_now(), &hasher)
            .err()
            .map(|r| r.reason),
        96..=111 => {
            let _ = quanyu_wecom::callback::parse_envelope(&text);
            quanyu_wecom::callback::parse_event(&text)
                .err()
                .map(|e| e.to_string())
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
