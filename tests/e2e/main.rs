//! End-to-end tests: the real `quanyu` binary against its sandboxes, and the
//! engine in-process where a test must reach inside a run (crash, quarantine).

mod cli;
mod hostile;
mod identity;
mod lake;
mod listen;
mod marts;
mod marts_world;
mod report;
mod scale;

use std::path::Path;
use std::process::{Command, Output};

/// The first column of what `query` answers over `lake`, as text, row by
/// row (in the engine, not through the binary).
pub async fn column_text(lake: &quanyu::lake::Lake, query: &str) -> Vec<String> {
    let batches = quanyu::sql::query(lake, query).await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let c = quanyu::lake::strings(b.column(0)).unwrap();
        out.extend((0..arrow::array::Array::len(&c)).map(|i| c.value(i).to_string()));
    }
    out
}

/// Run the built `quanyu` with `args`; panics with its stderr on failure.
pub fn quanyu(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args(["--no-progress"])
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("QUANYU_LAKE_KEY")
        .output()
        .expect("quanyu runs");
    assert!(
        out.status.success(),
        "quanyu {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `quanyu sql --format csv` → rows of cells (header dropped).
pub fn sql(lake: &Path, query: &str) -> Vec<Vec<String>> {
    let out = quanyu(
        &[
            "sql",
            "--lake",
            lake.to_str().unwrap(),
            "--format",
            "csv",
            query,
        ],
        &[],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// A single integer from a query.
pub fn sql_int(lake: &Path, query: &str) -> i64 {
    sql(lake, query)[0][0].parse().unwrap()
}

/// Assert the single integer `query` answers over the lake at `lake` is
/// `expected`.
pub fn assert_count(lake: &Path, query: &str, expected: i64) {
    assert_eq!(sql_int(lake, query), expected, "{query}");
}

/// Every file under `dir`.
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
