"""The emulator's router: a request's method and path to the route that answers it, in one decision.

A template is a literal path (``/v1/markets``) or has one ``{id}`` segment, always the third
(``/v1/artists/{id}/albums``); ``{id}`` matches one non-empty segment, any characters but ``/``. No
two templates match one path, so a path finds its route by one or two dictionary look-ups. The rules
are those of Starlette's router, which the emulator's answers follow:

- a path may end with one newline more than its template (a regular expression's ``$`` allows it);
  where ``{id}`` is the last segment, the newline belongs to the id;
- the fallback route takes every path that starts with ``/`` and has no newline before its last
  character;
- a method the matching route does not answer goes to the fallback when it answers the method, and
  is a 405 otherwise;
- a path that nothing matches is redirected to the same path with (without) its trailing slash when
  that one matches, and is a 404 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Route(Generic[T]):
    """A path template, the methods it answers and what answers them."""

    template: str
    methods: tuple[str, ...]
    target: T

    @property
    def allow(self) -> str:
        """The ``Allow`` header of a 405 on this route."""
        return ", ".join(self.methods)


@dataclass(frozen=True)
class NotAllowed:
    """A path that a route matches, asked with a method that no matching route answers."""

    allow: str


@dataclass(frozen=True)
class Redirect:
    """No route for the path; one for ``path``, the same with (without) its trailing slash."""

    path: str


Found = tuple[Route[T], dict[str, str]]
"""The route and its path parameters (``{"id": ...}`` or none)."""


def route_path(path: str, root_path: str) -> str:
    """The part of ``path`` that is routed: without ``root_path`` (an ASGI scope's) when it starts it."""
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def _takes_any(path: str) -> bool:
    """Whether the fallback route takes ``path``."""
    return path.startswith("/") and "\n" not in path[:-1]


class Router(Generic[T]):
    """The routes, and the fallback route for the paths none of them matches."""

    def __init__(self, routes: Sequence[Route[T]], fallback: Route[T]) -> None:
        self._fallback = fallback
        self._literal: dict[str, Route[T]] = {}
        self._with_id: dict[str, Route[T]] = {}
        for route in routes:
            parts = route.template.split("/")
            holes = [i for i, part in enumerate(parts) if "{" in part or "}" in part]
            if parts[0] or holes not in ([], [3]) or (holes and parts[3] != "{id}"):
                raise ValueError(f"cannot route {route.template}: one {{id}} at most, the third segment")
            table = self._with_id if holes else self._literal
            if route.template in table:
                raise ValueError(f"two routes for {route.template}")
            table[route.template] = route
        for template in self._literal:
            parts = template.split("/")
            if len(parts) > 3 and parts[3] and "/".join([*parts[:3], "{id}", *parts[4:]]) in self._with_id:
                raise ValueError(f"two routes match {template}")

    def _exactly(self, path: str) -> Found[T] | None:
        route = self._literal.get(path)
        if route is not None:
            return route, {}
        parts = path.split("/")
        if len(parts) > 3 and parts[3]:
            parts[3], value = "{id}", parts[3]
            route = self._with_id.get("/".join(parts))
            if route is not None:
                return route, {"id": value}
        return None

    def find(self, path: str) -> Found[T] | None:
        """The route whose template matches ``path`` (the fallback left out), whatever the method."""
        found = self._exactly(path)
        if found is None and path.endswith("\n"):
            found = self._exactly(path[:-1])
        return found

    def match(self, method: str, path: str, root_path: str = "") -> Found[T] | NotAllowed | Redirect | None:
        """The route that answers ``method`` on ``path`` (an ASGI scope's ``path`` and ``root_path``);
        else a 405, a redirect, or ``None`` for a 404."""
        routed = route_path(path, root_path)
        found = self.find(routed)
        if found is not None and method in found[0].methods:
            return found
        if _takes_any(routed):
            if method in self._fallback.methods:
                return self._fallback, {}
            return NotAllowed((found[0] if found is not None else self._fallback).allow)
        if found is not None:
            return NotAllowed(found[0].allow)
        if routed != "/":
            other = path.rstrip("/") if routed.endswith("/") else path + "/"
            other_routed = route_path(other, root_path)
            if self.find(other_routed) is not None or _takes_any(other_routed):
                return Redirect(other)
        return None
