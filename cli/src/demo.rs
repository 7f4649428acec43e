//! `quanyu demo`: start the sandboxes on loopback, pull every stream into a
//! local lake, build identity, and print what landed next to what the seeded
//! world predicts.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::connector::SandboxPull;
use quanyu_connector_sdk::sandbox::world::WorldConfig;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ConnectorSetup, RetryPolicy};
use quanyu_schemas::PiiHasher;

use crate::config::Config;
use crate::lake::Lake;
use crate::runner::RunOptions;
use crate::sandboxes::Sandboxes;
use crate::sync::Sync;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The lake folder.
    pub lake: PathBuf,
    /// The key file (created when missing, unless `QUANYU_LAKE_KEY` is set).
    pub key_file: PathBuf,
    /// Marketplace orders in the seeded world.
    pub orders: usize,
    /// Inject transient faults into the sandboxes at this rate (0 = none).
    pub fault_rate: f64,
    /// Draw progress bars.
    pub progress: bool,
}

/// What the demo landed and what the world predicts.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    /// Rows per table.
    pub counts: Vec<(String, i64)>,
    /// Orders the sandbox holds.
    pub expected_orders: usize,
    /// Contacts the sandbox holds.
    pub expected_contacts: usize,
    /// Unified customers the world predicts.
    pub expected_customers: usize,
    /// Orders landed per channel: (channel, landed, the sandbox holds).
    pub orders_by_channel: Vec<(String, i64, usize)>,
    /// Order lines and refunds: (table, landed, the sandboxes hold).
    pub sales: Vec<(String, i64, usize)>,
    /// Unified customers who bought on more than one marketplace.
    pub multi_marketplace_customers: i64,
    /// Stream runs that failed.
    pub failed_streams: Vec<String>,
    /// The time the sandboxes' world stood at.
    pub as_of: chrono::DateTime<Utc>,
}

