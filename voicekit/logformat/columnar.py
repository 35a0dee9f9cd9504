"""A bundle's events as columns: :class:`EventTable` and the copy ``events.parquet``.

Format layer: the standard library, numpy and pyarrow; never the session, protocol,
analysis or widgets.

Nearly every line of a log is a per-chunk audio line (``input.audio`` one per 50 ms sent,
``reply.audio`` one per chunk received: 230,000 of the 235,000 lines of an hour), and what
the analysis needs of them is a few numbers. An :class:`EventTable` holds those lines as
typed columns (:data:`CHUNK_FIELDS`) and every other line as the dict it was, so reading a
log never makes a Python object per chunk and the analysis sums chunk columns with numpy.

``events.jsonl`` stays the source of truth (crash-safe, appended line by line). Beside it,
``events.parquet`` is a copy in columns, written when the session stops
(:meth:`voicekit.logformat.LogWriter.close`) and made on the first read of an older or
foreign bundle, so the second read of a bundle parses no JSON text but its few hundred
non-chunk lines. One row a line, in time order: ``t``, ``dir``, ``type``, the chunk fields
(null where a line has none) and ``line``, the JSON text of each line the columns do not
hold whole (every other type; a chunk line with a field of another name or kind). The
schema's metadata names the ``events.jsonl`` it was made from (size and ``mtime_ns``): a
copy that does not match is stale and rebuilt; one that cannot be read is rebuilt; one
that cannot be written (a read-only directory) is skipped, since it only saves time. It is
written under a temporary name and renamed into place, so a reader never sees half a copy.

Parsing ``events.jsonl`` without a copy: pyarrow's JSON reader (C++, both cores) reads
``t``, ``dir``, ``type`` and the chunk fields of every line, and only the non-chunk lines go
through :func:`json.loads`. A chunk line is held by the columns when the count of ``:`` in
its text equals its count of non-null fields (so it has no field the columns lack; a
``:`` inside a string only makes the check keep the line's text). Any line pyarrow refuses
(a truncated last line after a crash, a corrupt one, a field of an unexpected type) sends
the whole file through the line-by-line reader, which skips what is not an event with a
:class:`~voicekit.logformat.reader.LogFormatWarning` naming ``file:line``; those warnings are
kept in the copy and given again on each read.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import secrets
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from voicekit.errors import ConfigError, LogFormatError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CHUNK_FIELDS",
    "CHUNK_TYPES",
    "COPY_FORMAT",
    "COPY_NAME",
    "EventTable",
    "LogFormatWarning",
    "read_events",
    "write_copy",
]

COPY_NAME = "events.parquet"
COPY_FORMAT = "voicekit-columnar/1"
CHUNK_TYPES = ("input.audio", "reply.audio")
# the fields of the per-chunk lines, as the writer logs them, and their column kinds
CHUNK_FIELDS: dict[str, str] = {
    "reply_id": "string",
    "offset": "int64",
    "samples": "int64",
    "timestamp": "float64",
}
_KEY = b"voicekit"


class LogFormatWarning(UserWarning):
    """A bundle was damaged but loaded (a skipped line, a repaired header)."""


def _schema(with_line: bool = True) -> pa.Schema:
    import pyarrow as pa

    fields = [("t", pa.float64()), ("dir", pa.string()), ("type", pa.string())]
    fields += [(name, getattr(pa, kind)()) for name, kind in CHUNK_FIELDS.items()]
    if with_line:
        fields.append(("line", pa.large_string()))
    return pa.schema(fields)


# -- the table ------------------------------------------------------------------------------
class EventTable:
    """A log's events: the per-chunk lines as columns, every other line as its dict.

    Made by :func:`read_events` (a bundle's ``events.jsonl``) or :meth:`from_dicts`
    (events made in memory: a hosted session, a recording). Rows are in time order.
    """

    def __init__(self, table: pa.Table, held: dict[int, dict[str, Any]]) -> None:
        self.arrow = table.drop_columns(["line"]) if "line" in table.column_names else table
        self._held = held  # row -> dict, for every row the columns do not hold whole
        self.t: NDArray[np.float64] = np.asarray(table.column("t").to_numpy(), dtype=np.float64)
        self._type_codes, self._type_names = _codes(table.column("type"))
        self._cache: dict[str, list[dict[str, Any]]] = {}
        self._numpy: dict[str, tuple[NDArray[Any], NDArray[np.bool_]]] = {}

    def _column(self, name: str) -> tuple[NDArray[Any], NDArray[np.bool_]]:
        """One of ``dir`` and the chunk fields over all rows as numpy (see :meth:`columns`)
        and where it is present; made once."""
        if name not in self._numpy:
            col = _one_chunk(self.arrow.column(name))
            valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            kind = CHUNK_FIELDS.get(name, "string")
            values: NDArray[Any]
            if kind == "string":
                values = _objects(col)
            elif not col.null_count:
                values = col.to_numpy()
            else:  # the value buffer as it is, nulls then filled (fill_null copies slower)
                dtype = np.dtype(np.int64 if kind == "int64" else np.float64)
                raw = np.frombuffer(col.buffers()[1], dtype, len(col), col.offset * dtype.itemsize)
                values = np.where(valid, raw, 0 if kind == "int64" else np.nan).astype(dtype)
            self._numpy[name] = values, valid
        return self._numpy[name]

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def from_dicts(cls, events: Sequence[dict[str, Any]]) -> EventTable:
        """A table of events made in memory (each a dict with ``t``, ``dir``, ``type``), kept
        in the order given."""
        table, regular = _arrow_from_dicts(events, with_line=False)
        return cls(table, {i: e for i, e in enumerate(events) if not regular[i]})

    @property
    def types(self) -> list[str]:
        """The line types present."""
        return list(self._type_names)

    def _rows(self, kind: str) -> NDArray[np.intp]:
        try:
            code = self._type_names.index(kind)
        except ValueError:
            return np.zeros(0, np.intp)
        return np.flatnonzero(self._type_codes == code)

    def of_type(self, *types: str, direction: str | None = None) -> list[dict[str, Any]]:
        """The events of the given types (and direction) as dicts, in time order (a chunk
        type's dicts are made on first ask, once)."""
        found: list[dict[str, Any]] = []
        if len(types) > 1 and not any(kind in CHUNK_TYPES for kind in types):
            # every line of these types is held as its dict: take them in row (time) order
            codes = [self._type_names.index(k) for k in types if k in self._type_names]
            rows = np.flatnonzero(np.isin(self._type_codes, codes))
            held = self._held
            found = [held[r] for r in rows.tolist()]
            if bool(np.any(np.diff(self.t[rows]) < 0)):  # made from dicts out of order
                found.sort(key=lambda e: e["t"])
        else:
            for kind in types:
                if kind not in self._cache:
                    self._cache[kind] = self._dicts(self._rows(kind))
                found += self._cache[kind]
            if len(types) > 1:
                found.sort(key=lambda e: e["t"])
        if direction is not None:
            found = [e for e in found if e.get("dir") == direction]
        return found

    def dicts(self) -> list[dict[str, Any]]:
        """Every event as a dict, in time order."""
        by_kind = {kind: iter(self.of_type(kind)) for kind in self._type_names}
        return [next(by_kind[self._type_names[c]]) for c in self._type_codes]

    def _dicts(self, rows: NDArray[np.intp]) -> list[dict[str, Any]]:
        held = self._held
        keys = rows.tolist()
        if all(r in held for r in keys):
            return [held[r] for r in keys]
        kind = self._type_names[self._type_codes[rows[0]]]
        times, dirs = self.t[rows].tolist(), self._column("dir")[0][rows].tolist()
        fields = []
        for name in CHUNK_FIELDS:
            values, present = self._column(name)
            if present[rows].any():
                fields.append((name, values[rows].tolist(), present[rows].tolist()))
        out = []
        for j, r in enumerate(keys):
            e = held.get(r)
            if e is None:  # keys in the writer's order: t, dir, type, then the fields
                e = {"t": times[j]}
                if dirs[j] is not None:
                    e["dir"] = dirs[j]
                e["type"] = kind
                for name, values, valid in fields:
                    if valid[j]:
                        e[name] = values[j]
            out.append(e)
        return out

    def columns(self, kind: str) -> Mapping[str, Any]:
        """The events of one per-chunk type (:data:`CHUNK_TYPES`) as numpy columns: ``t``
        (float64 s), ``dir`` and ``reply_id`` (object arrays, None where absent),
        ``offset`` and ``samples`` (int64, 0 where absent), ``timestamp`` (float64, NaN
        where absent). A read-only mapping; each column is made from the type's rows when
        first read, so what is not read costs nothing.

        Raises
        ------
        ConfigError
            If ``kind`` is not a per-chunk type (read those with :meth:`of_type`).
        """
        return _Columns(self, self._chunk_rows(kind))

    def codes(self, kind: str, name: str) -> tuple[NDArray[np.int64], list[str]]:
        """A string field (``dir``, ``reply_id``) of one per-chunk type's events as codes:
        (an int64 array, -1 where absent; the names the codes index). Cheaper than the
        object column of :meth:`columns` for grouping; the names may include some no row
        of ``kind`` has."""
        import pyarrow as pa

        rows = self._chunk_rows(kind)
        if name not in ("dir", *CHUNK_FIELDS) or CHUNK_FIELDS.get(name, "string") != "string":
            raise ConfigError(
                f"name ({name!r}) must be a string field of the chunk lines: dir or reply_id",
                field="name",
            )
        column = _dictionary(self.arrow.column(name))
        indices = column.indices.take(pa.array(rows, pa.int64()))
        codes = np.asarray(indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        return codes, [str(x) for x in column.dictionary.to_pylist()]

    def _chunk_rows(self, kind: str) -> NDArray[np.intp]:
        if kind not in CHUNK_TYPES:
            raise ConfigError(
                f"kind ({kind!r}) must be one of the per-chunk types "
                f"{', '.join(CHUNK_TYPES)}; read other events with log.of_type({kind!r})",
                field="kind",
            )
        return self._rows(kind)

    def _field(self, name: str, rows: NDArray[np.intp]) -> NDArray[Any]:
        """One of ``dir`` and the chunk fields at ``rows``, as :meth:`columns` gives it."""
        if name in self._numpy:  # the whole column is made already (:meth:`_dicts`)
            return self._numpy[name][0][rows]
        import pyarrow as pa

        col = _one_chunk(self.arrow.column(name)).take(pa.array(rows, pa.int64()))
        kind = CHUNK_FIELDS.get(name, "string")
        if kind == "string":
            return _objects(col)
        dtype = np.dtype(np.int64 if kind == "int64" else np.float64)
        if not col.null_count:
            return np.asarray(col.to_numpy(), dtype)
        filled = col.fill_null(pa.scalar(0 if kind == "int64" else math.nan, col.type))
        return np.asarray(filled.to_numpy(), dtype)


class _Columns(Mapping[str, Any]):
    """:meth:`EventTable.columns`: each column made on first read."""

    def __init__(self, table: EventTable, rows: NDArray[np.intp]) -> None:
        self._table, self._rows = table, rows
        self._made: dict[str, NDArray[Any]] = {}

    def __getitem__(self, name: str) -> NDArray[Any]:
        if name not in self._made:
            if name == "t":
                self._made[name] = self._table.t[self._rows]
            elif name == "dir" or name in CHUNK_FIELDS:
                self._made[name] = self._table._field(name, self._rows)
            else:
                raise KeyError(name)
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(("t", "dir", *CHUNK_FIELDS))

    def __len__(self) -> int:
        return 2 + len(CHUNK_FIELDS)


def _one_chunk(column: Any) -> Any:
    """A column, chunked or not, as one array."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    return column


def _dictionary(column: Any) -> Any:
    """A string column (chunked or not) as one dictionary-encoded array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _one_chunk(column)
    return column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)


def _codes(column: Any) -> tuple[NDArray[np.int32], list[str]]:
    """A string column as (int32 codes, names)."""
    column = _dictionary(column)
    codes = np.asarray(column.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
    return codes, [str(x) for x in column.dictionary.to_pylist()]


def _objects(column: Any) -> NDArray[np.object_]:
    """A string column as an object array (None for null), by its dictionary."""
    import pyarrow.compute as pc

    column = _dictionary(column)
    names = np.array([*column.dictionary.to_pylist(), None], dtype=object)
    codes = pc.fill_null(column.indices, len(names) - 1).to_numpy(zero_copy_only=False)
    result: NDArray[np.object_] = names[np.asarray(codes, dtype=np.int64)]
    return result


# -- building a table from dicts ------------------------------------------------------------
def _fits(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if kind == "int64":
        return isinstance(value, int) and -(2**63) <= value < 2**63
    return isinstance(value, (int, float))


def _arrow_from_dicts(
    events: Sequence[dict[str, Any]], *, with_line: bool
) -> tuple[pa.Table, list[bool]]:
    """Events as an arrow table (chunk fields filled where they have the column's kind) and
    which rows the columns hold whole."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {n: [] for n in ("t", "dir", "type", *CHUNK_FIELDS)}
    regular: list[bool] = []
    lines: list[str | None] = []
    chunk = set(CHUNK_TYPES)
    for e in events:
        columns["t"].append(float(e["t"]))
        columns["type"].append(str(e["type"]))
        d = e.get("dir")
        columns["dir"].append(d if isinstance(d, str) else None)
        whole = e["type"] in chunk and (d is None or isinstance(d, str)) and "dir" in e
        for name, kind in CHUNK_FIELDS.items():
            value = e.get(name)
            ok = value is not None and _fits(value, kind)
            columns[name].append(value if ok else None)
            whole = whole and (name not in e or ok)
        whole = whole and all(k in CHUNK_FIELDS or k in ("t", "dir", "type") for k in e)
        whole = whole and not isinstance(e["t"], bool) and isinstance(e["t"], (int, float))
        regular.append(whole)
        if with_line:
            lines.append(None if whole else json.dumps(e, default=str))
    data = dict(columns)
    schema = _schema(with_line)
    if with_line:
        data["line"] = lines
    return pa.table(data, schema=schema), regular


# -- reading events.jsonl -------------------------------------------------------------------
def _read_lines(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The line-by-line reader: every line that is an event (a JSON object with a string
    ``type`` and a number ``t``), and what was skipped."""
    events: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise LogFormatError(f"cannot read ({exc.strerror})", str(path)) from None
    lines = text.split("\n")
    skipped: list[int] = []
    loads = json.loads
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except ValueError:
            skipped.append(number)
            continue
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("type"), str)
            or isinstance(obj.get("t"), bool)
            or not isinstance(obj.get("t"), (int, float))
        ):
            skipped.append(number)
            continue
        events.append(obj)
    unsorted = any(b["t"] < a["t"] for a, b in itertools.pairwise(events))
    if unsorted:
        events.sort(key=lambda e: e["t"])
    return events, {"skipped": skipped, "last": len(lines), "unsorted": unsorted}


def _parse_fast(data: bytes) -> pa.Table | None:
    """``events.jsonl`` by pyarrow's JSON reader, or None when any line is not an event of
    the expected kinds (the line-by-line reader then says which)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    if not data:
        return None
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw == 10)
    starts = np.concatenate(([0], ends + 1)).astype(np.int64)
    stops = np.concatenate((ends, [len(data)])).astype(np.int64)
    length = stops - starts
    cr = np.zeros(len(starts), bool)
    nonzero = length > 0
    cr[nonzero] = raw[stops[nonzero] - 1] == 13
    filled = length - cr > 0
    if not filled.any():
        return None
    offsets = np.concatenate((starts, [len(data)])).astype(np.int64)
    every = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))
    lines = every.filter(pa.array(filled))
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(use_threads=True, block_size=1 << 22),
            parse_options=pj.ParseOptions(
                explicit_schema=_schema(with_line=False), unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != len(lines) or table.column("t").null_count:
        return None
    if table.column("type").null_count:
        return None
    valid = np.zeros(table.num_rows, np.int64)
    for name in table.column_names:
        valid += np.asarray(table.column(name).is_valid().to_numpy(zero_copy_only=False))
    # ":" a line, from where they are in the file (four times faster than counting in each)
    colons = np.diff(np.searchsorted(np.flatnonzero(raw == 58), offsets))[filled]
    chunk = np.asarray(
        pc.is_in(table.column("type"), value_set=pa.array(CHUNK_TYPES)).to_numpy(
            zero_copy_only=False
        )
    )
    regular = chunk & (colons == valid)
    texts = pc.if_else(pa.array(regular), pa.scalar(None, pa.large_string()), lines)
    return table.append_column("line", texts)


def _parse(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    """``events.jsonl`` as a table with its ``line`` column, in time order, and what the
    reading skipped or sorted."""
    import pyarrow.compute as pc

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LogFormatError(f"cannot read ({exc.strerror})", str(path)) from None
    table = _parse_fast(data)
    if table is None:
        events, slow = _read_lines(path)
        return _arrow_from_dicts(events, with_line=True)[0], slow
    info: dict[str, Any] = {"skipped": [], "last": 0, "unsorted": False}
    t = table.column("t").to_numpy()
    if len(t) > 1 and bool(np.any(np.diff(t) < 0)):
        info["unsorted"] = True
        table = table.take(pc.array_sort_indices(table.column("t"), order="ascending"))
        # array_sort_indices is stable: equal times keep their file order
    return table, info


def _warn(path: Path, info: dict[str, Any]) -> None:
    for number in info.get("skipped", []):
        what = "a truncated last line" if number == info.get("last") else "an unreadable line"
        warnings.warn(f"{path}:{number}: skipped {what}", LogFormatWarning, stacklevel=5)
    if info.get("unsorted"):
        warnings.warn(
            f"{path}: events out of time order; sorted by t", LogFormatWarning, stacklevel=5
        )


def _source(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_copy(copy: Path, source: dict[str, int]) -> tuple[pa.Table, dict[str, Any]] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not copy.is_file():
        return None
    try:
        # one open for the metadata and the table (what a small file costs most)
        file = pq.ParquetFile(copy, read_dictionary=["dir", "type", "reply_id"])
        meta = json.loads((file.schema_arrow.metadata or {}).get(_KEY, b"{}"))
        if meta.get("format") != COPY_FORMAT or meta.get("source") != source:
            return None
        # one thread: a small file reads faster so, and a pool's processes fill the cores
        table = file.read(use_threads=False)
    except (OSError, ValueError, pa.ArrowException):
        return None  # unreadable: made again
    return table, dict(meta.get("read") or {})


def _write_copy(copy: Path, table: pa.Table, source: dict[str, int], info: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"format": COPY_FORMAT, "source": source, "read": info}
    table = table.replace_schema_metadata({_KEY: json.dumps(meta).encode()})
    tmp = copy.with_name(f".{copy.name}.{secrets.token_hex(4)}.tmp")
    try:
        pq.write_table(table, tmp, compression="lz4", use_dictionary=["dir", "type", "reply_id"])
        os.replace(tmp, copy)
    except (OSError, pa.ArrowException):
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_events(path: str | os.PathLike[str], *, copy: bool = True) -> EventTable:
    """A bundle's ``events.jsonl`` as an :class:`EventTable`, from its columnar copy when
    that is current, else parsed (and the copy written, with ``copy=True``).

    Raises
    ------
    LogFormatError
        If ``events.jsonl`` cannot be read.
    """
    path = Path(path)
    try:
        source = _source(path)
    except OSError as exc:
        raise LogFormatError(f"cannot read ({exc.strerror})", str(path)) from None
    copy_path = path.with_name(COPY_NAME)
    found = _read_copy(copy_path, source)
    if found is None:
        table, info = _parse(path)
        if copy:
            _write_copy(copy_path, table, source, info)
    else:
        table, info = found
    _warn(path, info)
    return _from_arrow(table)


def write_copy(bundle: str | os.PathLike[str]) -> Path | None:
    """Write (or refresh) a bundle's ``events.parquet``; its path, or None when it could
    not be written. The writer calls this when a session stops."""
    events = Path(bundle) / "events.jsonl"
    copy = events.with_name(COPY_NAME)
    source = _source(events)
    table, info = _parse(events)
    _write_copy(copy, table, source, info)
    return copy if copy.is_file() else None


def _from_arrow(table: pa.Table) -> EventTable:
    import pyarrow.compute as pc

    line = table.column("line")
    rows = np.flatnonzero(np.asarray(line.is_valid().to_numpy(zero_copy_only=False)))
    texts = pc.take(line, rows).to_pylist() if len(rows) else []
    # one JSON array of them all: a call a line costs more than the parsing
    events = json.loads(f"[{','.join(texts)}]")
    return EventTable(table, dict(zip(rows.tolist(), events, strict=True)))
