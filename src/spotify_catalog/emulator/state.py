"""The emulator's mutable state: clock, issued tokens (with the user and scopes they carry),
authorization codes and refresh tokens, the test users, rate window, quota, counters, fault dice.

Rules (documented in docs/emulator.md): the rate limit and the quota count Web API requests that
carry a valid token; requests answered 429 do not count (neither window grows while a client is
refused); token requests and ``/_emulator/*`` never count. The quota is counted per developer account
(the account of the token's client) and bucket (:mod:`spotify_catalog.buckets`), each over its own
rolling 24 h. ``reset()`` clears counters, windows and quota, and keeps issued tokens valid.
Authorization codes last :data:`CODE_TTL` seconds and serve once; refresh tokens expire six months
after the login that issued the first of them (:func:`spotify_catalog.oauth.refresh_token_expiry`).
"""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from spotify_catalog import oauth
from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.config import Client, EmulatorConfig
from spotify_catalog.emulator.search import Searcher
from spotify_catalog.emulator.users import Users

RATE_WINDOW = 30.0
REQUEST_LOG_SIZE = 20_000
"""The request log keeps the latest this many requests."""
CODE_TTL = 600.0
"""Seconds an authorization code may wait for its exchange (RFC 6749 §4.1.2: ten minutes at most)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token stands for: its client's developer account, and for a user's token the
    client, the test user and the scopes the user granted."""

    account: str
    client_id: str = ""
    user: str | None = None
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PendingCode:
    """An authorization code waiting for its exchange."""

    client_id: str
    user: str
    redirect_uri: str
    scopes: frozenset[str]
    challenge: str | None  # the S256 code challenge; None: a login without PKCE
    expires: float


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for; ``public``: issued to a PKCE login (refreshed with the client
    id alone, and rotated at each refresh)."""

    client_id: str
    user: str
    scopes: frozenset[str]
    logged_in: float
    expires: float
    public: bool


@dataclass(frozen=True)
class LoggedRequest:
    """One request the emulator answered: ``status`` 0 for a connection dropped on purpose."""

    method: str
    path: str
    query: dict[str, str]
    status: int

    @property
    def refused(self) -> bool:
        """Answered with an error status (4xx/5xx) or dropped."""
        return self.status >= 400 or self.status == 0


class EmulatorClock:
    """Wall clock plus an offset that :meth:`advance` moves (tests never wait)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.offset = 0.0

    def __call__(self) -> float:
        return self._clock() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds


@dataclass(frozen=True)
class Refusal:
    """A 429: which limiter, and the Retry-After in seconds."""

    quota: bool
    retry_after: int


