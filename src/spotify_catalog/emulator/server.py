"""Serving the emulator: in a thread for tests (:func:`serve_in_thread`), or in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import uvicorn

from spotify_catalog.emulator.app import create_app
from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.config import EmulatorConfig
from spotify_catalog.emulator.faults import quiet_server_logs
from spotify_catalog.emulator.state import EmulatorState, LoggedRequest
from spotify_catalog.emulator.users import Users

if TYPE_CHECKING:
    from spotify_catalog.emulator.redirect import RedirectTransport
    from spotify_catalog.emulator.session import UserLogin


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket (port 0: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY then
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


BAD_REQUEST_MESSAGE = "Malformed request: the request line or headers could not be read"


def _spotify_400(self: Any, msg: str) -> None:
    """What uvicorn sends for a request it cannot parse (a 1 MB URL, a raw non-ASCII byte, a control
    character in the path), as Spotify's JSON error instead of ``text/plain`` ``Invalid HTTP request
    received.``; the connection is then closed, as uvicorn closes it."""
    body = json.dumps(
        {"error": {"status": 400, "message": BAD_REQUEST_MESSAGE}}, separators=(",", ":")
    ).encode()
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
    head += [
        b"content-type: application/json; charset=utf-8\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    self.transport.write(b"".join(head) + body)
    self.transport.close()


class CorkedTransport:
    """A transport whose writes during one turn of the event loop leave as one ``write`` at the end of
    that turn. uvicorn writes a response's status line and headers, then its body: corked, they travel
    in one TCP segment, so the client wakes up once per response instead of twice, and the server makes
    one ``send`` system call instead of two. The bytes and their order are unchanged; ``close`` sends
    what is pending first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Send what was written since the last flush (nothing if the connection is closing)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._pending)

    def __getattr__(self, name: str) -> Any:  # get_extra_info, pause_reading, set_protocol...
        return getattr(self._transport, name)


def http_protocol(kind: str = "auto") -> type[Any]:
    """uvicorn's HTTP protocol (``auto``: httptools when installed, as uvicorn picks, else ``h11``) with
    :func:`_spotify_400` for requests it cannot parse, writing through a :class:`CorkedTransport`."""
    base: type[Any] | None = None
    if kind != "h11":
        with contextlib.suppress(ImportError):  # httptools is an optional speed-up of uvicorn
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

            base = HttpToolsProtocol
    if base is None:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    protocol: Any = base

    def connection_made(self: Any, transport: asyncio.Transport) -> None:
        protocol.connection_made(self, CorkedTransport(transport, self.loop))

    methods = {"send_400_response": _spotify_400, "connection_made": connection_made}
    return type(f"Spotify{base.__name__}", (base,), methods)


def make_server(
    app: Any, *, access_log: bool = False, loop: str = "auto", http: str = "auto"
) -> uvicorn.Server:
    quiet_server_logs()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        lifespan="off",
        loop=loop,
        http=http_protocol(http),
        timeout_graceful_shutdown=2,
        log_config=None,
    )
    return uvicorn.Server(config)


class RunningEmulator:
    """A running emulator: its URL, and the in-process controls of ``/_emulator/*``."""

    def __init__(self, url: str, state: EmulatorState) -> None:
        self.url = url
        self.state = state

    @property
    def catalog(self) -> Catalog:
        return self.state.catalog

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    @property
    def users(self) -> Users:
        """The test users: ``emu.users.get("alice")`` has ``id``, ``library``, ``plays(start, end)``,
        ``recent_plays(now)``, ``top_artists(time_range, now)`` (the truth, see docs/emulator.md)."""
        return self.state.users

    def now(self) -> float:
        """The emulator clock's time (seconds since the epoch)."""
        return self.state.clock()

    def login(
        self,
        user: str | None = None,
        scopes: Sequence[str] | None = None,
        *,
        client_id: str | None = None,
    ) -> UserLogin:
        """Log a test user in through ``GET /authorize`` and the code exchange (PKCE), as an app
        would: the user's access and refresh tokens, for ``scopes`` (every scope the collection of
        :mod:`spotify_catalog.oauth` needs by default)."""
        from spotify_catalog import oauth
        from spotify_catalog.emulator.session import log_in, usable_redirect_uri

        return log_in(
            self.url,
            client_id=client_id or self.config.client_id,
            redirect_uri=usable_redirect_uri(self.config.redirect_uris),
            user=user or next(iter(self.config.users), None),
            scopes=oauth.DEFAULT_SCOPES if scopes is None else scopes,
        )

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def requests(self) -> list[LoggedRequest]:
        """What was asked since start or :meth:`reset`: method, path, query (a dict), status."""
        return self.state.requests()

    def transport(self) -> RedirectTransport:
        """An httpx transport that sends ``api.spotify.com``/``accounts.spotify.com`` requests here."""
        from spotify_catalog.emulator.redirect import RedirectTransport  # httpx: only when asked

        return RedirectTransport(self.url)

    def reset(self) -> None:
        self.state.reset()

    def advance(self, seconds: float) -> None:
        self.state.clock.advance(seconds)

    def configure(self, **changes: Any) -> EmulatorConfig:
        return self.state.configure(**changes)

    def __repr__(self) -> str:
        return f"RunningEmulator(url={self.url!r}, profile={self.state.config.profile!r})"


@contextmanager
def serve_in_thread(
    config: EmulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
    http: str = "auto",
) -> Iterator[RunningEmulator]:
    """Serve the emulator on a free port of ``host`` in a daemon thread; stop it on exit. ``http``:
    uvicorn's HTTP implementation (``auto``, ``h11``)."""
    state = EmulatorState(config or EmulatorConfig(), clock)
    server = make_server(create_app(state=state), loop="asyncio", http=http)
    sock = bind(host, 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="emulator")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.005)
        yield RunningEmulator(base_url(sock), state)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
