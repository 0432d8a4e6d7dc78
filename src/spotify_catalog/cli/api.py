"""``search``, ``get`` and ``auth check`` (of the client credentials): the Web API from the command line.

Data goes to stdout (a rich table, JSON, JSON lines or CSV); logs and errors go to stderr. The access
token and the client secret are never printed. ``search`` and ``get`` say on stderr how many requests
they made when it is more than one, and stop at ``--max-requests`` (exit 75) with what they printed
whole: JSON lines already written, or the whole document of the results so far (``search --all``).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click

from spotify_catalog import endpoints, ledger, modecache
from spotify_catalog.cli import Globals, market_option
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    PremiumLapsedError,
    SpotifyCatalogError,
    Stopped,
    UsageError,
    format_time,
)
from spotify_catalog.settings import ApiMode, Settings

JSON = dict[str, Any]
FORMATS = ("table", "json", "jsonl", "csv")


def command_settings() -> Settings:
    ctx = click.get_current_context()
    return (ctx.find_object(Globals) or Globals()).settings()


@contextmanager
def _client(
    settings: Settings | None = None, max_requests: int | None = None
) -> Iterator[modecache.LearningClient]:
    """A client that counts its requests in the account's ledger (within the daily budget, if one is
    set), sends at most ``max_requests``, starts from the mode remembered for its client id and API
    (unless one is given) and keeps the memory true to the answers (:mod:`spotify_catalog.modecache`)."""
    settings = settings or command_settings()
    settings.credentials()  # missing credentials: said before the ledger is looked for
    with (
        ledger.open_budget(settings, limit=settings.daily_budget) as budget,
        modecache.LearningClient(settings, request_budget=max_requests, budget=budget) as client,
    ):
        try:
            yield client
        finally:
            client.keep()


# ----------------------------------------------------------------------------- columns per type


def _names(objects: Any) -> str:
    if not isinstance(objects, list):
        return ""
    return ", ".join(str(o.get("name", "")) for o in objects if isinstance(o, dict))


def _duration(ms: Any) -> str:
    if not isinstance(ms, int):
        return ""
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes}:{seconds:02d}"


def _total(page: Any) -> str:
    return str(page.get("total", "")) if isinstance(page, dict) else ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


Column = tuple[str, Callable[[JSON], Any]]

COLUMNS: dict[str, list[Column]] = {
    "artist": [
        ("genres", lambda o: o.get("genres")),
        ("popularity", lambda o: o.get("popularity")),
        ("followers", lambda o: (o.get("followers") or {}).get("total")),
        ("url", lambda o: (o.get("external_urls") or {}).get("spotify")),
    ],
    "album": [
        ("artists", lambda o: _names(o.get("artists"))),
        ("album_type", lambda o: o.get("album_type")),
        ("release_date", lambda o: o.get("release_date")),
        ("total_tracks", lambda o: o.get("total_tracks")),
    ],
    "track": [
        ("artists", lambda o: _names(o.get("artists"))),
        ("album", lambda o: (o.get("album") or {}).get("name")),
        ("duration", lambda o: _duration(o.get("duration_ms"))),
        ("explicit", lambda o: o.get("explicit")),
    ],
    "playlist": [
        ("owner", lambda o: (o.get("owner") or {}).get("display_name")),
        ("items", lambda o: _total(o.get("items") or o.get("tracks"))),
    ],
    "show": [
        ("publisher", lambda o: o.get("publisher")),
        ("total_episodes", lambda o: o.get("total_episodes")),
        ("languages", lambda o: o.get("languages")),
    ],
    "episode": [
        ("release_date", lambda o: o.get("release_date")),
        ("duration", lambda o: _duration(o.get("duration_ms"))),
        ("languages", lambda o: o.get("languages")),
    ],
    "audiobook": [
        ("authors", lambda o: _names(o.get("authors"))),
        ("narrators", lambda o: _names(o.get("narrators"))),
        ("total_chapters", lambda o: o.get("total_chapters")),
    ],
}


def _row(kind: str, item: JSON) -> dict[str, str]:
    row = {"type": kind, "name": _text(item.get("name")), "id": _text(item.get("id"))}
    for name, getter in COLUMNS[kind]:
        row[name] = _text(getter(item))
    return row


# ----------------------------------------------------------------------------- output


def _print_table(groups: dict[str, tuple[list[JSON], int | None]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    for kind, (items, total) in groups.items():
        if not items:
            console.print(f"no {kind}s found")
            continue
        shown = f"{len(items)} of {total}" if total is not None else str(len(items))
        table = Table(title=f"{kind}s ({shown})", title_justify="left")
        rows = [_row(kind, item) for item in items]
        # columns Development Mode strips (popularity, followers, ...) are left out when all empty
        headers = ["name", "id", *(n for n, _ in COLUMNS[kind] if any(row[n] for row in rows))]
        for header in headers:
            table.add_column(header.replace("_", " "), overflow="fold", no_wrap=header == "id")
        for row in rows:
            table.add_row(*(row[h] for h in headers))
        console.print(table)


def _print_csv(rows: Iterable[dict[str, str]], kinds: list[str]) -> None:
    fieldnames = ["type", "name", "id"]
    for kind in kinds:
        fieldnames += [name for name, _ in COLUMNS[kind] if name not in fieldnames]
    writer = csv.DictWriter(sys.stdout, fieldnames=fieldnames, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _dump(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


# ----------------------------------------------------------------------------- counting and capping

max_requests_option = click.option(
    "--max-requests",
    type=click.IntRange(min=1),
    metavar="N",
    help="Send at most N requests; at N, stop (exit 75) with what was printed whole.",
)


def _say(message: str) -> None:
    """A line on stderr, unless --quiet (errors only)."""
    g = click.get_current_context().find_object(Globals)
    if g is None or not g.quiet:
        click.echo(message, err=True)


@contextmanager
def _counted(max_requests: int | None) -> Iterator[SpotifyClient]:
    """:func:`_client`; at its end (errors included) the requests it made said on stderr when more
    than one; the cap's stop said as the cap (exit 75)."""
    with _client(max_requests=max_requests) as client:
        try:
            yield client
        except Stopped as exc:
            if type(exc) is not Stopped or max_requests is None or client.requests_made < max_requests:
                raise  # the daily budget, a cancel: not the cap
            raise Stopped(f"stopped at --max-requests {max_requests}; what was printed is whole") from None
        finally:
            if client.requests_made > 1:
                _say(f"{client.requests_made} requests made")


