"""Checking a ``voicekit-log/1`` bundle against its written format: :func:`validate_log`.

Format layer: standard library only (the schemas are JSON files shipped beside this module);
never the session, protocol, analysis or widgets.

The schemas ``schema/meta.schema.json`` and ``schema/events.schema.json`` (JSON Schema draft
2020-12) are the one statement of what a bundle holds: which fields each line type needs,
their JSON types and bounds. Running a general JSON Schema validator over every line costs
about 30 us a line for a type's own schema and over 400 us through the ``if``/``then`` chain of
the whole line schema (jsonschema 4.26, this machine), a minute for a 200,000-line bundle. So
the schemas are compiled here, once, into a table of plain checks per line type; the compiler
accepts only the keywords in :data:`KEYWORDS` (anything else in a schema raises), so the
checks say exactly what the schema says. What a schema cannot say is checked in Python after
it and written in ``docs/log-format.md``: times that go backwards, utterances and tool runs
that end before they start, sample offsets beyond the WAV files, the WAV files' own format.

Severity: an **error** is something a reader misreads or drops (a required field missing or
of the wrong type, a WAV that is not 24 kHz mono PCM16, no ``meta.json``); a **warning** is
damage the reader survives or data an analysis lacks (a truncated last line, lines out of
time order, a recommended field missing, offsets past the end of a track).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import struct
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeGuard

from voicekit.errors import LogFormatError

__all__ = ["KEYWORDS", "Problem", "load_schema", "validate_log"]

Severity = Literal["error", "warning"]
RATE = 24000
WAV_HEADER_BYTES = 44  # the reader memory-maps samples from this byte on

# the JSON Schema keywords the compiler understands (annotations included)
KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$ref",
        "title",
        "description",
        "default",
        "type",
        "const",
        "enum",
        "minimum",
        "minLength",
        "items",
        "properties",
        "required",
        "allOf",
        "if",
        "then",
        "x-recommended",
        "x-default",
    }
)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle.

    Attributes
    ----------
    file : str
        The bundle's file: ``meta.json``, ``events.jsonl``, ``user.wav`` or ``agent.wav``
        (``""``: the bundle as a whole).
    line : int or None
        1-based line of ``events.jsonl``; None for the other files.
    field : str or None
        The field at fault (``"t"``, ``"reply_id"``, ``"config"``), if one is.
    message : str
        What is wrong and how to fix it.
    severity : {"error", "warning"}
        ``error``: a reader misreads or drops data; ``warning``: the bundle loads, with less.
    """

    file: str
    line: int | None
    field: str | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}: {what}{self.message} [{self.severity}]"


