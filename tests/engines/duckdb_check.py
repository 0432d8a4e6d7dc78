"""Run in the DuckDB environment (not by pytest): load httpfs from its PyPI package, create an S3 secret
for the endpoint in the spec, run the printed DuckDB DDL and write what it reads as JSON (the shape of
``spark_check.py``'s).

    python duckdb_check.py DDL_FILE SPEC_FILE OUT_FILE

SPEC_FILE (JSON): as for ``spark_check.py``, plus ``s3`` ({endpoint, key_id, secret, region}).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_httpfs


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[list[Any]]:
    return [list(r) for r in con.execute(sql).fetchall()]


def main() -> None:
    ddl_file, spec_file, out_file = sys.argv[1:4]
    spec = json.loads(Path(spec_file).read_text())
    started = time.monotonic()
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET TimeZone = 'America/New_York'")  # instants must not depend on it
    extension = next(
        Path(duckdb_extension_httpfs.__file__).parent.glob("extensions/v*/httpfs.duckdb_extension")
    )
    con.execute(f"LOAD '{extension}'")
    s3 = spec["s3"]
    con.execute(
        f"CREATE SECRET lake (TYPE s3, KEY_ID '{s3['key_id']}', SECRET '{s3['secret']}', "
        f"REGION '{s3['region']}', ENDPOINT '{s3['endpoint']}', URL_STYLE 'path', USE_SSL false)"
    )
    con.execute(Path(ddl_file).read_text())
    out: dict[str, Any] = {
        "counts": {},
        "latest": {},
        "rows_read": {},
        "types": {},
        "instants": {},
        "lists": {},
    }
    for table in spec["tables"]:
        out["counts"][table] = dict(rows(con, f"SELECT dt, count(*) FROM {table} GROUP BY dt"))
        out["latest"][table] = rows(con, f"SELECT count(*), min(dt), max(dt) FROM {table}_latest")[0]
        out["rows_read"][table] = len(rows(con, f"SELECT * FROM {table}"))
        out["types"][table] = {name: kind for name, kind, *_ in rows(con, f"DESCRIBE {table}")}
    for table, (key, columns) in spec["timestamps"].items():
        for column in columns:
            got = rows(con, f"SELECT dt, {key}, epoch_us({column}) FROM {table} WHERE {column} IS NOT NULL")
            per_date: dict[str, dict[str, int]] = {}
            for dt, k, micros in got:
                per_date.setdefault(dt, {})[k] = micros
            out["instants"].setdefault(table, {})[column] = per_date
    for table, column in spec["lists"]:
        out["lists"][f"{table}.{column}"] = rows(con, f"SELECT sum(len({column})) FROM {table}_latest")[0][0]
    names = {t: f"{t}_latest" for t in ("tracks", "albums", "album_artists", "artists")}
    out["join"] = rows(con, spec["join"].format(**names))[0]
    out["releases"] = rows(con, spec["releases"].format(albums="albums_latest"))
    result = {"duckdb": out, "version": duckdb.__version__, "seconds": round(time.monotonic() - started, 1)}
    Path(out_file).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
