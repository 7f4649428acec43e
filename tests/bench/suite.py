"""quanyu's benchmark suite: quanyu beside its peers, in one run, as ratios.

Usage (from the repository root, after `cargo build --release`):

    python3 tests/bench/suite.py [--bin target/release/quanyu]
        [--trades 1000000] [--lake-orders 10000000] [--demo-orders 200000]
        [--only ingest,lake,demo]

Parts:
  ingest  `quanyu bench --orders N` (pull from the Taobao sandbox into Delta,
          in a child process per side) beside, against one sandbox of the
          same seeded world: a plain Python fetch loop on one connection
          (fetch and parse, no output), DuckDB's read_json -> Parquet over
          the same server's pages (httpfs, signed GET URLs) and over the
          pages that loop saved to disk (no HTTP: DuckDB's parsing and
          writing alone), and dlt's rest_api source -> Parquet.
  lake    `quanyu bench lake --orders M`: a generated lake through refresh,
          identity and customers, then the analysts' queries of
          tests/bench/queries beside DuckDB on the same Parquet files.
  demo    `quanyu demo --orders K`: wall time and peak memory.

Installs its Python peers (tests/bench/requirements.txt) first. Absolute
times on a shared machine vary; read the ratios, which come from one run.
"""

import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BEIJING = timezone(timedelta(hours=8))


def vm_hwm_mib(pid):
    """The process's own peak resident memory (VmHWM, MiB), or None once it
    is gone. Not wait4's ru_maxrss: Linux folds the forking parent's
    resident size (this Python process, with DuckDB's buffers) into the
    child's at exec."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_peak(cmd, **popen):
    """Run `cmd` to its end; (seconds, peak MiB, exit status). The peak is
    read every 20 ms while it runs (VmHWM only grows)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, **popen)
    peak = 0.0
    while p.poll() is None:
        peak = max(peak, vm_hwm_mib(p.pid) or 0.0)
        time.sleep(0.02)
    return time.perf_counter() - t, peak, p.returncode


def timed_peak(cmd):
    """Run `cmd`; (stdout, seconds, peak RSS MiB)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        secs, peak, status = run_peak(cmd, stdout=out, stderr=subprocess.DEVNULL, text=True)
        out.seek(0)
        text = out.read()
    if status != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed (status {status})")
    return text, secs, peak


# ---------------------------------------------------------------- ingest


def top_sign(params, secret):
    s = "".join(k + v for k, v in sorted(params.items()) if v != "" and k != "sign")
    return hashlib.md5((secret + s + secret).encode()).hexdigest().upper()


def windows(days):
    """The daily windows quanyu pulls on a first run: 31 days up to now - 60 s."""
    end = datetime.now(timezone.utc) - timedelta(seconds=60)
    start = end - timedelta(days=days)
    out = []
    while start < end:
        w_end = min(start + timedelta(days=1), end)
        out.append((start, w_end))
        start = w_end
    return out


def fmt(t):
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class Top:
    """Signed TOP requests to the sandbox, as the official SDK makes them."""

    def __init__(self, ann):
        import requests

        self.url = ann["base_url"] + "/router/rest"
        self.key = ann["app_key"]
        self.secret = ann["app_secret"]
        self.http = requests.Session()

    def params(self, session, biz):
        p = {
            "method": "taobao.trades.sold.increment.get",
            "app_key": self.key,
            "session": session,
            "timestamp": fmt(datetime.now(timezone.utc)),
            "format": "json",
            "v": "2.0",
            "sign_method": "md5",
        }
        p.update({k: str(v) for k, v in biz.items()})
        p["sign"] = top_sign(p, self.secret)
        return p

    def request(self, session, start, end, page_no):
        """The URL and signed form of one page's request."""
        biz = {
            "fields": "tid,tid_str,status,type,created,modified,pay_time,payment,total_fee,post_fee,"
            "buyer_open_uid,receiver_name,receiver_address,receiver_mobile,receiver_phone,receiver_state,"
            "receiver_city,oaid,orders.oid,orders.num",
            "start_modified": fmt(start),
            "end_modified": fmt(end - timedelta(seconds=1)),
            "page_no": str(page_no),
            "page_size": "100",
        }
        return self.url, self.params(session, biz)

    def page(self, session, start, end, page_no):
        url, data = self.request(session, start, end, page_no)
        r = self.http.post(url, data=data)
        r.raise_for_status()
        return r.content


