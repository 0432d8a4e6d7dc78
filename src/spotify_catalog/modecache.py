"""The API mode one-off commands (``search``, ``get``, ``auth check``) learnt, remembered per client id
and API, and corrected by every answer that contradicts it.

A small JSON file in the user's cache directory (``$XDG_CACHE_HOME/spotify-catalog/modes.json``,
``~/.cache/...`` by default), keyed by a hash of the client id and the API base URL (the emulator and
Spotify answering one client id do not share a memory); it holds no secret. Each entry says when the
mode was learnt. A crawl keeps its mode in its database instead. Reading or writing the file never
fails a command: it is only a saving.

:class:`LearningClient` is the client of those commands: it starts from the remembered mode (unless the
settings give one), and an answer that shows the other mode (:func:`answer_mode`: a batch answered,
a limit over 10 accepted, an object carrying a field only Extended Quota Mode sends, a full object
without ``popularity``) corrects it and the file at once. A remembered Extended mode that a batch
endpoint refuses (403) or a limit over 10 (400) is dropped before the error goes up, so that
:mod:`spotify_catalog.endpoints` handles it as an unknown mode: single calls, a limit of 10.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from spotify_catalog.client import ParamValue, SpotifyClient
from spotify_catalog.errors import BadRequestError, ForbiddenError
from spotify_catalog.settings import ApiMode, Settings

log = logging.getLogger(__name__)

DEV_LIMIT = 10
"""The largest ``limit`` of search and discography pages Development Mode accepts."""
BATCH_PATHS = frozenset(
    f"/{kind}s" for kind in ("artist", "album", "track", "show", "episode", "audiobook", "chapter")
)
"""The batch endpoints (``?ids=``), which Development Mode refuses with 403."""
LIMITED = ("/search", "/albums")
"""Paths (``/search``, ``/artists/{id}/albums``) whose ``limit`` over 10 only Extended mode accepts."""
EXTENDED_FIELDS = ("popularity", "followers", "available_markets", "album_group")
"""Fields of catalog objects that Development Mode strips (reference §1.4)."""
STRIPPED_TYPES = frozenset({"artist", "album", "track", "show", "audiobook", "chapter"})
"""The object types Development Mode strips those fields from."""
FULL_TYPES = frozenset({"artist", "album", "track"})
"""Full objects that always carry ``popularity`` in Extended mode."""


@dataclass(frozen=True)
class Memory:
    """A remembered mode and when it was learnt (``None``: a file written before times were kept)."""

    mode: ApiMode
    learnt_at: datetime | None


def cache_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the modes are kept."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spotify-catalog" / "modes.json"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _key(client_id: str, api_url: str) -> str:
    return _hash(f"{client_id}\n{api_url.rstrip('/')}")


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("mode cache %s unreadable: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, dict[str, str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log.debug("mode cache %s not written: %s", path, exc)


def remembered(client_id: str, api_url: str, path: Path | None = None) -> Memory | None:
    """The mode learnt earlier for this client id and API, if any."""
    entry = _read(path or cache_file()).get(_key(client_id, api_url))
    if not isinstance(entry, dict):
        return None
    try:
        mode = ApiMode(entry["mode"])
    except (KeyError, ValueError):
        return None
    try:
        learnt_at: datetime | None = datetime.fromisoformat(str(entry["learnt_at"]))
    except (KeyError, ValueError):
        learnt_at = None
    return Memory(mode, learnt_at)


def remember(
    client_id: str, api_url: str, mode: ApiMode, path: Path | None = None, now: datetime | None = None
) -> None:
    """Keep ``mode`` for this client id and API (the file atomically replaced; errors only logged)."""
    path = path or cache_file()
    data = _read(path)
    learnt_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    data[_key(client_id, api_url)] = {"mode": str(mode), "learnt_at": learnt_at, "client": _hash(client_id)}
    _write(path, data)


def forget(client_id: str, path: Path | None = None) -> int:
    """Forget every mode remembered for this client id (whatever the API); how many there were."""
    path = path or cache_file()
    data = _read(path)
    client = _hash(client_id)
    kept = {
        key: entry
        for key, entry in data.items()
        if key != client and not (isinstance(entry, dict) and entry.get("client") == client)
    }
    if len(kept) != len(data):
        _write(path, kept)
    return len(data) - len(kept)


# ----------------------------------------------------------------------------- what answers say


def _request(path: str, params: Mapping[str, ParamValue] | None) -> tuple[str, dict[str, str]]:
    """The path (``/artists/ID/albums``) of a request to the API's base URL and its parameters (a
    ``next`` link's query included)."""
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in (params or {}).items() if isinstance(v, str | int)})
    return parts.path.rstrip("/") or "/", query