# -- the schemas, compiled ----------------------------------------------------------------
@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """One of the shipped schemas, ``"meta"`` or ``"events"``, as a dict.

    Raises
    ------
    LogFormatError
        If ``name`` is neither.
    """
    if name not in ("meta", "events"):
        raise LogFormatError(f"schema ({name!r}) must be 'meta' or 'events'")
    text = resources.files("voicekit.logformat").joinpath(f"schema/{name}.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
_NAMES.update({dict: "an object", list: "an array", type(None): "null"})

Check = Callable[[Any], "str | None"]


def _describe(value: Any) -> str:
    text = json.dumps(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{shown} ({_NAMES.get(type(value), type(value).__name__)})"


def _type_check(names: list[str]) -> Check:
    accepted = tuple(t for n in names for t in _JSON_TYPES[n])
    no_bool = bool not in accepted  # JSON true is no number
    integral = "integer" in names and "number" not in names
    wanted = " or ".join(
        {"number": "a number", "integer": "an integer"}.get(n, _NAMES[_JSON_TYPES[n][0]])
        for n in names
    )

    def check(value: Any) -> str | None:
        if isinstance(value, accepted) and not (no_bool and type(value) is bool):
            return None
        if integral and type(value) is float and value.is_integer():
            return None  # JSON Schema: 3.0 is an integer
        return f"must be {wanted}, got {_describe(value)}"

    return check


def _compile(schema: dict[str, Any], where: str) -> Check:
    """One value's checks, in the order a JSON Schema validator would report them."""
    unknown = set(schema) - KEYWORDS
    if unknown:
        raise LogFormatError(
            f"{where} uses JSON Schema keywords this validator does not know: "
            f"{sorted(unknown)}; add them to voicekit.logformat.validate"
        )
    checks: list[Check] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        checks.append(_type_check(names))
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda v: None if v == const else f"must be {json.dumps(const)}")
    if "enum" in schema:
        options = schema["enum"]
        listed = ", ".join(json.dumps(o) for o in options)
        checks.append(lambda v: None if v in options else f"must be one of {listed}")
    if "minimum" in schema:
        low = schema["minimum"]

        def minimum(v: Any) -> str | None:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < low:
                return f"must be at least {low}, got {v}"
            return None

        checks.append(minimum)
    if "minLength" in schema:
        shortest = schema["minLength"]
        checks.append(
            lambda v: (
                f"must not be empty (at least {shortest} characters)"
                if isinstance(v, str) and len(v) < shortest
                else None
            )
        )
    if "items" in schema:
        item = _compile(schema["items"], where + "/items")

        def items(v: Any) -> str | None:
            if isinstance(v, list):
                for k, x in enumerate(v):
                    if (msg := item(x)) is not None:
                        return f"item {k} {msg}"
            return None

        checks.append(items)
    if len(checks) == 1:
        return checks[0]

    def all_of(value: Any) -> str | None:
        for check in checks:
            if (msg := check(value)) is not None:
                return msg
        return None

    return all_of


@dataclasses.dataclass(frozen=True)
class _Rules:
    """What an object of one kind must hold: field checks, required, recommended."""

    fields: dict[str, Check]
    required: tuple[str, ...]
    recommended: tuple[str, ...]


def _rules(schema: dict[str, Any], where: str) -> _Rules:
    _compile({k: v for k, v in schema.items() if k not in _OBJECT_KEYS}, where)
    props = schema.get("properties", {})
    return _Rules(
        {name: _compile(sub, f"{where}/properties/{name}") for name, sub in props.items()},
        tuple(schema.get("required", ())),
        tuple(schema.get("x-recommended", ())),
    )


_OBJECT_KEYS = {"properties", "required", "x-recommended", "$defs", "allOf"}


@functools.cache
def _line_rules() -> tuple[_Rules, dict[str, _Rules]]:
    """The events schema as (rules of every line, rules per line type)."""
    schema = load_schema("events")
    by_type: dict[str, _Rules] = {}
    for k, branch in enumerate(schema.get("allOf", ())):
        # the one shape of allOf used: {"if": type is X, "then": {"$ref": "#/$defs/X"}}
        kind = branch["if"]["properties"]["type"]["const"]
        ref = branch["then"]["$ref"]
        if ref != f"#/$defs/{kind}" or set(branch) != {"if", "then"}:
            raise LogFormatError(f"events schema allOf/{k}: expected if type == X then $defs/X")
        by_type[kind] = _rules(schema["$defs"][kind], f"events schema $defs/{kind}")
    return _rules(schema, "events schema"), by_type


@functools.cache
def _meta_rules() -> _Rules:
    return _rules(load_schema("meta"), "meta schema")


def required_fields(kind: str) -> tuple[str, ...]:
    """The fields a line of type ``kind`` must have besides ``t``, ``dir`` and ``type``
    (from the events schema; ``()`` for a type it does not list)."""
    rules = _line_rules()[1].get(kind)
    return rules.required if rules else ()


# -- checking -----------------------------------------------------------------------------
_FIX_TYPE = "; write the value the format describes (docs/log-format.md)"
_WHAT_NEEDS = {
    "reply_id": "the reply it belongs to cannot be found",
    "samples": "the reply's length and heard_fraction are unknown",
    "end": "the reply's played span is taken as offset + played",
    "played": "the reply counts as not played",
    "reason": "the reply counts as completed",
    "message": "the error says nothing",
}


def _check_object(
    obj: dict[str, Any], rules: _Rules, emit: Callable[[str | None, str, Severity], None]
) -> None:
    for name in rules.required:
        if name not in obj:
            emit(name, "is required but missing; add it", "error")
    for name in rules.recommended:
        if name not in obj:
            lost = _WHAT_NEEDS.get(name, "the analysis has less to go on")
            emit(name, f"is missing ({lost}); add it", "warning")
    for name, check in rules.fields.items():
        if name in obj and (msg := check(obj[name])) is not None:
            emit(name, msg + _FIX_TYPE, "error")


def _bundle_files(path: Path) -> Path:
    if not path.exists():
        raise LogFormatError(
            "no such log bundle; pass a bundle directory (it holds meta.json and "
            "events.jsonl) or the path of its events.jsonl",
            str(path),
        )
    return path.parent if path.is_file() else path


def validate_log(path: str | os.PathLike[str]) -> list[Problem]:
    """Every problem of a log bundle against the ``voicekit-log/1`` format.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle directory, or its ``events.jsonl``.

    Returns
    -------
    list of Problem
        In file order (``meta.json``, ``events.jsonl`` by line, ``user.wav``,
        ``agent.wav``); empty for a clean bundle. Never raises for a bad bundle.

    Raises
    ------
    LogFormatError
        If ``path`` does not exist.
    """
    bundle = _bundle_files(Path(path))
    problems: list[Problem] = []
    problems += _validate_meta(bundle / "meta.json")
    tracks = {name: _wav_samples(bundle / f"{name}.wav") for name in ("user", "agent")}
    events = bundle / "events.jsonl"
    if not events.is_file():
        problems.append(
            Problem(
                "events.jsonl",
                None,
                None,
                "missing; a bundle needs events.jsonl, one JSON object a line (it may be "
                "empty)" + _parent_hint(bundle),
            )
        )
    else:
        problems += _validate_events(events, tracks)
    for name in ("user", "agent"):
        problems += _validate_wav(bundle / f"{name}.wav")
    return problems


def _parent_hint(bundle: Path) -> str:
    children = [p for p in bundle.iterdir() if (p / "meta.json").is_file()]
    if not children:
        return ""
    return f"; {bundle.name} holds {len(children)} bundles: validate each (DIR/*)"


def _validate_meta(path: Path) -> list[Problem]:
    problems: list[Problem] = []

    def emit(field: str | None, message: str, severity: Severity) -> None:
        problems.append(Problem("meta.json", None, field, message, severity))

    if not path.is_file():
        emit(
            None,
            'missing; write {"format": "voicekit-log/1"} at least' + _parent_hint(path.parent),
            "error",
        )
        return problems
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        emit(None, f"is not valid JSON ({exc}); write one JSON object", "error")
        return problems
    if not isinstance(meta, dict):
        emit(None, f"must hold a JSON object, not {_describe(meta)}", "error")
        return problems
    fmt = meta.get("format")
    if "format" in meta and fmt != load_schema("meta")["properties"]["format"]["const"]:
        emit(
            "format",
            f"is {_describe(fmt)}; this voicekit reads only "
            f"{json.dumps(load_schema('meta')['properties']['format']['const'])}: write that, "
            "or upgrade voicekit to read a newer format",
            "error",
        )
        meta = {k: v for k, v in meta.items() if k != "format"}
        rules = _meta_rules()
        rules = _Rules(rules.fields, (), rules.recommended)
    else:
        rules = _meta_rules()
    _check_object(meta, rules, emit)
    return problems


def _validate_events(path: Path, tracks: dict[str, int | None]) -> list[Problem]:
    problems: list[Problem] = []
    line: int | None = None

    def emit(field: str | None, message: str, severity: Severity) -> None:
        problems.append(Problem("events.jsonl", line, field, message, severity))

    try:
        data = path.read_bytes()
    except OSError as exc:
        emit(None, f"cannot be read ({exc.strerror})", "error")
        return problems
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    ends_cleanly = lines[-1] == ""
    if ends_cleanly:
        lines.pop()
    if not lines:
        emit(None, "has no events (an empty session); the analysis finds nothing", "warning")
        return problems
    common, by_type = _line_rules()
    loads = json.loads
    last_t: float | None = None
    last_t_line = 0
    started: set[str] = set()
    beyond: dict[str, list[int]] = {"user": [], "agent": []}
    n_user, n_agent = tracks["user"], tracks["agent"]
    final = len(lines)
    for number, raw in enumerate(lines, 1):
        line = number
        if not raw.strip():
            emit(None, "is blank; remove it (one JSON object a line)", "warning")
            continue
        try:
            obj = loads(raw)
        except ValueError as exc:
            if number == final and not ends_cleanly:
                emit(
                    None,
                    "is cut off (the writer stopped mid-line, e.g. a crash); the reader skips "
                    "it: end every line with a newline",
                    "warning",
                )
            else:
                emit(None, f"is not JSON ({exc}); the reader skips it", "error")
            continue
        if not isinstance(obj, dict):
            emit(None, f"must be a JSON object, got {_describe(obj)}; the reader skips it", "error")
            continue
        _check_object(obj, common, emit)
        kind = obj.get("type")
        rules = by_type.get(kind) if isinstance(kind, str) else None
        if rules is not None:
            _check_object(obj, rules, emit)
        t = obj.get("t")
        if _num(t):
            if last_t is not None and t < last_t:
                emit(
                    "t",
                    f"{t} is earlier than line {last_t_line}'s {last_t}; the reader sorts lines "
                    "by t: write them in the order they happen",
                    "warning",
                )
            else:
                last_t, last_t_line = t, number
        if rules is None:
            continue  # a type the format does not list: kept, nothing more to check
        if kind == "user.utterance" or kind == "tool.exec":
            start, end = obj.get("start"), obj.get("end")
            if _num(start) and _num(end) and end < start:
                emit("end", f"({end}) is before start ({start}); swap them", "error")
        elif kind == "input.audio":
            offset, n = obj.get("offset"), obj.get("samples")
            if n_user is not None and _int(offset) and _int(n) and offset + n > n_user:
                beyond["user"].append(number)
        elif kind == "playback.start":
            rid, offset = obj.get("reply_id"), obj.get("offset")
            if isinstance(rid, str):
                started.add(rid)
            if n_agent is not None and _int(offset) and offset > n_agent:
                beyond["agent"].append(number)
        elif kind == "playback.stop":
            rid, end = obj.get("reply_id"), obj.get("end")
            if isinstance(rid, str) and rid not in started:
                emit(
                    "reply_id",
                    f"{rid!r} has no playback.start before it, so its played span is "
                    "unknown; write playback.start {reply_id, offset} when its first sample "
                    "plays",
                    "warning",
                )
            if n_agent is not None and _int(end) and end > n_agent:
                beyond["agent"].append(number)
    for track, at in beyond.items():
        if at:
            n = tracks[track]
            more = f" (and {len(at) - 1} later lines)" if len(at) > 1 else ""
            field = "offset" if track == "user" else "offset/end"
            problems.append(
                Problem(
                    "events.jsonl",
                    at[0],
                    field,
                    f"points past the end of {track}.wav ({n} samples, {(n or 0) / RATE:.3f} s)"
                    f"{more}; the audio there reads as silence: write the samples the line "
                    f"counts into {track}.wav at that offset",
                    "warning",
                )
            )
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _num(v: Any) -> TypeGuard[float]:
    return type(v) in (int, float)


def _int(v: Any) -> TypeGuard[int]:
    return type(v) is int


def _wav_header(path: Path) -> tuple[dict[str, int], list[tuple[str | None, str, Severity]]]:
    """A WAV's format fields (tag, channels, rate, bits, data_at, data_bytes) and problems."""
    found: dict[str, int] = {}
    issues: list[tuple[str | None, str, Severity]] = []
    try:
        with path.open("rb") as f:
            head = f.read(4096)
        size = path.stat().st_size
    except OSError as exc:
        return found, [(None, f"cannot be read ({exc.strerror})", "error")]
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return found, [(None, "is not a WAV file (no RIFF/WAVE header); write PCM16 WAV", "error")]
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt " and pos + 24 <= len(head):
            tag, channels, rate = struct.unpack_from("<HHI", head, pos + 8)
            bits = struct.unpack_from("<H", head, pos + 22)[0]
            found.update(tag=tag, channels=channels, rate=rate, bits=bits)
        elif chunk == b"data":
            found.update(data_at=pos + 8, data_bytes=length, file_bytes=size)
            break
        pos += 8 + length + (length & 1)
    if "tag" not in found:
        issues.append(("fmt", "has no fmt chunk; write a standard PCM16 WAV header", "error"))
    if "data_at" not in found:
        issues.append(("data", "has no data chunk; write a standard PCM16 WAV header", "error"))
    return found, issues


@functools.lru_cache(maxsize=64)
def _wav_samples_cached(path: str, mtime: float, size: int) -> int | None:
    found, issues = _wav_header(Path(path))
    if issues or "data_at" not in found:
        return None
    return (size - found["data_at"]) // 2


def _wav_samples(path: Path) -> int | None:
    """Samples the reader will see in a track (from the file size), or None if unreadable."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _wav_samples_cached(str(path), st.st_mtime, st.st_size)


def _validate_wav(path: Path) -> list[Problem]:
    name = path.name
    if not path.exists():
        return [
            Problem(
                name,
                None,
                None,
                "missing; the analysis sees silence on this track (write a 24 kHz mono PCM16 "
                "WAV, even an empty one)",
                "warning",
            )
        ]
    found, issues = _wav_header(path)
    problems = [Problem(name, None, f, m, s) for f, m, s in issues]
    if "tag" in found:
        wrong = []
        if found["tag"] != 1:
            wrong.append(f"format tag {found['tag']} (not PCM)")
        if found["channels"] != 1:
            wrong.append(f"{found['channels']} channels")
        if found["rate"] != RATE:
            wrong.append(f"{found['rate']} Hz")
        if found["bits"] != 16:
            wrong.append(f"{found['bits']} bits")
        if wrong:
            problems.append(
                Problem(
                    name,
                    None,
                    "fmt",
                    f"is {', '.join(wrong)}; the format is 24000 Hz mono 16-bit PCM: convert "
                    "it (e.g. sox in.wav -r 24000 -c 1 -b 16 out.wav)",
                )
            )
    if "data_at" in found:
        if found["data_at"] != WAV_HEADER_BYTES:
            problems.append(
                Problem(
                    name,
                    None,
                    "data",
                    f"samples start at byte {found['data_at']}, not {WAV_HEADER_BYTES}; the "
                    "reader reads them from byte 44: write the plain 44-byte header (no other "
                    "chunks before the data)",
                )
            )
        body = found["file_bytes"] - found["data_at"]
        if found["data_bytes"] != body:
            problems.append(
                Problem(
                    name,
                    None,
                    "data",
                    f"header says {found['data_bytes']} data bytes, the file holds {body} (a "
                    "header not updated after a crash); the reader uses the file size: "
                    "rewrite the header",
                    "warning",
                )
            )
        if body % 2:
            problems.append(
                Problem(
                    name,
                    None,
                    "data",
                    f"has an odd number of data bytes ({body}); the last byte is ignored",
                    "warning",
                )
            )
    return problems


def count(problems: Iterable[Problem]) -> dict[str, int]:
    """``{"error": n, "warning": m}`` of a list of problems."""
    out = {"error": 0, "warning": 0}
    for p in problems:
        out[p.severity] += 1
    return out
