"""The run: its record in ``_runs``, the pool of workers that drains the tasks each phase queues
(:mod:`~spotify_catalog.crawl.phases` says which, in what order), what an answer or a failure does to
the queue, budgets and stops (see :mod:`spotify_catalog.crawl`). The API mode is followed by
:mod:`~spotify_catalog.crawl.mode`, the answers are written by :mod:`~spotify_catalog.crawl.writer`."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import sqlalchemy as sa

from spotify_catalog import endpoints
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import catalog, found, me
from spotify_catalog.crawl.mode import ModeTracker, check_mode
from spotify_catalog.crawl.options import (
    ACCOUNT_STATE_KEY,
    CLAIM_POLL,
    OPTIONS_STATE_KEY,
    CrawlOptions,
    CrawlResult,
    Progress,
)
from spotify_catalog.crawl.parking import Parking
from spotify_catalog.crawl.phases import Phases, Seeds
from spotify_catalog.crawl.units import BATCHED, STOPS, Unit, fetch_checked, make_unit
from spotify_catalog.crawl.writer import Answer, Writer
from spotify_catalog.errors import (
    BadRequestError,
    BucketParked,
    BudgetSpent,
    Interrupted,
    MustWaitError,
    NotFoundError,
    SpotifyError,
    Stopped,
    StorageError,
    UsageError,
    WrongModeError,
    format_time,
)
from spotify_catalog.ledger import AccountBudget
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import state
from spotify_catalog.storage.engine import describe_error
from spotify_catalog.storage.write import in_transaction
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

ANALYZE_AFTER = 1000
"""A phase that queues at least this many tasks refreshes the planner's statistics of ``_tasks``."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        self.run_id: int | None = None
        """The ``_runs`` id of this run once it started (``None`` if it stopped before starting)."""
        self._mode = ModeTracker(client)
        self._parking = Parking(None, now)
        self._writer: Writer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._phases = self._new_phases()
        self._requests_at_start = 0
        self._unresolved: list[str] = []
        self._not_found: list[str] = []

    def _new_phases(self) -> Phases:
        return Phases(
            self.engine, self.client, self.options, now=self.now, queue=self._phase, drain=self._drain
        )

    @property
    def _run_id(self) -> int:
        return self.run_id or 0

    @property
    def rows_written(self) -> int:
        """Rows this run has written so far."""
        return self._writer.rows_written if self._writer is not None else 0

    @property
    def _writes(self) -> Writer:
        """The writer of the run, once it started."""
        assert self._writer is not None, "the run has not started"
        return self._writer

    # -------------------------------------------------------------------------------- the run

    def run(self) -> CrawlResult:
        """Crawl; raises ``Stopped`` (budget, long wait; ``BucketParked`` when every task is done
        but those of parked quota buckets, :mod:`~spotify_catalog.crawl.parking`), ``Interrupted``
        (Ctrl-C), ``WrongModeError``, ``StorageError``. Every run that starts is recorded in ``_runs``; one
        refused at once (before Spotify's ``retry_at``, the daily budget spent) is not. The client's
        account budget (:class:`~spotify_catalog.ledger.AccountBudget`), if any, is checked before the
        run starts and gets back what it holds unsent when the run ends. The cycle collector's
        thresholds are left alone (:func:`~spotify_catalog.crawl.gc_tuning.collecting_less` raises
        them for a crawl, the command line's way)."""
        self._fresh_since = self.now() - self.options.refresh_after
        self._requests_at_start = self.client.requests_made
        self._mode = ModeTracker(self.client)
        self._phases = self._new_phases()
        budget = self._budget()
        self._parking = Parking(budget, self.now)
        if budget is not None and self.options.force:
            budget.force()  # the buckets the ledger has parked are tried too
        check_mode(self.options, self._mode.given)
        if self.options.me:
            me.preflight(self.client)
        try:
            return self._start_and_run()
        finally:
            budget = self._budget()
            if budget is not None:
                budget.release()

    def _start_and_run(self) -> CrawlResult:
        try:
            self._start()
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"database error: {describe_error(exc)}") from None
        self._writer = Writer(
            self.engine,
            run_id=self._run_id,
            fresh_since=self._fresh_since,
            requests=self._requests,
            written=self._written,
        )
        self._pool = pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="crawl")
        try:
            result = self._run()
        except BaseException:
            # workers may still be retrying: end them and wait, so nothing runs or logs after the run
            self.client.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return result

    def _budget(self) -> AccountBudget | None:
        """The account budget the client counts its requests in (the ledger), if it has one."""
        budget = self.client.budget
        return budget if isinstance(budget, AccountBudget) else None

    def _start(self) -> None:
        """Checks before any request, then the run's row and what the crawl was asked for."""
        now, opts = self.now(), self.options
        with self.engine.begin() as conn:
            state.lock_runs(conn)
            _warn_abandoned(state.abandon_dead_runs(conn, now=now))
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
            budget = self._budget()
            if budget is not None:
                state.set_state(conn, ACCOUNT_STATE_KEY, budget.account)
            self._mode.load(conn)
            state.reset_attempts(conn)
            state.set_state(conn, OPTIONS_STATE_KEY, opts.to_json())
        if budget is not None:
            try:
                budget.check()  # the ledger reached, and a block of the budget this run's, before it starts
            except BudgetSpent as exc:
                raise BudgetSpent(f"{exc.message}; nothing was sent", retry_at=exc.retry_at) from None
        self.run_id = state.start_run(self.engine, command=self.command, now=now)

    def _run(self) -> CrawlResult:
        try:
            return self._crawl()
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (errors.Terminated)
            stop = Interrupted.by(exc, "run the same command again to continue")
            self._finish("interrupted", f"interrupted ({stop.cause})")
            raise stop from None
        except MustWaitError as exc:
            self._finish("stopped", str(exc), retry_at=exc.retry_at)
            raise Stopped(f"stopped: {exc.message}", retry_at=exc.retry_at) from None
        except BucketParked as exc:  # every task done but those of buckets Spotify parked
            self._finish("stopped", exc.message, retry_at=exc.retry_at)
            raise
        except BudgetSpent as exc:
            reason, frees = self._budget_spent(exc)
            self._finish("stopped", reason, retry_at=frees)
            raise BudgetSpent(f"stopped: {reason}", retry_at=frees) from None
        except Stopped as exc:
            self._finish("stopped", str(exc), retry_at=exc.retry_at)
            raise Stopped(f"stopped: {exc}; run the same command again to continue") from None
        except (WrongModeError, StorageError, UsageError) as exc:  # the ledger's database; a user's login
            self._finish("failed", str(exc))
            raise
        except sa.exc.SQLAlchemyError as exc:
            self._finish("failed", f"database error: {describe_error(exc)}")
            raise StorageError(f"database error: {describe_error(exc)}") from None
        except SpotifyError as exc:
            self._finish("failed", str(exc))
            raise

    def _budget_spent(self, exc: BudgetSpent) -> tuple[str, datetime | None]:
        """The reason of a run the account's budget stopped, and when the oldest requests of the
        rolling window have left it (counted once what this run held unsent is given back)."""
        budget = self._budget()
        if budget is None:  # a budget of the caller's own
            return exc.message, exc.retry_at
        try:
            budget.release()
            frees = budget.usage().frees_at or exc.retry_at
        except StorageError as error:
            log.error("%s", error)
            frees = exc.retry_at
        return budget.spent_message(), frees

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
        except sa.exc.SQLAlchemyError as exc:  # the database went away: the next run marks it abandoned
            log.error("could not record the end of run %d: %s", self._run_id, describe_error(exc))

    def _crawl(self) -> CrawlResult:
        """The phases, then how the run ended: done, incomplete (tasks that failed every attempt) or
        stopped with only the tasks of parked quota buckets left."""
        opts = self.options
        self._phases.run(self._run_id)
        with self.engine.connect() as conn:
            parked = self._parking.stop(conn, opts.max_attempts)
            if parked is not None:
                raise parked
            failed = found.failed_tasks(conn, opts.max_attempts)
        status = "done" if not failed else "incomplete"
        reason = None if not failed else f"{failed} task(s) failed {opts.max_attempts} times"
        self._mode.confirm()  # no answer contradicted it
        self._mode.save(self.engine)
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
            skipped=self._phases.skipped,
        )

    def _phase(self, name: str, seeds: Seeds) -> None:
        """Queue a phase's tasks (:mod:`~spotify_catalog.crawl.phases`) and start its progress."""
        with self.engine.begin() as conn:
            queued = 0
            for kind, keys in seeds:
                queued += state.ensure_tasks(conn, kind, keys, now=self.now(), fresh_since=self._fresh_since)
            pending = state.count_pending(conn, [kind for kind, _ in seeds])
        if queued >= ANALYZE_AFTER:
            with self.engine.begin() as conn:  # its own transaction: holds no lock of the phase's
                state.analyze(conn)
        self.progress.phase = name
        self.progress.done = 0
        self.progress.total = pending
        self._report("start")

    def _report(self, event: str = "update") -> None:
        self.progress.event = event
        self.progress.requests = self._requests()
        self.progress.rows_written = self.rows_written
        limit = self.client.request_budget
        lefts = [] if limit is None else [max(0, limit - self.client.requests_made)]
        budget = self._budget()
        daily = budget.left() if budget is not None else None
        self.progress.requests_left = min([*lefts, daily] if daily is not None else lefts, default=None)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -------------------------------------------------------------------------------- work units

    def _drain(self, kinds: Sequence[str]) -> None:
        """Do the pending tasks of ``kinds`` (and those they add) until none is left to try. Tasks
        are claimed a few units at a time, so that crawls sharing the database share the work; the
        phase ends when no task is left that another live crawl holds either. The claims of a crawl
        found dead meanwhile are taken over at once (:meth:`_abandon_dead_runs`); those of a crawl on
        another host that died wait for their lease to end (:data:`state.LEASE`)."""
        while True:
            claimed = False
            open_kinds = self._parking.open_kinds(kinds)  # those of a parked bucket wait
            for kind in open_kinds:
                units = self._units(kind)
                first = next(units, None)
                if first is not None:
                    claimed = True
                    self._execute(itertools.chain([first], units))
            if claimed:
                continue
            if not open_kinds:
                self._report("end")
                return
            with self.engine.connect() as conn:
                held = state.held_by_others(
                    conn,
                    open_kinds,
                    run_id=self._run_id,
                    now=self.now(),
                    max_attempts=self.options.max_attempts,
                )
            if not held:
                self._report("end")
                return
            if self._abandon_dead_runs():
                continue  # the claims of a dead crawl: free now, not when their lease ends
            self.sleep(CLAIM_POLL)  # another crawl is fetching them: wait for its answers

    def _abandon_dead_runs(self) -> bool:
        """Mark abandoned the crawls sharing the database whose process is gone (on this host: its pid
        is not alive) and free their claims; whether there were any."""
        now = self.now()
        dead = in_transaction(self.engine, lambda conn: state.abandon_dead_runs(conn, now=now))
        _warn_abandoned(dead)
        return bool(dead)

    def _units(self, kind: str) -> Iterator[Unit]:
        """Units of claimed tasks; claims more while there are (one key while the mode is unknown)."""
        while True:
            if kind == catalog.TOP_TRACKS and self.client.mode is ApiMode.DEVELOPMENT:
                return  # refused in development mode: not one request more
            if self._parking.blocks(kind):
                return
            size = self._batch_size(kind)
            unknown_mode = kind in BATCHED and self.client.mode is None
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
                yield make_unit(
                    self.client,
                    kind,
                    keys[start : start + size],
                    self.options.market,
                    self._phases.me_known if kind in me.KINDS else self._phases.playlist_snapshots,
                )

    def _batch_size(self, kind: str) -> int:
        if kind not in BATCHED or self.client.mode is not ApiMode.EXTENDED:
            return 1  # the mode unknown: one item, whose answer tells the mode
        return endpoints.BATCH_MAX[kind]

    def _answer(self, unit: Unit) -> Answer:
        """In a worker thread: fetch a unit, check its answer and turn it into rows (handlers are pure),
        so that the coordinating thread only writes."""
        result = fetch_checked(unit)
        when = self.now()
        rows = Rows()
        outcome = unit.handle(unit.keys, result, rows, when)
        return Answer(unit, result, rows, outcome, when)

    def _execute(self, units: Iterator[Unit]) -> None:
        """Fetch units on the pool (at most ``workers`` at a time); the coordinating thread writes the
        answers that have arrived, several to a transaction (:meth:`Writer.write`)."""
        assert self._pool is not None, "the run has not started"
        pool = self._pool
        in_flight: dict[Future[Answer], Unit] = {}
        stop: BaseException | None = None
        held: Unit | None = None
        exclusive = False

        def submit() -> None:
            nonlocal held, exclusive
            while stop is None and not exclusive and len(in_flight) < self.options.workers:
                unit = held or next(units, None)
                held = None
                if unit is None:
                    return
                if self._parking.blocks(unit.kind):
                    self._unclaim(unit)  # claimed before its bucket was parked
                    continue
                if unit.mode_sensitive and self.client.mode is None:
                    if in_flight:  # learn the API mode from this request alone
                        held = unit
                        return
                    exclusive = True
                in_flight[pool.submit(self._answer, unit)] = unit

        submit()
        while in_flight:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            done: list[Answer] = []
            for future in finished:
                unit = in_flight.pop(future)
                exclusive = False
                try:
                    answer = future.result()
                except (SpotifyError, Stopped) as exc:
                    if self._parking.park(unit.kind, exc):
                        self._unclaim(unit)  # untried: it waits for its bucket
                    elif isinstance(exc, SpotifyError):
                        stop = stop or self._failed(unit, exc)
                    else:
                        stop = stop or exc  # nothing more can be done in this run
                else:
                    done.append(answer)
                    try:
                        self._mode.observe(unit.kind, answer.result)
                    except WrongModeError as exc:
                        stop = stop or exc
            self._mode.save(self.engine)
            for answer in done:  # a unit's further pages stopped: they become tasks of their own
                halted = getattr(answer.result, "stop", None)
                if halted is not None and not self._parking.park(answer.unit.kind, halted):
                    stop = stop or halted
            self._writes.write(done)  # every response that arrived is written, whatever stops the run
            submit()  # after the writes: a kill loses at most the requests in flight
        if stop is not None:
            raise stop

    def _unclaim(self, unit: Unit) -> None:
        with self.engine.begin() as conn:
            state.unclaim(conn, unit.kind, unit.keys)

    def _written(self, answers: Sequence[Answer]) -> None:
        """Answers committed: what they say of the names and ids asked for, and the progress."""
        for answer in answers:
            outcome, unit = answer.outcome, answer.unit
            for name in outcome.unresolved:  # said in the run that searched it
                log.warning("no artist found for %r", name)
                self._unresolved.append(name)
            if unit.kind in catalog.ASKED_BY_ID:
                for key in outcome.not_found:
                    log.warning("%s %s not found", unit.kind, key)
            if unit.kind == "artist":
                self._not_found.extend(outcome.not_found)
            self.progress.done += len(unit.keys)
            self.progress.total += sum(len(keys) for _, keys in outcome.follow_up)
        self._report()

    def _failed(self, unit: Unit, exc: SpotifyError) -> BaseException | None:
        """Record a unit's error; returns it if nothing more can be done in this run."""
        try:
            if self._mode.refused(unit.kind, exc):
                return None  # still pending: asked again the right way
        except WrongModeError as wrong:
            return wrong
        if isinstance(exc, STOPS):
            return exc
        when = self.now()
        with self.engine.begin() as conn:
            if isinstance(exc, NotFoundError | BadRequestError):
                log.warning("%s %s: %s", unit.kind, ",".join(unit.keys), exc)
                gone = isinstance(exc, NotFoundError)
                self._writes.give_up(conn, unit.kind, unit.keys, when, error=str(exc), gone=gone)
            else:
                log.warning("%s %s failed, will retry: %s", unit.kind, ",".join(unit.keys), exc)
                state.retry_later(conn, unit.kind, unit.keys, error=str(exc), now=when)
                self.progress.failed += 1
        self._report()
        return None


def _warn_abandoned(run_ids: Sequence[int]) -> None:
    for run_id in run_ids:
        log.warning("run %d ended without recording it (killed?): marked abandoned", run_id)
