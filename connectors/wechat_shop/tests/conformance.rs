//! The marketplace suite against the Channels shop sandbox, plus what is
//! the shop API's own: the 7-day window, a cursor bound to its filters,
//! `stable_token`'s normal and forced modes, and the unionid each order
//! carries for the WeCom join.

use arrow::array::{Array, AsArray};
use quanyu_connector_sdk::conformance::market::{self, Batches, Started};
use quanyu_connector_sdk::conformance::{self};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::market::TokenGateway;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ApiClient, ErrorKind, RequestContext, Secret, Window};
use quanyu_wechat_shop::sandbox::{self, shop_appid, shop_secret};
use quanyu_wechat_shop::{ShopClient, CONNECTOR, LIST_API};
use serde_json::json;

quanyu_connector_sdk::market_suite!(CONNECTOR);

fn client(sb: &Started) -> ShopClient {
    let ann = &sb.announcement;
    ShopClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &ann.base_url,
        &shop_appid(&ann.app_key, 0),
        Secret::new(shop_secret(&ann.app_secret, 0)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_cursors_are_the_shops() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 400).await;
    let gw = client(&sb);
    let token = quanyu_connector_sdk::ShopToken::open(
        &quanyu_connector_sdk::TokenStore::memory(),
        "direct",
        None,
    )
    .unwrap();
    let ctx = RequestContext::new("wechat_shop", Some("s"), LIST_API);
    let end = sb.core().as_of().timestamp();
    let range = |days: i64| json!({"start_time": end - days * 86_400, "end_time": end});
    let list = |params: serde_json::Value| {
        let (gw, ctx, token) = (&gw, &ctx, &token);
        async move { gw.call(ctx, LIST_API, token, &params).await }
    };
    let e = list(json!({"update_time_range": range(8), "page_size": 10}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::InvalidRequest, Some("47001")),
        "{e}"
    );
    let e = list(json!({"page_size": 10})).await.unwrap_err();
    assert_eq!(
        e.code.as_deref(),
        Some("47001"),
        "a time range is required: {e}"
    );
    // A cursor continues only the listing it came from.
    let first = list(json!({"update_time_range": range(3), "page_size": 5}))
        .await
        .unwrap();
    let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first["has_more"], true, "{first}");
    let key = first["next_key"].as_str().unwrap();
    let second = list(json!({"update_time_range": range(3), "page_size": 5, "next_key": key}))
        .await
        .unwrap();
    let second: serde_json::Value = serde_json::from_slice(&second).unwrap();
    let ids = |v: &serde_json::Value| v["order_id_list"].as_array().unwrap().clone();
    assert!(
        ids(&first).iter().all(|i| !ids(&second).contains(i)),
        "pages do not overlap"
    );
    let e = list(json!({"update_time_range": range(2), "page_size": 5, "next_key": key}))
        .await
        .unwrap_err();
    assert_eq!(e.code.as_deref(), Some("606006"), "{e}");
    sb.stop().await;
}

/// Normal mode hands out the account's current token; a forced refresh
/// ends it, and the connector, seeing 40001, asks again and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_token_modes() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 100).await;
    let url = format!("{}/cgi-bin/stable_token", sb.announcement.base_url);
    let http = reqwest::Client::new();
    let ask = |force: bool| {
        let body = json!({
            "grant_type": "client_credential",
            "appid": shop_appid(&sb.announcement.app_key, 0),
            "secret": shop_secret(&sb.announcement.app_secret, 0),
            "force_refresh": force,
        });
        let req = http.post(&url).json(&body);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let a = ask(false).await;
    let b = ask(false).await;
    assert_eq!(
        a["access_token"], b["access_token"],
        "the same token while it lives"
    );
    assert!(a["expires_in"].as_i64().unwrap() > 300);
    let streams = sb.streams(SandboxPull::default(), &market::setup());
    let ctx = market::pull_context();
    let as_of = sb.core().as_of();
    let w = Window {
        start: as_of - chrono::Duration::days(3),
        end: as_of + chrono::Duration::seconds(1),
    };
    streams[0]
        .pull(w, &ctx, &mut Batches::default())
        .await
        .expect("a pull");
    let forced = ask(true).await;
    assert_ne!(
        forced["access_token"], a["access_token"],
        "forced: a new token"
    );
    let mut rows = Batches::default();
    streams[0]
        .pull(w, &ctx, &mut rows)
        .await
        .expect("the pull after the token was replaced");
    assert!(!rows.0.is_empty());
    let bad = http
        .post(&url)
        .json(&json!({"grant_type": "client_credential",
            "appid": shop_appid(&sb.announcement.app_key, 0), "secret": "nope"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(bad["errcode"], 40125);
    sb.stop().await;
}

/// Every order whose buyer WeChat knows carries the unionid the world
/// gave that person, the id a WeCom contact of the same person carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_carry_the_buyers_unionid() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 200).await;
    let streams = sb.streams(SandboxPull::default(), &market::setup());
    let ctx = market::pull_context();
    let core = sb.core();
    let world = core.world();
    let as_of = core.as_of();
    let mut rows = Batches::default();
    for s in &streams {
        let w = Window {
            start: as_of - chrono::Duration::days(3),
            end: as_of + chrono::Duration::seconds(1),
        };
        s.pull(w, &ctx, &mut rows).await.expect("a pull");
    }
    let (mut total, mut with) = (0, 0);
    for b in &rows.0 {
        let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
        let unionids = b
            .column_by_name("buyer_unionid")
            .unwrap()
            .as_string::<i32>();
        for i in 0..b.num_rows() {
            let p = world
                .purchases
                .iter()
                .find(|p| world.order_id(p) == ids.value(i))
                .unwrap();
            let want = world.persons[p.person as usize].unionid.as_deref();
            let got = unionids.is_valid(i).then(|| unionids.value(i));
            assert_eq!(got, want, "order {}", ids.value(i));
            total += 1;
            with += usize::from(got.is_some());
        }
    }
    assert_eq!(total, core.visible_orders().len());
    assert!(0 < with && with < total, "{with} of {total}");
    sb.stop().await;
}

/// An order the list shows but `order/get` refuses is quarantined with the
/// refusal and its id; every other order lands, and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_order_that_cannot_be_read_is_quarantined() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 120).await;
    let gone = sb.core().visible_orders()[0].clone();
    sb.concrete::<sandbox::WechatShopSandbox>()
        .refuse_order(&gone.order_id);
    let mut lake = conformance::MemoryLake::default();
    lake.run(&sb.streams(SandboxPull::default(), &market::setup()), None)
        .await
        .expect("one unreadable order does not stop the run");
    assert_eq!(lake.quarantine.len(), 1, "{:?}", lake.quarantine);
    let q = &lake.quarantine[0];
    assert_eq!(q.record_key.as_deref(), Some(gone.order_id.as_str()));
    assert!(q.reason.contains("47001"), "{}", q.reason);
    let mut expected = sb.expected_keys();
    expected.retain(|k| k[2] != gone.order_id);
    assert!(lake.keys() == expected);
    sb.stop().await;
}
