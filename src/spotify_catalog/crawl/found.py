"""What the crawl's phases read back from the database between them: the artists names resolved to,
the albums of the crawl's artists, the tracks of those albums, the playlists' stored snapshots and
those stored without their items. Reads only."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from spotify_catalog import endpoints
from spotify_catalog.storage import schema, state

CHUNK = 500
"""Keys in one ``IN (...)``."""


def _values(conn: sa.Connection, table: sa.Table, column: str, keys: Sequence[str]) -> dict[str, str | None]:
    """``column`` of the rows of ``table`` whose key (its first primary key column) is in ``keys``."""
    key = table.primary_key.columns.values()[0]
    found: dict[str, str | None] = {}
    for chunk in endpoints.chunked(keys, CHUNK):
        found.update(conn.execute(sa.select(key, table.c[column]).where(key.in_(chunk))).all())
    return found


def resolutions(conn: sa.Connection, names: Sequence[str]) -> dict[str, str | None]:
    """The artist each name resolved to (``None``: none found); names not searched yet are left out."""
    return _values(conn, schema.artist_resolutions, "artist_id", names)


def _collect(
    conn: sa.Connection,
    column: sa.ColumnElement[str],
    key: sa.ColumnElement[str],
    keys: Sequence[str],
    *where: sa.ColumnElement[bool],
) -> list[str]:
    """The distinct values of ``column`` in the rows whose ``key`` is in ``keys`` (and ``where``), sorted."""
    found: set[str] = set()
    for chunk in endpoints.chunked(keys, CHUNK):
        found.update(conn.execute(sa.select(column).where(key.in_(chunk), *where)).scalars())
    return sorted(found)


def albums_of(conn: sa.Connection, artist_ids: Sequence[str], groups: Sequence[str]) -> list[str]:
    """The albums of these groups in the stored discographies of ``artist_ids``, sorted."""
    aa = schema.artist_albums
    return _collect(conn, aa.c.album_id, aa.c.artist_id, artist_ids, aa.c.album_group.in_(groups))


def tracks_of(conn: sa.Connection, album_ids: Sequence[str]) -> list[str]:
    """The stored tracks of ``album_ids`` that are not gone, sorted."""
    t = schema.tracks
    return _collect(conn, t.c.id, t.c.album_id, album_ids, t.c.gone_at.is_(None))


def playlist_snapshots(conn: sa.Connection, playlist_ids: Sequence[str]) -> dict[str, str | None]:
    """The snapshot id of each stored playlist's stored items (``None``: its items are not stored)."""
    return _values(conn, schema.playlists, "items_snapshot_id", playlist_ids)


def without_items(conn: sa.Connection, playlist_ids: Sequence[str]) -> int:
    """How many of the stored playlists of ``playlist_ids`` are stored without their items."""
    p = schema.playlists
    count = 0
    for chunk in endpoints.chunked(playlist_ids, CHUNK):
        query = sa.select(sa.func.count()).where(p.c.id.in_(chunk), p.c.items_snapshot_id.is_(None))
        count += int(conn.execute(query).scalar_one())
    return count


def failed_tasks(conn: sa.Connection, max_attempts: int) -> int:
    """The tasks still pending after ``max_attempts`` attempts: failed for this run."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.tasks)
            .where(schema.tasks.c.state == state.PENDING, schema.tasks.c.attempts >= max_attempts)
        ).scalar_one()
    )
