"""The crawler: artists in, a complete catalog out, with the fewest requests, resumable.

The crawl runs in phases; each phase queues its work as tasks in the database (``_tasks``) and
drains them, one request per unit of work and one transaction per response (rows + the task marked
done), so a rerun continues where a stopped or killed run left off:

1. resolve: names -> one search each (the artist in the result is complete); ids -> ``/artists?ids=``
   in chunks of 50 (extended) or ``/artists/{id}`` (development);
2. (depth albums+) each artist's discography pages, as large as the mode allows;
3. (depth tracks+) full albums (chunks of 20 / one each), each with its first 50 tracks, and in the
   same unit of work the ``/albums/{id}/tracks`` pages of the rest, so an album is written whole;
4. (depth track-details) full tracks (chunks of 50 / one each).

A task finished within ``refresh_after`` is not done again. The minimum request count this reaches
is written down in docs/crawl.md.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from spotify_catalog import endpoints, transform
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import (
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    Interrupted,
    InvalidResponseError,
    MustWaitError,
    NotFoundError,
    SpotifyError,
    Stopped,
    StorageError,
    UnreachableError,
    UsageError,
)
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import db, schema, state
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

DEFAULT_GROUPS: tuple[str, ...] = ("album", "single", "compilation", "appears_on")
DEFAULT_REFRESH = timedelta(days=7)
ALBUM_TRACKS_PAGE = 50
SEARCH_LIMIT = 10
MODE_STATE_KEY = "api_mode"
ENTITY_TYPES = frozenset({"artist", "album", "track"})  # the kinds with batch endpoints


class Depth(enum.IntEnum):
    """How far a crawl goes."""

    ARTISTS = 1
    ALBUMS = 2
    TRACKS = 3
    TRACK_DETAILS = 4

    @classmethod
    def parse(cls, text: str) -> Depth:
        try:
            return cls[text.strip().upper().replace("-", "_")]
        except KeyError:
            choices = ", ".join(d.label for d in cls)
            raise UsageError(f"unknown depth {text!r} (choose from {choices})") from None

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


# ------------------------------------------------------------------------------------------ crawl


@dataclass(frozen=True)
class CrawlOptions:
    """What to crawl and how."""

    artists: tuple[ArtistInput, ...]
    depth: Depth = Depth.TRACKS
    include_groups: tuple[str, ...] = DEFAULT_GROUPS
    market: str | None = None
    refresh_after: timedelta = DEFAULT_REFRESH
    workers: int = 1
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not self.artists:
            raise UsageError("no artists to crawl: give --artist or --artists-file")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        for group in self.include_groups:
            if group not in endpoints.INCLUDE_GROUPS:
                choices = ", ".join(endpoints.INCLUDE_GROUPS)
                raise UsageError(f"unknown album group {group!r} (choose from {choices})")
        if not self.include_groups:
            raise UsageError("--include-groups names no group")


@dataclass
class Progress:
    """Where a crawl is, for a progress display."""

    phase: str = "starting"
    done: int = 0
    total: int = 0
    artists: int = 0
    albums: int = 0
    tracks: int = 0
    requests: int = 0
    requests_left: int | None = None
    failed: int = 0


@dataclass
class CrawlResult:
    """How a crawl run ended."""

    run_id: int
    status: str
    requests: int
    rows_written: int
    failed: int = 0
    not_found: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    api_mode: str | None = None


@dataclass
class _Unit:
    """One request's worth of work: tasks ``keys`` of ``kind``."""

    kind: str
    keys: list[str]
    fetch: Callable[[], Any]
    handle: Callable[[list[str], Any, Rows, datetime], _Outcome]
    mode_sensitive: bool


@dataclass
class _Outcome:
    done: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    also_done: list[tuple[str, list[str]]] = field(default_factory=list)
    follow_up: list[tuple[str, list[str]]] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _split(key: str) -> list[str]:
    return key.split("|")


