"""DuckDB running quanyu's mart queries on the same Parquet files: the peer
of `quanyu bench marts`.

Usage: duckdb_marts.py LAKE_DIR SQL_DIR

Each input table's current files (read from its Delta log with the
`deltalake` package) become a DuckDB view of the same name. Each mart's
query, as quanyu wrote it to SQL_DIR/NN_name.sql, is turned from
DataFusion's dialect into DuckDB's (the rewrites are listed in `to_duckdb`
below: only spelling, no logic) and run in order, timed, as `COPY (query)
TO parquet` (quanyu writes each mart to Delta, so both write Parquet); a
later mart reads the earlier one's file, as in quanyu. Prints JSON: {mart:
{secs, peak_mib, digest}}, the digest being the rows, the sum of each
integer column and the trues of each boolean column, by column name.
"""

import json
import pathlib
import re
import sys
import tempfile
import time

import duckdb

from duckdb_queries import delta_views, peak_mib, reset_peak

INPUTS = ("orders", "contacts", "touchpoints", "refunds", "order_lines", "identity_map")


def calls(sql, name):
    """(start, end, args) of each top-level call of `name(`, args split on
    top-level commas."""
    out = []
    for m in re.finditer(r"\b" + name + r"\(", sql):
        depth, i, start, args, arg_start = 1, m.end(), m.start(), [], m.end()
        quote = False
        while depth:
            c = sql[i]
            if c == "'":
                quote = not quote
            elif not quote:
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                elif c == "," and depth == 1:
                    args.append(sql[arg_start:i])
                    arg_start = i + 1
            i += 1
        args.append(sql[arg_start : i - 1])
        out.append((start, i, [a.strip() for a in args]))
    return out


def replace_calls(sql, name, render):
    """Replace every call of `name` (innermost first) by `render(args)`."""
    while True:
        found = calls(sql, name)
        if not found:
            return sql
        # The last call found starts latest: it holds no other call of `name`.
        start, end, args = found[-1]
        sql = sql[:start] + render(args) + sql[end:]


def to_duckdb(sql):
    """DataFusion SQL, as quanyu's marts write it, in DuckDB's spelling."""

    def arrow_cast(args):
        value, kind = args
        if kind.startswith("'Timestamp"):
            if value == "NULL":
                return "CAST(NULL AS TIMESTAMPTZ)"
            return f"CAST(make_timestamp(CAST({value} AS BIGINT)) AS TIMESTAMPTZ)"
        if kind == "'Date32'":
            return f"(DATE '1970-01-01' + CAST({value} AS INTEGER))"
        raise ValueError(f"arrow_cast to {kind}")

    sql = replace_calls(sql, "arrow_cast", arrow_cast)
    # Microseconds of a timestamp column (named *_at).
    sql = re.sub(r"CAST\(([\w.]+_at) AS BIGINT\)", r"epoch_us(\1)", sql)
    sql = re.sub(r"CAST\((lag\([\w.]+_at\) OVER \([^)]*\)) AS BIGINT\)", r"epoch_us(\1)", sql)
    sql = re.sub(
        r"approx_percentile_cont\(([\d.]+)\) WITHIN GROUP \(ORDER BY (\w+)\)",
        r"approx_quantile(\2, \1)",
        sql,
    )
    sql = sql.replace("cardinality(", "len(").replace("make_array(", "list_value(")
    return sql


def digest(con, path):
    cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    parts = ["count(*)"]
    names = ["rows"]
    for name, kind, *_ in cols:
        # A sum of integers is a HUGEINT in DuckDB, written to Parquet as
        # DECIMAL(38,0): still an integer column.
        integer = kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
        if integer or re.fullmatch(r"DECIMAL\(\d+,0\)", kind):
            parts.append(f'COALESCE(sum("{name}"), 0)')
        elif kind == "BOOLEAN":
            parts.append(f'count(*) FILTER (WHERE "{name}")')
        else:
            continue
        names.append(name)
    row = con.execute(f"SELECT {', '.join(parts)} FROM read_parquet('{path}')").fetchone()
    return {n: str(int(v)) for n, v in zip(names, row)}


def main():
    lake = pathlib.Path(sys.argv[1])
    sql_dir = pathlib.Path(sys.argv[2])
    con = duckdb_connect()
    delta_views(con, lake, INPUTS)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for q in sorted(sql_dir.glob("*.sql")):
            name = q.stem.split("_", 1)[1]
            sql = to_duckdb(q.read_text())
            # Sums of BIGINTs are HUGEINTs here, which Parquet would hold as
            # DOUBLE: written as BIGINT, as quanyu writes them (planning only,
            # before the clock starts).
            wide = [c[0] for c in con.execute(f"DESCRIBE {sql}").fetchall() if c[1] == "HUGEINT"]
            if wide:
                casts = ", ".join(f'CAST("{c}" AS BIGINT) AS "{c}"' for c in wide)
                sql = f"SELECT * REPLACE ({casts}) FROM ({sql})"
            target = pathlib.Path(tmp) / f"{name}.parquet"
            reset_peak()
            t = time.perf_counter()
            try:
                con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)")
            except Exception as e:  # noqa: BLE001 - say which mart, then stop
                raise SystemExit(f"{name}: " + " ".join(str(e).split())) from e
            secs = time.perf_counter() - t
            out[name] = {"secs": secs, "peak_mib": peak_mib(), "digest": digest(con, target)}
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{target}')")
    print(json.dumps(out))


def duckdb_connect():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # DataFusion divides integers as integers.
    con.execute("SET integer_division = true")
    return con


if __name__ == "__main__":
    main()
