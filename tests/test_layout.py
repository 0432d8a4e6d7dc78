"""The layout of ``src/``: no module imports itself through others (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import spotify_catalog

SRC = Path(spotify_catalog.__file__).parent.parent


def _imports() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports, anywhere in its code (an
    import inside a function is an import all the same); a module's own packages are not counted:
    Python loads them first whatever the module imports."""
    modules = {}
    for path in (SRC / "spotify_catalog").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {
            target
            for target in found
            if target in modules and target != name and not name.startswith(target + ".")
        }
    return graph


def _circle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """The modules of a path from ``start`` back to itself, if there is one (depth first)."""
    stack, seen = [(start, [start])], set()
    while stack:
        name, path = stack.pop()
        for target in sorted(graph[name]):
            if target == start:
                return path
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_no_import_circle() -> None:
    graph = _imports()
    assert "spotify_catalog.crawl.run" in graph  # the walk sees the package
    circles = [circle for name in sorted(graph) if (circle := _circle_from(graph, name))]
    assert not circles, " -> ".join(circles[0] + circles[0][:1])
