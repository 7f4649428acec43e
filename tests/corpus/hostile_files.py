#!/usr/bin/env python3
"""The bad-input corpus: hostile CSV and XLSX files, each imported by
`quanyu import` into a fresh lake, with the outcome each must have.

    python3 tests/corpus/hostile_files.py                  # the whole corpus
    python3 tests/corpus/hostile_files.py --small          # what the tests run
    python3 tests/corpus/hostile_files.py --only zip_bomb  # one file

For every file: the import ends with its expected exit status; a refused
file's error says why (the expected phrase); rows land or are quarantined
as expected; no raw phone of the file appears in stdout, stderr or any file
of the lake; and the process's peak memory (`wait4` max RSS) stays within
256 MiB with the engine's pool at 128 MiB (`QUANYU_MEMORY_MB`). Prints one line per file and a JSON summary; exit 1 on any
violation. Files are generated (nothing hostile is committed), from a fixed
seed.
"""

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quanyu_binary import binary  # noqa: E402

MEMORY_LIMIT_MB = 256
HEADER = ["通话ID", "被叫号码", "呼叫时间", "通话时长", "费用"]
PHONES = [f"139{n:08d}" for n in range(12340100, 12340100 + 50)]

CONFIG = """[lake]
root = "{lake}"

[[imports]]
name = "calls"
table = "touchpoints"
encoding = "auto"
values = {{ channel = "ai_call", event_type = "call" }}
columns = {{ event_id = "通话ID", phone = "被叫号码", occurred_at = "呼叫时间", duration_secs = "通话时长", cost = "费用" }}
"""


# -- writers -------------------------------------------------------------------

def csv_text(rows, header=HEADER):
    return "\n".join(",".join(r) for r in [header] + rows) + "\n"


def good_rows(n, start=0):
    return [[f"C{start + i}", PHONES[i % len(PHONES)], "2026-11-02 10:00:00", "65", "1.20"]
            for i in range(n)]


