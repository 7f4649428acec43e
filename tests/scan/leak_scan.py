#!/usr/bin/env python3
"""Leak scan: run quanyu's main paths with debug JSON logs and look for raw
phones and secrets in everything they leave behind.

    python3 tests/scan/leak_scan.py [--quanyu PATH] [--orders 600]

What runs (one work folder):
- `quanyu demo --faults 0.1` (every marketplace and WeCom sandbox, phone
  decryption, token expiry and refresh, the sample bridge exports with raw
  phones, identity), logs at debug level as JSON;
- `quanyu import` of the hostile corpus' files that carry phones (a
  headerless file, phones in bad cells) and `quanyu sql` statements that
  fail;
- a config with a secret written inline by mistake.

What is scanned: every table of the lake decoded row by row (`quanyu sql
select *`), every other file under the lake (Delta logs with their column
statistics, run markers) as bytes, and every line the commands printed.

What counts as a leak: any phone of the seeded world (taken from the raw
exports `quanyu samples` renders: the same people) or of the hostile files,
in any spacing; any sandbox credential (app secrets, sign secrets, initial
tokens, as announced by `quanyu sandbox`); any token a sandbox issues
(`<prefix>-at-<shop>-<nonce>`); the inline secret. Prints one JSON line of
figures; exit 1 with the leaks listed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quanyu_binary import binary  # noqa: E402

def platforms(quanyu):
    """Every registered connector with a sandbox (from `quanyu connectors`:
    section, channel, decrypts, card prefix if any, sandbox, what it pulls),
    and WeCom."""
    out = subprocess.run([quanyu, "connectors"], check=True, capture_output=True, text=True).stdout
    names = []
    for row in (line.split() for line in out.splitlines()[1:]):
        sandbox = row[4] if row[3].endswith("_") else row[3]
        if sandbox == "yes":
            names.append(row[0].strip("[]"))
    return names + ["wecom"]
TOKEN = re.compile(r"\b[a-z]+-(?:at|rt)-\d+-[0-9a-f]{6,}\b")
INLINE_SECRET = "s3cr3t-inline-9f8e7d6c5b4a"
# A mobile number standing as its own token (an id such as
# `wmSbxfaff918a15150000008e` or a hex hash holds digit runs that are not
# phones); Chinese text around it still counts.
PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")


def digits_only(text):
    """Text with the separators people put between a phone's digit groups
    (up to three: `139 1234 0101`, `(+86) 139.1234.0101`) removed, and
    full-width digits made ASCII; words stay apart."""
    text = text.translate({c: c - 0xFEE0 for c in range(0xFF10, 0xFF1A)})
    return re.sub(r"(?<=\d)[\s\-.()（）+]{1,3}(?=\d)", "", text)


def phones_in_file(path):
    data = path.read_bytes()
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as z:
            text = " ".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    else:
        text = data.decode("gb18030", "replace") + data.decode("utf-8", "replace")
    return set(PHONE.findall(digits_only(text)))


class Scan:
    def __init__(self, args, work):
        self.quanyu = binary(args.quanyu)
        self.orders = args.orders
        self.work = Path(work)
        self.lake = self.work / "lake"
        self.env = dict(os.environ, QUANYU_LAKE_KEY="ef" * 32, RUST_BACKTRACE="1")
        self.printed = []
        self.phones = set()
        self.secrets = {INLINE_SECRET}

    def run(self, args, env=None, ok=True):
        out = subprocess.run([self.quanyu] + args, env=env or self.env, capture_output=True, timeout=1800)
        text = out.stdout.decode("utf-8", "replace") + out.stderr.decode("utf-8", "replace")
        self.printed.append((" ".join(args[:2]), text))
        if ok and out.returncode != 0:
            sys.exit(f"quanyu {' '.join(args)} failed: {text[-2000:]}")
        return text

    def collect_truth(self):
        samples = self.work / "samples"
        self.run(["samples", "--out", str(samples), "--orders", str(self.orders)])
        for f in samples.iterdir():
            if f.suffix in (".csv", ".xlsx", ".sql"):
                self.phones |= phones_in_file(f)
        for platform in platforms(self.quanyu):
            p = subprocess.Popen([self.quanyu, "sandbox", platform, "--port", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            ann = json.loads(p.stdout.readline())
            p.kill()
            p.wait()
            for k in ("app_secret", "sign_secret", "secret"):
                if ann.get(k):
                    self.secrets.add(ann[k])
            for shop in ann.get("shops", []):
                for k in ("access_token", "refresh_token"):
                    if shop.get(k):
                        self.secrets.add(shop[k])

    def exercise(self):
        self.run(["demo", "--lake", str(self.lake), "--orders", str(self.orders), "--faults", "0.1",
                  "--no-progress", "--log-format", "json", "--log-level", "debug"])
        phone = sorted(self.phones)[0]
        spaced = f"{phone[:3]} {phone[3:7]} {phone[7:]}"
        bad = self.work / "bad"
        bad.mkdir()
        (bad / "headerless.csv").write_text(f"C1,{phone},2026-11-02 10:00:00,65\n")
        (bad / "bad_cells.csv").write_text(
            "通话ID,被叫号码,呼叫时间,通话时长(秒)\n"
            f"C1,{spaced},昨天 {phone},65\nC2,{phone}x,2026-11-02 10:00:00,{phone}\n")
        cfg = self.work / "import.toml"
        cfg.write_text(f'[lake]\nroot = "{self.lake}"\n\n[[imports]]\nname = "calls"\ntable = "touchpoints"\n'
                       'values = { channel = "ai_call", event_type = "call" }\n[imports.columns]\n'
                       'event_id = "通话ID"\nphone = "被叫号码"\noccurred_at = "呼叫时间"\n'
                       'duration_secs = "通话时长(秒)"\n')
        for f in ("headerless.csv", "bad_cells.csv"):
            self.run(["import", "calls", str(bad / f), "--config", str(cfg),
                      "--log-format", "json", "--log-level", "debug"], ok=False)
        self.run(["sql", "--lake", str(self.lake), f"insert into touchpoints (event_id) values ('{phone}')"], ok=False)
        self.run(["sql", "--lake", str(self.lake), f"select * from no_such_table where phone = '{spaced}'"], ok=False)
        inline = self.work / "inline.toml"
        inline.write_text(f'[lake]\nroot = "{self.lake}"\n\n[[wecom]]\ncorp_id = "ww1"\nsecret = "{INLINE_SECRET}"\n')
        self.run(["run", "--config", str(inline), "--log-format", "json", "--log-level", "debug"], ok=False)

    def lake_text(self):
        """(where, text) for every table's rows and every non-Parquet file."""
        for table in sorted(p.name for p in self.lake.iterdir() if (p / "_delta_log").is_dir()):
            out = subprocess.run([self.quanyu, "sql", "--lake", str(self.lake), "--format", "csv",
                                  f"select * from {table}"], env=self.env, capture_output=True)
            yield f"table {table}", out.stdout.decode("utf-8", "replace")
        for path in self.lake.rglob("*"):
            if path.is_file() and path.suffix != ".parquet":
                yield f"file {path.relative_to(self.lake)}", path.read_bytes().decode("utf-8", "replace")

    def leaks(self, where, text):
        found = []
        flat = digits_only(text)
        for p in PHONE.findall(flat):
            if p in self.phones:
                found.append(f"{where}: phone {p[:3]}****{p[-4:]}")
                break
        for s in self.secrets:
            if s and s in text:
                found.append(f"{where}: secret {s[:4]}…")
        m = TOKEN.search(text)
        if m:
            found.append(f"{where}: issued token {m.group()[:10]}…")
        return found

    def go(self):
        self.collect_truth()
        # The scan finds what it looks for (a check that cannot fail is
        # none): a known phone spaced out, a secret, an issued token.
        p = sorted(self.phones)[-1]
        for planted, what in [(f"a {p[:3]}-{p[3:7]}-{p[7:]} b", "phone"),
                              (f"a {sorted(self.secrets)[-1]} b", "secret"),
                              ("a pdd-at-0-1a2b3c4d b", "issued token")]:
            found = self.leaks("self-check", planted)
            assert any(what in f for f in found), f"the scan misses a planted {what}: {found}"
        assert not self.leaks("self-check", "wmSbxfaff918a15150000008e 2026-11-02"), "false positive"
        self.exercise()
        leaks, scanned = [], {"tables_and_files": 0, "bytes": 0, "printed_bytes": 0}
        for where, text in self.lake_text():
            scanned["tables_and_files"] += 1
            scanned["bytes"] += len(text)
            leaks += self.leaks(where, text)
        for cmd, text in self.printed:
            scanned["printed_bytes"] += len(text)
            leaks += self.leaks(f"output of quanyu {cmd}", text)
        for leak in leaks:
            print(f"LEAK {leak}", file=sys.stderr)
        print(json.dumps({"phones_known": len(self.phones), "secrets_known": len(self.secrets),
                          **scanned, "leaks": len(leaks)}))
        return not leaks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quanyu")
    ap.add_argument("--orders", type=int, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="quanyu-scan-") as work:
        ok = Scan(args, work).go()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
