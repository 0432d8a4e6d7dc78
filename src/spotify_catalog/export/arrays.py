"""Database values as Arrow arrays: JSON text, list columns (parsed in Arrow where it can be done
exactly, else by orjson), text timestamps, and copies into Arrow's memory pool. Shared by the readers."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, cast

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import sqlalchemy as sa

from spotify_catalog.export.types import base_type, holds_objects


def json_text(value: Any) -> str | None:
    """A JSON value as the lake's text (compact, keys sorted); text a driver handed back undecoded as
    it is."""
    if value is None:
        return None
    if isinstance(value, str):  # a driver that hands JSON back undecoded
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def converter(column: sa.Column[Any]) -> Callable[[Any], Any] | None:
    """How to turn a database value of ``column`` into what ``pa.array`` takes (None: as it is)."""
    t = base_type(column.type)
    if not isinstance(t, sa.JSON):
        return None
    element = column.info.get("list_of")
    if element is None:
        return json_text
    if isinstance(base_type(element), sa.JSON):  # a list of objects: each object as JSON text

        def objects(value: Any) -> Any:
            value = json.loads(value) if isinstance(value, str) else value
            return None if value is None else [json_text(v) for v in value]

        return objects
    return lambda value: json.loads(value) if isinstance(value, str) else value


def exact_as_text(column: sa.Column[Any], target: pa.DataType) -> bool:
    """Whether the values of ``column``, read as the database's text (or SQLite's integers and
    floats), become the lake's exactly through Arrow's parsing and casts, as the ``sqlite3`` cursor
    and SQLAlchemy's rows make them: timestamps, dates and booleans (under any ``TypeDecorator``),
    text, integers, floats and JSON; not decimals, enums, UUIDs, intervals, times or binary, nor
    another ``TypeDecorator`` (whose result processing is Python)."""
    if isinstance(column.type, sa.Enum | sa.Uuid | sa.Interval):
        return False
    if pa.types.is_timestamp(target) or pa.types.is_date32(target) or pa.types.is_boolean(target):
        return True
    if isinstance(column.type, sa.types.TypeDecorator):
        return False
    t = base_type(column.type)
    if isinstance(t, sa.JSON):
        return True
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float):
        return False
    return bool(pa.types.is_string(target) or pa.types.is_integer(target) or pa.types.is_floating(target))


def cast_text_times(array: pa.Array[Any], target: pa.DataType) -> pa.Array[Any]:
    """``array`` with text cast to naive timestamps when ``target`` is a timestamp (naive text is UTC,
    the project's convention); other arrays as they are."""
    if pa.types.is_timestamp(target) and pa.types.is_string(array.type):
        return cast("pa.Array[Any]", array.cast(pa.timestamp(target.unit)))
    return array


def own_copy(array: pa.Array[Any]) -> pa.Array[Any]:
    """``array`` copied into Arrow's memory pool (pyarrow 16 and later; before, as it is)."""
    try:
        return cast("pa.Array[Any]", cast(Any, array).copy_to(pa.default_cpu_memory_manager()))
    except AttributeError:
        return array


def json_values(array: pa.Array[Any]) -> list[Any]:
    """The values of an Arrow array of JSON texts, parsed by one ``orjson`` call (the texts joined in
    Arrow as ``[t1,t2,...]``)."""
    texts: Any = pc.fill_null(cast(Any, array).cast(pa.large_string()), "null")
    whole = pa.LargeListArray.from_arrays(pa.array([0, len(texts)], pa.int64()), texts)
    joined: Any = pc.binary_join(whole, pa.scalar(",", pa.large_string()))
    parsed = orjson.loads("[" + str(joined[0].as_py()) + "]")
    if len(parsed) != len(array):  # not one JSON value per text: one at a time
        parsed = [None if t is None else orjson.loads(t) for t in array.to_pylist()]
    return cast("list[Any]", parsed)


def list_array(values: Sequence[Any], *, target: pa.DataType, objects: bool) -> pa.Array[Any]:
    """A list column's values: JSON texts parsed by Arrow (:func:`parse_lists`), else by orjson in one
    call (``[t1,t2,...]``); a driver may hand them over parsed already. Lists of objects keep each
    object as JSON text."""
    if not objects:
        with contextlib.suppress(pa.ArrowException):  # not all texts: parsed in Python
            parsed_here = parse_lists(pa.array(values, type=pa.string()), target)
            if parsed_here is not None:
                return parsed_here
    parsed: list[Any] = []
    if all(v is None or v.__class__ is str for v in values):
        parsed = orjson.loads("[" + ",".join("null" if v is None else v for v in values) + "]")
    if len(parsed) != len(values):  # not one JSON value per text (or not all texts): one at a time
        parsed = [orjson.loads(v) if isinstance(v, str | bytes) else v for v in values]
    if objects:
        parsed = [None if v is None else [json_text(o) for o in v] for v in parsed]
    return pa.array(parsed, type=target)


def list_values(column: sa.Column[Any], target: pa.DataType) -> Callable[[Sequence[Any]], pa.Array[Any]]:
    """:func:`list_array` for the list column ``column``."""
    return functools.partial(list_array, target=target, objects=holds_objects(column))


def list_column(column: sa.Column[Any], target: pa.DataType) -> Callable[[pa.Array[Any]], pa.Array[Any]]:
    """How the list column ``column``, read as an Arrow array of JSON texts (ADBC), becomes ``target``:
    parsed by Arrow, else by orjson."""
    objects = holds_objects(column)

    def parse(array: pa.Array[Any]) -> pa.Array[Any]:
        if not objects:
            parsed = parse_lists(array, target)
            if parsed is not None:
                return parsed
        return list_array(json_values(array), target=target, objects=objects)

    return parse


def _arrow_parses(target: pa.DataType) -> bool:
    """Whether :func:`parse_lists` takes lists of ``target``'s elements: text and integers."""
    element: pa.DataType = cast(Any, target).value_type
    return bool(pa.types.is_string(element) or pa.types.is_integer(element))


def parse_lists(texts: pa.Array[Any], target: pa.DataType) -> pa.Array[Any] | None:
    """JSON texts of a list column parsed by Arrow's JSON reader, without a Python object per value:
    each text becomes the line ``{"v":TEXT}`` of one buffer read with ``target`` as the explicit type.
    None when that does not give exactly one value of ``target`` per text (a text with a line break,
    not a list of that element type, not JSON): the caller then parses them with orjson."""
    if not _arrow_parses(target):
        return None
    n = len(texts)
    if texts.null_count == n:
        return cast("pa.Array[Any]", pa.nulls(n, type=cast(Any, target)))
    if pa.types.is_string(cast(Any, target).value_type):
        split = _split_plain_lists(texts)
        if split is not None:
            return cast("pa.Array[Any]", split.cast(target))
    large: Any = cast(Any, texts).cast(pa.large_string())
    if pc.any(pc.match_substring_regex(large, "[\r\n]")).as_py():
        return None
    text = functools.partial(pa.scalar, type=pa.large_string())
    lines = pc.binary_join_element_wise(text('{"v":'), pc.fill_null(large, text("null")), text("}"), text(""))
    whole: Any = pa.LargeListArray.from_arrays(pa.array([0, n], pa.int64()), lines)
    joined: Any = pc.binary_join(whole, text("\n"))
    data: pa.Buffer = joined[0].as_buffer()
    try:
        parsed = pa_json.read_json(
            cast(Any, pa.BufferReader(data)),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=data.size + 1),
            parse_options=pa_json.ParseOptions(
                explicit_schema=pa.schema([("v", target)]), unexpected_field_behavior="error"
            ),
        )
    except pa.ArrowException:  # not JSON, or not lists of the element type
        return None
    if parsed.num_rows != n:
        return None
    column: Any = parsed.column(0)
    return cast("pa.Array[Any]", column.combine_chunks())


