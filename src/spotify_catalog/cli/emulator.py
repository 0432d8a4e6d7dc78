"""``spotify-catalog emulator``: serve the Spotify Web API emulator in the foreground.

Prints exactly one line to stdout when ready (the base URL), then a few ids of each kind it serves
(:mod:`spotify_catalog.emulator.samples`) and the requests' log lines to stderr; ``--samples`` prints
those ids as JSON and exits. Ctrl-C,
SIGTERM and SIGHUP stop it gracefully (requests in flight are answered), then it exits as every
command does: one line, exit 130, 143 or 129.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from spotify_catalog.emulator.catalog import MAX_ARTISTS
from spotify_catalog.errors import Terminated, UsageError

if TYPE_CHECKING:
    from spotify_catalog.emulator import EmulatorConfig


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0: a free port.")
@click.option(
    "--profile",
    default="development",
    show_default=True,
    type=click.Choice(["development", "extended"]),
    help="Development Mode (2026) or Extended Quota.",
)
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of the generated catalog.")
@click.option(
    "--artists",
    default=2000,
    show_default=True,
    type=click.IntRange(3, MAX_ARTISTS),
    help="Number of artists in the catalog.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Added to every response.",
)
@click.option(
    "--rate-limit",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests per rolling 30 s (0: off).",
)
@click.option(
    "--quota",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests per rolling 24 h of each quota bucket, per account (0: off).",
)
@click.option(
    "--quota-buckets",
    default="",
    metavar="NAME=N,...",
    help="Sizes of some buckets, e.g. artist-albums=100,search=500 (the others: --quota).",
)
@click.option(
    "--token-ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Access token lifetime, seconds.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of Web API requests answered with a fault.",
)
@click.option(
    "--fault-kinds",
    default="500,502,503,drop",
    show_default=True,
    help="Comma list of: 500, 502, 503, drop, truncated, html, content_type, missing_field, extra_field, "
    "null_items, plain_text_error, empty_429.",
)
@click.option(
    "--retry-after",
    default="normal",
    show_default=True,
    type=click.Choice(["normal", "zero", "omit"]),
    help="Retry-After of the 30-s limiter's 429.",
)
@click.option("--client-id", default="emulator-client-id", show_default=True, help="Accepted client id.")
@click.option("--client-secret", default="emulator-client-secret", help="Accepted client secret.")
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="ID:SECRET[:ACCOUNT]",
    help="Another accepted client, in a developer account (default: its id); repeatable.",
)
@click.option(
    "--owner-premium-lapsed",
    is_flag=True,
    help="The app owner's Premium has lapsed: every Web API call is refused (403).",
)
@click.option(
    "--users",
    default="alice",
    show_default=True,
    metavar="NAME,...",
    help="Test users who can log in (GET /authorize); development: the first 5 are the app's users.",
)
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    metavar="URI",
    help="A redirect URI registered for the apps, repeatable [http://127.0.0.1:8888/callback]; "
    "a loopback one without a port accepts any port.",
)
@click.option(
    "--samples",
    "print_samples",
    is_flag=True,
    help="Print a few ids of each kind the catalog serves as JSON, and exit (nothing is served).",
)
def emulator(host: str, port: int, print_samples: bool, **options: Any) -> None:
    """Serve a local Spotify Web API emulator (token endpoint and /v1) until interrupted.

    Prints its URL on stdout, then a few ids of each kind it serves on stderr (--samples: as JSON).
    """
    config = _config(**options)
    if print_samples:
        from spotify_catalog.emulator.catalog import Catalog
        from spotify_catalog.emulator.samples import MARKET, samples

        found = samples(Catalog(config.seed, config.artists))
        click.echo(json.dumps({"market": MARKET, **found}, ensure_ascii=False, indent=2))
        return
    _serve(config, host, port)


def _config(
    profile: str,
    seed: int,
    artists: int,
    latency_ms: float,
    rate_limit: int,
    quota: int,
    token_ttl: int,
    fault_rate: float,
    fault_kinds: str,
    retry_after: str,
    client_id: str,
    client_secret: str,
    quota_buckets: str,
    clients: tuple[str, ...],
    owner_premium_lapsed: bool,
    users: str,
    redirect_uris: tuple[str, ...],
) -> EmulatorConfig:
    """The emulator's configuration of the command's options; a bad one is a usage error."""
    from spotify_catalog.emulator import EmulatorConfig
    from spotify_catalog.emulator.config import Client, parse_quota_buckets

    try:
        return EmulatorConfig(
            profile=profile,  # type: ignore[arg-type]
            seed=seed,
            artists=artists,
            latency_ms=latency_ms,
            rate_limit=rate_limit,
            quota=quota,
            token_ttl=token_ttl,
            fault_rate=fault_rate,
            client_id=client_id,
            client_secret=client_secret,
            retry_after=retry_after,  # type: ignore[arg-type]
            fault_kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()),
            clients=tuple(Client.parse(c) for c in clients),
            quota_buckets=parse_quota_buckets(quota_buckets),
            owner_premium=not owner_premium_lapsed,
            users=users,  # type: ignore[arg-type]  # "alice,bob": split by EmulatorConfig
            redirect_uris=redirect_uris or EmulatorConfig.redirect_uris,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Serve ``config`` on ``host:port`` until a signal; the URL on stdout once ready, then the sample
    ids on stderr."""
    from spotify_catalog.emulator import EmulatorState, create_app
    from spotify_catalog.emulator.samples import describe, samples
    from spotify_catalog.emulator.server import base_url, bind, make_server

    try:
        sock = bind(host, port)
    except (OSError, socket.gaierror) as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    url = base_url(sock)
    request_log = logging.getLogger("spotify_catalog.emulator")
    if request_log.getEffectiveLevel() > logging.INFO:
        request_log.setLevel(logging.INFO)
    state = EmulatorState(config)
    server = make_server(create_app(state=state))
    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets)
        if not server.should_exit:
            click.echo(url)
            sys.stdout.flush()
            for line in describe(samples(state.catalog)):
                click.echo(line, err=True)

    server.startup = startup  # type: ignore[method-assign]
    received: list[int] = []

    def handle_exit(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True  # a second Ctrl-C: stop without waiting for open connections
        received.append(signum)
        server.should_exit = True

    # uvicorn installs its handle_exit for SIGINT and SIGTERM while serving; with ours it does not
    # re-raise the signal afterwards (which would kill the process by SIGTERM: exit -15)
    server.handle_exit = handle_exit  # type: ignore[method-assign,assignment]
    try:
        with _graceful_sighup(handle_exit):
            server.run(sockets=[sock])
    finally:
        sock.close()
    if received:
        raise KeyboardInterrupt if received[0] == signal.SIGINT else Terminated(received[0])


@contextlib.contextmanager
def _graceful_sighup(handler: Any) -> Iterator[None]:
    """SIGHUP stops the server like SIGTERM (uvicorn handles only SIGINT and SIGTERM)."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(hup)
    if previous is signal.SIG_IGN:  # nohup
        yield
        return
    signal.signal(hup, handler)
    try:
        yield
    finally:
        signal.signal(hup, previous)
