"""A user's own data (``crawl --me``): the profile, the saved lists, followed artists, the user's
playlists, the top lists and the listening history, as tasks and units like every other.

Tasks (all keyed by the Spotify user id first):

- :data:`PROFILE` ``USER|profile`` (``GET /me``), done first: its answer shows the API mode
  (Development Mode leaves ``followers`` out), which decides whose playlist items are asked for;
- :data:`ME` ``USER|PART`` for each of :data:`PARTS`. Together with the profile they make a *round*:
  a run that follows a finished one (``done``) makes them all pending again, a run that follows a
  stopped, killed or failed one goes on with its round (and then with its other phases);
- :data:`TOP` ``USER|TYPE|RANGE|DAY``: a top list, once a day;
- :data:`USER_PLAYLIST` ``PLAYLIST|SNAPSHOT``: the items of one of the user's playlists at one
  ``snapshot_id``, queued by the ``playlists`` part only for a playlist whose stored items are of
  another snapshot and that the app may read (Development Mode: the user owns or collaborates on it;
  Extended: every one). A playlist whose snapshot did not change costs no request beyond its listing.

The fewest requests: a saved list costs one request when its first page (newest first) shows it
unchanged (the same total, no item not stored) or only grown at its top (the new items all on that
page, the total grown by as many); otherwise all its pages. The history is one request:
``recently-played`` with ``after`` one millisecond before the newest stored play, so that the answer
holds that play again when Spotify still keeps it; when the answer's oldest play is newer, plays may
have been missed (Spotify keeps 50): the run says so and ``_state`` keeps the gap for ``status``.

Handlers are pure, as in :mod:`spotify_catalog.crawl.units`; what they need of the database
(:class:`Known`) is read before the units are made.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from spotify_catalog import oauth, transform, transform_user
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import catalog, pages
from spotify_catalog.crawl.outcome import Handler, Outcome
from spotify_catalog.errors import InvalidResponseError, UsageError
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import schema, state
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

PROFILE = "me_profile"
ME = "me"
TOP = "me_top"
USER_PLAYLIST = "user_playlist"
KINDS = (PROFILE, ME, TOP, USER_PLAYLIST)

PARTS = ("following", "playlists", "plays", *transform_user.SAVED)
TIME_RANGES = ("short_term", "medium_term", "long_term")
TOP_TYPES = ("artists", "tracks")
PAGE = 50  # every list of a user's routes: at most 50 a page
GAPS_KEY = "plays_gaps:"  # + user id: the gaps of the history ([after, before] pairs), for status
ROUTES = (
    "/me",
    "/me/tracks",
    "/me/albums",
    "/me/shows",
    "/me/episodes",
    "/me/following",
    "/me/playlists",
    "/me/top/artists",
    "/me/player/recently-played",
)
"""The routes ``crawl --me`` asks: the scopes they need are checked before the run starts."""


def gaps_key(user_id: str) -> str:
    return (GAPS_KEY + user_id)[:100]


def preflight(client: SpotifyClient) -> None:
    """Before a run starts, so that nothing is written: :class:`UsageError` unless ``client`` acts
    for a user (:func:`spotify_catalog.users.user_client`); :class:`~spotify_catalog.errors.ScopeMissing`
    (one line naming the scopes and the login command) unless the login granted every scope
    ``crawl --me`` needs; :class:`~spotify_catalog.errors.LoginRequired` when Spotify refuses the
    login (an access token is asked for: a token request, not a Web API one)."""
    grant = client.tokens.grant
    require: Callable[..., None] | None = getattr(grant, "require", None)
    if require is None:
        raise UsageError("crawl --me needs a user's login: run spotify-catalog auth login")
    needed = dict.fromkeys(s for route in ROUTES for s in oauth.required_scopes(route))
    needed["playlist-read-collaborative"] = None  # the items of the playlists the user collaborates on
    require(*needed, what="crawl --me")
    client.tokens.token()


@dataclass
class Known:
    """What the units of a user need of the database: the stored saved lists (item id ->
    ``added_at``), the newest stored play, the gaps recorded, the snapshot of each stored playlist's
    items, and the API mode (``None``: not known, taken as Development Mode)."""

    user_id: str
    mode: ApiMode | None = None
    saved: dict[str, dict[str, datetime | None]] = field(default_factory=dict)
    newest_play: datetime | None = None
    gaps: list[list[str]] = field(default_factory=list)
    item_snapshots: dict[str, str | None] = field(default_factory=dict)


def load_known(conn: sa.Connection, user_id: str, mode: ApiMode | None) -> Known:
    known = Known(user_id, mode)
    for part, (name, column, _key) in transform_user.SAVED.items():
        table = schema.metadata.tables[name]
        query = sa.select(table.c[column], table.c.added_at).where(table.c.user_id == user_id)
        known.saved[part] = dict(conn.execute(query).all())
    p = schema.plays
    known.newest_play = conn.execute(
        sa.select(sa.func.max(p.c.played_at)).where(p.c.user_id == user_id)
    ).scalar()
    if known.newest_play is not None:  # SQLite gives MAX() back as text
        known.newest_play = _aware(known.newest_play)
    gaps = state.get_state(conn, gaps_key(user_id))
    known.gaps = json.loads(gaps) if gaps else []
    up, pl = schema.user_playlists, schema.playlists
    query = sa.select(pl.c.id, pl.c.items_snapshot_id).join(up, up.c.playlist_id == pl.c.id)
    known.item_snapshots = dict(conn.execute(query.where(up.c.user_id == user_id)).all())
    return known


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def seed(conn: sa.Connection, user_id: str, now: datetime, run_id: int) -> list[tuple[str, list[str]]]:
    """The tasks of this run's round, queued, and the top lists of ``now``'s day. A new round (every
    task pending again) when the run before ``run_id`` finished its work (``done``) or there was none;
    else that run was stopped, killed or failed, and this one goes on with its round (only the
    missing tasks are added, what was done stays done)."""
    profile, parts = [f"{user_id}|profile"], [f"{user_id}|{part}" for part in PARTS]
    r = schema.runs
    last = conn.execute(
        sa.select(r.c.status).where(r.c.id < run_id).order_by(r.c.id.desc()).limit(1)
    ).scalar()
    cut_short = last is not None and last != "done"
    fresh_since = now - timedelta(days=36_500) if cut_short else now + timedelta(seconds=1)
    state.ensure_tasks(conn, PROFILE, profile, now=now, fresh_since=fresh_since)
    state.ensure_tasks(conn, ME, parts, now=now, fresh_since=fresh_since)
    day = now.astimezone(UTC).date().isoformat()
    tops = [f"{user_id}|{kind}|{time_range}|{day}" for kind in TOP_TYPES for time_range in TIME_RANGES]
    return [(PROFILE, profile), (ME, parts), (TOP, tops)]


def artists_of(conn: sa.Connection, user_id: str, day: date) -> list[str]:
    """The artists the user follows, then those of the day's top lists: the crawl's artists for
    ``--depth`` albums and deeper."""
    f, t = schema.followed_artists, schema.top_items
    followed = conn.execute(sa.select(f.c.artist_id).where(f.c.user_id == user_id).order_by(f.c.artist_id))
    top = sa.select(t.c.item_id).where(
        t.c.user_id == user_id, t.c.item_type == "artist", t.c.snapshot_date == day
    )
    return list(dict.fromkeys([*followed.scalars(), *conn.execute(top.order_by(t.c.item_id)).scalars()]))


# ------------------------------------------------------------------------------------------ units


@dataclass
class Saved:
    """The pages of a saved list fetched (from offset 0); ``grown``: only the first, whose items not
    stored are new ones on top of the stored list; ``unchanged``: only the first, nothing new."""

    part: str
    pages: list[Any]
    grown: bool = False
    unchanged: bool = False


@dataclass
class Profile:
    """``GET /me`` (a type of its own: its fields show the API mode)."""

    data: Any


@dataclass
class Plays:
    """A ``recently-played`` answer and the newest stored play it was asked after."""

    data: Any
    after: datetime | None


@dataclass
class Cursored:
    """Every page of a cursor-paged list (``/me/following``)."""

    pages: list[Any]


def make_unit(
    client: SpotifyClient, kind: str, keys: list[str], known: Known, market: str | None
) -> tuple[Callable[[], Any], Handler]:
    """The fetch and the handler of tasks ``keys`` of ``kind`` (one task a unit)."""
    (key,) = keys
    if kind == PROFILE:
        return (lambda: Profile(client.get("/me"))), _handle_profile
    if kind == TOP:
        _user, kind_name, time_range, _day = key.split("|")
        params: dict[str, Any] = {"time_range": time_range, "limit": PAGE}
        return (lambda: client.get(f"/me/top/{kind_name}", params)), _handle_top
    if kind == USER_PLAYLIST:
        playlist_id = key.split("|")[0]
        return (lambda: catalog.fetch_playlist(client, playlist_id, market, None)), catalog.handle_playlist
    part = key.rsplit("|", 1)[1]
    if part in transform_user.SAVED:
        return (lambda: fetch_saved(client, part, known.saved.get(part, {}))), _saved_handler(known)
    if part == "following":
        return (lambda: fetch_following(client)), _handle_following
    if part == "playlists":
        return (lambda: Cursored(fetch_offset_pages(client, "/me/playlists"))), _playlists_handler(known)
    if part == "plays":
        return (lambda: fetch_plays(client, known.newest_play)), _plays_handler(known)
    raise ValueError(f"unknown task {kind} {key!r}")


def fetch_offset_pages(client: SpotifyClient, path: str, first: Any = None) -> list[Any]:
    """Every page of an offset-paged list, 50 a page, from offset 0 (``first``: offset 0, fetched)."""
    first = first if first is not None else client.get(path, {"limit": PAGE, "offset": 0})
    if problem := pages.shape_problem(first):
        raise InvalidResponseError(f"GET {path}: incomplete response: {problem}")
    return [first] + [
        client.get(path, {"limit": PAGE, "offset": o}) for o in pages.offsets_after(first, PAGE)
    ]


def fetch_saved(client: SpotifyClient, part: str, stored: dict[str, datetime | None]) -> Saved:
    """A saved list: its first page, and the others only when the first shows more than new items
    on top of the stored list."""
    path = "/me/" + part.removeprefix("saved_")
    first = client.get(path, {"limit": PAGE, "offset": 0})
    if problem := pages.shape_problem(first):
        raise InvalidResponseError(f"GET {path}: incomplete response: {problem}")
    entries = transform_user.saved_entries(part, [first])
    new = [obj for obj, added in entries if obj["id"] not in stored or stored[obj["id"]] != added]
    if not new and first["total"] == len(stored):
        return Saved(part, [first], unchanged=True)
    if len(new) < len(entries) and first["total"] == len(stored) + len(new):
        return Saved(part, [first], grown=True)
    return Saved(part, fetch_offset_pages(client, path, first))


def fetch_following(client: SpotifyClient) -> Cursored:
    """Every page of ``/me/following?type=artist`` (cursor ``after``: the last artist id)."""
    params: dict[str, Any] = {"type": "artist", "limit": PAGE}
    fetched = [client.get("/me/following", params)]
    seen: set[str] = set()
    while True:
        body = fetched[-1].get("artists")
        if not isinstance(body, dict) or not body.get("next"):
            return Cursored(fetched)
        after = (body.get("cursors") or {}).get("after")
        if not after or after in seen:  # no cursor, or one given before: the list ends here
            return Cursored(fetched)
        seen.add(after)
        fetched.append(client.get("/me/following", {**params, "after": after}))


def fetch_plays(client: SpotifyClient, newest: datetime | None) -> Plays:
    """The plays after the newest stored one, and that one again when Spotify still keeps it."""
    params: dict[str, Any] = {"limit": PAGE}
    if newest is not None:
        params["after"] = round(newest.timestamp() * 1000) - 1
    return Plays(client.get("/me/player/recently-played", params), newest)


# ------------------------------------------------------------------------------------------ checks


def response_problem(kind: str, result: Any) -> str | None:
    """What makes an answer unfit to store, or ``None``."""
    if kind == USER_PLAYLIST:
        return catalog.response_problem(catalog.PLAYLIST, result)
    if isinstance(result, Profile):
        return None if isinstance(result.data, dict) and result.data.get("id") else "a profile without an id"
    if isinstance(result, Saved | Cursored):
        for page in result.pages:
            body = page.get("artists") if isinstance(page, dict) and "artists" in page else page
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                return "a page without items"
            if not all(isinstance(item, dict) for item in body["items"]):
                return "a null item in a page"
        return None
    data = result.data if isinstance(result, Plays) else result
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return "an answer without items"
    if not all(isinstance(item, dict) for item in data["items"]):
        return "a null item"
    return None


# ------------------------------------------------------------------------------------------ handlers


def _user(keys: list[str]) -> str:
    return keys[0].split("|", 1)[0]


def _handle_profile(keys: list[str], result: Profile, rows: Rows, when: datetime) -> Outcome:
    transform_user.add_profile(rows, result.data, when)
    return Outcome(done=keys)


def _handle_top(keys: list[str], page: Any, rows: Rows, when: datetime) -> Outcome:
    user, kind_name, time_range, day = keys[0].split("|")
    item_type = kind_name.removesuffix("s")
    ids = transform_user.add_top(rows, user, item_type, time_range, date.fromisoformat(day), page, when)
    return Outcome(done=keys, also_done=[("track", ids)] if item_type == "track" and ids else [])


def _saved_handler(known: Known) -> Handler:
    def handle(keys: list[str], result: Saved, rows: Rows, when: datetime) -> Outcome:
        if result.unchanged:
            return Outcome(done=keys)
        stored = known.saved.get(result.part, {})
        entries = transform_user.saved_entries(result.part, result.pages)
        kept = stored if result.grown else {}
        transform_user.add_saved(rows, _user(keys), result.part, entries, kept, when)
        return Outcome(done=keys)

    return handle


def _handle_following(keys: list[str], result: Cursored, rows: Rows, when: datetime) -> Outcome:
    transform_user.add_followed(rows, _user(keys), result.pages, when)
    return Outcome(done=keys)


def readable(playlist: Any, user_id: str, mode: ApiMode | None) -> bool:
    """Whether the app may read the playlist's items: every one in Extended Quota Mode; in
    Development Mode (or the mode not known) only one the user owns or collaborates on (Spotify's
    403 otherwise, never asked for)."""
    if mode is ApiMode.EXTENDED:
        return True
    return bool(playlist.get("collaborative")) or (playlist.get("owner") or {}).get("id") == user_id


def _playlists_handler(known: Known) -> Handler:
    def handle(keys: list[str], result: Cursored, rows: Rows, when: datetime) -> Outcome:
        user = _user(keys)
        listed = transform_user.add_user_playlists(rows, user, result.pages, when)
        wanted = [
            f"{p['id']}|{p.get('snapshot_id') or ''}"
            for p in listed
            if readable(p, user, known.mode) and known.item_snapshots.get(p["id"]) != p.get("snapshot_id")
        ]
        return Outcome(done=keys, follow_up=[(USER_PLAYLIST, wanted)] if wanted else [])

    return handle


def _plays_handler(known: Known) -> Handler:
    def handle(keys: list[str], result: Plays, rows: Rows, when: datetime) -> Outcome:
        user, items, after = _user(keys), result.data["items"], result.after
        added = transform_user.add_plays(rows, user, items, after, when)
        times = [t for t in (transform.parse_time(i.get("played_at")) for i in items) if t is not None]
        if after is not None and times and min(times) > after:
            gap = [after.isoformat(), min(times).isoformat()]
            log.warning(
                "plays may have been missed between %s and %s: Spotify keeps the last 50 plays; run "
                "crawl --me more often (see docs/user-data.md)",
                gap[0],
                gap[1],
            )
            rows.add("_state", {"key": gaps_key(user), "value": json.dumps([*known.gaps, gap])})
        log.info("%d new play(s)", added)
        return Outcome(done=keys)

    return handle


def describe_gaps(conn: sa.Connection, user_ids: Sequence[str]) -> dict[str, list[list[str]]]:
    """The gaps recorded in each user's history (``[after, before]``: no play is known in between)."""
    out = {}
    for user in user_ids:
        value = state.get_state(conn, gaps_key(user))
        if value:
            out[user] = json.loads(value)
    return out
