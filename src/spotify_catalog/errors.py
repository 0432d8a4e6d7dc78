"""The one exception tree of spotify-catalog.

Every error the library raises on purpose derives from :class:`SpotifyCatalogError`, and each class
carries the exit code the command line uses for it::

    SpotifyCatalogError                  (exit 1)
    ├── UsageError                       (exit 2)  bad option, bad input file, empty query, ...
    │   ├── ConfigError                  (exit 2)  missing or unusable settings (credentials, URLs)
    │   ├── LoginRequired                (exit 2)  a user must log in (again): no login, or invalid_grant
    │   ├── ScopeMissing                 (exit 2)  the user's login did not grant a scope a request needs
    │   └── UserNotRegistered            (exit 2)  Development Mode: the user is not one of the app's
    ├── LoginFailed                      (exit 1)  auth login did not complete: refused, timed out, ...
    ├── SpotifyError                     (exit 1)  talking to Spotify went wrong, after retries
    │   ├── TransportError               (exit 1)  network: connect, read, timeout, dropped connection
    │   │   └── UnreachableError         (exit 1)  no answer from the API for a while: an outage
    │   ├── InvalidResponseError         (exit 1)  a response that is not what it claims (bad JSON, ...)
    │   ├── AuthenticationError          (exit 1)  the token endpoint refused the credentials
    │   ├── APIError                     (exit 1)  the Web API answered with an error status
    │   │   ├── BadRequestError          400
    │   │   ├── UnauthorizedError        401 (after one renewal of the token)
    │   │   ├── ForbiddenError           403 (e.g. an endpoint Development Mode does not allow)
    │   │   ├── NotFoundError            404
    │   │   ├── RateLimitedError         429 of the 30-second limiter, retries exhausted
    │   │   └── ServerError              5xx, retries exhausted
    │   └── MustWaitError                (exit 75) calls may resume only at ``retry_at``
    │       ├── QuotaExceededError       429 with ``"reason": "QUOTA_EXCEEDED"``
    │       ├── WaitTooLongError         a ``Retry-After`` longer than the configured maximum
    │       └── PremiumLapsedError       403 to every call: the app owner's Premium is not active
    ├── StorageError                     (exit 1)  the database failed or went away
    ├── WrongModeError                   (exit 1)  the API contradicts the API mode given (--mode)
    └── Stopped                          (exit 75) a crawl stopped on purpose (budget, quota, wait)
        ├── BudgetSpent                  (exit 75) the account's daily budget is used up (the ledger)
        ├── BucketParked                 (exit 75) a quota bucket Spotify refused is parked (the ledger)
        └── Interrupted                  (exit 130, 143, 129) stopped by Ctrl-C, SIGTERM or SIGHUP

    KeyboardInterrupt                    (exit 130) Python's own, raised by Ctrl-C (SIGINT)
    └── Terminated                       (exit 143, 129) raised by the command line's handler of
                                         SIGTERM (what systemd, Docker and Kubernetes send) or SIGHUP

:class:`Terminated` is a ``KeyboardInterrupt`` so that every path that stops cleanly on Ctrl-C (the
crawl records ``interrupted``, the export removes its staging area) does the same on SIGTERM and
SIGHUP; only the exit code (128 + the signal number) and the name in messages differ.

No message of any of these contains a client secret, an access token or a refresh token: URLs are
kept without credentials, and request headers are never stored.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from datetime import UTC, datetime

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL: try again later
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_SIGHUP = 129  # 128 + SIGHUP
EXIT_SIGTERM = 143  # 128 + SIGTERM


class SpotifyCatalogError(Exception):
    """Base of every error spotify-catalog raises on purpose."""

    exit_code: int = EXIT_ERROR


class UsageError(SpotifyCatalogError):
    """The user asked for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Settings are missing or unusable."""


class LoginRequired(UsageError):
    """A user must log in (again): no login stored under that name, or Spotify refused its refresh
    token (``invalid_grant``: expired six months after the login, or revoked)."""


class ScopeMissing(UsageError):
    """The user's login did not grant a scope that a request needs; ``scopes`` names the missing ones."""

    def __init__(self, message: str, *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.scopes = scopes


class UserNotRegistered(UsageError):
    """Spotify's 403 for a user who is not one of a Development-Mode app's users (at most five, added
    by the app's owner in the dashboard)."""


class LoginFailed(SpotifyCatalogError):
    """``auth login`` did not complete: the user refused, the answer's ``state`` did not match, no
    answer came in time, or Spotify refused the code exchange."""


class SpotifyError(SpotifyCatalogError):
    """Talking to Spotify (or the emulator) went wrong."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url

    def __str__(self) -> str:
        return f"{self.message} ({self.url})" if self.url else self.message


class TransportError(SpotifyError):
    """The network failed: connection refused or dropped, timeout."""


class UnreachableError(TransportError):
    """Nothing answered for a while, on any thread of the client: an outage, not one request's bad luck.

    ``origin`` is the unreachable ``scheme://host[:port]``, ``reason`` the last failure (``connection
    refused``), ``attempts`` the failed attempts in a row across threads over ``seconds``.
    """

    def __init__(self, origin: str, reason: str, *, attempts: int, seconds: float) -> None:
        super().__init__(
            f"cannot reach {origin}: {reason} ({attempts} attempts in {seconds:.1f} s); "
            "nothing was lost, run again later"
        )
        self.origin = origin
        self.reason = reason
        self.attempts = attempts
        self.seconds = seconds


class InvalidResponseError(SpotifyError):
    """A response that is not what it claims to be: truncated or non-JSON body, wrong shape."""


class AuthenticationError(SpotifyError):
    """The token endpoint refused the credentials (``Invalid client``, ``Invalid client secret``)."""

    def __init__(self, message: str, *, error: str | None = None, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.error = error


class APIError(SpotifyError):
    """The Web API answered with an error status; ``message`` is Spotify's own."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        url: str | None = None,
        method: str = "GET",
        reason: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.method = method
        self.reason = reason

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.url else ""
        return f"Spotify answered {self.status}: {self.message}{where}"


