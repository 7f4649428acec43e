//! The shared conformance suite against the Douyin shop sandbox, plus
//! Douyin-specific checks (signature rejection, window/page limits, token
//! refresh persisting across a restart, self-authorized tokens, decrypt,
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
use quanyu_douyin::sandbox::{DouyinSandbox, DouyinSandboxConfig};
use quanyu_douyin::{build_streams, DouyinConfig, DouyinShop, DyClient, SignMethod, SEARCH_API};
use quanyu_schemas::Channel;

const SECRET: &str = "sandbox-douyin-secret-0123";

struct Dy {
    sandbox: DouyinSandbox,
    handle: SandboxHandle,
}

impl Dy {
    async fn start(faults: FaultConfig, orders: usize) -> Dy {
        // The sandbox clock runs ten minutes behind the client, so the
        // connector's three-minute end lag never hides a change.
        let now = Utc::now() - Duration::minutes(10);
        let mut world = WorldConfig::demo(now, orders);
        world.start = now - Duration::days(2);
        world.days = 2;
        world.shops = WorldShop::only(Channel::Douyin);
        let sandbox = DouyinSandbox::new(DouyinSandboxConfig {
            app_key: "dy-app-1".into(),
            app_secret: SECRET.into(),
            world,
            faults,
            as_of: Some(now),
            token_ttl_secs: 3600,
        });
        let handle = sandbox.serve(loopback_any_port()).await.unwrap();
        Dy { sandbox, handle }
    }

    fn config(&self, secret: &str) -> DouyinConfig {
        DouyinConfig {
            gateway: self.handle.base_url(),
            app_key: self.sandbox.config().app_key.clone(),
            app_secret: SecretRef::inline(secret),
            sign_method: SignMethod::HmacSha256,
            qps: 0,
            shop_qps: 0,
            page_size: 100,
            window_minutes: 24 * 60,
            lookback_minutes: 60,
            initial_days: 3,
            decrypt: false,
            decrypt_qps: 0,
            shops: self
                .sandbox
                .shops()
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let (at, rt) = self.sandbox.tokens_for(i);
                    DouyinShop {
                        id: id.clone(),
                        shop_id: None,
                        self_authorize: false,
                        access_token: Some(SecretRef::inline(at)),
                        refresh_token: Some(SecretRef::inline(rt)),
                    }
                })
                .collect(),
        }
    }
}