def fetch_loop(ann, out_dir):
    """The plain fetch loop: every page of every window, parsed; pages saved
    (for DuckDB) outside the timed part. Returns (trades, seconds, pages),
    pages being every (session, start, end, page_no) it fetched."""
    top = Top(ann)
    trades = 0
    secs = 0.0
    n = 0
    plan = []
    for shop in ann["shops"]:
        for start, end in windows(31):
            page_no, pages = 1, 1
            while page_no <= pages:
                t = time.perf_counter()
                body = top.page(shop["access_token"], start, end, page_no)
                doc = json.loads(body)
                secs += time.perf_counter() - t
                resp = doc["trades_sold_increment_get_response"]
                pages = -(-resp["total_results"] // 100)
                trades += len(resp.get("trades", {}).get("trade", []))
                (out_dir / f"page-{n:07}.json").write_bytes(body)
                plan.append((shop["access_token"], start, end, page_no))
                n += 1
                page_no += 1
    return trades, secs, plan


def duckdb_connect():
    """DuckDB with its httpfs extension from PyPI (duckdb-ext-httpfs): no
    download from extensions.duckdb.org."""
    import duckdb
    import duckdb_ext

    ext_dir = pathlib.Path(duckdb_ext.__path__[0]) / "extensions"
    con = duckdb.connect(config={"extension_directory": str(ext_dir), "autoinstall_known_extensions": False})
    con.execute("LOAD httpfs")
    # Whole pages, no range requests: the API serves each page once.
    con.execute("SET force_download = true")
    return con


def duckdb_convert(sources, out):
    """DuckDB's read_json over `sources` (a glob or a list of URLs) into one
    Parquet file of trades. Returns (rows, seconds)."""
    con = duckdb_connect()
    t = time.perf_counter()
    con.execute(
        f"""COPY (
              SELECT unnest(trades_sold_increment_get_response.trades.trade, recursive := true)
              FROM read_json(?, maximum_object_size = 100000000)
            ) TO '{out}' (FORMAT parquet)""",
        [sources],
    )
    secs = time.perf_counter() - t
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    return rows, secs


def signed_urls(ann, plan):
    """GET URLs (TOP takes its parameters in the query string too), signed
    now, for every page the fetch loop found."""
    from urllib.parse import urlencode

    top = Top(ann)
    urls = []
    for session, start, end, page_no in plan:
        _, data = top.request(session, start, end, page_no)
        urls.append(f"{top.url}?{urlencode(data)}")
    return urls


def dlt_pull(ann, work):
    """dlt's rest_api source (page-number paginator; TOP signing in the
    client's requests session) into Parquet files. Returns (rows, seconds)."""
    import dlt
    import requests
    from dlt.sources.rest_api import rest_api_source

    top = Top(ann)

    class SigningSession(requests.Session):
        """Signs each request's parameters as TOP wants."""

        def __init__(self, session_key):
            super().__init__()
            self.session_key = session_key

        def prepare_request(self, request):
            request.params = top.params(self.session_key, dict(request.params or {}))
            return super().prepare_request(request)

    fields = (
        "tid,tid_str,status,type,created,modified,pay_time,payment,total_fee,post_fee,"
        "buyer_open_uid,receiver_name,receiver_address,receiver_mobile,receiver_phone,"
        "receiver_state,receiver_city,oaid,orders.oid,orders.num"
    )
    sources = []
    for shop in ann["shops"]:
        resources = []
        for i, (start, end) in enumerate(windows(31)):
            resources.append(
                {
                    "name": f"trades_{re.sub('[^a-z0-9]', '_', shop['id'].lower())}_{i}",
                    "table_name": "trades",
                    "endpoint": {
                        "path": "router/rest",
                        "params": {
                            "fields": fields,
                            "start_modified": fmt(start),
                            "end_modified": fmt(end - timedelta(seconds=1)),
                            "page_size": "100",
                        },
                        "data_selector": "trades_sold_increment_get_response.trades.trade",
                        "paginator": {
                            "type": "page_number",
                            "page_param": "page_no",
                            "base_page": 1,
                            "total_path": None,
                            "stop_after_empty_page": True,
                        },
                    },
                }
            )
        sources.append(
            rest_api_source(
                {
                    "client": {
                        "base_url": ann["base_url"] + "/",
                        "session": SigningSession(shop["access_token"]),
                    },
                    "resources": resources,
                },
                name=f"top_{len(sources)}",
            )
        )
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = str(work / "dlt")
    pipe = dlt.pipeline(
        pipeline_name="quanyu_peer",
        destination="filesystem",
        dataset_name="top",
        pipelines_dir=str(work / "dlt-pipelines"),
    )
    t = time.perf_counter()
    pipe.run(sources, loader_file_format="parquet")
    secs = time.perf_counter() - t
    rows = pipe.last_trace.last_normalize_info.row_counts.get("trades", 0)
    return rows, secs


def start_sandbox(bin_, trades):
    p = subprocess.Popen(
        [bin_, "--log-level", "error", "sandbox", "taobao", "--port", "0", "--orders", str(trades)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ann = json.loads(p.stdout.readline())
    return p, ann


def ingest(bin_, trades, work, skip_dlt):
    print(f"\n## ingest: {trades} Taobao trades from the TOP sandbox\n", flush=True)
    out, secs, peak = timed_peak([bin_, "--log-level", "error", "bench", "--orders", str(trades)])
    m = re.search(r"pull:\s+([\d.]+) s\s+\((\d+) trades/s\)", out)
    pulled = int(re.search(r"trades:\s+(\d+)", out).group(1))
    q_secs, q_rate = float(m.group(1)), int(m.group(2))
    pull_peak = float(re.search(r"peak memory:\s+(\d+) MiB during the pull", out).group(1))
    cpu_us = float(re.search(r"pull CPU:\s+[\d.]+ s\s+\(([\d.]+) µs per trade", out).group(1))
    sandbox, ann = start_sandbox(bin_, trades)
    rows = []
    try:
        pages = work / "pages"
        pages.mkdir()
        f_trades, f_secs, plan = fetch_loop(ann, pages)
        rows.append(("plain Python fetch loop (fetch + parse)", f_trades, f_secs, None))
        d_rows, d_secs = duckdb_convert(signed_urls(ann, plan), work / "duckdb-http.parquet")
        if d_rows != f_trades:
            # An error page (an expired signature, say) has no trades.
            sys.exit(f"DuckDB read {d_rows} trades over HTTP, the fetch loop {f_trades}")
        rows.append(("DuckDB read_json -> Parquet (the same server, httpfs)", d_rows, d_secs, None))
        d_rows, d_secs = duckdb_convert(f"{pages}/page-*.json", work / "duckdb.parquet")
        rows.append(("DuckDB read_json -> Parquet (pages saved to disk, no HTTP)", d_rows, d_secs, None))
        if not skip_dlt:
            l_rows, l_secs = dlt_pull(ann, work)
            rows.append(("dlt rest_api -> Parquet", l_rows, l_secs, None))
    finally:
        sandbox.kill()
    print(f"| tool | rows | seconds | rows/s | quanyu ÷ tool |")
    print(f"|---|---:|---:|---:|---:|")
    print(f"| quanyu pull -> Delta (peak {pull_peak:.0f} MiB, {cpu_us:.1f} µs CPU per trade) | {pulled} | {q_secs:.2f} | {q_rate} | 1.00 |")
    for name, n, s, _ in rows:
        rate = n / s if s else 0
        print(f"| {name} | {n} | {s:.2f} | {rate:.0f} | {q_rate / rate if rate else 0:.2f} |")
    print(f"\nquanyu bench output:\n{out}", flush=True)


def lake(bin_, orders):
    print(f"\n## lake: {orders} generated orders, pipeline and analyst queries\n", flush=True)
    out, secs, peak = timed_peak([bin_, "--log-level", "error", "bench", "lake", "--orders", str(orders)])
    print(out)
    print(f"whole benchmark: {secs:.1f} s, peak {peak:.0f} MiB", flush=True)


def demo(bin_, orders, work):
    print(f"\n## demo: quanyu demo --orders {orders}\n", flush=True)
    d = work / "demo"
    d.mkdir()
    secs, peak, status = run_peak(
        [bin_, "--log-level", "error", "demo", "--orders", str(orders)],
        cwd=d,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"quanyu demo --orders {orders}: {secs:.1f} s, peak {peak:.0f} MiB, exit {status}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/quanyu"))
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--lake-orders", type=int, default=10_000_000)
    ap.add_argument("--demo-orders", type=int, default=200_000)
    ap.add_argument("--only", default="ingest,lake,demo")
    ap.add_argument("--no-dlt", action="store_true", help="skip dlt (slow: minutes per million rows)")
    ap.add_argument("--no-install", action="store_true")
    a = ap.parse_args()
    if not a.no_install:
        subprocess.check_call(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(HERE / "requirements.txt")]
        )
    parts = a.only.split(",")
    work = pathlib.Path(tempfile.mkdtemp(prefix="quanyu-suite-"))
    try:
        print(f"quanyu benchmark suite, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, binary {a.bin}")
        if "ingest" in parts:
            ingest(a.bin, a.trades, work, a.no_dlt)
        if "lake" in parts:
            lake(a.bin, a.lake_orders)
        if "demo" in parts:
            demo(a.bin, a.demo_orders, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
