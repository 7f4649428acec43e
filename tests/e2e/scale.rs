//! Scale under a small memory budget: a generated lake of millions of
//! orders goes through refresh, identity and customers, and the analysts'
//! join-heavy queries answer, with the engine limited to 256 MiB. The test
//! is that everything completes (it is not timed: `quanyu bench lake`
//! prints the figures), and that the answers add up.

use crate::quanyu;

/// Orders in the generated lake (`QUANYU_SCALE_ORDERS` overrides).
fn orders() -> String {
    std::env::var("QUANYU_SCALE_ORDERS").unwrap_or_else(|_| "2000000".into())
}

#[test]
fn millions_of_orders_within_a_256_mib_budget() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let n = orders();
    let out = quanyu(
        &[
            "bench",
            "lake",
            "--orders",
            &n,
            "--lake",
            lake.to_str().unwrap(),
            "--no-peer",
        ],
        &[("QUANYU_MEMORY_MB", "256")],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("memory budget 256 MiB"), "{text}");
    let env = [("QUANYU_MEMORY_MB", "256")];
    let int = |q: &str| -> i64 {
        let out = quanyu(
            &[
                "sql",
                "--lake",
                lake.to_str().unwrap(),
                "--format",
                "csv",
                q,
            ],
            &env,
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    // Every generated order reached the current table once.
    assert_eq!(
        int("SELECT count(*) FROM orders"),
        n.parse::<i64>().unwrap()
    );
    // Customers account for every order and every paid fen.
    assert_eq!(
        int("SELECT sum(order_count) FROM customers"),
        n.parse::<i64>().unwrap()
    );
    let paid = "status IN ('paid','shipped','delivered','completed')";
    assert_eq!(
        int("SELECT sum(gmv_fen) FROM customers"),
        int(&format!("SELECT sum(amount_fen) FROM orders WHERE {paid}"))
    );
    // The deciles of the join-heavy query cover every paying customer.
    let deciles = quanyu(
        &[
            "sql",
            "--lake",
            lake.to_str().unwrap(),
            "--format",
            "csv",
            include_str!("../bench/queries/top_decile.sql"),
        ],
        &env,
    );
    let rows: Vec<Vec<i64>> = String::from_utf8(deciles.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
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
}
