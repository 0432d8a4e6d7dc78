"""Run in the dlt environment, in the directory and environment the pipeline ran in: what the
``spotify_catalog`` pipeline's destination holds, as JSON on stdout. For each table named in the spec
(``{"table": [key columns], ...}``, the file given as the one argument), its rows as
``[key..., written_at, gone_at or null, _dlt_load_id]``, times as ISO 8601 in UTC; ``[]`` for a table
never created."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Any

from dlt.destinations.exceptions import DatabaseUndefinedRelation

import dlt


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value.isoformat() if isinstance(value, date) else value


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec: dict[str, list[str]] = json.load(spec_file)
    pipeline = dlt.attach(pipeline_name="spotify_catalog")
    out: dict[str, list[list[Any]]] = {}
    with pipeline.sql_client() as client:
        for table, key in spec.items():
            known = pipeline.default_schema.tables.get(table, {}).get("columns", {})
            gone = "gone_at" if "gone_at" in known else "NULL"
            columns = [*map(client.escape_column_name, key), "written_at", gone, "_dlt_load_id"]
            query = f"SELECT {', '.join(columns)} FROM {client.make_qualified_table_name(table)}"
            try:
                rows = client.execute_sql(query)
            except DatabaseUndefinedRelation:
                rows = []
            out[table] = [[plain(v) for v in row] for row in rows or []]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
