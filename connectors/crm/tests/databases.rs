//! The CRM connector against the real PostgreSQL and MariaDB servers:
//! members by update time (incremental, updates re-pulled without
//! duplicates), POS orders by auto-increment id (a stopped pull resumes
//! after the last committed id), bad rows quarantined, bad credentials a
//! clear error. Where a server is absent the test says so and passes,
//! except under `CI=true`, where the servers must be there.

use std::collections::BTreeMap;
use std::sync::Arc;

use quanyu_connector_sdk::conformance::MemoryLake;
use quanyu_connector_sdk::declarative::ColumnSpec;
use quanyu_connector_sdk::{SecretRef, Stream};
use quanyu_crm::{build_streams, CrmConfig, CrmTarget, CursorKind};
use sqlx::AnyPool;

fn urls() -> Vec<(&'static str, String)> {
    vec![
        (
            "postgres",
            std::env::var("QUANYU_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        ),
        (
            "mariadb",
            std::env::var("QUANYU_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
        ),
    ]
}

/// A connection, or `None` after saying why (an error under CI).
async fn connect(kind: &str, url: &str) -> Option<AnyPool> {
    sqlx::any::install_default_drivers();
    match AnyPool::connect(url).await {
        Ok(p) => Some(p),
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "{kind} must be reachable in CI at {url}: {e}");
            eprintln!("skipping the {kind} test: no server at {url} ({e})");
            None
        }
    }
}

/// Each reachable server with a fresh table name for this process
/// (`{prefix}_{pid}`, dropped if a crashed run left it).
async fn servers(prefix: &str) -> Vec<(&'static str, String, AnyPool, String)> {
    let mut out = Vec::new();
    for (kind, url) in urls() {
        if let Some(pool) = connect(kind, &url).await {
            let table = format!("{prefix}_{}", std::process::id());
            exec(&pool, &format!("DROP TABLE IF EXISTS {table}")).await;
            out.push((kind, url, pool, table));
        }
    }
    out
}

async fn exec(pool: &AnyPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn cols(pairs: &[(&str, &str)]) -> BTreeMap<String, ColumnSpec> {
    pairs
        .iter()
        .map(|(f, c)| (f.to_string(), ColumnSpec::Name(c.to_string())))
        .collect()
}

fn members_config(url: &str, table: &str) -> CrmConfig {
    CrmConfig {
        name: format!("{table}-src"),
        url: SecretRef::inline(url),
        table: CrmTarget::Contacts,
        source_table: Some(table.into()),
        query: None,
        cursor_column: "updated_at".into(),
        cursor: CursorKind::UpdatedAt,
        window_minutes: 7 * 24 * 60,
        lookback_minutes: 10,
        initial_days: 30,
        batch_rows: 4,
        values: [("channel".to_string(), "crm".to_string())].into(),
        columns: cols(&[
            ("contact_id", "member_no"),
            ("phone", "mobile"),
            ("unionid", "unionid"),
            ("owner_userid", "store_code"),
            ("created_at", "created_at"),
            ("updated_at", "updated_at"),
        ]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_pull_incrementally_by_update_time() {
    for (kind, url, pool, table) in servers("crm_members").await {
        // Naive Beijing wall times, as Chinese CRMs store them.
        let ts = if kind == "postgres" {
            "TIMESTAMP"
        } else {
            "DATETIME"
        };
        exec(&pool, &format!(
            "CREATE TABLE {table} (member_no VARCHAR(20) PRIMARY KEY, mobile VARCHAR(20), unionid VARCHAR(40), store_code VARCHAR(20), created_at {ts} NULL, updated_at {ts} NULL)"
        )).await;
        // 10 members over the last days (Beijing wall time), one with a broken phone.
        let now = chrono::Utc::now() + chrono::Duration::hours(8);
        for i in 0..10 {
            let t = (now - chrono::Duration::hours(30 - i)).format("%Y-%m-%d %H:%M:%S");
            let mobile = if i == 7 {
                "12345".to_string()
            } else {
                format!("1391234{i:04}")
            };
            exec(
                &pool,
                &format!(
                "INSERT INTO {table} VALUES ('M{i:03}', '{mobile}', 'oUn{i}', 'SH01', '{t}', '{t}')"
            ),
            )
            .await;
        }
        let streams: Vec<Arc<dyn Stream>> = build_streams(&members_config(&url, &table)).unwrap();
        let mut lake = MemoryLake::default();
        let errors = lake.run(&streams, None).await.unwrap();
        assert!(errors.is_empty(), "{kind}: {errors:?}");
        // The member with a broken phone lands without it (its unionid
        // still links); the bad value is quarantined, hashed, by field.
        assert_eq!(lake.keys().len(), 10, "{kind}: {:?}", lake.quarantine);
        assert_eq!(lake.quarantine.len(), 1, "{kind}");
        assert_eq!(lake.quarantine[0].field.as_deref(), Some("phone"), "{kind}");
        assert!(
            lake.quarantine[0].reason.contains("landed without it"),
            "{kind}: {}",
            lake.quarantine[0].reason
        );
        assert!(
            !lake.quarantine[0].raw.contains("12345"),
            "{kind}: the value is hashed"
        );
        assert_eq!(lake.quarantine[0].record_key.as_deref(), Some("M007"));

        // Later: two members change, one joins. The next run picks them up;
        // the changed ones are current, nothing is duplicated.
        let later = (now + chrono::Duration::seconds(1)).format("%Y-%m-%d %H:%M:%S");
        exec(&pool, &format!("UPDATE {table} SET store_code = 'BJ02', updated_at = '{later}' WHERE member_no IN ('M001', 'M002')")).await;
        exec(&pool, &format!("INSERT INTO {table} VALUES ('M100', '13912349999', NULL, 'BJ02', '{later}', '{later}')")).await;
        tokio::time::sleep(std::time::Duration::from_secs(7)).await; // past the 5 s end lag
        let received = lake.rows_received;
        lake.run(&streams, None).await.unwrap();
        let keys = lake.keys();
        assert_eq!(keys.len(), 13, "{kind}: {keys:?}");
        assert!(
            keys.iter().any(|k| k[1] == "M001" && k[2] == "BJ02"),
            "{kind}: the new owner is a new contact row"
        );
        assert!(
            lake.rows_received - received < 10,
            "{kind}: the second run read only the recent window"
        );
        exec(&pool, &format!("DROP TABLE {table}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pos_orders_by_auto_increment_resume_after_a_stop() {
    for (kind, url, pool, table) in servers("crm_pos").await {
        let id = if kind == "postgres" {
            "id SERIAL PRIMARY KEY"
        } else {
            "id INT AUTO_INCREMENT PRIMARY KEY"
        };
        exec(&pool, &format!(
            "CREATE TABLE {table} ({id}, ticket VARCHAR(20), store VARCHAR(20), mobile VARCHAR(20), amount DECIMAL(10,2), status VARCHAR(10), sold_at TIMESTAMP NULL)"
        )).await;
        let insert = |from: i32, to: i32| {
            (from..to)
                .map(|i| format!("INSERT INTO {table} (ticket, store, mobile, amount, status, sold_at) VALUES ('T{i:04}', 'SH01', '1381234{i:04}', {}.50, '已完成', '2024-06-01 10:{:02}:00')", 100 + i, i % 60))
                .collect::<Vec<_>>()
                .join("; ")
        };
        exec(&pool, &insert(0, 11)).await;
        let mut status = BTreeMap::new();
        status.insert("已完成".to_string(), "completed".to_string());
        status.insert("已退款".to_string(), "refunded".to_string());
        let mut columns = cols(&[
            ("order_id", "ticket"),
            ("shop_id", "store"),
            ("phone", "mobile"),
            ("amount", "amount"),
            ("created_at", "sold_at"),
        ]);
        columns.insert(
            "status".into(),
            ColumnSpec::Full {
                column: "status".into(),
                parse: None,
                map: status,
            },
        );
        let cfg = CrmConfig {
            name: format!("{table}-src"),
            url: SecretRef::inline(&url),
            table: CrmTarget::Orders,
            source_table: Some(table.clone()),
            query: None,
            cursor_column: "id".into(),
            cursor: CursorKind::Increment,
            window_minutes: 1440,
            lookback_minutes: 0,
            initial_days: 1,
            batch_rows: 4,
            values: [("channel".to_string(), "crm".to_string())].into(),
            columns,
        };
        let streams = build_streams(&cfg).unwrap();
        let mut lake = MemoryLake::default();
        lake.run(&streams, None).await.unwrap();
        assert_eq!(lake.keys().len(), 11, "{kind}");
        assert_eq!(lake.sequences.values().next().copied(), Some(11), "{kind}");

        // A stop after the first batch: the cursor stays at the last
        // committed id and the next run reads only what follows.
        let mut resumed = MemoryLake::default();
        resumed.sequences.insert(streams[0].id().clone(), 4);
        exec(&pool, &insert(11, 14)).await;
        resumed.run(&streams, None).await.unwrap();
        assert_eq!(resumed.rows_received, 10, "{kind}: ids 5..=14 only");
        assert_eq!(
            resumed.sequences.values().next().copied(),
            Some(14),
            "{kind}"
        );
        exec(&pool, &format!("DROP TABLE {table}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_a_clear_error_without_the_password() {
    for (kind, url) in urls() {
        let Some(_) = connect(kind, &url).await else {
            continue;
        };
        let bad = if kind == "postgres" {
            "postgres://no_such_user:s3cretpw@127.0.0.1:5432/test".to_string()
        } else {
            "mysql://no_such_user:s3cretpw@127.0.0.1:3306/test".to_string()
        };
        let streams = build_streams(&members_config(&bad, "whatever")).unwrap();
        let err = MemoryLake::default().run(&streams, None).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("crm") && text.contains("whatever-src"),
            "{kind}: {text}"
        );
        assert!(!text.contains("s3cretpw"), "{kind}: {text}");
    }
}
