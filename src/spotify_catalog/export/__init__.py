"""The data lake: tables of the database as Parquet (or CSV, JSON Lines) on local disk or S3.

Layout (Hive-style partitions, one folder per snapshot date)::

    TO/<table>/dt=YYYY-MM-DD/part-00000.parquet

Everything is generic over a ``sqlalchemy.MetaData``. The package, layer by layer:

- :mod:`.types`: the Arrow schema of a table (integers stay integers, timestamps are UTC, written as
  INT96 for Hive's reader, ``info={"list_of": T}`` JSON columns become lists), pure;
- :mod:`.reader` (the interface), :mod:`.read_driver`, :mod:`.read_adbc`, :mod:`.read_sqlite`,
  :mod:`.read_mysql` (the readers) and :mod:`.choose` (the one place that picks a reader): rows
  streamed from the database as Arrow record batches, every table as of one moment, so memory stays
  flat however large the table;
  :mod:`.arrays`: database values as Arrow arrays, shared by the readers;
- :mod:`.write`: batches to one Parquet (row groups), CSV or JSON Lines file;
- :mod:`.lake`, :mod:`.staging`, :mod:`.lock`: where files go, local or S3. A partition is written to
  ``TO/_staging/<run>/`` first (names starting with ``_`` are ignored by Hive-partition readers) and
  swapped into place, holding the lock of its date, only when every table of the run is complete; see
  ``docs/lake.md`` for exactly what a reader can observe locally and on S3. An export removes its
  staging area (and aborts its S3 multipart uploads) however it ends, Ctrl-C and SIGTERM included, and
  removes what exports that died left behind (:func:`remove_stale_staging`);
- :mod:`.run`: the export itself; :mod:`.statements`: the DDL that read the lake (pure).

The names below are the library's: ``from spotify_catalog import export as lake_export``.
"""

from __future__ import annotations

from spotify_catalog.export.choose import choose_reader, iter_batches, reading, snapshot_connection
from spotify_catalog.export.lake import PARTITION, Lake, open_lake, partition_dir, s3_filesystem
from spotify_catalog.export.reader import DEFAULT_BATCH_ROWS, Reader, ReadOptions
from spotify_catalog.export.run import ExportedTable, Progress, check_database, export
from spotify_catalog.export.staging import STAGING, STALE_STAGING, remove_stale_staging
from spotify_catalog.export.statements import DDL_DIALECTS, LATEST_SUFFIX, ddl, hive_type
from spotify_catalog.export.types import (
    GONE_COLUMN,
    PARTIAL_DATE,
    RAW_COLUMN,
    TEXT_SUFFIX,
    arrow_schema,
    arrow_type,
    base_type,
    current_rows,
    dictionary_columns,
    distinct_values,
    exported_columns,
    parquet_leaves,
    partial_dates,
    read_schema,
    select_tables,
    to_lake,
)
from spotify_catalog.export.write import (
    COMPRESSIONS,
    DEFAULT_ROW_GROUP_ROWS,
    FORMATS,
    INT96_TIMESTAMPS,
    ROW_GROUP_BYTES,
    check_options,
    file_name,
    write_file,
)

__all__ = [
    "COMPRESSIONS",
    "DDL_DIALECTS",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_ROW_GROUP_ROWS",
    "FORMATS",
    "GONE_COLUMN",
    "INT96_TIMESTAMPS",
    "LATEST_SUFFIX",
    "PARTIAL_DATE",
    "PARTITION",
    "RAW_COLUMN",
    "ROW_GROUP_BYTES",
    "STAGING",
    "STALE_STAGING",
    "TEXT_SUFFIX",
    "ExportedTable",
    "Lake",
    "Progress",
    "ReadOptions",
    "Reader",
    "arrow_schema",
    "arrow_type",
    "base_type",
    "check_database",
    "check_options",
    "choose_reader",
    "current_rows",
    "ddl",
    "dictionary_columns",
    "distinct_values",
    "export",
    "exported_columns",
    "file_name",
    "hive_type",
    "iter_batches",
    "open_lake",
    "parquet_leaves",
    "partial_dates",
    "partition_dir",
    "read_schema",
    "reading",
    "remove_stale_staging",
    "s3_filesystem",
    "select_tables",
    "snapshot_connection",
    "to_lake",
    "write_file",
]