#[async_trait]
impl Running for Dy {
    fn streams(&self, good: bool) -> Vec<Arc<dyn Stream>> {
        build_streams(
            &self.config(if good { SECRET } else { "wrong-app-secret" }),
            &ConnectorSetup::new(conformance::fast_retry_policy()),
        )
        .unwrap()
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.sandbox
            .visible_orders()
            .into_iter()
            .map(|o| vec!["douyin".into(), o.shop, o.order_id])
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

struct DyHarness;

#[async_trait]
impl Harness for DyHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(Dy::start(faults, 300).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    conformance::run_all(&DyHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_an_auth_error_with_the_platform_envelope() {
    let dy = Dy::start(FaultConfig::default(), 100).await;
    let mut lake = MemoryLake::default();
    let err = lake.run(&dy.streams(false), None).await.unwrap_err();
    let PullError::Connector(e) = err else {
        panic!("expected a connector error, got {err}")
    };
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code.as_deref(), Some("40004"));
    let text = e.to_string();
    assert!(text.contains("douyin"), "{text}");
    assert!(text.contains(SEARCH_API), "{text}");
    assert!(
        dy.sandbox.shops().iter().any(|s| text.contains(s.as_str())),
        "{text}"
    );
    assert!(text.contains("签名错误"), "{text}");
    assert!(!text.contains(SECRET) && !text.contains("wrong-app-secret"));
    dy.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pull_updates_orders_without_duplicates() {
    let dy = Dy::start(FaultConfig::default(), 300).await;
    let streams = dy.streams(true);
    let now = dy.sandbox.as_of();
    dy.sandbox.set_as_of(now - Duration::days(1));
    let mut lake = MemoryLake::default();
    lake.run_at(
        &streams,
        None,
        now - Duration::days(1) + Duration::minutes(10),
    )
    .await
    .unwrap();
    let first = lake.rows.clone();
    dy.sandbox.set_as_of(now);
    lake.run(&streams, None).await.unwrap();
    let expected = dy.expected_keys();
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
    Box::new(dy).stop().await;
}

fn direct_client(dy: &Dy) -> (DyClient, ShopToken) {
    let client = DyClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &dy.handle.base_url(),
        &dy.sandbox.config().app_key,
        Secret::new(SECRET),
        SignMethod::Md5,
    );
    let (at, rt) = dy.sandbox.tokens_for(0);
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
    let dy = Dy::start(FaultConfig::default(), 50).await;
    let setup = ConnectorSetup::new(conformance::fast_retry_policy());
    let mut cfg = dy.config(SECRET);
    cfg.window_minutes = 7 * 24 * 60 + 1;
    let err = build_streams(&cfg, &setup).err().unwrap();
    assert!(err.to_string().contains("seven days"), "{err}");
    cfg.window_minutes = 60;
    cfg.page_size = 101;
    assert!(build_streams(&cfg, &setup).is_err());
    // The gateway itself refuses both (an md5-signed client this time).
    let (client, token) = direct_client(&dy);
    let ctx = RequestContext::new("douyin", Some("s"), SEARCH_API);
    let end = dy.sandbox.as_of().timestamp();
    for (start, size, why) in [
        (end - 7 * 86_400 - 1, 100, "7天"),
        (end - 3600, 101, "size"),
    ] {
        let param = serde_json::json!({"page": 0, "size": size, "update_time_start": start,
            "update_time_end": end, "order_by": "update_time", "order_asc": false});
        let e = client
            .call(&ctx, SEARCH_API, &token, None, &param)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e}");
        assert_eq!(e.code.as_deref(), Some("40003"));
        assert!(e.message.contains(why), "{e}");
    }
    let param = serde_json::json!({"page": 0, "size": 100, "update_time_start": end - 3600,
        "update_time_end": end});
    client
        .call(&ctx, SEARCH_API, &token, None, &param)
        .await
        .expect("an md5-signed call is accepted");
    dy.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_tokens_persist_across_a_restart() {
    let dy = Dy::start(FaultConfig::default(), 200).await;
    let dir = std::env::temp_dir().join(format!("quanyu-dy-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || {
        let mut s = ConnectorSetup::new(conformance::fast_retry_policy());
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let cfg = dy.config(SECRET);
    let shops = dy.sandbox.shops().len() as u64;
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(dy.sandbox.refreshes(), 0);
    dy.sandbox.expire_tokens();
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("expired tokens are refreshed");
    assert_eq!(dy.sandbox.refreshes(), shops, "one refresh per shop");
    // A restart with the same (now stale) configured tokens uses the
    // persisted pair: no further refresh (the old refresh token is spent).
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("the persisted tokens work after a restart");
    assert_eq!(dy.sandbox.refreshes(), shops);
    assert!(lake.keys() == dy.expected_keys());
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
    assert!(e.to_string().contains("token.refresh"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    dy.handle.stop().await;
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
    let dy = Dy::start(FaultConfig::default(), 150).await;
    let hasher = PiiHasher::new(&LakeKey::from_bytes([7; 32]));
    let ctx = PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: hasher.clone(),
    };
    let as_of = dy.sandbox.as_of();
    let windows: Vec<_> = (0..(3 * 48))
        .map(|k| quanyu_connector_sdk::Window {
            start: as_of - Duration::minutes(30 * (3 * 48 - k)) + Duration::seconds(1),
            end: as_of - Duration::minutes(30 * (3 * 48 - k - 1)) + Duration::seconds(1),
        })
        .collect();
    let world = dy.sandbox.world().clone();
    let expected: std::collections::HashMap<String, Option<String>> = world
        .purchases
        .iter()
        .filter(|p| p.channel == Channel::Douyin)
        .map(|p| {
            let phone = &world.receiver(p).phone;
            (world.order_id(p), hasher.phone_text(phone))
        })
        .collect();
    for decrypt in [false, true] {
        let mut cfg = dy.config(SECRET);
        cfg.decrypt = decrypt;
        let streams =
            build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
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
        assert_eq!(total, dy.sandbox.visible_orders().len());
        assert_eq!(masked, total, "every row keeps the mask");
        if decrypt {
            assert_eq!(hashed, total, "every receiver decrypted and hashed");
        } else {
            assert_eq!(hashed, 0, "ciphertext only: no hash without decrypt");
        }
    }
    dy.handle.stop().await;
}

/// A self-built app needs no configured token: the connector creates one
/// per shop through `/token/create` (`authorization_self`), persists it,
/// refreshes it when it expires, and a restart reuses the stored pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_authorized_tokens_are_created_persisted_and_refreshed() {
    let dy = Dy::start(FaultConfig::default(), 200).await;
    let dir = std::env::temp_dir().join(format!("quanyu-dy-self-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || {
        let mut s = ConnectorSetup::new(conformance::fast_retry_policy());
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let mut cfg = dy.config(SECRET);
    for s in &mut cfg.shops {
        s.access_token = None;
        s.refresh_token = None;
        s.self_authorize = true;
    }
    let shops = dy.sandbox.shops().len() as u64;
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(dy.sandbox.creates(), shops, "one token created per shop");
    assert!(lake.keys() == dy.expected_keys());
    dy.sandbox.expire_tokens();
    MemoryLake::default()
        .run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("expired tokens are refreshed");
    assert_eq!(dy.sandbox.refreshes(), shops);
    assert_eq!(dy.sandbox.creates(), shops);
    MemoryLake::default()
        .run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        dy.sandbox.creates(),
        shops,
        "a restart reuses the stored pair"
    );
    assert_eq!(dy.sandbox.refreshes(), shops);
    // A tool app's shop without a token is a configuration error.
    cfg.shops[0].self_authorize = false;
    let err = build_streams(&cfg, &setup()).err().unwrap();
    assert!(err.to_string().contains("access_token"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    dy.handle.stop().await;
}

/// Two shops of one app key share its one budget: at 4 requests per
/// second the two shops' calls together never exceed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shops_share_one_app_budget() {
    let dy = Dy::start(FaultConfig::default(), 20).await;
    let mut cfg = dy.config(SECRET);
    assert!(
        cfg.shops.len() >= 2,
        "the demo world has two Pinduoduo shops"
    );
    cfg.qps = 4;
    cfg.initial_days = 1;
    let streams =
        build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
    let as_of = dy.sandbox.as_of();
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
    let before = dy.sandbox.requests();
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
    let calls = dy.sandbox.requests() - before;
    assert!(calls >= 12, "{calls}");
    // 4 at once (the burst), then 4 per second.
    let floor = (calls - 4) as f64 / 4.0;
    assert!(
        started.elapsed().as_secs_f64() >= floor - 0.3,
        "{calls} calls in {:?}",
        started.elapsed()
    );
    dy.handle.stop().await;
}

/// The official Douyin shop SDK (doudian on PyPI), pointed at the sandbox,
/// creates its own token (`authorization_self`), signs its own requests
/// and gets every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_requests_are_accepted() {
    let dy = Dy::start(FaultConfig::default(), 150).await;
    let as_of = dy.sandbox.as_of().timestamp();
    let mut got = 0;
    for shop in dy.sandbox.shops() {
        let args: Vec<String> = [
            "--base-url",
            &dy.handle.base_url(),
            "--app-key",
            &dy.sandbox.config().app_key,
            "--secret",
            SECRET,
            "--shop-id",
            &shop,
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
            dy.handle.stop().await;
            return;
        };
        got += out["orders"].as_u64().unwrap();
    }
    assert_eq!(got as usize, dy.sandbox.visible_orders().len());
    assert!(dy.sandbox.creates() > 0, "the SDK created its tokens");
    dy.handle.stop().await;
}
