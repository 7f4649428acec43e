//! `quanyu report` in a real headless browser (Debian's chromium): the
//! report of the seeded world's lake loads with no console error, every
//! chart draws its marks (counted by the page after layout, marks with a
//! size on screen), and each chart is screenshotted on its own. Skipped
//! with a printed reason where no browser is installed, except under
//! `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The first of Chromium's names found on `PATH`.
fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Run the browser headless on `url` with `args`; (stdout, stderr).
fn headless(browser: &Path, args: &[&str], url: &str) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("the browser runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `text` holds 11 digits in a row starting with 1 (a mainland
/// mobile number's shape).
fn has_phone_shape(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(11).enumerate().any(|(i, w)| {
        w[0] == b'1'
            && w.iter().all(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_digit())
            && b.get(i + 11).is_none_or(|c| !c.is_ascii_digit())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_draws_every_chart_in_a_real_browser() {
    let Some(browser) = browser() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true needs a browser: apt-get install chromium fonts-noto-cjk"
        );
        eprintln!("skipped: no chromium on PATH (Debian: apt-get install chromium fonts-noto-cjk)");
        return;
    };
    let (_dir, lake, _) = crate::marts_world::world_lake(&crate::marts_world::config()).await;
    let html = quanyu::report::render(&lake).await.unwrap();
    assert!(
        !has_phone_shape(&html),
        "no phone-shaped number in the report"
    );
    assert!(
        html.contains("包裹卡") && html.contains("复购留存"),
        "Chinese labels"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());

    let (dom, log) = headless(&browser, &["--dump-dom"], &url);
    assert!(dom.contains("data-ready=\"1\""), "the page loaded: {log}");
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(
            !line.contains("ERROR") && !line.contains("Uncaught"),
            "console error: {line}"
        );
    }
    let charts: Vec<(String, usize)> = dom
        .split("<figure class=\"chart\" ")
        .skip(1)
        .map(|f| {
            let id = f.split('"').nth(1).unwrap_or_default().to_string();
            let drawn = f
                .split("data-drawn=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (id, drawn)
        })
        .collect();
    assert_eq!(charts.len(), 6, "six charts: {charts:?}");
    for (id, drawn) in &charts {
        assert!(*drawn > 0, "{id} drew no marks: {charts:?}");
    }
    for (id, _) in &charts {
        let shot = dir.join(format!("{id}.png"));
        let _ = std::fs::remove_file(&shot);
        let arg = format!("--screenshot={}", shot.display());
        let (_, log) = headless(
            &browser,
            &[&arg, "--window-size=1280,900"],
            &format!("{url}#{id}"),
        );
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 5_000, "{id}: screenshot of {size} bytes: {log}");
    }
    println!("report and screenshots in {}", dir.display());
}
