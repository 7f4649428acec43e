//! `quanyu bench`: pull N trades from a marketplace sandbox (Taobao unless
//! told) running in a child process (so its memory is not counted), rate
//! limits off, into a fresh lake, and print trades per second and the
//! puller's peak memory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use quanyu_connector_sdk::{ConnectorSetup, PullContext, RetryPolicy};
use quanyu_schemas::{LakeKey, PiiHasher};

use crate::lake::Lake;
use crate::runner::RunOptions;

pub use crate::sandboxes::SandboxAnnouncement;

/// Benchmark results.
#[derive(Debug)]
pub struct BenchResult {
    /// Trades landed in the raw table.
    pub trades: i64,
    /// Seconds for the pull (all windows, commits included).
    pub pull_secs: f64,
    /// CPU seconds (user and system, all threads of this process) the pull
    /// used; the sandbox's are its child process's.
    pub pull_cpu_secs: f64,
    /// Seconds for refreshing the current `orders` table and its lines
    /// (`order_lines`), as a run does.
    pub refresh_secs: f64,
    /// Peak resident memory of this process during the pull, MiB.
    pub pull_peak_rss_mib: f64,
    /// Peak resident memory of this process at the end (refresh included), MiB.
    pub peak_rss_mib: f64,
    /// Seconds for the identity build that follows (and `customers`).
    pub identity_secs: f64,
    /// Customers it found.
    pub customers: usize,
    /// Peak resident memory during the identity build alone, MiB.
    pub identity_peak_rss_mib: f64,
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// CPU seconds (user and system, all threads) this process has used, from
/// `/proc/self/stat` (in `USER_HZ` ticks, 100 per second on Linux).
pub fn cpu_secs() -> f64 {
    cpu_secs_in("/proc/self/stat")
}

/// User and system CPU seconds in a `/proc/.../stat` file.
fn cpu_secs_in(stat_file: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_file).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// Run the benchmark against `platform`'s sandbox over a world of
/// `orders` trades.
pub async fn run_bench(
    platform: &str,
    orders: usize,
    lake_dir: Option<PathBuf>,
    chunk_rows: usize,
) -> Result<BenchResult> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "--log-level",
            "error",
            "sandbox",
            platform,
            "--port",
            "0",
            "--orders",
            &orders.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the sandbox process")?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let ann: SandboxAnnouncement = match serde_json::from_str(line.trim()) {
        Ok(a) => a,
        Err(e) => {
            let _ = child.kill();
            bail!("sandbox did not announce itself ({e}): {line:?}");
        }
    };
    let result = bench_against(&ann, lake_dir, chunk_rows).await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn bench_against(
    ann: &SandboxAnnouncement,
    lake_dir: Option<PathBuf>,
    chunk_rows: usize,
) -> Result<BenchResult> {
    let tmp = tempfile_dir()?;
    let lake_path = lake_dir.unwrap_or_else(|| tmp.clone());
    let lake = Lake::open(&lake_path)?;
    let pull = quanyu_connector_sdk::connector::SandboxPull {
        initial_days: 31,
        ..Default::default()
    };
    let streams =
        crate::sandboxes::streams_for(ann, pull, &ConnectorSetup::new(RetryPolicy::default()))?;
    let hasher = PiiHasher::new(&LakeKey::from_bytes(rand::random()));
    let ctx = PullContext {
        run_id: crate::sync::new_run_id(),
        ingested_at: Utc::now(),
        hasher,
    };
    let started = Instant::now();
    let cpu_before = cpu_secs();
    let opts = RunOptions {
        chunk_rows,
        progress: true,
        ..Default::default()
    };
    // Pull only (the refresh is timed separately below).
    let mut rows = 0;
    for s in &streams {
        let bar = indicatif::ProgressBar::hidden();
        let rec = crate::runner::run_stream(&lake, s, &ctx, opts, bar).await;
        if rec.status != "succeeded" {
            bail!("bench pull failed: {}", rec.error.unwrap_or_default());
        }
        rows += rec.rows_out;
    }
    let pull_secs = started.elapsed().as_secs_f64();
    let pull_cpu_secs = cpu_secs() - cpu_before;
    let pull_peak_rss_mib = peak_rss_mib();
    let t = Instant::now();
    let orders = quanyu_schemas::TableKind::Orders;
    for kind in std::iter::once(orders).chain(orders.companions().iter().copied()) {
        crate::refresh::refresh_current(&lake, kind).await?;
    }
    let refresh_secs = t.elapsed().as_secs_f64();
    let peak_rss_mib = peak_rss_mib();
    // Identity and customers, as `quanyu run` builds them after a pull.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let (ids, _) = crate::sync::derive(
        &lake,
        &ctx.hasher,
        (&Default::default(), &Default::default()),
        false,
    )
    .await?;
    let identity_secs = t.elapsed().as_secs_f64();
    let identity_peak_rss_mib = crate::bench::peak_rss_mib();
    if lake_path == tmp {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(BenchResult {
        trades: rows,
        pull_secs,
        pull_cpu_secs,
        refresh_secs,
        pull_peak_rss_mib,
        peak_rss_mib,
        identity_secs,
        customers: ids.customers,
        identity_peak_rss_mib,
    })
}

fn tempfile_dir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!(
        "quanyu-bench-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_the_work_of_every_thread() {
        // Spin until this thread itself has used `secs` of CPU.
        fn spin(secs: f64) -> u64 {
            let start = cpu_secs_in("/proc/thread-self/stat");
            let mut x = 0u64;
            while cpu_secs_in("/proc/thread-self/stat") - start < secs {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
            x
        }
        let before = cpu_secs();
        // 0.2 s on this thread and 0.2 s on another one.
        let other = std::thread::spawn(|| spin(0.2));
        spin(0.2);
        other.join().unwrap();
        let used = cpu_secs() - before;
        // Both threads count (ticks are 10 ms).
        assert!(used >= 0.38, "{used} CPU seconds for two threads of 0.2 s");
    }
}
