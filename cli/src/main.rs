//! The `quanyu` command line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use quanyu::config::{default_key_file, Config};
use quanyu::lake::Lake;
use quanyu_connector_sdk::sandbox::world::{WorldConfig, WorldShop};
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ConnectorSetup, LimiterRegistry, RetryPolicy, TokenStore};
use quanyu_schemas::PiiHasher;
use tracing_subscriber::EnvFilter;

const EXAMPLES: &str = "\
Examples:
  quanyu demo                          # sandboxes → ./lake, with a summary
  quanyu sql \"select count(*) from customers\"
  quanyu sql --format csv \"select * from orders limit 10\"
  quanyu init --config quanyu.toml     # create the lake key (0600) and lake folder
  quanyu run --config quanyu.toml taobao.orders wecom
  quanyu sandbox taobao --port 8801    # a TOP gateway emulator on loopback
  quanyu bench --orders 200000         # trades/s and peak memory";

/// quanyu (全域): pull marketplace orders and private-domain contacts into a
/// Delta lake and stitch one customer id across them.
#[derive(Parser, Debug)]
#[command(name = "quanyu", version, after_help = EXAMPLES)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or an EnvFilter directive.
    #[arg(long, default_value = "warn", global = true, env = "QUANYU_LOG")]
    log_level: String,
    /// Never draw progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the lake key (outside the lake, mode 0600) and the lake folder.
    #[command(after_help = "Example:\n  quanyu init --config quanyu.toml")]
    Init {
        /// Config file whose [lake] section to use.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start the sandboxes, pull everything into a local lake, build identity, print a summary.
    #[command(
        after_help = "Examples:\n  quanyu demo\n  quanyu demo --lake /tmp/lake --orders 200000"
    )]
    Demo {
        /// Lake folder.
        #[arg(long, default_value = "lake")]
        lake: PathBuf,
        /// Orders in the seeded world.
        #[arg(long, default_value_t = 5000)]
        orders: usize,
        /// Inject throttling, 5xx, timeouts and token expiry at this rate (0–0.3).
        #[arg(long, default_value_t = 0.0)]
        faults: f64,
        /// Lake key file (created if missing; `QUANYU_LAKE_KEY` overrides).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Pull the configured streams (all, or those selected) and rebuild identity.
    #[command(
        after_help = "Selectors: CONNECTOR, CONNECTOR.STREAM or CONNECTOR.STREAM@SHOP\nExample:\n  quanyu run --config quanyu.toml taobao.orders@tmall-flagship"
    )]
    Run {
        /// Config file.
        #[arg(long, default_value = "quanyu.toml")]
        config: PathBuf,
        /// Streams to run.
        selectors: Vec<String>,
    },
    /// Run SQL (DataFusion) over every lake table.
    #[command(
        after_help = "Examples:\n  quanyu sql \"select channel, count(*) from orders group by channel\"\n  quanyu sql --format json \"select * from customers order by gmv_fen desc limit 10\""
    )]
    Sql {
        /// The query.
        query: String,
        /// Lake folder (default: the config's, else ./lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = quanyu::sql::Format::Table)]
        format: quanyu::sql::Format,
    },
    /// Write an operators' list from the marts: `recall`, the recall list
    /// (due buyers, most valuable first, without the suppressed), for the
    /// AI-call vendor or the reps. It holds no phone: a vendor calls
    /// through the platform's privacy number for the order it names.
    #[command(
        after_help = "Examples:\n  quanyu export recall --format csv --encoding gbk --route ai-call --out recall.csv\n  quanyu export recall --format xlsx --route rep --out reps.xlsx"
    )]
    Export {
        /// What to export.
        what: ExportWhat,
        /// Lake folder (default: the config's, else ./lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// File format.
        #[arg(long, value_enum, default_value_t = quanyu::export::ExportFormat::Csv)]
        format: quanyu::export::ExportFormat,
        /// CSV text encoding.
        #[arg(long, value_enum, default_value_t = quanyu::export::TextEncoding::Utf8)]
        encoding: quanyu::export::TextEncoding,
        /// Only the customers routed to the AI-call vendor, or to the reps.
        #[arg(long, value_enum)]
        route: Option<quanyu::export::Route>,
        /// Also the suppressed customers, with the reason.
        #[arg(long)]
        include_suppressed: bool,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the operators' report: one self-contained HTML file (orders
    /// and GMV by channel, channel overlap, bridge funnel and ROI, retention,
    /// the recall list by value band, top reps), from the marts.
    #[command(
        after_help = "Examples:\n  quanyu report\n  quanyu report --lake ./lake --out weekly.html"
    )]
    Report {
        /// Lake folder (default: the config's, else ./lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The HTML file to write.
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
    /// Show each stream's cursor and last outcome, recent runs, and warnings
    /// (failed streams, windows short of the platform's reported totals).
    #[command(after_help = "Examples:\n  quanyu status\n  quanyu status --lake ./lake --runs 50")]
    Status {
        /// Lake folder (default: the config's, else ./lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many recent stream runs to list.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Import files (CSV / XLSX) through a configured `[[imports]]` mapping;
    /// each file once, by content hash.
    #[command(
        after_help = "Examples:\n  quanyu import --config quanyu.toml baiying-calls exports/calls-0601.csv\n  quanyu import --config quanyu.toml card-scans            # the import's watch folder\n  quanyu import --config quanyu.toml card-scans --watch    # keep picking up new files"
    )]
    Import {
        /// Config file.
        #[arg(long, default_value = "quanyu.toml")]
        config: PathBuf,
        /// The `[[imports]]` name.
        name: String,
        /// Files to import (default: the import's `watch` folder).
        files: Vec<PathBuf>,
        /// Keep watching the folder, importing new files as they appear.
        #[arg(long)]
        watch: bool,
        /// Seconds between folder scans with --watch.
        #[arg(long, default_value_t = 30)]
        interval: u64,
    },
    /// Write sample bridge exports (GBK call log, XLSX card scans, CRM CSV and
    /// SQL seed) rendered from the demo's seeded world.
    Samples {
        /// Output folder.
        #[arg(long, default_value = "samples")]
        out: PathBuf,
        /// Marketplace orders in the seeded world.
        #[arg(long, default_value_t = 600)]
        orders: usize,
    },
    /// Receive platform callbacks (WeCom contact events) and land them in the lake.
    #[command(
        after_help = "Examples:\n  quanyu listen wecom --config quanyu.toml --port 8900\n\nSet the WeCom callback URL to http(s)://<host>/wecom/<corp_id>."
    )]
    Listen {
        /// Which callbacks.
        #[arg(value_enum)]
        source: ListenSource,
        /// Config file with [[listen.wecom]] (token, EncodingAESKey).
        #[arg(long, default_value = "quanyu.toml")]
        config: PathBuf,
        /// Port to listen on.
        #[arg(long, default_value_t = 8900)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "0.0.0.0")]
        bind: std::net::IpAddr,
    },
    /// List the registered connectors: their config section, channel,
    /// whether they decrypt phones, how cards name their orders, whether a
    /// sandbox emulates them.
    Connectors,
    /// Serve a platform emulator on loopback.
    #[command(
        after_help = "Examples:\n  quanyu sandbox taobao --port 8801\n  quanyu sandbox pdd --port 8803\n  quanyu sandbox wecom --port 8802 --faults 0.1\n\nThe first stdout line is JSON with every credential the sandbox accepts."
    )]
    Sandbox {
        /// Which platform: wecom, or any connector with a sandbox.
        #[arg(value_parser = sandbox_platforms())]
        platform: String,
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The corp id to accept (WeCom; marketplaces announce theirs).
        #[arg(long)]
        app_key: Option<String>,
        /// The secret to accept (WeCom; marketplaces announce theirs).
        #[arg(long)]
        app_secret: Option<String>,
        /// Orders in the seeded world.
        #[arg(long, default_value_t = 5000)]
        orders: usize,
        /// Inject transient faults at this rate.
        #[arg(long, default_value_t = 0.0)]
        faults: f64,
    },
    /// Why two identifiers share a unified id, or how one customer was built.
    #[command(
        after_help = "Identifiers are TYPE:VALUE; phone:<mobile> is hashed with the lake key first.\nExamples:\n  quanyu explain phone:13912345679 order:taobao:3100000000000123\n  quanyu explain wecom_external_userid:wmAbc taobao_buyer:AAH1f@tmall-flagship\n  quanyu explain C1a2b3c4d5e6f7a8b9c0d          # a customer (or a retired id)"
    )]
    Explain {
        /// An identifier (TYPE:VALUE) or a unified id.
        first: String,
        /// A second identifier: explain the link between the two.
        second: Option<String>,
        /// Lake folder (default: the config's, else ./lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file (its lake and key file).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Identity maintenance: the audit of shared identifiers, a full rebuild.
    Identity {
        #[command(subcommand)]
        command: IdentityCmd,
    },
    /// Benchmarks that print figures: `pull` (N trades from a Taobao
    /// sandbox, rate limits off: trades/s and peak memory) or `identity`
    /// (identity builds on a synthetic graph of N identifiers and M edges,
    /// and an incremental build after 1 % new orders; per step wall time and
    /// peak memory, beside SciPy's connected components on the same edges).
    #[command(
        after_help = "Examples:\n  quanyu bench --orders 500000\n  quanyu bench marts --orders 10000000 --lake /tmp/marts10m\n  quanyu bench identity --nodes 2000000 --edges 3000000\n  quanyu bench identity --nodes 10000000 --edges 15000000 --identity-orders 1000000"
    )]
    Bench {
        /// Which benchmark.
        #[arg(value_enum, default_value_t = BenchKind::Pull)]
        kind: BenchKind,
        /// Identifiers in the synthetic identity graph.
        #[arg(long, default_value_t = 2_000_000)]
        nodes: usize,
        /// Edges in the synthetic identity graph.
        #[arg(long, default_value_t = 3_000_000)]
        edges: usize,
        /// Orders for the incremental identity part (0 skips it).
        #[arg(long, default_value_t = 300_000)]
        identity_orders: usize,
        /// Trades to pull.
        #[arg(long, default_value_t = 200_000)]
        orders: usize,
        /// `pull`: the marketplace whose sandbox is pulled (any registered
        /// connector with a sandbox; the seeded world spreads `--orders`
        /// over every demo shop, so it serves its own share).
        #[arg(long, default_value = "taobao")]
        platform: String,
        /// Rows per commit.
        #[arg(long, default_value_t = 25_000)]
        chunk_rows: usize,
        /// Keep the lake here instead of a temporary folder.
        #[arg(long)]
        lake: Option<PathBuf>,
        /// `lake`, `marts`: the lake exists (from an earlier `--lake` run):
        /// run the queries (rebuild the marts) only.
        #[arg(long)]
        queries_only: bool,
        /// `lake`, `marts`: skip the DuckDB peer.
        #[arg(long)]
        no_peer: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchKind {
    /// Pull throughput from a sandbox.
    Pull,
    /// Identity at scale.
    Identity,
    /// A generated lake of N orders: refresh, identity, customers and the
    /// analysts' queries, beside DuckDB on the same Parquet files.
    Lake,
    /// Every mart built alone over a generated lake of N orders, beside
    /// DuckDB running the same queries on the same Parquet files.
    Marts,
}

/// The platforms `quanyu sandbox` serves: WeCom and every registered
/// connector with a sandbox.
fn sandbox_platforms() -> clap::builder::PossibleValuesParser {
    let names: Vec<&'static str> = std::iter::once("wecom")
        .chain(quanyu::registry::with_sandbox().map(|c| c.name()))
        .collect();
    clap::builder::PossibleValuesParser::new(names)
}

fn init_logging(cli: &Cli) {
    // Streams commit to one raw table side by side: delta-rs notes each
    // commit that had to be checked against another (normal, and retried)
    // at warn; only a level the user names shows those.
    let level = match cli.log_level.as_str() {
        "warn" => "warn,deltalake_core::kernel::transaction=error",
        other => other,
    };
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

fn main() {
    limit_malloc_arenas();
    quiet_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    runtime.block_on(async {
        let cli = Cli::parse();
        init_logging(&cli);
        if let Err(e) = run(cli).await {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    });
}

/// A panic (a reader stopping on a corrupt file is caught and reported as
/// that file's error) prints one line: where, and its message with any
/// phone masked (a string-slicing panic quotes the string); the backtrace
/// only when `RUST_BACKTRACE` asks for it.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let mut masked = String::new();
        let mut at = 0;
        for (start, end) in quanyu_schemas::phone::find_phones(&msg) {
            masked.push_str(&msg[at..start]);
            masked.push_str("<phone>");
            at = end;
        }
        masked.push_str(&msg[at..]);
        let masked: String = masked.chars().take(300).collect();
        let thread = std::thread::current();
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "quanyu: internal error in thread '{}' at {place}: {masked}",
            thread.name().unwrap_or("?")
        );
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}

/// Two malloc arenas instead of glibc's eight per core: the threads that
/// pull, write and query then reuse each other's freed memory (peak memory
/// of a 200,000-order demo 574 MB instead of 766 MB, of a 1 M-trade pull 137
/// MiB instead of 157; the pull ran at 133 k instead of 158 k trades/s in
/// that pair of runs). Before any thread starts; `MALLOC_ARENA_MAX` in the
/// environment overrides it.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread is
        // running yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let progress = !cli.no_progress;
    match cli.command {
        Cmd::Init { config } => {
            let cfg = load_config(config.as_ref())?;
            let created = quanyu::keys::init_key(&cfg.lake.key_file)?;
            Lake::open(&cfg.lake.root)?;
            println!(
                "lake key: {} ({})\nlake:     {}",
                cfg.lake.key_file.display(),
                if created {
                    "created, mode 0600"
                } else {
                    "exists, kept"
                },
                cfg.lake.root.display()
            );
        }
        Cmd::Demo {
            lake,
            orders,
            faults,
            key_file,
        } => {
            let started = std::time::Instant::now();
            let opts = quanyu::demo::DemoOptions {
                lake: lake.clone(),
                key_file: key_file.unwrap_or_else(default_key_file),
                orders,
                fault_rate: faults,
                progress,
            };
            let s = quanyu::demo::run_demo(&opts).await?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "quanyu demo: lake at {} ({:.1}s)",
                lake.display(),
                started.elapsed().as_secs_f64()
            )?;
            for (t, n) in &s.counts {
                let expected = match t.as_str() {
                    "orders" => format!("  (sandbox holds {})", s.expected_orders),
                    "contacts" => format!(
                        "  (WeCom sandbox + CRM export hold {})",
                        s.expected_contacts
                    ),
                    "customers" => format!("  (seeded world predicts {})", s.expected_customers),
                    _ => String::new(),
                };
                writeln!(out, "  {t:<13} {n:>8}{expected}")?;
            }
            for (ch, n, held) in &s.orders_by_channel {
                writeln!(out, "    {ch:<11} {n:>8}  (sandbox holds {held})")?;
            }
            for (t, n, held) in &s.sales {
                writeln!(out, "  {t:<13} {n:>8}  (sandboxes hold {held})")?;
            }
            writeln!(
                out,
                "  customers on more than one marketplace: {}",
                s.multi_marketplace_customers
            )?;
            for f in &s.failed_streams {
                writeln!(out, "  FAILED {f}")?;
            }
            writeln!(out, "try: quanyu sql --lake {} \"select channels, count(*) n from customers group by channels\"", lake.display())?;
            writeln!(
                out,
                "     quanyu sql --lake {} \"select * from bridge_roi\"",
                lake.display()
            )?;
            writeln!(
                out,
                "     quanyu report --lake {} --out report.html",
                lake.display()
            )?;
            if !s.failed_streams.is_empty() {
                anyhow::bail!("{} stream(s) failed", s.failed_streams.len());
            }
        }
        Cmd::Run { config, selectors } => {
            let cfg = Config::load(&config)?;
            let key = quanyu::keys::load_key(&cfg.lake.key_file)?;
            let hasher = PiiHasher::new(&key);
            let streams = quanyu::registry::select(
                cfg.streams(&ConnectorSetup {
                    limiters: LimiterRegistry::new(),
                    policy: RetryPolicy::default(),
                    tokens: TokenStore::in_dir(cfg.lake.tokens_dir()),
                })?,
                &selectors,
            )?;
            let lake = Lake::open(&cfg.lake.root)?;
            let _lock = lake.lock_writer()?;
            let opts = quanyu::runner::RunOptions {
                chunk_rows: cfg.run.chunk_rows,
                progress,
                parallel_streams: cfg.run.parallel_streams,
                windows_at_once: cfg.run.windows_at_once,
            };
            let report = quanyu::sync::Sync::new(&lake, &hasher)
                .streams(streams)
                .identity(&cfg.identity)
                .marts(&cfg.marts)
                .options(opts)
                .run()
                .await?;
            let records = report.records;
            let ids = report.identity.context("the sync built identity")?;
            for r in &records {
                println!(
                    "{}.{}@{}: {} — {} in, {} landed, {} quarantined, {} requests ({} retried){}",
                    r.connector,
                    r.stream,
                    r.scope,
                    r.status,
                    r.rows_in,
                    r.rows_out,
                    r.rows_quarantined,
                    r.requests,
                    r.retries,
                    r.error
                        .as_ref()
                        .map(|e| format!("\n    error: {e}"))
                        .unwrap_or_default()
                );
            }
            println!("{}", quanyu::identity::build::describe(&ids));
            let failed = records.iter().filter(|r| r.status != "succeeded").count();
            if failed > 0 {
                anyhow::bail!("{failed} stream(s) failed");
            }
        }
        Cmd::Sql {
            query,
            lake,
            config,
            format,
        } => {
            let lake = existing_lake(lake, config)?;
            let batches = quanyu::sql::query(&lake, &query).await?;
            quanyu::sql::write(&batches, format, &mut std::io::stdout().lock())?;
        }
        Cmd::Export {
            what: ExportWhat::Recall,
            lake,
            config,
            format,
            encoding,
            route,
            include_suppressed,
            out,
        } => {
            let lake = existing_lake(lake, config)?;
            let opts = quanyu::export::RecallExport {
                format,
                encoding,
                route,
                include_suppressed,
            };
            let n = quanyu::export::export_recall(&lake, &opts, &out).await?;
            println!("{n} customers written to {}", out.display());
        }
        Cmd::Report { lake, config, out } => {
            let lake = existing_lake(lake, config)?;
            let html = quanyu::report::render(&lake).await?;
            std::fs::write(&out, html)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("report written to {}", out.display());
        }
        Cmd::Import {
            config,
            name,
            files,
            watch,
            interval,
        } => {
            let cfg = Config::load(&config)?;
            let import = cfg
                .imports
                .iter()
                .find(|i| i.name == name)
                .with_context(|| {
                    let known: Vec<&str> = cfg.imports.iter().map(|i| i.name.as_str()).collect();
                    format!(
                        "no [[imports]] named {name:?}; configured: {}",
                        known.join(", ")
                    )
                })?
                .clone();
            let key = quanyu::keys::load_key(&cfg.lake.key_file)?;
            let lake = Lake::open(&cfg.lake.root)?;
            loop {
                let paths = if files.is_empty() {
                    let dir = import.watch.as_ref().with_context(|| {
                        format!("give files, or set `watch` for import {name:?}")
                    })?;
                    quanyu_files::watched_files(dir)
                        .with_context(|| format!("cannot list {}", dir.display()))?
                } else {
                    files.clone()
                };
                let hasher = PiiHasher::new(&key);
                let imported = quanyu::imports::FileImport {
                    cfg: &cfg,
                    import: &import,
                    paths: &paths,
                    hasher: &hasher,
                    progress,
                }
                .run(&lake)
                .await?;
                for line in &imported {
                    println!("{line}");
                }
                if !watch {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(interval.max(1))).await;
            }
        }
        Cmd::Samples { out, orders } => {
            let as_of = Utc::now() - Duration::minutes(5);
            let world = quanyu_connector_sdk::sandbox::world::World::generate(
                quanyu::demo::demo_world(as_of, orders),
            );
            let f = quanyu::samples::write_samples(&world, as_of, &out)?;
            for p in [
                &f.calls,
                &f.card_scans,
                &f.crm_members,
                &f.crm_seed_sql,
                &f.crm_seed_mysql,
            ] {
                println!("{}", p.display());
            }
        }
        Cmd::Listen {
            source: ListenSource::Wecom,
            config,
            port,
            bind,
        } => {
            let cfg = Config::load(&config)?;
            let key = quanyu::keys::load_key(&cfg.lake.key_file)?;
            let lake = Lake::open(&cfg.lake.root)?;
            let hasher = PiiHasher::new(&key);
            let router = quanyu::listen::router(
                lake.clone(),
                hasher.clone(),
                &cfg.listen,
                &cfg.bridges,
                &cfg.identity.state_rules,
            )?;
            quanyu::listen::serve(
                lake,
                hasher,
                router,
                std::net::SocketAddr::new(bind, port),
                std::time::Duration::from_secs(30),
            )
            .await?;
        }
        Cmd::Status { lake, config, runs } => {
            let lake = existing_lake(lake, config)?;
            let status = quanyu::status::status(&lake, runs).await?;
            print!("{}", quanyu::status::render(&status)?);
        }
        Cmd::Connectors => {
            // Columns as wide as their longest entry.
            let connectors = quanyu::registry::CONNECTORS;
            let section = connectors
                .iter()
                .map(|c| c.name().len() + 4)
                .max()
                .unwrap_or(0);
            let channel = connectors
                .iter()
                .map(|c| c.channel().as_str().len())
                .max()
                .unwrap_or(0);
            println!(
                "{:<section$} {:<channel$} {:<9} {:<12} {:<8} pulls",
                "section", "channel", "decrypts", "card prefix", "sandbox"
            );
            for c in connectors {
                let prefix = c.order_ids().map_or("", |o| o.state_prefix);
                println!(
                    "{:<section$} {:<channel$} {:<9} {:<12} {:<8} {}",
                    format!("[[{}]]", c.name()),
                    c.channel().as_str(),
                    if c.decrypts() { "yes" } else { "no" },
                    prefix,
                    if c.sandbox().is_some() { "yes" } else { "no" },
                    c.about()
                );
            }
        }
        Cmd::Sandbox {
            platform,
            port,
            app_key,
            app_secret,
            orders,
            faults,
        } => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let now = Utc::now();
            let world = WorldConfig::demo(now - Duration::minutes(5), orders);
            let faults = if faults > 0.0 {
                FaultConfig::chaos(faults, 1)
            } else {
                FaultConfig::default()
            };
            match platform.as_str() {
                "wecom" => {
                    let corp = app_key.unwrap_or_else(|| quanyu::sandboxes::WECOM_CORP_ID.into());
                    let secret =
                        app_secret.unwrap_or_else(|| quanyu::sandboxes::WECOM_SECRET.into());
                    let sb = quanyu_wecom::sandbox::WecomSandbox::new(
                        quanyu_wecom::sandbox::WecomSandboxConfig {
                            corp_id: corp.clone(),
                            secret: secret.clone(),
                            world,
                            faults,
                            as_of: Some(now - Duration::minutes(5)),
                            token_ttl_secs: 7200,
                        },
                    );
                    let handle = sb.serve(addr).await.context("cannot bind")?;
                    println!(
                        "{}",
                        serde_json::json!({"base_url": handle.base_url(), "corp_id": corp, "secret": secret, "contacts": sb.visible_contacts().len()})
                    );
                    eprintln!(
                        "WeCom sandbox at {}/cgi-bin/ (sandbox credentials above; Ctrl-C to stop)",
                        handle.base_url()
                    );
                    handle.wait().await;
                }
                name => {
                    let channel = quanyu::registry::find(name)
                        .context("a registered connector")?
                        .channel();
                    let mut world = world;
                    world.shops = WorldShop::only(channel);
                    let sb = quanyu::sandboxes::Marketplace::new(
                        channel,
                        world,
                        now - Duration::minutes(5),
                        faults,
                    )?;
                    let handle = sb.serve(addr).await.context("cannot bind")?;
                    let ann = sb.announce(&handle.base_url());
                    println!("{}", serde_json::to_string(&ann)?);
                    eprintln!(
                        "{} (sandbox credentials above; Ctrl-C to stop)",
                        sb.describe(&handle.base_url())
                    );
                    handle.wait().await;
                }
            }
        }
        Cmd::Explain {
            first,
            second,
            lake,
            config,
            json,
        } => {
            let key_file = match &config {
                Some(c) => Config::load(c)?.lake.key_file,
                None => default_key_file(),
            };
            let lake = existing_lake(lake, config)?;
            let hasher = PiiHasher::new(&quanyu::keys::load_key(&key_file)?);
            use quanyu::identity::explain;
            let out = match second {
                Some(second) => {
                    let a = explain::parse_ident(&first, &hasher)?;
                    let b = explain::parse_ident(&second, &hasher)?;
                    let ex = explain::explain_link(&lake, &a, &b).await?;
                    if json {
                        serde_json::to_string_pretty(&ex)?
                    } else {
                        explain::render_link(&ex)
                    }
                }
                None if !first.contains(':') => {
                    let ex = explain::explain_customer(&lake, &first).await?;
                    if json {
                        serde_json::to_string_pretty(&ex)?
                    } else {
                        explain::render_customer(&ex)
                    }
                }
                None => {
                    // One identifier: the customer it belongs to.
                    let a = explain::parse_ident(&first, &hasher)?;
                    let ex = explain::explain_link(&lake, &a, &a).await?;
                    match ex.a.unified_id.clone() {
                        Some(uid) => {
                            let c = explain::explain_customer(&lake, &uid).await?;
                            if json {
                                serde_json::to_string_pretty(&c)?
                            } else {
                                explain::render_customer(&c)
                            }
                        }
                        None if json => serde_json::to_string_pretty(&ex)?,
                        None => {
                            explain::render_link(&ex)
                                .lines()
                                .next()
                                .unwrap_or("")
                                .to_string()
                                + "\n"
                        }
                    }
                }
            };
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
        }
        Cmd::Identity {
            command:
                IdentityCmd::Audit {
                    lake,
                    config,
                    limit,
                },
        } => {
            let lake = existing_lake(lake, config)?;
            let top = quanyu::identity::explain::audit_top(&lake, limit).await?;
            println!("most connected identifiers (people = distinct people estimated behind it):");
            quanyu::sql::write(
                &top,
                quanyu::sql::Format::Table,
                &mut std::io::stdout().lock(),
            )?;
            let latest = quanyu::sql::query(
                &lake,
                "SELECT decision, rule, count(*) AS identifiers FROM identity_audit
                 WHERE build = (SELECT max(build) FROM identity_audit) GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .await;
            if let Ok(latest) = latest {
                println!("decisions of the latest build that changed any (identity_audit):");
                quanyu::sql::write(
                    &latest,
                    quanyu::sql::Format::Table,
                    &mut std::io::stdout().lock(),
                )?;
            }
        }
        Cmd::Identity {
            command: IdentityCmd::Rebuild { config },
        } => {
            let cfg = Config::load(&config)?;
            let key = quanyu::keys::load_key(&cfg.lake.key_file)?;
            let lake = Lake::open(&cfg.lake.root)?;
            let _lock = lake.lock_writer()?;
            let s = quanyu::identity::rebuild_identity(&lake, &PiiHasher::new(&key), &cfg.identity)
                .await?;
            println!("{}", quanyu::identity::build::describe(&s));
        }
        Cmd::Bench {
            kind: BenchKind::Identity,
            nodes,
            edges,
            identity_orders,
            lake,
            ..
        } => {
            let work = BenchDir::new("identity", lake);
            let dir = work.path.clone();
            let r = quanyu::bench_identity::run(&dir, nodes, edges, identity_orders).await;
            let peer = r
                .as_ref()
                .ok()
                .map(|_| peer_components(&dir.join("graph/identity_edges")));
            work.done();
            let r = r?;
            println!("identity graph: {} identifiers, {} edges", r.nodes, r.edges);
            for s in &r.steps {
                println!(
                    "  {:<44} {:>8.2} s  peak {:>6.0} MiB",
                    s.name, s.secs, s.peak_mib
                );
            }
            let t = &r.rebuild.timings;
            println!(
                "  full rebuild: read edges {:.2} s, read previous ids {:.2} s, resolve {:.2} s (components {:.2} s), carry-forward {:.2} s, write {:.2} s",
                t.read_edges_secs, t.read_previous_secs, t.resolve_secs, t.components_secs, t.assign_secs, t.write_secs
            );
            match peer {
                Some(Ok((secs, comps))) => println!(
                    "  SciPy connected_components on the same edges: {secs:.2} s ({comps} components); quanyu components / SciPy = {:.2}",
                    t.components_secs / secs.max(1e-9)
                ),
                Some(Err(e)) => println!("  SciPy peer skipped: {e}"),
                None => {}
            }
            if r.orders > 0 {
                let (i, f) = (&r.incremental.timings, &r.full.timings);
                let identity = |t: &quanyu::identity::build::BuildTimings| {
                    t.extract_secs
                        + t.read_edges_secs
                        + t.read_previous_secs
                        + t.resolve_secs
                        + t.assign_secs
                        + t.write_secs
                };
                println!(
                    "  after 1 % new orders ({} orders): incremental identity {:.2} s vs full rebuild {:.2} s = {:.1} % ({} of {} identifiers recomputed); with aliases and customers {:.2} s vs {:.2} s = {:.1} %",
                    r.orders,
                    identity(i),
                    identity(f),
                    100.0 * identity(i) / identity(f).max(1e-9),
                    r.incremental.recomputed,
                    r.full.recomputed,
                    identity(i) + i.customers_secs,
                    identity(f) + f.customers_secs,
                    100.0 * (identity(i) + i.customers_secs) / (identity(f) + f.customers_secs).max(1e-9),
                );
                println!(
                    "  incremental: changed records and edges {:.2} s, previous state {:.2} s, edges of the touched customers {:.2} s, resolve {:.2} s, carry-forward {:.2} s, write {:.2} s, aliases and customers {:.2} s",
                    i.extract_secs, i.read_previous_secs, i.read_edges_secs, i.resolve_secs, i.assign_secs, i.write_secs, i.customers_secs
                );
            }
        }
        Cmd::Bench {
            kind: BenchKind::Lake,
            orders,
            lake,
            queries_only,
            no_peer,
            ..
        } => {
            let work = BenchDir::new("lake", lake);
            let dir = work.path.clone();
            let r = quanyu::bench_lake::run(&dir, orders as u64, queries_only).await;
            let peer = match (&r, no_peer) {
                (Ok(_), false) => Some(peer_queries(&dir)),
                _ => None,
            };
            work.done();
            let r = r?;
            println!(
                "lake of {} orders, {} customers; memory budget {} MiB (QUANYU_MEMORY_MB)",
                r.orders,
                r.customers,
                quanyu::lake::memory_limit_bytes() / (1024 * 1024)
            );
            for s in &r.steps {
                println!(
                    "  {:<40} {:>8.2} s  peak {:>6.0} MiB",
                    s.name, s.secs, s.peak_mib
                );
            }
            let secs = |name: &str| {
                r.steps
                    .iter()
                    .find(|s| s.name == name)
                    .map_or(0.0, |s| s.secs)
            };
            if let Some(m) = &r.merge {
                println!(
                    "  after 1 % more: refresh {:.1} % of the first ({} new rows, {} of {} files rewritten{}); identity and customers {:.1} % of the first",
                    100.0 * secs("refresh orders after 1 % more") / secs("refresh orders").max(1e-9),
                    m.raw_rows,
                    m.files_rewritten,
                    m.files_before,
                    if m.whole_table { ", whole table" } else { "" },
                    100.0 * secs("identity and customers after 1 % more") / secs("identity and customers").max(1e-9),
                );
            }
            println!(
                "  {:<16} {:>9} {:>10} {:>9} {:>10} {:>8}  same answer",
                "query", "quanyu s", "peak MiB", "DuckDB s", "peak MiB", "ratio"
            );
            for q in &r.queries {
                let theirs = match &peer {
                    Some(Ok(v)) => v.get(&q.name),
                    _ => None,
                };
                match theirs {
                    Some(t) => println!(
                        "  {:<16} {:>9.2} {:>10.0} {:>9.2} {:>10.0} {:>7.2}x  {}",
                        q.name,
                        q.secs,
                        q.peak_mib,
                        t.secs,
                        t.peak_mib,
                        q.secs / t.secs.max(1e-9),
                        if t.answer == q.answer { "yes" } else { "NO" }
                    ),
                    None => println!("  {:<16} {:>9.2} {:>10.0}", q.name, q.secs, q.peak_mib),
                }
            }
            match peer {
                Some(Err(e)) => println!("  DuckDB peer skipped: {e:#}"),
                Some(Ok(v)) => {
                    for q in &r.queries {
                        if let Some(t) = v.get(&q.name).filter(|t| t.answer != q.answer) {
                            println!(
                                "  {}: quanyu answered\n{}  DuckDB answered\n{}",
                                q.name, q.answer, t.answer
                            );
                        }
                    }
                }
                None => {}
            }
        }
        Cmd::Bench {
            kind: BenchKind::Marts,
            orders,
            lake,
            queries_only,
            no_peer,
            ..
        } => {
            let work = BenchDir::new("marts", lake);
            let dir = work.path.clone();
            let r = quanyu::bench_marts::run(&dir, orders as u64, queries_only).await;
            let peer = match (&r, no_peer) {
                (Ok(r), false) => Some(run_peer_with("duckdb_marts.py", &[&dir, &r.sql_dir])),
                _ => None,
            };
            work.done();
            let r = r?;
            println!(
                "marts over {} orders; memory budget {} MiB (QUANYU_MEMORY_MB)",
                r.orders,
                quanyu::lake::memory_limit_bytes() / (1024 * 1024)
            );
            for s in &r.steps {
                println!(
                    "  {:<40} {:>8.2} s  peak {:>6.0} MiB",
                    s.name, s.secs, s.peak_mib
                );
            }
            println!(
                "  {:<22} {:>10} {:>9} {:>10} {:>9} {:>10} {:>8}  same answer",
                "mart", "rows", "quanyu s", "peak MiB", "DuckDB s", "peak MiB", "ratio"
            );
            let (mut ours, mut theirs) = (0.0, 0.0);
            for m in &r.marts {
                let peer_mart = match &peer {
                    Some(Ok(v)) => v.get(&m.name),
                    _ => None,
                };
                let rows = m.digest.get("rows").copied().unwrap_or(0);
                match peer_mart {
                    Some(t) => {
                        ours += m.secs;
                        theirs += t["secs"].as_f64().unwrap_or(0.0);
                        let same = m.digest.iter().all(|(k, v)| {
                            t["digest"][k].as_str().and_then(|s| s.parse::<i128>().ok()) == Some(*v)
                        });
                        println!(
                            "  {:<22} {:>10} {:>9.2} {:>10.0} {:>9.2} {:>10.0} {:>7.2}x  {}",
                            m.name,
                            rows,
                            m.secs,
                            m.peak_mib,
                            t["secs"].as_f64().unwrap_or(0.0),
                            t["peak_mib"].as_f64().unwrap_or(0.0),
                            m.secs / t["secs"].as_f64().unwrap_or(0.0).max(1e-9),
                            if same { "yes" } else { "NO" }
                        );
                        if !same {
                            println!("    quanyu: {:?}\n    DuckDB: {}", m.digest, t["digest"]);
                        }
                    }
                    None => println!(
                        "  {:<22} {:>10} {:>9.2} {:>10.0}",
                        m.name, rows, m.secs, m.peak_mib
                    ),
                }
            }
            if theirs > 0.0 {
                println!(
                    "  {:<22} {:>10} {:>9.2} {:>10} {:>9.2} {:>10} {:>7.2}x",
                    "all marts",
                    "",
                    ours,
                    "",
                    theirs,
                    "",
                    ours / theirs
                );
            }
            if let Some(Err(e)) = peer {
                println!("  DuckDB peer skipped: {e:#}");
            }
        }
        Cmd::Bench {
            kind: BenchKind::Pull,
            orders,
            chunk_rows,
            lake,
            platform,
            ..
        } => {
            if quanyu::registry::with_sandbox().all(|c| c.name() != platform) {
                let names: Vec<&str> = quanyu::registry::with_sandbox().map(|c| c.name()).collect();
                anyhow::bail!("no sandbox for {platform:?}; one of: {}", names.join(", "));
            }
            let r = quanyu::bench::run_bench(&platform, orders, lake, chunk_rows).await?;
            println!("trades:        {}", r.trades);
            println!(
                "pull:          {:.2} s  ({:.0} trades/s)",
                r.pull_secs,
                r.trades as f64 / r.pull_secs.max(1e-9)
            );
            println!(
                "pull CPU:      {:.2} s  ({:.1} µs per trade, all threads)",
                r.pull_cpu_secs,
                r.pull_cpu_secs * 1e6 / (r.trades.max(1) as f64)
            );
            println!(
                "refresh:       {:.2} s  (current orders and order_lines)",
                r.refresh_secs
            );
            println!(
                "peak memory:   {:.0} MiB during the pull, {:.0} MiB with the refresh (quanyu process; the sandbox runs in a child process)",
                r.pull_peak_rss_mib, r.peak_rss_mib
            );
            println!(
                "identity:      {:.2} s, {} customers, peak {:.0} MiB (identity and customers, as `quanyu run` builds them)",
                r.identity_secs, r.customers, r.identity_peak_rss_mib
            );
        }
    }
    Ok(())
}

