"""The crawler: artists in, a complete catalog out, with the fewest requests, resumable.

The crawl runs in phases; each phase queues its work as tasks in the database (``_tasks``) and
drains them, one request per unit of work and one transaction per response (rows + the task marked
done), so a rerun continues where a stopped or killed run left off:

1. resolve: names -> one search each (the artist in the result is complete); ids -> ``/artists?ids=``
   in chunks of 50 (extended) or ``/artists/{id}`` (development, or the mode not known yet);
2. (depth albums+) each artist's discography pages, as large as the mode allows;
3. (depth tracks+) full albums (chunks of 20 / one each), each with its first 50 tracks, and in the
   same unit of work the ``/albums/{id}/tracks`` pages of the rest, so an album is written whole;
4. (depth track-details) full tracks (chunks of 50 / one each).

A task finished within ``refresh_after`` is not done again. The minimum request count this reaches
is written down in docs/crawl.md.

The API mode, when not given, is read from the first full artist (album, track) object a response
carries: Development Mode leaves out ``popularity`` and ``followers``. So learning it costs no request
of its own. A given mode (``--mode``) that the answers contradict stops the run (:class:`WrongModeError`).
The mode is saved in ``_state`` in a transaction of its own the moment it is known; when it changes,
tasks that failed under the old one are pending again.
"""

from __future__ import annotations

import enum
import itertools
import json
import logging
import time
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
    WrongModeError,
    format_time,
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
OPTIONS_STATE_KEY = "crawl_options"  # what the last crawl was asked for, for ``status``
NOT_FOUND = "not found"
CLAIM_POLL = 0.5  # seconds between looks at tasks another crawl holds
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
    daily_budget: int | None = None
    """At most this many requests in a rolling 24 h, counted from ``_runs`` (``None``: no limit)."""
    force: bool = False
    """Run even before the ``retry_at`` Spotify gave the last run."""

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
        if self.daily_budget is not None and self.daily_budget < 1:
            raise UsageError("--daily-budget must be at least 1")

    def to_json(self) -> str:
        """What ``status`` needs to estimate the rest of this crawl."""
        return json.dumps(
            {
                "depth": self.depth.label,
                "include_groups": list(self.include_groups),
                "market": self.market,
                "artists": [{"value": a.value, "is_id": a.is_id} for a in self.artists],
            }
        )


