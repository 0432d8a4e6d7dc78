"""An httpx transport for code whose Spotify URLs are fixed: sends them to the emulator instead."""

from __future__ import annotations

import httpx

SPOTIFY_HOSTS = ("api.spotify.com", "accounts.spotify.com")


class RedirectTransport(httpx.BaseTransport):
    """An httpx transport that sends requests for ``api.spotify.com`` and ``accounts.spotify.com`` to
    the emulator at ``url`` (for clients whose Spotify URLs are fixed, e.g. tekore's)."""

    def __init__(self, url: str, inner: httpx.BaseTransport | None = None) -> None:
        target = httpx.URL(url)
        self._scheme, self._host, self._port = target.scheme, target.host, target.port
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in SPOTIFY_HOSTS:
            request.url = request.url.copy_with(scheme=self._scheme, host=self._host, port=self._port)
            request.headers["host"] = f"{self._host}:{self._port}" if self._port else self._host
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
