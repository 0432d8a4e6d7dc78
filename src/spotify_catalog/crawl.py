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

import csv
import enum
import io
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
    UsageError,
)
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import db, schema, state
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

DEFAULT_GROUPS: tuple[str, ...] = ("album", "single", "compilation", "appears_on")
DEFAULT_REFRESH = timedelta(days=7)
MAX_NAME = 200
MAX_REPORTED = 5  # bad lines of an artists file named in the error
MAX_DURATION = 100 * 365 * 86400
ALBUM_TRACKS_PAGE = 50
SEARCH_LIMIT = 10
MODE_STATE_KEY = "api_mode"


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


# ------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class ArtistInput:
    """One artist the user asked for: a Spotify id, or a name to search."""

    value: str
    is_id: bool


CSV_COLUMNS = ("artist", "artist_id", "spotify_id", "id", "uri", "url", "spotify_url", "name", "artist_name")


# a link (scheme://, www., or host.tld/path): never an artist name
_LINK = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}/)", re.IGNORECASE)
# a bare token of letters and digits of both cases, as long as an id give or take: a mistyped id
_ID_LIKE = re.compile(r"(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[0-9A-Za-z]{15,30}")
SHOWN = 60


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut to :data:`SHOWN` characters."""
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def parse_artist(text: str) -> ArtistInput:
    """An id (bare, ``spotify:artist:ID`` or ``open.spotify.com/artist/ID``) or a name. Links to
    other sites and bare tokens that look like an id of the wrong length are refused."""
    value = " ".join(text.split())
    if not value:
        raise UsageError("empty artist")
    if any(ord(ch) < 32 for ch in text.strip("\r\n")):
        raise UsageError(f"control characters in {_shown(text)}")
    looks_like_link = value.lower().startswith(("spotify:", "open.spotify.com")) or bool(_LINK.match(value))
    try:
        return ArtistInput(endpoints.parse_id(value, "artist"), True)
    except UsageError as exc:
        if looks_like_link:
            if "is a" in str(exc):  # a valid URI or URL of another kind: short
                raise UsageError(str(exc)) from None
            raise UsageError(f"not a Spotify artist id, URI or URL: {_shown(value)}") from None
    if _ID_LIKE.fullmatch(value):
        raise UsageError(f"{_shown(value)} looks like a Spotify id but has {len(value)} characters, not 22")
    if len(value) > MAX_NAME:
        raise UsageError(f"artist name longer than {MAX_NAME} characters")
    return ArtistInput(value, False)


def parse_artists_text(
    text: str, source: str = "artists file", *, csv_file: bool = False
) -> list[ArtistInput]:
    """The artists of a file's text: one per line, or a CSV whose header names a column such as
    ``artist``, ``name``, ``id``, ``spotify_id`` or ``uri`` (``csv_file``: it must). Blank lines and
    ``#`` comments are skipped. Bad lines are reported at once, the first few by number
    (:class:`UsageError`); so is a file with none."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    content = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not content:
        raise UsageError(f"{source}: no artists in it")
    header = _csv_header(content[0][1])
    if csv_file and header is None:
        raise UsageError(
            f"{source}: the CSV header {_shown(content[0][1])} has no artist column "
            f"(one of {', '.join(CSV_COLUMNS)})"
        )
    inputs: list[ArtistInput] = []
    bad: list[str] = []
    if header is not None:
        columns = [c for c in CSV_COLUMNS if c in header]
        for number, line in content[1:]:
            if len(header) == 1 and not line.lstrip().startswith('"'):
                fields = [line]  # one column: the whole line, commas and all
            else:
                fields = next(csv.reader(io.StringIO(line)))
            record = dict(zip(header, fields, strict=False))
            cell = next((record[c] for c in columns if (record.get(c) or "").strip()), "")
            try:
                inputs.append(parse_artist(cell))
            except UsageError as exc:
                bad.append(f"line {number}: {exc}")
        if not inputs and not bad:
            raise UsageError(f"{source}: no artists in it (only a CSV header)")
    else:
        for number, line in content:
            try:
                inputs.append(parse_artist(line))
            except UsageError as exc:
                bad.append(f"line {number}: {exc}")
    if bad:
        more = f"; and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise UsageError(f"{source}: {len(bad)} bad line(s): " + "; ".join(bad[:MAX_REPORTED]) + more)
    return inputs


def _csv_header(line: str) -> list[str] | None:
    """The column names if ``line`` is a CSV header naming an artist column (a one-column header
    such as ``artist`` counts too)."""
    fields = [f.strip().lower() for f in next(csv.reader(io.StringIO(line)))]
    return fields if any(f in CSV_COLUMNS for f in fields) else None


