//! The short, bounded versions of the on-demand trials: the bad-input
//! corpus (`tests/corpus/hostile_files.py --small`: every hostile file gets
//! its expected outcome, no raw phone anywhere, peak memory ≤ 256 MiB), the
//! crash harness (`tests/crash/crash_loop.py` with a few kills) and the leak
//! scan (`tests/scan/leak_scan.py`: the demo with faults, bad imports and
//! failing SQL at debug JSON logs; no raw phone or secret in the lake, the
//! logs or the errors). Both
//! drive the built binary from Python (standard library only); without
//! python3 they skip with a message, except under `CI=true`.

use std::path::Path;
use std::process::Command;

/// Run `script` with `args` and the built binary; panics with its output
/// when it reports a violation.
fn trial(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(script);
    let out = match Command::new("python3")
        .arg(&path)
        .args(["--quanyu", env!("CARGO_BIN_EXE_quanyu")])
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "python3 is required in CI: {e}"
            );
            eprintln!("skipping {script}: python3 not found ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{script} found violations:\n{stdout}\n{stderr}"
    );
}

#[test]
fn every_hostile_file_gets_its_expected_outcome_within_256_mib() {
    trial("tests/corpus/hostile_files.py", &["--small"]);
}

#[test]
fn killed_runs_and_imports_lose_and_double_nothing() {
    trial(
        "tests/crash/crash_loop.py",
        &["--trials", "4", "--orders", "300", "--calls", "3000"],
    );
}

#[test]
fn no_raw_phone_or_secret_in_the_lake_logs_or_errors() {
    trial("tests/scan/leak_scan.py", &["--orders", "400"]);
}