class BadRequestError(APIError):
    """400."""


class UnauthorizedError(APIError):
    """401 even after the token was renewed."""


class ForbiddenError(APIError):
    """403: not allowed for this app, e.g. a batch endpoint in Development Mode."""


class NotFoundError(APIError):
    """404."""


class RateLimitedError(APIError):
    """429 of the 30-second rate limiter, retries exhausted."""


class ServerError(APIError):
    """5xx, retries exhausted."""


_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitedError,
}


def api_error_class(status: int) -> type[APIError]:
    """The :class:`APIError` subclass for an HTTP status."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIError)


class MustWaitError(SpotifyError):
    """Calls may resume only at ``retry_at``; never slept through inside a call."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self, message: str, *, retry_at: datetime, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.retry_at = retry_at

    def __str__(self) -> str:
        return f"{self.message}; retry after {format_time(self.retry_at)}"


class QuotaExceededError(MustWaitError):
    """429 with ``"reason": "QUOTA_EXCEEDED"``: the rolling 24 h quota is spent."""


class WaitTooLongError(MustWaitError):
    """Spotify asked for a wait longer than the configured maximum."""


PREMIUM_LAPSED = (
    "Spotify refuses every call because the app owner's Premium subscription is not active; calls are "
    "allowed again a few hours after it is renewed"
)


class PremiumLapsedError(MustWaitError):
    """Spotify's plain-text 403 ``Active premium subscription required for the owner of the app...``,
    which answers every Web API call while the token endpoint still answers 200. Not an API mode and
    not a failure of what was asked: nothing is wrong but the owner's subscription, and ``retry_at`` is
    when trying again is worth one request."""

    def __init__(self, *, retry_at: datetime, url: str | None = None) -> None:
        super().__init__(PREMIUM_LAPSED, retry_at=retry_at, url=url)


class StorageError(SpotifyCatalogError):
    """The database failed or went away."""


class WrongModeError(SpotifyCatalogError):
    """The Web API answered as an app of another API mode than the one given with ``--mode``."""

    def __init__(self, given: str, actual: str) -> None:
        super().__init__(
            f"the app is in {actual} mode, not {given} as --mode {given} says: "
            f"run again with --mode {actual} (or --mode auto)"
        )
        self.given = given
        self.actual = actual


