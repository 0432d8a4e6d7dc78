"""Time, peak memory and file size of ``spotify-catalog report`` for 100k and 1M tracks.

Each size gets its own SQLite database with the project's schema, filled synthetically with
executemany (no crawl): artists, albums with their credits and discographies, tracks (12 an album)
with their credits, every Extended-mode column, a snapshot a day for a week, the crawl's tasks and
runs over ten days. The report is made in a child process, so that its peak RSS (``VmHWM``) is its
own. The Vega bundle is made once before (it is kept in the user's cache directory).

    python -m benchmarks report                        # both sizes
    python -m benchmarks.report [--sizes 10000,100000] [--db URL]

``--db URL`` (an empty PostgreSQL or MySQL/MariaDB database) copies each SQLite database there and
reports from it instead.
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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

MARKETS = ["US", "GB", "SE", "DE", "FR", "JP", "BR", "MX", "CA", "AU", "KR", "ES", "IT", "NL", "PL"]
TRACKS_PER_ALBUM = 12
ALBUMS_PER_ARTIST = 8
T0 = datetime(2026, 11, 15, 8, tzinfo=UTC)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _insert(con: sqlite3.Connection, table: str, columns: list[str], rows: Any) -> None:
    marks = ", ".join("?" for _ in columns)
    con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def build(path: Path, n: int) -> float:
    """A crawl database with ``n`` tracks; returns the seconds taken."""
    import sqlalchemy as sa

    from spotify_catalog.storage.schema import SCHEMA_VERSION, metadata

    started = time.perf_counter()
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    rng = random.Random(n)
    n_albums = max(1, n // TRACKS_PER_ALBUM)
    n_artists = max(1, n_albums // ALBUMS_PER_ARTIST)
    fetched = _ts(T0)
    market_lists = [json.dumps(MARKETS[: rng.randint(1, len(MARKETS))]) for _ in range(20)]
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    state = [("schema_version", str(SCHEMA_VERSION)), ("api_mode", "extended")]
    _insert(con, "_state", ["key", "value"], state)

    def aid(i: int) -> str:
        return f"ar{i:020d}"

    _insert(
        con,
        "artists",
        ["id", "name", "popularity", "followers", "detail", "fetched_at", "spotify_url"],
        (
            (aid(i), f"Artist {i}", rng.randint(0, 100), int(10 ** rng.uniform(1, 8)), "full", fetched,
             f"https://open.spotify.com/artist/{aid(i)}")
            for i in range(n_artists)
        ),
    )  # fmt: skip
    _insert(
        con,
        "albums",
        ["id", "name", "album_type", "total_tracks", "release_date", "release_date_precision", "label",
         "popularity", "available_markets", "detail", "fetched_at"],
        (
            (f"al{i:020d}", f"Album {i}", rng.choice(["album", "single", "compilation"]), TRACKS_PER_ALBUM,
             f"{rng.randint(1960, 2026)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", "day",
             f"Label {rng.randint(0, 300)}", rng.randint(0, 100), rng.choice(market_lists), "full", fetched)
            for i in range(n_albums)
        ),
    )  # fmt: skip
    _insert(con, "album_artists", ["album_id", "position", "artist_id"],
            ((f"al{i:020d}", 0, aid(i % n_artists)) for i in range(n_albums)))  # fmt: skip
    _insert(con, "artist_albums", ["artist_id", "album_id", "album_group"],
            ((aid(i % n_artists), f"al{i:020d}", "album") for i in range(n_albums)))  # fmt: skip
    for start in range(0, n, 200_000):
        rows = range(start, min(n, start + 200_000))
        _insert(
            con,
            "tracks",
            ["id", "name", "album_id", "disc_number", "track_number", "duration_ms", "explicit", "is_local",
             "popularity", "available_markets", "detail", "fetched_at"],
            (
                (f"tr{i:020d}", f"Track {i}", f"al{i // TRACKS_PER_ALBUM % n_albums:020d}", 1,
                 i % TRACKS_PER_ALBUM + 1, rng.randint(60_000, 480_000), rng.random() < 0.15, False,
                 rng.randint(0, 100), None, "full" if i % 3 else "simplified", fetched)
                for i in rows
            ),
        )  # fmt: skip
        credits = ((f"tr{i:020d}", 0, aid(i // TRACKS_PER_ALBUM % n_albums % n_artists)) for i in rows)
        _insert(con, "track_artists", ["track_id", "position", "artist_id"], credits)
    _insert(
        con,
        "artist_snapshots",
        ["artist_id", "snapshot_date", "popularity", "followers"],
        ((aid(i), (date(2026, 11, 20) + timedelta(days=d)).isoformat(), rng.randint(0, 100), 1000)
         for i in range(n_artists) for d in range(7)),
    )  # fmt: skip
    done = _ts(T0 + timedelta(days=1))
    tasks = [("artist", aid(i)) for i in range(n_artists)]
    tasks += [("artist_albums", f"{aid(i)}|album,single,compilation|0") for i in range(n_artists)]
    tasks += [("album", f"al{i:020d}") for i in range(n_albums)]
    _insert(
        con,
        "_tasks",
        ["kind", "key", "state", "attempts", "created_at", "updated_at", "done_at", "error"],
        (
            (kind, key, state, 1, fetched, done, done if state != "pending" else None,
             "not found" if state == "failed" else None)
            for position, (kind, key) in enumerate(tasks)
            for state in ["pending" if position % 10 == 0 else "failed" if position % 997 == 0 else "done"]
        ),
    )  # fmt: skip
    _insert(
        con,
        "_runs",
        ["started_at", "ended_at", "status", "reason", "api_mode", "requests", "rows_written", "command"],
        (
            (_ts(T0 + timedelta(hours=8 * r)), _ts(T0 + timedelta(hours=8 * r + 2)),
             "stopped" if r % 3 else "done", "daily budget reached" if r % 3 else None, "extended",
             rng.randint(200, 900), 1000, "spotify-catalog crawl --depth tracks")
            for r in range(30)
        ),
    )  # fmt: skip
    con.commit()
    con.close()
    return time.perf_counter() - started


def copy(source: Path, url: str) -> float:
    """Copy the SQLite database ``source`` into the empty database ``url`` (its tables replaced)."""
    import sqlalchemy as sa

    from spotify_catalog.storage.engine import create_engine
    from spotify_catalog.storage.schema import metadata

    started = time.perf_counter()
    target = create_engine(url)
    metadata.drop_all(target)
    metadata.create_all(target)
    reader = sa.create_engine(f"sqlite:///{source}")
    with reader.connect() as src, target.begin() as dst:
        for table in metadata.sorted_tables:
            rows = src.execute(sa.select(table)).mappings()
            while chunk := [dict(r) for r in rows.fetchmany(20_000)]:
                dst.execute(table.insert(), chunk)
    reader.dispose()
    target.dispose()
    return time.perf_counter() - started


def peak_rss_mib() -> float:
    """This process's peak resident memory: ``VmHWM`` (``ru_maxrss`` keeps the parent's peak across
    fork and exec on Linux, so it would show the build's memory)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, out: str) -> None:
    """Runs in its own process: one report, figures as JSON on stdout."""
    from spotify_catalog.cli.report import write_report

    before = peak_rss_mib()
    started = time.perf_counter()
    write_report(url, Path(out), daily_budget=1000)
    figures = {
        "seconds": time.perf_counter() - started,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
        "file_mib": Path(out).stat().st_size / 2**20,
    }
    print(json.dumps(figures))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks report")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--db", metavar="URL", help="report from this database (a copy) instead of SQLite")
    parser.add_argument("--child", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1])
        return 0
    from spotify_catalog.report import vega_javascript

    vega_javascript()  # made once, then read from the cache directory as by every later report
    backend = args.db.split(":", 1)[0] if args.db else "SQLite"
    print(f"spotify-catalog report of a synthetic crawl database ({backend}), one process per size")
    print(f"{'tracks':>10} {'build s':>8} {'report s':>9} {'RSS start':>10} {'peak RSS':>9} {'file':>8}")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            database = Path(tmp) / f"crawl-{n}.db"
            built = build(database, n)
            url = f"sqlite:///{database}"
            if args.db:
                built += copy(database, args.db)
                url = args.db
            out = Path(tmp) / f"{n}.html"
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.report", "--child", url, str(out)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            f = json.loads(proc.stdout)
            print(
                f"{n:>10,} {built:>8.1f} {f['seconds']:>9.2f} {f['rss_before_mib']:>6.0f} MiB "
                f"{f['peak_rss_mib']:>5.0f} MiB {f['file_mib']:>4.2f} MiB",
                flush=True,
            )
            database.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
