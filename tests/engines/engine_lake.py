"""The lake the engines read: an Extended-profile crawl of the emulator (so list columns hold data)
exported with ``spotify-catalog export`` on two snapshot dates, locally and to S3, and what every
engine must find in it, taken from the database at each export."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from click.testing import CliRunner

from emulated import emulator_settings
from spotify_catalog import export as lake_export
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

FIRST = date(2026, 11, 24)
SECOND = date(2026, 11, 25)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TABLES = [t.name for t in schema.CATALOG_TABLES]
LISTS = [("tracks", "available_markets"), ("albums", "available_markets"), ("albums", "copyrights")]
# albums by year of release_date, a DATE in the lake: the engines filter and group by it
RELEASES = (
    "SELECT year(release_date), count(*) FROM {albums} WHERE release_date >= DATE '1900-01-01' "
    "GROUP BY year(release_date) ORDER BY 1"
)
JOIN = (
    "SELECT count(*), count(DISTINCT ar.id) FROM {tracks} t JOIN {albums} a ON t.album_id = a.id "
    "JOIN {album_artists} aa ON aa.album_id = a.id JOIN {artists} ar ON ar.id = aa.artist_id"
)


def timestamp_columns() -> dict[str, tuple[str, list[str]]]:
    """``table -> (key, [timestamp columns])`` for the tables whose exported columns have timestamps;
    ``key`` is SQL that Spark and DuckDB alike read as the primary key in one string (``a|b``)."""
    out = {}
    for table in schema.CATALOG_TABLES:
        columns = [f.name for f in lake_export.arrow_schema(table) if pa.types.is_timestamp(f.type)]
        if columns:
            keys = ", ".join(f"CAST({c.name} AS STRING)" for c in table.primary_key.columns)
            out[table.name] = (f"concat_ws('|', {keys})", columns)
    return out


def _key(row: Any) -> str:
    return "|".join(str(v) for v in row)


@dataclass
class EngineLake:
    """``root``: the local lake; ``s3``: the same exports on S3; ``counts[table][dt]`` rows per date,
    ``instants[table][column][dt][key]`` microseconds since the epoch; ``lists`` and ``join`` of the
    newest snapshot."""

    root: Path
    s3: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    instants: dict[str, dict[str, dict[str, dict[str, int]]]] = field(default_factory=dict)
    lists: dict[str, int] = field(default_factory=dict)
    join: list[int] = field(default_factory=list)
    releases: list[list[int]] = field(default_factory=list)

    def latest(self, table: str) -> list[Any]:
        newest = max(self.counts[table])
        return [self.counts[table][newest], newest, newest]


def _small_artists(catalog: Any, n: int) -> list[str]:
    """``n`` artists with two to four albums: small discographies, a fast crawl."""
    sizes = {a: len(catalog.artist_album_ids(a, ("album",))) for a in catalog.artist_ids()}
    return [a for a, size in sizes.items() if 2 <= size <= 4][:n]


def _export(db_url: str, to: str, when: date, env: dict[str, str | None]) -> dict[str, int]:
    """``spotify-catalog export``; the rows it reports per table (``tracks: 1,234 rows -> ...``)."""
    args = ["export", "--db", db_url, "--to", to, "--snapshot-date", when.isoformat()]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, (result.stderr, result.exception)
    reported = (re.fullmatch(r"(\w+): ([\d,]+) rows -> .*", line) for line in result.stderr.splitlines())
    return {m[1]: int(m[2].replace(",", "")) for m in reported if m}


def build(workdir: Path, s3: str, env: dict[str, str | None]) -> EngineLake:
    """Crawl one artist by name (so ``artist_resolutions`` has a row) and one by id, export on
    ``FIRST``; crawl a third artist, export on ``SECOND``: the second snapshot holds more rows. Fetch
    times carry microseconds."""
    url = f"sqlite:///{workdir / 'catalog.db'}"
    lake = EngineLake(workdir / "lake", s3)
    engine = open_database(url)
    try:
        with serve_in_thread(EmulatorConfig(profile="extended", artists=200)) as emu:
            first, second, third = _small_artists(emu.catalog, 3)
            name = emu.catalog.artist_by_id(first).name
            for when, inputs in (
                (FIRST, (ArtistInput(name, False), ArtistInput(second, True))),
                (SECOND, (ArtistInput(third, True),)),
            ):
                moment = datetime.combine(when, datetime.min.time(), UTC) + timedelta(
                    hours=10, microseconds=123457
                )
                options = CrawlOptions(artists=inputs, depth=Depth.TRACKS)
                with SpotifyClient(emulator_settings(emu)) as client:
                    Crawler(engine, client, options, now=lambda moment=moment: moment).run()
                local, remote = (_export(url, to, when, env) for to in (str(lake.root), s3))
                assert local == remote
                assert set(local) == set(TABLES)
                for table, rows in local.items():
                    lake.counts.setdefault(table, {})[when.isoformat()] = rows
                _record(engine, lake, when.isoformat())
        with engine.connect() as conn:
            for table, column in LISTS:
                values = conn.execute(sa.select(schema.metadata.tables[table].c[column])).scalars()
                lake.lists[f"{table}.{column}"] = sum(len(v) for v in values if v)
            names = {t: t for t in ("tracks", "albums", "album_artists", "artists")}
            lake.join = list(conn.execute(sa.text(JOIN.format(**names))).one())
            lake.releases = _releases(conn.execute(sa.select(schema.albums.c.release_date)).scalars())
    finally:
        engine.dispose()
    return lake


def _releases(texts: Any) -> list[list[int]]:
    """:data:`RELEASES` worked out from the database's texts (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``)."""
    years: dict[int, int] = {}
    for text in texts:
        if text and text[:4].isdigit() and int(text[:4]) >= 1900:
            years[int(text[:4])] = years.get(int(text[:4]), 0) + 1
    return [[year, count] for year, count in sorted(years.items())]


def _record(engine: sa.Engine, lake: EngineLake, dt: str) -> None:
    """Every timestamp of the database when ``dt`` was exported."""
    with engine.connect() as conn:
        for name, (_, columns) in timestamp_columns().items():
            table = schema.metadata.tables[name]
            keys = list(table.primary_key.columns)
            for column in columns:
                query = sa.select(table.c[column], *keys).where(table.c[column].is_not(None))
                lake.instants.setdefault(name, {}).setdefault(column, {})[dt] = {
                    _key(k): (v - EPOCH) // timedelta(microseconds=1) for v, *k in conn.execute(query)
                }
