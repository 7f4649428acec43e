//! `quanyu listen`'s WeCom callback receiver, in-process: URL check, events
//! encrypted by an independent implementation (wechatpy) land once, replays
//! (in the same process or after a restart) do not make a second row, a
//! bad signature or a stale timestamp is refused with nothing written, and
//! a burst of events shares a few group commits.

use quanyu::lake::Lake;
use quanyu::listen::{router, ListenConfig, WecomListenConfig};
use quanyu_connector_sdk::conformance::run_sdk_check;
use quanyu_connector_sdk::sandbox::{loopback_any_port, serve};
use quanyu_connector_sdk::{Secret, SecretRef};
use quanyu_wecom::callback::CallbackCrypto;

const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";

fn event_xml(change: &str, external: &str, state: &str, at: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID><State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[W]]></WelcomeCode></xml>"
    )
}

/// (msg_signature, timestamp, nonce, Encrypt) for `xml`, encrypted by
/// wechatpy when it is installed, else by our own (separately cross-checked)
/// implementation.
fn encrypt(xml: &str) -> (String, String, String, String) {
    encrypt_at(xml, chrono::Utc::now().timestamp())
}

/// [`encrypt`] with the message signed at Unix time `ts`.
fn encrypt_at(xml: &str, ts: i64) -> (String, String, String, String) {
    let ts = ts.to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../connectors/wecom/tests/wechatpy_check.py");
    let args: Vec<String> = [
        "encrypt",
        "--xml",
        xml,
        "--token",
        TOKEN,
        "--aes-key",
        AES_KEY,
        "--corp-id",
        CORP,
        "--timestamp",
        &ts,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(v) = run_sdk_check(&script, &args) {
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        return (s("msg_signature"), s("timestamp"), s("nonce"), s("encrypt"));
    }
    own_encrypt(xml, &ts, "n1")
}

/// Our own implementation's envelope (fast: for bursts).
fn own_encrypt(xml: &str, ts: &str, nonce: &str) -> (String, String, String, String) {
    let c = CallbackCrypto::new(Secret::new(TOKEN), &Secret::new(AES_KEY), CORP).unwrap();
    let enc = c.encrypt(xml, rand::random());
    let sig = c.signature(ts, nonce, &enc);
    (sig, ts.into(), nonce.into(), enc)
}

async fn post(base: &str, msg: &(String, String, String, String)) -> (u16, String) {
    post_with(&reqwest::Client::new(), base, msg).await
}

/// [`post`] on a given client (a burst shares one: building a client per
/// request is what a thousand of them would time).
async fn post_with(
    client: &reqwest::Client,
    base: &str,
    (sig, ts, nonce, enc): &(String, String, String, String),
) -> (u16, String) {
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    );
    let r = client
        .post(format!("{base}/wecom/{CORP}"))
        .query(&[("msg_signature", sig), ("timestamp", ts), ("nonce", nonce)])
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn config() -> ListenConfig {
    ListenConfig {
        wecom: vec![WecomListenConfig {
            corp_id: CORP.into(),
            token: SecretRef::inline(TOKEN),
            encoding_aes_key: SecretRef::inline(AES_KEY),
        }],
        calls: vec![quanyu::listen::CallsListenConfig {
            vendor: quanyu_aicall::Vendor::Yiwise,
            account: "t1".into(),
            token: SecretRef::inline("calltoken"),
            cost: None,
            order_property: None,
            order_channel: None,
        }],
        max_clock_skew_secs: quanyu::listen::DEFAULT_MAX_CLOCK_SKEW_SECS,
    }
}

fn hasher() -> quanyu_schemas::PiiHasher {
    quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([9; 32]))
}

/// A listener on `lake` with [`config`], on a free loopback port.
async fn listen(lake: &Lake) -> quanyu_connector_sdk::sandbox::SandboxHandle {
    let rules = quanyu::identity::IdentityConfig::default().state_rules;
    let app = router(lake.clone(), hasher(), &config(), &[], &rules).unwrap();
    serve(app, loopback_any_port()).await.unwrap()
}

/// A fresh lake in a temporary folder and the listener serving it.
async fn listening() -> (
    tempfile::TempDir,
    Lake,
    quanyu_connector_sdk::sandbox::SandboxHandle,
) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let handle = listen(&lake).await;
    (dir, lake, handle)
}

