"""What an orchestrator (Airflow: :mod:`spotify_catalog.airflow`) runs, without the orchestrator: the
settings of a stored connection, a crawl's options from plain values, the crawl run to its end or to
its stop, and what each exit code becomes (docs/airflow.md):

- 0: the crawl is complete, the task succeeds;
- 75 (:class:`~spotify_catalog.errors.Stopped`: quota, daily budget, a long ``Retry-After``): the
  crawl stopped on purpose, :func:`crawl` returns a :class:`Stop` with the time to continue at, and
  the task waits until then and runs the same crawl again, which goes on where it stopped;
- 1 and 2 (every other :class:`~spotify_catalog.errors.SpotifyCatalogError`, and a crawl whose tasks
  kept failing): raised, the task fails; 2 (usage, settings) is not worth retrying as it is.

Nothing here reads the process environment, a ``.env`` file or a settings file: the credentials are
the connection's, and nothing else the worker happens to hold.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spotify_catalog import crawl as crawl_lib
from spotify_catalog import extras, ledger
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import EXIT_TEMPFAIL, SpotifyCatalogError, Stopped, UsageError, format_time
from spotify_catalog.inputs import (
    ArtistInput,
    parse_artist,
    parse_duration,
    parse_spotify_id,
    read_artists_file,
    read_ids_file,
)
from spotify_catalog.settings import ENV_NAMES, Settings
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.storage.read_only import reading
from spotify_catalog.storage.schema import metadata

if TYPE_CHECKING:
    from spotify_catalog.export import ExportedTable

log = logging.getLogger(__name__)

UNTIMED_WAIT = timedelta(minutes=10)
"""How long a stop that names no time (another crawl holds the SQLite database) waits."""
TUNING = frozenset(ENV_NAMES) - {"client_id", "client_secret"}
"""The settings a connection's extra may hold besides the URLs (``max_wait``, ``daily_budget``, ...)."""


@dataclass(frozen=True)
class Stop:
    """A crawl that stopped on purpose (exit 75): run it again at ``retry_at``."""

    message: str
    retry_at: datetime