def _search_requests(first: JSON, offset: int) -> tuple[int, str]:
    """The requests a ``search --all`` makes, as its first answer's totals and page size imply (the
    types share each request: the longest one counts), and the totals as words."""
    requests, totals = 1, []
    for key, page in first.items():
        if not isinstance(page, dict):
            continue
        total = int(page.get("total") or 0)
        size = int(page.get("limit") or 0) or 1
        reachable = max(0, min(total, endpoints.SEARCH_OFFSET_CAP) - offset)
        requests = max(requests, -(-reachable // size))
        totals.append(f"{key} {total:,}")
    return requests, ", ".join(totals)


def _get_requests(item_type: str, count: int, client: SpotifyClient) -> int:
    """The fewest requests ``get`` of ``count`` ids can make: batches where the mode may allow them."""
    if count == 1 or item_type not in endpoints.BATCH_MAX or client.mode is ApiMode.DEVELOPMENT:
        return count
    return -(-count // endpoints.BATCH_MAX[item_type])


# ----------------------------------------------------------------------------- search


@click.command()
@click.argument("query")
@click.option(
    "--type",
    "types",
    default="artist",
    show_default=True,
    metavar="TYPE[,TYPE...]",
    help=f"What to search for: {', '.join(endpoints.SEARCH_TYPES)} (comma-separated for several).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, endpoints.MAX_LIMIT),
    help="Results per type and page (1-50; at most 10 in development mode).",
)
@click.option(
    "--offset",
    type=click.IntRange(0, endpoints.SEARCH_OFFSET_CAP - 1),
    default=0,
    show_default=True,
    help="Index of the first result (offset + limit stays within Spotify's 1000).",
)
@market_option
@click.option("--include-external", type=click.Choice(["audio"]), help="Include externally hosted audio.")
@click.option("--all", "all_pages", is_flag=True, help="Walk every page up to Spotify's 1000-result ceiling.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@max_requests_option
def search(
    query: str,
    types: str,
    limit: int | None,
    offset: int,
    market: str | None,
    include_external: str | None,
    all_pages: bool,
    fmt: str,
    max_requests: int | None,
) -> None:
    """Search the catalog for QUERY (Spotify's field filters work: artist:, year:, isrc:, ...).

    --all says on stderr how many requests its first page's totals imply; more than one request made
    is said on stderr at the end.
    """
    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    kinds = endpoints.search_types(types)
    needs_market = [f"{kind}s" for kind in kinds if kind in NEEDS_MARKET]
    if needs_market and market is None:
        _say(f"note: {' and '.join(needs_market)} are found only in a market: add --market XX (e.g. US)")
    params: JSON = {"market": market, "include_external": include_external, "offset": offset}
    stop: Stopped | None = None
    with _counted(max_requests) as client:
        asked = _Search(client, query, kinds, params, limit, fmt)
        try:
            if all_pages:
                asked.every_page()
            else:
                asked.one_page()
        except Stopped as exc:
            if not all_pages:
                raise  # one page: nothing came
            stop = exc  # the pages that came are printed whole
        if all_pages:
            asked.raw = {f"{kind}s": items for kind, (items, _) in asked.groups.items()}
        if fmt == "json":
            _dump(asked.raw)
        elif fmt == "csv":
            _print_csv((_row(kind, item) for kind in kinds for item in asked.groups[kind][0]), kinds)
        elif fmt == "table":
            _print_table(asked.groups)
        if stop is not None:
            raise stop


@dataclass
class _Search:
    """A search asked for: its results per type (``groups``: items, total) as they come, JSON lines
    printed as they come, the answer of a single page (``raw``)."""

    client: SpotifyClient
    query: str
    kinds: list[str]
    params: JSON
    limit: int | None
    fmt: str
    groups: dict[str, tuple[list[JSON], int | None]] = field(default_factory=dict)
    raw: JSON = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.groups = {kind: ([], None) for kind in self.kinds}

    def one_page(self) -> None:
        self.raw = endpoints.search(self.client, self.query, self.kinds, limit=self.limit, **self.params)
        for kind in self.kinds:
            page = self.raw.get(f"{kind}s") or {}
            items = [item for item in page.get("items") or [] if item is not None]
            self.groups[kind] = (items, page.get("total"))
            self._print(items)

    def every_page(self) -> None:
        """Every page; what the first one implies said on stderr."""
        cap = self.client.request_budget

        def first_page(answer: JSON) -> None:
            requests, totals = _search_requests(answer, self.params["offset"])
            line = f"search --all: {totals}: about {requests:,} request(s)"
            if cap is not None and requests > cap:
                line += f"; --max-requests {cap} stops it before the end"
            _say(line)

        pages = endpoints.iter_search(
            self.client, self.query, self.kinds, page_size=self.limit, on_first=first_page, **self.params
        )
        for kind, item in pages:
            self.groups[kind][0].append(item)
            self._print([item])

    def _print(self, items: list[JSON]) -> None:
        if self.fmt == "jsonl":
            for item in items:
                click.echo(json.dumps(item, ensure_ascii=False))


# ----------------------------------------------------------------------------- get

NEEDS_MARKET = ("show", "episode", "audiobook", "chapter")


@click.command()
@click.argument("item_type", metavar="TYPE", type=click.Choice(endpoints.ITEM_TYPES))
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@market_option
@max_requests_option
def get(item_type: str, ids: tuple[str, ...], market: str | None, max_requests: int | None) -> None:
    """Print catalog objects as JSON. TYPE: artist, album, track, show, episode, audiobook, chapter or
    playlist. IDs may be ids, spotify: URIs or open.spotify.com URLs.

    One ID prints the object, several print a list (null for unknown ids), once every answer is in
    (a stop at --max-requests prints nothing). More than one request made is said on stderr.
    """
    wanted = [endpoints.parse_id(value, item_type) for value in ids]
    with _counted(max_requests) as client:
        fewest = _get_requests(item_type, len(wanted), client)
        if max_requests is not None and fewest > max_requests:
            raise UsageError(
                f"{len(wanted)} {item_type}s need at least {fewest} requests, more than --max-requests "
                f"{max_requests}: nothing sent"
            )
        try:
            if len(wanted) == 1:
                _dump(endpoints.GETTERS[item_type](client, wanted[0], market))
                return
            if item_type in endpoints.BATCH_MAX:
                several = getattr(endpoints, f"get_{item_type}s")
                kwargs = {} if item_type == "artist" else {"market": market}
                _dump(several(client, wanted, **kwargs))
                return
            results: list[JSON | None] = []
            for item_id in wanted:
                try:
                    results.append(endpoints.GETTERS[item_type](client, item_id, market))
                except NotFoundError:
                    results.append(None)
            _dump(results)
        except NotFoundError as exc:
            if item_type in NEEDS_MARKET and market is None:
                exc.message += f" (a {item_type} is visible to client-credentials apps only with --market)"
            raise


# ----------------------------------------------------------------------------- auth check


def check_credentials(*, forget: bool = False) -> None:
    """Obtain a token, say whether the credentials work and which API mode the app has: detected afresh
    (one request), remembered, with when the memory it replaces was learnt. ``forget``: forget what is
    remembered for the client id instead, and send nothing."""
    settings = command_settings()
    if forget:
        client_id = settings.credentials()[0]
        gone = modecache.forget(client_id)
        click.echo(
            f"forgot {gone} remembered API mode(s) of client id {client_id} ({modecache.cache_file()})"
        )
        return
    with _client(settings) as client:
        client.tokens.token()
        click.echo(f"credentials: ok (client id {settings.client_id}, token endpoint {settings.token_url})")
        if settings.mode is not None:
            click.echo(f"api mode: {settings.mode} (from the settings)")
            return
        previous = client.memory
        client.mode = None  # detected afresh: this is the command that reports it
        try:
            mode = _detect_mode(client)
        except PremiumLapsedError as exc:
            raise SpotifyCatalogError(exc.message) from None
        client.mode = mode
        click.echo(f"api mode: {mode} (detected with one request; remembered in {modecache.cache_file()})")
        if previous is None:
            click.echo("previously remembered: nothing")
        else:
            when = format_time(previous.learnt_at) if previous.learnt_at else "at an unknown time"
            click.echo(f"previously remembered: {previous.mode}, learnt {when}")
        click.echo(
            f'pin it: export SPOTIFY_CATALOG_MODE={mode}, or mode = "{mode}" in the '
            "[spotify] table of the settings file"
        )


def _detect_mode(client: SpotifyClient) -> ApiMode:
    """One request: a search with a limit only Extended Quota Mode accepts."""
    try:
        client.get("/search", {"q": "a", "type": "artist", "limit": endpoints.DEV_LIMIT + 1})
    except BadRequestError as exc:
        if "limit" not in exc.message.lower():
            raise
        return ApiMode.DEVELOPMENT
    except ForbiddenError:
        return ApiMode.DEVELOPMENT
    return ApiMode.EXTENDED