/// SciPy's connected components over the edges of a Delta table, timed
/// in a Python child process (tests/bench/identity_peer.py): (seconds,
/// components).
fn peer_components(table: &std::path::Path) -> Result<(f64, u64)> {
    let v = run_peer("identity_peer.py", table)?;
    Ok((
        v["components_secs"].as_f64().unwrap_or(0.0),
        v["components"].as_u64().unwrap_or(0),
    ))
}

/// Run the peer script `tests/bench/<script>` on `arg` with python3; its
/// stdout as JSON (its last stderr line as the error when it fails).
fn run_peer(script: &str, arg: &std::path::Path) -> Result<serde_json::Value> {
    run_peer_with(script, &[arg])
}

/// [`run_peer`] with several arguments.
fn run_peer_with(script: &str, args: &[&std::path::Path]) -> Result<serde_json::Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/bench")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        anyhow::bail!(
            "{}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("python3 failed")
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("output of {}", script.display()))
}

/// One query as the DuckDB peer ran it.
struct PeerQuery {
    secs: f64,
    peak_mib: f64,
    answer: String,
}

/// DuckDB on the lake's Parquet files (tests/bench/duckdb_queries.py, in a
/// child process): each query's time, peak memory and CSV answer.
fn peer_queries(lake: &std::path::Path) -> Result<std::collections::HashMap<String, PeerQuery>> {
    let v = run_peer("duckdb_queries.py", lake)?;
    let mut m = std::collections::HashMap::new();
    for (name, q) in v.as_object().into_iter().flatten() {
        m.insert(
            name.clone(),
            PeerQuery {
                secs: q["secs"].as_f64().unwrap_or(0.0),
                peak_mib: q["peak_mib"].as_f64().unwrap_or(0.0),
                answer: q["answer"].as_str().unwrap_or("").to_string(),
            },
        );
    }
    Ok(m)
}