class Crawler:
    """Runs one crawl into ``engine`` (migrated) with ``client``; see the module docstring."""

    def __init__(
        self,
        engine: sa.Engine,
        client: SpotifyClient,
        options: CrawlOptions,
        *,
        now: Callable[[], datetime] = _utcnow,
        on_progress: Callable[[Progress], None] | None = None,
        command: str = "",
    ) -> None:
        self.engine = engine
        self.client = client
        self.options = options
        self.now = now
        self.on_progress = on_progress
        self.command = command
        self.progress = Progress()
        self.rows_written = 0
        self._saved_mode: str | None = None
        self._groups = ",".join(options.include_groups)
        self._run_id = 0
        self._requests_at_start = 0

    # -------------------------------------------------------------------------------- the run

    def run(self) -> CrawlResult:
        """Crawl; raises ``Stopped`` (budget, quota, long wait), ``Interrupted`` (Ctrl-C),
        ``StorageError``. Every ending is recorded in ``_runs``."""
        self._fresh_since = self.now() - self.options.refresh_after
        self._requests_at_start = self.client.requests_made
        try:
            self._run_id = state.start_run(self.engine, command=self.command, now=self.now())
            with self.engine.begin() as conn:
                state.reset_attempts(conn)
                self._saved_mode = state.get_state(conn, MODE_STATE_KEY)
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"database error: {db.describe_error(exc)}") from None
        if self.client.mode is None and self._saved_mode:
            self.client.mode = ApiMode(self._saved_mode)
        pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="crawl")
        try:
            result = self._run(pool)
        except BaseException:
            # workers may still be retrying: end them and wait, so nothing runs or logs after the run
            self.client.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return result

    def _run(self, pool: ThreadPoolExecutor) -> CrawlResult:
        try:
            return self._phases(pool)
        except KeyboardInterrupt:
            self._finish("interrupted", "interrupted (Ctrl-C)")
            raise Interrupted("interrupted; run the same command again to continue") from None
        except MustWaitError as exc:
            self._finish("stopped", str(exc), retry_at=exc.retry_at)
            raise Stopped(f"stopped: {exc.message}", retry_at=exc.retry_at) from None
        except Stopped as exc:
            self._finish("stopped", str(exc), retry_at=exc.retry_at)
            raise Stopped(f"stopped: {exc}; run the same command again to continue") from None
        except sa.exc.SQLAlchemyError as exc:
            self._finish("failed", f"database error: {db.describe_error(exc)}")
            raise StorageError(f"database error: {db.describe_error(exc)}") from None
        except SpotifyError as exc:
            self._finish("failed", str(exc))
            if isinstance(exc, ForbiddenError) and self.client.mode is ApiMode.EXTENDED:
                raise ForbiddenError(
                    exc.status,
                    f"{exc.message}: is the app in Development Mode? (try --mode development)",
                    url=exc.url,
                ) from None
            raise

    def _requests(self) -> int:
        return self.client.requests_made - self._requests_at_start

    def _finish(self, status: str, reason: str | None, retry_at: datetime | None = None) -> None:
        end = state.RunEnd(
            status=status,
            requests=self._requests(),
            rows_written=self.rows_written,
            reason=reason,
            retry_at=retry_at,
            api_mode=str(self.client.mode) if self.client.mode else None,
        )
        try:
            state.finish_run(self.engine, self._run_id, end, now=self.now())
        except sa.exc.SQLAlchemyError as exc:  # the database went away: the run stays "running"
            log.error("could not record the end of run %d: %s", self._run_id, db.describe_error(exc))

    def _phases(self, pool: ThreadPoolExecutor) -> CrawlResult:
        opts = self.options
        names = list(dict.fromkeys(a.value for a in opts.artists if not a.is_id))
        ids = list(dict.fromkeys(a.value for a in opts.artists if a.is_id))

        self._phase("resolving artists", [("search", names)])
        self._drain(pool, ["search"])
        self._phase("resolving artists", [("artist", ids)])
        self._drain(pool, ["artist"])
        with self.engine.connect() as conn:
            resolved = self._resolutions(conn, names)
            artist_states = state.task_states(conn, "artist", ids)
        # searched and nothing found; a name whose search failed (network, 5xx) is not unresolved
        unresolved = [n for n in names if n in resolved and resolved[n] is None]
        not_found = [i for i in ids if artist_states.get(i) == state.FAILED]
        artist_ids = list(
            dict.fromkeys(
                [a for a in resolved.values() if a] + [i for i in ids if artist_states.get(i) == "done"]
            )
        )
        self.progress.artists = len(artist_ids)

        if opts.depth >= Depth.ALBUMS:
            self._phase("artist albums", [("artist_albums", [f"{a}|{self._groups}|0" for a in artist_ids])])
            self._drain(pool, ["artist_albums"])
        if opts.depth >= Depth.TRACKS:
            album_ids = self._crawl_albums(artist_ids)
            self.progress.albums = len(album_ids)
            self._phase("albums", [("album", album_ids)])
            self._drain(pool, ["album", "album_tracks"])
            track_ids = self._crawl_tracks(album_ids)
            self.progress.tracks = len(track_ids)
        if opts.depth >= Depth.TRACK_DETAILS:
            self._phase("tracks", [("track", track_ids)])
            self._drain(pool, ["track"])

        with self.engine.connect() as conn:
            failed = conn.execute(
                sa.select(sa.func.count())
                .select_from(schema.tasks)
                .where(schema.tasks.c.state == state.PENDING, schema.tasks.c.attempts >= opts.max_attempts)
            ).scalar_one()
        status = "done" if not failed else "incomplete"
        reason = None if not failed else f"{failed} task(s) failed {opts.max_attempts} times"
        self._finish(status, reason)
        self.progress.phase = "finished"
        self._report()
        return CrawlResult(
            run_id=self._run_id,
            status=status,
            requests=self._requests(),
            rows_written=self.rows_written,
            failed=int(failed),
            not_found=not_found,
            unresolved=unresolved,
            api_mode=str(self.client.mode) if self.client.mode else None,
        )

    def _resolutions(self, conn: sa.Connection, names: Sequence[str]) -> dict[str, str | None]:
        r = schema.artist_resolutions
        found: dict[str, str | None] = {}
        for chunk in endpoints.chunked(names, 500):
            found.update(conn.execute(sa.select(r.c.input, r.c.artist_id).where(r.c.input.in_(chunk))).all())
        return found

    def _crawl_albums(self, artist_ids: Sequence[str]) -> list[str]:
        aa = schema.artist_albums
        albums: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in endpoints.chunked(artist_ids, 500):
                query = sa.select(aa.c.album_id).where(
                    aa.c.artist_id.in_(chunk), aa.c.album_group.in_(self.options.include_groups)
                )
                albums.update(conn.execute(query).scalars())
        return sorted(albums)

    def _crawl_tracks(self, album_ids: Sequence[str]) -> list[str]:
        t = schema.tracks
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in endpoints.chunked(album_ids, 500):
                found.update(conn.execute(sa.select(t.c.id).where(t.c.album_id.in_(chunk))).scalars())
        return sorted(found)

    def _phase(self, name: str, seeds: list[tuple[str, list[str]]]) -> None:
        with self.engine.begin() as conn:
            for kind, keys in seeds:
                state.ensure_tasks(conn, kind, keys, now=self.now(), fresh_since=self._fresh_since)
        self.progress.phase = name
        self.progress.done = 0
        self.progress.total = sum(len(keys) for _, keys in seeds)
        self._report()

    def _report(self) -> None:
        self.progress.requests = self._requests()
        budget = self.client.request_budget
        self.progress.requests_left = None if budget is None else max(0, budget - self.client.requests_made)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -------------------------------------------------------------------------------- work units

    def _drain(self, pool: ThreadPoolExecutor, kinds: Sequence[str]) -> None:
        """Do the pending tasks of ``kinds`` (and those they add) until none is left to try."""
        while True:
            with self.engine.connect() as conn:
                pending = [
                    (kind, state.pending_keys(conn, kind, max_attempts=self.options.max_attempts))
                    for kind in kinds
                ]
            pending = [(kind, keys) for kind, keys in pending if keys]
            if not pending:
                return
            self._execute(pool, self._units(pending))

    def _units(self, pending: list[tuple[str, list[str]]]) -> Iterator[_Unit]:
        for kind, keys in pending:
            position = 0
            while position < len(keys):
                size = self._batch_size(kind)
                chunk = keys[position : position + size]
                position += size
                yield self._unit(kind, chunk)

    def _batch_size(self, kind: str) -> int:
        if kind not in ENTITY_TYPES or self.client.mode is ApiMode.DEVELOPMENT:
            return 1
        return endpoints.BATCH_MAX[kind]

    def _execute(self, pool: ThreadPoolExecutor, units: Iterator[_Unit]) -> None:
        """Fetch units on the pool (at most ``workers`` at a time), write each response in the
        coordinating thread."""
        in_flight: dict[Future[Any], _Unit] = {}
        stop: BaseException | None = None
        held: _Unit | None = None
        exclusive = False

        def submit() -> None:
            nonlocal held, exclusive
            while stop is None and not exclusive and len(in_flight) < self.options.workers:
                unit = held or next(units, None)
                held = None
                if unit is None:
                    return
                if unit.mode_sensitive and self.client.mode is None:
                    if in_flight:  # learn the API mode from this request alone
                        held = unit
                        return
                    exclusive = True
                in_flight[pool.submit(_fetch_checked, unit)] = unit

        submit()
        while in_flight:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            done: list[tuple[_Unit, Any]] = []
            for future in finished:
                unit = in_flight.pop(future)
                exclusive = False
                try:
                    done.append((unit, future.result()))
                except STOPS as exc:
                    stop = stop or exc  # nothing more can be done in this run
                except SpotifyError as exc:
                    self._failed(unit, exc)
            stop = stop or next((r.stop for _, r in done if getattr(r, "stop", None)), None)
            for unit, result in done:
                self._write(unit, result)
            submit()  # after the writes: a kill loses at most the requests in flight
        if stop is not None:
            raise stop

    def _write(self, unit: _Unit, result: Any) -> None:
        when = self.now()
        rows = Rows()
        outcome = unit.handle(unit.keys, result, rows, when)
        with self.engine.begin() as conn:
            self.rows_written += db.write_rows(conn, rows)
            state.finish_tasks(conn, unit.kind, outcome.done, now=when, run_id=self._run_id)
            if outcome.not_found:
                state.finish_tasks(
                    conn,
                    unit.kind,
                    outcome.not_found,
                    now=when,
                    run_id=self._run_id,
                    state=state.FAILED,
                    error="not found",
                )
            for kind, keys in outcome.also_done:
                state.finish_tasks(conn, kind, keys, now=when, run_id=self._run_id)
            for kind, keys in outcome.follow_up:
                state.ensure_tasks(conn, kind, keys, now=when, fresh_since=self._fresh_since)
            mode = self.client.mode
            if mode is not None and str(mode) != self._saved_mode:
                state.set_state(conn, MODE_STATE_KEY, str(mode))
                self._saved_mode = str(mode)
        self.progress.done += len(unit.keys)
        self.progress.total += sum(len(keys) for _, keys in outcome.follow_up)
        self._report()

    def _failed(self, unit: _Unit, exc: SpotifyError) -> None:
        when = self.now()
        with self.engine.begin() as conn:
            if isinstance(exc, NotFoundError | BadRequestError):
                log.warning("%s %s: %s", unit.kind, ",".join(unit.keys), exc)
                state.finish_tasks(
                    conn,
                    unit.kind,
                    unit.keys,
                    now=when,
                    run_id=self._run_id,
                    state=state.FAILED,
                    error=str(exc),
                )
            else:
                log.warning("%s %s failed, will retry: %s", unit.kind, ",".join(unit.keys), exc)
                state.retry_later(conn, unit.kind, unit.keys, error=str(exc), now=when)
                self.progress.failed += 1
        self._report()

    def _unit(self, kind: str, keys: list[str]) -> _Unit:
        client, market = self.client, self.options.market
        if kind == "search":
            (name,) = keys
            return _Unit(
                kind,
                keys,
                lambda: endpoints.search(client, name, "artist", market=market, limit=SEARCH_LIMIT),
                _handle_search,
                mode_sensitive=False,
            )
        if kind == "artist":
            return _Unit(kind, keys, lambda: endpoints.get_artists(client, keys), _handle_artists, True)
        if kind == "album":

            def fetch_albums() -> _Albums:
                return _fetch_albums(client, keys, market)

            return _Unit(kind, keys, fetch_albums, _handle_albums, True)
        if kind == "track":
            return _Unit(
                kind, keys, lambda: endpoints.get_tracks(client, keys, market=market), _handle_tracks, True
            )
        if kind == "artist_albums":
            (key,) = keys
            artist_id, groups, offset = _split(key)

            def fetch_page() -> Any:
                limit = endpoints.mode_limit(client.mode)
                return endpoints.get_artist_albums(
                    client, artist_id, include_groups=groups, market=market, limit=limit, offset=int(offset)
                )

            return _Unit(kind, keys, fetch_page, _handle_artist_albums, True)
        if kind == "album_tracks":
            (key,) = keys
            album_id, offset = _split(key)
            return _Unit(
                kind,
                keys,
                lambda: endpoints.get_album_tracks(
                    client, album_id, market=market, limit=ALBUM_TRACKS_PAGE, offset=int(offset)
                ),
                _handle_album_tracks,
                mode_sensitive=False,
            )
        raise ValueError(f"unknown task kind {kind!r}")