/// Run the demo.
pub async fn run_demo(opts: &DemoOptions) -> Result<DemoSummary> {
    if std::env::var(crate::keys::KEY_ENV).is_err() && crate::keys::init_key(&opts.key_file)? {
        eprintln!("created lake key {} (mode 0600)", opts.key_file.display());
    }
    let key = crate::keys::load_key(&opts.key_file)?;
    let hasher = PiiHasher::new(&key);
    let now = Utc::now();
    // The platforms' clock runs a few minutes behind the puller's window end,
    // so every record the sandbox shows is inside a pulled window.
    let as_of = now - Duration::minutes(5);
    let world = demo_world(as_of, opts.orders);
    let faults = if opts.fault_rate > 0.0 {
        FaultConfig::chaos(opts.fault_rate, 1)
    } else {
        FaultConfig::default()
    };
    let sb = Sandboxes::start(world, as_of, faults).await?;
    // Decrypt where the platform offers it: decrypted phones join buyers
    // across platforms (hashed at once; no phone is stored).
    let cfg = Config {
        marts: crate::samples::example_marts()?,
        ..Config::default()
    };
    let policy = RetryPolicy {
        request_timeout: std::time::Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    let pull = SandboxPull {
        initial_days: 31,
        decrypt: true,
        app_qps: 0,
        refunds: true,
    };
    let streams = sb.streams(pull, &ConnectorSetup::new(policy))?;
    let lake = Lake::open(&opts.lake)?;
    let _lock = lake.lock_writer()?;
    // Pull and refresh now; identity and marts once the bridges' files are
    // imported too.
    let records = Sync::new(&lake, &hasher)
        .streams(streams)
        .options(RunOptions {
            progress: opts.progress,
            ..RunOptions::default()
        })
        .without_identity()
        .run()
        .await?
        .records;
    // The bridges: vendors' exports rendered from the same world, imported
    // with the mappings examples/quanyu.toml documents.
    let world_now =
        quanyu_connector_sdk::sandbox::world::World::shared(&demo_world(as_of, opts.orders));
    // They hold raw phones, as real exports do: written outside the lake and
    // removed once imported (only hashes land).
    let sample_dir =
        std::env::temp_dir().join(format!("quanyu-demo-samples-{}", std::process::id()));
    let samples = crate::samples::write_samples(&world_now, as_of, &sample_dir)?;
    let imported: Result<()> = async {
        for imp in crate::samples::example_imports()? {
            let file = match imp.name.as_str() {
                "ai-calls" => &samples.calls,
                "card-scans" => &samples.card_scans,
                "crm-members" => &samples.crm_members,
                _ => continue,
            };
            crate::imports::FileImport {
                cfg: &cfg,
                import: &imp,
                paths: std::slice::from_ref(file),
                hasher: &hasher,
                progress: opts.progress,
            }
            .run_locked(&lake)
            .await?;
        }
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&sample_dir);
    imported?;
    // What the sandboxes showed, noted before they stop: the identity
    // build then runs without the seeded world in memory.
    let visible: Vec<(quanyu_schemas::Channel, usize)> = sb
        .marketplaces
        .iter()
        .map(|(m, _)| (m.channel(), m.visible_orders()))
        .collect();
    let shown_lines: usize = sb.marketplaces.iter().map(|(m, _)| m.visible_lines()).sum();
    let shown_refunds: usize = sb
        .marketplaces
        .iter()
        .map(|(m, _)| m.visible_refunds())
        .sum();
    let expected_orders = sb.visible_orders();
    let expected_contacts = sb.wecom.visible_contacts().len()
        + world_now
            .contacts
            .iter()
            .filter(|c| {
                c.origin == quanyu_connector_sdk::sandbox::world::ContactOrigin::PrivateOnly
                    && c.added <= as_of
            })
            .count();
    let expected_customers =
        world_now.expected_unified_customers(as_of, &crate::registry::decrypting_channels());
    sb.stop().await;
    drop(world_now);
    crate::sync::derive(&lake, &hasher, (&cfg.identity, &cfg.marts), false).await?;
    // Every count from one session (each table opened once).
    let session = lake.session_of(&crate::marts::sql_tables()).await?;
    let mut counts = Vec::new();
    for t in [
        "orders",
        "contacts",
        "touchpoints",
        "customers",
        "identity_map",
        "quarantine",
        "runs",
    ] {
        let n = count(&session, &format!("SELECT count(*) FROM {t}")).await?;
        counts.push((t.to_string(), n));
    }
    let mut orders_by_channel = Vec::new();
    for (ch, shown) in visible {
        let n = count(
            &session,
            &format!("SELECT count(*) FROM orders WHERE channel = '{ch}'"),
        )
        .await?;
        orders_by_channel.push((ch.to_string(), n, shown));
    }
    let mut sales = Vec::new();
    for (t, shown) in [("order_lines", shown_lines), ("refunds", shown_refunds)] {
        let n = count(&session, &format!("SELECT count(*) FROM {t}")).await?;
        sales.push((t.to_string(), n, shown));
    }
    let multi = count(
        &session,
        "SELECT count(*) FROM customers WHERE marketplace_count > 1",
    )
    .await?;
    let summary = DemoSummary {
        counts,
        expected_orders,
        expected_contacts,
        expected_customers,
        orders_by_channel,
        sales,
        multi_marketplace_customers: multi,
        failed_streams: records
            .iter()
            .filter(|r| r.status != "succeeded")
            .map(|r| {
                format!(
                    "{}.{}@{}: {}",
                    r.connector,
                    r.stream,
                    r.scope,
                    r.error.as_deref().unwrap_or("")
                )
            })
            .collect(),
        as_of,
    };
    Ok(summary)
}

/// The single count `sql` returns.
async fn count(session: &datafusion::prelude::SessionContext, sql: &str) -> Result<i64> {
    let batches = session.sql(sql).await?.collect().await?;
    Ok(crate::lake::first_count(&batches))
}

/// The demo's seeded world ending at `as_of`: its shops are those of the
/// marketplaces whose sandboxes the demo starts.
pub fn demo_world(as_of: chrono::DateTime<Utc>, orders: usize) -> WorldConfig {
    let mut world = WorldConfig::demo(as_of, orders);
    world
        .shops
        .retain(|s| crate::sandboxes::demo_channels().contains(&s.channel));
    world
}
