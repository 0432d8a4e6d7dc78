"""The ``spotify-catalog`` command line.

Each command lives in its own module of this package and is imported only when it runs, so that
``spotify-catalog search`` does not pay for pyarrow or the emulator. Data goes to stdout; progress,
logs and errors go to stderr. Every :class:`~spotify_catalog.errors.SpotifyCatalogError` becomes one
line on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from spotify_catalog.errors import SpotifyCatalogError, Terminated, interrupt_exit_code, interrupt_name

if TYPE_CHECKING:
    from spotify_catalog.settings import Settings

# command name -> "module:attribute" below spotify_catalog.cli
COMMANDS: dict[str, str] = {
    "emulator": "emulator:emulator",
    "search": "api:search",
    "get": "api:get",
    "auth": "auth:auth",
    "crawl": "crawl:crawl",
    "demo": "crawl:demo",
    "export": "export:export",
    "status": "status:status",
    "report": "report:report",
}


@dataclass
class Globals:
    """What the global options say; commands read it with ``click.get_current_context().obj``."""

    api_url: str | None = None
    token_url: str | None = None
    config: str | None = None
    account: str | None = None
    ledger: str | None = None
    verbose: int = 0
    quiet: bool = False
    log_format: str = "text"

    def settings(self, **overrides: Any) -> Settings:
        """The settings of these options and ``overrides`` (flags), the environment and the settings file."""
        from spotify_catalog.settings import Settings

        given = {"api_url": self.api_url, "token_url": self.token_url, "account": self.account}
        return Settings.load({**given, "ledger": self.ledger, **overrides}, config_path=self.config)


SUMMARY_LIMIT = 400  # characters of a command's summary in a group's help: its whole first sentence


class WholeSummaries(click.Group):
    """A group whose help lists each command with the whole first sentence of its help, wrapped
    (click cuts it to the width left on one line: ``export    Export the catalog to...``)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [(name, c.get_short_help_str(SUMMARY_LIMIT)) for name, c in commands if c and not c.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class LazyGroup(WholeSummaries):
    """A group that imports a command's module only when the command is used, and turns the
    project's errors into one line and an exit code."""

    listing = False  # while --help lists the commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries; one whose extra is not installed says which."""
        self.listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.listing = False

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
            from spotify_catalog import extras

            if self.listing:
                return click.Command(cmd_name, short_help=extras.needs("", exc.name).strip())
            raise extras.missing(f"'{cmd_name}'", exc) from None
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        _accept_global_options(command)
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
            click.echo(f"Error: {one_line(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (see install_signal_handlers)
            click.echo(f"Interrupted by {interrupt_name(exc)}.", err=True)
            ctx.exit(interrupt_exit_code(exc))


# C0 controls (ESC, CR, LF, TAB...), DEL, C1 controls, and the marks and overrides that reorder text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` safe to print as one line of a terminal: control characters (an ESC from a corrupt file,
    a newline, a bidirectional override) written as ``\\x1b``, ``\\x0a``, ``\\u202e``; registered secrets
    (client secret, tokens, database credentials) replaced by ``**********``."""
    from spotify_catalog.redaction import scrub

    text = scrub(text)
    if text.isascii() and text.isprintable():  # no C0 control nor DEL, the only ASCII in _CONTROL
        return text
    return _CONTROL.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    """A log formatter whose messages are :func:`one_line` (a traceback, with ``-vv``, stays as it is)."""

    _second: tuple[int, str] = (-1, "")  # the date and time of the last second formatted

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """As :class:`logging.Formatter` writes it, the date and time worked out once a second (the
        emulator logs thousands of lines a second)."""
        if datefmt:
            return super().formatTime(record, datefmt)
        second, stamp = self._second
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, stamp)
        msec_format = self.default_msec_format
        return msec_format % (stamp, record.msecs) if msec_format else stamp


def _market_code(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", value):
        raise click.BadParameter("a market is a 2-letter country code such as US", ctx, param)
    return value.upper()


market_option = click.option(
    "--market", metavar="XX", callback=_market_code, help="ISO 3166-1 country code (shows/episodes need one)."
)

F = TypeVar("F", bound=Callable[..., Any])


_SCHEMA_DEFAULT = "[the URL's search_path, else public]"
_CREATED = "PostgreSQL: the schema to crawl into, created if missing"
SCHEMA_HELP = {
    "crawl": f"{_CREATED} (--plan only reads it) {_SCHEMA_DEFAULT}.",
    "demo": f"{_CREATED} {_SCHEMA_DEFAULT}.",
    "read": "PostgreSQL: the schema to read; nothing is created, and a schema that does not exist is "
    f"an error {_SCHEMA_DEFAULT}.",
}


def db_options(default: str, *, schema: str = "read") -> Callable[[F], F]:
    """``--db URL`` (parameter ``db_url``, defaulting to ``default``) and ``--db-schema NAME``
    (parameter ``db_schema``, None unless given), for every command that opens the database: pass both
    on, ``storage.migrate.open_database(db_url, schema=db_schema)``,
    ``storage.engine.create_engine(db_url, schema=db_schema)`` or
    ``storage.read_only.reading(db_url, db_schema=db_schema)``. A bad schema name, or one given for
    SQLite/MySQL, is a usage error there. ``schema``: what the command does with the schema, as its
    help says (:data:`SCHEMA_HELP`: ``crawl`` and ``demo`` create it, ``read`` only reads it)."""

    def decorate(command: F) -> F:
        command = click.option("--db-schema", "db_schema", metavar="NAME", help=SCHEMA_HELP[schema])(command)
        return click.option(
            "--db", "db_url", default=default, show_default=True, metavar="URL", help="Database URL."
        )(command)

    return decorate


def _usage_error(ctx: click.Context, exc: click.UsageError) -> NoReturn:
    """Click's usage errors as one line, like every other error, saying where to look."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # no arguments at all: the help
        raise exc
    where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    click.echo(f"Error: {one_line(exc.format_message())} (see '{one_line(where)} --help')", err=True)
    ctx.exit(exc.exit_code)


STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def install_signal_handlers(ctx: click.Context) -> None:
    """SIGTERM (systemd, Docker, Kubernetes) and SIGHUP stop a command as Ctrl-C does: the handler raises
    :class:`~spotify_catalog.errors.Terminated`, a ``KeyboardInterrupt``, in the main thread, so every
    clean-up written for Ctrl-C runs; the exit code is 143 or 129. Only the first signal raises; more
    while the command stops are ignored, so they cannot cut its clean-up short. A signal already
    ignored (``nohup``) stays ignored. SIGUSR1 prints every thread's stack (:func:`_dump_stacks_on_sigusr1`).
    The previous handlers come back when the command ends."""
    if threading.current_thread() is not threading.main_thread():
        return
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            logging.getLogger(__name__).warning("%s: already stopping", signal.Signals(signum).name)
            return
        stopping = True
        raise Terminated(signum)

    previous: dict[int, Any] = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)  # no SIGHUP on Windows
        if signum is None or signal.getsignal(signum) is signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)

    dumps = _dump_stacks_on_sigusr1()

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)
        if dumps is not None:
            faulthandler.unregister(dumps)

    ctx.call_on_close(restore)