/// The lake named by `--lake`, else by the config, else `./lake`; it must exist.
fn existing_lake(lake: Option<PathBuf>, config: Option<PathBuf>) -> Result<Lake> {
    let root = match (lake, config) {
        (Some(l), _) => l,
        (None, Some(c)) => Config::load(&c)?.lake.root,
        (None, None) => PathBuf::from("lake"),
    };
    if !root.exists() {
        anyhow::bail!(
            "no lake at {} (run `quanyu demo` or pass --lake)",
            root.display()
        );
    }
    Lake::open(&root)
}

/// What `quanyu export` writes.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum ExportWhat {
    /// The recall list (`recall_list`).
    Recall,
}

/// `quanyu identity ...`
#[derive(Subcommand, Debug)]
enum IdentityCmd {
    /// The most connected identifiers (most people behind them first), with
    /// what identity decided for each, and the latest exclusions and cuts.
    #[command(after_help = "Example:\n  quanyu identity audit --limit 30")]
    Audit {
        /// Lake folder (default: the config's, else ./lake).
        #[arg(long)]
        lake: Option<PathBuf>,
        /// Config file to take the lake from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many identifiers to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Recompute every customer from every record (ids are still carried
    /// forward); needed only after editing the lake by hand.
    #[command(after_help = "Example:\n  quanyu identity rebuild --config quanyu.toml")]
    Rebuild {
        /// Config file.
        #[arg(long, default_value = "quanyu.toml")]
        config: PathBuf,
    },
}

/// Callback sources `quanyu listen` receives.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ListenSource {
    /// WeCom customer-contact events and AI-call records, as configured in [listen].
    Wecom,
}

/// The folder a benchmark works in: the one given, or a fresh one under
/// the temporary folder, removed when the benchmark is done.
struct BenchDir {
    path: PathBuf,
    temporary: bool,
}

impl BenchDir {
    fn new(name: &str, given: Option<PathBuf>) -> Self {
        match given {
            Some(path) => BenchDir {
                path,
                temporary: false,
            },
            None => BenchDir {
                path: std::env::temp_dir()
                    .join(format!("quanyu-bench-{name}-{}", std::process::id())),
                temporary: true,
            },
        }
    }

    /// Remove the folder where it was made for the benchmark.
    fn done(self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