class Stopped(SpotifyCatalogError):
    """A crawl stopped on purpose; running it again continues where it stopped."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_at = retry_at

    def __str__(self) -> str:
        if self.retry_at is None:
            return self.message
        return f"{self.message}; continue after {format_time(self.retry_at)}"


class BudgetSpent(Stopped):
    """The account's ``--daily-budget`` is used up in the rolling 24 h of its ledger; ``retry_at``: when
    enough of its requests leave the window for one more."""


PARKED = "parked (Spotify answered 429 QUOTA_EXCEEDED)"
"""Why a bucket is parked: Spotify refused one of its requests."""
FULL = "full (as many requests in the last 24 h as Spotify let through before its 429)"
"""Why a bucket is parked: the ledger counted its learnt size in the rolling 24 h."""


class BucketParked(Stopped):
    """Quota buckets Spotify refused with ``429 QUOTA_EXCEEDED`` are parked in the account's ledger
    (``parked``: each bucket and until when); ``retry_at``: the earliest of those times. Raised before
    a request to a parked bucket is sent (``note``: nothing was sent to it), and by a crawl that has
    done every task but those of parked buckets."""

    def __init__(
        self, parked: Mapping[str, datetime], *, note: str = "nothing was sent to it", why: str = PARKED
    ) -> None:
        self.parked = dict(parked)
        self.why = why
        shown = ", ".join(
            f"{bucket} until {format_time(until)}" for bucket, until in sorted(self.parked.items())
        )
        word = "bucket" if len(self.parked) == 1 else "buckets"
        super().__init__(
            f"quota {word} {why}: {shown}; {note}",
            retry_at=min(self.parked.values()),
        )

    def __str__(self) -> str:
        return self.message


class Interrupted(Stopped):
    """Stopped by Ctrl-C (exit 130), SIGTERM (143) or SIGHUP (129); ``cause`` names which."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str, *, cause: str = "Ctrl-C", exit_code: int = EXIT_INTERRUPTED) -> None:
        super().__init__(message)
        self.cause = cause
        self.exit_code = exit_code

    @classmethod
    def by(cls, interrupt: BaseException, hint: str) -> Interrupted:
        """``interrupted by SIGTERM; <hint>`` for the ``KeyboardInterrupt`` (or :class:`Terminated`)
        that stopped the work, with its exit code."""
        cause = interrupt_name(interrupt)
        return cls(f"interrupted by {cause}; {hint}", cause=cause, exit_code=interrupt_exit_code(interrupt))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread by the command line's signal handler; handled
    wherever Ctrl-C is. ``exit_code`` is 128 + the signal number (143 for SIGTERM, 129 for SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum

    @property
    def signal_name(self) -> str:
        """``SIGTERM``, ``SIGHUP``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def __str__(self) -> str:
        return self.signal_name


def interrupt_name(exc: BaseException) -> str:
    """What stopped the program, for messages and ``_runs.reason``: ``Ctrl-C``, ``SIGTERM``, ``SIGHUP``."""
    return exc.signal_name if isinstance(exc, Terminated) else "Ctrl-C"


def interrupt_exit_code(exc: BaseException) -> int:
    """The exit code for an interruption: 130 for Ctrl-C, 128 + the signal number otherwise."""
    return exc.exit_code if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none): for one-line
    errors and log lines."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def joined_lines(text: str) -> str:
    """A library's message of several lines (SQLAlchemy's list of valid URL forms) as one line: each
    line stripped, blank ones dropped, joined by ``"; "`` (by a space after a line ending in ``:``)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = lines[0] if lines else ""
    for line in lines[1:]:
        joined += (" " if joined.endswith(":") else "; ") + line
    return joined


def format_time(moment: datetime) -> str:
    """``2026-11-25 13:05:00 UTC``: how times are shown to users."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


SHOWN = 60
"""Characters of a user's value quoted in a message (:func:`shown`)."""


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to :data:`SHOWN` characters (a value read from a file or
    the environment may be a whole file long)."""
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")
