"""The report's Listening section: what ``crawl --me`` collected (plays, saved items, followed
artists, playlists, top lists), aggregated in SQL (:mod:`~spotify_catalog.report.sql`), read only.
:func:`collect_listening` gives ``None`` for a database with none of a user's data.

The plays charted are those of the period: the ``PERIOD_DAYS`` UTC days up to the day of the newest
play stored. Days and hours are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from spotify_catalog.report.sql import top_artists, utc_date, utc_hour, utc_month
from spotify_catalog.storage import schema

PERIOD_DAYS = 365
"""Days of plays charted, up to the day of the newest play."""
TOP_PLAYED = 25
"""Artists shown by their plays."""
TOP_ITEMS_SHOWN = 10
"""Entries shown of each of Spotify's top lists."""
TIME_RANGES = ("short_term", "medium_term", "long_term")
SAVED = {
    "tracks": schema.saved_tracks,
    "albums": schema.saved_albums,
    "shows": schema.saved_shows,
    "episodes": schema.saved_episodes,
}
USER_TABLES = (
    schema.users,
    schema.plays,
    *SAVED.values(),
    schema.followed_artists,
    schema.user_playlists,
    schema.top_items,
)


@dataclass
class TopList:
    """One of Spotify's top lists of a user, as of its newest snapshot."""

    user_id: str
    item_type: str
    """artist | track"""
    time_range: str
    snapshot_date: str
    items: list[tuple[str, str | None]]
    """(id, name or None), in Spotify's order, the first TOP_ITEMS_SHOWN"""


@dataclass
class Listening:
    """The figures of the Listening section, as plain data; sizes bounded."""

    users: dict[str, str] = field(default_factory=dict)
    """user id -> the name shown (display name, else the id), every user with data"""
    plays_total: int = 0
    first_play: datetime | None = None
    last_play: datetime | None = None
    period_start: datetime | None = None
    """the start (00:00 UTC) of the period's first day"""
    plays: int = 0
    """plays in the period"""
    tracks_played: int = 0
    minutes: float = 0.0
    """minutes listened in the period, from the durations of the tracks the database has"""
    plays_without_duration: int = 0
    plays_per_day: list[tuple[str, str, int]] = field(default_factory=list)
    """(UTC day, user id, plays)"""
    plays_per_hour: list[tuple[int, str, int]] = field(default_factory=list)
    """(UTC hour 0-23, user id, plays)"""
    top_played: list[tuple[str, str, int]] = field(default_factory=list)
    """(artist id, name, plays of the period crediting the artist)"""
    plays_uncredited: int = 0
    """plays of the period whose track has no artists in the database (not crawled)"""
    saved: dict[str, int] = field(default_factory=dict)
    """tracks|albums|shows|episodes -> items saved (every user)"""
    saved_per_month: list[tuple[str, str, int]] = field(default_factory=list)
    """(UTC month YYYY-MM, tracks|albums|shows|episodes, items added that month)"""
    followed: int = 0
    playlists: int = 0
    playlists_owned: int = 0
    top_lists: list[TopList] = field(default_factory=list)


def has_user_data(conn: sa.Connection) -> bool:
    """Whether any table of a user's data has a row."""
    exists = sa.or_(*(sa.exists(sa.select(sa.literal(1)).select_from(t)) for t in USER_TABLES))
    return bool(conn.execute(sa.select(exists)).scalar_one())


def collect_listening(conn: sa.Connection) -> Listening | None:
    """The Listening section of the database behind ``conn``; ``None`` when it has no user's data."""
    if not has_user_data(conn):
        return None
    found = Listening()
    _users(conn, found)
    _plays(conn, found)
    _saved(conn, found)
    _top_lists(conn, found)
    return found


