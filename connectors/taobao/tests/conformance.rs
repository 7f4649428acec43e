//! The shared conformance suite against the TOP sandbox, plus Taobao-specific
//! checks (window limit, signature rejection, re-pull after later updates).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::conformance::{self, Harness, Key, MemoryLake, Running};
use quanyu_connector_sdk::sandbox::world::WorldConfig;
use quanyu_connector_sdk::sandbox::{loopback_any_port, FaultConfig, SandboxHandle};
use quanyu_connector_sdk::{ConnectorSetup, SecretRef, Stream};
use quanyu_taobao::sandbox::{TopSandbox, TopSandboxConfig};
use quanyu_taobao::{build_streams, SignMethod, TaobaoConfig, TaobaoShop};

const SECRET: &str = "sandbox-secret-0123456789";

struct Top {
    sandbox: TopSandbox,
    handle: SandboxHandle,
    sign_method: SignMethod,
}

impl Top {
    async fn start(faults: FaultConfig, orders: usize, sign_method: SignMethod) -> Top {
        let now = Utc::now();
        let mut world = WorldConfig::demo(now, orders);
        world.start = now - Duration::days(5);
        world.days = 5;
        let sandbox = TopSandbox::new(TopSandboxConfig {
            app_key: "12345678".into(),
            app_secret: SECRET.into(),
            world,
            faults,
            as_of: Some(now),
        });
        let handle = sandbox.serve(loopback_any_port()).await.unwrap();
        Top {
            sandbox,
            handle,
            sign_method,
        }
    }

