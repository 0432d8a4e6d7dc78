"""``auth``: the app's credentials (``auth check``) and the users logged in for their own data
(``auth login``, ``auth status``, ``auth logout``, ``auth check --user``); docs/user-data.md.

What a command finds goes to stdout; the consent page's URL and what to do with it go to stderr. The
refresh token is never printed.
"""

from __future__ import annotations

import dataclasses
import json
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from spotify_catalog import ledger, oauth
from spotify_catalog.cli import WholeSummaries
from spotify_catalog.cli.api import check_credentials, command_settings
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import SpotifyCatalogError, UsageError, format_time
from spotify_catalog.login import DEFAULT_TIMEOUT, login
from spotify_catalog.users import (
    DEFAULT_NAME,
    LoginStore,
    StoredLogin,
    UserGrant,
    describe,
    login_command,
    user_client,
)


@click.group(cls=WholeSummaries)
def auth() -> None:
    """Check the app's credentials; log users in and out for their own data (docs/user-data.md)."""


@contextmanager
def _user_client(name: str | None) -> Iterator[SpotifyClient]:
    """A client acting for the user logged in as ``name``, counting its requests in the account's
    ledger as every command does."""
    settings = command_settings()
    store = LoginStore()
    stored = store.load(store.resolve(name))
    settings = dataclasses.replace(settings, client_id=stored.client_id)
    with (
        ledger.open_budget(settings, limit=settings.daily_budget) as budget,
        user_client(stored.name, settings, store=store, budget=budget) as client,
    ):
        yield client


def _summary(stored: StoredLogin) -> str:
    who = f"{stored.user_id} ({stored.display_name})" if stored.display_name else stored.user_id
    return (
        f"{stored.name}: Spotify user {who}; logged in {format_time(stored.logged_in)}; refresh token "
        f"expires {format_time(stored.refresh_expires)}; scopes: {' '.join(stored.scopes) or '(none)'}"
    )


@auth.command()
@click.option(
    "--user",
    "name",
    metavar="NAME",
    help="Check the login of this user instead: refresh its token, read the profile (one request) and "
    "make sure it granted what crawl --me needs.",
)
@click.option(
    "--forget",
    is_flag=True,
    help="Forget the API mode remembered for the client id (every API URL) and send nothing.",
)
def check(name: str | None, forget: bool) -> None:
    """Say whether the app's credentials work and which API mode it has, detected afresh (with --user:
    whether a user's login works)."""
    if name is None:
        check_credentials(forget=forget)
        return
    if forget:
        raise click.UsageError("--forget is about the app's API mode: not with --user")
    with _user_client(name) as client:
        grant = client.tokens.grant
        assert isinstance(grant, UserGrant)
        stored = grant.login
        grant.require(*oauth.DEFAULT_SCOPES, what="crawl --me")
        profile = client.get("/me")
        if profile.get("id") != stored.user_id:
            raise UsageError(
                f"the login of {stored.name!r} now answers for Spotify user {profile.get('id')}, not "
                f"{stored.user_id}: log in again with {login_command(stored.name)}"
            )
        click.echo(f"ok: {_summary(grant.login)}")


@auth.command(name="login")
@click.option(
    "--user",
    "name",
    default=DEFAULT_NAME,
    show_default=True,
    metavar="NAME",
    help="The name the login is kept under (a file name: letters, digits, '_', '-').",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="A scope to ask for, repeatable (or comma-separated) [every scope the collection needs: "
    "docs/user-data.md].",
)
@click.option("--no-browser", is_flag=True, help="Print the consent page's URL instead of opening a browser.")
@click.option(
    "--redirect-uri",
    default=oauth.DEFAULT_REDIRECT_URI,
    show_default=True,
    metavar="URI",
    help="Where the browser comes back: http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH, registered "
    "in the app's settings (without a port: a free one, for a URI registered without a port).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the browser.",
)
def log_in(name: str, scopes: tuple[str, ...], no_browser: bool, redirect_uri: str, timeout: float) -> None:
    """Log a Spotify user in (Authorization Code with PKCE) and keep the login for their own data."""
    settings = command_settings()
    with ledger.open_budget(settings, limit=settings.daily_budget) as budget:
        stored = login(
            name,
            settings,
            scopes=scopes or oauth.DEFAULT_SCOPES,
            redirect_uri=redirect_uri,
            timeout=timeout,
            open_browser=None if no_browser else webbrowser.open,
            show=lambda text: click.echo(text, err=True),
            budget=budget,
        )
    click.echo(f"logged in: {_summary(stored)}")


@auth.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status(fmt: str) -> None:
    """List the users logged in: name, Spotify user id, scopes, login date, refresh token expiry."""
    store = LoginStore()
    logins: list[StoredLogin] = []
    unreadable: list[str] = []
    for name in store.names():
        try:
            logins.append(store.load(name))
        except SpotifyCatalogError as exc:
            unreadable.append(str(exc))
    now = datetime.now(UTC)
    if fmt == "json":
        rows = [{**describe(s), "expired": s.refresh_expires <= now} for s in logins]
        click.echo(json.dumps({"users": rows, "unreadable": unreadable}, indent=2))
        return
    if not logins and not unreadable:
        click.echo(f"no user logged in ({store.directory}): {login_command(DEFAULT_NAME)} [--user NAME]")
    for stored in logins:
        expired = f" (expired: {login_command(stored.name)})" if stored.refresh_expires <= now else ""
        click.echo(_summary(stored) + expired)
    for problem in unreadable:
        click.echo(f"unreadable: {problem}")


@auth.command()
@click.option("--user", "name", metavar="NAME", help="Who to log out [the only user logged in].")
def logout(name: str | None) -> None:
    """Forget a user's login (its refresh token file); the app keeps its access in the user's Spotify
    account until they remove it there (Apps)."""
    store = LoginStore()
    name = store.resolve(name)
    if not store.remove(name):
        raise UsageError(f"no user logged in as {name!r} (auth status lists them)")
    click.echo(f"logged out: {name} (its refresh token is deleted from {store.directory})")
