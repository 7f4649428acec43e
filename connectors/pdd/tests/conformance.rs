//! The marketplace suite against the Pinduoduo sandbox, plus what is
//! Pinduoduo's own: the router's window and page limits, decrypt calls
//! keeping their own interval, and the official SDK.

use chrono::Duration;
use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::conformance::{self};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::market::TokenGateway;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ApiClient, RequestContext, Secret, ShopToken};
use quanyu_pdd::sandbox;
use quanyu_pdd::{build_streams, PddClient, CONNECTOR, INCREMENT_API};

quanyu_connector_sdk::market_suite!(CONNECTOR);

/// A client and the first shop's token, for calling the router directly.
fn direct_client(sb: &Started) -> (PddClient, ShopToken) {
    let ann = &sb.announcement;
    let client = PddClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &format!("{}/api/router", ann.base_url),
        &ann.app_key,
        Secret::new(&ann.app_secret),
    );
    (client, sb.first_shop_token())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_page_limits_are_enforced() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 50).await;
    // The suite checks the config against the limits; the router itself
    // refuses both too, with its business error.
    let (client, token) = direct_client(&sb);
    let ctx = RequestContext::new("pdd", Some("s"), INCREMENT_API);
    let end = sb.core().as_of().timestamp();
    for (start, size, why) in [
        (end - 1801, "100", "30分钟"),
        (end - 1800, "101", "page_size"),
    ] {
        market::assert_refused(
            client
                .call(
                    &ctx,
                    INCREMENT_API,
                    &token,
                    &[
                        ("start_updated_at", start.to_string()),
                        ("end_updated_at", end.to_string()),
                        ("page", "1".into()),
                        ("page_size", size.into()),
                    ],
                )
                .await,
            "10000",
            why,
        );
    }
    sb.stop().await;
}

/// The decrypt budget is the connector's own: with one call per 2 s, three
/// pages with ciphertexts take at least 4 s, while the list calls are not
/// held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_calls_keep_their_own_interval() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 300).await;
    let mut cfg = sandbox::config(&sb.announcement, SandboxPull::default());
    cfg.decrypt = true;
    cfg.decrypt_interval_secs = 2;
    cfg.shops.truncate(1);
    let streams = build_streams(&cfg, &market::setup()).unwrap();
    let core = sb.core();
    let as_of = core.as_of();
    let ctx = market::pull_context();
    let started = std::time::Instant::now();
    let before = core.decrypt_calls();
    let mut k = 0;
    while core.decrypt_calls() < before + 3 && k < 2 * 48 {
        let w = quanyu_connector_sdk::Window {
            start: as_of - Duration::minutes(30 * (k + 1)),
            end: as_of - Duration::minutes(30 * k),
        };
        streams[0]
            .pull(w, &ctx, &mut market::Batches::default())
            .await
            .unwrap();
        k += 1;
    }
    assert_eq!(
        core.decrypt_calls(),
        before + 3,
        "three pages with ciphertexts"
    );
    // Three calls at one per 2 s: the second and third wait.
    assert!(started.elapsed() >= std::time::Duration::from_millis(3_900));
    sb.stop().await;
}
