//! The binary: demo, sql, sandbox + run with a config, privacy of the lake.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::Utc;
use quanyu_connector_sdk::sandbox::world::{ContactOrigin, CrmPhone, World, BAD_PHONES};

use crate::{assert_count, files, quanyu, sql, sql_int};

const ORDERS: usize = 3000;

#[test]
fn demo_lands_the_ground_truth_and_reruns_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let key = dir.path().join("key/lake.key");
    let args = [
        "demo",
        "--lake",
        lake.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--orders",
        "3000",
    ];
    let out = quanyu(&args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("orders"), "{stdout}");
    // Order lines and refunds land as the sandboxes hold them.
    for table in ["order_lines", "refunds"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(table))
            .unwrap_or_else(|| panic!("no {table} line: {stdout}"));
        let numbers: Vec<i64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(numbers.len(), 2, "{line}");
        assert!(numbers[0] > 0 && numbers[0] == numbers[1], "{line}");
        assert_eq!(
            sql_int(&lake, &format!("select count(*) from {table}")),
            numbers[0]
        );
    }

    // Ground truth, computed here from the same seeded world. The world is
    // laid out relative to its clock, so any clock gives the same counts.
    let t = Utc::now();
    let world = World::generate(quanyu::demo::demo_world(t, ORDERS));
    let expected_customers =
        world.expected_unified_customers(t, &quanyu::registry::decrypting_channels()) as i64;
    let expected_contacts = world.contacts.iter().filter(|c| c.added <= t).count() as i64;
    // Every purchase the platforms list by now (Pinduoduo lists an order
    // only once it is paid).
    let expected_orders = world
        .purchases
        .iter()
        .filter(|p| world.listed_at(p).is_some_and(|x| x <= t.timestamp()))
        .count() as i64;
    assert!(
        expected_orders < world.purchases.len() as i64,
        "some Pinduoduo orders are unpaid"
    );
    // Orders and refunds per marketplace shop, and WeCom.
    let streams = 2 * world.config.shops.len() as i64 + 1;
    assert_count(&lake, "select count(*) from orders", expected_orders);
    assert_eq!(
        sql_int(
            &lake,
            "select count(distinct channel || shop_id || order_id) from orders"
        ),
        expected_orders
    );
    assert_eq!(
        sql_int(
            &lake,
            "select count(*) from contacts where channel = 'wecom'"
        ),
        expected_contacts
    );
    let crm_members = world
        .contacts
        .iter()
        .filter(|c| c.origin == ContactOrigin::PrivateOnly && c.added <= t)
        .count() as i64;
    assert_count(
        &lake,
        "select count(*) from contacts where channel = 'crm'",
        crm_members,
    );
    assert_count(&lake, "select count(*) from customers", expected_customers);
    assert_eq!(
        sql_int(
            &lake,
            "select count(*) from runs where status = 'succeeded'"
        ),
        streams + 3,
        "every stream and the three sample imports"
    );
    // No row was rejected; members whose CRM phone is junk landed without
    // it, each problem quarantined with the value hashed.
    assert_count(
        &lake,
        "select count(*) from quarantine where field is null",
        0,
    );
    let junk_phones = world
        .contacts
        .iter()
        .filter(|c| {
            c.added <= t
                // Every junk value, `-` too (only separators: no phone, but
                // not a blank cell either), is quarantined with its hash.
                && matches!(c.crm_phone, CrmPhone::Invalid(i) if quanyu_schemas::normalize_phone(BAD_PHONES[i]).is_err())
        })
        .count() as i64;
    assert!(junk_phones > 0);
    assert_eq!(
        sql_int(
            &lake,
            "select count(*) from quarantine where field = 'phone' and raw like 'phone=hash:%'"
        ),
        junk_phones
    );
    // The bridges reached the customers the world says they did: a
    // touchpoint reaches the true customer of its phone (where that phone
    // links), its contact or its order; a buyer has an order record, a
    // WeCom contact a contact record.
    let truth = world.truth(t, &quanyu::registry::decrypting_channels());
    let hasher = quanyu_schemas::PiiHasher::new(&quanyu::keys::load_key(&key).unwrap());
    let mut phone_of_hash = std::collections::HashMap::new();
    for k in truth.nodes.keys() {
        if let Some(p) = k.strip_prefix("p:") {
            phone_of_hash.insert(hasher.phone_text(p).unwrap(), k.clone());
        }
    }
    let mut buyer = HashSet::new();
    let mut wecom = HashSet::new();
    for r in &truth.records {
        match r.id_type {
            "order" => buyer.insert(r.customer),
            "wecom_external_userid" => wecom.insert(r.customer),
            _ => false,
        };
    }
    let touch = sql(
        &lake,
        "select channel, coalesce(phone_hash, ''), coalesce(external_userid, ''), coalesce(order_channel || ':' || order_id, '') from touchpoints",
    );
    let mut reached: std::collections::HashMap<String, HashSet<u32>> = Default::default();
    for row in &touch {
        let mut keys = Vec::new();
        if let Some(k) = phone_of_hash.get(&row[1]) {
            keys.push(k.clone());
        }
        if let Some(person) = row[2].get(row[2].len().saturating_sub(8)..) {
            if let Ok(p) = u32::from_str_radix(person, 16) {
                keys.push(format!("c:{p}"));
            }
        }
        if !row[3].is_empty() {
            keys.push(format!("o:{}", row[3]));
        }
        for k in keys {
            if let Some(&c) = truth.nodes.get(&k) {
                reached.entry(row[0].clone()).or_default().insert(c);
            }
        }
    }
    for bridge in ["ai_call", "package_card"] {
        let r = &reached[bridge];
        let got = sql(
            &lake,
            &format!("select customers_touched, buyers_touched, buyers_now_wecom_contacts from bridges where bridge = '{bridge}'"),
        );
        let expect = [
            r.len(),
            r.iter().filter(|c| buyer.contains(c)).count(),
            r.iter()
                .filter(|c| buyer.contains(c) && wecom.contains(c))
                .count(),
        ];
        let got: Vec<usize> = got[0].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(
            got, expect,
            "{bridge}: customers touched, buyers touched, buyers now WeCom contacts"
        );
        assert!(expect[2] > 0, "{bridge}");
    }
    // Some customers span both domains, and every order belongs to one.
    assert!(
        sql_int(
            &lake,
            "select count(*) from customers where in_private and order_count > 0"
        ) > 0
    );
    assert_count(
        &lake,
        "select sum(order_count) from customers",
        expected_orders,
    );
    // GMV counts what was paid on an order (its key: channel and order id)
    // less the refunds paid back on it, never below zero; every refund
    // paid back on a customer's order is theirs. Some refunds are partial,
    // on orders still counted as paid.
    let refunded = "select channel, order_id, sum(refund_fen) fen from refunds where status = 'succeeded' group by 1, 2";
    let paid = "select channel, order_id, sum(amount_fen) fen from orders \
         where status in ('paid','shipped','delivered','completed') group by 1, 2";
    assert!(
        sql_int(
            &lake,
            &format!(
                "select count(*) from ({paid}) p join ({refunded}) r using (channel, order_id)"
            )
        ) > 0
    );
    assert_count(
        &lake,
        "select sum(gmv_fen) from customers",
        sql_int(
            &lake,
            &format!(
                "select sum(greatest(p.fen - coalesce(r.fen, 0), 0)) from ({paid}) p \
             left join ({refunded}) r using (channel, order_id)"
            ),
        ),
    );
    assert_count(
        &lake,
        "select sum(refunded_fen) from customers",
        sql_int(&lake, &format!("select sum(r.fen) from ({refunded}) r \
             where exists (select 1 from orders o where o.channel = r.channel and o.order_id = r.order_id)")),
    );

    // No raw phone of any seeded person appears in any file of the lake.
    let phones: HashSet<Vec<u8>> = world
        .persons
        .iter()
        .map(|p| p.phone.as_bytes().to_vec())
        .collect();
    for f in files(&lake) {
        let bytes = std::fs::read(&f).unwrap();
        for w in bytes.windows(11) {
            assert!(!phones.contains(w), "raw phone in {}", f.display());
        }
    }

    // A second demo over the same lake: overlapping windows, same orders,
    // one row per key, and every unified id kept.
    let touchpoints = sql_int(&lake, "select count(*) from touchpoints");
    let ids_before = sql(&lake, "select id_type, id_value, unified_id from identity_map where unified_id is not null order by 1, 2");
    quanyu(&args, &[]);
    assert_count(&lake, "select count(*) from orders", expected_orders);
    assert_count(&lake, "select count(*) from customers", expected_customers);
    assert_count(&lake, "select count(*) from runs", 2 * (streams + 3));
    // Re-exported bridge events keep their ids.
    assert_count(&lake, "select count(*) from touchpoints", touchpoints);
    let ids_after = sql(&lake, "select id_type, id_value, unified_id from identity_map where unified_id is not null order by 1, 2");
    assert_eq!(ids_before, ids_after, "same data in, same unified ids out");
}

