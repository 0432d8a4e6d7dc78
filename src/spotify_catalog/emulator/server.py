"""Serving the emulator: in a thread for tests (:func:`serve_in_thread`), or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from spotify_catalog.emulator.app import create_app
from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.config import EmulatorConfig
from spotify_catalog.emulator.faults import quiet_server_logs
from spotify_catalog.emulator.state import EmulatorState


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


def make_server(app: Any, *, access_log: bool = False, loop: str = "auto") -> uvicorn.Server:
    quiet_server_logs()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        lifespan="off",
        loop=loop,
        http="auto",
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

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

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
    config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.time, host: str = "127.0.0.1"
) -> Iterator[RunningEmulator]:
    """Serve the emulator on a free port of ``host`` in a daemon thread; stop it on exit."""
    state = EmulatorState(config or EmulatorConfig(), clock)
    server = make_server(create_app(state=state), loop="asyncio")
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
