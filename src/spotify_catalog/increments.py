"""What a crawl database wrote since a given time: each catalog table's rows with ``written_at``, the
time the row was last written, for loaders that copy only what changed (:mod:`spotify_catalog.dlt`,
docs/dlt.md). Reads only.

How a row's ``written_at`` is known depends on how the crawl writes its table:

- **entities** (artists, albums, tracks, playlists, shows, episodes, audiobooks, chapters): the later of
  ``fetched_at`` (a response carried it) and ``gone_at`` (found gone; that changes no ``fetched_at``);
- ``artist_resolutions``: ``resolved_at``;
- **a user's own data** (``users``, ``plays``, ``top_items`` and the lists of ``schema.USER_LISTS``):
  their own ``fetched_at``. A user's list is replaced whole, every row with the same ``fetched_at``,
  so it is reloaded whole (grouped by ``user_id``); a list emptied is not signalled (it leaves no
  row to carry the time);
- **lists written with their parent's object** (``album_artists``, ``track_artists``,
  ``artist_genres``, ``playlist_items``; ``artist_snapshots`` and ``track_snapshots``): the parent's
  ``written_at``. A list is replaced whole, so it is reloaded whole (:attr:`Increment.group`); a
  playlist whose items were fetched and are none gives one row marked ``deleted``;
- ``artist_top_tracks``: the ``written_at`` of its track (each list is written with its full tracks);
- ``artist_albums``: the artist's discography listing, whose pages may be written in several runs and
  whose last page deletes the links the refresh did not list: the latest ``done_at`` of the artist's
  listing tasks (``_tasks``), or the time the artist was found gone (its links deleted). Its links
  are reloaded whole; an artist left with none gives one row marked ``deleted``.

Rows of dated tables (snapshots, top tracks) are read from the day of ``since`` on. Rows are read in
batches as plain dicts: JSON columns as Python lists and dicts, times as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog.storage import schema
from spotify_catalog.storage.changes import LISTING_KIND

WRITTEN_AT = "written_at"
DELETED = "deleted"  # True on a row that stands for a parent whose list is now empty
BATCH_ROWS = 2_000
_CHUNK = 500  # ids in one IN list

ENTITIES = ("artists", "albums", "tracks", "playlists", "shows", "episodes", "audiobooks", "chapters")
PARENT_OF = {  # list table -> (its column naming the parent, the parent table)
    "artist_genres": ("artist_id", "artists"),
    "album_artists": ("album_id", "albums"),
    "track_artists": ("track_id", "tracks"),
    "playlist_items": ("playlist_id", "playlists"),
    "artist_snapshots": ("artist_id", "artists"),
    "track_snapshots": ("track_id", "tracks"),
    "artist_top_tracks": ("track_id", "tracks"),
}
REPLACED_WHOLE = ("artist_genres", "album_artists", "track_artists", "playlist_items", "artist_albums")
DATED = ("artist_snapshots", "track_snapshots", "artist_top_tracks")
OWN_TIME = ("users", "plays", "top_items", *schema.USER_LISTS)
"""Tables whose rows carry the time they were written (``fetched_at``)."""


@dataclass(frozen=True)
class Increment:
    """How the changed rows of one table are read.

    ``key``: the table's primary key. ``group``: for a list replaced whole with its parent, the
    column naming the parent (a loader deletes the parent's old rows and inserts the new ones: dlt's
    ``merge_key``); ``None``: rows are merged one by one on ``key``."""

    table: sa.Table
    key: tuple[str, ...]
    group: str | None

    @property
    def name(self) -> str:
        return self.table.name


def increments(tables: Sequence[str] | None = None) -> list[Increment]:
    """The catalog tables (all, or those named), in the schema's order; an unknown name is a
    ``ValueError``."""
    known = {t.name: t for t in schema.CATALOG_TABLES}
    unknown = sorted(set(tables or ()) - set(known))
    if unknown:
        raise ValueError(f"no catalog table {', '.join(unknown)} (tables: {', '.join(sorted(known))})")
    chosen = [t for t in schema.CATALOG_TABLES if tables is None or t.name in tables]
    return [
        Increment(
            table=t,
            key=tuple(c.name for c in t.primary_key.columns),
            group=_group_column(t.name),
        )
        for t in chosen
    ]


def _group_column(name: str) -> str | None:
    if name == "artist_albums":
        return "artist_id"
    if name in schema.USER_LISTS:
        return "user_id"
    return PARENT_OF[name][0] if name in REPLACED_WHOLE else None


def columns(increment: Increment, *, with_raw: bool = False) -> list[sa.Column[Any]]:
    """The table's columns a loader gets (``raw`` only ``with_raw``), without ``written_at``."""
    return [c for c in increment.table.columns if with_raw or c.name != "raw"]


def entity_written_at(table: sa.Table) -> sa.ColumnElement[datetime]:
    """An entity row's ``written_at``: the later of ``fetched_at`` and ``gone_at``."""
    fetched, gone = table.c.fetched_at, table.c.gone_at
    later = sa.case(
        (fetched.is_(None), gone), (sa.and_(gone.is_not(None), gone > fetched), gone), else_=fetched
    )
    return sa.type_coerce(later, schema.UtcDateTime())