#[test]
fn run_from_config_against_sandbox_processes_with_faults() {
    let dir = tempfile::tempdir().unwrap();
    let spawn = |platform: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quanyu"))
            .args([
                "sandbox", platform, "--port", "0", "--orders", "800", "--faults", "0.1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        (
            child,
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
        )
    };
    let (mut tb, tb_ann) = spawn("taobao");
    let (mut wc, wc_ann) = spawn("wecom");
    let shops = tb_ann["shops"].as_array().unwrap();
    let mut toml = format!(
        "[lake]\nroot = {lake:?}\nkey_file = {key:?}\n\n[[taobao]]\ngateway = \"{base}/router/rest\"\napp_key = {ak}\napp_secret = {{ env = \"QY_TEST_TAOBAO_SECRET\" }}\nqps = 50\ninitial_days = 31\nshops = [\n",
        lake = dir.path().join("lake"),
        key = dir.path().join("lake.key"),
        base = tb_ann["base_url"].as_str().unwrap(),
        ak = tb_ann["app_key"],
    );
    let mut envs: Vec<(String, String)> = vec![(
        "QY_TEST_TAOBAO_SECRET".into(),
        tb_ann["app_secret"].as_str().unwrap().into(),
    )];
    for (i, s) in shops.iter().enumerate() {
        toml.push_str(&format!(
            "  {{ id = {}, session = {{ env = \"QY_TEST_SESSION_{i}\" }} }},\n",
            s["id"]
        ));
        envs.push((
            format!("QY_TEST_SESSION_{i}"),
            s["access_token"].as_str().unwrap().into(),
        ));
    }
    let secret_file = dir.path().join("wecom.secret");
    std::fs::write(
        &secret_file,
        format!("{}\n", wc_ann["secret"].as_str().unwrap()),
    )
    .unwrap();
    toml.push_str(&format!(
        "]\n\n[[wecom]]\nbase_url = \"{}\"\ncorp_id = {}\nsecret = {{ file = {:?} }}\n",
        wc_ann["base_url"].as_str().unwrap(),
        wc_ann["corp_id"],
        secret_file
    ));
    let cfg = dir.path().join("quanyu.toml");
    std::fs::write(&cfg, toml).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    quanyu(&["init", "--config", cfg_s], &env_refs);
    let out = quanyu(
        &[
            "run",
            "--config",
            cfg_s,
            "--log-format",
            "json",
            "--log-level",
            "info",
        ],
        &env_refs,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with('{') && l.contains("stream finished")),
        "json logs expected: {stderr}"
    );
    for (_, secret) in &envs {
        assert!(
            !stderr.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
    }
    let lake = dir.path().join("lake");
    assert_count(
        &lake,
        "select count(*) from orders",
        tb_ann["orders"].as_i64().unwrap(),
    );
    assert_count(
        &lake,
        "select count(*) from contacts",
        wc_ann["contacts"].as_i64().unwrap(),
    );
    assert!(
        sql_int(&lake, "select sum(retries) from runs") > 0,
        "faults were injected and retried"
    );
    // Each Taobao shop has its refunds stream beside its orders.
    assert_count(
        &lake,
        "select count(*) from runs where stream = 'refunds'",
        shops.len() as i64,
    );
    // Selecting one shop runs only that stream.
    let runs_before = sql_int(&lake, "select count(*) from runs");
    quanyu(
        &[
            "run",
            "--config",
            cfg_s,
            &format!("taobao.orders@{}", shops[0]["id"].as_str().unwrap()),
        ],
        &env_refs,
    );
    assert_count(&lake, "select count(*) from runs", runs_before + 1);
    tb.kill().unwrap();
    wc.kill().unwrap();
    let _ = (tb.wait(), wc.wait());
}

