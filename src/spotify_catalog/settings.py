"""Settings of the Spotify client: flags > environment > config file (TOML) > ``.env``.

Sources, highest priority first:

1. ``overrides`` (the command-line flags; ``None`` values are ignored),
2. the process environment (``SPOTIFY_CLIENT_ID``, ``SPOTIFY_CLIENT_SECRET``, ``SPOTIFY_API_URL``,
   ``SPOTIFY_TOKEN_URL`` and ``SPOTIFY_CATALOG_*`` for the tuning knobs, see :data:`ENV_NAMES`),
3. the ``[spotify]`` table of a TOML settings file (path from ``config_path``, ``SPOTIFY_CATALOG_CONFIG``),
4. a ``.env`` file in the working directory (read, never written into ``os.environ``).

The client secret is held in a :class:`Secret`, whose ``repr`` and ``str`` are redacted; its value is
registered in :mod:`spotify_catalog.redaction`, which hides it from log lines and messages.
"""

from __future__ import annotations

import enum
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values

from spotify_catalog.errors import ConfigError, shown
from spotify_catalog.redaction import REDACTED, register_secret

DEFAULT_API_URL = "https://api.spotify.com/v1"
DEFAULT_TOKEN_URL = "https://accounts.spotify.com/api/token"  # noqa: S105 - a URL, not a password


