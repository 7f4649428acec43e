//! `quanyu import`: run file imports through the same run loop as API
//! streams (runs, quarantine, refresh), skipping files whose content was
//! imported before, then rebuild identity.

use std::path::PathBuf;

use anyhow::Result;
use quanyu_files::ImportConfig;
use quanyu_schemas::PiiHasher;

use crate::config::Config;
use crate::lake::Lake;
use crate::runner::{stream_cursor, RunOptions};

/// Files to import through one `[[imports]]` entry.
pub struct FileImport<'a> {
    /// The configuration (run settings, identity).
    pub cfg: &'a Config,
    /// The `[[imports]]` entry that reads the files.
    pub import: &'a ImportConfig,
    /// The files.
    pub paths: &'a [PathBuf],
    /// The lake's PII hasher.
    pub hasher: &'a PiiHasher,
    /// Show progress bars.
    pub progress: bool,
}

impl FileImport<'_> {
    /// Import under the lake's writer lock, then rebuild identity; returns
    /// one line per file saying what happened.
    pub async fn run(&self, lake: &Lake) -> Result<Vec<String>> {
        let _lock = lake.lock_writer()?;
        let lines = self.run_locked(lake).await?;
        crate::sync::derive(
            lake,
            self.hasher,
            (&self.cfg.identity, &self.cfg.marts),
            false,
        )
        .await?;
        Ok(lines)
    }

    /// [`FileImport::run`] for a caller that holds the writer lock and
    /// derives identity and marts itself.
    pub async fn run_locked(&self, lake: &Lake) -> Result<Vec<String>> {
        let (cfg, import, hasher, progress) = (self.cfg, self.import, self.hasher, self.progress);
        let paths = self.paths;
        let mut lines = Vec::new();
        let mut streams = Vec::new();
        for p in paths {
            let stream = quanyu_files::file_stream(import, p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            if let Some(at) = stream_cursor(lake, stream.as_ref()).await? {
                lines.push(format!(
                    "{}: already imported (same content, {})",
                    p.display(),
                    quanyu_schemas::time::format_beijing(at)
                ));
                continue;
            }
            streams.push((p.clone(), stream));
        }
        // The table is refreshed even when every file is in the raw table
        // already: a run killed between its raw commit and the refresh left rows
        // only a refresh brings into the current table (it reads only the raw
        // versions it has not seen, so it costs nothing when none are new).
        let only: Vec<_> = streams.iter().map(|(_, s)| s.clone()).collect();
        let report = crate::sync::Sync::new(lake, hasher)
            .streams(only)
            .refresh(import.table.kind())
            .options(RunOptions {
                chunk_rows: cfg.run.chunk_rows,
                progress,
                parallel_streams: cfg.run.parallel_streams,
                windows_at_once: cfg.run.windows_at_once,
            })
            .without_identity()
            .run()
            .await?;
        if streams.is_empty() {
            let caught_up: u64 = report.refreshed.iter().map(|(_, n)| n).sum();
            if caught_up > 0 {
                lines.push(format!(
                    "{caught_up} rows imported earlier but not yet in {} were brought in",
                    import.table.kind().name()
                ));
            }
            return Ok(lines);
        }
        let records = report.records;
        for ((path, _), r) in streams.iter().zip(&records) {
            lines.push(format!(
                "{}: {} — {} rows, {} landed, {} quarantined{}",
                path.display(),
                r.status,
                r.rows_in,
                r.rows_out,
                r.rows_quarantined,
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(r) = records.iter().find(|r| r.status != "succeeded") {
            anyhow::bail!(
                "import of {} failed: {}",
                r.scope,
                r.error.as_deref().unwrap_or("")
            );
        }
        Ok(lines)
    }
}
