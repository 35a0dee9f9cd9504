"""Many sessions as a Parquet dataset any engine reads (DuckDB, Polars, pandas, Spark).

Analysis layer: reads logs with :mod:`voicekit.logformat` through the per-session tables
(turns, barge-ins, replies, tool calls, events); writes one Hive-partitioned Parquet
dataset, ``<out>/<table>/date=YYYY-MM-DD/session=<key>/part-0.parquet``, with the fixed
schemas below (``docs/dataset.md`` describes every column). pyarrow is imported when first
needed; dask.distributed and fsspec only for ``engine="dask"`` and URLs.

How an export stays whole:

- each session is written by a worker into ``<out>/_staging/<run>/<key>/``, then moved into
  place by the caller, one rename a table partition, with interrupts held until all of the
  session's partitions are in place (a partition is never half-written);
- ``<out>/_manifest.json`` says which sessions are exported and from which state of their
  log (:func:`voicekit.analysis._fleet.fingerprint`); it is written after the partitions it
  names, so an export interrupted at any point is completed by the next one, which also
  rewrites any session whose log changed since.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import ConfigError, LogFormatError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SCHEMA_VERSION", "TABLES", "export_dataset", "schemas"]

SCHEMA_VERSION = 1  # bump when a column changes: every session is then written again
TABLES = ("turns", "barge_ins", "replies", "tool_calls", "events")
MANIFEST = "_manifest.json"
STAGING = "_staging"
PART = "part-0.parquet"
TIMED_OUT = re.compile(r"\btimed out after\b")

# (column, arrow type name) in order; a table's columns follow the session columns
SESSION_COLUMNS = (
    ("session_id", "string"),
    ("started_at", "timestamp"),
    ("origin", "string"),
    ("backend", "string"),
    ("agent", "string"),
    ("voice", "string"),
    ("prompt_hash", "string"),
    ("prompt_label", "string"),
    ("prompt_version", "string"),
    ("log", "string"),
)
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "turns": (
        ("turn", "int64"),
        ("server_session", "int64"),
        ("epoch", "int64"),
        ("vad_threshold", "float64"),
        ("min_silence", "float64"),
        ("max_silence", "float64"),
        ("interrupt_response", "bool"),
        ("u_on", "float64"),
        ("u_off", "float64"),
        ("source", "string"),
        ("text", "string"),
        ("reply_id", "string"),
        ("reply_text", "string"),
        ("a_on", "float64"),
        ("a_off", "float64"),
        ("fto", "float64"),
        ("overlap", "float64"),
        ("endpoint_delay", "float64"),
        ("server_first_audio", "float64"),
        ("lead_silence", "float64"),
        ("playout_delay", "float64"),
        ("premature", "bool"),
        ("no_response", "bool"),
        ("interrupted", "bool"),
        ("tool", "string"),
        ("tool_server", "float64"),
        ("tool_exec", "float64"),
        ("tool_result_to_audio", "float64"),
        ("tool_dead_air", "float64"),
        ("silent", "bool"),
        ("unspoken_text", "bool"),
        ("merged", "bool"),
    ),
    "barge_ins": (
        ("onset", "float64"),
        ("server_session", "int64"),
        ("source", "string"),
        ("text", "string"),
        ("reply_id", "string"),
        ("kind", "string"),
        ("detect_latency", "float64"),
        ("stop_latency", "float64"),
        ("residual", "float64"),
        ("heard_fraction", "float64"),
        ("played", "int64"),
        ("received", "int64"),
    ),
    "replies": (
        ("reply_id", "string"),
        ("server_session", "int64"),
        ("turn", "int64"),
        ("trigger", "string"),
        ("started", "float64"),
        ("first_audio", "float64"),
        ("audible_at", "float64"),
        ("ended", "float64"),
        ("status", "string"),
        ("played", "float64"),
        ("text", "string"),
        ("interrupted", "bool"),
        ("silent", "bool"),
        ("unspoken_text", "bool"),
    ),
    "tool_calls": (
        ("call_id", "string"),
        ("name", "string"),
        ("arguments", "string"),
        ("called_at", "float64"),
        ("exec_start", "float64"),
        ("exec_end", "float64"),
        ("exec_s", "float64"),
        ("ok", "bool"),
        ("unknown", "bool"),
        ("result_at", "float64"),
        ("is_error", "bool"),
        ("timed_out", "bool"),
        ("result", "string"),
        ("informational", "bool"),
        ("dropped", "bool"),
    ),
    "events": (
        ("t", "float64"),
        ("dir", "string"),
        ("type", "string"),
        ("reply_id", "string"),
        ("call_id", "string"),
        ("fields", "string"),
    ),
}


def schemas() -> dict[str, pa.Schema]:
    """The dataset's tables and their Arrow schemas (without the ``date`` and ``session``
    partition columns, which the directory names carry)."""
    import pyarrow as pa

    kinds = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    out = {}
    for table, columns in TABLE_COLUMNS.items():
        session = [c for c in SESSION_COLUMNS if table != "turns" or c[0] != "voice"]
        fields = [pa.field(name, kinds[kind]) for name, kind in (*session, *columns)]
        if table == "turns":  # the voice of the turn's epoch, where the session's stands
            fields.insert(5, pa.field("voice", pa.string()))
        out[table] = pa.schema(fields, metadata={"voicekit_schema": str(SCHEMA_VERSION)})
    return out


# -- one session --------------------------------------------------------------------------
def session_info(log: Any, origin: str, source: str) -> dict[str, Any]:
    """The per-session columns of a log (see :data:`SESSION_COLUMNS`), its partition key
    and date."""
    config = log.config
    prompt = config.get("system_prompt") or config.get("instructions") or ""
    label = log.meta.get("prompt_version")
    label = str(label) if isinstance(label, (str, int, float)) and label != "" else None
    voice = (config.get("output") or {}).get("voice") or config.get("voice")
    prompt_hash = hashlib.sha256(str(prompt).encode()).hexdigest()[:12]
    started = log.started_at
    name = Path(source.rstrip("/")).name
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", log.session_id or Path(name).stem) or "unnamed"
    if origin != "voicekit":  # a session's bundle and its hosted download stay apart
        key += f".{origin}"
    return {
        "key": key,
        "date": started[:10] if started and re.match(r"\d{4}-\d\d-\d\d", started) else "unknown",
        "columns": {
            "session_id": log.session_id,
            "started_at": started,
            "origin": origin,
            "backend": log.backend,
            "agent": config.get("agent_id") or log.meta.get("agent_id"),
            "voice": voice,
            "prompt_hash": prompt_hash,
            "prompt_label": label,
            "prompt_version": label or prompt_hash,
            "log": source,
        },
    }


def tool_call_rows(log: Any) -> list[dict[str, Any]]:
    """One row a ``tool.call``, with its ``tool.exec`` and sent ``tool.result``."""
    execs = {e.get("call_id"): e for e in log.of_type("tool.exec")}
    results = {e.get("call_id"): e for e in log.of_type("tool.result", direction="send")}
    informational = {e.get("call_id") for e in log.of_type("tool.informational")}
    dropped = {e.get("call_id") for e in log.of_type("tool.dropped")}
    rows = []
    for call in log.of_type("tool.call"):
        cid = call.get("call_id")
        ex, res = execs.get(cid), results.get(cid)
        args = call.get("arguments")
        result = res.get("result") if res else None
        is_error = bool(res.get("is_error")) if res else None
        start = float(ex["start"]) if ex and "start" in ex else math.nan
        end = float(ex["end"]) if ex and "end" in ex else math.nan
        rows.append(
            {
                "call_id": cid,
                "name": call.get("name"),
                "arguments": args if isinstance(args, str) or args is None else json.dumps(args),
                "called_at": float(call["t"]),
                "exec_start": start,
                "exec_end": end,
                "exec_s": end - start,
                "ok": bool(ex.get("ok", True)) if ex else None,
                "unknown": bool(ex.get("unknown", False)) if ex else None,
                "result_at": float(res["t"]) if res else math.nan,
                "is_error": is_error,
                "timed_out": bool(is_error and TIMED_OUT.search(str(result))) if res else None,
                "result": None if result is None else str(result),
                "informational": cid in informational,
                "dropped": cid in dropped,
            }
        )
    return rows


def event_rows(log: Any) -> dict[str, list[Any]]:
    """The log's events as columns: ``t``, ``dir``, ``type``, ``reply_id``, ``call_id``
    and the other fields as JSON text."""
    cols: dict[str, list[Any]] = {k: [] for k in ("t", "dir", "type", "reply_id", "call_id")}
    cols["fields"] = []
    skip = set(cols)
    for e in log.raw_events:
        for k in ("t", "dir", "type", "reply_id", "call_id"):
            cols[k].append(e.get(k))
        rest = {k: v for k, v in e.items() if k not in skip}
        cols["fields"].append(json.dumps(rest, separators=(",", ":")) if rest else None)
    cols["reply_id"] = [None if v is None else str(v) for v in cols["reply_id"]]
    cols["call_id"] = [None if v is None else str(v) for v in cols["call_id"]]
    return cols


def session_tables(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """One log's session info and its five tables as Arrow tables of :func:`schemas`."""
    import pandas as pd
    import pyarrow as pa

    from voicekit.analysis._fleet import local_copy
    from voicekit.analysis.many import open_log

    with local_copy(path) as local:
        log, origin = open_log(local)
        info = session_info(log, origin, str(path))
        frames = {
            "turns": log.turns.rename(columns={"session": "server_session"}),
            "barge_ins": log.barge_ins.rename(columns={"session": "server_session"}),
            "replies": log.replies.rename(columns={"session": "server_session"}),
            "tool_calls": pd.DataFrame(tool_call_rows(log)),
        }
        events = event_rows(log)
    out = {}
    for table, schema in schemas().items():
        n = len(events["t"]) if table == "events" else len(frames[table])
        columns: dict[str, Any] = {}
        for field in schema:
            if field.name in info["columns"] and not (table == "turns" and field.name == "voice"):
                value = info["columns"][field.name]
                columns[field.name] = pa.array([value] * n, type=pa.string()).cast(field.type)
            elif table == "events":
                columns[field.name] = pa.array(events[field.name], type=field.type)
            else:
                columns[field.name] = _column(frames[table], field, n)
        out[table] = pa.table(columns, schema=schema)
    return info, out


