"""Load a crawl database into DuckDB with dlt: the first run loads every catalog table, each later run
only the rows written since the run before (docs/dlt.md).

    pip install 'spotify-catalog[dlt]' 'dlt[duckdb]'
    spotify-catalog demo                             # or any crawl: spotify-catalog crawl --db ...
    python examples/dlt/pipeline.py --db sqlite:///spotify-demo.db

The tables land in ``spotify_catalog.duckdb`` (dataset ``spotify``); the pipeline's state (the cursor
of each table) in ``~/.dlt/pipelines/spotify_catalog``. ``--destination postgres`` (credentials in
``DESTINATION__POSTGRES__CREDENTIALS``), or any other dlt destination, loads there instead. Prints the
rows loaded per table as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

import dlt
from spotify_catalog.dlt import catalog_source
from spotify_catalog.errors import SpotifyCatalogError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:///spotify-demo.db", help="the crawl database's URL")
    parser.add_argument("--db-schema", help="its PostgreSQL schema, as crawl --db-schema")
    parser.add_argument("--destination", default="duckdb", help="a dlt destination (default: duckdb)")
    parser.add_argument("--dataset", default="spotify", help="the dataset (schema) it loads into")
    args = parser.parse_args(argv)
    try:
        source = catalog_source(args.db, db_schema=args.db_schema)
    except SpotifyCatalogError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    pipeline = dlt.pipeline(
        pipeline_name="spotify_catalog", destination=args.destination, dataset_name=args.dataset
    )
    info = pipeline.run(source)
    print(info, file=sys.stderr)
    counts = pipeline.last_trace.last_normalize_info.row_counts
    print(json.dumps({table: n for table, n in sorted(counts.items()) if not table.startswith("_dlt")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
