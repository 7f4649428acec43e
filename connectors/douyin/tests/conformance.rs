//! The marketplace suite against the Douyin shop sandbox, plus what is
//! Douyin's own: the gateway's window and page limits (with an md5-signed
//! client), self-authorized tokens, and the official SDK.

use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::conformance::{self, MemoryLake};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::market::TokenGateway;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ApiClient, RequestContext, Secret, TokenStore};
use quanyu_douyin::sandbox::{self, DouyinSandbox};
use quanyu_douyin::{build_streams, DyClient, SignMethod, CONNECTOR, SEARCH_API};

quanyu_connector_sdk::market_suite!(CONNECTOR);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_page_limits_are_enforced() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 50).await;
    // The suite checks the config against the limits; the gateway itself
    // refuses both too (an md5-signed client this time).
    let ann = &sb.announcement;
    let client = DyClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &ann.base_url,
        &ann.app_key,
        Secret::new(&ann.app_secret),
        SignMethod::Md5,
    );
    let token = sb.first_shop_token();
    let ctx = RequestContext::new("douyin", Some("s"), SEARCH_API);
    let end = sb.core().as_of().timestamp();
    for (start, size, why) in [
        (end - 7 * 86_400 - 1, 100, "7天"),
        (end - 3600, 101, "size"),
    ] {
        let param = serde_json::json!({"page": 0, "size": size, "update_time_start": start,
            "update_time_end": end, "order_by": "update_time", "order_asc": false});
        market::assert_refused(
            client.call(&ctx, SEARCH_API, &token, &param).await,
            "40003",
            why,
        );
    }
    let param = serde_json::json!({"page": 0, "size": 100, "update_time_start": end - 3600,
        "update_time_end": end});
    client
        .call(&ctx, SEARCH_API, &token, &param)
        .await
        .expect("an md5-signed call is accepted");
    sb.stop().await;
}

/// A self-built app needs no configured token: the connector creates one
/// per shop through `/token/create` (`authorization_self`), persists it,
/// refreshes it when it expires, and a restart reuses the stored pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_authorized_tokens_are_created_persisted_and_refreshed() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 200).await;
    let dy: &DouyinSandbox = sb.concrete();
    let dir = std::env::temp_dir().join(format!("quanyu-dy-self-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || {
        let mut s = market::setup();
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let mut cfg = sandbox::config(&sb.announcement, SandboxPull::default());
    for s in &mut cfg.shops {
        s.access_token = None;
        s.refresh_token = None;
        s.self_authorize = true;
    }
    let shops = dy.shops().len() as u64;
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(dy.creates(), shops, "one token created per shop");
    assert!(lake.keys() == sb.expected_keys());
    dy.expire_tokens();
    MemoryLake::default()
        .run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("expired tokens are refreshed");
    assert_eq!(dy.refreshes(), shops);
    assert_eq!(dy.creates(), shops);
    MemoryLake::default()
        .run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(dy.creates(), shops, "a restart reuses the stored pair");
    assert_eq!(dy.refreshes(), shops);
    // A tool app's shop without a token is a configuration error.
    cfg.shops[0].self_authorize = false;
    let err = build_streams(&cfg, &setup()).err().unwrap();
    assert!(err.to_string().contains("access_token"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    sb.stop().await;
}
