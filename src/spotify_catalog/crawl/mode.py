"""The API mode of a crawl run: given (``--mode``), saved in the database, or learnt from the answers
(see :mod:`spotify_catalog.crawl`), and kept in the client (``client.mode``) that the units ask."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from spotify_catalog import transform
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import catalog
from spotify_catalog.crawl.options import MODE_STATE_KEY, NOT_FOUND, CrawlOptions
from spotify_catalog.crawl.units import BATCHED, observed_mode
from spotify_catalog.errors import BadRequestError, ForbiddenError, SpotifyError, UsageError, WrongModeError
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import schema, state

log = logging.getLogger(__name__)


class ModeTracker:
    """The mode of ``client`` through a run: the one it was given (``client.mode`` when the tracker is
    made; ``None``: learn it), the one saved in ``_state`` and whether an answer confirmed it. A given
    mode the answers contradict stops the run (:class:`WrongModeError`); a learnt one follows them."""

    def __init__(self, client: SpotifyClient) -> None:
        self.client = client
        self.given: ApiMode | None = client.mode
        self._saved: str | None = None
        self._confirmed = False

    def load(self, conn: sa.Connection) -> None:
        """In the transaction that starts the run: the saved mode (or the one of the stored artists)
        becomes the client's when none was given; a given mode other than the saved one makes the
        tasks the saved one refused pending again (a wrong ``--mode`` is caught by the answers)."""
        self._saved = state.get_state(conn, MODE_STATE_KEY)
        if self.given is None:
            known = self._saved or _stored_mode(conn)
            if known:
                self.client.mode = ApiMode(known)
        elif self._saved and self._saved != str(self.given):
            state.reopen_failed(conn, keep_error=NOT_FOUND)

    def observe(self, kind: str, result: Any) -> None:
        """Learn or check the API mode from a response of a unit of ``kind``."""
        seen = observed_mode(kind, result)
        if seen is None:
            return
        current = self.client.mode
        if current is not None and current is not seen:
            if self.given is not None:
                raise WrongModeError(str(self.given), str(seen))
            log.warning("the API answers as an app in %s mode now (it was %s)", seen, current)
        if current is not seen:
            self.client.mode = seen
        self._confirmed = True

    def refused(self, kind: str, exc: SpotifyError) -> bool:
        """Whether ``exc`` says the app is in Development Mode while the client thinks extended: a batch
        endpoint answered 403, or a discography page refused a limit above 10. A given mode stops the
        run; a learnt one is corrected and the unit is tried again."""
        if self.client.mode is not ApiMode.EXTENDED:
            return False
        batch_refused = isinstance(exc, ForbiddenError) and kind in BATCHED | {catalog.TOP_TRACKS}
        limit_refused = isinstance(exc, BadRequestError) and kind == "artist_albums"
        limit_refused = limit_refused and "limit" in exc.message.lower()
        if not (batch_refused or limit_refused):
            return False
        if self.given is not None:
            raise WrongModeError(str(self.given), str(ApiMode.DEVELOPMENT))
        log.warning("the API answers as an app in development mode now (it was extended)")
        self.client.mode = ApiMode.DEVELOPMENT
        self._confirmed = True
        return True

    def confirm(self) -> None:
        """The run ended and no answer contradicted the mode."""
        self._confirmed = True

    def save(self, engine: sa.Engine) -> None:
        """Save a learnt or confirmed mode at once, in a transaction of its own; when it changed, tasks
        that failed under the old mode are pending again."""
        mode = self.client.mode
        if mode is None or str(mode) == self._saved:
            return
        if self.given is not None and not self._confirmed:
            return  # a given mode is saved only once an answer agreed with it
        with engine.begin() as conn:
            state.set_state(conn, MODE_STATE_KEY, str(mode))
            if self._saved is not None:
                reopened = state.reopen_failed(conn, keep_error=NOT_FOUND)
                if reopened:
                    log.info("API mode now %s: %d failed task(s) pending again", mode, reopened)
        self._saved = str(mode)


def check_mode(options: CrawlOptions, mode: ApiMode | None) -> None:
    """Refuse at once (:class:`UsageError`, exit 2) what the given API mode cannot do: top tracks need
    Extended Quota Mode."""
    if options.top_tracks and mode is ApiMode.DEVELOPMENT:
        raise UsageError(
            "--with top-tracks: GET /artists/{id}/top-tracks needs Extended Quota Mode and the app is in "
            "development mode (--mode development); nothing was sent"
        )


def _stored_mode(conn: sa.Connection) -> str | None:
    """The mode the stored full artists were fetched in (a database crawled before modes were saved)."""
    a = schema.artists
    query = sa.select(a.c.popularity).where(a.c.detail == transform.FULL).limit(20)
    rows = conn.execute(query).scalars().all()
    if not rows:
        return None
    return str(ApiMode.EXTENDED if any(p is not None for p in rows) else ApiMode.DEVELOPMENT)