    fn config(&self, secret: &str) -> TaobaoConfig {
        let cfg = self.sandbox.config();
        TaobaoConfig {
            gateway: format!("{}/router/rest", self.handle.base_url()),
            app_key: cfg.app_key.clone(),
            app_secret: SecretRef::inline(secret),
            sign_method: self.sign_method,
            qps: 0,
            page_size: 50,
            concurrency: 3,
            window_minutes: 12 * 60,
            lookback_minutes: 60,
            initial_days: 6,
            decrypt: false,
            decrypt_qps: 0,
            decrypt_scene: "2002".into(),
            shops: (0..self.sandbox.shops().len())
                .map(|i| TaobaoShop {
                    id: self.sandbox.shops()[i].clone(),
                    session: SecretRef::inline(cfg.session_for(i)),
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Running for Top {
    fn streams(&self, good: bool) -> Vec<Arc<dyn Stream>> {
        build_streams(
            &self.config(if good { SECRET } else { "wrong-secret" }),
            &ConnectorSetup::new(conformance::fast_retry_policy()),
        )
        .unwrap()
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.sandbox
            .visible_trades()
            .into_iter()
            .map(|t| vec!["taobao".into(), t.shop, t.tid])
            .collect()
    }
    fn secret(&self) -> String {
        SECRET.into()
    }
    async fn stop(self: Box<Self>) {
        self.handle.stop().await;
    }
}

struct TopHarness(SignMethod);

#[async_trait]
impl Harness for TopHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(Top::start(faults, 400, self.0).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_md5() {
    conformance::run_all(&TopHarness(SignMethod::Md5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hmac_sha256_straight_and_faults() {
    let h = TopHarness(SignMethod::HmacSha256);
    conformance::check_straight_run(&h).await;
    conformance::check_exactly_once_under_faults(&h).await;
    conformance::check_straight_run(&TopHarness(SignMethod::Hmac)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pull_updates_orders_without_duplicates() {
    let top = Top::start(FaultConfig::default(), 300, SignMethod::Md5).await;
    let streams = top.streams(true);
    let now = top.sandbox.as_of();
    // First pull sees the platform as it stood two days ago...
    top.sandbox.set_as_of(now - Duration::days(2));
    let mut lake = MemoryLake::default();
    lake.run_at(&streams, None, now - Duration::days(2))
        .await
        .unwrap();
    let first = lake.rows.clone();
    // ...the second as it stands now: orders shipped and finished since.
    top.sandbox.set_as_of(now);
    lake.run(&streams, None).await.unwrap();
    let expected = top.expected_keys();
    assert!(
        lake.keys() == expected,
        "one row per order after the re-pull: {} landed, {} expected",
        lake.keys().len(),
        expected.len()
    );
    let changed = first
        .iter()
        .filter(|(k, v)| lake.rows.get(*k) != Some(v))
        .count();
    assert!(changed > 0, "some orders must have been modified again");
    Box::new(top).stop().await;
}

#[tokio::test]
async fn gateway_enforces_window_and_page_limits() {
    let top = Top::start(FaultConfig::default(), 50, SignMethod::Md5).await;
    let mut cfg = top.config(SECRET);
    cfg.window_minutes = 2 * 24 * 60;
    let setup = ConnectorSetup::new(conformance::fast_retry_policy());
    let err = build_streams(&cfg, &setup).err().unwrap();
    assert!(err.to_string().contains("one day"), "{err}");
    cfg.window_minutes = 60;
    cfg.page_size = 101;
    assert!(build_streams(&cfg, &setup).is_err());
    top.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_hashes_receiver_phones_and_is_off_by_default() {
    use quanyu_connector_sdk::{PageSink, PullContext, SinkError};
    use quanyu_schemas::{LakeKey, PiiHasher};
    struct Rows(Vec<arrow::array::RecordBatch>);
    #[async_trait]
    impl PageSink for Rows {
        async fn page(&mut self, p: quanyu_connector_sdk::NormalizedPage) -> Result<(), SinkError> {
            self.0.extend(p.batch);
            Ok(())
        }
    }
    let top = Top::start(FaultConfig::default(), 200, SignMethod::Md5).await;
    let hasher = PiiHasher::new(&LakeKey::from_bytes([7; 32]));
    let ctx = PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: hasher.clone(),
    };
    let windows: Vec<_> = (0..7)
        .map(|d| quanyu_connector_sdk::Window {
            start: top.sandbox.as_of() - Duration::days(6 - d),
            end: top.sandbox.as_of() - Duration::days(5 - d),
        })
        .collect();
    let world = top.sandbox.world().clone();
    let expected: std::collections::HashMap<String, Option<String>> = world
        .purchases
        .iter()
        .filter(|p| p.channel == quanyu_schemas::Channel::Taobao)
        .map(|p| {
            let phone = &world.receiver(p).phone;
            (world.order_id(p), hasher.phone_text(phone))
        })
        .collect();
    for decrypt in [false, true] {
        let mut cfg = top.config(SECRET);
        cfg.decrypt = decrypt;
        let streams =
            build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
        let mut rows = Rows(vec![]);
        for s in &streams {
            for w in &windows {
                s.pull(*w, &ctx, &mut rows).await.unwrap();
            }
        }
        let (mut hashed, mut total) = (0, 0);
        for b in &rows.0 {
            use arrow::array::{Array, AsArray};
            let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
            let hashes = b.column_by_name("phone_hash").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                total += 1;
                if hashes.is_valid(i) {
                    hashed += 1;
                    assert_eq!(Some(hashes.value(i).to_string()), expected[ids.value(i)]);
                }
            }
        }
        assert!(total > 0);
        if decrypt {
            assert_eq!(hashed, total, "every receiver decrypted and hashed");
        } else {
            assert!(
                hashed < total,
                "without decrypt only clear phones are hashed"
            );
        }
    }
    top.handle.stop().await;
}

/// The official Taobao SDK (taobao-sdk-python3), pointed at the sandbox,
/// signs its own requests and gets every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_requests_are_accepted() {
    let top = Top::start(FaultConfig::default(), 300, SignMethod::Md5).await;
    let as_of = top.sandbox.as_of().timestamp();
    let mut got = 0;
    for i in 0..top.sandbox.shops().len() {
        let args: Vec<String> = [
            "--base-url",
            &top.handle.base_url(),
            "--app-key",
            &top.sandbox.config().app_key,
            "--secret",
            SECRET,
            "--token",
            &top.sandbox.config().session_for(i),
            "--start",
            &(as_of - 6 * 86_400).to_string(),
            "--end",
            &(as_of + 1).to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_check.py");
        let Some(out) = conformance::run_sdk_check(&script, &args) else {
            top.handle.stop().await;
            return;
        };
        got += out["orders"].as_u64().unwrap();
    }
    assert_eq!(got as usize, top.sandbox.visible_trades().len());
    top.handle.stop().await;
}

/// Two shops of one app key share the key's budget: their requests together
/// stay within `qps` (governor, burst = qps), however the work is split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shops_of_one_app_key_share_its_rate_budget() {
    let top = Top::start(FaultConfig::default(), 300, SignMethod::Md5).await;
    let mut cfg = top.config(SECRET);
    assert!(cfg.shops.len() >= 2, "two shops under one app key");
    cfg.qps = 4;
    cfg.page_size = 20;
    cfg.window_minutes = 12 * 60;
    let setup = ConnectorSetup::new(conformance::fast_retry_policy());
    let streams = build_streams(&cfg, &setup).unwrap();
    let before = top.sandbox.requests();
    let started = std::time::Instant::now();
    // Both shops pull at the same time.
    let (a, b) = (streams[0].clone(), streams[1].clone());
    let run = |s: Arc<dyn Stream>| async move {
        let mut lake = MemoryLake::default();
        lake.run(&[s], None).await.unwrap();
        lake.keys().len()
    };
    let (na, nb) = tokio::join!(run(a), run(b));
    let elapsed = started.elapsed().as_secs_f64();
    let requests = (top.sandbox.requests() - before) as f64;
    assert!(na > 0 && nb > 0);
    // A token bucket of 4/s with a burst of 4 admits at most 4 + 4·t requests by t.
    assert!(
        requests <= 4.0 + 4.0 * elapsed + 1.0,
        "{requests} requests in {elapsed:.1}s exceed one shared budget of 4/s"
    );
    // (With a budget per shop, two shops would make about 8 + 8·t.)
    assert!(
        requests >= 12.0,
        "enough requests to tell one budget from two"
    );
    top.handle.stop().await;
}