def connection_settings(
    *,
    login: str | None,
    password: str | None,
    host: str | None = None,
    port: int | None = None,
    extra: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings of a stored connection: client id = ``login``, client secret = ``password``; the
    API at ``host`` (``http://127.0.0.1`` with ``port``: an emulator, whose origin serves ``/v1`` and
    ``/api/token``; a host without a scheme is ``https``), else at Spotify's; ``extra`` may give
    ``api_url`` and ``token_url`` themselves and any tuning setting (``daily_budget``, ``max_wait``,
    ``ledger``, ``account``, ...); ``overrides`` (an operator's own arguments) win over ``extra``.
    Missing credentials are a :class:`~spotify_catalog.errors.ConfigError` (exit 2)."""
    extra = dict(extra or {})
    unknown = sorted(set(extra) - TUNING)
    if unknown:
        raise UsageError(f"unknown key(s) in the connection's extra: {', '.join(unknown)}")
    values: dict[str, Any] = {"client_id": login or None, "client_secret": password or None}
    if host:
        origin = host.rstrip("/") if "://" in host else f"https://{host.rstrip('/')}"
        origin = f"{origin}:{port}" if port else origin
        values.update(api_url=f"{origin}/v1", token_url=f"{origin}/api/token")
    values.update(extra)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = Settings.load(values, environ={}, dotenv_path=Path("/nonexistent/.env"))
    if not settings.client_id or not settings.client_secret:
        raise UsageError("the connection has no client id (login) or no client secret (password)")
    return settings


def crawl_options(
    *,
    artists: Sequence[str] = (),
    artists_file: str | None = None,
    playlists: Sequence[str] = (),
    playlists_file: str | None = None,
    shows: Sequence[str] = (),
    audiobooks: Sequence[str] = (),
    depth: str | None = None,
    include_groups: str | Sequence[str] = crawl_lib.DEFAULT_GROUPS,
    market: str | None = None,
    refresh_after: str = "7d",
    workers: int = 1,
    top_tracks: bool = False,
    force: bool = False,
    me: str | None = None,
) -> crawl_lib.CrawlOptions:
    """:class:`~spotify_catalog.crawl.CrawlOptions` from the values a command line or an operator
    gives (names, ids, URIs or links; ``include_groups`` as ``album,single`` or a list; ``depth``
    ``None``: ``artists`` when only ``me``, the user id of ``--me``, gives something to crawl, else
    ``tracks``); the bad values are one :class:`~spotify_catalog.errors.UsageError` (exit 2), said
    together, before any request."""
    bad: list[str] = []

    def parsed(kind: str, values: Sequence[str], parse: Callable[[str], Any]) -> list[Any]:
        found = []
        for value in values:
            try:
                found.append(parse(str(value)))
            except UsageError as exc:
                bad.append(f"--{kind} {value!r}: {exc}")
        return found

    inputs: list[ArtistInput] = parsed("artist", artists, parse_artist)
    ids = {
        kind: parsed(kind, values, functools.partial(parse_spotify_id, kind=kind))
        for kind, values in (("playlist", playlists), ("show", shows), ("audiobook", audiobooks))
    }
    if bad:
        raise UsageError("; ".join(bad))
    if artists_file:
        inputs.extend(read_artists_file(artists_file))
    if playlists_file:
        ids["playlist"].extend(read_ids_file(playlists_file, "playlist"))
    if depth is None:
        depth = "artists" if me and not (inputs or any(ids.values())) else "tracks"
    groups = include_groups.split(",") if isinstance(include_groups, str) else include_groups
    return crawl_lib.CrawlOptions(
        artists=tuple(inputs),
        depth=crawl_lib.Depth.parse(depth),
        include_groups=tuple(g.strip() for g in groups if g.strip()),
        market=market or None,
        refresh_after=parse_duration(refresh_after),
        workers=int(workers),
        force=force,
        top_tracks=top_tracks,
        playlists=tuple(ids["playlist"]),
        shows=tuple(ids["show"]),
        audiobooks=tuple(ids["audiobook"]),
        me=me,
    )


def crawl(
    db_url: str,
    settings: Settings,
    options: crawl_lib.CrawlOptions,
    *,
    db_schema: str | None = None,
    command: str = "spotify-catalog crawl",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> crawl_lib.CrawlResult | Stop:
    """Crawl as ``spotify-catalog crawl`` does (the account's requests counted in its ledger, within
    its ``daily_budget``): the result of a complete crawl, or the :class:`Stop` of one that stopped
    on purpose. Raises :class:`~spotify_catalog.errors.SpotifyCatalogError` for what the command
    calls an error (exit 1 or 2), an incomplete crawl among them, and lets an interruption (Ctrl-C,
    SIGTERM: exit 130, 143) through. ``now``: the crawl's clock (the saved time to wait until is
    checked against it)."""
    crawl_lib.check_mode(options, settings.mode)
    settings.credentials()
    engine = open_database(db_url, schema=db_schema)
    try:
        with (
            ledger.open_budget(settings, limit=settings.daily_budget, clock=now) as budget,
            SpotifyClient(settings, budget=budget) as client,
        ):
            crawler = crawl_lib.Crawler(engine, client, options, command=command, now=now)
            crawler.on_progress = _log_progress
            try:
                result = crawler.run()
            except Stopped as exc:
                if exc.exit_code != EXIT_TEMPFAIL:  # interrupted: the worker is stopping the task
                    raise
                retry_at = exc.retry_at or now() + UNTIMED_WAIT
                return Stop(exc.message, retry_at)
    finally:
        engine.dispose()
    if result.status != "done":
        raise SpotifyCatalogError(f"incomplete: {result.failed} task(s) kept failing; run the crawl again")
    return result


def _log_progress(p: crawl_lib.Progress) -> None:
    """A line at each phase's start and end and at the end of the crawl (a task's log is no terminal)."""
    if p.event == "finished":
        log.info("finished: requests %d, rows written %d", p.requests, p.rows_written)
    elif p.event in ("start", "end"):
        word = "started" if p.event == "start" else "done"
        log.info("%s: %s %d/%d, requests %d", p.phase, word, p.done, p.total, p.requests)


def describe_stop(stop: Stop) -> str:
    """``<the crawl's message>; deferred until <time>``: the line a deferred task logs."""
    return f"{stop.message}; deferred until {format_time(stop.retry_at)}"


def snapshot_date(value: str | date) -> date:
    """A snapshot date given as ``YYYY-MM-DD`` (Airflow's ``{{ ds }}``) or a date."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise UsageError(f"snapshot date {value!r} is not a date YYYY-MM-DD") from None


def export_lake(
    db_url: str,
    to: str,
    day: date,
    *,
    db_schema: str | None = None,
    fmt: str = "parquet",
    tables: Sequence[str] | None = None,
    compression: str | None = None,
    with_raw: bool = False,
    include_gone: bool = False,
) -> list[ExportedTable]:
    """``spotify-catalog export --snapshot-date DAY``: the database's tables as the lake's partition
    ``dt=DAY`` (replaced whole when it exists), the other dates left alone; what was written, an
    :class:`~spotify_catalog.export.ExportedTable` a table."""
    try:
        from spotify_catalog import export as lake_export
    except ModuleNotFoundError as exc:
        raise extras.missing("export", exc) from None

    compression = compression or ("zstd" if fmt == "parquet" else "none")
    lake_export.check_options(fmt, compression)
    chosen = lake_export.select_tables(metadata, list(tables) if tables else None)
    with reading(db_url, db_schema=db_schema) as engine:
        lake_export.check_database(engine, chosen)
        return list(
            lake_export.export(
                engine,
                metadata,
                lake_export.open_lake(to),
                day,
                tables=list(tables) if tables else None,
                fmt=fmt,
                compression=compression,
                with_raw=with_raw,
                include_gone=include_gone,
            )
        )
