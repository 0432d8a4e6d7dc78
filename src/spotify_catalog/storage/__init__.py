"""The database: the schema (``schema``), engines (``engine``), creation and migration (``migrate``),
the read-only opener of the commands that only read (``read_only``), writes (``write``), the task
queue and runs (``state``), refresh bookkeeping (``changes``)."""