#[test]
fn clear_errors_without_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let out = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args(["sql", "--lake", missing.to_str().unwrap(), "select 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lake at"));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[taobao]]\napp_key = 'x'\napp_secret = { env = 'QY_UNSET_VAR_X' }\nshops = []\n[lake]\nkey_file = 'k'\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("QUANYU_LAKE_KEY", "00".repeat(32))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("QY_UNSET_VAR_X") && !err.contains("panicked"),
        "{err}"
    );
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args([
            "sql",
            "--lake",
            lake.to_str().unwrap(),
            "select * from no_such_table",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no_such_table") && !err.contains("panicked"),
        "{err}"
    );
}

/// `quanyu import`: the example mappings on sample exports; a watched
/// folder; the same file twice lands once; a broken row is quarantined with
/// its file and row.
#[test]
fn import_files_once_from_the_command_line_and_a_watched_folder() {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("exports");
    quanyu(
        &[
            "samples",
            "--out",
            samples.to_str().unwrap(),
            "--orders",
            "400",
        ],
        &[],
    );
    let watch = dir.path().join("watch");
    std::fs::create_dir_all(&watch).unwrap();
    std::fs::copy(
        samples.join("card_scans.xlsx"),
        watch.join("scans-0601.xlsx"),
    )
    .unwrap();
    // A broken row appended to the (GBK) call log.
    let mut calls = std::fs::read(samples.join("ai_calls_baiying.csv")).unwrap();
    calls.extend_from_slice(
        &encoding_rs::GBK
            .encode("BYBROKEN,任务,13912345678,张*,昨天,10,已接通,A级,0\r\n")
            .0,
    );
    std::fs::write(samples.join("ai_calls_baiying.csv"), calls).unwrap();
    // The example config, pointed at this lake and folder.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/quanyu.toml"
    ))
    .unwrap();
    let cfg_text = example
        .replace(
            "root = \"lake\"",
            &format!(
                "root = {:?}\nkey_file = {:?}",
                dir.path().join("lake"),
                dir.path().join("lake.key")
            ),
        )
        .replace(
            "watch = \"imports/card-scans\"",
            &format!("watch = {watch:?}"),
        );
    let cfg = dir.path().join("quanyu.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    quanyu(&["init", "--config", cfg_s], &[]);
    let calls_s = samples.join("ai_calls_baiying.csv");
    let import_calls = || {
        let args = [
            "import",
            "--config",
            cfg_s,
            "ai-calls",
            calls_s.to_str().unwrap(),
        ];
        String::from_utf8_lossy(&quanyu(&args, &[]).stdout).into_owned()
    };
    let first = import_calls();
    assert!(first.contains("1 quarantined"), "{first}");
    assert!(import_calls().contains("already imported"));
    quanyu(&["import", "--config", cfg_s, "card-scans"], &[]);
    let lake = dir.path().join("lake");
    let call_rows = std::fs::read(&calls_s).unwrap();
    let lines = encoding_rs::GBK.decode(&call_rows).0.lines().count() as i64;
    assert_eq!(
        sql_int(
            &lake,
            "select count(*) from touchpoints where channel = 'ai_call'"
        ),
        lines - 2,
        "every call but the header and the broken row, once"
    );
    assert!(
        sql_int(
            &lake,
            "select count(*) from touchpoints where channel = 'package_card'"
        ) > 0
    );
    assert_count(&lake, "select count(*) from quarantine where reason like '%row%occurred_at%' and source like 'import.ai-calls@%'", 1);
    assert_eq!(
        sql_int(
            &lake,
            "select count(*) from runs where connector = 'import'"
        ),
        2
    );
}

/// `quanyu connectors` lists every registered connector with what it is.
#[test]
fn connectors_lists_the_registry() {
    let out = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .arg("connectors")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for c in quanyu::registry::CONNECTORS {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("[[{}", c.name())))
            .unwrap_or_else(|| panic!("{} missing from:\n{text}", c.name()));
        assert!(line.contains(c.about()), "{line}");
    }
    let pdd = text.lines().find(|l| l.starts_with("[[pdd")).unwrap();
    assert!(pdd.contains("pdd_") && pdd.contains("yes"), "{pdd}");
}
