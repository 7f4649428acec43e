//! The marketplace suite against the Youzan sandbox, plus what is Youzan's
//! own: the gateway's window and page-depth limits with its codes, the
//! token endpoint's JSON-only rule, and a window too full to page through.

use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::conformance::{self, MemoryLake};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::market::TokenGateway;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ApiClient, RequestContext, Secret};
use quanyu_schemas::time::format_beijing;
use quanyu_youzan::sandbox::{self, kdt_id};
use quanyu_youzan::{build_streams, YouzanClient, CONNECTOR, TRADES_API};

quanyu_connector_sdk::market_suite!(CONNECTOR);

fn client(sb: &Started) -> YouzanClient {
    let ann = &sb.announcement;
    YouzanClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &ann.base_url,
        &ann.app_key,
        Secret::new(&ann.app_secret),
        &kdt_id(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_limits_are_youzans() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 50).await;
    let setup = market::setup();
    let mut cfg = sandbox::config(&sb.announcement, SandboxPull::default());
    // (The suite checks the page and window limits.) A window the trade list takes but the refund list does not.
    cfg.pull.window_minutes = 120 * 24 * 60;
    cfg.pull.refunds = true;
    let err = build_streams(&cfg, &setup).err().unwrap();
    assert!(err.to_string().contains("90 days"), "{err}");
    cfg.pull.refunds = false;
    assert!(build_streams(&cfg, &setup).is_ok(), "orders alone take it");
    cfg.pull.window_minutes = 60;
    cfg.shops[0].kdt_id = " ".into();
    assert!(build_streams(&cfg, &setup).is_err(), "an empty kdt_id");

    let gw = client(&sb);
    let token = sb.first_shop_token();
    let ctx = RequestContext::new("youzan", Some("s"), TRADES_API);
    let method = "youzan.trades.sold.get/4.0.4";
    let end = sb.core().as_of();
    let day = chrono::Duration::days(1);
    for (params, code, why) in [
        (
            serde_json::json!({"start_update": format_beijing(end - day * 366),
                "end_update": format_beijing(end), "page_no": 1, "page_size": 100}),
            "106000001",
            "一年",
        ),
        (
            serde_json::json!({"start_update": format_beijing(end - day),
                "end_update": format_beijing(end), "page_no": 33, "page_size": 100}),
            "5000",
            "3200",
        ),
        (
            serde_json::json!({"start_update": format_beijing(end - day),
                "end_update": format_beijing(end), "page_no": 1, "page_size": 101}),
            "5000",
            "100",
        ),
        (
            serde_json::json!({"start_update": "2026-03-18", "end_update": "2026-03-19"}),
            "5001",
            "系统异常",
        ),
    ] {
        market::assert_refused(gw.call(&ctx, method, &token, &params).await, code, why);
    }
    let e = gw
        .call(
            &ctx,
            "youzan.trades.sold.get/9.9.9",
            &token,
            &serde_json::json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.as_deref(), Some("4005"), "{e}");
    sb.stop().await;
}

/// The token endpoint reads JSON only: a form body is refused with code
/// 1000, as Youzan's gateway answered a probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_takes_json_only() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 10).await;
    let url = format!("{}/auth/token", sb.announcement.base_url);
    let http = reqwest::Client::new();
    let answer = |request: reqwest::RequestBuilder| async move {
        let answer = request.send().await.unwrap();
        answer.json::<serde_json::Value>().await.unwrap()
    };
    let form = answer(
        http.post(&url)
            .form(&[("client_id", sb.announcement.app_key.as_str())]),
    )
    .await;
    assert_eq!(form["success"], false);
    assert_eq!(form["code"], 1000);
    let ok = answer(http.post(&url).json(&serde_json::json!({
        "client_id": sb.announcement.app_key, "client_secret": sb.announcement.app_secret,
        "authorize_type": "silent", "grant_id": kdt_id(1), "refresh": false,
    })))
    .await;
    assert_eq!(ok["success"], true, "{ok}");
    let expires = ok["data"]["expires"].as_i64().unwrap();
    let in_days = (expires - chrono::Utc::now().timestamp_millis()) / 86_400_000;
    assert!(
        (6..=7).contains(&in_days),
        "expires is epoch ms, 7 days on: {expires}"
    );
    sb.stop().await;
}

/// A window holding more changed orders than Youzan pages through (3,200)
/// is split until each part fits: every order lands once, and the gateway
/// never saw a page beyond its depth (it would have answered 5000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_too_full_is_split_until_it_fits() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 9_000).await;
    let mut cfg = sandbox::config(&sb.announcement, SandboxPull::default());
    cfg.pull.window_minutes = 3 * 24 * 60;
    cfg.pull.initial_days = 3;
    cfg.shops.truncate(1);
    let shop = cfg.shops[0].id.clone();
    let streams = build_streams(&cfg, &market::setup()).unwrap();
    let mut lake = MemoryLake::default();
    lake.run(&streams, None)
        .await
        .expect("the full window is split, not refused");
    let mut expected = sb.expected_keys();
    expected.retain(|k| k[1] == shop);
    assert!(
        expected.len() > 3_200,
        "the window holds {} orders",
        expected.len()
    );
    assert!(
        lake.keys() == expected,
        "{} landed of {}",
        lake.keys().len(),
        expected.len()
    );
    sb.stop().await;
}

/// A shop id pointed at another kdt_id is granted that shop's token, not
/// the persisted token of the shop it named before: its rows are the new
/// shop's orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_pointed_at_another_kdt_id_never_reuses_the_old_token() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 200).await;
    let dir = tempfile_dir();
    let mut setup = market::setup();
    setup.tokens = quanyu_connector_sdk::TokenStore::in_dir(&dir);
    let mut cfg = sandbox::config(&sb.announcement, SandboxPull::default());
    cfg.shops.truncate(1);
    cfg.shops[0].id = "mall".into();
    let pull = |cfg: &quanyu_youzan::YouzanConfig| {
        let streams = build_streams(cfg, &setup).unwrap();
        async move {
            let mut lake = MemoryLake::default();
            lake.run(&streams, None).await.unwrap();
            lake.keys()
                .into_iter()
                .map(|k| k[2].clone())
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    let orders_of = |shop: usize| -> std::collections::BTreeSet<String> {
        let id = sb.core().shops()[shop].clone();
        sb.core()
            .visible_orders()
            .into_iter()
            .filter(|o| o.shop == id)
            .map(|o| o.order_id)
            .collect()
    };
    assert_eq!(pull(&cfg).await, orders_of(0));
    cfg.shops[0].kdt_id = kdt_id(1);
    assert_eq!(pull(&cfg).await, orders_of(1), "the second shop's orders");
    let _ = std::fs::remove_dir_all(&dir);
    sb.stop().await;
}

fn tempfile_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "quanyu-youzan-kdt-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ))
}
