"""Validate emulator responses against Spotify's OpenAPI definitions.

``development`` responses are checked against the 2026 definition, ``extended`` ones against the
2025-10-03 one. OpenAPI 3.0 ``nullable`` becomes a JSON Schema ``null`` alternative. In the 2026
definition the fields removed for Development Mode are marked ``deprecated`` but some are still
``required``: for ``development`` the validator does not require deprecated properties (their absence is
asserted separately by the tests).
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

OPENAPI = Path(__file__).resolve().parents[1] / "data" / "openapi"  # vendored, see its README
FILES = {
    "development": "official-spotify-open-api.yml",
    "extended": "official-spotify-open-api.2025-10-03.yml",
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {"$ref": "#/components/schemas/ErrorObject"}},
}


def _deprecated(node: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Names of the deprecated properties a schema declares, itself or through ``allOf``."""
    found = {k for k, v in node.get("properties", {}).items() if isinstance(v, dict) and v.get("deprecated")}
    for part in node.get("allOf", []):
        if "$ref" in part:
            part = schemas[part["$ref"].rsplit("/", 1)[-1]]
        found |= _deprecated(part, schemas)
    return found


def _optional(node: Any, names: frozenset[str]) -> Any:
    """The schema with the properties ``names`` required nowhere."""
    if isinstance(node, list):
        return [_optional(x, names) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _optional(v, names) for k, v in node.items()}
    if isinstance(out.get("required"), list):
        out["required"] = [r for r in out["required"] if r not in names]
    return out


def _convert(node: Any, schemas: dict[str, Any] | None) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema; with ``schemas`` given, deprecated properties are optional."""
    if isinstance(node, list):
        return [_convert(x, schemas) for x in node]
    if not isinstance(node, dict):
        return node
    skip = ("nullable", "example", "x-spotify-docs-type", "deprecated", "discriminator")
    out = {k: _convert(v, schemas) for k, v in node.items() if k not in skip}
    if schemas is not None and "required" in node:
        deprecated = _deprecated(node, schemas)
        out["required"] = [r for r in node["required"] if r not in deprecated]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _lenient(profile: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    return raw["components"]["schemas"] if profile == "development" else None


@cache
def raw_document(profile: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OPENAPI / FILES[profile]).read_text())
    return loaded


@cache
def document(profile: str) -> dict[str, Any]:
    raw = raw_document(profile)
    return {
        "paths": raw["paths"],
        "components": {
            "schemas": _convert(raw["components"]["schemas"], _lenient(profile, raw)),
            "responses": raw["components"]["responses"],
        },
    }


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        target: Any = doc
        for part in parts:
            target = target[part]
        node = target
    return node


def spec_path(doc: dict[str, Any], path: str) -> str:
    """The definition's path template for an emulator route template like ``/v1/artists/{id}``."""
    wanted = re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/v1"))
    for candidate in doc["paths"]:
        if re.sub(r"\{[^}]+\}", "{}", candidate) == wanted:
            return str(candidate)
    raise KeyError(path)


def response_schema(
    profile: str, route: str, status: int, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The JSON Schema of a response (error bodies: ``{"error": ErrorObject}``); ``optional``: property
    names required nowhere (Spotify leaves ``available_markets`` out when a market is given)."""
    doc = document(profile)
    if status >= 400:
        schema: dict[str, Any] = copy.deepcopy(ERROR_SCHEMA)
    else:
        response = _resolve(doc, doc["paths"][spec_path(doc, route)]["get"]["responses"][str(status)])
        schema = copy.deepcopy(response["content"]["application/json"]["schema"])
        schema = _convert(schema, _lenient(profile, raw_document(profile)))
    schemas = doc["components"]["schemas"]
    if optional:
        schema, schemas = _optional(schema, optional), _optional(schemas, optional)
    return {"allOf": [schema], "components": {"schemas": schemas}}


def without_nulls(body: Any) -> Any:
    """The body with ``null`` taken out of every ``items`` list (Spotify's search has them; the
    definition does not allow them)."""
    if isinstance(body, dict):
        return {
            k: [without_nulls(x) for x in v if x is not None]
            if k == "items" and isinstance(v, list)
            else without_nulls(v)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [without_nulls(x) for x in body]
    return body


def validate(
    profile: str, route: str, status: int, body: Any, optional: frozenset[str] = frozenset()
) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` fits the definition."""
    jsonschema.Draft7Validator(response_schema(profile, route, status, optional)).validate(body)


def validate_schema(profile: str, name: str, body: Any) -> None:
    """Validate against one named component schema (e.g. ``ArtistObject``)."""
    doc = document(profile)
    ref = {"$ref": f"#/components/schemas/{name}"}
    jsonschema.Draft7Validator(
        {"allOf": [ref], "components": {"schemas": doc["components"]["schemas"]}}
    ).validate(body)