def _column(frame: Any, field: Any, n: int) -> Any:
    """One column of a pandas frame as an Arrow array of the field's type (nulls for a
    column the frame lacks, and for NaN in non-float columns)."""
    import pandas as pd
    import pyarrow as pa

    if field.name not in frame:
        return pa.nulls(n, type=field.type)
    values = frame[field.name]
    if pa.types.is_floating(field.type):
        return pa.array(pd.to_numeric(values, errors="coerce").astype(float), type=field.type)
    cleaned = [None if v is None or v is pd.NA or v != v else v for v in values.tolist()]
    if pa.types.is_string(field.type):
        cleaned = [None if v is None else str(v) for v in cleaned]
    elif pa.types.is_integer(field.type):
        cleaned = [None if v is None else int(v) for v in cleaned]
    elif pa.types.is_boolean(field.type):
        cleaned = [None if v is None else bool(v) for v in cleaned]
    return pa.array(cleaned, type=field.type)


def _export_one(job: tuple[str, str]) -> dict[str, Any] | BaseException:
    """Write one log's tables under a staging directory (run by a worker): its info and
    row counts, or the exception when the log cannot be read."""
    import pyarrow.parquet as pq

    from voicekit.analysis._fleet import SKIPPABLE, fingerprint

    path, staging = job
    try:
        stamp = fingerprint(path)  # before reading: a columnar copy made now is left out
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info, tables = session_tables(path)
    except (LogFormatError, *SKIPPABLE) as exc:
        return exc
    where = Path(staging) / f"{info['key']}-{uuid.uuid4().hex[:8]}"
    # no parents made: once an interrupted export removed its staging directory, a task
    # still running on a worker fails here instead of leaving files behind
    where.mkdir()
    for table, data in tables.items():
        (where / table).mkdir()
        pq.write_table(data, where / table / PART)
    return {
        "key": info["key"],
        "date": info["date"],
        "source": str(path),
        "fingerprint": stamp,
        "staged": str(where),
        "rows": {table: data.num_rows for table, data in tables.items()},
        "warnings": [str(w.message) for w in caught],
    }


