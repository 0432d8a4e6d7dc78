"""SpotifyClient: the one Web API request path, the API mode, and request counters.

``client.get(path, params)`` sends ``GET`` to the Web API with a valid token, paced
(:mod:`spotify_catalog.pacing`) and retried as :mod:`spotify_catalog.retries` decides, renews the
token on a 401 and replays the request (once, unless the renewed token outlived its time too), and
returns the JSON object. One client serves many threads (one ``httpx.Client`` connection pool, locks
around the token, the counters and the mode).

Attempts that get no answer at all (refused, DNS, TLS, dropped before a response, timeouts) are
counted across threads by one :class:`~spotify_catalog.retries.OutageTracker`: when nothing has
answered for ``settings.outage_after`` seconds, every request raises
:class:`~spotify_catalog.errors.UnreachableError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import httpx

from spotify_catalog.auth import ClientCredentials, Grant, TokenManager
from spotify_catalog.errors import (
    ForbiddenError,
    QuotaExceededError,
    Stopped,
    UnauthorizedError,
    WaitTooLongError,
)
from spotify_catalog.pacing import Gate, Pacer, SharedPace
from spotify_catalog.retries import (
    Clock,
    OutageTracker,
    Retryable,
    RetryPolicy,
    Sleep,
    WallClock,
    call_with_retries,
    check_response,
    network_failure,
    never_sent,
    safe_url,
)
from spotify_catalog.settings import ApiMode, Settings

__all__ = ["ApiMode", "RequestBudget", "SpotifyClient"]

log = logging.getLogger(__name__)

ParamValue = str | int | float | bool | Iterable[str] | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RequestBudget(Protocol):
    """Where a client counts the requests it sends, beyond its own counters: the account's ledger
    (:class:`spotify_catalog.ledger.AccountBudget`)."""

    def take(self, path: str) -> None:
        """One request to ``path`` (a Web API path) is about to be sent; raise
        :class:`~spotify_catalog.errors.Stopped` to refuse it."""

    def give_back(self, path: str) -> None:
        """A request taken never reached the server."""

    def refused(self, path: str, retry_at: datetime) -> object:
        """Spotify answered a request to ``path`` with ``429 QUOTA_EXCEEDED`` until ``retry_at``."""


class SpotifyClient:
    """A thread-safe Spotify Web API client; use it as a context manager (or call :meth:`close`)."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        request_budget: int | None = None,
        *,
        wall_clock: WallClock = _utcnow,
        budget: RequestBudget | None = None,
        grant: Grant | None = None,
        pace_store: SharedPace | None = None,
    ) -> None:
        if grant is None:
            grant = ClientCredentials(*settings.credentials())
        self.settings = settings
        self.request_budget = request_budget
        self.budget = budget
        self._cancelled = threading.Event()
        self._wake = threading.Event()  # set: sleeping retries end at once (cancelled, or an outage)
        self._clock = clock
        gate_sleep: Sleep = self._wait_unless_cancelled if sleep is None else sleep  # cut short by cancel()
        if sleep is None:  # real waits, cut short by cancel() and by an outage
            sleep = self._wait_unless_woken
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            max_total_wait=settings.max_total_wait,
            max_wait=settings.max_wait,
        )
        self._http = httpx.Client(
            transport=transport,
            timeout=settings.timeout,
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            headers={"Accept": "application/json", "User-Agent": "spotify-catalog"},
        )
        self.outage = OutageTracker(
            after=settings.outage_after,
            clock=clock,
            on_outage=self._wake.set,
            on_recovery=self._rest,
        )
        self.tokens = TokenManager(
            self._http,
            settings.token_url,
            grant,
            clock=clock,
            sleep=sleep,
            policy=self._policy,
            outage=self.outage,
        )
        self.pacer = Pacer(settings.rate, clock=clock, sleep=sleep)
        self.gate = Gate(
            clock=clock,
            sleep=gate_sleep,
            wall_clock=wall_clock,
            max_wait=settings.max_wait,
            shared=pace_store,
            check=self._check_cancelled,
        )
        self._lock = threading.Lock()
        self._mode = settings.mode
        self._requests_made = 0
        self._attempts_made = 0
        self._base_path = urlsplit(settings.api_url).path.rstrip("/")

    def __repr__(self) -> str:
        return (
            f"SpotifyClient(api_url={self.settings.api_url!r}, mode={self._mode}, "
            f"requests_made={self._requests_made})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; what was sent in the last 30 s reported to the other processes
        of the client id (``pace_store``)."""
        self._http.close()
        self.gate.report()

    def cancel(self) -> None:
        """Refuse every request from now on, in-flight retries included (they raise ``Stopped`` at
        their next attempt, and the default sleep ends at once). For ending a run whose worker
        threads are still waiting on this client; a cancelled client is not used again."""
        self._cancelled.set()
        self._wake.set()

    def _wait_unless_woken(self, seconds: float) -> None:
        self._wake.wait(seconds)

    def _wait_unless_cancelled(self, seconds: float) -> None:
        """The gate's real wait: an outage does not end it, ``cancel()`` does."""
        self._cancelled.wait(seconds)

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise Stopped("the client was cancelled")

    def _rest(self) -> None:
        """The API answers again: sleeps last their time again (unless cancelled)."""
        self._wake.clear()
        if self._cancelled.is_set():  # cancel() came in between: stay awake
            self._wake.set()

    @property
    def mode(self) -> ApiMode | None:
        """The API mode: given in the settings, set by the caller, or detected; ``None``: not known yet."""
        with self._lock:
            return self._mode

    @mode.setter
    def mode(self, value: ApiMode | None) -> None:
        with self._lock:
            if value != self._mode:
                log.info("API mode: %s", value or "unknown")
            self._mode = value

    @property
    def requests_made(self) -> int:
        """Web API HTTP requests that reached the server, every retry counted (token requests are
        not): answered ones, and those whose connection broke or timed out after sending (they may
        have counted for Spotify). Attempts that never connected (refused, DNS, TLS, connect
        timeout) are not requests: see :attr:`attempts_made`."""
        with self._lock:
            return self._requests_made

    @property
    def attempts_made(self) -> int:
        """Web API attempts, those that never connected included."""
        with self._lock:
            return self._attempts_made

    @property
    def tokens_fetched(self) -> int:
        """Token requests that succeeded."""
        return self.tokens.tokens_fetched

    def url_for(self, path: str) -> str:
        """The full URL of an API path (``/artists/ID``) or of a link the API returned (``next``).

        Links keep their path and query but are sent to the configured API URL, so paging through the
        emulator or a proxy works even if it writes ``https://api.spotify.com/v1/...`` links.
        """
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            link_path = parts.path
            if self._base_path and link_path.startswith(self._base_path + "/"):
                link_path = link_path[len(self._base_path) :]
            elif link_path.startswith("/v1/"):
                link_path = link_path[len("/v1") :]
            path = link_path + (f"?{parts.query}" if parts.query else "")
        if not path.startswith("/"):
            path = "/" + path
        return self.settings.api_url + path

    def get(self, path: str, params: Mapping[str, ParamValue] | None = None) -> dict[str, Any]:
        """``GET`` a Web API path (or a ``next`` link) and return its JSON object.

        ``None`` params are left out, lists are joined with commas, booleans become ``true``/``false``.
        Raises the :mod:`spotify_catalog.errors` classes: ``APIError`` subclasses, ``TransportError``
        (``UnreachableError`` in an outage), ``InvalidResponseError``, ``MustWaitError`` subclasses,
        ``Stopped`` past the request budget.
        """
        url = self.url_for(path)
        api_path = url[len(self.settings.api_url) :]  # what the budget's buckets are read from
        query = _encode_params(params or {})
        request = self._http.build_request("GET", url, params=query or None)
        shown = safe_url(request.url)
        what = f"GET {urlsplit(shown).path}"
        renewed = False
        grant = self.tokens.grant
        grant.check(api_path)  # a scope the user did not grant: said before anything is sent

        def attempt() -> dict[str, Any]:
            nonlocal renewed
            self._count_request()  # raises Stopped before anything is sent past the budget
            try:
                token = self.tokens.token()
            except BaseException:
                self._uncount_request()  # nothing was sent to the Web API
                raise
            sent_at = self._let_through(api_path)
            request.headers["Authorization"] = f"Bearer {token}"
            log.debug("GET %s", shown)
            started = self._clock()
            with self._lock:
                self._attempts_made += 1
            try:
                response = self._http.send(request)
            except httpx.HTTPError as exc:
                if never_sent(exc):
                    self._uncount_request()  # it never reached the server
                    self.gate.unsent(sent_at)
                    if self.budget is not None:
                        self.budget.give_back(api_path)
                raise network_failure(exc, what, shown, outage=self.outage, started=started) from None
            finally:
                del request.headers["Authorization"]
            self.outage.answered()
            try:
                return check_response(
                    response, url=shown, method="GET", policy=self._policy, now=self._wall_clock
                )
            except Retryable as exc:
                if exc.kind == "rate_limit":  # every worker waits on the gate it closes
                    self.gate.refused(sent_at, exc.retry_after)
                raise
            except WaitTooLongError as exc:  # no worker knocks again before retry_at
                self.gate.closed_for((exc.retry_at - self._wall_clock()).total_seconds())
                raise
            except UnauthorizedError as exc:
                if renewed and not self.tokens.outlived(token):
                    raise  # a fresh token refused too: not a matter of expiry
                renewed = True
                self.tokens.invalidate(token)
                raise Retryable("renew", f"401 {exc.message}: renewing the access token", exc) from None
            except ForbiddenError as exc:
                raise grant.forbidden(exc, api_path) from None
            except QuotaExceededError as exc:
                if self.budget is not None:
                    self.budget.refused(api_path, exc.retry_at)  # its bucket parked in the ledger
                raise

        return call_with_retries(
            attempt,
            policy=self._policy,
            clock=self._clock,
            sleep=self._sleep,
            what=what,
            outage=self.outage,
        )

    def _let_through(self, api_path: str) -> float:
        """Wait for the pacer and the rate limit's gate, then take the request from the account's
        budget; the moment the gate let it through. A request refused here is not counted."""
        try:
            self.pacer.acquire()
            sent_at = self.gate.enter()
        except BaseException:
            self._uncount_request()
            raise
        if self.budget is not None:
            try:
                self.budget.take(api_path)  # the account's ledger, just before sending
            except BaseException:
                self._uncount_request()
                self.gate.unsent(sent_at)
                raise
        return sent_at

    def _count_request(self) -> None:
        if self._cancelled.is_set():
            raise Stopped("the client was cancelled")
        with self._lock:
            if self.request_budget is not None and self._requests_made >= self.request_budget:
                raise Stopped(f"request budget of {self.request_budget} Web API requests used up")
            self._requests_made += 1

    def _uncount_request(self) -> None:
        with self._lock:
            self._requests_made -= 1


def _encode_params(params: Mapping[str, ParamValue]) -> dict[str, str]:
    encoded: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            encoded[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            encoded[key] = str(value)
        else:
            encoded[key] = ",".join(value)
    return encoded
