//! The shared conformance suite against the JD sandbox, plus JD-specific
//! checks (signature rejection with JD's envelope, gateway parameter checks,
//! window/page limits, token refresh persisting across a restart, receivers
//! kept as masks only, re-pull after updates, two shops sharing one app
//! budget, the official SDK).

use chrono::{Duration, Utc};
use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::conformance::{self};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::market::TokenGateway;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ApiClient, RequestContext, Secret, ShopToken, Window};
use quanyu_jd::sandbox;
use quanyu_jd::sign::sign;
use quanyu_jd::CONNECTOR;
use quanyu_jd::{build_streams, JdClient, SEARCH_API};
use quanyu_schemas::time::format_beijing;
use quanyu_schemas::Channel;

use quanyu_connector_sdk::connector::sandbox_credentials::APP_SECRET as SECRET;

quanyu_connector_sdk::market_suite!(CONNECTOR);

/// The gateway's own checks answer with JD's system codes: a stale
/// timestamp (8), an unknown method (15), a missing signature (11), an
/// unknown app key (21); the SDKs' `…SSS+zzzz` timestamp form is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_checks_answer_with_jd_system_codes() {
    let jd = Started::start(&CONNECTOR, FaultConfig::default(), 20).await;
    let http = ApiClient::new(vec![], conformance::fast_retry_policy());
    let (token, _) = jd.core().tokens_for(0);
    let app_key = jd.announcement.app_key.clone();
    let now = Utc::now();
    let param = serde_json::json!({
        "start_date": format_beijing(jd.core().as_of() - Duration::days(1)),
        "end_date": format_beijing(jd.core().as_of()),
        "page": "1",
        "page_size": "10",
    })
    .to_string();
    let sdk_style = (now + Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S.000+0800")
        .to_string();
    let cases: Vec<(String, String, String, bool, &str)> = vec![
        // (method, app_key, timestamp, signed, expected code)
        (
            SEARCH_API.into(),
            app_key.clone(),
            format_beijing(now),
            true,
            "0",
        ),
        (SEARCH_API.into(), app_key.clone(), sdk_style, true, "0"),
        (
            SEARCH_API.into(),
            app_key.clone(),
            format_beijing(now - Duration::minutes(7)),
            true,
            "8",
        ),
        (
            "jingdong.pop.order.nothing".into(),
            app_key.clone(),
            format_beijing(now),
            true,
            "15",
        ),
        (
            SEARCH_API.into(),
            app_key.clone(),
            format_beijing(now),
            false,
            "11",
        ),
        (
            SEARCH_API.into(),
            "other-app".into(),
            format_beijing(now),
            true,
            "21",
        ),
    ];
    for (method, key, timestamp, signed, want) in cases {
        let mut params: Vec<(&str, &str)> = vec![
            ("method", &method),
            ("app_key", &key),
            ("access_token", &token),
            ("timestamp", &timestamp),
            ("v", "2.0"),
            ("360buy_param_json", &param),
        ];
        let signature = sign(params.iter().copied(), SECRET);
        if signed {
            params.push(("sign", &signature));
        }
        let raw = http
            .http()
            .post(format!("{}/routerjson", jd.announcement.base_url))
            .query(&params)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let code = body["error_response"]["code"]
            .as_str()
            .or_else(|| body["jingdong_pop_order_search_responce"]["code"].as_str())
            .unwrap_or("?");
        assert_eq!(code, want, "{method} {timestamp}: {body}");
        if want == "0" {
            let result = &body["jingdong_pop_order_search_responce"]["searchorderinfo_result"];
            assert_eq!(result["apiResult"]["success"], true, "{body}");
            assert!(result["orderTotal"].as_u64().is_some(), "{body}");
        }
    }
    jd.stop().await;
}

fn direct_client(jd: &Started) -> (JdClient, ShopToken) {
    let client = JdClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &format!("{}/routerjson", jd.announcement.base_url),
        &jd.announcement.base_url,
        &jd.announcement.app_key,
        Secret::new(SECRET),
    );
    (client, jd.first_shop_token())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_page_limits_are_enforced() {
    let jd = Started::start(&CONNECTOR, FaultConfig::default(), 50).await;
    // The suite checks the config against the limits; the gateway itself
    // refuses both too, with a failed apiResult.
    let (client, token) = direct_client(&jd);
    let ctx = RequestContext::new("jd", Some("s"), SEARCH_API);
    let end = jd.core().as_of();
    for (start, size, why) in [
        (
            end - Duration::days(30) - Duration::seconds(1),
            "100",
            "一个月",
        ),
        (end - Duration::days(30), "101", "page_size"),
        (end - Duration::days(91), "100", "三个月"),
    ] {
        let end = if why == "三个月" {
            end - Duration::days(85)
        } else {
            end
        };
        let param = serde_json::json!({
            "start_date": format_beijing(start),
            "end_date": format_beijing(end),
            "page": "1",
            "page_size": size,
            "dateType": "0",
        })
        .to_string();
        market::assert_refused(
            client.call(&ctx, SEARCH_API, &token, &param).await,
            "10100003",
            why,
        );
    }
    jd.stop().await;
}

/// JD has no decrypt in scope: every row keeps the receiver's mask, none
/// gets a hash, no ciphertext lands, and every row names its buyer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_are_kept_as_masks_only() {
    let jd = Started::start(&CONNECTOR, FaultConfig::default(), 200).await;
    let as_of = jd.core().as_of();
    let streams = build_streams(
        &sandbox::config(&jd.announcement, SandboxPull::default()),
        &market::setup(),
    )
    .unwrap();
    let w = Window {
        start: as_of - Duration::days(6),
        end: as_of + Duration::seconds(1),
    };
    let mut rows = market::Batches::default();
    for s in &streams {
        s.pull(w, &market::pull_context(), &mut rows).await.unwrap();
    }
    let world = jd.core().world().clone();
    let masks: std::collections::HashMap<String, String> = world
        .purchases
        .iter()
        .filter(|p| p.channel == Channel::Jd)
        .map(|p| {
            let phone = &world.receiver(p).phone;
            (
                world.order_id(p),
                format!("{}****{}", &phone[..3], &phone[7..]),
            )
        })
        .collect();
    let mut total = 0;
    for b in &rows.0 {
        use arrow::array::{Array, AsArray};
        let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
        let hashes = b.column_by_name("phone_hash").unwrap().as_string::<i32>();
        let masked = b.column_by_name("phone_masked").unwrap().as_string::<i32>();
        let buyers = b.column_by_name("buyer_id").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            total += 1;
            assert!(hashes.is_null(i), "no hash without a decrypt");
            assert_eq!(masked.value(i), masks[ids.value(i)]);
            assert!(buyers.value(i).ends_with(&format!(
                "@{}",
                b.column_by_name("shop_id")
                    .unwrap()
                    .as_string::<i32>()
                    .value(i)
            )));
        }
    }
    assert_eq!(total, jd.core().visible_orders().len());
    jd.stop().await;
}