def written_since(
    conn: sa.Connection,
    increment: Increment,
    since: datetime | None,
    *,
    with_raw: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``increment``'s table written at or after ``since`` (every row when ``None``), with
    ``written_at``, in batches of at most ``batch_rows``."""
    name = increment.name
    if name == "artist_albums":
        yield from _batches(_listings(conn, increment, since, with_raw), batch_rows)
        return
    table = increment.table
    wanted = columns(increment, with_raw=with_raw)
    if name in ENTITIES:
        written = entity_written_at(table)
        query = sa.select(*wanted, written.label(WRITTEN_AT))
    elif name in ("artist_resolutions", *OWN_TIME):
        written = table.c.resolved_at if name == "artist_resolutions" else table.c.fetched_at
        query = sa.select(*wanted, written.label(WRITTEN_AT))
    else:
        column, parent_name = PARENT_OF[name]
        parent = schema.metadata.tables[parent_name]
        written = entity_written_at(parent)
        joined = table.join(parent, table.c[column] == parent.c.id)
        query = sa.select(*wanted, written.label(WRITTEN_AT)).select_from(joined)
        if since is not None and name in DATED:
            query = query.where(table.c.snapshot_date >= since.date())
    if since is not None:
        query = query.where(written >= since)
    result = conn.execution_options(yield_per=batch_rows).execute(query)
    for part in result.mappings().partitions():
        yield [dict(row) for row in part]
    if name == "playlist_items" and since is not None:
        yield from _batches(_emptied_playlists(conn, increment, since), batch_rows)


def _emptied_playlists(
    conn: sa.Connection, increment: Increment, since: datetime
) -> Iterator[dict[str, Any]]:
    """A ``deleted`` row for each playlist written since ``since`` whose items were fetched and are none."""
    p, items = schema.playlists, increment.table
    written = entity_written_at(p)
    has_items = sa.exists().where(items.c.playlist_id == p.c.id)
    query = sa.select(p.c.id, written).where(p.c.items_snapshot_id.is_not(None), written >= since, ~has_items)
    for playlist, moment in conn.execute(query):
        yield deleted_row(increment, playlist, moment)


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def listing_times(conn: sa.Connection, since: datetime | None) -> dict[str, datetime]:
    """Artist id -> when its ``artist_albums`` links were last written (a page of its discography, or
    the artist found gone), for the artists whose links were written at or after ``since``."""
    t, ar = schema.tasks, schema.artists
    done = sa.select(t.c.key, t.c.done_at).where(t.c.kind == LISTING_KIND, t.c.done_at.is_not(None))
    gone = sa.select(ar.c.id, ar.c.gone_at).where(ar.c.gone_at.is_not(None))
    if since is not None:
        done = done.where(t.c.done_at >= since)
        gone = gone.where(ar.c.gone_at >= since)
    times: dict[str, datetime] = {}
    for key, moment in [*conn.execute(done), *conn.execute(gone)]:
        artist = str(key).partition("|")[0]
        if artist not in times or moment > times[artist]:
            times[artist] = moment
    return times


def _listings(
    conn: sa.Connection, increment: Increment, since: datetime | None, with_raw: bool
) -> Iterator[dict[str, Any]]:
    """``artist_albums`` rows of the artists whose links were written since ``since``, each with the
    time of its artist's listing; an artist of those with no link left gives one ``deleted`` row."""
    aa = increment.table
    times = listing_times(conn, since)
    wanted = columns(increment, with_raw=with_raw)
    if since is None:  # everything: the links of every artist (a link older than the tasks: listed_at)
        query = sa.select(*wanted).order_by(aa.c.artist_id, aa.c.album_id)
        for row in conn.execute(query).mappings():
            yield {**row, WRITTEN_AT: times.get(row["artist_id"], row["listed_at"])}
        return
    artists = sorted(times)
    for start in range(0, len(artists), _CHUNK):
        chunk = artists[start : start + _CHUNK]
        query = sa.select(*wanted).where(aa.c.artist_id.in_(chunk)).order_by(aa.c.artist_id, aa.c.album_id)
        listed: set[str] = set()
        for row in conn.execute(query).mappings():
            listed.add(row["artist_id"])
            yield {**row, WRITTEN_AT: times[row["artist_id"]]}
        for artist in chunk:
            if artist not in listed:
                yield deleted_row(increment, artist, times[artist])


def deleted_row(increment: Increment, parent: str, written_at: datetime) -> dict[str, Any]:
    """The row that stands for ``parent``'s list, now empty: its group column, the other key columns
    empty (``""`` or ``-1``), ``deleted`` true. A loader deletes the parent's rows and inserts none."""
    assert increment.group is not None
    row: dict[str, Any] = {increment.group: parent, WRITTEN_AT: written_at, DELETED: True}
    for name in increment.key:
        if name != increment.group:
            row[name] = -1 if isinstance(increment.table.c[name].type, sa.Integer) else ""
    return row
