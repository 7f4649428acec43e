//! The shared conformance suite against the JD sandbox, plus JD-specific
//! checks (signature rejection with JD's envelope, gateway parameter checks,
//! window/page limits, token refresh persisting across a restart, receivers
//! kept as masks only, re-pull after updates, two shops sharing one app
//! budget, the official SDK).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::conformance::{self, Harness, Key, MemoryLake, Running};
use quanyu_connector_sdk::sandbox::world::{WorldConfig, WorldShop};
use quanyu_connector_sdk::sandbox::{loopback_any_port, FaultConfig, SandboxHandle};
use quanyu_connector_sdk::{
    ApiClient, ConnectorSetup, ErrorKind, NormalizedPage, PageSink, PullContext, PullError,
    RequestContext, Secret, SecretRef, ShopToken, SinkError, Stream, TokenSet, TokenStore, Window,
};
use quanyu_jd::sandbox::{JdSandbox, JdSandboxConfig};
use quanyu_jd::sign::sign;
use quanyu_jd::{build_streams, JdClient, JdConfig, JdShop, SEARCH_API};
use quanyu_schemas::time::format_beijing;
use quanyu_schemas::{Channel, LakeKey, PiiHasher};

const SECRET: &str = "sandbox-app-secret-0123";

struct Jd {
    sandbox: JdSandbox,
    handle: SandboxHandle,
}

impl Jd {
    async fn start(faults: FaultConfig, orders: usize) -> Jd {
        // The sandbox clock runs ten minutes behind the client, so the
        // connector's two-minute end lag never hides a change.
        let now = Utc::now() - Duration::minutes(10);
        let mut world = WorldConfig::demo(now, orders);
        world.start = now - Duration::days(5);
        world.days = 5;
        world.shops = WorldShop::only(Channel::Jd);
        let sandbox = JdSandbox::new(JdSandboxConfig {
            app_key: "jd-app-key-1".into(),
            app_secret: SECRET.into(),
            world,
            faults,
            as_of: Some(now),
            token_ttl_secs: 3600,
        });
        let handle = sandbox.serve(loopback_any_port()).await.unwrap();
        Jd { sandbox, handle }
    }

    fn gateway(&self) -> String {
        format!("{}/routerjson", self.handle.base_url())
    }

