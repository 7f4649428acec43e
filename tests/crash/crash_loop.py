#!/usr/bin/env python3
"""Crash harness: kill -9 `quanyu run` and `quanyu import` at random points,
with the sandboxes faulting, then finish and check the lake against the
ground truth.

    python3 tests/crash/crash_loop.py --trials 40            # the full trial
    python3 tests/crash/crash_loop.py --trials 3 --orders 300 # what CI runs

Sandboxes (`quanyu sandbox`, separate processes that outlive every kill):
Taobao (session keys), Douyin (a self-built app: its tokens are created and
refreshed by quanyu and persisted, so kills land between a token refresh and
its save), Youzan (each shop's token granted to the app by silent
authorization and saved; phones decrypted) and WeCom (corp tokens fetched
with the secret). Each trial starts
a `run` (or, every third trial, an `import` of its own part of a 60,000-row
GBK call log with bad rows carrying phones) and kills it with SIGKILL after a random delay
within the measured length of an uninterrupted one; every fourth run is
instead killed the moment its log says a shop token was issued (Douyin's
`token.create` / `token.refresh`: the platform has
issued, and may have rotated, the tokens, and quanyu is about to save them). After every kill:

- no key appears twice in orders, order_lines, refunds, contacts or
  touchpoints;
- no quarantine row appears twice (by fingerprint).

At the end, one more run and import finish, and:

- orders and refunds == what the sandboxes hold, every order has its lines,
  contacts == WeCom's contacts,
  touchpoints == the good rows of the call log, quarantine == its bad rows;
- every killed run that got as far as marking itself shows in `runs` as
  `interrupted`; `status` reports no unfinished run;
- no raw phone of the call log is anywhere under the lake.

Prints one JSON line of figures (trials, kills, kills per phase). Exit 1 on
any violation.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quanyu_binary import binary  # noqa: E402



class Harness:
    def __init__(self, args, work):
        self.args = args
        self.quanyu = binary(args.quanyu)
        self.work = Path(work)
        self.lake = self.work / "lake"
        self.env = dict(os.environ, QUANYU_LAKE_KEY="ab" * 32, RUST_BACKTRACE="0")
        self.sandboxes = []
        self.truth = {}
        self.failures = []

    # -- setup ---------------------------------------------------------------

    def sandbox(self, platform):
        p = subprocess.Popen(
            [self.quanyu, "sandbox", platform, "--port", "0",
             "--orders", str(self.args.orders), "--faults", str(self.args.faults)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.sandboxes.append(p)
        return json.loads(p.stdout.readline())

    def write_config(self):
        tb = self.sandbox("taobao")
        dy = self.sandbox("douyin")
        yz = self.sandbox("youzan")
        wc = self.sandbox("wecom")
        self.truth["orders"] = tb["orders"] + dy["orders"] + yz["orders"]
        self.truth["refunds"] = tb["refunds"] + dy["refunds"] + yz["refunds"]
        self.truth["contacts"] = wc["contacts"]
        env = {"QY_TB_SECRET": tb["app_secret"], "QY_DY_SECRET": dy["app_secret"],
               "QY_YZ_SECRET": yz["app_secret"], "QY_WC_SECRET": wc["secret"]}
        lines = [
            "[lake]", f'root = "{self.lake}"', f'tokens_dir = "{self.work / "tokens"}"', "",
            "[run]", "chunk_rows = 200", "",
            "[[taobao]]", f'gateway = "{tb["base_url"]}/router/rest"',
            f'app_key = "{tb["app_key"]}"', 'app_secret = { env = "QY_TB_SECRET" }',
            "initial_days = 31", "shops = [",
        ]
        for i, s in enumerate(tb["shops"]):
            env[f"QY_TB_SESSION_{i}"] = s["access_token"]
            lines.append(f'  {{ id = "{s["id"]}", session = {{ env = "QY_TB_SESSION_{i}" }} }},')
        lines += ["]", "", "[[douyin]]", f'gateway = "{dy["base_url"]}"',
                  f'app_key = "{dy["app_key"]}"', 'app_secret = { env = "QY_DY_SECRET" }',
                  "initial_days = 31", "shops = ["]
        for s in dy["shops"]:
            # A self-built app: quanyu creates, refreshes and saves its tokens.
            lines.append(f'  {{ id = "{s["id"]}" }},')
        lines += ["]", "", "[[youzan]]", f'gateway = "{yz["base_url"]}"',
                  f'client_id = "{yz["app_key"]}"', 'client_secret = { env = "QY_YZ_SECRET" }',
                  "initial_days = 31", "window_minutes = 1440", "decrypt = true", "shops = ["]
        for s in yz["shops"]:
            # Silent authorization: quanyu is granted each shop's token and saves it.
            shop_id, kdt_id = s["id"].split("#")
            lines.append(f'  {{ id = "{shop_id}", kdt_id = "{kdt_id}" }},')
        lines += ["]", "", "[[wecom]]", f'base_url = "{wc["base_url"]}"',
                  f'corp_id = "{wc["corp_id"]}"', 'secret = { env = "QY_WC_SECRET" }', "",
                  "[[imports]]", 'name = "calls"', 'table = "touchpoints"', 'encoding = "auto"',
                  'values = { channel = "ai_call", event_type = "call" }',
                  "[imports.columns]", 'event_id = "通话ID"', 'phone = "被叫号码"',
                  'occurred_at = "呼叫时间"', 'duration_secs = "通话时长(秒)"', ""]
        self.config = self.work / "quanyu.toml"
        self.config.write_text("\n".join(lines))
        self.env.update(env)

    def write_call_log(self):
        """A GBK call log: good rows, and bad rows whose reasons name phones."""
        rng = random.Random(self.args.seed)
        rows, self.phones, bad = [], [], 0
        for i in range(self.args.calls):
            phone = f"13{rng.randrange(10**9):09d}"
            self.phones.append(phone)
            when = f"2026-11-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00"
            if i % 997 == 5:
                # A bad date, with the phone written the way people write it.
                when = f"昨天 {phone[:3]} {phone[3:7]} {phone[7:]}"
                bad += 1
            rows.append(f"C{i:08d},{phone},{when},{i % 300}")
        self.truth["touchpoints"] = self.args.calls - bad
        self.truth["quarantine"] = bad
        # One part per import trial (an import already done is skipped by
        # its content hash: each trial must bring a file of its own); the
        # last import takes them all.
        parts = max(1, self.args.trials // 3 + 1)
        size = -(-len(rows) // parts)
        self.call_logs = []
        for k in range(parts):
            path = self.work / f"calls-{k:03d}.csv"
            chunk = rows[k * size:(k + 1) * size]
            path.write_bytes(("通话ID,被叫号码,呼叫时间,通话时长(秒)\n" + "\n".join(chunk) + "\n").encode("gbk"))
            self.call_logs.append(path)
        self.next_part = 0

    # -- running -------------------------------------------------------------

    def command(self, phase, files=None):
        if phase == "import":
            files = files or self.call_logs
            return [self.quanyu, "import", "calls", *map(str, files), "--config", str(self.config)]
        return [self.quanyu, "run", "--config", str(self.config),
                "--log-format", "json", "--log-level", "debug"]

    def start(self, phase, log, files=None):
        return subprocess.Popen(self.command(phase, files), env=self.env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)

    def kill_at_token_answer(self, log_path, timeout):
        """Run, reading the JSON log as it is written; SIGKILL the moment a
        token answer is logged. True when the kill landed there."""
        p = subprocess.Popen(self.command("run"), env=self.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, start_new_session=True)
        hit = False
        deadline = time.time() + timeout
        with open(log_path, "wb") as log:
            for line in p.stderr:
                log.write(line)
                if b"token issued; saving it" in line:
                    os.killpg(p.pid, signal.SIGKILL)
                    hit = True
                    break
                if time.time() > deadline:
                    os.killpg(p.pid, signal.SIGKILL)
                    break
        p.wait()
        return hit

    def finish(self, phase):
        with open(self.work / f"{phase}-final.log", "ab") as log:
            for _ in range(3):
                if self.start(phase, log).wait(timeout=1800) == 0:
                    return
        self.fail(f"{phase} does not finish after the kills")

    def sql(self, query):
        out = subprocess.run([self.quanyu, "sql", "--lake", str(self.lake), "--format", "json", query],
                             env=self.env, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            if "not found" in out.stderr or "doesn't exist" in out.stderr or "No table" in out.stderr:
                return None
            self.fail(f"sql failed: {query}: {out.stderr.strip()[:300]}")
            return None
        rows = [json.loads(l) for l in out.stdout.splitlines() if l.strip().startswith("{")]
        if not rows:
            try:
                rows = json.loads(out.stdout)
            except json.JSONDecodeError:
                rows = []
        return rows

    def scalar(self, query):
        rows = self.sql(query)
        if not rows:
            return None
        return list(rows[0].values())[0]

    def fail(self, what):
        print(f"VIOLATION: {what}", file=sys.stderr)
        self.failures.append(what)

    # -- checks --------------------------------------------------------------

    def check_no_duplicates(self, when):
        keys = {"orders": "channel, shop_id, order_id", "contacts": "channel, contact_id, owner_userid",
                "touchpoints": "channel, event_id", "order_lines": "channel, shop_id, order_id, line_id",
                "refunds": "channel, shop_id, refund_id"}
        for table, key in keys.items():
            n = self.scalar(f"select count(*) from (select {key} from {table} group by {key} having count(*) > 1)")
            if n:
                self.fail(f"{when}: {n} keys twice in {table}")
        n = self.scalar("select count(*) from (select fingerprint from quarantine "
                        "where fingerprint is not null group by fingerprint having count(*) > 1)")
        if n:
            self.fail(f"{when}: {n} quarantine rows twice")

    def check_final(self, marked_kills):
        for table in ("orders", "refunds", "contacts", "touchpoints"):
            got = self.scalar(f"select count(*) from {table}")
            if got != self.truth[table]:
                self.fail(f"{table}: {got} rows, ground truth {self.truth[table]}")
        bare = self.scalar("select count(*) from orders o left anti join order_lines l "
                           "on o.channel = l.channel and o.shop_id = l.shop_id and o.order_id = l.order_id")
        if bare:
            self.fail(f"order_lines: {bare} orders landed without their lines")
        got = self.scalar("select count(*) from quarantine where source like '%calls%'")
        if got != self.truth["quarantine"]:
            self.fail(f"quarantine: {got} rows for the call log, {self.truth['quarantine']} bad rows in it")
        interrupted = self.scalar("select count(distinct run_id) from runs where status = 'interrupted'") or 0
        if interrupted < marked_kills:
            self.fail(f"runs: {interrupted} interrupted runs, {marked_kills} killed after marking themselves")
        status = subprocess.run([self.quanyu, "status", "--lake", str(self.lake)], env=self.env,
                                capture_output=True, text=True).stdout
        if "did not finish" in status:
            self.fail("status still reports an unfinished run after a finished one")
        leaked = self.scan_for_phones()
        if leaked:
            self.fail(f"raw phones under the lake: {leaked[:3]}")
        return interrupted

    def scan_for_phones(self):
        wanted = set(self.phones)
        found = []
        for path in self.lake.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            digits = re.sub(rb"[ \-.]", b"", data)
            for m in re.finditer(rb"1[3-9]\d{9}", digits):
                if m.group().decode() in wanted:
                    found.append(str(path.relative_to(self.lake)))
                    break
        return found

    # -- the loop ------------------------------------------------------------

    def measure(self, phase):
        """How long an uninterrupted run of `phase` takes, on a scratch lake."""
        scratch = self.work / f"measure-{phase}"
        cfg = self.config.read_text().replace(str(self.lake), str(scratch / "lake"))
        cfg = cfg.replace(str(self.work / "tokens"), str(scratch / "tokens"))
        scratch.mkdir()
        path = scratch / "quanyu.toml"
        path.write_text(cfg)
        cmd = [c if c != str(self.config) else str(path) for c in self.command(phase, self.call_logs[:1])]
        t = time.time()
        subprocess.run(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.time() - t

    def run(self):
        self.write_config()
        self.write_call_log()
        lengths = {p: max(0.5, self.measure(p)) for p in ("run", "import")}
        rng = random.Random(self.args.seed)
        kills = {"run": 0, "import": 0}
        marked = 0
        token_kills = 0
        logs = self.work / "logs"
        logs.mkdir()
        for trial in range(self.args.trials):
            phase = "import" if trial % 3 == 2 else "run"
            delay = rng.uniform(0.05, lengths[phase])
            markers_before = set((self.lake / "_runs").glob("*.json")) if (self.lake / "_runs").exists() else set()
            log_path = logs / f"{trial:03d}-{phase}.log"
            if phase == "run" and trial % 4 == 3:
                if self.kill_at_token_answer(log_path, lengths["run"] * 2):
                    token_kills += 1
                    kills["run"] += 1
                    after = set((self.lake / "_runs").glob("*.json")) if (self.lake / "_runs").exists() else set()
                    marked += len(after - markers_before)
                self.check_no_duplicates(f"trial {trial} (run, killed at a token answer)")
                continue
            files = None
            if phase == "import":
                files = [self.call_logs[min(self.next_part, len(self.call_logs) - 1)]]
                self.next_part += 1
            with open(log_path, "wb") as log:
                p = self.start(phase, log, files)
                try:
                    p.wait(timeout=delay)
                    finished = True
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    finished = False
            if not finished:
                kills[phase] += 1
                if phase == "run" and (self.lake / "_runs").exists():
                    after = set((self.lake / "_runs").glob("*.json"))
                    marked += len(after - markers_before)
            self.check_no_duplicates(f"trial {trial} ({phase}, {'finished' if finished else f'killed at {delay:.2f}s'})")
        self.finish("run")
        self.finish("import")
        self.check_no_duplicates("final")
        interrupted = self.check_final(marked)
        figures = {"trials": self.args.trials, "kills": kills["run"] + kills["import"],
                   "kills_run": kills["run"], "kills_import": kills["import"],
                   "kills_at_a_token_answer": token_kills, "interrupted_runs_recorded": interrupted,
                   "orders": self.truth["orders"], "refunds": self.truth["refunds"], "contacts": self.truth["contacts"],
                   "calls": self.args.calls, "faults": self.args.faults,
                   "run_seconds": round(lengths["run"], 2), "import_seconds": round(lengths["import"], 2),
                   "violations": len(self.failures)}
        print(json.dumps(figures))
        return not self.failures

    def stop(self):
        for p in self.sandboxes:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quanyu", help="the quanyu binary (default: $CARGO_TARGET_DIR/release/quanyu)")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--orders", type=int, default=2000, help="orders in each sandbox's world")
    ap.add_argument("--calls", type=int, default=60000, help="rows of the call log")
    ap.add_argument("--faults", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quanyu-crash-")
    h = Harness(args, work)
    try:
        ok = h.run()
    finally:
        h.stop()
        if args.keep:
            print(f"work folder: {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", work])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