def col_name(i):
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def xlsx(path, rows, *, shared=True, cell_xml=None, extra_parts=None, sheet_xml=None):
    """A minimal workbook (the parts Excel writes) with `rows` of text
    cells, as shared strings or inline strings; `cell_xml(r, c, v)` can
    rewrite a cell."""
    strings, index = [], {}
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, v in enumerate(row):
            ref = f"{col_name(c)}{r + 1}"
            if cell_xml and (x := cell_xml(r, c, v, ref)) is not None:
                cells.append(x)
            elif v == "":
                continue
            elif shared:
                if v not in index:
                    index[v] = len(strings)
                    strings.append(v)
                cells.append(f'<c r="{ref}" t="s"><v>{index[v]}</v></c>')
            else:
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{esc(v)}</t></is></c>')
        body.append(f'<row r="{r + 1}">{"".join(cells)}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sheet = sheet_xml or f'<?xml version="1.0" encoding="UTF-8"?><worksheet {ns}><sheetData>{"".join(body)}</sheetData></worksheet>'
    sst = (f'<?xml version="1.0" encoding="UTF-8"?><sst {ns} count="{len(strings)}" uniqueCount="{len(strings)}">'
           + "".join(f"<si><t>{esc(s)}</t></si>" for s in strings) + "</sst>")
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook {ns} xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
        "xl/sharedStrings.xml": sst,
    }
    parts.update(extra_parts or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            if callable(data):
                with z.open(name, "w", force_zip64=True) as w:
                    data(w)
            else:
                z.writestr(name, data)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the corpus ----------------------------------------------------------------
# Each case: name, a writer(path, small), the expected outcome:
#   ok        exit 0; `landed` rows in touchpoints, `quarantined` rows
#   refused   exit ≠ 0 with `says` in stderr; nothing lands

def case(name, ext, write, outcome, landed=0, quarantined=0, says=None):
    return {"name": name, "ext": ext, "write": write, "outcome": outcome,
            "landed": landed, "quarantined": quarantined, "says": says}


def w_bytes(data):
    return lambda p, small: p.write_bytes(data(small) if callable(data) else data)


def big_unclosed_quote(p, small):
    with open(p, "w", encoding="utf-8") as f:
        f.write(csv_text(good_rows(3)))
        f.write(f'C9,{PHONES[9]},"2026-11-02 10:00:00\n')
        line = f"C10,{PHONES[10]},2026-11-02 10:00:00,65,1.20\n"
        for _ in range((20 if small else 150) * (1 << 20) // len(line)):
            f.write(line)


def ten_mb_cell(p, small):
    rows = good_rows(3)
    rows[1][0] = "x" * (10 << 20)
    p.write_text(csv_text(rows), encoding="utf-8")


def five_thousand_columns(p, small):
    header = HEADER + [f"col{i}" for i in range(5000 - len(HEADER))]
    rows = [r + ["v"] * (5000 - len(HEADER)) for r in good_rows(20)]
    p.write_text(csv_text(rows, header), encoding="utf-8")


def shared_strings(p, small, mib):
    # Distinct strings, as an export of unique ids is: ~mib MiB of XML.
    n = mib * (1 << 20) // 40
    rows = [HEADER] + [[f"C{i:09d}-{'k' * 12}", PHONES[i % 50], "2026-11-02 10:00:00", "65", "1.20"]
                       for i in range(n)]
    xlsx(p, rows)


def zip_bomb(p, small):
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'

    def sheet(w):
        w.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet {ns}><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>'.encode())
        chunk = b"a" * (1 << 20)
        for _ in range(400):
            w.write(chunk)
        w.write(b"</t></is></c></row></sheetData></worksheet>")
    xlsx(p, [], extra_parts={"xl/worksheets/sheet1.xml": sheet})


def truncated_xlsx(p, small):
    full = p.with_suffix(".full.xlsx")
    xlsx(full, [HEADER] + good_rows(200))
    data = full.read_bytes()
    full.unlink()
    p.write_bytes(data[: len(data) * 2 // 3])


def corrupt_xlsx(p, small):
    full = p.with_suffix(".full.xlsx")
    xlsx(full, [HEADER] + good_rows(200))
    data = bytearray(full.read_bytes())
    full.unlink()
    for i in range(200, len(data) - 200, 97):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))


def formula_cells(p, small):
    def cell(r, c, v, ref):
        if r == 2 and c == 4:
            return f'<c r="{ref}"><f>1/0</f><v>#DIV/0!</v></c>'
        if r == 3 and c == 4:
            return f'<c r="{ref}"><f>SUM(1,2)</f><v>3</v></c>'
        return None
    xlsx(p, [HEADER] + good_rows(4), cell_xml=cell)


def serial_dates(p, small):
    def cell(r, c, v, ref):
        if r >= 1 and c == 2:
            return f'<c r="{ref}"><v>{["46327", "46327.5", "46327.75"][(r - 1) % 3]}</v></c>'
        return None
    xlsx(p, [HEADER] + good_rows(3), cell_xml=cell)


def column_zzzzzz(p, small):
    def cell(r, c, v, ref):
        if r == 1 and c == 2:
            return f'<c r="ZZZZZZ2" t="inlineStr"><is><t>x</t></is></c>'
        return None
    xlsx(p, [HEADER] + good_rows(2), cell_xml=cell, shared=False)


def sst_out_of_bounds(p, small):
    def cell(r, c, v, ref):
        if r == 1 and c == 0:
            return f'<c r="{ref}" t="s"><v>99999</v></c>'
        return None
    xlsx(p, [HEADER] + good_rows(2), cell_xml=cell)


def short_rows(p, small):
    # Excel stores no empty cell: rows whose last mapped cells are empty.
    rows = [HEADER] + [[f"C{i}", PHONES[i], "2026-11-02 10:00:00"] for i in range(5)]
    xlsx(p, rows)


def odd_values(p, small):
    rows = [
        ["C1", PHONES[1], "2026年11月2日 10:00", "1分05秒", "1.205"],     # 3-decimal yuan
        ["C2", PHONES[2], "2026/11/2", "65", "-3.50"],                      # negative amount
        ["C3", PHONES[3], "20261102100000", "99999999999999999999", "1"],   # overflowing duration
        ["C4", PHONES[4], "2026-02-30 10:00:00", "65", "1"],                # no such day
        ["C5", PHONES[5], "0000-00-00 00:00:00", "65", "1"],                # zero date
        ["C6", PHONES[6], "2026-11-02 10:00:00", "65", "１２.５０"],          # full-width yuan
        ["C7", f"{PHONES[7][:3]} {PHONES[7][3:7]} {PHONES[7][7:]}", "2026-11-02 10:00", "65", "1"],
    ]
    p.write_text(csv_text(rows), encoding="utf-8")


CORPUS = [
    case("empty", "csv", w_bytes(b""), "refused", says="no header row"),
    case("only_bom", "csv", w_bytes(b"\xef\xbb\xbf"), "refused", says="no header row"),
    case("binary_garbage", "csv", w_bytes(bytes(range(256)) * 64), "refused", says="header"),
    case("png_named_csv", "csv", w_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4000)), "refused", says="header"),
    case("headerless_with_phone", "csv",
         w_bytes(f"C1,{PHONES[0]},2026-11-02 10:00:00,65,1.20\n".encode()), "refused", says="header"),
    case("utf8_bom", "csv", w_bytes(b"\xef\xbb\xbf" + csv_text(good_rows(5)).encode()), "ok", landed=5),
    case("utf16le_bom", "csv", w_bytes(b"\xff\xfe" + csv_text(good_rows(5)).encode("utf-16-le")), "ok", landed=5),
    case("utf16be_bom", "csv", w_bytes(b"\xfe\xff" + csv_text(good_rows(5)).encode("utf-16-be")), "ok", landed=5),
    case("gbk", "csv", w_bytes(csv_text(good_rows(5)).encode("gbk")), "ok", landed=5),
    case("gb18030_four_byte", "csv",
         w_bytes(csv_text([["C1𠀀", PHONES[0], "2026-11-02 10:00:00", "65", "1.20"]] + good_rows(3, 1)).encode("gb18030")),
         "ok", landed=4),
    # A row with bytes invalid in its encoding is quarantined whole.
    case("invalid_gbk", "csv",
         w_bytes(csv_text(good_rows(3)).encode("gbk") + b"C9,\x81\x20\xfe\xff,2026-11-02 10:00:00,65,1\n"),
         "ok", landed=3, quarantined=1),
    case("missing_header_column", "csv",
         w_bytes(csv_text([r[:2] for r in good_rows(3)], HEADER[:2]).encode()), "refused",
         says="is not in the header"),
    case("duplicate_header", "csv",
         w_bytes(csv_text([r + [r[1]] for r in good_rows(3)], HEADER + ["被叫号码"]).encode()), "refused",
         says="appears 2 times in the header"),
    # A 10 MB id is no id: that row is quarantined (16 KiB of it kept).
    case("ten_mb_cell", "csv", ten_mb_cell, "ok", landed=2, quarantined=1),
    case("five_thousand_columns", "csv", five_thousand_columns, "ok", landed=20),
    case("unclosed_quote_150mb", "csv", big_unclosed_quote, "refused", says="16 MiB"),
    # 3-decimal yuan, an overflowing duration, Feb 30 and a zero date are
    # quarantined with their reasons; the negative amount (a refund), the
    # full-width yuan and the spaced phone land.
    case("odd_values", "csv", odd_values, "ok", landed=3, quarantined=4),
    case("xlsx_short_rows", "xlsx", short_rows, "ok", landed=5),
    # A formula's cached value is read; #DIV/0! as a cost quarantines the row.
    case("xlsx_formula_cells", "xlsx", formula_cells, "ok", landed=3, quarantined=1),
    case("xlsx_serial_dates", "xlsx", serial_dates, "ok", landed=3),
    case("xlsx_column_zzzzzz", "xlsx", column_zzzzzz, "refused", says="Excel stops at"),
    case("xlsx_shared_string_out_of_bounds", "xlsx", sst_out_of_bounds, "refused", says="corrupt"),
    case("xlsx_truncated", "xlsx", truncated_xlsx, "refused", says="XLSX"),
    case("xlsx_corrupt", "xlsx", corrupt_xlsx, "refused", says="XLSX"),
    case("xlsx_zip_bomb", "xlsx", zip_bomb, "refused", says="zip bomb"),
    case("xlsx_shared_strings_40mib", "xlsx", lambda p, s: shared_strings(p, s, 8 if s else 40), "ok",
         landed=None),
    case("xlsx_shared_strings_80mib", "xlsx", lambda p, s: shared_strings(p, s, 80), "refused", says="64 MiB"),
    case("not_a_zip_named_xlsx", "xlsx", w_bytes(csv_text(good_rows(3)).encode()), "refused", says="XLSX"),
]


