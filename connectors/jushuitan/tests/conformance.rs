//! The shared conformance suite against the Jushuitan sandbox, plus its own
//! checks: a bad signature gets the envelope's code and an Auth error; the
//! 7-day window; the company token refreshed once and persisted across a
//! restart; a later pull updates orders without duplicates.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::conformance::{self, Harness, Key, MemoryLake, Running};
use quanyu_connector_sdk::sandbox::world::{WorldConfig, WorldShop};
use quanyu_connector_sdk::sandbox::{loopback_any_port, FaultConfig, SandboxHandle};
use quanyu_connector_sdk::{ConnectorSetup, ErrorKind, PullError, SecretRef, Stream, TokenStore};
use quanyu_jushuitan::sandbox::{JushuitanSandbox, JushuitanSandboxConfig};
use quanyu_jushuitan::{build_streams, JushuitanConfig, JushuitanShop};
use quanyu_schemas::Channel;

const SECRET: &str = "sandbox-jst-secret-0123";

struct Jst {
    sandbox: JushuitanSandbox,
    handle: SandboxHandle,
}

impl Jst {
    async fn start(faults: FaultConfig, orders: usize) -> Jst {
        let now = Utc::now();
        let mut world = WorldConfig::demo(now, orders);
        world.start = now - Duration::days(5);
        world.days = 5;
        world.shops = WorldShop::only(Channel::Jushuitan);
        let sandbox = JushuitanSandbox::new(JushuitanSandboxConfig {
            app_key: "jstapp".into(),
            app_secret: SECRET.into(),
            world,
            faults,
            as_of: Some(now),
            token_ttl_secs: 3600,
        });
        let handle = sandbox.serve(loopback_any_port()).await.unwrap();
        Jst { sandbox, handle }
    }

    fn config(&self, secret: &str) -> JushuitanConfig {
        let (at, rt) = self.sandbox.tokens();
        JushuitanConfig {
            gateway: self.handle.base_url(),
            app_key: "jstapp".into(),
            app_secret: SecretRef::inline(secret),
            access_token: SecretRef::inline(at),
            refresh_token: Some(SecretRef::inline(rt)),
            qps: 0,
            page_size: 40,
            window_minutes: 3 * 24 * 60,
            lookback_minutes: 60,
            initial_days: 6,
            shops: self
                .sandbox
                .shops()
                .into_iter()
                .map(|(id, shop_id)| JushuitanShop { id, shop_id })
                .collect(),
        }
    }
}

#[async_trait]
impl Running for Jst {
    fn streams(&self, good: bool) -> Vec<Arc<dyn Stream>> {
        build_streams(
            &self.config(if good { SECRET } else { "wrong-secret" }),
            &ConnectorSetup::new(conformance::fast_retry_policy()),
        )
        .unwrap()
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.sandbox
            .visible_orders()
            .into_iter()
            .map(|o| vec!["jushuitan".into(), o.shop, o.order_id])
            .collect()
    }
    fn secret(&self) -> String {
        SECRET.into()
    }
    fn expire_tokens(&self) -> bool {
        self.sandbox.expire_tokens();
        true
    }
    async fn stop(self: Box<Self>) {
        self.handle.stop().await;
    }
}

struct JstHarness;

#[async_trait]
impl Harness for JstHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(Jst::start(faults, 400).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    conformance::run_all(&JstHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_an_auth_error_naming_the_request() {
    let jst = Jst::start(FaultConfig::default(), 50).await;
    let streams = build_streams(
        &jst.config("wrong-secret"),
        &ConnectorSetup::new(conformance::fast_retry_policy()),
    )
    .unwrap();
    let err = MemoryLake::default().run(&streams, None).await.unwrap_err();
    let PullError::Connector(e) = err else {
        panic!("{err}")
    };
    assert_eq!((e.kind, e.code.as_deref()), (ErrorKind::Auth, Some("100")));
    let text = e.to_string();
    assert!(
        text.contains("jushuitan") && text.contains("orders/single/query"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !text.contains("wrong-secret"),
        "{text}"
    );
    jst.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_limit_is_checked_before_any_request() {
    let jst = Jst::start(FaultConfig::default(), 20).await;
    let mut cfg = jst.config(SECRET);
    cfg.window_minutes = 8 * 24 * 60;
    let err = build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("7 days"), "{err}");
    jst.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refreshed_company_token_persists_across_a_restart() {
    let jst = Jst::start(FaultConfig::default(), 200).await;
    let dir = tempfile_dir();
    let setup = || {
        let mut s = ConnectorSetup::new(conformance::fast_retry_policy());
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let cfg = jst.config(SECRET);
    jst.sandbox.expire_tokens();
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("the expired token is refreshed");
    assert_eq!(
        jst.sandbox.refreshes(),
        1,
        "one company token, one refresh for all shops"
    );
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("the persisted token works after a restart");
    assert_eq!(jst.sandbox.refreshes(), 1);
    assert!(lake.keys() == jst.expected_keys());
    std::fs::remove_dir_all(&dir).unwrap();
    jst.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pull_updates_orders_without_duplicates() {
    let jst = Jst::start(FaultConfig::default(), 300).await;
    let streams = jst.streams(true);
    let now = jst.sandbox.as_of();
    jst.sandbox.set_as_of(now - Duration::days(2));
    let mut lake = MemoryLake::default();
    lake.run_at(&streams, None, now - Duration::days(2))
        .await
        .unwrap();
    let first = lake.rows.clone();
    jst.sandbox.set_as_of(now);
    lake.run(&streams, None).await.unwrap();
    assert!(lake.keys() == jst.expected_keys());
    assert!(first.iter().any(|(k, v)| lake.rows.get(k) != Some(v)));
    Box::new(jst).stop().await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "quanyu-jst-tokens-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
