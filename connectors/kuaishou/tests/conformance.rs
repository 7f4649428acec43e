//! The shared conformance suite against the Kuaishou sandbox, plus
//! Kuaishou-specific checks (signature rejection, window/page limits, token
//! refresh persisting across a restart, decrypt, re-pull after updates, the
//! official SDK).

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
use quanyu_kuaishou::sandbox::{KuaishouSandbox, KuaishouSandboxConfig};
use quanyu_kuaishou::{build_streams, KsClient, KuaishouConfig, KuaishouShop, SignMethod};
use quanyu_schemas::Channel;

const APP_SECRET: &str = "sandbox-app-secret-0123";
const SIGN_SECRET: &str = "sandbox-sign-secret-4567";

struct Ks {
    sandbox: KuaishouSandbox,
    handle: SandboxHandle,
    sign_method: SignMethod,
}

impl Ks {
    async fn start(faults: FaultConfig, orders: usize, sign_method: SignMethod) -> Ks {
        let now = Utc::now();
        let mut world = WorldConfig::demo(now, orders);
        world.start = now - Duration::days(5);
        world.days = 5;
        world.shops = WorldShop::only(Channel::Kuaishou);
        let sandbox = KuaishouSandbox::new(KuaishouSandboxConfig {
            app_key: "ks123".into(),
            app_secret: APP_SECRET.into(),
            sign_secret: SIGN_SECRET.into(),
            world,
            faults,
            as_of: Some(now),
            token_ttl_secs: 3600,
        });
        let handle = sandbox.serve(loopback_any_port()).await.unwrap();
        Ks {
            sandbox,
            handle,
            sign_method,
        }
    }

