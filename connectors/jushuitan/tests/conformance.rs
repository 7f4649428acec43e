//! The marketplace suite against the Jushuitan sandbox (one company token
//! shared by every ERP shop, receiver phones in clear), plus the 7-day
//! window checked before any request.

use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_jushuitan::build_streams;
use quanyu_jushuitan::sandbox;
use quanyu_jushuitan::CONNECTOR;

quanyu_connector_sdk::market_suite!(CONNECTOR);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_limit_is_checked_before_any_request() {
    let jst = Started::start(&CONNECTOR, FaultConfig::default(), 20).await;
    let mut cfg = sandbox::config(&jst.announcement, SandboxPull::default());
    cfg.window_minutes = 8 * 24 * 60;
    let err = build_streams(&cfg, &market::setup()).err().unwrap();
    assert!(err.to_string().contains("7 days"), "{err}");
    jst.stop().await;
}