# ------------------------------------------------------------------------------------------ albums

STOPS: tuple[type[SpotifyError | Stopped], ...] = (
    MustWaitError,
    Stopped,
    ForbiddenError,
    AuthenticationError,
    UnreachableError,
)
"""Errors after which nothing more can be done in this run (a 401 even after renewing the token is
retried later, like a 5xx: a token can expire while in use). ``UnreachableError`` (an outage) leaves
the tasks pending with no attempt counted: the run is recorded ``failed`` and the error re-raised."""


@dataclass
class _Albums:
    """Full albums (``None`` for unknown ids) and the further track pages fetched for them (key
    ``album_id|offset``); ``stop``: why the pages are not all there."""

    items: list[Any]
    pages: dict[str, Any] = field(default_factory=dict)
    stop: BaseException | None = None


def _fetch_albums(client: SpotifyClient, keys: list[str], market: str | None) -> _Albums:
    """Albums, then the rest of their tracks, so an album is written whole in one transaction. A stop
    or a failure half-way keeps what came (the missing pages become tasks of their own)."""
    result = _Albums(list(endpoints.get_albums(client, keys, market=market)))
    try:
        for album in result.items:
            for key in _more_track_pages(album) if album else []:
                album_id, offset = _split(key)
                result.pages[key] = endpoints.get_album_tracks(
                    client, album_id, market=market, limit=ALBUM_TRACKS_PAGE, offset=int(offset)
                )
    except STOPS as exc:
        result.stop = exc
    except SpotifyError as exc:
        log.warning("tracks of albums %s: %s (queued for later)", ",".join(keys), exc)
    return result


