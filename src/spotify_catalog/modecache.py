"""The API mode one-off commands (``search``, ``get``, ``auth check``) learnt, remembered per client id.

A small JSON file in the user's cache directory (``$XDG_CACHE_HOME/spotify-catalog/modes.json``,
``~/.cache/...`` by default), keyed by a hash of the client id; it holds no secret. A crawl keeps its
mode in its database instead. Reading or writing the file never fails a command: it is only a saving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from spotify_catalog.settings import ApiMode

log = logging.getLogger(__name__)


def cache_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the modes are kept."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spotify-catalog" / "modes.json"


def _key(client_id: str) -> str:
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("mode cache %s unreadable: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def remembered(client_id: str, path: Path | None = None) -> ApiMode | None:
    """The mode learnt earlier for this client id, if any."""
    entry = _read(path or cache_file()).get(_key(client_id))
    try:
        return ApiMode(entry["mode"]) if isinstance(entry, dict) else None
    except (KeyError, ValueError):
        return None


def remember(client_id: str, mode: ApiMode, path: Path | None = None) -> None:
    """Keep ``mode`` for this client id (atomically replaced; errors only logged)."""
    path = path or cache_file()
    data = _read(path)
    data[_key(client_id)] = {"mode": str(mode), "learnt_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        log.debug("mode cache %s not written: %s", path, exc)
