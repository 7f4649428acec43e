//! The `runs` table: one row per stream run, with its window, counts,
//! completeness and outcome.

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};

quanyu_schemas::record_table! {
    /// What one stream run did: a row of `runs`.
    pub struct RunRecord in runs_schema {
        /// The run.
        pub run_id: String,
        /// Connector name.
        pub connector: String,
        /// Stream name.
        pub stream: String,
        /// Shop / corp.
        pub scope: String,
        /// Start of the first window pulled.
        pub window_start: Option<DateTime<Utc>>,
        /// End of the last window committed.
        pub window_end: Option<DateTime<Utc>>,
        /// Records received from the platform.
        pub rows_in: i64,
        /// Rows landed.
        pub rows_out: i64,
        /// Records quarantined.
        pub rows_quarantined: i64,
        /// Pages fetched.
        pub pages: i64,
        /// HTTP attempts made.
        pub requests: i64,
        /// Attempts retried.
        pub retries: i64,
        /// `succeeded` or `failed`.
        pub status: String,
        /// The error, when failed (never contains secrets).
        pub error: Option<String>,
        /// When the stream run started.
        pub started_at: DateTime<Utc>,
        /// When it ended.
        pub finished_at: DateTime<Utc>,
        // Added with the completeness check; nullable so older lakes merge.
        /// Sum of the platform's reported totals over the windows that report one.
        pub reported_total: Option<i64>,
        /// `complete` (every reported total was fetched), `short` (some window
        /// fetched fewer records than the platform reported), `unreported` (the
        /// platform reports no totals) or `incomplete` (the run failed).
        pub completeness: String as nullable,
        /// For `short`: which windows, what was fetched and reported.
        pub completeness_note: Option<String>,
    }
}

impl RunRecord {
    /// A run of `stream` in run `run_id` that started at `started_at` and
    /// has done nothing yet: `succeeded`, `unreported`, every count 0.
    pub fn new(
        run_id: &str,
        stream: &quanyu_connector_sdk::StreamId,
        started_at: DateTime<Utc>,
    ) -> Self {
        RunRecord {
            run_id: run_id.to_string(),
            connector: stream.connector.clone(),
            stream: stream.stream.clone(),
            scope: stream.scope.clone(),
            window_start: None,
            window_end: None,
            rows_in: 0,
            rows_out: 0,
            rows_quarantined: 0,
            pages: 0,
            requests: 0,
            retries: 0,
            status: "succeeded".into(),
            error: None,
            reported_total: None,
            completeness: "unreported".into(),
            completeness_note: None,
            started_at,
            finished_at: started_at,
        }
    }
}

/// Rows of `runs`.
pub fn runs_batch(records: &[RunRecord]) -> RecordBatch {
    RunRecord::batch(records)
}

/// A run in progress, marked by `<lake>/_runs/<run_id>.json` until its
/// results are in `runs`. A run killed before that leaves its marker:
/// `quanyu status` reports it and the next run records its streams in
/// `runs` as `interrupted`.
#[derive(Debug)]
pub struct RunMarker {
    path: std::path::PathBuf,
}

/// What a marker holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UnfinishedRun {
    /// The run.
    pub run_id: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its streams, as (connector, stream, scope).
    pub streams: Vec<(String, String, String)>,
}

fn markers_dir(lake: &crate::lake::Lake) -> std::path::PathBuf {
    lake.root().join("_runs")
}

impl RunMarker {
    /// Mark run `run_id` of `streams` as started (written and synced).
    pub fn start(
        lake: &crate::lake::Lake,
        run_id: &str,
        streams: &[quanyu_connector_sdk::StreamId],
    ) -> anyhow::Result<RunMarker> {
        use std::io::Write;
        let dir = markers_dir(lake);
        std::fs::create_dir_all(&dir)?;
        let body = UnfinishedRun {
            run_id: run_id.to_string(),
            started_at: Utc::now(),
            streams: streams
                .iter()
                .map(|s| (s.connector.clone(), s.stream.clone(), s.scope.clone()))
                .collect(),
        };
        // Written whole under a temporary name, then renamed: a marker is
        // either complete or absent.
        let path = dir.join(format!("{run_id}.json"));
        let tmp = dir.join(format!(".{run_id}.json.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&body)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(RunMarker { path })
    }

    /// The run's results are in `runs`: remove the marker.
    pub fn finish(self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// The runs whose marker is still there (killed, or running now), oldest
/// first, with each marker's path.
pub fn unfinished_runs(
    lake: &crate::lake::Lake,
) -> anyhow::Result<Vec<(std::path::PathBuf, UnfinishedRun)>> {
    let dir = markers_dir(lake);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        // A marker that cannot be read is left for an operator to see.
        if let Ok(run) = serde_json::from_slice::<UnfinishedRun>(&std::fs::read(&path)?) {
            out.push((path, run));
        }
    }
    out.sort_by_key(|(_, r)| r.started_at);
    Ok(out)
}

/// Record every run left unfinished (its marker still there) in `runs`, one
/// `interrupted` row per stream, and remove its marker. Call with the
/// writer lock held, before a new run starts.
pub async fn record_interrupted(lake: &crate::lake::Lake) -> anyhow::Result<usize> {
    let runs = unfinished_runs(lake)?;
    if runs.is_empty() {
        return Ok(0);
    }
    let mut records = Vec::new();
    for (_, run) in &runs {
        // Streams of that run that did record their result before the kill.
        let done = crate::sql::query(
            lake,
            &format!(
                "SELECT connector || '.' || stream || '@' || scope FROM runs WHERE run_id = '{}'",
                run.run_id.replace('\'', "''")
            ),
        )
        .await?;
        let mut recorded = std::collections::HashSet::new();
        for b in &done {
            let col = crate::lake::strings(b.column(0))?;
            recorded.extend(col.iter().flatten().map(str::to_string));
        }
        for (connector, stream, scope) in &run.streams {
            if recorded.contains(&format!("{connector}.{stream}@{scope}")) {
                continue;
            }
            let id = quanyu_connector_sdk::StreamId::new(connector, stream, scope);
            records.push(RunRecord {
                status: "interrupted".into(),
                error: Some(INTERRUPTED.into()),
                completeness: "incomplete".into(),
                ..RunRecord::new(&run.run_id, &id, run.started_at)
            });
        }
    }
    if !records.is_empty() {
        lake.append("runs", &runs_schema(), vec![runs_batch(&records)], None)
            .await?;
    }
    for (path, _) in &runs {
        let _ = std::fs::remove_file(path);
    }
    Ok(records.len())
}

/// Why an `interrupted` run has no results.
pub const INTERRUPTED: &str = "the process stopped before this run finished (killed or crashed); what it committed is kept and the next run resumes from the committed cursor";

#[cfg(test)]
mod tests {
    use quanyu_schemas::row::schema_shape;

    /// `runs` keeps the columns lakes of earlier releases hold.
    #[test]
    fn runs_keeps_its_released_schema() {
        assert_eq!(
            schema_shape(&super::runs_schema()),
            "run_id:s connector:s stream:s scope:s window_start:ts? window_end:ts? \
             rows_in:i64 rows_out:i64 rows_quarantined:i64 pages:i64 requests:i64 \
             retries:i64 status:s error:s? started_at:ts finished_at:ts \
             reported_total:i64? completeness:s? completeness_note:s?"
        );
    }
}
