"""The chart library the page inlines: Vega, Vega-Lite and vega-embed as one script, from
``vl-convert-python`` (the ``report`` extra), which ships them; no Node, npm or CDN."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from spotify_catalog.errors import UsageError

log = logging.getLogger(__name__)

_BUNDLE: dict[str, str] = {}
"""The bundles read in this process, by Vega and vega-embed versions."""
_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


def vega_javascript(cache_dir: Path | None = None) -> str:
    """Vega, Vega-Lite and vega-embed as one script: bundled once (a few seconds), then kept in the
    user's cache directory (``cache_dir``, else ``$XDG_CACHE_HOME/spotify-catalog``); a
    :class:`UsageError` without ``vl-convert-python``."""
    try:
        import vl_convert
    except ModuleNotFoundError:
        raise UsageError(
            "the report's charts need vl-convert-python: pip install 'spotify-catalog[report]'"
        ) from None

    version = f"vega{vl_convert.get_vega_version()}-embed{vl_convert.get_vega_embed_version()}"
    if version in _BUNDLE:
        return _BUNDLE[version]
    base = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spotify-catalog"
    path = base / f"vega-bundle-{version}.js"
    try:
        text = path.read_text("utf-8")
    except OSError:
        text = ""
    if not text:
        text = vl_convert.javascript_bundle(_GLOBALS)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(text, "utf-8")
            temporary.replace(path)
        except OSError as exc:
            log.debug("vega bundle not cached at %s: %s", path, exc)
    _BUNDLE[version] = text
    return text


def forget_loaded_javascript() -> None:
    """Forget the bundles read in this process: the next :func:`vega_javascript` reads its cache
    directory (or bundles) again."""
    _BUNDLE.clear()
