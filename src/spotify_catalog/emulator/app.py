"""The emulator as an ASGI app: each HTTP request takes one routing decision (:mod:`.routing`), then
its route's endpoint. Around the endpoints: latency, request bodies, the counters of
``/_emulator/stats`` and ``/_emulator/requests``, and the request log (one INFO line a request,
``GET /v1/artists/… 200 0.4 ms``, on this module's logger).

The routes: the Web API (:data:`.webapi.SPECS`), the token endpoint (:mod:`.token`), the consent
page (:mod:`.authorize`), the control endpoints (:mod:`.control`), and a fallback for every other
path: Spotify's 404, or a preflight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import URL, State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from spotify_catalog.emulator import webapi
from spotify_catalog.emulator.authorize import authorize_answer
from spotify_catalog.emulator.config import EmulatorConfig
from spotify_catalog.emulator.control import CONTROLS, Control
from spotify_catalog.emulator.responses import header, not_found, preflight
from spotify_catalog.emulator.routing import NotAllowed, Redirect, Route, Router
from spotify_catalog.emulator.state import EmulatorState
from spotify_catalog.emulator.token import token_answer, token_error
from spotify_catalog.emulator.webapi import SPECS, WEB_API_METHODS, Spec

log = logging.getLogger(__name__)

Params = dict[str, str]
Endpoint = Callable[[EmulatorState, Scope, Receive, Params], Awaitable[Response]]
"""What answers a route: ``endpoint(state, scope, receive, path_params)``."""

_PLAIN_PATH = re.compile(r"/(?!/)[A-Za-z0-9/._~!$&'()*+,;=:@%-]*")
"""Paths whose URL is the path itself: one ``/`` first, and no character that Starlette's ``URL``
escapes or drops (``?``, ``#``, ``\\``, spaces, controls, non-ASCII)."""
_PLAIN_QUERY = re.compile(rb"[!-\"$-~]*")
"""Query strings that Starlette's ``URL`` keeps as they are: printable ASCII without ``#``."""


def _named(scope: Scope) -> tuple[str, str]:
    """The path and query string of the request's URL, as the request log shows them (and a Web API
    route's ``tail`` is read): Starlette's ``URL`` works them out where they are not plain."""
    path: str = scope["path"]
    query: bytes = scope["query_string"]
    if _PLAIN_PATH.fullmatch(path) and _PLAIN_QUERY.fullmatch(query):
        return path, query.decode()
    url = URL(scope=scope)
    return url.path, url.query


_BASES: dict[tuple[Any, ...], str] = {}


def _base(scope: Scope) -> str:
    """``str(request.base_url).rstrip("/")``, worked out once per scheme, server, ``Host`` and root
    path."""
    root = scope.get("app_root_path", scope.get("root_path", ""))
    key = (scope.get("scheme", "http"), scope.get("server"), header(scope["headers"], b"host"), root)
    base = _BASES.get(key)
    if base is None:
        base = str(Request(scope).base_url).rstrip("/")
        if len(_BASES) >= 256:  # the Host header is the client's to choose
            _BASES.clear()
        _BASES[key] = base
    return base


def _log_line(method: str, path: str, query: str, status: str, started: float) -> None:
    """The request log line (``GET /v1/artists/… 200 0.4 ms``) at INFO. The record is made here, as
    ``log.info`` would make it, without its walk up the stack to find where it was called from."""
    if log.isEnabledFor(logging.INFO):
        args = (method, path, f"?{query}" if query else "", status, (time.perf_counter() - started) * 1000)
        where = (__file__, _LOG_LINENO)
        log.handle(log.makeRecord(log.name, logging.INFO, *where, _LOG_FORMAT, args, None, "_log_line"))


_LOG_FORMAT = "%s %s%s %s %.1f ms"
_LOG_LINENO = _log_line.__code__.co_firstlineno


def _record(state: EmulatorState, scope: Scope, route: str, status: str, started: float) -> None:
    """Count the request under ``route`` and ``status``, and log it."""
    method: str = scope["method"]
    state.record(route, status, method, scope["path"], scope["query_string"])
    if log.isEnabledFor(logging.INFO):
        _log_line(method, *_named(scope), status, started)


async def _delay(state: EmulatorState) -> None:
    if state.config.latency_ms > 0:
        await asyncio.sleep(state.config.latency_ms / 1000)


async def _body(request: Request) -> bytes | None:
    """The request's body; ``None``, and one log line, when the client goes away before sending it all."""
    try:
        return await request.body()
    except ClientDisconnect:
        log.warning(
            "%s %s: the client disconnected before sending its body (content-length %s)",
            request.method,
            request.url.path,
            request.headers.get("content-length", "not given"),
        )
        return None


def _web_api(spec: Spec) -> Endpoint:
    """The endpoint of a Web API route: ``GET`` and ``HEAD`` answered by :func:`.webapi.answer`, the
    other methods by :func:`.webapi.other_method`."""
    route = spec.route

    async def endpoint(state: EmulatorState, scope: Scope, receive: Receive, params: Params) -> Response:
        started = time.perf_counter()
        method: str = scope["method"]
        if method != "GET" and method != "HEAD":
            response = webapi.other_method(method)
            _record(state, scope, f"{method} {spec.template}", str(response.status_code), started)
            return response
        await _delay(state)
        path, query = _named(scope)

        def where() -> tuple[Params, str]:
            params["tail"] = path.rstrip("/").rsplit("/", 1)[-1]
            return params, _base(scope)

        response = webapi.answer(spec, state, scope["headers"], scope["query_string"], where)
        status = webapi.settle(response)
        state.record(route, status, method, scope["path"], scope["query_string"])
        _log_line(method, path, query, status, started)
        return response

    return endpoint


async def _token(state: EmulatorState, scope: Scope, receive: Receive, params: Params) -> Response:
    started = time.perf_counter()
    await _delay(state)
    raw = await _body(Request(scope, receive))
    if raw is None:  # nobody is left to read an answer
        return token_error("invalid_request", "incomplete request body")
    response = token_answer(state, scope["headers"], raw)
    _record(state, scope, "POST /api/token", str(response.status_code), started)
    return response


async def _authorize(state: EmulatorState, scope: Scope, receive: Receive, params: Params) -> Response:
    started = time.perf_counter()
    await _delay(state)
    response = authorize_answer(state, _named(scope)[1])
    _record(state, scope, "GET /authorize", str(response.status_code), started)
    return response


async def _unknown(state: EmulatorState, scope: Scope, receive: Receive, params: Params) -> Response:
    """Any other path: Spotify's 404, or a preflight."""
    started = time.perf_counter()
    method: str = scope["method"]
    response = preflight() if method == "OPTIONS" else not_found()
    _record(state, scope, f"{method} (unknown)", str(response.status_code), started)
    return response


def _control(control: Control) -> Endpoint:
    async def endpoint(state: EmulatorState, scope: Scope, receive: Receive, params: Params) -> Response:
        body: Any = None
        if control.reads_body and scope["method"] != "GET":
            raw = await _body(Request(scope, receive))
            try:
                body = None if raw is None else json.loads(raw or b"{}")
            except ValueError:
                body = None
        return control.answer(state, scope["method"], body)

    return endpoint


def _unrouted(decision: NotAllowed | Redirect | None, scope: Scope) -> Response:
    """A 405 (no route answers the method), a redirect to the path with or without its trailing slash,
    or a 404 (no route at all): plain text, as Starlette's router answers them."""
    if isinstance(decision, NotAllowed):
        return PlainTextResponse("Method Not Allowed", status_code=405, headers={"Allow": decision.allow})
    if isinstance(decision, Redirect):
        return RedirectResponse(str(URL(scope={**scope, "path": decision.path})))
    return PlainTextResponse("Not Found", status_code=404)


async def _not_http(scope: Scope, receive: Receive, send: Send) -> None:
    """A lifespan (nothing to start or stop), or a WebSocket (closed: the Web API has none)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
    else:
        await send({"type": "websocket.close", "code": 1000, "reason": ""})


def _router() -> Router[Endpoint]:
    endpoints = {spec.template: _web_api(spec) for spec in SPECS}
    routes: list[Route[Endpoint]] = [Route("/api/token", ("POST",), _token)]
    routes.append(Route("/authorize", ("GET", "HEAD"), _authorize))
    routes += [Route(template, WEB_API_METHODS, endpoint) for template, endpoint in endpoints.items()]
    # spotipy asks for `tracks/?ids=`, `albums/{id}/tracks/`: Spotify serves them (spotipy#160)
    routes += [Route(template + "/", WEB_API_METHODS, endpoint) for template, endpoint in endpoints.items()]
    routes += [Route(control.path, control.methods, _control(control)) for control in CONTROLS]
    return Router(routes, fallback=Route("/{path}", WEB_API_METHODS, _unknown))


ROUTER = _router()


class EmulatorApp:
    """The emulator's ASGI app; ``app.state.emulator`` is its :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState, router: Router[Endpoint] = ROUTER) -> None:
        self.state = State({"emulator": state})
        self._emulator = state
        self._router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _not_http(scope, receive, send)
            return
        decision = self._router.match(scope["method"], scope["path"], scope.get("root_path", ""))
        try:
            if isinstance(decision, tuple):
                route, params = decision
                response = await route.target(self._emulator, scope, receive, params)
            else:
                response = _unrouted(decision, scope)
        except Exception:  # a bug: answered as Starlette's ServerErrorMiddleware does, then raised
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)


def create_app(
    config: EmulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    state: EmulatorState | None = None,
) -> EmulatorApp:
    """The emulator as an ASGI app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    return EmulatorApp(state or EmulatorState(config or EmulatorConfig(), clock))


__all__ = ["EmulatorApp", "create_app"]
