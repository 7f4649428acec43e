"""DuckDB on a quanyu lake's Parquet files: the peer of `quanyu bench lake`.

Usage: duckdb_queries.py LAKE_DIR

Each Delta table's current files (read from its log with the `deltalake`
package) become a DuckDB view of the same name; every query of
tests/bench/queries runs once, timed, with the process's peak memory
during it. Prints JSON: {name: {secs, peak_mib, answer}}, the answer as CSV
written the way `quanyu sql --format csv` writes it, so that the two can be
compared.
"""

import json
import pathlib
import sys
import time

import duckdb
from deltalake import DeltaTable

QUERIES = pathlib.Path(__file__).parent / "queries"


def peak_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def cell(v):
    if v is None:
        return ""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def delta_views(con, lake, tables):
    """Each of `tables` that the lake holds as a view of its current files."""
    for table in tables:
        path = lake / table
        if not (path / "_delta_log").exists():
            continue
        files = DeltaTable(str(path)).file_uris()
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}])")


def main():
    lake = pathlib.Path(sys.argv[1])
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    delta_views(con, lake, ("orders", "identity_map", "customers", "contacts"))
    out = {}
    for q in sorted(QUERIES.glob("*.sql")):
        sql = q.read_text()
        reset_peak()
        t = time.perf_counter()
        cur = con.execute(sql)
        rows = cur.fetchall()
        secs = time.perf_counter() - t
        header = ",".join(d[0] for d in cur.description)
        body = "".join(",".join(cell(v) for v in r) + "\n" for r in rows)
        out[q.stem] = {"secs": secs, "peak_mib": peak_mib(), "answer": header + "\n" + body}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