def _count(conn: sa.Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def _users(conn: sa.Connection, found: Listening) -> None:
    """Every user id some table names, with the display name of its ``users`` row when there is one."""
    ids = sa.union(*(sa.select(t.c.user_id) for t in USER_TABLES if t is not schema.users)).subquery()
    u = schema.users
    everyone = sa.union(sa.select(u.c.id.label("id")), sa.select(ids.c.user_id)).subquery()
    query = (
        sa.select(everyone.c.id, u.c.display_name)
        .select_from(everyone.outerjoin(u, u.c.id == everyone.c.id))
        .order_by(everyone.c.id)
    )
    found.users = {str(i): str(name) if name else str(i) for i, name in conn.execute(query)}


def _plays(conn: sa.Connection, found: Listening) -> None:
    p = schema.plays
    total, first, last = conn.execute(
        sa.select(sa.func.count(), sa.func.min(p.c.played_at), sa.func.max(p.c.played_at))
    ).one()
    found.plays_total = int(total)
    if not total:
        return
    found.first_play, found.last_play = first, last  # aware UTC: MIN and MAX keep the column's type
    start_day = last.date() - timedelta(days=PERIOD_DAYS - 1)
    found.period_start = datetime.combine(start_day, time(), tzinfo=last.tzinfo)
    period = p.c.played_at >= found.period_start
    t = schema.tracks
    plays, tracks, minutes, timed = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(p.c.track_id)),
            sa.func.sum(t.c.duration_ms),
            sa.func.count(t.c.duration_ms),
        )
        .select_from(p.outerjoin(t, t.c.id == p.c.track_id))
        .where(period)
    ).one()
    found.plays, found.tracks_played = int(plays), int(tracks)
    found.minutes = round(int(minutes or 0) / 60_000, 1)
    found.plays_without_duration = int(plays) - int(timed)
    per_day = _per(conn, utc_date(p.c.played_at), period)
    found.plays_per_day = [(str(day)[:10], user, n) for day, user, n in per_day]  # a date, or text
    found.plays_per_hour = [(int(h), user, n) for h, user, n in _per(conn, utc_hour(p.c.played_at), period)]
    ta = schema.track_artists
    credited = p.join(ta, ta.c.track_id == p.c.track_id)
    found.top_played = top_artists(conn, ta.c.artist_id, credited, TOP_PLAYED, period)
    credits = sa.exists().where(ta.c.track_id == p.c.track_id)
    found.plays_uncredited = _count(conn, p, period, ~credits)


def _per(
    conn: sa.Connection, bucket: sa.ColumnElement[Any], period: sa.ColumnElement[bool]
) -> list[tuple[Any, str, int]]:
    """Plays of the period per ``bucket`` (a day, an hour) and user, in that order."""
    p = schema.plays
    query = (
        sa.select(bucket, p.c.user_id, sa.func.count())
        .where(period)
        .group_by(bucket, p.c.user_id)
        .order_by(bucket, p.c.user_id)
    )
    return [(b, str(u), int(n)) for b, u, n in conn.execute(query)]


def _saved(conn: sa.Connection, found: Listening) -> None:
    found.saved = {kind: _count(conn, table) for kind, table in SAVED.items()}
    added = sa.union_all(
        *(
            sa.select(
                sa.literal(kind, sa.String()).label("kind"), utc_month(t.c.added_at).label("month")
            ).where(t.c.added_at.is_not(None))
            for kind, t in SAVED.items()
        )
    ).subquery()
    query = (
        sa.select(added.c.month, added.c.kind, sa.func.count())
        .group_by(added.c.month, added.c.kind)
        .order_by(added.c.month, added.c.kind)
    )
    found.saved_per_month = [(str(month), str(kind), int(n)) for month, kind, n in conn.execute(query)]
    found.followed = _count(conn, schema.followed_artists)
    found.playlists = _count(conn, schema.user_playlists)
    found.playlists_owned = _count(conn, schema.user_playlists, schema.user_playlists.c.owned.is_(True))


def _top_lists(conn: sa.Connection, found: Listening) -> None:
    """Each user's top artists and tracks per time range, as of the list's newest snapshot."""
    ti = schema.top_items
    newest = (
        sa.select(ti.c.user_id, ti.c.item_type, ti.c.time_range, sa.func.max(ti.c.snapshot_date).label("day"))
        .group_by(ti.c.user_id, ti.c.item_type, ti.c.time_range)
        .subquery()
    )
    lists: dict[tuple[str, str, str], TopList] = {}
    for item_type, table in (("artist", schema.artists), ("track", schema.tracks)):
        query = (
            sa.select(ti.c.user_id, ti.c.time_range, ti.c.snapshot_date, ti.c.item_id, table.c.name)
            .select_from(
                ti.join(
                    newest,
                    sa.and_(
                        newest.c.user_id == ti.c.user_id,
                        newest.c.item_type == ti.c.item_type,
                        newest.c.time_range == ti.c.time_range,
                        newest.c.day == ti.c.snapshot_date,
                    ),
                ).outerjoin(table, table.c.id == ti.c.item_id)
            )
            .where(ti.c.item_type == item_type, ti.c.position < TOP_ITEMS_SHOWN)
            .order_by(ti.c.user_id, ti.c.time_range, ti.c.position)
        )
        for user, time_range, day, item, name in conn.execute(query):
            key = (str(user), item_type, str(time_range))
            top = lists.setdefault(key, TopList(key[0], item_type, key[2], str(day)[:10], []))
            top.items.append((str(item), name))
    order = {r: i for i, r in enumerate(TIME_RANGES)}
    found.top_lists = sorted(
        lists.values(), key=lambda t: (t.user_id, t.item_type, order.get(t.time_range, 9), t.time_range)
    )
