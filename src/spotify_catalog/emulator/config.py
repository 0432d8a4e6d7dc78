"""The emulator's settings: what ``spotify-catalog emulator`` options and ``/_emulator/config`` set."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from spotify_catalog import buckets, oauth
from spotify_catalog.emulator.catalog import MAX_ARTISTS

Profile = Literal["development", "extended"]
RetryAfterMode = Literal["normal", "zero", "omit"]
PROFILES = ("development", "extended")
STATUS_FAULTS = ("500", "502", "503")
BODY_FAULTS = ("truncated", "html", "content_type", "missing_field", "extra_field", "null_items")
# answered before the handler runs, like the status faults, but with a body that is not JSON
RAW_FAULTS = ("plain_text_error", "empty_429")
FAULT_KINDS = (*STATUS_FAULTS, "drop", *BODY_FAULTS, *RAW_FAULTS)
DEFAULT_FAULTS = (*STATUS_FAULTS, "drop")
# settings that may change while the emulator runs (seed and artists shape the catalog: fixed)
RUNTIME_FIELDS = (
    "profile",
    "latency_ms",
    "rate_limit",
    "quota",
    "token_ttl",
    "fault_rate",
    "fault_kinds",
    "retry_after",
    "client_id",
    "client_secret",
    "clients",
    "quota_buckets",
    "owner_premium",
    "users",
    "redirect_uris",
)
DEFAULT_USERS = ("alice",)
APP_USERS = 5
"""Development Mode: an app has at most five users, added by its owner in the dashboard (reference
§5.2, §12.1); the emulator adds the first five of ``users`` to every app."""
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Client:
    """A client id the token endpoint accepts, its secret, and the developer account it belongs to (the
    quota is counted per account: the client ids of one account share it)."""

    client_id: str
    client_secret: str = field(repr=False)
    account: str

    @classmethod
    def parse(cls, text: str) -> Client:
        """``ID:SECRET[:ACCOUNT]``; the account is the client id when not given."""
        client_id, _, rest = text.partition(":")
        secret, _, account = rest.partition(":")
        if not client_id or not secret:  # the text is not shown: it may hold a secret
            raise ValueError("expected a client as ID:SECRET[:ACCOUNT] (id and secret not empty)")
        return cls(client_id, secret, account or client_id)


def parse_quota_buckets(text: str) -> dict[str, int]:
    """``artist-albums=100,search=500`` as ``{"artist-albums": 100, "search": 500}`` (the names and
    sizes are checked by :func:`validate`)."""
    sizes: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, size = part.partition("=")
        if not part:
            continue
        if not sep or not size.strip().isdigit():
            raise ValueError(f"expected quota buckets as NAME=N,NAME=N..., got {part!r}")
        sizes[name.strip()] = int(size)
    return sizes


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. ``rate_limit`` = requests per rolling 30 s (0 = off); ``quota`` = the
    size of each quota bucket (:mod:`spotify_catalog.buckets`) per account and rolling 24 h, unless
    ``quota_buckets`` gives a bucket its own size (0 = that bucket is not limited); ``quota_window``:
    the seconds of that rolling window (24 h; a test that must see the time pass shortens it);
    ``retry_after`` of the 30-s limiter's 429: ``normal`` (seconds until a slot frees), ``zero``
    (``Retry-After: 0``) or ``omit`` (no header). ``client_id``/``client_secret``: the default pair,
    in the account named as its client id; ``clients``: more (``Client`` or ``"ID:SECRET[:ACCOUNT]"``;
    an entry with the default pair's id replaces it).
    ``owner_premium=False``: the app owner's Premium has lapsed, every Web API call is refused.
    ``users``: the test users who can log in (``GET /authorize``), each with a library and a listening
    history; in ``development`` the first :data:`APP_USERS` are the app's users, the others get the
    Development-Mode 403. ``redirect_uris``: those registered for every client (a loopback one
    without a port matches it with any port)."""

    profile: Profile = "development"
    seed: int = 42
    artists: int = 2000
    latency_ms: float = 0.0
    rate_limit: int = 0
    quota: int = 0
    token_ttl: int = 3600
    fault_rate: float = 0.0
    client_id: str = "emulator-client-id"
    client_secret: str = field(default="emulator-client-secret", repr=False)
    fault_kinds: tuple[str, ...] = DEFAULT_FAULTS
    retry_after: RetryAfterMode = "normal"
    clients: tuple[Client, ...] = ()
    quota_buckets: Mapping[str, int] = field(default_factory=dict)
    quota_window: float = 86_400.0
    owner_premium: bool = True
    users: tuple[str, ...] = DEFAULT_USERS
    redirect_uris: tuple[str, ...] = (oauth.DEFAULT_REDIRECT_URI,)

    def __post_init__(self) -> None:
        # as JSON and the pytest plugin give them: "ID:SECRET[:ACCOUNT]" strings, "NAME=N,..." text
        clients: Any = self.clients
        if isinstance(clients, list | tuple):
            clients = tuple(Client.parse(c) if isinstance(c, str) else c for c in clients)
            object.__setattr__(self, "clients", clients)
        for name in ("users", "redirect_uris"):  # "alice,bob" as the command line writes them
            value: Any = getattr(self, name)
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        sizes: Any = self.quota_buckets
        if isinstance(sizes, str):
            object.__setattr__(self, "quota_buckets", parse_quota_buckets(sizes))
        problems = validate(self)
        if problems:
            raise ValueError(problems[0])
        object.__setattr__(self, "quota_buckets", dict(self.quota_buckets))  # a copy of the caller's

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with run-time settings changed (``ValueError`` for unknown or invalid ones)."""
        unknown = sorted(set(changes) - set(RUNTIME_FIELDS))
        if unknown:
            raise ValueError(f"cannot change {', '.join(unknown)} at run time")
        if "fault_kinds" in changes and not isinstance(changes["fault_kinds"], str | bytes):
            changes["fault_kinds"] = tuple(changes["fault_kinds"])
        return dataclasses.replace(self, **changes)

    def accepted_clients(self) -> dict[str, Client]:
        """Every client the token endpoint accepts, by client id."""
        accepted = {self.client_id: Client(self.client_id, self.client_secret, self.client_id)}
        accepted.update((c.client_id, c) for c in self.clients)
        return accepted

    def app_users(self) -> tuple[str, ...]:
        """The users added to every app: all of them in ``extended``, the first five in ``development``."""
        return self.users if self.profile == "extended" else self.users[:APP_USERS]

    def bucket_sizes(self) -> dict[str, int]:
        """The size of every quota bucket (0 = not limited)."""
        return {name: self.quota_buckets.get(name, self.quota) for name in buckets.NAMES}


def validate(config: EmulatorConfig) -> list[str]:
    """What is wrong with a configuration, as one-line messages."""
    problems = []
    if config.profile not in PROFILES:
        problems.append(f"profile must be one of {', '.join(PROFILES)}")
    if not isinstance(config.artists, int) or not 3 <= config.artists <= MAX_ARTISTS:
        problems.append(f"artists must be between 3 and {MAX_ARTISTS}")
    for name in ("rate_limit", "quota", "token_ttl"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{name} must be a whole number >= 0")
    if config.token_ttl == 0:
        problems.append("token_ttl must be at least 1")
    if not isinstance(config.latency_ms, int | float) or config.latency_ms < 0:
        problems.append("latency_ms must be >= 0")
    if not isinstance(config.quota_window, int | float) or not config.quota_window > 0:
        problems.append("quota_window must be a number of seconds > 0")
    if not isinstance(config.fault_rate, int | float) or not 0 <= config.fault_rate <= 1:
        problems.append("fault_rate must be between 0 and 1")
    if not isinstance(config.fault_kinds, tuple) or not config.fault_kinds:
        problems.append("fault_kinds must be a non-empty list")
    else:
        bad = [k for k in config.fault_kinds if k not in FAULT_KINDS]
        if bad:
            problems.append(f"unknown fault kind {bad[0]!r} (known: {', '.join(FAULT_KINDS)})")
    if config.retry_after not in ("normal", "zero", "omit"):
        problems.append("retry_after must be normal, zero or omit")
    if not config.client_id or not config.client_secret:
        problems.append("client_id and client_secret must not be empty")
    problems += _clients_problems(config.clients)
    problems += _bucket_problems(config.quota_buckets)
    premium: Any = config.owner_premium
    if not isinstance(premium, bool):
        problems.append("owner_premium must be true or false")
    problems += _user_problems(config.users)
    problems += _redirect_problems(config.redirect_uris)
    return problems


def _user_problems(users: Any) -> list[str]:
    if not isinstance(users, tuple) or not all(isinstance(u, str) for u in users):
        return ["users must be a list of names"]
    bad = [u for u in users if not _USER_NAME.fullmatch(u)]
    if bad:
        return [f"bad user name {bad[0][:64]!r}: letters, digits, '.', '_' and '-', 64 at most"]
    twice = sorted({u for u in users if users.count(u) > 1})
    return [f"user {twice[0]!r} given twice"] if twice else []


def _redirect_problems(uris: Any) -> list[str]:
    if not isinstance(uris, tuple) or not all(isinstance(u, str) for u in uris):
        return ["redirect_uris must be a list of URIs"]
    return [problem for uri in uris if (problem := oauth.redirect_uri_problem(uri)) is not None][:1]


def _clients_problems(clients: Any) -> list[str]:
    if not isinstance(clients, tuple) or not all(isinstance(c, Client) for c in clients):
        return ["clients must be a list of ID:SECRET[:ACCOUNT]"]
    if not all(c.client_id and c.client_secret and c.account for c in clients):
        return ["a client's id, secret and account must not be empty"]
    ids = [c.client_id for c in clients]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    return [f"client id {twice[0]!r} given twice"] if twice else []


def _bucket_problems(sizes: Any) -> list[str]:
    if not isinstance(sizes, Mapping):
        return ["quota_buckets must map bucket names to sizes"]
    unknown = [name for name in sizes if name not in buckets.NAMES]
    if unknown:
        return [f"unknown quota bucket {unknown[0]!r} (known: {', '.join(buckets.NAMES)})"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes.values()):
        return ["a quota bucket's size must be a whole number >= 0"]
    return []