@dataclass
class Progress:
    """Where a crawl is, for a progress display. ``event``: ``start`` (of a phase), ``update``,
    ``end`` (of a phase), ``finished``."""

    phase: str = "starting"
    event: str = "start"
    done: int = 0
    total: int = 0
    requests: int = 0
    requests_left: int | None = None
    rows_written: int = 0
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
    unresolved: list[str] = field(default_factory=list)


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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.client = client
        self.options = options
        self.now = now
        self.on_progress = on_progress
        self.command = command
        self.sleep = sleep
        self.progress = Progress()
        self.rows_written = 0
        self.run_id: int | None = None
        """The ``_runs`` id of this run once it started (``None`` if it stopped before starting)."""
        self._saved_mode: str | None = None
        self._given_mode: ApiMode | None = None
        self._mode_confirmed = False
        self._groups = ",".join(options.include_groups)
        self._requests_at_start = 0
        self._daily_limit: int | None = None  # the client's request count at which the daily budget is spent
        self._unresolved: list[str] = []
        self._not_found: list[str] = []

    @property
    def _run_id(self) -> int:
        return self.run_id or 0

    # -------------------------------------------------------------------------------- the run

    def run(self) -> CrawlResult:
        """Crawl; raises ``Stopped`` (budget, quota, long wait), ``Interrupted`` (Ctrl-C),
        ``WrongModeError``, ``StorageError``. Every run that starts is recorded in ``_runs``; one
        refused at once (before Spotify's ``retry_at``, the daily budget spent) is not."""
        self._fresh_since = self.now() - self.options.refresh_after
        self._requests_at_start = self.client.requests_made
        self._given_mode = self.client.mode
        try:
            self._start()
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"database error: {db.describe_error(exc)}") from None
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

    def _start(self) -> None:
        """Checks before any request, then the run's row and what the crawl was asked for."""
        now, opts = self.now(), self.options
        with self.engine.begin() as conn:
            state.lock_runs(conn)
            for run_id in state.abandon_dead_runs(conn, now=now):
                log.warning("run %d ended without recording it (killed?): marked abandoned", run_id)
            others = state.running(conn)
            if others and conn.dialect.name == "sqlite":
                other = others[0]
                raise Stopped(
                    f"another crawl is writing into this SQLite database (run {other.id}, pid {other.pid} "
                    f"on {other.host}, started {format_time(other.started_at)}); nothing was sent: run "
                    "again when it has finished, or use PostgreSQL or MariaDB to crawl with several processes"
                )
            for other in others:
                log.info("sharing the work with run %d (pid %s on %s)", other.id, other.pid, other.host)
            wait_until = None if opts.force else state.retry_at(conn, now)
            if wait_until is not None:
                raise Stopped(
                    "Spotify asked the last run to wait (quota or a long Retry-After); nothing was sent "
                    "(--force to try now)",
                    retry_at=wait_until,
                )
            if opts.daily_budget is not None:
                used = state.requests_since(conn, now - state.WINDOW)
                left = opts.daily_budget - used
                if left <= 0:
                    raise Stopped(
                        f"{state.BUDGET_REASON} of {opts.daily_budget} requests used up ({used} in the last "
                        "24 h); nothing was sent",
                        retry_at=state.budget_frees_at(conn, now, opts.daily_budget),
                    )
                self._daily_limit = self.client.requests_made + left
                budget = self.client.request_budget
                if budget is None or budget > self._daily_limit:
                    self.client.request_budget = self._daily_limit
            self._saved_mode = state.get_state(conn, MODE_STATE_KEY)
            if self._given_mode is None:
                known = self._saved_mode or _stored_mode(conn)
                if known:
                    self.client.mode = ApiMode(known)
            elif self._saved_mode and self._saved_mode != str(self._given_mode):
                # what the other mode refused is asked again; a wrong --mode is caught by the answers
                state.reopen_failed(conn, keep_error=NOT_FOUND)
            state.reset_attempts(conn)
            state.set_state(conn, OPTIONS_STATE_KEY, opts.to_json())
        self.run_id = state.start_run(self.engine, command=self.command, now=now)

    def _run(self, pool: ThreadPoolExecutor) -> CrawlResult:
        try:
            return self._phases(pool)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (errors.Terminated)
            stop = Interrupted.by(exc, "run the same command again to continue")
            self._finish("interrupted", f"interrupted ({stop.cause})")
            raise stop from None
        except MustWaitError as exc:
            self._finish("stopped", str(exc), retry_at=exc.retry_at)
            raise Stopped(f"stopped: {exc.message}", retry_at=exc.retry_at) from None
        except Stopped as exc:
            if self._daily_limit is not None and self.client.requests_made >= self._daily_limit:
                reason = f"{state.BUDGET_REASON} of {self.options.daily_budget} requests used up"
                frees = self._budget_frees_at()
                self._finish("stopped", reason, retry_at=frees)
                raise Stopped(f"stopped: {reason}", retry_at=frees) from None
            self._finish("stopped", str(exc), retry_at=exc.retry_at)
            raise Stopped(f"stopped: {exc}; run the same command again to continue") from None
        except WrongModeError as exc:
            self._finish("failed", str(exc))
            raise
        except sa.exc.SQLAlchemyError as exc:
            self._finish("failed", f"database error: {db.describe_error(exc)}")
            raise StorageError(f"database error: {db.describe_error(exc)}") from None
        except SpotifyError as exc:
            self._finish("failed", str(exc))
            raise

    def _budget_frees_at(self) -> datetime | None:
        assert self.options.daily_budget is not None
        now = self.now()
        with self.engine.begin() as conn:
            self._touch(conn, now)
            return state.budget_frees_at(conn, now, self.options.daily_budget)

    def _requests(self) -> int:
        return self.client.requests_made - self._requests_at_start

    def _touch(self, conn: sa.Connection, now: datetime, rows_written: int | None = None) -> None:
        rows = self.rows_written if rows_written is None else rows_written
        state.touch_run(conn, self._run_id, requests=self._requests(), rows_written=rows, now=now)

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
        except sa.exc.SQLAlchemyError as exc:  # the database went away: the next run marks it abandoned
            log.error("could not record the end of run %d: %s", self._run_id, db.describe_error(exc))

    # -------------------------------------------------------------------------------- the mode

    def _observe(self, unit: _Unit, result: Any) -> None:
        """Learn or check the API mode from a response (see the module docstring)."""
        seen = observed_mode(unit.kind, result)
        if seen is None:
            return
        current = self.client.mode
        if current is not None and current is not seen:
            if self._given_mode is not None:
                raise WrongModeError(str(self._given_mode), str(seen))
            log.warning("the API answers as an app in %s mode now (it was %s)", seen, current)
        if current is not seen:
            self.client.mode = seen
        self._mode_confirmed = True

    def _refused_by_mode(self, unit: _Unit, exc: SpotifyError) -> bool:
        """Whether ``exc`` says the app is in Development Mode while the client thinks extended: a batch
        endpoint answered 403, or a discography page refused a limit above 10. A given mode stops the
        run; a learnt one is corrected and the unit is tried again."""
        if self.client.mode is not ApiMode.EXTENDED:
            return False
        batch_refused = isinstance(exc, ForbiddenError) and unit.kind in ENTITY_TYPES
        limit_refused = isinstance(exc, BadRequestError) and unit.kind == "artist_albums"
        limit_refused = limit_refused and "limit" in exc.message.lower()
        if not (batch_refused or limit_refused):
            return False
        if self._given_mode is not None:
            raise WrongModeError(str(self._given_mode), str(ApiMode.DEVELOPMENT))
        log.warning("the API answers as an app in development mode now (it was extended)")
        self.client.mode = ApiMode.DEVELOPMENT
        self._mode_confirmed = True
        return True

    def _save_mode(self) -> None:
        """Save a learnt or confirmed mode at once, in a transaction of its own; when it changed, tasks
        that failed under the old mode are pending again."""
        mode = self.client.mode
        if mode is None or str(mode) == self._saved_mode:
            return
        if self._given_mode is not None and not self._mode_confirmed:
            return  # a given mode is saved only once an answer agreed with it
        with self.engine.begin() as conn:
            state.set_state(conn, MODE_STATE_KEY, str(mode))
            if self._saved_mode is not None:
                reopened = state.reopen_failed(conn, keep_error=NOT_FOUND)
                if reopened:
                    log.info("API mode now %s: %d failed task(s) pending again", mode, reopened)
        self._saved_mode = str(mode)

    def _phases(self, pool: ThreadPoolExecutor) -> CrawlResult:
        opts = self.options
        names = list(dict.fromkeys(a.value for a in opts.artists if not a.is_id))
        ids = list(dict.fromkeys(a.value for a in opts.artists if a.is_id))

        self._phase("resolving names", [("search", names)])
        self._drain(pool, ["search"])
        self._phase("resolving ids", [("artist", ids)])
        self._drain(pool, ["artist"])
        with self.engine.connect() as conn:
            resolved = self._resolutions(conn, names)
            artist_states = state.task_states(conn, "artist", ids)
        artist_ids = list(
            dict.fromkeys(
                [a for a in resolved.values() if a] + [i for i in ids if artist_states.get(i) == "done"]
            )
        )

        if opts.depth >= Depth.ALBUMS:
            self._phase("artist albums", [("artist_albums", [f"{a}|{self._groups}|0" for a in artist_ids])])
            self._drain(pool, ["artist_albums"])
        if opts.depth >= Depth.TRACKS:
            album_ids = self._crawl_albums(artist_ids)
            self._phase("albums", [("album", album_ids)])
            self._drain(pool, ["album", "album_tracks"])
            track_ids = self._crawl_tracks(album_ids)
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
        self._mode_confirmed = True  # no answer contradicted it
        self._save_mode()
        self._finish(status, reason)
        self.progress.phase = "finished"
        self._report("finished")
        return CrawlResult(
            run_id=self._run_id,
            status=status,
            requests=self._requests(),
            rows_written=self.rows_written,
            failed=int(failed),
            not_found=self._not_found,
            unresolved=self._unresolved,
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
            pending = sum(len(state.pending_keys(conn, kind)) for kind, _ in seeds)
        self.progress.phase = name
        self.progress.done = 0
        self.progress.total = pending
        self._report("start")

    def _report(self, event: str = "update") -> None:
        self.progress.event = event
        self.progress.requests = self._requests()
        self.progress.rows_written = self.rows_written
        budget = self.client.request_budget
        self.progress.requests_left = None if budget is None else max(0, budget - self.client.requests_made)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -------------------------------------------------------------------------------- work units

    def _drain(self, pool: ThreadPoolExecutor, kinds: Sequence[str]) -> None:
        """Do the pending tasks of ``kinds`` (and those they add) until none is left to try. Tasks
        are claimed a few units at a time, so that crawls sharing the database share the work; the
        phase ends when no task is left that another live crawl holds either."""
        while True:
            claimed = False
            for kind in kinds:
                units = self._units(kind)
                first = next(units, None)
                if first is not None:
                    claimed = True
                    self._execute(pool, itertools.chain([first], units))
            if claimed:
                continue
            with self.engine.connect() as conn:
                held = state.held_by_others(
                    conn, kinds, run_id=self._run_id, now=self.now(), max_attempts=self.options.max_attempts
                )
            if not held:
                self._report("end")
                return
            self.sleep(CLAIM_POLL)  # another crawl is fetching them: wait for its answers

    def _units(self, kind: str) -> Iterator[_Unit]:
        """Units of claimed tasks; claims more while there are (one key while the mode is unknown)."""
        while True:
            size = self._batch_size(kind)
            unknown_mode = kind in ENTITY_TYPES and self.client.mode is None
            with self.engine.begin() as conn:
                keys = state.claim(
                    conn,
                    kind,
                    1 if unknown_mode else size * self.options.workers,
                    run_id=self._run_id,
                    now=self.now(),
                    max_attempts=self.options.max_attempts,
                )
            if not keys:
                return
            for start in range(0, len(keys), size):
                yield self._unit(kind, keys[start : start + size])

    def _batch_size(self, kind: str) -> int:
        if kind not in ENTITY_TYPES or self.client.mode is not ApiMode.EXTENDED:
            return 1  # the mode unknown: one item, whose answer tells the mode
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
                    result = future.result()
                except SpotifyError as exc:
                    stop = stop or self._failed(unit, exc)
                except Stopped as exc:
                    stop = stop or exc  # nothing more can be done in this run
                else:
                    done.append((unit, result))
                    try:
                        self._observe(unit, result)
                    except WrongModeError as exc:
                        stop = stop or exc
            self._save_mode()
            stop = stop or next((r.stop for _, r in done if getattr(r, "stop", None)), None)
            for unit, result in done:  # every response that arrived is written, whatever stops the run
                self._write(unit, result)
            submit()  # after the writes: a kill loses at most the requests in flight
        if stop is not None:
            raise stop

    def _write(self, unit: _Unit, result: Any) -> None:
        when = self.now()
        rows = Rows()
        outcome = unit.handle(unit.keys, result, rows, when)
        self.rows_written += db.in_transaction(
            self.engine, lambda conn: self._write_outcome(conn, unit, rows, outcome, when)
        )
        for name in outcome.unresolved:  # said in the run that searched it
            log.warning("no artist found for %r", name)
            self._unresolved.append(name)
        if unit.kind == "artist":
            for artist_id in outcome.not_found:
                log.warning("artist %s not found", artist_id)
                self._not_found.append(artist_id)
        self.progress.done += len(unit.keys)
        self.progress.total += sum(len(keys) for _, keys in outcome.follow_up)
        self._report()

    def _write_outcome(
        self, conn: sa.Connection, unit: _Unit, rows: Rows, outcome: _Outcome, when: datetime
    ) -> int:
        """One response's rows and what became of its tasks, in one transaction; rows written."""
        written = db.write_rows(conn, rows)
        state.finish_tasks(conn, unit.kind, outcome.done, now=when, run_id=self._run_id)
        if outcome.not_found:
            state.finish_tasks(
                conn,
                unit.kind,
                outcome.not_found,
                now=when,
                run_id=self._run_id,
                state=state.FAILED,
                error=NOT_FOUND,
            )
        for kind, keys in outcome.also_done:
            state.finish_tasks(conn, kind, keys, now=when, run_id=self._run_id)
        for kind, keys in outcome.follow_up:
            state.ensure_tasks(conn, kind, keys, now=when, fresh_since=self._fresh_since)
        self._touch(conn, when, rows_written=self.rows_written + written)
        return written

    def _failed(self, unit: _Unit, exc: SpotifyError) -> BaseException | None:
        """Record a unit's error; returns it if nothing more can be done in this run."""
        try:
            if self._refused_by_mode(unit, exc):
                return None  # still pending: asked again the right way
        except WrongModeError as wrong:
            return wrong
        if isinstance(exc, STOPS):
            return exc
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
        return None

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
            return _Unit(kind, keys, lambda: _get_items(client, kind, keys, market), _handle_artists, True)
        if kind == "album":

            def fetch_albums() -> _Albums:
                return _fetch_albums(client, keys, market)

            return _Unit(kind, keys, fetch_albums, _handle_albums, True)
        if kind == "track":
            return _Unit(kind, keys, lambda: _get_items(client, kind, keys, market), _handle_tracks, True)
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
    result = _Albums(_get_items(client, "album", keys, market))
    problem = response_problem("album", result.items)
    if problem is not None:  # no further pages for albums that are not whole
        raise InvalidResponseError(f"album {','.join(keys)}: incomplete response: {problem}")
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


def _get_items(client: SpotifyClient, kind: str, keys: list[str], market: str | None) -> list[Any]:
    """Artists, albums or tracks in the order of ``keys`` (``None``: not found): a batch in extended
    mode, else one item by its single-item endpoint, whose answer tells the mode when it is unknown."""
    market = None if kind == "artist" else market
    if client.mode is ApiMode.EXTENDED or len(keys) > 1:
        return endpoints.get_several(client, kind, keys, market)
    try:
        return [endpoints.get_one(client, kind, keys[0], market)]
    except NotFoundError:
        return [None]


def _stored_mode(conn: sa.Connection) -> str | None:
    """The mode the stored full artists were fetched in (a database crawled before modes were saved)."""
    a = schema.artists
    query = sa.select(a.c.popularity).where(a.c.detail == transform.FULL).limit(20)
    rows = conn.execute(query).scalars().all()
    if not rows:
        return None
    return str(ApiMode.EXTENDED if any(p is not None for p in rows) else ApiMode.DEVELOPMENT)


def observed_mode(kind: str, result: Any) -> ApiMode | None:
    """The API mode a response shows, or ``None``: full artists, albums and tracks of a Development-Mode
    app have no ``popularity`` (nor artists ``followers``, albums ``label``)."""
    if isinstance(result, _Albums):
        items: Any = result.items
    elif kind == "search" and isinstance(result, dict):
        items = (result.get("artists") or {}).get("items")
    elif kind in ENTITY_TYPES:
        items = result
    else:
        return None
    first = next((item for item in items or [] if isinstance(item, dict)), None)
    if first is None:
        return None
    return ApiMode.EXTENDED if "popularity" in first else ApiMode.DEVELOPMENT


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
    if not chosen:
        return _Outcome(done=keys, unresolved=[name])
    return _Outcome(done=keys, also_done=[("artist", [chosen])])


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
    # the page's limit, not its length: a page may hold null items besides its tracks
    start = int(page.get("offset") or 0) + int(page.get("limit") or len(page.get("items") or []))
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