class EmulatorState:
    """Everything one emulator instance remembers; thread-safe."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.catalog = Catalog(config.seed, config.artists)
        self.searcher = Searcher(self.catalog)
        self.clock = EmulatorClock(clock)
        self.faults = random.Random(config.seed)
        self._lock = threading.Lock()
        self._clients = config.accepted_clients()
        self._sizes = config.bucket_sizes()
        self._tokens: dict[str, tuple[float, Grant]] = {}  # token: (expires at, grant)
        self._codes: dict[str, PendingCode] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self.users = Users(self.catalog, config.users)
        self._rate: deque[float] = deque()
        self._quota: dict[tuple[str, str], deque[float]] = {}  # (account, bucket): times, oldest first
        self._by_route: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._requests = 0
        self._log: deque[tuple[str, str, bytes, str]] = deque(maxlen=REQUEST_LOG_SIZE)

    # ---------------------------------------------------------------- tokens
    def client(self, client_id: str) -> Client | None:
        """The accepted client with this id."""
        return self._clients.get(client_id)

    def issue_token(self, account: str | None = None, grant: Grant | None = None) -> str:
        """A new access token of ``account`` (by default the default client's), or of ``grant`` (a
        user's token)."""
        token = "BQ" + secrets.token_urlsafe(48)
        with self._lock:
            if grant is None:
                grant = Grant(
                    account if account is not None else self._clients[self.config.client_id].account
                )
            self._tokens[token] = (self.clock() + self.config.token_ttl, grant)
        return token

    def token_status(self, token: str) -> tuple[str, Grant | None]:
        """``valid``, ``expired`` or ``invalid``, and what the token stands for."""
        issued = self._tokens.get(token)
        if issued is None:
            return "invalid", None
        expires, grant = issued
        return ("valid" if self.clock() < expires else "expired"), grant

    def new_code(
        self, client_id: str, user: str, redirect_uri: str, scopes: frozenset[str], challenge: str | None
    ) -> str:
        """An authorization code for a user's consent, valid :data:`CODE_TTL` seconds, once."""
        code = "AQ" + secrets.token_urlsafe(96)
        with self._lock:
            expires = self.clock() + CODE_TTL
            self._codes[code] = PendingCode(client_id, user, redirect_uri, scopes, challenge, expires)
        return code

    def take_code(self, code: str) -> PendingCode | None:
        """The pending code (gone afterwards, whatever the exchange makes of it), if it is known and
        not expired."""
        with self._lock:
            pending = self._codes.pop(code, None)
        return pending if pending is not None and self.clock() < pending.expires else None

    def new_refresh_token(
        self,
        client_id: str,
        user: str,
        scopes: frozenset[str],
        *,
        public: bool,
        logged_in: float | None = None,
    ) -> str:
        """A refresh token of a login (``logged_in``: the emulator-clock time of the login, now by
        default); it expires six months after the login."""
        token = "AQ" + secrets.token_urlsafe(96)
        with self._lock:
            start = self.clock() if logged_in is None else logged_in
            expires = oauth.refresh_token_expiry(datetime.fromtimestamp(start, UTC)).timestamp()
            self._refresh[token] = RefreshGrant(client_id, user, scopes, start, expires, public)
        return token

    def refresh_status(self, token: str) -> tuple[str, RefreshGrant | None]:
        """``valid``, ``expired`` or ``invalid``, and the login a refresh token stands for."""
        grant = self._refresh.get(token)
        if grant is None:
            return "invalid", None
        return ("valid" if self.clock() < grant.expires else "expired"), grant

    def drop_refresh_token(self, token: str) -> None:
        """Forget a refresh token (rotated, or revoked by a test)."""
        with self._lock:
            self._refresh.pop(token, None)

    # ---------------------------------------------------------------- limits
    def admit(self, bucket: str, account: str) -> Refusal | None:
        """Count one Web API request of ``account`` in ``bucket``, or say why it is refused (refusals
        are not counted)."""
        size = self._sizes[bucket]
        rate_limit = self.config.rate_limit
        if not size and not rate_limit:
            return None
        with self._lock:
            now = self.clock()
            window = self._quota.get((account, bucket)) if size else None
            if size and window is None:
                window = self._quota[account, bucket] = deque()
            if window is not None:
                span = self.config.quota_window
                while window and window[0] <= now - span:
                    window.popleft()
                if len(window) >= size:  # Retry-After: until the oldest request that must go has left
                    wait = window[len(window) - size] + span - now
                    return Refusal(True, max(1, math.ceil(wait)))
            if rate_limit:
                while self._rate and self._rate[0] <= now - RATE_WINDOW:
                    self._rate.popleft()
                if len(self._rate) >= rate_limit:
                    wait = self._rate[len(self._rate) - rate_limit] + RATE_WINDOW - now
                    return Refusal(False, max(1, math.ceil(wait)))
            if window is not None:
                window.append(now)
            if rate_limit:
                self._rate.append(now)
        return None

    def _quota_stats(self, now: float) -> dict[str, dict[str, Any]]:
        """Each account's use of each bucket in the last 24 h (caller holds the lock)."""
        out: dict[str, dict[str, Any]] = {}
        span = self.config.quota_window
        for (account, bucket), window in sorted(self._quota.items()):
            while window and window[0] <= now - span:
                window.popleft()
            if window:
                out.setdefault(account, {})[bucket] = {
                    "used": len(window),
                    "size": self._sizes[bucket],
                    "frees_at": [t + span for t in window],
                }
        return out

    def fault(self) -> str | None:
        """The fault kind to inflict on this request, if the dice say so."""
        config = self.config
        if config.fault_rate <= 0:
            return None
        with self._lock:
            if self.faults.random() >= config.fault_rate:
                return None
            return self.faults.choice(config.fault_kinds)

    # ---------------------------------------------------------------- stats
    def record(self, route: str, status: str, method: str = "", path: str = "", query: bytes = b"") -> None:
        """Count one answered request (and log it, when ``method`` is given)."""
        with self._lock:
            self._requests += 1
            self._by_route[route] += 1
            self._by_status[status] += 1
            if method:
                self._log.append((method, path, query, status))

    def requests(self) -> list[LoggedRequest]:
        """The requests answered since start or :meth:`reset`, oldest first (``/_emulator/*`` left
        out; the latest ``REQUEST_LOG_SIZE``)."""
        with self._lock:
            entries = list(self._log)
        return [
            LoggedRequest(
                method,
                path,
                dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)),
                0 if status == "drop" else int(status),
            )
            for method, path, query, status in entries
        ]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "by_route": dict(sorted(self._by_route.items())),
                "by_status": dict(sorted(self._by_status.items())),
                "quota": self._quota_stats(self.clock()),
            }

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_route.clear()
            self._by_status.clear()
            self._log.clear()
            self._rate.clear()
            self._quota.clear()

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change run-time settings (``ValueError`` if invalid); returns the new configuration."""
        with self._lock:
            self.config = self.config.replace(**changes)
            if self.config.users != self.users.names:
                self.users = Users(self.catalog, self.config.users)
            self._clients = self.config.accepted_clients()
            self._sizes = self.config.bucket_sizes()
            if self.config.rate_limit == 0:
                self._rate.clear()
            for key in [key for key in self._quota if not self._sizes[key[1]]]:
                del self._quota[key]  # a bucket no longer limited forgets its window
            return self.config
