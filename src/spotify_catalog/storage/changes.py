"""What the crawl writes when the catalog changed: discographies replaced, gone entities marked.

A discography listing is the pages of ``/artists/{id}/albums`` for one artist and one set of groups:
tasks ``artist_albums`` with keys ``artist|groups|offset``, the first page (offset 0) queueing the
others. A refresh of a listing starts when its first page is written (that task's ``done_at``):

- the first page queues all the other pages again, whatever their freshness, and drops the listing's
  tasks beyond the new total, so the listing's tasks are exactly the pages of this refresh;
- every page stamps the links it lists with the refresh's start (``artist_albums.listed_at``, never moved
  back), the same value whichever process or clock writes the page;
- the page that leaves no task of the listing undone (none pending, none failed) deletes the artist's
  links in those groups that this refresh did not list. A stop between pages changes nothing: the
  pages still to do are pending tasks, and the last of them closes the listing in a later run.

An album no link lists any more, and an artist, album or track Spotify answered 404 for, is marked
gone (``gone_at``, the first time it was found so), with the tracks of a gone album; pending tasks for
them are dropped. A response that carries the entity again clears ``gone_at`` (see
:mod:`spotify_catalog.transform`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from spotify_catalog.storage import schema

log = logging.getLogger(__name__)

LISTING_KIND = "artist_albums"
PENDING = "pending"
DONE = "done"
_CHUNK = 500


def _chunks(items: Iterable[str], size: int = _CHUNK) -> Iterable[list[str]]:
    ordered = sorted(set(items))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def listing_prefix(artist_id: str, groups: str) -> str:
    """The task keys of one discography listing start with this."""
    return f"{artist_id}|{groups}|"


def _listing_tasks(artist_id: str, groups: str) -> sa.ColumnElement[bool]:
    t = schema.tasks
    prefix = listing_prefix(artist_id, groups)
    return sa.and_(t.c.kind == LISTING_KIND, t.c.key.startswith(prefix, autoescape=True))


def restart_listing(
    conn: sa.Connection, artist_id: str, groups: str, pages: Sequence[str], *, now: datetime
) -> int:
    """The first page of a listing was written: its other ``pages`` (task keys) are pending again, and
    tasks of the listing that are not among them (pages beyond a total that shrank) are dropped.
    Returns how many tasks were made pending again."""
    t = schema.tasks
    first = listing_prefix(artist_id, groups) + "0"
    keep = {first, *pages}
    existing = set(conn.execute(sa.select(t.c.key).where(_listing_tasks(artist_id, groups))).scalars())
    stale = sorted(existing - keep)
    for chunk in _chunks(stale):
        conn.execute(t.delete().where(t.c.kind == LISTING_KIND, t.c.key.in_(chunk)))
    reopened = 0
    for chunk in _chunks(existing & set(pages)):
        result = conn.execute(
            t.update()
            .where(t.c.kind == LISTING_KIND, t.c.key.in_(chunk), t.c.state != PENDING)
            .values(
                state=PENDING,
                attempts=0,
                error=None,
                done_at=None,
                updated_at=now,
                lease_until=None,
                leased_by=None,
            )
        )
        reopened += int(result.rowcount)
    missing = sorted(set(pages) - existing)
    if missing:
        new = {"kind": LISTING_KIND, "state": PENDING, "attempts": 0, "created_at": now, "updated_at": now}
        conn.execute(t.insert(), [{**new, "key": k} for k in missing])
    return reopened


def listing_started(conn: sa.Connection, artist_id: str, groups: str) -> datetime | None:
    """When the current refresh of a listing started (its first page written), ``None`` while that
    page is not done."""
    t = schema.tasks
    row = conn.execute(
        sa.select(t.c.state, t.c.done_at).where(
            t.c.kind == LISTING_KIND, t.c.key == listing_prefix(artist_id, groups) + "0"
        )
    ).first()
    if row is None or row.state != DONE:
        return None
    done_at: datetime | None = row.done_at
    return done_at


def listing_page_written(
    conn: sa.Connection, artist_id: str, groups: str, album_ids: Sequence[str], *, now: datetime
) -> list[str]:
    """A page of a listing was written (its task done, in this transaction): stamp its links, and if it
    was the last page of the refresh, delete the links the refresh did not list. Returns the album ids
    of the deleted links."""
    started = listing_started(conn, artist_id, groups)
    if started is None:
        return []  # the first page is asked again: it queues this one again too
    aa = schema.artist_albums
    for chunk in _chunks(album_ids):
        conn.execute(
            aa.update()
            .where(
                aa.c.artist_id == artist_id,
                aa.c.album_id.in_(chunk),
                sa.or_(aa.c.listed_at.is_(None), aa.c.listed_at < started),
            )
            .values(listed_at=started)
        )
    t = schema.tasks
    undone = conn.execute(
        sa.select(sa.func.count()).where(_listing_tasks(artist_id, groups), t.c.state != DONE)
    ).scalar_one()
    if undone:
        return []
    in_groups = sa.or_(aa.c.album_group.in_(groups.split(",")), aa.c.album_group.is_(None))
    not_listed = sa.and_(
        aa.c.artist_id == artist_id, in_groups, sa.or_(aa.c.listed_at.is_(None), aa.c.listed_at < started)
    )
    removed = list(conn.execute(sa.select(aa.c.album_id).where(not_listed)).scalars())
    if not removed:
        return []
    conn.execute(aa.delete().where(not_listed))
    gone = _unlisted(conn, removed, now=now)
    log.info(
        "artist %s: %d album(s) no longer in its discography (%s), %d of them listed nowhere else: gone",
        artist_id,
        len(removed),
        groups,
        len(gone),
    )
    return removed


def _unlisted(conn: sa.Connection, album_ids: Iterable[str], *, now: datetime) -> list[str]:
    """Albums whose links were deleted: those no link lists any more are gone. Returns them."""
    aa = schema.artist_albums
    orphans: list[str] = []
    for chunk in _chunks(album_ids):
        still = set(conn.execute(sa.select(aa.c.album_id).where(aa.c.album_id.in_(chunk))).scalars())
        orphans.extend(a for a in chunk if a not in still)
    albums_gone(conn, orphans, now=now)
    return orphans


def albums_gone(conn: sa.Connection, album_ids: Iterable[str], *, now: datetime) -> None:
    """Mark albums and their tracks gone (keeping an earlier ``gone_at``); drop their pending tasks."""
    al, tr, t = schema.albums, schema.tracks, schema.tasks
    for chunk in _chunks(album_ids):
        conn.execute(al.update().where(al.c.id.in_(chunk), al.c.gone_at.is_(None)).values(gone_at=now))
        conn.execute(tr.update().where(tr.c.album_id.in_(chunk), tr.c.gone_at.is_(None)).values(gone_at=now))
        pending = t.c.state == PENDING
        conn.execute(t.delete().where(t.c.kind == "album", t.c.key.in_(chunk), pending))
        their_tracks = sa.select(tr.c.id).where(tr.c.album_id.in_(chunk))
        conn.execute(t.delete().where(t.c.kind == "track", t.c.key.in_(their_tracks), pending))
        _drop_pending_pages(conn, "album_tracks", chunk)


def _drop_pending_pages(conn: sa.Connection, kind: str, ids: Sequence[str]) -> None:
    """Drop the pending tasks of ``kind`` whose key (``id|...``) starts with one of ``ids``."""
    t = schema.tasks
    wanted = set(ids)
    pending = conn.execute(sa.select(t.c.key).where(t.c.kind == kind, t.c.state == PENDING)).scalars()
    drop = [key for key in pending if key.split("|", 1)[0] in wanted]
    for chunk in _chunks(drop):
        conn.execute(t.delete().where(t.c.kind == kind, t.c.state == PENDING, t.c.key.in_(chunk)))


def artists_gone(conn: sa.Connection, artist_ids: Iterable[str], *, now: datetime) -> None:
    """Mark artists gone: their discography is empty now (links deleted, albums listed nowhere else
    gone) and their pending discography pages are dropped."""
    ar, aa = schema.artists, schema.artist_albums
    for chunk in _chunks(artist_ids):
        conn.execute(ar.update().where(ar.c.id.in_(chunk), ar.c.gone_at.is_(None)).values(gone_at=now))
        links = list(conn.execute(sa.select(aa.c.album_id).where(aa.c.artist_id.in_(chunk))).scalars())
        conn.execute(aa.delete().where(aa.c.artist_id.in_(chunk)))
        _unlisted(conn, links, now=now)
        _drop_pending_pages(conn, LISTING_KIND, chunk)


def tracks_gone(conn: sa.Connection, track_ids: Iterable[str], *, now: datetime) -> None:
    """Mark tracks gone (keeping an earlier ``gone_at``)."""
    tr = schema.tracks
    for chunk in _chunks(track_ids):
        conn.execute(tr.update().where(tr.c.id.in_(chunk), tr.c.gone_at.is_(None)).values(gone_at=now))


def not_found(conn: sa.Connection, kind: str, keys: Sequence[str], *, now: datetime) -> None:
    """Spotify answered 404 for tasks ``keys`` of ``kind``: mark what they name gone (an album's track
    page or an artist's discography page names the album or the artist)."""
    ids = [key.split("|", 1)[0] for key in keys]
    if kind in ("artist", LISTING_KIND):
        artists_gone(conn, ids, now=now)
    elif kind in ("album", "album_tracks"):
        albums_gone(conn, ids, now=now)
    elif kind == "track":
        tracks_gone(conn, ids, now=now)