async fn count(lake: &Lake, sql: &str) -> i64 {
    quanyu::lake::first_count(&quanyu::sql::query(lake, sql).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_events_land_once_and_bad_signatures_are_refused() {
    let (_dir, lake, handle) = listening().await;
    let base = handle.base_url();

    // URL check: the decrypted echostr comes back.
    let c = CallbackCrypto::new(Secret::new(TOKEN), &Secret::new(AES_KEY), CORP).unwrap();
    let echo = c.encrypt("1616140317555161061", [1; 16]);
    let now = chrono::Utc::now().timestamp().to_string();
    let sig = c.signature(&now, "n", &echo);
    let r = reqwest::Client::new()
        .get(format!("{base}/wecom/{CORP}"))
        .query(&[
            ("msg_signature", sig.as_str()),
            ("timestamp", now.as_str()),
            ("nonce", "n"),
            ("echostr", echo.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1616140317555161061");

    let added = encrypt(&event_xml(
        "add_external_contact",
        "wmA1",
        "tb_3100000000000123",
        1_716_000_000,
    ));
    assert_eq!(post(&base, &added).await, (200, "success".into()));
    assert_eq!(
        post(&base, &added).await,
        (200, "success".into()),
        "a replay is acknowledged"
    );
    let deleted = encrypt(&event_xml("del_follow_user", "wmA1", "", 1_716_100_000));
    assert_eq!(post(&base, &deleted).await.0, 200);

    // A bad signature is refused and writes nothing.
    let mut forged = encrypt(&event_xml(
        "add_external_contact",
        "wmEVIL",
        "",
        1_716_200_000,
    ));
    forged.0 = "0".repeat(40);
    assert_eq!(post(&base, &forged).await.0, 403);
    assert_eq!(
        count(&lake, "select count(*) from raw_touchpoints").await,
        2
    );

    // An AI-call record: twice delivered, once landed; a wrong token refused.
    let call = r#"{"dataType":"ROBOT_CALL_RECORD","data":{"callRecordId":5,"robotCallJobId":42,"calledPhoneNumber":"13912345678","resultStatus":"ANSWERED","intentLevel":"A","startTime":"2024-06-01 10:00:05","chatDuration":65}}"#;
    let http = reqwest::Client::new();
    for token in ["calltoken", "calltoken", "wrong"] {
        let r = http
            .post(format!("{base}/calls/yiwise/t1?token={token}"))
            .body(call)
            .send()
            .await
            .unwrap();
        let expect = if token == "wrong" { 403 } else { 200 };
        assert_eq!(r.status().as_u16(), expect);
    }
    assert_eq!(
        count(&lake, "select count(*) from raw_touchpoints").await,
        3
    );
    handle.stop().await;

    // After a restart, WeCom redelivers the first event: still one row.
    let handle = listen(&lake).await;
    assert_eq!(post(&handle.base_url(), &added).await.0, 200);
    handle.stop().await;
    quanyu::refresh::refresh_current(&lake, quanyu_schemas::TableKind::Touchpoints)
        .await
        .unwrap();
    assert_eq!(count(&lake, "select count(*) from touchpoints").await, 3);
    assert_eq!(
        count(&lake, "select count(*) from touchpoints where channel = 'ai_call' and outcome = 'connected' and intent_level = 'A' and duration_secs = 65 and phone_hash is not null").await,
        1
    );
    assert_eq!(
        count(
            &lake,
            "select count(*) from touchpoints where channel = 'package_card' and event_type = 'friend_added' \
             and order_channel = 'taobao' and order_id = '3100000000000123' and external_userid = 'wmA1' and owner_userid = 'zhangsan'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&lake, "select count(*) from touchpoints where event_type = 'deleted_by_customer' and channel = 'wecom'").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_signed_outside_the_freshness_window_is_refused() {
    let (_dir, lake, handle) = listening().await;
    let base = handle.base_url();
    let now = chrono::Utc::now().timestamp();
    let xml = event_xml("add_external_contact", "wmOLD", "", now - 7_200);
    // Validly signed, but two hours old, an hour ahead, or not a time.
    for ts in [
        (now - 7_200).to_string(),
        (now + 3_600).to_string(),
        "soon".into(),
    ] {
        let (status, why) = post(&base, &own_encrypt(&xml, &ts, "n2")).await;
        assert_eq!(status, 403, "{ts}: {why}");
    }
    let (status, why) = post(&base, &own_encrypt(&xml, &(now - 7_200).to_string(), "n2")).await;
    assert!(why.contains("window"), "{status} {why}");
    assert!(
        quanyu::sql::query(&lake, "select count(*) from raw_touchpoints")
            .await
            .is_err(),
        "nothing was written"
    );
    // Within the window (a minute of skew either way), it lands.
    for (i, ts) in [now - 60, now + 60].into_iter().enumerate() {
        let xml = event_xml("add_external_contact", &format!("wmNEW{i}"), "", ts);
        assert_eq!(
            post(&base, &encrypt_at(&xml, ts)).await,
            (200, "success".into())
        );
    }
    assert_eq!(
        count(&lake, "select count(*) from raw_touchpoints").await,
        2
    );
    handle.stop().await;
}

/// A burst of 1,000 events (WeCom redelivers what is not acknowledged
/// within 5 s): every event lands once, acknowledged after commits that
/// each hold many events. The time it took is printed; the commit count is
/// what the test holds (a commit per event took 33–47 s for 200 events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_events_shares_a_few_group_commits() {
    const EVENTS: usize = 1_000;
    let (dir, lake, handle) = listening().await;
    let base = handle.base_url();
    let now = chrono::Utc::now().timestamp();
    let messages: Vec<_> = (0..EVENTS)
        .map(|i| {
            let xml = event_xml(
                "add_external_contact",
                &format!("wmB{i}"),
                "tb_3100000000000123",
                now,
            );
            own_encrypt(&xml, &now.to_string(), &format!("n{i}"))
        })
        .collect();
    let started = std::time::Instant::now();
    let client = reqwest::Client::new();
    let answers =
        futures::future::join_all(messages.iter().map(|m| post_with(&client, &base, m))).await;
    let took = started.elapsed();
    assert!(answers.iter().all(|a| *a == (200, "success".to_string())));
    // A replay of the whole burst lands nothing more.
    for m in messages.iter().take(50) {
        assert_eq!(post(&base, m).await.0, 200);
    }
    handle.stop().await;
    assert_eq!(
        count(
            &lake,
            "select count(distinct event_id) from raw_touchpoints"
        )
        .await,
        EVENTS as i64
    );
    assert_eq!(
        count(&lake, "select count(*) from raw_touchpoints").await,
        EVENTS as i64
    );
    let commits = std::fs::read_dir(dir.path().join("raw_touchpoints/_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    println!("{EVENTS} events acknowledged in {took:?} over {commits} commits");
    assert!(commits <= 100, "{commits} commits for {EVENTS} events");
}
