//! The shared conformance suite against the Pinduoduo sandbox, plus
//! Pinduoduo-specific checks (signature rejection, window/page limits,
//! token refresh persisting across a restart, decrypt with its own budget,
//! re-pull after updates, two shops sharing one app budget, the official
//! SDK).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::conformance::{self, Harness, Key, MemoryLake, Running};
use quanyu_connector_sdk::sandbox::world::{WorldConfig, WorldShop};
use quanyu_connector_sdk::sandbox::{loopback_any_port, FaultConfig, SandboxHandle};
use quanyu_connector_sdk::{
    ApiClient, ConnectorSetup, ErrorKind, PullError, RequestContext, Secret, SecretRef, ShopToken,
    Stream, TokenSet, TokenStore,
};
use quanyu_pdd::sandbox::{PddSandbox, PddSandboxConfig};
use quanyu_pdd::{build_streams, PddClient, PddConfig, PddShop, INCREMENT_API};
use quanyu_schemas::Channel;

const SECRET: &str = "sandbox-client-secret-0123";

struct Pdd {
    sandbox: PddSandbox,
    handle: SandboxHandle,
}

impl Pdd {
    async fn start(faults: FaultConfig, orders: usize) -> Pdd {
        // The sandbox clock runs ten minutes behind the client, so the
        // connector's three-minute end lag never hides a change.
        let now = Utc::now() - Duration::minutes(10);
        let mut world = WorldConfig::demo(now, orders);
        world.start = now - Duration::days(2);
        world.days = 2;
        world.shops = WorldShop::only(Channel::Pdd);
        let sandbox = PddSandbox::new(PddSandboxConfig {
            client_id: "pdd-client-1".into(),
            client_secret: SECRET.into(),
            world,
            faults,
            as_of: Some(now),
            token_ttl_secs: 3600,
        });
        let handle = sandbox.serve(loopback_any_port()).await.unwrap();
        Pdd { sandbox, handle }
    }

