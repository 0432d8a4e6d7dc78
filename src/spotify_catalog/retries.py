"""The retry policy of the one request path: which failures are retried, how long to wait, when to
give up.

:func:`call_with_retries` runs one *attempt* function under a bounded tenacity policy. An attempt
raises :class:`Retryable` for what may pass (5xx, dropped connections, timeouts, 429 of the 30 s
limiter, bodies that are not the JSON they claim, a 401 answered by renewing the token) and any
:class:`~spotify_catalog.errors.SpotifyError` for what will not. :func:`check_response` sorts an
``httpx.Response`` into those cases. Nothing here sleeps through a quota or a ``Retry-After`` longer
than ``max_wait``: those raise :class:`~spotify_catalog.errors.MustWaitError` at once.

:class:`OutageTracker` tells an outage (nothing answers, on any thread) from one request's bad luck.
The spacing of requests to a configured rate is :mod:`spotify_catalog.pacing`'s.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import tenacity

from spotify_catalog.errors import (
    InvalidResponseError,
    PremiumLapsedError,
    QuotaExceededError,
    SpotifyError,
    TransportError,
    UnreachableError,
    WaitTooLongError,
    api_error_class,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]
WallClock = Callable[[], datetime]

QUOTA_REASON = "QUOTA_EXCEEDED"
DEFAULT_QUOTA_WAIT = 3600.0
"""Assumed wait (s) for a quota 429 without a usable ``Retry-After``."""
PREMIUM_REQUIRED = "active premium subscription required"
"""How Spotify's plain-text 403 to every call starts while the app owner's Premium has lapsed."""
PREMIUM_WAIT = 3600.0
"""When (s) a call is worth trying again after that 403: the renewal takes Spotify a few hours."""

Kind = Literal["transient", "rate_limit", "invalid", "renew", "no_answer"]

OUTAGE_MIN_ATTEMPTS = 3
"""Failed attempts in a row (across threads) an outage needs besides ``outage_after`` seconds."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop; see :class:`~spotify_catalog.settings.Settings` for the knobs."""

    max_attempts: int = 6
    max_total_wait: float = 180.0
    max_wait: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    rate_limit_backoff_initial: float = 2.0
    """Backoff of a 429 without a usable ``Retry-After`` (the limiter's window is 30 s)."""
    rate_limit_backoff_max: float = 30.0
    invalid_attempts: int = 3
    """Attempts for responses that are not what they claim (bad JSON, HTML with 200, ...)."""


class Retryable(Exception):
    """An attempt failed in a way that may pass; ``error`` is raised if retries run out.

    Kind ``no_answer`` (the attempt got no HTTP response) carries the :class:`OutageTracker`'s
    ``streak`` and ``verdict_in``, the seconds until the streak is long enough to be an outage.
    """

    def __init__(
        self,
        kind: Kind,
        reason: str,
        error: SpotifyError,
        retry_after: float | None = None,
        *,
        streak: int | None = None,
        verdict_in: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.error = error
        self.retry_after = retry_after
        self.streak = streak
        self.verdict_in = verdict_in


_JITTER = random.Random()
"""Jitter of retries without an ``rng`` of their own (seeding one per call cost 0.2 ms a request)."""


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    clock: Clock,
    sleep: Sleep,
    what: str,
    rng: random.Random | None = None,
    outage: OutageTracker | None = None,
) -> T:
    """Run ``attempt`` until it returns, retrying :class:`Retryable` failures within ``policy``.

    ``what`` names the request in log lines (e.g. ``GET /v1/search``). Exhausted retries raise the
    last failure's ``error``.

    With ``outage``: no attempt is made while it holds an outage (``UnreachableError`` at once), and
    attempts that got no answer while nothing else was answered either (kind ``no_answer``, same
    ``streak`` as this call's previous one) do not count against ``max_attempts``: the call keeps
    trying, its waits cut to end when the outage verdict is due, until an answer comes or the tracker
    declares the outage. ``max_total_wait`` still bounds it.
    """
    rules = _Rules(policy, clock, rng or _JITTER, what)

    def guarded() -> T:
        if outage is not None:
            outage.check()
        return attempt()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        wait=rules.wait,
        stop=rules.stop,
        sleep=sleep,
        before_sleep=rules.before_sleep,
        reraise=True,
    )
    try:
        return retrying(guarded)
    except Retryable as exc:
        log.warning(
            "%s: giving up after %d attempt(s): %s",
            what,
            retrying.statistics.get("attempt_number", 1),
            exc.reason,
        )
        raise exc.error from None


