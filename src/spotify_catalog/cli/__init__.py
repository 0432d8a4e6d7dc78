"""The ``spotify-catalog`` command line.

Each command lives in its own module of this package and is imported only when it runs, so that
``spotify-catalog search`` does not pay for pyarrow or the emulator. Data goes to stdout; progress,
logs and errors go to stderr. Every :class:`~spotify_catalog.errors.SpotifyCatalogError` becomes one
line on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from spotify_catalog.errors import EXIT_INTERRUPTED, SpotifyCatalogError

# command name -> "module:attribute" below spotify_catalog.cli
COMMANDS: dict[str, str] = {
    "emulator": "emulator:emulator",
    "search": "api:search",
    "get": "api:get",
    "auth": "api:auth",
    "crawl": "crawl:crawl",
    "demo": "crawl:demo",
    "export": "export:export",
    "status": "status:status",
}


@dataclass
class Globals:
    """What the global options say; commands read it with ``click.get_current_context().obj``."""

    api_url: str | None = None
    token_url: str | None = None
    config: str | None = None
    verbose: int = 0
    quiet: bool = False


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is used, and turns the
    project's errors into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:  # a command whose optional dependency is missing
            if exc.name and exc.name.startswith(__name__):
                return None
            raise click.ClickException(
                f"'{cmd_name}' needs the optional dependency {exc.name!r}: pip install 'spotify-catalog[all]'"
            ) from None
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage_error(ctx, exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage_error(ctx, exc)
        except SpotifyCatalogError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _market_code(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", value):
        raise click.BadParameter("a market is a 2-letter country code such as US", ctx, param)
    return value.upper()


market_option = click.option(
    "--market", metavar="XX", callback=_market_code, help="ISO 3166-1 country code (shows/episodes need one)."
)


def _usage_error(ctx: click.Context, exc: click.UsageError) -> NoReturn:
    """Click's usage errors as one line, like every other error, saying where to look."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # no arguments at all: the help
        raise exc
    where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    click.echo(f"Error: {exc.format_message()} (see '{where} --help')", err=True)
    ctx.exit(exc.exit_code)


def configure_logging(verbose: int, quiet: bool) -> None:
    """Logs go to stderr: warnings by default, info with -v, debug with -vv, errors only with --quiet."""
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    from spotify_catalog.settings import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # safety net: the client secret and tokens never reach stderr
    root = logging.getLogger("spotify_catalog")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    if verbose < 3:  # httpx logs every request at INFO; keep it for -vvv
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spotify-catalog")
@click.option("--api-url", metavar="URL", help="Web API base URL [env SPOTIFY_API_URL].")
@click.option("--token-url", metavar="URL", help="Token endpoint URL [env SPOTIFY_TOKEN_URL].")
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="Settings file (TOML) [env SPOTIFY_CATALOG_CONFIG].",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display, errors only.")
@click.pass_context
def main(
    ctx: click.Context,
    api_url: str | None,
    token_url: str | None,
    config: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Collect Spotify catalog data into a database and a Parquet lake.

    Credentials come from --options, then SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET in the
    environment (or a .env file), then the settings file.
    """
    configure_logging(verbose, quiet)
    ctx.obj = Globals(api_url=api_url, token_url=token_url, config=config, verbose=verbose, quiet=quiet)