# a JSON list of strings without escapes, written compact (orjson) or with ", " (json.dumps, jsonb)
_PLAIN_VALUE = r'"[^"\\\x00-\x1f]*"'
_PLAIN_LISTS = {sep: rf"^\[(?:{_PLAIN_VALUE}(?:{sep}{_PLAIN_VALUE})*)?\]$" for sep in (",", ", ")}


def _split_plain_lists(texts: pa.Array[Any]) -> Any:
    """Lists of plain strings (every text ``["a","b"]`` and ``[]``, or every one ``["a", "b"]`` and
    ``[]``; no escapes, so no ``"`` inside a value) split by Arrow's string kernels, faster still than
    its JSON reader; None when a text is not such a list. One separator for all: a ``"`` is then always
    a value's own quote, so splitting from the left finds exactly the separators (a value ``", "``
    between compact separators makes both occur: None). The ``[""]`` that splitting gives for ``[]``
    is dropped through the offsets (``if_else`` builds list arrays value by value: slower)."""
    separator = ", " if pc.any(pc.match_substring(texts, '", "')).as_py() else ","
    if not pc.all(pc.match_substring_regex(texts, _PLAIN_LISTS[separator]), min_count=0).as_py():
        return None
    inner: Any = pc.utf8_slice_codeunits(texts, 2, -2)  # a","b (values hold no quote)
    lists: Any = pc.split_pattern(inner, f'"{separator}"')
    is_empty: Any = pc.equal(texts, pa.scalar("[]"))  # split gives [""] for these
    empty: Any = pc.fill_null(is_empty, False)
    if not pc.any(empty).as_py():
        return lists
    lengths: Any = pc.subtract(pc.fill_null(pc.list_value_length(lists), 0), empty.cast(pa.int32()))
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    values = pc.filter(pc.list_flatten(lists), pc.invert(pc.take(empty, pc.list_parent_indices(lists))))
    return pa.ListArray.from_arrays(offsets, values, type=lists.type, mask=pc.is_null(texts))