# ------------------------------------------------------------------------------------------ checks



def _fetch_checked(unit: _Unit) -> Any:
    """The unit's response, refused (:class:`InvalidResponseError`, retried later) if it is not whole."""
    result = unit.fetch()
    problem = response_problem(unit.kind, result)
    if problem is not None:
        raise InvalidResponseError(f"{unit.kind} {','.join(unit.keys)}: incomplete response: {problem}")
    return result


def response_problem(kind: str, result: Any) -> str | None:
    """What makes a response unfit to store, or ``None``: an artist, album or track without its
    ``id``, a page without ``items`` or ``total``, a batch item that is not an object. Extra fields
    are fine."""
    if isinstance(result, _Albums):
        return response_problem("artist", result.items) or _shape_problem(list(result.pages.values()))
    if kind in ENTITY_TYPES:
        if not isinstance(result, list) or not all(item is None or isinstance(item, dict) for item in result):
            return "expected a list of objects"
    elif not isinstance(result, dict):
        return "expected a JSON object"
    elif kind == "search" and not isinstance(result.get("artists"), dict):
        return "no artists page"
    return _shape_problem(result)


def _shape_problem(data: Any) -> str | None:
    if isinstance(data, list):
        return next((p for p in map(_shape_problem, data) if p), None)
    if not isinstance(data, dict):
        return None
    if data.get("type") in ENTITY_TYPES and not (isinstance(data.get("id"), str) and data["id"]):
        return f"{data['type']} without an id"
    if "items" in data and not (isinstance(data["items"], list) and isinstance(data.get("total"), int)):
        return "page without items or total"
    return next((p for p in map(_shape_problem, data.values()) if p), None)


