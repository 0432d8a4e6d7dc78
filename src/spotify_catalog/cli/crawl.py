"""``crawl`` and ``demo``: artists in, a complete catalog out (see docs/crawl.md).

Progress goes to stderr (rich), the summary to stdout. A stop (quota, ``--max-requests``,
``--max-wait``) exits 75 and says when to continue; Ctrl-C exits 130.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spotify_catalog import crawl as crawl_lib
from spotify_catalog import extras, ledger, pace_store, scheduling
from spotify_catalog.cli import Globals, db_options, market_option, one_line
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import Stopped, UsageError
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.redaction import redact_url
from spotify_catalog.settings import Settings
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.users import LoginStore, StoredLogin, user_client

DEFAULT_DB = "sqlite:///spotify-catalog.db"
DEMO_DB = "sqlite:///spotify-demo.db"
DEMO_HTML = "spotify-demo.html"
DEMO_EXTRAS = ("emulator", "report")  # the emulator it crawls, the report it ends with
DEPTHS = [d.label for d in crawl_lib.Depth]


def _globals() -> Globals:
    return click.get_current_context().find_object(Globals) or Globals()


progress_log = logging.getLogger("spotify_catalog.progress")
HEARTBEAT = 10.0  # seconds between progress lines in a log


@contextmanager
def _progress_display(quiet: bool) -> Iterator[Callable[[crawl_lib.Progress], None] | None]:
    """A progress bar on a terminal; in a log (stderr not a terminal, or ``--log-format json``) one
    whole line at each phase's start and end and one every 10 s."""
    if quiet:
        yield None
        return
    if _globals().log_format == "text" and sys.stderr.isatty():
        with _progress_bar() as update:
            yield update
        return
    yield _ProgressLines(time.monotonic)


class _ProgressLines:
    """Progress as log records (plain or JSON lines, as the logging is set up)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.last = clock()
        progress_log.setLevel(logging.INFO)

    def __call__(self, p: crawl_lib.Progress) -> None:
        now = self.clock()
        if p.event == "update" and now - self.last < HEARTBEAT:
            return
        self.last = now
        counts = {
            "event": p.event,
            "phase": p.phase,
            "done": p.done,
            "total": p.total,
            "requests": p.requests,
            "budget_left": p.requests_left,
            "rows_written": p.rows_written,
            "failed": p.failed,
        }
        budget = "" if p.requests_left is None else f", budget left {p.requests_left}"
        failed = f", {p.failed} failed" if p.failed else ""
        if p.event == "finished":
            text = f"finished: requests {p.requests}, rows written {p.rows_written}{failed}"
        else:
            word = {"start": "started", "end": "done"}.get(p.event, "at")
            text = f"{p.phase}: {word} {p.done}/{p.total}, requests {p.requests}{budget}{failed}"
        progress_log.info(text, extra={"progress": counts})


@contextmanager
def _progress_bar() -> Iterator[Callable[[crawl_lib.Progress], None]]:
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("starting", total=None, info="")

        def update(p: crawl_lib.Progress) -> None:
            left = "" if p.requests_left is None else f", {p.requests_left} left"
            info = f"requests {p.requests}{left} | rows written {p.rows_written}"
            if p.failed:
                info += f" | {p.failed} failed"
            bar.update(task, description=p.phase, completed=p.done, total=max(p.total, p.done), info=info)

        yield update


def _command_line(ctx: click.Context) -> str:
    """The command as run, for ``_runs`` (options at their values; the database password hidden)."""
    parts = ["spotify-catalog", ctx.info_name or "crawl"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value is None or value is False or value == () or not param.opts:
            continue
        flag = param.opts[0]
        if param.name == "db_url":
            value = redact_url(str(value))
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            parts.extend([flag] if item is True else [flag, str(item)])
    return shlex.join(parts)


def _summary(engine: sa.Engine, run_id: int | None, seconds: float) -> Table:
    """Rows per table and this run's row of ``_runs``: the same for finished and stopped runs. A run
    refused before it started (``run_id`` None: nothing sent) names the last run instead; the API
    mode is the run's, else the one the database keeps."""
    title = "spotify-catalog: rows per table"
    table = Table(title=title, title_justify="left", min_width=len(title) + 4)
    table.add_column("table")
    table.add_column("rows", justify="right")
    runs = schema.runs
    with engine.connect() as conn:
        for t in schema.CATALOG_TABLES:
            count = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            table.add_row(t.name, str(count))
        query = sa.select(runs).order_by(runs.c.id.desc()).limit(1)  # the last run
        run = conn.execute(query if run_id is None else sa.select(runs).where(runs.c.id == run_id)).first()
        saved_mode = state.get_state(conn, crawl_lib.MODE_STATE_KEY)
    table.add_section()
    if run_id is None:
        table.add_row("run", "none started" + (f" (last: {run.id} {run.status})" if run else ""))
        table.add_row("requests made", "0")
        table.add_row("rows written", "0")
    else:
        table.add_row("run", "-" if run is None else f"{run.id} {run.status}")
        table.add_row("requests made", str(run.requests if run else 0))
        table.add_row("rows written", str(run.rows_written if run else 0))
    mode = run.api_mode if run is not None and run_id is not None else None
    table.add_row("API mode", mode or saved_mode or (run.api_mode if run else None) or "unknown")
    table.add_row("time", f"{seconds:.1f} s")
    return table


