"""The database: the schema, engine/migration/upserts (``db``), task queue and runs (``state``)."""