def _objects(data: Any, depth: int = 0) -> list[dict[str, Any]]:
    """The catalog objects of an answer (nested ones included), for the fields Development Mode strips."""
    if depth > 4:
        return []
    found: list[dict[str, Any]] = []
    values: Any = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    if isinstance(data, dict) and data.get("type") in STRIPPED_TYPES:
        found.append(data)
    for value in values:
        if isinstance(value, dict | list):
            found.extend(_objects(value, depth + 1))
    return found


def answer_mode(path: str, params: Mapping[str, ParamValue] | None, data: Any) -> ApiMode | None:
    """The API mode a successful answer shows, or ``None`` when it shows none: Extended for a batch
    endpoint answered, a ``limit`` over 10 accepted by search or a discography, or any object carrying
    ``popularity``, ``followers``, ``available_markets`` or ``album_group``; Development for a full
    artist, album or track (asked alone, or found by a search) without ``popularity``."""
    api_path, query = _request(path, params)
    if api_path in BATCH_PATHS and query.get("ids"):
        return ApiMode.EXTENDED
    limit = query.get("limit", "")
    if api_path.endswith(LIMITED) and limit.isdigit() and int(limit) > DEV_LIMIT:
        return ApiMode.EXTENDED
    if any(name in obj for obj in _objects(data) for name in EXTENDED_FIELDS):
        return ApiMode.EXTENDED
    full: list[Any] = [data] if api_path.count("/") == 2 and api_path not in BATCH_PATHS else []
    if api_path == "/search" and isinstance(data, dict):
        for group in ("artists", "tracks"):
            full.extend((data.get(group) or {}).get("items") or [])
    if any(isinstance(obj, dict) and obj.get("type") in FULL_TYPES for obj in full):
        return ApiMode.DEVELOPMENT  # none carried popularity (seen above)
    return None


def refusal_shows_development(path: str, params: Mapping[str, ParamValue] | None, exc: Exception) -> bool:
    """Whether an error says Development Mode: a batch endpoint refused (403), a ``limit`` over 10
    refused (400 ``Invalid limit``)."""
    api_path, query = _request(path, params)
    if isinstance(exc, ForbiddenError):
        return api_path in BATCH_PATHS
    limit = query.get("limit", "")
    return (
        isinstance(exc, BadRequestError)
        and "limit" in exc.message.lower()
        and limit.isdigit()
        and int(limit) > DEV_LIMIT
    )


# ----------------------------------------------------------------------------- the client


class LearningClient(SpotifyClient):
    """The client of one-off commands: its mode is the settings' (never changed), or the one remembered
    for its client id and API, corrected by the answers and remembered again at once."""

    def __init__(self, settings: Settings, *, cache: Path | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._cache = cache
        self._client_id = settings.client_id or ""
        self.memory = (
            None if settings.mode is not None else remembered(self._client_id, settings.api_url, cache)
        )
        """What was remembered when the client was made."""
        if self.memory is not None:
            self.mode = self.memory.mode
        self._kept = self.mode

    @property
    def learning(self) -> bool:
        """Whether the mode is the client's to learn (the settings give none)."""
        return self.settings.mode is None

    def get(self, path: str, params: Mapping[str, ParamValue] | None = None) -> dict[str, Any]:
        api_path = self.url_for(path)[len(self.settings.api_url) :]
        try:
            data = super().get(path, params)
        except (ForbiddenError, BadRequestError) as exc:
            shows = refusal_shows_development(api_path, params, exc)
            if self.learning and self.mode is ApiMode.EXTENDED and shows:
                log.warning("the API answers as an app in development mode now (it was remembered extended)")
                self.mode = None  # the endpoint's unknown-mode handling takes over, and says development
            raise
        seen = answer_mode(api_path, params, data) if self.learning else None
        if seen is not None and seen is not self.mode:
            if self.mode is not None:
                log.warning(
                    "the API answers as an app in %s mode now (it was remembered %s)", seen, self.mode
                )
            self.mode = seen
        self.keep()
        return data

    def keep(self) -> None:
        """Remember the mode now if the file does not hold it yet (the mode the settings give is not
        remembered)."""
        mode = self.mode
        if self.learning and mode is not None and mode is not self._kept:
            remember(self._client_id, self.settings.api_url, mode, self._cache)
            self._kept = mode