class ApiMode(enum.StrEnum):
    """What the app's Client ID may call: the 2026 Development Mode surface or the full one."""

    DEVELOPMENT = "development"
    EXTENDED = "extended"


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings; ``reveal()`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{REDACTED}')"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# setting name -> environment variable
ENV_NAMES: dict[str, str] = {
    "client_id": "SPOTIFY_CLIENT_ID",
    "client_secret": "SPOTIFY_CLIENT_SECRET",
    "api_url": "SPOTIFY_API_URL",
    "token_url": "SPOTIFY_TOKEN_URL",
    "mode": "SPOTIFY_CATALOG_MODE",
    "max_wait": "SPOTIFY_CATALOG_MAX_WAIT",
    "rate": "SPOTIFY_CATALOG_RATE",
    "max_attempts": "SPOTIFY_CATALOG_MAX_ATTEMPTS",
    "max_total_wait": "SPOTIFY_CATALOG_MAX_TOTAL_WAIT",
    "timeout": "SPOTIFY_CATALOG_TIMEOUT",
    "max_connections": "SPOTIFY_CATALOG_MAX_CONNECTIONS",
    "daily_budget": "SPOTIFY_CATALOG_DAILY_BUDGET",
    "account": "SPOTIFY_CATALOG_ACCOUNT",
    "ledger": "SPOTIFY_CATALOG_LEDGER",
    "outage_after": "SPOTIFY_CATALOG_OUTAGE_AFTER",
    "quota_window": "SPOTIFY_CATALOG_QUOTA_WINDOW",
}
ACCOUNT_MAX = 255
CONFIG_ENV = "SPOTIFY_CATALOG_CONFIG"
CONFIG_TABLE = "spotify"


@dataclass(frozen=True)
class Settings:
    """Everything the client needs; build it with :meth:`load`."""

    client_id: str | None = None
    client_secret: Secret | None = None
    api_url: str = DEFAULT_API_URL
    token_url: str = DEFAULT_TOKEN_URL
    mode: ApiMode | None = None
    """``None``: detect the mode from the API's answers."""
    max_wait: float = 60.0
    """Longest wait (s) the client sleeps through; a longer ``Retry-After`` raises ``WaitTooLongError``."""
    rate: float = 0.0
    """Client-side pacing in requests per second; 0 turns the pacer off."""
    max_attempts: int = 6
    """Attempts per request, the first included."""
    max_total_wait: float = 180.0
    """Longest time (s) one request may spend retrying, waits included."""
    timeout: float = 20.0
    """Connect/read timeout (s) of one HTTP attempt."""
    max_connections: int = 16
    daily_budget: int | None = None
    """The account's most requests in any rolling 24 h, counted in its ledger (``None``: no limit)."""
    account: str | None = None
    """The developer account whose requests the ledger counts (``None``: the client id)."""
    ledger: str | None = field(default=None, repr=False)
    """The ledger's database URL (``None``: the SQLite file in the user's data directory)."""
    outage_after: float = 20.0
    """Seconds without any answer (at least 3 failed attempts, all threads together) that make an
    outage: every request then raises ``UnreachableError``."""
    quota_window: float = 86_400.0
    """The rolling window (s) in which the ledger counts the account's requests: Spotify's 24 h. Another
    value only for an emulator whose quota counts another window (its ``quota_window``)."""

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        *,
        config_path: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | Path | None = None,
    ) -> Settings:
        """Merge the sources (see the module docstring); raises :class:`ConfigError` for bad values.

        ``environ`` defaults to ``os.environ`` and ``dotenv_path`` to ``./.env``.
        """
        env = dict(os.environ if environ is None else environ)
        dotenv_file = Path(dotenv_path) if dotenv_path is not None else Path.cwd() / ".env"
        dotenv = (
            {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None}
            if dotenv_file.is_file()
            else {}
        )
        flags = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = set(flags) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")

        path = config_path or env.get(CONFIG_ENV) or dotenv.get(CONFIG_ENV)
        from_file = _read_config(Path(path)) if path else {}

        raw: dict[str, tuple[Any, str]] = {}  # a setting's value and where it came from
        for name, variable in ENV_NAMES.items():
            if name in flags:
                raw[name] = flags[name], f"--{name.replace('_', '-')}"
            elif env.get(variable):
                raw[name] = env[variable], variable
            elif name in from_file:
                raw[name] = from_file[name], f"{name} in [{CONFIG_TABLE}] of the settings file {path}"
            elif dotenv.get(variable):
                raw[name] = dotenv[variable], f"{variable} in {dotenv_file}"
        return cls(**{name: _convert(name, value, source) for name, (value, source) in raw.items()})

    def account_name(self) -> str | None:
        """The account of the ledger: ``account``, else the client id (``None``: neither is set)."""
        return self.account or self.client_id or None

    def credentials(self) -> tuple[str, Secret]:
        """Client id and secret, or :class:`ConfigError` naming the environment variables."""
        if not self.client_id or not self.client_secret:
            missing = [ENV_NAMES[name] for name in ("client_id", "client_secret") if not getattr(self, name)]
            raise ConfigError(
                f"missing Spotify credentials: set {' and '.join(missing)} "
                "(environment, .env file or the [spotify] table of the settings file)"
            )
        return self.client_id, self.client_secret


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"settings file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read settings file {path}: not UTF-8 text (TOML is UTF-8)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from None
    table = document.get(CONFIG_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{CONFIG_TABLE}] must be a table")
    unknown = set(table) - set(ENV_NAMES)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [{CONFIG_TABLE}]: {', '.join(sorted(unknown))}")
    return table


def _convert(name: str, value: Any, source: str) -> Any:
    """One setting's value from a string (environment) or a TOML/flag value; ``source`` names where it
    came from in the error of a bad value."""
    try:
        if name == "client_secret":
            return value if isinstance(value, Secret) else Secret(str(value))
        if name in ("account", "ledger"):
            text = str(value).strip()
            if not text:
                raise ValueError("must not be empty")
            if name == "account" and len(text) > ACCOUNT_MAX:
                raise ValueError(f"at most {ACCOUNT_MAX} characters")
            return text
        if name in ("client_id", "api_url", "token_url"):
            text = str(value).strip()
            if name != "client_id" and not text.startswith(("http://", "https://")):
                raise ValueError("must be an http(s) URL")
            return text.rstrip("/") if name == "api_url" else text
        if name == "mode":
            if value is None or isinstance(value, ApiMode):
                return value
            text = str(value).strip().lower()
            if text not in ("", "auto", *ApiMode):
                raise ValueError("must be auto, development or extended")
            return None if text in ("", "auto") else ApiMode(text)
        if name in ("max_attempts", "max_connections", "daily_budget"):
            number = _parsed(int, value, "a whole number")
            if number < 1:
                raise ValueError("must be at least 1")
            return number
        if name in ("max_wait", "rate", "max_total_wait", "timeout", "outage_after", "quota_window"):
            real = _parsed(float, value, "a number")
            if real < 0 or not math.isfinite(real) or (name in ("timeout", "quota_window") and real == 0):
                raise ValueError("must be a positive number")
            return real
    except ValueError as exc:
        value_shown = REDACTED if name == "client_secret" else shown(str(value))
        raise ConfigError(f"bad value for {name} ({source}): {value_shown}: {exc}") from None
    raise ConfigError(f"unknown setting: {name}")


_N = TypeVar("_N", int, float)


def _parsed(parse: Callable[[Any], _N], value: Any, what: str) -> _N:
    """``parse(value)``, or a ``ValueError`` saying what was expected (Python's own repeats the value,
    which may be a whole file long)."""
    try:
        return parse(value)
    except (ValueError, TypeError):  # TypeError: a TOML list or table where a number belongs
        raise ValueError(f"must be {what}") from None