# -- running -------------------------------------------------------------------

def run(quanyu, cmd, env):
    """Run `cmd`; (status, stdout, stderr, peak RSS in MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([quanyu] + cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), usage.ru_maxrss / 1024)


def phones_in(text):
    digits = re.sub(r"[\s\-.]", "", text)
    return [p for p in PHONES if p in digits]


def scan_lake(lake):
    found = set()
    for path in Path(lake).rglob("*"):
        if path.is_file():
            found.update(phones_in(path.read_bytes().decode("latin-1")))
    return found


def count(quanyu, lake, env, sql):
    status, out, err, _ = run(quanyu, ["sql", "--lake", str(lake), "--format", "csv", sql], env)
    if status != 0:
        return None
    lines = out.strip().splitlines()
    return int(lines[1]) if len(lines) > 1 else None


def check(quanyu, c, work, small, env):
    d = work / c["name"]
    d.mkdir()
    f = d / f"{c['name']}.{c['ext']}"
    # Written by a child process: this one stays small, so the import's
    # peak RSS is its own (Linux carries the parent's high-water mark over
    # fork and exec).
    writer = multiprocessing.get_context("fork").Process(target=c["write"], args=(f, small))
    writer.start()
    writer.join()
    lake = d / "lake"
    cfg = d / "quanyu.toml"
    cfg.write_text(CONFIG.format(lake=lake))
    t = time.time()
    status, out, err, peak = run(quanyu, ["import", "calls", str(f), "--config", str(cfg)], env)
    took = time.time() - t
    problems = []
    if "panicked" in err or "internal error" in err and c["outcome"] != "refused" or status < 0 or status > 100:
        problems.append(f"crashed (status {status}): {err.strip()[-300:]}")
    if c["outcome"] == "refused":
        if status == 0:
            problems.append("imported, expected a refusal")
        elif c["says"] and c["says"] not in err:
            problems.append(f"error does not say {c['says']!r}: {err.strip()[-300:]}")
    else:
        if status != 0:
            problems.append(f"failed: {err.strip()[-300:]}")
        landed = count(quanyu, lake, env, "select count(*) from touchpoints")
        if c["landed"] is not None and landed != c["landed"]:
            problems.append(f"{landed} rows landed, expected {c['landed']}")
        quarantined = count(quanyu, lake, env, "select count(*) from quarantine") or 0
        if c["quarantined"] is not None and quarantined != c["quarantined"]:
            problems.append(f"{quarantined} rows quarantined, expected {c['quarantined']}")
        reasons = count(quanyu, lake, env, "select count(*) from quarantine where reason is null or reason = ''")
        if reasons:
            problems.append(f"{reasons} quarantine rows without a reason")
    leaked = set(phones_in(out + err)) | scan_lake(lake)
    if leaked:
        problems.append(f"raw phones leaked: {sorted(leaked)[:3]}")
    if peak > MEMORY_LIMIT_MB:
        problems.append(f"peak memory {peak:.0f} MiB > {MEMORY_LIMIT_MB} MiB")
    size = f.stat().st_size
    return {"file": c["name"], "bytes": size, "status": status, "peak_mib": round(peak, 1),
            "seconds": round(took, 2), "problems": problems,
            "said": (err.strip().splitlines() or [""])[-1][:160]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quanyu")
    ap.add_argument("--small", action="store_true", help="smaller big files (the test suite's run)")
    ap.add_argument("--only", help="one case by name")
    args = ap.parse_args()
    quanyu = binary(args.quanyu)
    # The engine's memory pool (DataFusion: the refresh and identity after
    # the import) is a quarter of RAM unless set; at 128 MiB, what is left of
    # the 256 MiB is what the file itself makes the process hold.
    env = dict(os.environ, QUANYU_LAKE_KEY="cd" * 32, QUANYU_MEMORY_MB="128")
    results = []
    with tempfile.TemporaryDirectory(prefix="quanyu-corpus-") as work:
        for c in CORPUS:
            if args.only and c["name"] != args.only:
                continue
            r = check(quanyu, c, Path(work), args.small, env)
            results.append(r)
            mark = "ok " if not r["problems"] else "BAD"
            print(f"{mark} {r['file']:<36} {r['bytes']:>11} B  exit {r['status']:<3} "
                  f"peak {r['peak_mib']:>6.1f} MiB  {r['seconds']:>6.2f} s  {r['said']}")
            for p in r["problems"]:
                print(f"      {p}")
    bad = [r for r in results if r["problems"]]
    print(json.dumps({"files": len(results), "violations": len(bad),
                      "max_peak_mib": max((r["peak_mib"] for r in results), default=0)}))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