# ------------------------------------------------------------------------------------------ handlers
# pure: (task keys, response) -> rows and what became of the tasks


def _handle_search(keys: list[str], result: Any, rows: Rows, when: datetime) -> _Outcome:
    (name,) = keys
    page = result.get("artists") or {}
    chosen = transform.add_resolution(rows, name, list(page.get("items") or []), when)
    return _Outcome(done=keys, also_done=[("artist", [chosen])] if chosen else [])


def _entities(add: Callable[..., None]) -> Callable[[list[str], Any, Rows, datetime], _Outcome]:
    def handle(keys: list[str], items: Any, rows: Rows, when: datetime) -> _Outcome:
        outcome = _Outcome()
        for key, item in zip(keys, items, strict=True):
            if item is None:
                outcome.not_found.append(key)
            else:
                add(rows, item, transform.FULL, when)
                outcome.done.append(key)
        return outcome

    return handle


def _more_track_pages(album: Any) -> list[str]:
    page = album.get("tracks") or {}
    start = int(page.get("offset") or 0) + len(page.get("items") or [])
    total = int(page.get("total") or 0)
    return [f"{album['id']}|{offset}" for offset in range(start, total, ALBUM_TRACKS_PAGE)]


def _handle_artist_albums(keys: list[str], page: Any, rows: Rows, when: datetime) -> _Outcome:
    (key,) = keys
    artist_id, groups, offset = _split(key)
    single_group = groups if "," not in groups else None
    transform.add_artist_albums_page(rows, artist_id, page, when, default_group=single_group)
    outcome = _Outcome(done=keys)
    if int(offset) == 0:
        step = int(page.get("limit") or len(page.get("items") or []) or 1)
        total = int(page.get("total") or 0)
        outcome.follow_up.append(
            ("artist_albums", [f"{artist_id}|{groups}|{o}" for o in range(step, total, step)])
        )
    return outcome


def _handle_album_tracks(keys: list[str], page: Any, rows: Rows, when: datetime) -> _Outcome:
    (key,) = keys
    album_id, _offset = _split(key)
    transform.add_album_tracks_page(rows, album_id, page, when)
    return _Outcome(done=keys)


_handle_artists = _entities(transform.add_artist)
_handle_album_items = _entities(transform.add_album)


def _handle_albums(keys: list[str], result: _Albums, rows: Rows, when: datetime) -> _Outcome:
    """Full albums with every page of their tracks fetched in the same unit; pages a stop left out
    stay queued as ``album_tracks`` tasks."""
    outcome = _handle_album_items(keys, result.items, rows, when)
    for album in result.items:
        if album is None:
            continue
        for key in _more_track_pages(album):
            page = result.pages.get(key)
            if page is None:
                outcome.follow_up.append(("album_tracks", [key]))
            else:
                transform.add_album_tracks_page(rows, album["id"], page, when)
                outcome.also_done.append(("album_tracks", [key]))
    return outcome


_handle_tracks = _entities(transform.add_track)