def _say(message: str) -> None:
    """One whole line on stderr (never wrapped)."""
    click.echo(message, err=True)


def run_crawl(
    ctx: click.Context,
    *,
    db_url: str,
    db_schema: str | None = None,
    settings: Settings,
    options: crawl_lib.CrawlOptions,
    max_requests: int | None,
    quiet: bool,
    counted: bool = True,
    user: str | None = None,
) -> crawl_lib.CrawlResult:
    """Open the database, crawl with a progress display and the cycle collector tuned for a crawl
    (:func:`~spotify_catalog.crawl.collecting_less`), print the summary; exit 75/130 on a stop.
    ``counted``: the requests are the account's, counted in its ledger, paced with the other processes
    of its client id (the demo's are not); ``user``: the login the client acts for (``crawl --me``)."""
    started = time.monotonic()
    engine = open_database(db_url, schema=db_schema)
    out = Console(soft_wrap=True)
    try:
        with (
            ledger.open_budget(settings, limit=settings.daily_budget) if counted else nullcontext() as budget,
            pace_store.open_pace_store(settings) if counted else nullcontext() as pace,
            _client(settings, user, request_budget=max_requests, budget=budget, pace_store=pace) as client,
        ):
            crawler = crawl_lib.Crawler(engine, client, options, command=_command_line(ctx))
            try:
                with _progress_display(quiet) as progress, crawl_lib.collecting_less():
                    crawler.on_progress = progress
                    result = crawler.run()
            except Stopped as exc:
                if not quiet:
                    out.print(_summary(engine, crawler.run_id, time.monotonic() - started))
                _say(one_line(str(exc)))
                ctx.exit(exc.exit_code)
        if not quiet:
            out.print(_summary(engine, result.run_id, time.monotonic() - started))
        if result.status != "done":
            _say(f"incomplete: {result.failed} task(s) kept failing; run the same command again")
            ctx.exit(1)
        return result
    finally:
        engine.dispose()


def _client(settings: Settings, user: str | None, **options: Any) -> SpotifyClient:
    """The crawl's client: the app's (Client Credentials), or the one acting for login ``user``."""
    if user is None:
        return SpotifyClient(settings, **options)
    return user_client(user, settings, **options)