    fn config(&self, sign_secret: &str) -> KuaishouConfig {
        let cfg = self.sandbox.config();
        KuaishouConfig {
            gateway: self.handle.base_url(),
            oauth_base: None,
            app_key: cfg.app_key.clone(),
            app_secret: SecretRef::inline(APP_SECRET),
            sign_secret: SecretRef::inline(sign_secret),
            sign_method: self.sign_method,
            qps: 0,
            shop_qps: 0,
            page_size: 50,
            window_minutes: 3 * 24 * 60,
            lookback_minutes: 60,
            initial_days: 6,
            decrypt: false,
            decrypt_qps: 0,
            shops: self
                .sandbox
                .shops()
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let (at, rt) = self.sandbox.tokens_for(i);
                    KuaishouShop {
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
impl Running for Ks {
    fn streams(&self, good: bool) -> Vec<Arc<dyn Stream>> {
        build_streams(
            &self.config(if good {
                SIGN_SECRET
            } else {
                "wrong-sign-secret"
            }),
            &ConnectorSetup::new(conformance::fast_retry_policy()),
        )
        .unwrap()
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.sandbox
            .visible_orders()
            .into_iter()
            .map(|o| vec!["kuaishou".into(), o.shop, o.order_id])
            .collect()
    }
    fn secret(&self) -> String {
        SIGN_SECRET.into()
    }
    fn expire_tokens(&self) -> bool {
        self.sandbox.expire_tokens();
        true
    }
    async fn stop(self: Box<Self>) {
        self.handle.stop().await;
    }
}

struct KsHarness(SignMethod);

#[async_trait]
impl Harness for KsHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(Ks::start(faults, 400, self.0).await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_md5() {
    conformance::run_all(&KsHarness(SignMethod::Md5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hmac_sha256_straight_faults_and_expiry() {
    let h = KsHarness(SignMethod::HmacSha256);
    conformance::check_straight_run(&h).await;
    conformance::check_exactly_once_under_faults(&h).await;
    conformance::check_token_expiry(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_an_auth_error_with_the_platform_envelope() {
    let ks = Ks::start(FaultConfig::default(), 100, SignMethod::Md5).await;
    let mut lake = MemoryLake::default();
    let err = lake.run(&ks.streams(false), None).await.unwrap_err();
    let PullError::Connector(e) = err else {
        panic!("expected a connector error, got {err}")
    };
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code.as_deref(), Some("24"));
    let text = e.to_string();
    assert!(text.contains("kuaishou"), "{text}");
    assert!(text.contains("open.order.cursor.list"), "{text}");
    assert!(
        ks.sandbox.shops().iter().any(|s| text.contains(s.as_str())),
        "{text}"
    );
    assert!(text.contains("签名验证失败"), "{text}");
    assert!(!text.contains(SIGN_SECRET) && !text.contains("wrong-sign-secret"));
    assert!(!text.contains(APP_SECRET));
    ks.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pull_updates_orders_without_duplicates() {
    let ks = Ks::start(FaultConfig::default(), 300, SignMethod::Md5).await;
    let streams = ks.streams(true);
    let now = ks.sandbox.as_of();
    ks.sandbox.set_as_of(now - Duration::days(2));
    let mut lake = MemoryLake::default();
    lake.run_at(&streams, None, now - Duration::days(2))
        .await
        .unwrap();
    let first = lake.rows.clone();
    ks.sandbox.set_as_of(now);
    lake.run(&streams, None).await.unwrap();
    let expected = ks.expected_keys();
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
    Box::new(ks).stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_page_limits_are_enforced() {
    let ks = Ks::start(FaultConfig::default(), 50, SignMethod::Md5).await;
    let setup = ConnectorSetup::new(conformance::fast_retry_policy());
    let mut cfg = ks.config(SIGN_SECRET);
    cfg.window_minutes = 8 * 24 * 60;
    let err = build_streams(&cfg, &setup).err().unwrap();
    assert!(err.to_string().contains("seven days"), "{err}");
    cfg.window_minutes = 60;
    cfg.page_size = 51;
    assert!(build_streams(&cfg, &setup).is_err());
    // The gateway itself refuses both, with its business envelope.
    let client = KsClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &ks.handle.base_url(),
        &ks.handle.base_url(),
        "ks123",
        Secret::new(APP_SECRET),
        Secret::new(SIGN_SECRET),
        SignMethod::Md5,
    );
    let (at, rt) = ks.sandbox.tokens_for(0);
    let token = ShopToken::open(
        &TokenStore::memory(),
        "t",
        Some(TokenSet::configured(Secret::new(at), Some(Secret::new(rt)))),
    )
    .unwrap();
    let ctx = RequestContext::new("kuaishou", Some("s"), "open.order.cursor.list");
    let end = ks.sandbox.as_of().timestamp_millis();
    for (begin, size, why) in [
        (end - 8 * 86_400_000, 50, "7天"),
        (end - 86_400_000, 51, "pageSize"),
    ] {
        let param = serde_json::json!({"orderViewStatus":1,"pageSize":size,"sort":1,"queryType":2,
            "beginTime":begin,"endTime":end,"cursor":""})
        .to_string();
        let e = client
            .call(&ctx, "open.order.cursor.list", &token, &param, true)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e}");
        assert_eq!(e.code.as_deref(), Some("2001"));
        assert!(e.message.contains(why), "{e}");
    }
    // A valid call by GET and by POST both succeed.
    let param = serde_json::json!({"orderViewStatus":1,"pageSize":50,"sort":1,"queryType":2,
        "beginTime":end - 86_400_000,"endTime":end,"cursor":""})
    .to_string();
    for post in [false, true] {
        client
            .call(&ctx, "open.order.cursor.list", &token, &param, post)
            .await
            .unwrap();
    }
    ks.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_tokens_persist_across_a_restart() {
    let ks = Ks::start(FaultConfig::default(), 200, SignMethod::Md5).await;
    let dir = std::env::temp_dir().join(format!("quanyu-ks-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || {
        let mut s = ConnectorSetup::new(conformance::fast_retry_policy());
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let cfg = ks.config(SIGN_SECRET);
    let shops = ks.sandbox.shops().len() as u64;
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(ks.sandbox.refreshes(), 0);
    ks.sandbox.expire_tokens();
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("expired tokens are refreshed");
    assert_eq!(ks.sandbox.refreshes(), shops, "one refresh per shop");
    // A restart with the same (now stale) configured tokens uses the
    // persisted pair: no further refresh (the old refresh token is spent).
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("the persisted tokens work after a restart");
    assert_eq!(ks.sandbox.refreshes(), shops);
    assert!(lake.keys() == ks.expected_keys());
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
    std::fs::remove_dir_all(&dir).unwrap();
    ks.handle.stop().await;
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
    let ks = Ks::start(FaultConfig::default(), 300, SignMethod::HmacSha256).await;
    let hasher = PiiHasher::new(&LakeKey::from_bytes([7; 32]));
    let ctx = PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: hasher.clone(),
    };
    let windows: Vec<_> = (0..3)
        .map(|d| quanyu_connector_sdk::Window {
            start: ks.sandbox.as_of() - Duration::days(6 - 3 * d),
            end: ks.sandbox.as_of() - Duration::days(3 - 3 * d) + Duration::seconds(1),
        })
        .collect();
    let world = ks.sandbox.world().clone();
    let expected: std::collections::HashMap<String, Option<String>> = world
        .purchases
        .iter()
        .filter(|p| p.channel == Channel::Kuaishou)
        .map(|p| {
            let phone = &world.receiver(p).phone;
            (world.order_id(p), hasher.phone_text(phone))
        })
        .collect();
    for decrypt in [false, true] {
        let mut cfg = ks.config(SIGN_SECRET);
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
        assert_eq!(total, ks.sandbox.visible_orders().len());
        assert_eq!(masked, total, "every row keeps the mask");
        if decrypt {
            assert_eq!(hashed, total, "every receiver decrypted and hashed");
        } else {
            assert_eq!(
                hashed, 0,
                "Kuaishou phones are ciphertext: no hash without decrypt"
            );
        }
    }
    ks.handle.stop().await;
}

/// The official Kuaishou SDK (ks-shop-python-sdk), pointed at the sandbox,
/// signs its own requests and gets every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_requests_are_accepted() {
    let ks = Ks::start(FaultConfig::default(), 300, SignMethod::Md5).await;
    let as_of = ks.sandbox.as_of().timestamp();
    let mut got = 0;
    for i in 0..ks.sandbox.shops().len() {
        let args: Vec<String> = [
            "--base-url",
            &ks.handle.base_url(),
            "--app-key",
            &ks.sandbox.config().app_key,
            "--secret",
            APP_SECRET,
            "--sign-secret",
            SIGN_SECRET,
            "--token",
            &ks.sandbox.tokens_for(i).0,
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
            ks.handle.stop().await;
            return;
        };
        got += out["orders"].as_u64().unwrap();
    }
    assert_eq!(got as usize, ks.sandbox.visible_orders().len());
    ks.handle.stop().await;
}