class _Rules:
    """The waits and the end of one :func:`call_with_retries` call, for tenacity: what the call has
    seen so far (its start, the invalid answers, the outage streak of its last failure)."""

    def __init__(self, policy: RetryPolicy, clock: Clock, jitter: random.Random, what: str) -> None:
        self.policy = policy
        self.clock = clock
        self.jitter = jitter
        self.what = what
        self.started = clock()
        self.invalid_seen = 0
        self.last_streak: int | None = None

    def wait(self, state: tenacity.RetryCallState) -> float:
        policy = self.policy
        exc = _retryable(state)
        if exc.kind == "renew":
            return 0.0
        if exc.kind == "rate_limit" and exc.retry_after:
            return exc.retry_after
        initial, maximum = policy.backoff_initial, policy.backoff_max
        if exc.kind == "rate_limit":  # Retry-After 0 or missing
            initial, maximum = policy.rate_limit_backoff_initial, policy.rate_limit_backoff_max
        ceiling = min(maximum, initial * 2 ** (min(state.attempt_number, 32) - 1))
        pause = self.jitter.uniform(ceiling / 2, ceiling)  # "equal jitter": never 0, never above the ceiling
        if exc.verdict_in is not None:  # wake up when the outage verdict is due
            pause = min(pause, max(exc.verdict_in, 0.0))
        return pause

    def stop(self, state: tenacity.RetryCallState) -> bool:
        exc = _retryable(state)
        if exc.kind == "invalid":
            self.invalid_seen += 1
            if self.invalid_seen >= self.policy.invalid_attempts:
                return True
        suspect = False
        if exc.kind == "no_answer" and exc.streak is not None:
            suspect = exc.streak == self.last_streak  # nothing was answered since this call's last failure
            self.last_streak = exc.streak
        if state.attempt_number >= self.policy.max_attempts and not suspect:
            return True
        return self.clock() - self.started + (state.upcoming_sleep or 0.0) > self.policy.max_total_wait

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = _retryable(state)
        pause = state.upcoming_sleep
        level = logging.INFO if exc.kind == "renew" else logging.WARNING
        counted = _counted(state, exc, self.policy)
        log.log(level, "%s: %s; retrying in %.1f s (%s)", self.what, exc.reason, pause, counted)


def _counted(state: tenacity.RetryCallState, exc: Retryable, policy: RetryPolicy) -> str:
    """The attempt about to be made, as a retry line counts it: ``attempt 3 of 6``; an attempt after
    one that got no answer is bounded by the outage verdict instead (attempts that got no answer while
    nothing else was answered do not count against ``max_attempts``)."""
    number = state.attempt_number + 1
    if exc.kind == "no_answer" and exc.verdict_in is not None:
        return f"attempt {number}; unreachable if nothing answers within {max(exc.verdict_in, 0.0):.1f} s"
    return f"attempt {number} of {policy.max_attempts}"


def _retryable(state: tenacity.RetryCallState) -> Retryable:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert isinstance(exc, Retryable)
    return exc