def _dump_stacks_on_sigusr1() -> int | None:
    """Have ``kill -USR1 PID`` print every thread's stack to stderr (Python's ``faulthandler``; the
    command goes on): what a command that seems stuck is doing. The signal's number, or ``None`` where
    it cannot be (no SIGUSR1 on Windows, an ignored one, no real stderr)."""
    signum = getattr(signal, "SIGUSR1", None)
    stderr = sys.__stderr__
    if signum is None or stderr is None or signal.getsignal(signum) is signal.SIG_IGN:
        return None
    try:
        faulthandler.register(signum, file=stderr, all_threads=True)
    except (AttributeError, ValueError, OSError):  # a stderr without a file descriptor
        return None
    return int(signum)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, message, and a crawl's counts."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": "log",
            "message": record.getMessage(),
        }
        document.update(getattr(record, "progress", None) or {})
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(document, default=str)


def configure_logging(verbose: int, quiet: bool, log_format: str = "text") -> None:
    """Logs go to stderr: warnings by default, info with -v, debug with -vv, errors only with --quiet;
    ``log_format`` ``json``: one JSON object a line."""
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    from spotify_catalog.redaction import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
@click.option(
    "--account",
    metavar="NAME",
    help="The developer account whose requests are counted [env SPOTIFY_CATALOG_ACCOUNT; the client id].",
)
@click.option(
    "--ledger",
    metavar="URL",
    help="Database of the accounts' requests [env SPOTIFY_CATALOG_LEDGER; "
    "sqlite:///$XDG_DATA_HOME/spotify-catalog/ledger.db].",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no summary; logs: errors only.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs and progress on stderr as text lines or one JSON object a line.",
)
@click.pass_context
def main(
    ctx: click.Context,
    api_url: str | None,
    token_url: str | None,
    config: str | None,
    account: str | None,
    ledger: str | None,
    verbose: int,
    quiet: bool,
    log_format: str,
) -> None:
    """Collect Spotify catalog data into a database and a Parquet lake.

    Credentials come from --options, then SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET in the
    environment (or a .env file), then the settings file. The options below work after the
    command too (spotify-catalog crawl ... -v).
    """
    configure_logging(verbose, quiet, log_format)
    install_signal_handlers(ctx)
    ctx.obj = Globals(
        api_url=api_url,
        token_url=token_url,
        config=config,
        account=account,
        ledger=ledger,
        verbose=verbose,
        quiet=quiet,
        log_format=log_format,
    )


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the command: into :class:`Globals`, and the logging set up again."""
    if value is None or value is False or value == 0:
        return
    source = ctx.get_parameter_source(param.name or "")
    if source is not click.core.ParameterSource.COMMANDLINE:
        return
    globals_ = ctx.find_object(Globals)
    if globals_ is None:
        return
    name = (param.name or "").removeprefix("global_")
    if name == "verbose":
        value = globals_.verbose + value
    setattr(globals_, name, value)
    configure_logging(globals_.verbose, globals_.quiet, globals_.log_format)


def _accept_global_options(command: click.Command) -> None:
    """Give ``command`` (and a group's subcommands) the group's options, so that they work after it."""
    if getattr(command, "_global_options", False):
        return
    command._global_options = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_global_options(sub)
        return
    taken = {opt for p in command.params for opt in p.opts}
    for option in main.params:
        if not isinstance(option, click.Option):
            continue
        opts = [o for o in option.opts if o not in taken]
        if not opts:
            continue
        kwargs: dict[str, Any] = {"type": option.type}
        if option.count:
            kwargs = {"count": True}
        elif option.is_flag:
            kwargs = {"is_flag": True}
        command.params.append(
            click.Option(
                [*opts, f"global_{option.name}"],
                expose_value=False,
                callback=_set_global,
                help=option.help,
                metavar=option.metavar,
                **kwargs,
            )
        )