    fn config(&self, secret: &str) -> JdConfig {
        JdConfig {
            gateway: self.gateway(),
            oauth_base: self.handle.base_url(),
            app_key: self.sandbox.config().app_key.clone(),
            app_secret: SecretRef::inline(secret),
            qps: 0,
            shop_qps: 0,
            page_size: 100,
            window_minutes: 2 * 24 * 60,
            lookback_minutes: 30,
            initial_days: 6,
            shops: self
                .sandbox
                .shops()
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let (at, rt) = self.sandbox.tokens_for(i);
                    JdShop {
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
impl Running for Jd {
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
            .map(|o| vec!["jd".into(), o.shop, o.order_id])
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

struct JdHarness;

#[async_trait]
impl Harness for JdHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        Box::new(Jd::start(faults, 400).await)
    }
}

struct Nothing;

#[async_trait]
impl PageSink for Nothing {
    async fn page(&mut self, _: NormalizedPage) -> Result<(), SinkError> {
        Ok(())
    }
}

fn pull_context() -> PullContext {
    PullContext {
        run_id: "t".into(),
        ingested_at: Utc::now(),
        hasher: PiiHasher::new(&LakeKey::from_bytes([7; 32])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    conformance::run_all(&JdHarness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_is_an_auth_error_with_the_platform_envelope() {
    let jd = Jd::start(FaultConfig::default(), 100).await;
    let mut lake = MemoryLake::default();
    let err = lake.run(&jd.streams(false), None).await.unwrap_err();
    let PullError::Connector(e) = err else {
        panic!("expected a connector error, got {err}")
    };
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(e.code.as_deref(), Some("12"));
    let text = e.to_string();
    assert!(text.contains("jd"), "{text}");
    assert!(text.contains(SEARCH_API), "{text}");
    assert!(
        jd.sandbox.shops().iter().any(|s| text.contains(s.as_str())),
        "{text}"
    );
    assert!(text.contains("无效签名"), "{text}");
    assert!(text.contains("Invalid Signature"), "{text}");
    assert!(!text.contains(SECRET) && !text.contains("wrong-app-secret"));
    assert!(lake.rows.is_empty());
    jd.handle.stop().await;
}

/// The gateway's own checks answer with JD's system codes: a stale
/// timestamp (8), an unknown method (15), a missing signature (11), an
/// unknown app key (21); the SDKs' `…SSS+zzzz` timestamp form is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_checks_answer_with_jd_system_codes() {
    let jd = Jd::start(FaultConfig::default(), 20).await;
    let http = ApiClient::new(vec![], conformance::fast_retry_policy());
    let (token, _) = jd.sandbox.tokens_for(0);
    let app_key = jd.sandbox.config().app_key.clone();
    let now = Utc::now();
    let param = serde_json::json!({
        "start_date": format_beijing(jd.sandbox.as_of() - Duration::days(1)),
        "end_date": format_beijing(jd.sandbox.as_of()),
        "page": "1",
        "page_size": "10",
    })
    .to_string();
    let sdk_style = (now + Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S.000+0800")
        .to_string();
    let cases: Vec<(String, String, String, bool, &str)> = vec![
        // (method, app_key, timestamp, signed, expected code)
        (
            SEARCH_API.into(),
            app_key.clone(),
            format_beijing(now),
            true,
            "0",
        ),
        (SEARCH_API.into(), app_key.clone(), sdk_style, true, "0"),
        (
            SEARCH_API.into(),
            app_key.clone(),
            format_beijing(now - Duration::minutes(7)),
            true,
            "8",
        ),
        (
            "jingdong.pop.order.nothing".into(),
            app_key.clone(),
            format_beijing(now),
            true,
            "15",
        ),
        (
            SEARCH_API.into(),
            app_key.clone(),
            format_beijing(now),
            false,
            "11",
        ),
        (
            SEARCH_API.into(),
            "other-app".into(),
            format_beijing(now),
            true,
            "21",
        ),
    ];
    for (method, key, timestamp, signed, want) in cases {
        let mut params: Vec<(&str, &str)> = vec![
            ("method", &method),
            ("app_key", &key),
            ("access_token", &token),
            ("timestamp", &timestamp),
            ("v", "2.0"),
            ("360buy_param_json", &param),
        ];
        let signature = sign(params.iter().copied(), SECRET);
        if signed {
            params.push(("sign", &signature));
        }
        let raw = http
            .http()
            .post(jd.gateway())
            .query(&params)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let code = body["error_response"]["code"]
            .as_str()
            .or_else(|| body["jingdong_pop_order_search_responce"]["code"].as_str())
            .unwrap_or("?");
        assert_eq!(code, want, "{method} {timestamp}: {body}");
        if want == "0" {
            let result = &body["jingdong_pop_order_search_responce"]["searchorderinfo_result"];
            assert_eq!(result["apiResult"]["success"], true, "{body}");
            assert!(result["orderTotal"].as_u64().is_some(), "{body}");
        }
    }
    jd.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_pull_updates_orders_without_duplicates() {
    let jd = Jd::start(FaultConfig::default(), 300).await;
    let streams = jd.streams(true);
    let now = jd.sandbox.as_of();
    jd.sandbox.set_as_of(now - Duration::days(2));
    let mut lake = MemoryLake::default();
    lake.run_at(
        &streams,
        None,
        now - Duration::days(2) + Duration::minutes(10),
    )
    .await
    .unwrap();
    let first = lake.rows.clone();
    jd.sandbox.set_as_of(now);
    lake.run(&streams, None).await.unwrap();
    let expected = jd.expected_keys();
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
    Box::new(jd).stop().await;
}

fn direct_client(jd: &Jd) -> (JdClient, ShopToken) {
    let client = JdClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &jd.gateway(),
        &jd.handle.base_url(),
        &jd.sandbox.config().app_key,
        Secret::new(SECRET),
    );
    let (at, rt) = jd.sandbox.tokens_for(0);
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
    let jd = Jd::start(FaultConfig::default(), 50).await;
    let setup = ConnectorSetup::new(conformance::fast_retry_policy());
    let mut cfg = jd.config(SECRET);
    cfg.window_minutes = 30 * 24 * 60 + 1;
    let err = build_streams(&cfg, &setup).err().unwrap();
    assert!(err.to_string().contains("30 days"), "{err}");
    cfg.window_minutes = 30 * 24 * 60;
    assert!(build_streams(&cfg, &setup).is_ok());
    cfg.page_size = 101;
    assert!(build_streams(&cfg, &setup).is_err());
    cfg.page_size = 100;
    cfg.initial_days = 91;
    assert!(build_streams(&cfg, &setup).is_err());
    // The gateway itself refuses both, with a failed apiResult.
    let (client, token) = direct_client(&jd);
    let ctx = RequestContext::new("jd", Some("s"), SEARCH_API);
    let end = jd.sandbox.as_of();
    for (start, size, why) in [
        (
            end - Duration::days(30) - Duration::seconds(1),
            "100",
            "一个月",
        ),
        (end - Duration::days(30), "101", "page_size"),
        (end - Duration::days(91), "100", "三个月"),
    ] {
        let end = if why == "三个月" {
            end - Duration::days(85)
        } else {
            end
        };
        let param = serde_json::json!({
            "start_date": format_beijing(start),
            "end_date": format_beijing(end),
            "page": "1",
            "page_size": size,
            "dateType": "0",
        })
        .to_string();
        let e = client
            .call(&ctx, SEARCH_API, &token, &param)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest, "{e}");
        assert_eq!(e.code.as_deref(), Some("10100003"));
        assert!(e.message.contains(why), "{e}");
    }
    // A pull over a too-long window is refused before any call.
    let streams = build_streams(&jd.config(SECRET), &setup).unwrap();
    let w = Window {
        start: end - Duration::days(31),
        end,
    };
    let err = streams[0]
        .pull(w, &pull_context(), &mut Nothing)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("one month"), "{err}");
    jd.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_tokens_persist_across_a_restart() {
    let jd = Jd::start(FaultConfig::default(), 200).await;
    let dir = std::env::temp_dir().join(format!("quanyu-jd-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = || {
        let mut s = ConnectorSetup::new(conformance::fast_retry_policy());
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let cfg = jd.config(SECRET);
    let shops = jd.sandbox.shops().len() as u64;
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(jd.sandbox.refreshes(), 0);
    jd.sandbox.expire_tokens();
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("expired tokens are refreshed");
    assert_eq!(jd.sandbox.refreshes(), shops, "one refresh per shop");
    // A restart with the same (now stale) configured tokens uses the
    // persisted pair: no further refresh (the old refresh token is spent).
    let mut lake = MemoryLake::default();
    lake.run(&build_streams(&cfg, &setup()).unwrap(), None)
        .await
        .expect("the persisted tokens work after a restart");
    assert_eq!(jd.sandbox.refreshes(), shops);
    assert!(lake.keys() == jd.expected_keys());
    // Without the store, the configured token is dead and its refresh
    // token spent: the restart fails with an auth error from the refresh.
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
    assert_eq!(e.code.as_deref(), Some("402"), "{e}");
    assert!(e.to_string().contains("oauth2/refresh_token"), "{e}");
    assert!(!e.to_string().contains(SECRET), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    jd.handle.stop().await;
}

/// JD has no decrypt in scope: every row keeps the receiver's mask, none
/// gets a hash, no ciphertext lands, and every row names its buyer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_are_kept_as_masks_only() {
    struct Rows(Vec<arrow::array::RecordBatch>);
    #[async_trait]
    impl PageSink for Rows {
        async fn page(&mut self, p: NormalizedPage) -> Result<(), SinkError> {
            self.0.extend(p.batch);
            Ok(())
        }
    }
    let jd = Jd::start(FaultConfig::default(), 200).await;
    let as_of = jd.sandbox.as_of();
    let streams = build_streams(
        &jd.config(SECRET),
        &ConnectorSetup::new(conformance::fast_retry_policy()),
    )
    .unwrap();
    let w = Window {
        start: as_of - Duration::days(6),
        end: as_of + Duration::seconds(1),
    };
    let mut rows = Rows(vec![]);
    for s in &streams {
        s.pull(w, &pull_context(), &mut rows).await.unwrap();
    }
    let world = jd.sandbox.world().clone();
    let masks: std::collections::HashMap<String, String> = world
        .purchases
        .iter()
        .filter(|p| p.channel == Channel::Jd)
        .map(|p| {
            let phone = &world.receiver(p).phone;
            (
                world.order_id(p),
                format!("{}****{}", &phone[..3], &phone[7..]),
            )
        })
        .collect();
    let mut total = 0;
    for b in &rows.0 {
        use arrow::array::{Array, AsArray};
        let ids = b.column_by_name("order_id").unwrap().as_string::<i32>();
        let hashes = b.column_by_name("phone_hash").unwrap().as_string::<i32>();
        let masked = b.column_by_name("phone_masked").unwrap().as_string::<i32>();
        let buyers = b.column_by_name("buyer_id").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            total += 1;
            assert!(hashes.is_null(i), "no hash without a decrypt");
            assert_eq!(masked.value(i), masks[ids.value(i)]);
            assert!(buyers.value(i).ends_with(&format!(
                "@{}",
                b.column_by_name("shop_id")
                    .unwrap()
                    .as_string::<i32>()
                    .value(i)
            )));
        }
    }
    assert_eq!(total, jd.sandbox.visible_orders().len());
    jd.handle.stop().await;
}

/// Two shops of one app key share its one budget: at 4 requests per
/// second the two shops' calls together never exceed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shops_share_one_app_budget() {
    let jd = Jd::start(FaultConfig::default(), 20).await;
    let mut cfg = jd.config(SECRET);
    assert!(cfg.shops.len() >= 2, "the test world has two JD shops");
    cfg.qps = 4;
    cfg.initial_days = 1;
    let streams =
        build_streams(&cfg, &ConnectorSetup::new(conformance::fast_retry_policy())).unwrap();
    let as_of = jd.sandbox.as_of();
    let ctx = pull_context();
    let before = jd.sandbox.requests();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = streams
        .iter()
        .take(2)
        .map(|s| {
            let s = s.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for k in 0..6 {
                    let w = Window {
                        start: as_of - Duration::hours(k + 1),
                        end: as_of - Duration::hours(k),
                    };
                    s.pull(w, &ctx, &mut Nothing).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let calls = jd.sandbox.requests() - before;
    assert!(calls >= 12, "{calls}");
    // 4 at once (the burst), then 4 per second.
    let floor = (calls - 4) as f64 / 4.0;
    assert!(
        started.elapsed().as_secs_f64() >= floor - 0.3,
        "{calls} calls in {:?}",
        started.elapsed()
    );
    jd.handle.stop().await;
}

/// The official JD Python SDK (jd-sdk), pointed at the sandbox, signs its
/// own requests and gets every order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_requests_are_accepted() {
    let jd = Jd::start(FaultConfig::default(), 300).await;
    let as_of = jd.sandbox.as_of().timestamp();
    let mut got = 0;
    for i in 0..jd.sandbox.shops().len() {
        let args: Vec<String> = [
            "--base-url",
            &jd.handle.base_url(),
            "--app-key",
            &jd.sandbox.config().app_key,
            "--secret",
            SECRET,
            "--token",
            &jd.sandbox.tokens_for(i).0,
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
            jd.handle.stop().await;
            return;
        };
        got += out["orders"].as_u64().unwrap();
    }
    assert_eq!(got as usize, jd.sandbox.visible_orders().len());
    jd.handle.stop().await;
}
