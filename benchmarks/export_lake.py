"""Export rate and peak memory of the lake writer for 100k and 1M tracks, on SQLite, PostgreSQL and
MariaDB (the goal: at least 250k rows/s at 1M, peak RSS at most 300 MiB and flat from 100k to 1M).

Each size gets a SQLite database with the project's schema (tracks filled with executemany); for
PostgreSQL and MariaDB the same rows are copied into a fresh database on the server of
``SPOTIFY_CATALOG_TEST_POSTGRES_URL`` / ``SPOTIFY_CATALOG_TEST_MYSQL_URL`` (made and dropped by the
benchmark; a server that cannot be reached is skipped). Each export (``tracks`` to a fresh local lake,
Parquet/zstd) runs in a child process, so that the peak RSS (``ru_maxrss``), the CPU time (every thread
of the exporting process; not the database server's) and the peak of pyarrow's memory pool belong to
that one export. The path column says how the rows were read (ADBC, the driver's cursor, the server's
CSV lines, SQLAlchemy's rows). Flat memory means the peak does not grow with the number of rows.

    python -m benchmarks export_lake                   # 100k and 1M tracks on every backend
    python -m benchmarks.export_lake [--sizes 10000,100000] [--backends sqlite,postgresql] [--with-raw]
    python -m benchmarks.export_lake --db postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python -m benchmarks.export_lake --before ../main-worktree/src   # before/after, one after the other

With ``--db`` (PostgreSQL or MySQL/MariaDB; the database must exist, its tables are dropped and made
again) that one database is used instead of fresh ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from benchmarks import _servers
from spotify_catalog.export import DEFAULT_ROW_GROUP_ROWS

MARKETS = ["US", "GB", "SE", "DE", "FR", "JP", "BR", "MX", "CA", "AU"]


def build(path: Path, n: int, *, with_raw: bool = False) -> float:
    """A SQLite database with the real schema and ``n`` tracks (``raw`` about 1.5 kB of JSON each with
    ``with_raw``); returns seconds taken."""
    import sqlalchemy as sa

    from spotify_catalog.storage.schema import metadata, tracks

    started = time.perf_counter()
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    columns = [c.name for c in tracks.columns]
    rng = random.Random(n)
    fetched = datetime(2026, 11, 25, 12, tzinfo=UTC).replace(tzinfo=None).isoformat(sep=" ")

    def row(i: int) -> tuple[object, ...]:
        values = {
            "id": f"{i:022d}",
            "name": f"Track number {i} of the benchmark",
            "album_id": f"{i // 12:022d}",
            "disc_number": 1,
            "track_number": i % 12 + 1,
            "duration_ms": rng.randint(60_000, 600_000),
            "explicit": rng.random() < 0.1,
            "is_local": False,
            "is_playable": True,
            "preview_url": None,
            "popularity": rng.randint(0, 100),
            "isrc": f"USRC1{i:07d}",
            "available_markets": json.dumps(rng.sample(MARKETS, rng.randint(0, len(MARKETS)))),
            "uri": f"spotify:track:{i:022d}",
            "href": f"https://api.spotify.com/v1/tracks/{i:022d}",
            "spotify_url": f"https://open.spotify.com/track/{i:022d}",
            "detail": "full",
            "fetched_at": fetched,
        }
        if with_raw:
            values["raw"] = json.dumps({k: v for k, v in values.items() if k != "available_markets"} | {
                "available_markets": MARKETS * 15, "external_ids": {"isrc": values["isrc"]},
            })  # fmt: skip
        return tuple(values.get(c) for c in columns)

    con = sqlite3.connect(path)
    placeholders = ", ".join("?" for _ in columns)
    for start in range(0, n, 100_000):
        con.executemany(
            f"INSERT INTO tracks ({', '.join(columns)}) VALUES ({placeholders})",
            (row(i) for i in range(start, min(n, start + 100_000))),
        )
        con.commit()
    con.close()
    return time.perf_counter() - started


def copy_to(url: str, source: Path) -> float:
    """Copy the tracks of the SQLite file ``source`` into a fresh schema at ``url``, then ``ANALYZE`` it;
    returns seconds. Without statistics right after the load (autovacuum has not come by yet)
    PostgreSQL takes the table for a few hundred rows and sorts the million for ``ORDER BY id`` (on
    disk, with the default ``work_mem``) instead of scanning the key's index: 2-3 s more of the
    server's time, whichever code exports."""
    import sqlalchemy as sa

    from spotify_catalog.storage.schema import UtcDateTime, metadata, tracks

    started = time.perf_counter()
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    columns = [c.name for c in tracks.columns]
    stamps = {i for i, c in enumerate(tracks.columns) if isinstance(c.type, UtcDateTime)}
    bools = {i for i, c in enumerate(tracks.columns) if isinstance(c.type, sa.Boolean)}

    def typed(row: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(
            None if v is None
            else datetime.fromisoformat(str(v)).replace(tzinfo=UTC) if i in stamps
            else bool(v) if i in bools
            else v
            for i, v in enumerate(row)
        )  # fmt: skip

    con = sqlite3.connect(source)
    cursor = con.execute(f"SELECT {', '.join(columns)} FROM tracks")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy(f"COPY tracks ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                while rows := cursor.fetchmany(10_000):
                    for r in rows:
                        copy.write_row(typed(r))
        else:
            placeholders = ", ".join("%s" for _ in columns)
            while rows := cursor.fetchmany(10_000):
                cur.executemany(
                    f"INSERT INTO tracks ({', '.join(columns)}) VALUES ({placeholders})",
                    [typed(r) for r in rows],
                )
        raw.commit()
    finally:
        raw.close()
        con.close()
    with engine.begin() as conn:  # statistics, as autovacuum (PostgreSQL) would have them a minute later
        conn.exec_driver_sql(
            "ANALYZE tracks" if engine.dialect.name == "postgresql" else "ANALYZE TABLE tracks"
        )
    engine.dispose()
    return time.perf_counter() - started


def child(db: str, lake: str, batch_rows: int, with_raw: bool) -> None:
    """Runs in its own process: one export of ``tracks``, figures as JSON on stdout."""
    import pyarrow as pa
    import sqlalchemy as sa

    from spotify_catalog import export as lake_export
    from spotify_catalog.storage.schema import metadata

    paths: list[str] = []

    class Path_(logging.Handler):  # the exporter logs "reading <table> through <path>"
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("reading tracks through "):
                paths.append(message.removeprefix("reading tracks through "))

    logger = logging.getLogger("spotify_catalog.export")
    logger.setLevel(logging.INFO)
    logger.addHandler(Path_())
    engine = sa.create_engine(db if "://" in db else f"sqlite:///{db}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started, cpu = time.perf_counter(), time.process_time()
    done = lake_export.export(
        engine,
        metadata,
        lake_export.open_lake(lake),
        date(2026, 11, 25),
        tables=["tracks"],
        with_raw=with_raw,
        batch_rows=batch_rows,
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    figures = {
        "rows": done[0].rows,
        "seconds": seconds,
        "cpu": cpu,
        "rss_before_mib": before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "arrow_pool_peak_mib": pa.default_memory_pool().max_memory() / 2**20,
        "file_mib": Path(done[0].uri).stat().st_size / 2**20,
        "path": ", ".join(paths) or "?",
    }
    print(json.dumps(figures))


def export_in_child(
    source: str, lake: Path, batch_rows: int, with_raw: bool, code: str | None = None
) -> dict[str, Any]:
    """One export in a child process; ``code``: the ``src`` directory of other code of the library
    (e.g. a worktree of main), imported in its place."""
    raw = ["--with-raw"] if with_raw else []
    env = dict(os.environ, PYTHONPATH=code) if code else None
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.export_lake", "--batch-rows", str(batch_rows), *raw,
         "--child", source, str(lake)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return dict(json.loads(proc.stdout))


@contextmanager
def _source(backend: str, db: Path, given: str | None) -> Iterator[tuple[str, float]]:
    """The database to export and the seconds taken to fill it: the SQLite file itself, or its rows
    copied into ``given`` or into a fresh database of ``backend``."""
    if backend == "sqlite":
        yield str(db), 0.0
    elif given:
        yield given, copy_to(given, db)
    else:
        with _servers.fresh_database(backend, "sc_bench_lake") as url:
            yield url, copy_to(url, db)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks export_lake")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument("--batch-rows", type=int, default=5_000)  # the exporter's default
    parser.add_argument("--with-raw", action="store_true", help="fill and export the raw JSON column")
    parser.add_argument("--db", help="export from this PostgreSQL or MySQL/MariaDB database (dropped first)")
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also export with the library in SRC (e.g. a worktree of main: WORKTREE/src), just before each "
        "export with this code, from the same database",
    )
    parser.add_argument("--child", nargs=2, metavar=("DB", "LAKE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.batch_rows, args.with_raw)
        return 0
    backends = ["given"] if args.db else args.backends.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"tracks -> Parquet (zstd), {args.batch_rows:,} rows a batch, row groups of "
        f"{DEFAULT_ROW_GROUP_ROWS:,} rows, one process per export{', with raw' if args.with_raw else ''}; "
        "CPU: every thread of the exporting process"
    )
    print(f"{'backend':<17} {'rows':>10} {'build s':>8} {'export s':>9} {'rows/s':>9} {'CPU s':>6} "
          f"{'RSS start':>10} {'peak RSS':>9} {'arrow peak':>11} {'file':>8} {'load':>5}  path")  # fmt: skip
    skipped = {b: _servers.unreachable(b) for b in backends if b in _servers.SERVERS}
    for backend, why in skipped.items():
        if why:
            print(f"{backend:<17} skipped: {why}")
    results: dict[str, dict[int, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp:
        for n in sizes:
            db = Path(tmp) / f"tracks-{n}.db"
            built = build(db, n, with_raw=args.with_raw)
            for backend in backends:
                if skipped.get(backend):
                    continue
                with _source(backend, db, args.db) as (source, copied):
                    runs = [("before", args.before), ("", None)] if args.before else [("", None)]
                    for label, code in runs:
                        lake = Path(tmp) / f"lake-{backend}-{n}-{label}"
                        f = export_in_child(source, lake, args.batch_rows, args.with_raw, code)
                        if not label:
                            results.setdefault(backend, {})[n] = f
                        name = ("SQLite" if backend == "sqlite" else backend) + (f" {label}" if label else "")
                        print(
                            f"{name:<17} {n:>10,} {built + copied:>8.1f} {f['seconds']:>9.1f} "
                            f"{f['rows'] / f['seconds']:>9,.0f} {f['cpu']:>6.1f} "
                            f"{f['rss_before_mib']:>6.0f} MiB {f['peak_rss_mib']:>5.0f} MiB "
                            f"{f['arrow_pool_peak_mib']:>7.0f} MiB {f['file_mib']:>4.0f} MiB "
                            f"{os.getloadavg()[0]:>5.1f}  {f['path']}",
                            flush=True,
                        )
            db.unlink()
    if len(sizes) > 1:
        for backend, by_size in results.items():
            low, high = by_size[min(by_size)], by_size[max(by_size)]
            print(
                f"{backend}: {max(by_size):,} rows at {high['rows'] / high['seconds']:,.0f} rows/s "
                f"(goal: at least 250,000); peak RSS {low['peak_rss_mib']:.0f} MiB at {min(by_size):,} -> "
                f"{high['peak_rss_mib']:.0f} MiB at {max(by_size):,} (goal: at most 300, flat)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
