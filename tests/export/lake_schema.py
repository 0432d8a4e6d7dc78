"""The golden schema of the lake: ``tests/data/lake_schema.json`` holds, for every exported table of
the project's schema, the Arrow schema its files have (every column: ``raw`` and ``gone_at``
included), one ``"name: type"`` line a column (`` not null`` where it is not nullable). The tests read
it as their oracle, independent of the code that makes the schema.

When the schema changes on purpose, write the file again and review its diff::

    PYTHONPATH=src python tests/export/lake_schema.py --write
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "lake_schema.json"
REGENERATE = "PYTHONPATH=src python tests/export/lake_schema.py --write"
_TIMESTAMP = re.compile(r"timestamp\[(\w+)(?:, tz=(.+))?\]")


def type_text(t: pa.DataType) -> str:
    """``t`` as the golden file writes it: Arrow's own name, lists as ``list<element type>``."""
    if pa.types.is_list(t):
        return f"list<{type_text(cast(Any, t).value_type)}>"
    return str(t)


def parse_type(text: str) -> pa.DataType:
    """The Arrow type of a :func:`type_text`."""
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(parse_type(text[5:-1]))
    stamp = _TIMESTAMP.fullmatch(text)
    if stamp:
        return pa.timestamp(stamp[1], tz=stamp[2])
    return pa.type_for_alias(text)


def golden_schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table`` in the lake, as the golden file has it."""
    lines = json.loads(GOLDEN.read_text())[table]
    fields = []
    for line in lines:
        name, _, kind = line.partition(": ")
        not_null = kind.endswith(" not null")
        fields.append(pa.field(name, parse_type(kind.removesuffix(" not null")), nullable=not not_null))
    return pa.schema(fields)


def golden_tables() -> list[str]:
    return list(json.loads(GOLDEN.read_text()))


def _current() -> dict[str, list[str]]:
    """The schema the code makes today (only for writing the file again)."""
    from spotify_catalog import export as lake_export
    from spotify_catalog.storage.schema import metadata

    return {
        table.name: [
            f"{f.name}: {type_text(f.type)}{'' if f.nullable else ' not null'}"
            for f in lake_export.arrow_schema(table, with_raw=True, include_gone=True)
        ]
        for table in lake_export.select_tables(metadata, None)
    }


if __name__ == "__main__":
    text = json.dumps(_current(), indent=2) + "\n"
    if sys.argv[1:] == ["--write"]:
        GOLDEN.write_text(text)
    else:
        sys.stdout.write(text)
