"""The writes of a crawl run: the answers that arrived together written in few transactions (group
commit), each answer whole, its rows with what became of its tasks, in the order they came."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog.crawl.copies import Digests, WrittenCopies
from spotify_catalog.crawl.options import NOT_FOUND
from spotify_catalog.crawl.outcome import Listing, Outcome
from spotify_catalog.crawl.units import Unit
from spotify_catalog.storage import changes, state
from spotify_catalog.storage.write import in_transaction, write_rows
from spotify_catalog.transform import Rows

GROUP_ANSWERS = 32
"""At most this many answers are written in one transaction (group commit)."""
GROUP_ROWS = 2000
"""An answer that would take a group past this many rows starts the next group."""


@dataclass
class Answer:
    """A unit's checked response, turned into rows and what became of its tasks (in a worker)."""

    unit: Unit
    result: Any
    rows: Rows
    outcome: Outcome
    when: datetime


class Writer:
    """Writes the answers of run ``run_id`` into ``engine``. Tasks an answer queues count as fresh when
    finished since ``fresh_since``; each transaction keeps the run's row current (``requests``: the
    run's requests so far); ``written`` is called with the answers of each group once it is committed.
    A copy of an album or artist the run has written is not written again (``WrittenCopies``)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        run_id: int,
        fresh_since: datetime,
        requests: Callable[[], int],
        written: Callable[[Sequence[Answer]], None],
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.fresh_since = fresh_since
        self.rows_written = 0
        """Rows the run's committed transactions wrote."""
        self._requests = requests
        self._written = written
        self._copies = WrittenCopies()

    def write(self, answers: Sequence[Answer]) -> None:
        """Write answers, up to :data:`GROUP_ANSWERS` answers or :data:`GROUP_ROWS` rows to a transaction
        (group commit): each answer whole, its rows with what became of its tasks, in the order they
        came; a deadlock runs the whole group again."""
        group: list[Answer] = []
        rows = 0
        for answer in answers:
            if group and (len(group) >= GROUP_ANSWERS or rows + answer.rows.count() > GROUP_ROWS):
                self._write_group(group)
                group, rows = [], 0
            group.append(answer)
            rows += answer.rows.count()
        if group:
            self._write_group(group)

    def give_up(
        self, conn: sa.Connection, kind: str, keys: list[str], when: datetime, *, error: str, gone: bool
    ) -> None:
        """Tasks failed for good (a 404 or 400: not asked again while fresh); ``gone``: a 404, what
        they name is marked gone."""
        state.finish_tasks(conn, kind, keys, now=when, run_id=self.run_id, state=state.FAILED, error=error)
        if gone:
            changes.not_found(conn, kind, keys, now=when)

    def _write_group(self, answers: Sequence[Answer]) -> None:
        def work(conn: sa.Connection) -> tuple[int, Digests]:
            written = 0
            copies: Digests = {}  # remembered once committed
            plain: list[Answer] = []  # answers whose writes touch their rows and tasks only
            for answer in answers:
                if _plain(answer.outcome):
                    plain.append(answer)
                    continue
                written += self._write_plain(conn, plain, copies)
                plain = []
                written += self._write_outcome(conn, answer, copies)
            written += self._write_plain(conn, plain, copies)
            state.touch_run(
                conn,
                self.run_id,
                requests=self._requests(),
                rows_written=self.rows_written + written,
                now=answers[-1].when,
            )
            return written, copies

        written, copies = in_transaction(self.engine, work)
        self.rows_written += written
        self._copies.written(copies)
        self._written(answers)

    def _write_plain(self, conn: sa.Connection, answers: Sequence[Answer], copies: Digests) -> int:
        """Answers in a row none of which marks anything gone or closes a listing: their rows are
        written together, fewer and larger statements (the same rows as one after the other: a key in
        two answers keeps the later one's values, and ``raw``/``detail`` never depend on the order),
        then what became of their tasks."""
        if len(answers) <= 1:
            return sum(self._write_outcome(conn, answer, copies) for answer in answers)
        rows = Rows()
        for answer in answers:
            for table, table_rows in answer.rows.upserts.items():
                rows.upserts.setdefault(table, []).extend(table_rows)
            for table, parents in answer.rows.children.items():
                rows.children.setdefault(table, {}).update(parents)
        written = write_rows(conn, self._copies.without_known(rows, copies))
        for answer in answers:
            self._write_tasks(conn, answer)
        return written

    def _write_outcome(self, conn: sa.Connection, answer: Answer, copies: Digests) -> int:
        """One response's rows (without what the run wrote before) and what became of its tasks, in
        the transaction of its group; rows written."""
        written = write_rows(conn, self._copies.without_known(answer.rows, copies))
        self._write_tasks(conn, answer)
        return written

    def _write_tasks(self, conn: sa.Connection, answer: Answer) -> None:
        """What became of an answer's tasks (and what it marks gone, the listing it belongs to)."""
        unit, outcome, when = answer.unit, answer.outcome, answer.when
        state.finish_tasks(conn, unit.kind, outcome.done, now=when, run_id=self.run_id)
        if outcome.not_found:
            self.give_up(conn, unit.kind, outcome.not_found, when, error=NOT_FOUND, gone=True)
        for kind, keys in _by_kind(outcome.also_done):
            state.finish_tasks(conn, kind, keys, now=when, run_id=self.run_id)
        for kind, keys in _by_kind(outcome.follow_up):
            state.ensure_tasks(conn, kind, keys, now=when, fresh_since=self.fresh_since)
        if outcome.listing is not None:
            _listing_written(conn, outcome.listing, when)


def _plain(outcome: Outcome) -> bool:
    """Whether writing an answer touches its rows and tasks only (nothing marked gone, no listing)."""
    return not outcome.not_found and outcome.listing is None


def _by_kind(tasks: Sequence[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """Task keys gathered per kind (in the order kinds first come), so that each kind takes one
    statement: an album's further track pages are one ``album_tracks`` update, not one each."""
    gathered: dict[str, list[str]] = {}
    for kind, keys in tasks:
        gathered.setdefault(kind, []).extend(keys)
    return list(gathered.items())


def _listing_written(conn: sa.Connection, listing: Listing, when: datetime) -> None:
    """Discography bookkeeping in the transaction of a page (see :mod:`storage.changes`)."""
    if listing.pages is not None:
        changes.restart_listing(conn, listing.artist_id, listing.groups, listing.pages, now=when)
    changes.listing_page_written(conn, listing.artist_id, listing.groups, listing.album_ids, now=when)