    fn config(&self, secret: &str) -> PddConfig {
        PddConfig {
            router: format!("{}/api/router", self.handle.base_url()),
            client_id: self.sandbox.config().client_id.clone(),
            client_secret: SecretRef::inline(secret),
            qps: 0,
            shop_qps: 0,
            page_size: 100,
            window_minutes: 30,
            lookback_minutes: 30,
            initial_days: 3,
            decrypt: false,
            decrypt_interval_secs: 0,
            shops: self
                .sandbox
                .shops()
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let (at, rt) = self.sandbox.tokens_for(i);
                    PddShop {
                        id: id.clone(),
                        access_token: SecretRef::inline(at),
                        refresh_token: Some(SecretRef::inline(rt)),
                    }
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Running for Pdd {
    fn streams(&self, good: bool) -> Vec<Arc<dyn Stream>> {
        build_streams(
            &self.config(if good { SECRET } else { "wrong-client-secret" }),
            &ConnectorSetup::new(conformance::fast_retry_policy()),
        )
        .unwrap()
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.sandbox
            .visible_orders()
            .into_iter()
            .map(|o| vec!["pdd".into(), o.shop, o.order_id])
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

struct PddHarness;

#[async_trait]
impl Harness for PddHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(Pdd::start(faults, 300).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    conformance::run_all(&PddHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_an_auth_error_with_the_platform_envelope() {
    let pdd = Pdd::start(FaultConfig::default(), 100).await;
    let mut lake = MemoryLake::default();
    let err = lake.run(&pdd.streams(false), None).await.unwrap_err();
    let PullError::Connector(e) = err else {
        panic!("expected a connector error, got {err}")
    };
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code.as_deref(), Some("20004"));
    let text = e.to_string();
    assert!(text.contains("pdd"), "{text}");
    assert!(text.contains(INCREMENT_API), "{text}");
    assert!(
        pdd.sandbox
            .shops()
            .iter()
            .any(|s| text.contains(s.as_str())),
        "{text}"
    );
    assert!(text.contains("签名错误"), "{text}");
    assert!(!text.contains(SECRET) && !text.contains("wrong-client-secret"));
    pdd.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pull_updates_orders_without_duplicates() {
    let pdd = Pdd::start(FaultConfig::default(), 300).await;
    let streams = pdd.streams(true);
    let now = pdd.sandbox.as_of();
    pdd.sandbox.set_as_of(now - Duration::days(1));
    let mut lake = MemoryLake::default();
    lake.run_at(
        &streams,
        None,
        now - Duration::days(1) + Duration::minutes(10),
    )
    .await
    .unwrap();
    let first = lake.rows.clone();
    pdd.sandbox.set_as_of(now);
    lake.run(&streams, None).await.unwrap();
    let expected = pdd.expected_keys();
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
    Box::new(pdd).stop().await;
}

fn direct_client(pdd: &Pdd) -> (PddClient, ShopToken) {
    let client = PddClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &format!("{}/api/router", pdd.handle.base_url()),
        &pdd.sandbox.config().client_id,
        Secret::new(SECRET),
    );
    let (at, rt) = pdd.sandbox.tokens_for(0);
    let token = ShopToken::open(
        &TokenStore::memory(),
        "t",
        Some(TokenSet::configured(Secret::new(at), Some(Secret::new(rt)))),
    )
    .unwrap();
    (client, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_page_limits_are_enforced() {
    let pdd = Pdd::start(FaultConfig::default(), 50).await;
    let setup = ConnectorSetup::new(conformance::fast_retry_policy());
    let mut cfg = pdd.config(SECRET);
    cfg.window_minutes = 31;
    let err = build_streams(&cfg, &setup).err().unwrap();
    assert!(err.to_string().contains("30 minutes"), "{err}");
    cfg.window_minutes = 30;
    cfg.page_size = 101;
    assert!(build_streams(&cfg, &setup).is_err());
    // The router itself refuses both, with its business error.
    let (client, token) = direct_client(&pdd);
    let ctx = RequestContext::new("pdd", Some("s"), INCREMENT_API);
    let end = pdd.sandbox.as_of().timestamp();
    for (start, size, why) in [
        (end - 1801, "100", "30分钟"),
        (end - 1800, "101", "page_size"),
    ] {
        let start = start.to_string();
        let end = end.to_string();
        let e = client
            .call(
                &ctx,
                INCREMENT_API,
                &token,
                &[
                    ("start_updated_at", &start),
                    ("end_updated_at", &end),
                    ("page", "1"),
                    ("page_size", size),
                ],
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e}");
        assert_eq!(e.code.as_deref(), Some("10000"));
        assert!(e.message.contains(why), "{e}");
    }
    pdd.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_tokens_persist_across_a_restart() {
    let pdd = Pdd::start(FaultConfig::default(), 200).await;
    let dir = std::env::temp_dir().join(format!("quanyu-pdd-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || {
        let mut s = ConnectorSetup::new(conformance::fast_retry_policy());
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let cfg = pdd.config(SECRET);
    let shops = pdd.sandbox.shops().len() as u64;
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(pdd.sandbox.refreshes(), 0);
    pdd.sandbox.expire_tokens();
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("expired tokens are refreshed");
    assert_eq!(pdd.sandbox.refreshes(), shops, "one refresh per shop");
    // A restart with the same (now stale) configured tokens uses the
    // persisted pair: no further refresh (the old refresh token is spent).
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("the persisted tokens work after a restart");
    assert_eq!(pdd.sandbox.refreshes(), shops);
    assert!(lake.keys() == pdd.expected_keys());
    // Without the store, the configured token is dead and its refresh
    // token spent: the restart fails with an auth error.
    let err = MemoryLake::default()
        .run(
            &build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap(),
            None,
        )
        .await
        .unwrap_err();
    let PullError::Connector(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.to_string().contains("pdd.pop.auth.token.refresh"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    pdd.handle.stop().await;
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
    let pdd = Pdd::start(FaultConfig::default(), 150).await;
    let hasher = PiiHasher::new(&LakeKey::from_bytes([7; 32]));
    let ctx = PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: hasher.clone(),
    };
    let as_of = pdd.sandbox.as_of();
    let windows: Vec<_> = (0..(3 * 48))
        .map(|k| quanyu_connector_sdk::Window {
            start: as_of - Duration::minutes(30 * (3 * 48 - k)) + Duration::seconds(1),
            end: as_of - Duration::minutes(30 * (3 * 48 - k - 1)) + Duration::seconds(1),
        })
        .collect();
    let world = pdd.sandbox.world().clone();
    let expected: std::collections::HashMap<String, Option<String>> = world
        .purchases
        .iter()
        .filter(|p| p.channel == Channel::Pdd)
        .map(|p| {
            let phone = &world.receiver(p).phone;
            (world.order_id(p), hasher.phone_text(phone))
        })
        .collect();
    for decrypt in [false, true] {
        let mut cfg = pdd.config(SECRET);
        cfg.decrypt = decrypt;
        cfg.decrypt_interval_secs = 0;
        let streams =
            build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
        let calls_before = pdd.sandbox.decrypt_calls();
        let mut rows = Rows(vec![]);
        for s in &streams {
            for w in &windows {
                s.pull(*w, &ctx, &mut rows).await.unwrap();
            }
        }
        let (mut hashed, mut masked, mut total) = (0, 0, 0);
        for b in &rows.0 {
            use arrow::array::{Array, AsArray};
            let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
            let hashes = b.column_by_name("phone_hash").unwrap().as_string::<i32>();
            let masks = b.column_by_name("phone_masked").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                total += 1;
                if masks.is_valid(i) {
                    masked += 1;
                    assert!(masks.value(i).contains("****"));
                }
                if hashes.is_valid(i) {
                    hashed += 1;
                    assert_eq!(Some(hashes.value(i).to_string()), expected[ids.value(i)]);
                }
            }
        }
        assert_eq!(total, pdd.sandbox.visible_orders().len());
        assert_eq!(masked, total, "every row keeps the mask");
        if decrypt {
            assert_eq!(hashed, total, "every receiver decrypted and hashed");
            assert!(pdd.sandbox.decrypt_calls() > calls_before);
        } else {
            assert_eq!(hashed, 0, "ciphertext only: no hash without decrypt");
            assert_eq!(pdd.sandbox.decrypt_calls(), calls_before);
        }
    }
    pdd.handle.stop().await;
}

/// The decrypt budget is the connector's own: with one call per 10 s, two
/// pages with ciphertexts take at least 10 s, while the list calls are not
/// held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decrypt_calls_keep_their_own_interval() {
    let pdd = Pdd::start(FaultConfig::default(), 300).await;
    let mut cfg = pdd.config(SECRET);
    cfg.decrypt = true;
    cfg.decrypt_interval_secs = 2;
    cfg.shops.truncate(1);
    let streams =
        build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
    let as_of = pdd.sandbox.as_of();
    let ctx = quanyu_connector_sdk::PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([7; 32])),
    };
    struct Nothing;
    #[async_trait]
    impl quanyu_connector_sdk::PageSink for Nothing {
        async fn page(
            &mut self,
            _: quanyu_connector_sdk::NormalizedPage,
        ) -> Result<(), quanyu_connector_sdk::SinkError> {
            Ok(())
        }
    }
    let started = std::time::Instant::now();
    let before = pdd.sandbox.decrypt_calls();
    let mut k = 0;
    while pdd.sandbox.decrypt_calls() < before + 3 && k < 2 * 48 {
        let w = quanyu_connector_sdk::Window {
            start: as_of - Duration::minutes(30 * (k + 1)),
            end: as_of - Duration::minutes(30 * k),
        };
        streams[0].pull(w, &ctx, &mut Nothing).await.unwrap();
        k += 1;
    }
    assert_eq!(
        pdd.sandbox.decrypt_calls(),
        before + 3,
        "three pages with ciphertexts"
    );
    // Three calls at one per 2 s: the second and third wait.
    assert!(started.elapsed() >= std::time::Duration::from_millis(3_900));
    pdd.handle.stop().await;
}

/// Two shops of one client_id share its one budget: at 4 requests per
/// second the two shops' calls together never exceed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shops_share_one_app_budget() {
    let pdd = Pdd::start(FaultConfig::default(), 20).await;
    let mut cfg = pdd.config(SECRET);
    assert!(
        cfg.shops.len() >= 2,
        "the demo world has two Pinduoduo shops"
    );
    cfg.qps = 4;
    cfg.initial_days = 1;
    let streams =
        build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
    let as_of = pdd.sandbox.as_of();
    let ctx = quanyu_connector_sdk::PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([7; 32])),
    };
    struct Nothing;
    #[async_trait]
    impl quanyu_connector_sdk::PageSink for Nothing {
        async fn page(
            &mut self,
            _: quanyu_connector_sdk::NormalizedPage,
        ) -> Result<(), quanyu_connector_sdk::SinkError> {
            Ok(())
        }
    }
    let before = pdd.sandbox.requests();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = streams
        .iter()
        .take(2)
        .map(|s| {
            let s = s.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for k in 0..6 {
                    let w = quanyu_connector_sdk::Window {
                        start: as_of - Duration::minutes(30 * (k + 1)),
                        end: as_of - Duration::minutes(30 * k),
                    };
                    s.pull(w, &ctx, &mut Nothing).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let calls = pdd.sandbox.requests() - before;
    assert!(calls >= 12, "{calls}");
    // 4 at once (the burst), then 4 per second.
    let floor = (calls - 4) as f64 / 4.0;
    assert!(
        started.elapsed().as_secs_f64() >= floor - 0.3,
        "{calls} calls in {:?}",
        started.elapsed()
    );
    pdd.handle.stop().await;
}

/// The official Pinduoduo SDK (pdd-sdk), pointed at the sandbox, signs its
/// own requests and gets every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_requests_are_accepted() {
    let pdd = Pdd::start(FaultConfig::default(), 150).await;
    let as_of = pdd.sandbox.as_of().timestamp();
    let url = url::Url::parse(&pdd.handle.base_url()).unwrap();
    let mut got = 0;
    for i in 0..pdd.sandbox.shops().len() {
        let args: Vec<String> = [
            "--host",
            url.host_str().unwrap(),
            "--port",
            &url.port().unwrap().to_string(),
            "--client-id",
            &pdd.sandbox.config().client_id,
            "--secret",
            SECRET,
            "--token",
            &pdd.sandbox.tokens_for(i).0,
            "--start",
            &(as_of - 3 * 86_400).to_string(),
            "--end",
            &(as_of + 1).to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_check.py");
        let Some(out) = conformance::run_sdk_check(&script, &args) else {
            pdd.handle.stop().await;
            return;
        };
        got += out["orders"].as_u64().unwrap();
    }
    assert_eq!(got as usize, pdd.sandbox.visible_orders().len());
    pdd.handle.stop().await;
}