def safe_url(url: str | httpx.URL) -> str:
    """The URL without user info or fragment: safe for errors and logs (tokens travel in headers)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def network_failure(
    exc: httpx.HTTPError,
    what: str,
    url: str,
    *,
    outage: OutageTracker | None = None,
    started: float | None = None,
) -> Exception:
    """A :class:`Retryable` for network failures that may pass, else a :class:`TransportError`.

    With ``outage``, a failure that got no HTTP response is reported to it (``started``: when the
    attempt began), and the result may be its :class:`~spotify_catalog.errors.UnreachableError`.
    """
    name = type(exc).__name__
    error = TransportError(f"network error: {name}: {exc}" if str(exc) else f"network error: {name}", url=url)
    if outage is not None and got_no_answer(exc):
        return outage.failed(exc, url=url, started=started, error=error)
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return Retryable("transient", f"{name}", error)
    return error


def got_no_answer(exc: httpx.HTTPError) -> bool:
    """Whether ``exc`` means the server gave no answer: it could not be reached (refused, DNS, TLS,
    connect timeout), closed or reset the connection before responding, or did not respond in time.
    A full local connection pool (``PoolTimeout``) is not the server's doing."""
    if isinstance(exc, httpx.PoolTimeout):
        return False
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def never_sent(exc: httpx.HTTPError) -> bool:
    """Whether the request surely never reached the server: no connection was made."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


_DNS_WORDS = ("name or service", "name resolution", "nodename", "getaddrinfo", "no address")


def describe_network_error(exc: httpx.HTTPError) -> str:
    """A few words for a network failure: ``connection refused``, ``host name not found (DNS)``."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return "no answer in time (timeout)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed without an answer"
    if "refused" in lowered:
        return "connection refused"
    if any(s in lowered for s in _DNS_WORDS):
        return "host name not found (DNS)"
    if any(s in lowered for s in ("ssl", "certificate", "tls")):
        return f"TLS failed: {text}"
    if "reset" in lowered:
        return "connection reset"
    if "unreachable" in lowered:
        return "network unreachable"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}"


class OutageTracker:
    """Attempts in a row that got no answer, across every thread of a client; thread-safe.

    Any HTTP response (:meth:`answered`, whatever its status) ends the streak. A streak that has
    lasted ``after`` seconds (from the start of its first attempt) with at least ``min_attempts``
    failed attempts is an outage: :meth:`failed` returns an
    :class:`~spotify_catalog.errors.UnreachableError` instead of a :class:`Retryable`, ``on_outage``
    is called (the client wakes its sleeping retries with it), and for ``after`` seconds
    :meth:`check` refuses every attempt at once; after that one attempt is let through to see
    whether the API is back.
    """

    def __init__(
        self,
        *,
        after: float = 20.0,
        min_attempts: int = OUTAGE_MIN_ATTEMPTS,
        clock: Clock,
        on_outage: Callable[[], None] | None = None,
        on_recovery: Callable[[], None] | None = None,
    ) -> None:
        self.after = after
        self.min_attempts = min_attempts
        self._clock = clock
        self._on_outage = on_outage
        self._on_recovery = on_recovery
        self._lock = threading.Lock()
        self._since: float | None = None
        self._count = 0
        self._reason = ""
        self._origin = ""
        self._streak = 0
        self._declared_at: float | None = None
        self.outages = 0
        """Outages declared so far."""

    @property
    def failing(self) -> int:
        """Failed attempts in the current streak (0: the last attempt was answered)."""
        with self._lock:
            return self._count

    def answered(self) -> None:
        """An HTTP response came (any status): the API is there."""
        with self._lock:
            was_declared = self._declared_at is not None
            if self._count:
                log.info("%s answers again after %d failed attempt(s)", self._origin, self._count)
            self._since, self._count, self._declared_at = None, 0, None
            self._streak += 1
        if was_declared and self._on_recovery is not None:
            self._on_recovery()

    def check(self) -> None:
        """Raise :class:`~spotify_catalog.errors.UnreachableError` while an outage is held."""
        with self._lock:
            if self._declared_at is not None and self._clock() - self._declared_at < self.after:
                raise self._error(self._clock())

    def failed(
        self, exc: httpx.HTTPError, *, url: str, started: float | None = None, error: SpotifyError
    ) -> Exception:
        """Record an attempt (begun at ``started``) that got no answer; the exception to raise for it:
        :class:`Retryable` (kind ``no_answer``, retried; ``error`` if retries run out) or
        :class:`~spotify_catalog.errors.UnreachableError`."""
        reason = describe_network_error(exc)
        declared = False
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since = min(now, started) if started is not None else now
            self._count += 1
            self._reason, self._origin = reason, origin(url)
            if self._declared_at is not None or (
                now - self._since >= self.after and self._count >= self.min_attempts
            ):
                declared = self._declared_at is None
                self.outages += declared
                self._declared_at = now
                unreachable = self._error(now)
            else:
                return Retryable(
                    "no_answer",
                    reason,
                    error,
                    streak=self._streak,
                    verdict_in=self._since + self.after - now,
                )
        if declared:
            log.info("%s", unreachable)
            if self._on_outage is not None:
                self._on_outage()
        return unreachable

    def _error(self, now: float) -> UnreachableError:
        assert self._since is not None
        return UnreachableError(
            self._origin, self._reason, attempts=self._count, seconds=max(0.0, now - self._since)
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds only); ``None`` when missing or unusable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


