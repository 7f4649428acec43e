//! The shared conformance suite against the WeCom sandbox, plus token-cache
//! behaviour.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::conformance::{self, Harness, Key, MemoryLake, Running};
use quanyu_connector_sdk::sandbox::world::WorldConfig;
use quanyu_connector_sdk::sandbox::{loopback_any_port, FaultConfig, SandboxHandle};
use quanyu_connector_sdk::{ConnectorSetup, SecretRef, Stream};
use quanyu_wecom::sandbox::{WecomSandbox, WecomSandboxConfig};
use quanyu_wecom::{build_streams, WecomConfig};

const SECRET: &str = "wecom-sandbox-secret";

struct Wecom {
    sandbox: WecomSandbox,
    handle: SandboxHandle,
}

async fn start(faults: FaultConfig) -> Wecom {
    let now = Utc::now();
    let sandbox = WecomSandbox::new(WecomSandboxConfig {
        corp_id: "wwsandbox".into(),
        secret: SECRET.into(),
        world: WorldConfig::demo(now - Duration::days(1), 1500),
        faults,
        as_of: Some(now),
        token_ttl_secs: 7200,
    });
    let handle = sandbox.serve(loopback_any_port()).await.unwrap();
    Wecom { sandbox, handle }
}

impl Wecom {
    fn config(&self, secret: &str) -> WecomConfig {
        WecomConfig {
            base_url: self.handle.base_url(),
            corp_id: "wwsandbox".into(),
            secret: SecretRef::inline(secret),
            qps: 0,
            page_size: 37,
        }
    }
}

#[async_trait]
impl Running for Wecom {
    fn streams(&self, good: bool) -> Vec<Arc<dyn Stream>> {
        build_streams(
            &self.config(if good { SECRET } else { "bad" }),
            &ConnectorSetup::new(conformance::fast_retry_policy()),
        )
        .unwrap()
    }
    fn expire_tokens(&self) -> bool {
        self.sandbox.expire_tokens();
        true
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.sandbox
            .visible_contacts()
            .into_iter()
            .map(|(e, u)| vec!["wecom".into(), e, u])
            .collect()
    }
    fn secret(&self) -> String {
        SECRET.into()
    }
    async fn stop(self: Box<Self>) {
        self.handle.stop().await;
    }
}

struct WecomHarness;

#[async_trait]
impl Harness for WecomHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(start(faults).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    conformance::run_all(&WecomHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_cached_and_refreshed_after_expiry() {
    let w = start(FaultConfig::default()).await;
    let streams = w.streams(true);
    let mut lake = MemoryLake::default();
    lake.run(&streams, None).await.unwrap();
    let after_first = w.sandbox.requests();
    // Pages + follow list + exactly one gettoken.
    let pages = (w.sandbox.visible_contacts().len() as u64).div_ceil(37);
    assert!(
        after_first <= pages + 4 + 1,
        "token fetched more than once: {after_first} requests for {pages} pages"
    );
    w.sandbox.expire_tokens();
    let mut lake2 = MemoryLake::default();
    lake2
        .run(&streams, None)
        .await
        .expect("an expired token is refreshed");
    assert_eq!(lake2.keys(), w.expected_keys());
    let (_, retries) = streams[0].request_stats();
    assert!(
        retries >= 1,
        "the expiry answer should have been retried after a refresh"
    );
    Box::new(w).stop().await;
}
