//! The one place a sync happens, in one direction: pull the streams into
//! their raw tables, refresh the current tables they touched, build
//! identity, then bring the marts up to it. `quanyu run`, `demo`, `import`
//! and `bench` all run a [`Sync`]; a step left undone by a killed sync is
//! caught up by the next (refresh reads the raw versions it has not seen,
//! identity and marts record the build they reflect).
//!
//! ```no_run
//! # async fn f(lake: &quanyu_engine::lake::Lake, hasher: &quanyu_schemas::PiiHasher,
//! #            streams: Vec<std::sync::Arc<dyn quanyu_connector_sdk::Stream>>) -> anyhow::Result<()> {
//! let report = quanyu_engine::sync::Sync::new(lake, hasher)
//!     .streams(streams)
//!     .run()
//!     .await?;
//! println!("{} streams, {:?} customers", report.records.len(), report.identity.map(|i| i.customers));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;
use quanyu_connector_sdk::{PullContext, Stream};
use quanyu_schemas::{PiiHasher, TableKind};

use crate::identity::{IdentityConfig, IdentitySummary};
use crate::lake::Lake;
use crate::marts::MartsConfig;
use crate::runner::{run_streams, RunOptions};
use crate::runs::RunRecord;

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// The run id its rows carry.
    pub run_id: String,
    /// One record per stream pulled.
    pub records: Vec<RunRecord>,
    /// Rows each refreshed current table took in.
    pub refreshed: Vec<(TableKind, u64)>,
    /// The identity build, unless the sync stopped before identity.
    pub identity: Option<IdentitySummary>,
    /// Marts rebuilt.
    pub marts_rebuilt: usize,
}

/// How far a sync goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Pull and refresh only (a caller that syncs several batches and
    /// derives once).
    Refresh,
    /// Through identity and the marts.
    Marts,
}

/// A sync of the lake, built step by step like delta-rs operations.
pub struct Sync<'a> {
    lake: &'a Lake,
    hasher: &'a PiiHasher,
    streams: Vec<Arc<dyn Stream>>,
    refresh: Vec<TableKind>,
    identity: IdentityConfig,
    marts: MartsConfig,
    options: RunOptions,
    run_id: String,
    until: Until,
    full_rebuild: bool,
}

impl<'a> Sync<'a> {
    /// A sync of `lake` hashing PII with `hasher`: no streams yet, default
    /// identity settings and run options, a new run id.
    pub fn new(lake: &'a Lake, hasher: &'a PiiHasher) -> Self {
        Sync {
            lake,
            hasher,
            streams: Vec::new(),
            refresh: Vec::new(),
            identity: IdentityConfig::default(),
            marts: MartsConfig::default(),
            options: RunOptions::default(),
            run_id: new_run_id(),
            until: Until::Marts,
            full_rebuild: false,
        }
    }

    /// Pull these streams.
    pub fn streams(mut self, streams: Vec<Arc<dyn Stream>>) -> Self {
        self.streams = streams;
        self
    }

    /// Also refresh `kind` though no stream of it is pulled (rows a killed
    /// run left in its raw table, or pushed by callbacks).
    pub fn refresh(mut self, kind: TableKind) -> Self {
        if !self.refresh.contains(&kind) {
            self.refresh.push(kind);
        }
        self
    }

    /// Identity settings.
    pub fn identity(mut self, cfg: &IdentityConfig) -> Self {
        self.identity = cfg.clone();
        self
    }

    /// The marts' settings (`[marts]`).
    pub fn marts(mut self, cfg: &MartsConfig) -> Self {
        self.marts = cfg.clone();
        self
    }

    /// Run options (chunking, progress, parallelism).
    pub fn options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// Stop after the refresh: identity and marts are left to a later sync.
    pub fn without_identity(mut self) -> Self {
        self.until = Until::Refresh;
        self
    }

    /// Rebuild identity from scratch instead of incrementally.
    pub fn full_rebuild(mut self) -> Self {
        self.full_rebuild = true;
        self
    }

    /// The run id this sync stamps on its rows.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Pull, refresh, build identity, bring the marts up to it.
    pub async fn run(self) -> Result<SyncReport> {
        let mut report = SyncReport {
            run_id: self.run_id.clone(),
            ..SyncReport::default()
        };
        let mut touched = self.refresh.clone();
        if !self.streams.is_empty() {
            let ctx = PullContext {
                run_id: self.run_id.clone(),
                ingested_at: Utc::now(),
                hasher: self.hasher.clone(),
            };
            report.records = run_streams(self.lake, &self.streams, &ctx, self.options).await?;
            for s in &self.streams {
                if !touched.contains(&s.table()) {
                    touched.push(s.table());
                }
            }
        }
        for kind in touched.clone() {
            for c in kind.companions() {
                if !touched.contains(c) {
                    touched.push(*c);
                }
            }
        }
        for kind in touched {
            let n = crate::refresh::refresh_current(self.lake, kind).await?;
            report.refreshed.push((kind, n));
        }
        if self.until == Until::Refresh {
            return Ok(report);
        }
        let (summary, rebuilt) = derive(
            self.lake,
            self.hasher,
            (&self.identity, &self.marts),
            self.full_rebuild,
        )
        .await?;
        report.identity = Some(summary);
        report.marts_rebuilt = rebuilt;
        Ok(report)
    }
}

/// Identity (incremental, or `full`) under `cfg.0`, then every mart
/// brought up to it under `cfg.1`; the marts' time is counted in the
/// summary's `customers_secs`.
pub async fn derive(
    lake: &Lake,
    hasher: &PiiHasher,
    (cfg, marts): (&IdentityConfig, &MartsConfig),
    full: bool,
) -> Result<(IdentitySummary, usize)> {
    let mut summary = if full {
        crate::identity::rebuild_identity(lake, hasher, cfg).await?
    } else {
        crate::identity::build_identity(lake, hasher, cfg).await?
    };
    let t = std::time::Instant::now();
    let rebuilt = crate::marts::refresh_marts(lake, summary.build, marts).await?;
    summary.timings.customers_secs += t.elapsed().as_secs_f64();
    Ok((summary, rebuilt))
}

/// A new run id: `run-<UTC time>-<random>`.
pub fn new_run_id() -> String {
    format!(
        "run-{}-{:04x}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        rand::random::<u16>()
    )
}
