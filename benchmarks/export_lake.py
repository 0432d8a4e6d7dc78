"""Export rate and peak memory of the lake writer for 10k, 100k and 1M tracks.

Each size gets its own SQLite database with the project's schema (tracks filled with executemany)
and is exported to a fresh local lake as Parquet (zstd) in a child process, so that the peak RSS
(``ru_maxrss``) and the peak of pyarrow's memory pool belong to that one export. Flat memory means
the peak does not grow with the number of rows.

    python -m benchmarks export_lake                   # all three sizes
    python -m benchmarks.export_lake [--sizes 10000,100000] [--batch-rows 5000] [--with-raw]
    python -m benchmarks.export_lake --db postgresql+psycopg://postgres@127.0.0.1:5432/bench

With ``--db`` (PostgreSQL or MySQL/MariaDB; the database must exist, its tables are dropped and
made again) the same rows are copied from the SQLite file into that database before each export.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

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
    """Copy the tracks of the SQLite file ``source`` into a fresh schema at ``url``; returns seconds."""
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
        engine.dispose()
    return time.perf_counter() - started


def child(db: str, lake: str, batch_rows: int, with_raw: bool) -> None:
    """Runs in its own process: one export of ``tracks``, figures as JSON on stdout."""
    import pyarrow as pa
    import sqlalchemy as sa

    from spotify_catalog import export as lake_export
    from spotify_catalog.storage.schema import metadata

    engine = sa.create_engine(db if "://" in db else f"sqlite:///{db}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    done = lake_export.export(
        engine,
        metadata,
        lake_export.open_lake(lake),
        date(2026, 11, 25),
        tables=["tracks"],
        with_raw=with_raw,
        batch_rows=batch_rows,
    )
    seconds = time.perf_counter() - started
    figures = {
        "rows": done[0].rows,
        "seconds": seconds,
        "rss_before_mib": before / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "arrow_pool_peak_mib": pa.default_memory_pool().max_memory() / 2**20,
        "file_mib": Path(done[0].uri).stat().st_size / 2**20,
    }
    print(json.dumps(figures))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks export_lake")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--batch-rows", type=int, default=5_000)  # the exporter's default
    parser.add_argument("--with-raw", action="store_true", help="fill and export the raw JSON column")
    parser.add_argument("--db", help="export from this PostgreSQL or MySQL/MariaDB database (dropped first)")
    parser.add_argument("--child", nargs=2, metavar=("DB", "LAKE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.batch_rows, args.with_raw)
        return 0
    where = "SQLite" if not args.db else args.db.split("+")[0].split(":")[0]
    print(
        f"{where}: tracks -> Parquet (zstd), fetched {args.batch_rows:,} rows at a time, row groups of "
        f"{DEFAULT_ROW_GROUP_ROWS:,} rows, one process per size{', with raw' if args.with_raw else ''}"
    )
    print(f"{'rows':>10} {'build s':>8} {'export s':>9} {'rows/s':>9} {'RSS start':>10} "
          f"{'peak RSS':>9} {'arrow peak':>11} {'file':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-lake-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            db = Path(tmp) / f"tracks-{n}.db"
            built = build(db, n, with_raw=args.with_raw)
            source = str(db)
            if args.db:
                built += copy_to(args.db, db)
                source = args.db
            raw = ["--with-raw"] if args.with_raw else []
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.export_lake", "--batch-rows", str(args.batch_rows), *raw,
                 "--child", source, str(Path(tmp) / f"lake-{n}")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            f = json.loads(proc.stdout)
            print(
                f"{f['rows']:>10,} {built:>8.1f} {f['seconds']:>9.1f} {f['rows'] / f['seconds']:>9,.0f} "
                f"{f['rss_before_mib']:>7.0f} MiB {f['peak_rss_mib']:>5.0f} MiB "
                f"{f['arrow_pool_peak_mib']:>7.0f} MiB "
                f"{f['file_mib']:>4.0f} MiB",
                flush=True,
            )
            db.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