# -- the dataset ----------------------------------------------------------------------------
def export_dataset(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    engine: str = "local",
    client: Any = None,
    progress: bool | Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write sessions' tables as a Parquet dataset, partitioned by date and session.

    ``<out_dir>/<table>/date=YYYY-MM-DD/session=<key>/part-0.parquet`` for each of the
    tables ``turns``, ``barge_ins``, ``replies``, ``tool_calls`` and ``events``; every
    row carries the session's columns (``session_id``, ``started_at``, ``origin``,
    ``backend``, ``agent``, ``voice``, ``prompt_hash``, ``prompt_label``,
    ``prompt_version``, ``log``). Read it with DuckDB
    (``read_parquet('out/turns/**/*.parquet', hive_partitioning = true)``), Polars
    (``pl.read_parquet('out/turns/**/*.parquet', hive_partitioning=True)``), pandas
    (``pd.read_parquet('out/turns')``) or Spark. ``docs/dataset.md`` describes every
    column.

    Parameters
    ----------
    paths : str, path or list of them
        Logs as :func:`voicekit.load_logs` takes them: bundles, downloaded hosted
        sessions, call recordings, their parent directories, globs, fsspec URLs.
    out_dir : str or path
        The dataset's directory (made if missing), on a file system the workers share.
    engine : {"local", "dask"}
        Where each session's tables are computed and written: processes here, or tasks on
        a ``dask.distributed`` cluster (``client``, else the default client).
    client : dask.distributed.Client, optional
        The cluster's client for ``engine="dask"``.
    progress : bool or callable, optional
        A progress bar (default), none (False), or ``progress(done, total)`` called after
        each session is in place (an exception it raises ends the export there, as an
        interrupt does).
    workers : int, optional
        ``engine="local"``: processes to use (default: all cores when there are many).

    Returns
    -------
    dict
        ``written`` (session keys exported now), ``unchanged`` (kept from before),
        ``skipped`` (logs that could not be read, with why), ``sessions`` (all exported).

    Notes
    -----
    Incremental: a session already exported from the same state of its log is not read
    again; one whose log changed (its files' sizes or times; derived ``*.parquet`` copies
    aside) is rewritten. Sessions exported before and no longer among ``paths`` stay. An
    interrupt (Ctrl-C, interrupting the kernel) stops the export leaving every partition
    whole; the next export completes it.
    """
    from voicekit.analysis._fleet import check_engine, fingerprint, need, run
    from voicekit.analysis.many import find_any, progress_of

    check_engine(engine)
    need("pyarrow", "export_dataset")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir ({out}) is a file; pass a directory", field="out_dir")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / STAGING, ignore_errors=True)  # what an interrupted export left
    manifest = _read_manifest(out)
    sessions: dict[str, Any] = manifest["sessions"]
    by_source = {entry["source"]: key for key, entry in sessions.items()}

    logs = [str(p) for p in find_any(paths)]
    todo, unchanged = [], []
    for source in logs:
        key = by_source.get(source)
        if key is not None and sessions[key]["fingerprint"] == fingerprint(source):
            unchanged.append(key)
        else:
            todo.append(source)
    staging = out / STAGING / uuid.uuid4().hex[:8]
    staging.mkdir(parents=True)
    written: list[str] = []
    skipped: dict[str, str] = {}
    seen = {key: sessions[key]["source"] for key in unchanged}
    try:
        with progress_of(len(todo), True if progress is None else progress, "sessions") as step:

            def commit(i: int, result: dict[str, Any] | BaseException) -> None:
                if isinstance(result, BaseException):
                    skipped[todo[i]] = str(result)
                    warnings.warn(f"{todo[i]}: skipped ({result})", stacklevel=5)
                else:
                    key = result["key"]
                    if seen.get(key, result["source"]) != result["source"]:
                        shutil.rmtree(result["staged"], ignore_errors=True)
                        raise LogFormatError(
                            f"session {key} is also in {seen[key]}; export one of them",
                            result["source"],
                        )
                    seen[key] = result["source"]
                    for message in result["warnings"]:
                        warnings.warn(message, stacklevel=5)
                    _move_into_place(out, result, sessions.get(key))
                    sessions[key] = {
                        k: result[k] for k in ("source", "date", "fingerprint", "rows")
                    }
                    written.append(key)
                step()

            run(
                _export_one,
                [(source, str(staging)) for source in todo],
                commit,
                engine=engine,
                client=client,
                workers=workers,
            )
    finally:  # after the partitions it names: an interrupted export's finished sessions count
        _write_manifest(out, manifest)
        _remove(out / STAGING)
    return {
        "written": written,
        "unchanged": unchanged,
        "skipped": skipped,
        "sessions": sorted(sessions),
    }


def _move_into_place(out: Path, result: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Rename a staged session's partitions into the dataset, replacing an older export of
    it (possibly under another date), all or nothing as far as an interrupt goes."""
    from voicekit.analysis._fleet import interrupts_deferred

    key, staged = result["key"], Path(result["staged"])
    with interrupts_deferred():
        for table in TABLES:
            old_dirs = {_partition(out, table, result["date"], key)}
            if before is not None:
                old_dirs.add(_partition(out, table, before["date"], key))
            trash = staged / f"old-{table}"
            for k, old in enumerate(sorted(old_dirs)):
                if old.exists():
                    old.rename(trash.with_name(f"{trash.name}-{k}"))
                    with contextlib.suppress(OSError):  # a day left with no session
                        old.parent.rmdir()
            target = _partition(out, table, result["date"], key)
            target.parent.mkdir(parents=True, exist_ok=True)
            (staged / table).rename(target)
        shutil.rmtree(staged, ignore_errors=True)


def _remove(tree: Path, tries: int = 50) -> None:
    """Remove a directory that a task still running elsewhere may be writing into (after
    an interrupt): again until it stays gone, as such a task's next write then fails."""
    for _ in range(tries):
        shutil.rmtree(tree, ignore_errors=True)
        if not tree.exists():
            return
        time.sleep(0.02)


def _partition(out: Path, table: str, date: str, key: str) -> Path:
    return out / table / f"date={date}" / f"session={key}"


def _read_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST
    fresh = {"format": "voicekit-dataset/1", "schema": SCHEMA_VERSION, "sessions": {}}
    if not path.exists():
        if any((out / t).exists() for t in TABLES):
            warnings.warn(f"{path} missing: every session is written again", stacklevel=3)
        return fresh
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LogFormatError(
            f"not valid JSON ({exc}); delete it to export every session again", str(path)
        ) from None
    if manifest.get("schema") != SCHEMA_VERSION:  # columns changed: write everything again
        return {**fresh, "sessions": {}}
    return dict(manifest)


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    with contextlib.suppress(OSError):
        os.replace(tmp, out / MANIFEST)