def json_body(response: httpx.Response, url: str) -> dict[str, Any]:
    """The response's JSON object, or :class:`Retryable` (kind ``invalid``) when it is not one."""
    content_type = response.headers.get("content-type", "")
    problem: str | None = None
    data: Any = None
    if "json" not in content_type.lower():
        problem = f"expected JSON, got content type {content_type or 'none'!r}"
    else:
        try:
            data = orjson.loads(response.content)
        except (ValueError, UnicodeDecodeError):  # orjson.JSONDecodeError is a ValueError
            problem = f"body is not valid JSON ({len(response.content)} bytes)"
        else:
            if not isinstance(data, dict):
                problem = f"expected a JSON object, got {type(data).__name__}"
    if problem is not None:
        error = InvalidResponseError(f"invalid response (HTTP {response.status_code}): {problem}", url=url)
        raise Retryable("invalid", f"HTTP {response.status_code} {problem}", error)
    return data  # type: ignore[no-any-return]


def _error_fields(response: httpx.Response) -> tuple[str, str | None]:
    """Spotify's ``error.message`` and ``error.reason`` from an error body, tolerating any body."""
    try:
        data = orjson.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            reason = error.get("reason")
            return (
                str(message) if message else response.reason_phrase,
                str(reason) if reason else None,
            )
        if isinstance(error, str):
            return error, None
    return _plain_message(response) or response.reason_phrase or f"HTTP {response.status_code}", None


MAX_PLAIN_MESSAGE = 200


def _plain_message(response: httpx.Response) -> str | None:
    """The first line of a short plain-text error body (Spotify's premium-required 403 and some 429s
    are ``text/plain``); ``None`` for an empty, HTML or binary body."""
    if "html" in response.headers.get("content-type", "").lower():
        return None
    try:
        text = response.content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if not line or line.startswith(("{", "[", "<")):
        return None
    line = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)
    return line if len(line) <= MAX_PLAIN_MESSAGE else line[: MAX_PLAIN_MESSAGE - 1] + "…"


def check_response(
    response: httpx.Response, *, url: str, method: str, policy: RetryPolicy, now: WallClock
) -> dict[str, Any]:
    """The JSON of a successful Web API response; otherwise the right error or :class:`Retryable`.

    401 is left to the caller (token renewal): it raises ``UnauthorizedError`` here.
    """
    status = response.status_code
    if 200 <= status < 300:
        return json_body(response, url)
    message, reason = _error_fields(response)
    error = api_error_class(status)(status, message, url=url, method=method, reason=reason)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        if reason == QUOTA_REASON:
            wait = retry_after if retry_after is not None else DEFAULT_QUOTA_WAIT
            quota = QuotaExceededError(
                f"Spotify quota exceeded ({message})", retry_at=now() + timedelta(seconds=wait), url=url
            )
            log.warning("%s %s: quota exceeded, not waiting %.0f s", method, url, wait)
            raise quota
        if retry_after is not None and retry_after > policy.max_wait:
            log.warning(
                "%s %s: 429 with Retry-After %.0f s, over max_wait: not waiting", method, url, retry_after
            )
            raise WaitTooLongError(
                f"Spotify asked to wait {retry_after:.0f} s, over the maximum of {policy.max_wait:.0f} s",
                retry_at=now() + timedelta(seconds=retry_after),
                url=url,
            )
        shown = "no Retry-After" if retry_after is None else f"Retry-After {retry_after:g} s"
        raise Retryable("rate_limit", f"429 {message} ({shown})", error, retry_after)
    if status >= 500:
        raise Retryable("transient", f"{status} {message}", error)
    if status == 403 and message.lower().startswith(PREMIUM_REQUIRED):
        log.info("%s %s: 403 %s", method, url, message)
        raise PremiumLapsedError(retry_at=now() + timedelta(seconds=PREMIUM_WAIT), url=url)
    raise error
