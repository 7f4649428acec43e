//! The marketplace suite against the TOP sandbox, plus what is Taobao's
//! own: every sign method, the window and page limits, the official SDK.

use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::conformance::MemoryLake;
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_taobao::sandbox;
use quanyu_taobao::{build_streams, SignMethod, CONNECTOR};

quanyu_connector_sdk::market_suite!(CONNECTOR);

/// Every TOP sign method is accepted: a run signed with each lands every
/// trade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_method_lands_every_trade() {
    let top = Started::start(&CONNECTOR, FaultConfig::default(), 100).await;
    for method in [SignMethod::Md5, SignMethod::Hmac, SignMethod::HmacSha256] {
        let pull = SandboxPull {
            initial_days: market::WORLD_DAYS + 1,
            ..SandboxPull::default()
        };
        let mut cfg = sandbox::config(&top.announcement, pull);
        cfg.sign_method = method;
        let mut lake = MemoryLake::default();
        lake.run(&build_streams(&cfg, &market::setup()).unwrap(), None)
            .await
            .unwrap();
        assert!(lake.keys() == top.expected_keys(), "{method:?}");
    }
    top.stop().await;
}
