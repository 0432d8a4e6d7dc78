"""Database load rate: rows/s that ``storage.write.write_rows`` writes, per backend.

The data are full albums in the Extended-Quota shape (20 albums of 12 tracks per response, as
``GET /albums?ids=`` answers), turned into rows by ``transform`` and written one response per
transaction, as the crawler writes them. SQLite is a temporary file; PostgreSQL and MariaDB are the
servers named by ``SPOTIFY_CATALOG_TEST_POSTGRES_URL`` / ``SPOTIFY_CATALOG_TEST_MYSQL_URL`` (a
temporary database is created and dropped); backends that cannot be reached are skipped.
``python -m benchmarks db_load`` (options: ``--responses``, ``--backends``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog import transform
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.storage.write import write_rows

WHEN = datetime(2026, 11, 25, tzinfo=UTC)
ALBUMS_PER_RESPONSE = 20
TRACKS_PER_ALBUM = 12


def _id(*parts: object) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, ":".join(map(str, parts))).hex[:22]


def _links(kind: str, item_id: str) -> dict[str, Any]:
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{item_id}"},
        "href": f"https://api.spotify.com/v1/{kind}s/{item_id}",
        "id": item_id,
        "type": kind,
        "uri": f"spotify:{kind}:{item_id}",
    }


def album(n: int) -> dict[str, Any]:
    """A full album in the Extended shape, with its tracks."""
    artist = {**_links("artist", _id("artist", n % 97)), "name": f"Artist {n % 97}"}
    album_id = _id("album", n)
    tracks = [
        {
            **_links("track", _id("track", n, t)),
            "artists": [artist],
            "available_markets": ["US", "DE", "JP", "KR", "BR"],
            "disc_number": 1,
            "duration_ms": 180000 + t,
            "explicit": False,
            "is_local": False,
            "name": f"Track {t} of album {n}",
            "preview_url": None,
            "track_number": t + 1,
        }
        for t in range(TRACKS_PER_ALBUM)
    ]
    return {
        **_links("album", album_id),
        "album_type": "album",
        "artists": [artist],
        "available_markets": ["US", "DE", "JP", "KR", "BR"],
        "copyrights": [{"text": f"(C) 2020 Label {n}", "type": "C"}, {"text": f"(P) 2020 L{n}", "type": "P"}],
        "external_ids": {"upc": f"{n:012d}"},
        "genres": [],
        "images": [{"url": f"https://i.scdn.co/image/{album_id}", "height": 640, "width": 640}],
        "label": f"Label {n}",
        "name": f"Album {n}",
        "popularity": n % 100,
        "release_date": "2020-01-01",
        "release_date_precision": "day",
        "total_tracks": TRACKS_PER_ALBUM,
        "tracks": {"href": "x", "items": tracks, "limit": 50, "next": None, "offset": 0, "previous": None,
                   "total": TRACKS_PER_ALBUM},
    }  # fmt: skip


def load(url: str, responses: int) -> tuple[int, float]:
    """(rows written, seconds) for ``responses`` batch responses into a fresh schema at ``url``."""
    engine = open_database(url)
    batches = []
    for r in range(responses):
        rows = transform.Rows()
        for a in range(ALBUMS_PER_RESPONSE):
            transform.add_album(rows, album(r * ALBUMS_PER_RESPONSE + a), transform.FULL, WHEN)
        batches.append(rows)
    written = 0
    started = time.perf_counter()
    for rows in batches:
        with engine.begin() as conn:
            written += write_rows(conn, rows)
    seconds = time.perf_counter() - started
    engine.dispose()
    return written, seconds


def _server_database(server_url: str) -> tuple[str, sa.Engine, str]:
    name = f"sc_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, admin, name


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="db_load")
    parser.add_argument("--responses", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql,mysql")
    args = parser.parse_args(argv)
    servers = {
        "postgresql": os.environ.get(
            "SPOTIFY_CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        "mysql": os.environ.get("SPOTIFY_CATALOG_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    }
    print(
        f"{args.responses} responses x {ALBUMS_PER_RESPONSE} full albums x {TRACKS_PER_ALBUM} tracks, "
        "one transaction per response"
    )
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                written, seconds = load(f"sqlite:///{tmp}/load.db", args.responses)
        else:
            try:
                url, admin, name = _server_database(servers[backend])
            except sa.exc.OperationalError as exc:
                print(f"{backend:<10} skipped: {str(exc.orig).splitlines()[0]}")
                continue
            try:
                written, seconds = load(url, args.responses)
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
                admin.dispose()
        print(
            f"{backend:<10} {written:7d} rows in {seconds:6.2f} s = {written / seconds:8.0f} rows/s "
            f"({args.responses / seconds:6.1f} responses/s)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
