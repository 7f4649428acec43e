//! Scale under a small memory budget: a generated lake of millions of
//! orders goes through refresh, identity and customers, and the analysts'
//! join-heavy queries answer, with the engine limited to 256 MiB. The test
//! is that everything completes (it is not timed: `quanyu bench lake`
//! prints the figures), and that the answers add up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run the built `quanyu` with `args` under a 256 MiB engine budget; fails
/// the test on an error, and on a stall: a run still going after `deadline`
/// (far beyond its normal time) is killed (DataFusion can deadlock under
/// memory pressure, and a stuck run is worse than a failed one). Returns
/// stdout.
fn quanyu_within(args: &[&str], deadline: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args(["--no-progress", "--log-level", "warn"])
        .args(args)
        .env("QUANYU_MEMORY_MB", "256")
        .env_remove("QUANYU_LAKE_KEY")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("quanyu runs");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "quanyu {args:?} still running after {deadline:?} (stalled?):\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        status.success(),
        "quanyu {args:?} failed:\nstdout: {out}\nstderr: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    out
}

/// Orders in the generated lake (`QUANYU_SCALE_ORDERS` overrides).
fn orders() -> String {
    std::env::var("QUANYU_SCALE_ORDERS").unwrap_or_else(|_| "2000000".into())
}

#[test]
fn millions_of_orders_within_a_256_mib_budget() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let n = orders();
    // The benchmark lands 1 % more orders (half new) after the first build.
    let total = n.parse::<i64>().unwrap() + n.parse::<i64>().unwrap() / 200;
    let text = quanyu_within(
        &[
            "bench",
            "lake",
            "--orders",
            &n,
            "--lake",
            lake.to_str().unwrap(),
            "--no-peer",
        ],
        Duration::from_secs(40 * 60),
    );
    assert!(text.contains("memory budget 256 MiB"), "{text}");
    let sql = |q: &str| -> Vec<Vec<String>> {
        quanyu_within(
            &[
                "sql",
                "--lake",
                lake.to_str().unwrap(),
                "--format",
                "csv",
                // (the queries start with comments: `--` ends the options)
                "--",
                q,
            ],
            Duration::from_secs(10 * 60),
        )
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
    };
    let int = |q: &str| -> i64 { sql(q)[0][0].parse().unwrap() };
    // Every generated order reached the current table once.
    assert_eq!(int("SELECT count(*) FROM orders"), total);
    // Customers account for every order and every paid fen.
    assert_eq!(int("SELECT sum(order_count) FROM customers"), total);
    let paid = "status IN ('paid','shipped','delivered','completed')";
    assert_eq!(
        int("SELECT sum(gmv_fen) FROM customers"),
        int(&format!("SELECT sum(amount_fen) FROM orders WHERE {paid}"))
    );
    // The deciles of the join-heavy query cover every paying customer.
    let rows: Vec<Vec<i64>> = sql(include_str!("../bench/queries/top_decile.sql"))
        .iter()
        .map(|r| r.iter().map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 10);
    assert_eq!(
        rows.iter().map(|r| r[1]).sum::<i64>(),
        // (every generated paid order is worth at least 9.90 yuan)
        int("SELECT count(*) FROM customers WHERE gmv_fen > 0")
    );
    assert_eq!(
        rows.iter().map(|r| r[2]).sum::<i64>(),
        int(&format!("SELECT sum(amount_fen) FROM orders WHERE {paid}"))
    );
    // The spend ranking is a ranking: each decile spends at most the one before.
    let per_customer: Vec<f64> = rows.iter().map(|r| r[2] as f64 / r[1] as f64).collect();
    assert!(per_customer.windows(2).all(|w| w[0] >= w[1]), "{rows:?}");
    // The recall list answers too: some customers last paid 90-180 days
    // back, each with at least one paid order.
    let recall = sql(include_str!("../bench/queries/recall_list.sql"));
    let (customers, paid): (i64, i64) =
        (recall[0][0].parse().unwrap(), recall[0][1].parse().unwrap());
    assert!(customers > 0 && paid >= customers, "{recall:?}");
}