@click.command()
@db_options(DEFAULT_DB, schema="crawl")
@click.option("--artist", "artists", multiple=True, metavar="NAME_OR_ID", help="An artist (repeatable).")
@click.option(
    "--artists-file",
    type=click.Path(dir_okay=False),
    help="One name/id/URI/URL per line, or a CSV with an artist/name/id/uri column.",
)
@click.option("--playlist", "playlists", multiple=True, metavar="ID|URI|URL", help="A playlist (repeatable).")
@click.option("--playlists-file", type=click.Path(dir_okay=False), help="One playlist id/URI/URL per line.")
@click.option(
    "--show",
    "shows",
    multiple=True,
    metavar="ID|URI|URL",
    help="A show and its episodes (repeatable; needs --market).",
)
@click.option(
    "--audiobook",
    "audiobooks",
    multiple=True,
    metavar="ID|URI|URL",
    help="An audiobook and its chapters (repeatable; needs --market).",
)
@click.option(
    "--with",
    "with_",
    multiple=True,
    type=click.Choice(crawl_lib.WITH_CHOICES),
    help="Also each artist's top tracks (Extended Quota Mode; market: --market, else US).",
)
@click.option(
    "--me",
    is_flag=True,
    help="The logged-in user's own data: profile, saved items, followed artists, playlists, top "
    "items, plays (auth login first).",
)
@click.option("--user", metavar="NAME", help="The login --me collects for [default: the only one].")
@click.option(
    "--depth",
    type=click.Choice(DEPTHS),
    help="How deep to crawl each artist [default: tracks; artists for --me alone].",
)
@click.option(
    "--include-groups",
    default=",".join(crawl_lib.DEFAULT_GROUPS),
    show_default=True,
    help="Album groups of each discography.",
)
@market_option
@click.option("--max-requests", type=click.IntRange(min=0), metavar="N", help="Spend at most N requests.")
@click.option(
    "--max-wait", type=click.FloatRange(min=0), metavar="SECONDS", help="Longest wait to sleep through."
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Concurrent requests."
)
@click.option("--refresh-after", default="7d", show_default=True, help="Refetch what is older (7d, 12h, 0).")
@click.option(
    "--daily-budget",
    type=click.IntRange(min=1),
    metavar="N",
    help="At most N requests of the account in any rolling 24 h, counted in its ledger with every "
    "other process of it [env SPOTIFY_CATALOG_DAILY_BUDGET]; stops with exit 75 saying when to continue.",
)
@click.option("--force", is_flag=True, help="Run even before the time Spotify said to wait until.")
@click.option(
    "--mode",
    type=click.Choice(["auto", "development", "extended"]),
    help="The app's API mode [env SPOTIFY_CATALOG_MODE; auto: detect, remembered in the database].",
)
@click.option("--plan", is_flag=True, help="Print the requests the crawl needs and exit; sends nothing.")
@click.pass_context
def crawl(
    ctx: click.Context,
    db_url: str,
    db_schema: str | None,
    artists: tuple[str, ...],
    artists_file: str | None,
    playlists: tuple[str, ...],
    playlists_file: str | None,
    shows: tuple[str, ...],
    audiobooks: tuple[str, ...],
    with_: tuple[str, ...],
    me: bool,
    user: str | None,
    depth: str | None,
    include_groups: str,
    market: str | None,
    max_requests: int | None,
    max_wait: float | None,
    workers: int,
    refresh_after: str,
    daily_budget: int | None,
    force: bool,
    mode: str | None,
    plan: bool,
) -> None:
    """Collect artists, their albums and tracks into a database, with the fewest requests.

    Stops cleanly (exit 75) when the quota or --max-requests runs out; run the same command again to
    continue where it stopped.
    """
    g = _globals()
    settings = g.settings(max_wait=max_wait, mode=mode, daily_budget=daily_budget)
    if user is not None and not me:
        raise UsageError("--user names the login of --me: give --me too")
    login = _login(user) if me else None
    options = scheduling.crawl_options(
        artists=artists,
        artists_file=artists_file,
        playlists=playlists,
        playlists_file=playlists_file,
        shows=shows,
        audiobooks=audiobooks,
        depth=depth,
        include_groups=include_groups,
        market=market,
        refresh_after=refresh_after,
        workers=workers,
        top_tracks="top-tracks" in with_,
        force=force,
        me=login.user_id if login is not None else None,
    )
    crawl_lib.check_mode(options, settings.mode)  # before the database is opened
    if plan:  # from the database alone: no request, no credentials
        from spotify_catalog.cli.status import print_plan

        print_plan(db_url, db_schema, options, settings, now=datetime.now(UTC))
        return
    if login is None:
        settings.credentials()  # missing credentials: exit 2 before touching the database
    run_crawl(
        ctx,
        db_url=db_url,
        db_schema=db_schema,
        settings=settings,
        options=options,
        max_requests=max_requests,
        quiet=g.quiet,
        user=login.name if login is not None else None,
    )