def read_artists_file(path: str | Path) -> list[ArtistInput]:
    """:func:`parse_artists_text` of a file (UTF-8, a BOM allowed)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"artists file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"cannot read artists file {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read artists file {path}: {exc.strerror or exc}") from None
    return parse_artists_text(text, source=str(path), csv_file=Path(path).suffix.lower() == ".csv")


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` or a number of seconds."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        raise UsageError(f"not a duration: {text!r} (e.g. 7d, 12h, 30m, 3600)") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise UsageError(f"not a usable duration: {text!r} (0 to 100 years)")
    return timedelta(seconds=seconds)


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
    seconds: float
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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.client = client
        self.options = options
        self.now = now
        self.on_progress = on_progress
        self.command = command
        self.monotonic = monotonic
        self.progress = Progress()
        self.rows_written = 0
        self.failures = 0
        self._saved_mode: str | None = None
        self._groups = ",".join(options.include_groups)
        self._fresh_since = now()
        self._run_id = 0
        self._requests_at_start = 0

    # -------------------------------------------------------------------------------- the run

    def run(self) -> CrawlResult:
        """Crawl; raises ``Stopped`` (budget, quota, long wait), ``Interrupted`` (Ctrl-C),
        ``StorageError``. Every ending is recorded in ``_runs``."""
        started = self.monotonic()
        self._fresh_since = self.now() - self.options.refresh_after
        self._requests_at_start = self.client.requests_made
        try:
            self._run_id = state.start_run(self.engine, command=self.command, now=self.now())
            with self.engine.begin() as conn:
                state.reset_attempts(conn)
                self._saved_mode = state.get_state(conn, MODE_STATE_KEY)
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"database error: {db._short(exc)}") from None
        if self.client.mode is None and self._saved_mode:
            self.client.mode = ApiMode(self._saved_mode)
        pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="crawl")
        try:
            result = self._run(pool, started)
        except BaseException:
            # workers may still be retrying: end them and wait, so nothing runs or logs after the run
            self.client.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return result

    def _run(self, pool: ThreadPoolExecutor, started: float) -> CrawlResult:
        try:
            return self._phases(pool, started)
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
            self._finish("failed", f"database error: {db._short(exc)}")
            raise StorageError(f"database error: {db._short(exc)}") from None
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
            log.error("could not record the end of run %d: %s", self._run_id, db._short(exc))

    def _phases(self, pool: ThreadPoolExecutor, started: float) -> CrawlResult:
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
        unresolved = [n for n in names if resolved.get(n) is None]
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
        album_ids: list[str] = []
        if opts.depth >= Depth.TRACKS:
            album_ids = self._crawl_albums(artist_ids)
            self.progress.albums = len(album_ids)
            self._phase("albums", [("album", album_ids)])
            self._drain(pool, ["album", "album_tracks"])
            self.progress.tracks = len(self._crawl_tracks(album_ids))
        if opts.depth >= Depth.TRACK_DETAILS:
            track_ids = self._crawl_tracks(album_ids)
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
            seconds=self.monotonic() - started,
            failed=int(failed),
            not_found=not_found,
            unresolved=unresolved,
            api_mode=str(self.client.mode) if self.client.mode else None,
        )

    def _resolutions(self, conn: sa.Connection, names: Sequence[str]) -> dict[str, str | None]:
        r = schema.artist_resolutions
        found: dict[str, str | None] = {}
        for chunk in _chunks(list(names)):
            found.update(conn.execute(sa.select(r.c.input, r.c.artist_id).where(r.c.input.in_(chunk))).all())
        return found

    def _crawl_albums(self, artist_ids: Sequence[str]) -> list[str]:
        aa = schema.artist_albums
        albums: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(artist_ids)):
                query = sa.select(aa.c.album_id).where(
                    aa.c.artist_id.in_(chunk), aa.c.album_group.in_(self.options.include_groups)
                )
                albums.update(conn.execute(query).scalars())
        return sorted(albums)

    def _crawl_tracks(self, album_ids: Sequence[str]) -> list[str]:
        t = schema.tracks
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(album_ids)):
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
        self.progress.failed = self.failures
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
        if kind not in ("artist", "album", "track") or self.client.mode is ApiMode.DEVELOPMENT:
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
                self.failures += 1
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
)
"""Errors after which nothing more can be done in this run (a 401 even after renewing the token is
retried later, like a 5xx: a token can expire while in use)."""


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

ENTITY_TYPES = frozenset({"artist", "album", "track"})


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
    if kind in ("artist", "album", "track"):
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


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
