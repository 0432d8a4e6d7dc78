"""The emulator's router: a request's method and path to the route that answers it, in one decision.

A template is a literal path (``/v1/markets``) or has one ``{name}`` segment, the third
(``/v1/artists/{id}/albums``) or a later one (``/v1/me/top/{type}``); it matches one non-empty
segment, any characters but ``/``, and is given to the route as ``{"name": value}``. No two templates
match one path, so a path finds its route by a dictionary look-up for the literal paths and one for
each position a ``{name}`` takes (two today). The rules are those of Starlette's router, which the
emulator's answers follow:

- a path may end with one newline more than its template (a regular expression's ``$`` allows it);
  where ``{name}`` is the last segment, the newline belongs to its value;
- the fallback route takes every path that starts with ``/`` and has no newline before its last
  character;
- a method the matching route does not answer goes to the fallback when it answers the method, and
  is a 405 otherwise;
- a path that nothing matches is redirected to the same path with (without) its trailing slash when
  that one matches, and is a 404 otherwise.
"""

from __future__ import annotations

import re
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

_HOLE = re.compile(r"\{([a-z_]+)\}")
HOLE = "{}"
"""A template's ``{name}`` segment in the keys of the look-up tables."""


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


def _check_apart(keys: list[str]) -> None:
    """``ValueError`` when two templates (``{name}`` written ``{}``) match one path (a ``{name}``
    never matches an empty segment)."""
    split = [key.split("/") for key in keys]
    for i, one in enumerate(split):
        for other in split[i + 1 :]:
            if len(one) != len(other):
                continue
            if all(a == b or (a == HOLE and b) or (b == HOLE and a) for a, b in zip(one, other, strict=True)):
                path = "/".join(b if a == HOLE else a for a, b in zip(one, other, strict=True))
                raise ValueError(f"two routes match {path}")


class Router(Generic[T]):
    """The routes, and the fallback route for the paths none of them matches."""

    def __init__(self, routes: Sequence[Route[T]], fallback: Route[T]) -> None:
        self._fallback = fallback
        self._literal: dict[str, Route[T]] = {}
        self._with_hole: dict[str, tuple[Route[T], str]] = {}  # key: the template, {name} as {}
        positions: set[int] = set()
        for route in routes:
            parts = route.template.split("/")
            holes = [i for i, part in enumerate(parts) if "{" in part or "}" in part]
            named = len(holes) == 1 and _HOLE.fullmatch(parts[holes[0]]) is not None
            if parts[0] or len(holes) > 1 or (holes and (holes[0] < 3 or not named)):
                raise ValueError(
                    f"cannot route {route.template}: one {{name}} at most, the third segment or a later one"
                )
            if holes:
                position = holes[0]
                name = parts[position][1:-1]
                parts[position] = HOLE
                key = "/".join(parts)
                if key in self._with_hole:
                    raise ValueError(f"two routes for {route.template}")
                self._with_hole[key] = (route, name)
                positions.add(position)
            else:
                if route.template in self._literal:
                    raise ValueError(f"two routes for {route.template}")
                self._literal[route.template] = route
        self._positions = sorted(positions)
        _check_apart([*self._literal, *self._with_hole])

    def _exactly(self, path: str) -> Found[T] | None:
        route = self._literal.get(path)
        if route is not None:
            return route, {}
        parts = path.split("/")
        for position in self._positions:
            if len(parts) > position and parts[position]:
                value, parts[position] = parts[position], HOLE
                found = self._with_hole.get("/".join(parts))
                parts[position] = value
                if found is not None:
                    return found[0], {found[1]: value}
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