def _login(user: str | None) -> StoredLogin:
    """The stored login ``--me`` acts for: one line and exit 2 when there is none."""
    store = LoginStore()
    return store.load(store.resolve(user))


# ------------------------------------------------------------------------------------------ demo

DEMO_SIZE = 20


def demo_artists(catalog: Any) -> list[ArtistInput]:
    """The demo's fixed list: BTS and the catalog's most popular artists, most by name, a few by id."""
    from spotify_catalog.emulator import BTS_ID

    chosen = [BTS_ID]
    for index in catalog.by_popularity():
        artist = catalog.artist(index)
        if artist.id not in chosen:
            chosen.append(artist.id)
        if len(chosen) == DEMO_SIZE:
            break
    inputs = []
    for position, artist_id in enumerate(chosen):
        if position % 4 == 3:
            inputs.append(ArtistInput(artist_id, True))
        else:
            inputs.append(ArtistInput(catalog.artist_by_id(artist_id).name, False))
    return inputs


def demo_extras(catalog: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The extended demo's 3 playlists and 1 show (available in the US, the market it is crawled in)."""
    playlists = tuple(p.id for p in catalog.playlists[:3])
    shows = tuple(s.id for s in catalog.shows if "US" in s.markets)[:1]
    return playlists, shows


@click.command()
@db_options(DEMO_DB, schema="demo")
@click.option(
    "--profile",
    type=click.Choice(["development", "extended"]),
    default="development",
    show_default=True,
    help="The emulated app's API mode.",
)
@click.option("--depth", type=click.Choice(DEPTHS), default="tracks", show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True)
@click.pass_context
def demo(
    ctx: click.Context,
    db_url: str,
    db_schema: str | None,
    profile: str,
    depth: str,
    workers: int,
) -> None:
    """Crawl ~20 artists (BTS among them) from the built-in emulator into spotify-demo.db.

    Needs no Spotify account: the emulator runs in this process. Run it twice: the second run makes
    no requests, everything is fresh.
    """
    try:  # the emulator, and the report made at the end: both checked before the crawl
        from spotify_catalog.cli.report import write_report
        from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
    except ModuleNotFoundError as exc:
        raise extras.missing("demo", exc, DEMO_EXTRAS) from None

    config = EmulatorConfig(profile=profile)  # type: ignore[arg-type]
    with serve_in_thread(config) as emu:
        settings = Settings.load(
            {
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "api_url": emu.url + "/v1",
                "token_url": emu.url + "/api/token",
            },
            environ={},
            dotenv_path=Path("/nonexistent/.env"),
        )
        playlists, shows = demo_extras(emu.catalog) if profile == "extended" else ((), ())
        options = crawl_lib.CrawlOptions(
            artists=tuple(demo_artists(emu.catalog)),
            depth=crawl_lib.Depth.parse(depth),
            workers=workers,
            playlists=playlists,
            shows=shows,
            market="US" if shows else None,
        )
        quiet = _globals().quiet
        if not quiet:
            more = f", {len(playlists)} playlists and {len(shows)} show" if shows else ""
            click.echo(
                f"Emulator ({profile} profile) at {emu.url}; "
                f"crawling {DEMO_SIZE} artists{more} into {redact_url(db_url)}",
                err=True,
            )
        run_crawl(
            ctx,
            db_url=db_url,
            db_schema=db_schema,
            settings=settings,
            options=options,
            max_requests=None,
            quiet=quiet,
            counted=False,
        )
    # the report beside the SQLite file, else in the current directory
    database = sa.engine.make_url(db_url).database if db_url.startswith("sqlite") else ""
    out = Path(database).with_suffix(".html") if database not in ("", ":memory:", None) else Path(DEMO_HTML)
    write_report(db_url, out, db_schema=db_schema, title="spotify-catalog demo")
    click.echo(f"Report: {out}")
