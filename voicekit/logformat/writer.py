"""Writing a ``voicekit-log/1`` bundle while a session runs.

Format layer: imports the standard library, numpy, ``voicekit.audio.wav``,
``voicekit._secrets``, ``voicekit.errors`` and (on close) ``voicekit.logformat.columnar``
only; never the session, protocol, analysis or widgets.

A bundle is a directory ``<YYYYmmdd-HHMMSS>-<session id>`` holding ``meta.json``,
``events.jsonl`` (one JSON object a line), the two audio tracks
``user.wav`` / ``agent.wav`` on the session clock and, once the session has stopped,
``events.parquet`` (the events in columns, a copy the reader makes again when missing).
The session id is known only after ``session.ready``: the directory starts as
``<stamp>-pending-<random>`` and is renamed when :meth:`LogWriter.set_session_id` is
called (files stay open across the rename on POSIX).

Crash safety: every line is flushed to the OS as it is written, except the per-chunk
audio lines (``input.audio``, ``reply.audio``, one per chunk): those are flushed with the
next other line, by :meth:`LogWriter.flush`, or by the first write (a line or audio) that
comes :data:`EVENTS_FLUSH_S` (50 ms, one pacer tick) or more after the last flush. While
audio flows a killed process so loses at most about 50 ms of chunk lines, never another
line; the WAV headers are at most :data:`HEADER_FLUSH_S` stale (see
:mod:`voicekit.audio.wav`).

Secrets never reach a bundle: everything written passes :func:`voicekit._secrets.scrub`,
which drops credential fields and masks ``token=`` query parameters (defence in depth: the
session already leaves them out).

Threading: one writer is used from one thread (the session's loop).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from voicekit._secrets import SECRET_KEYS, scrub
from voicekit._version import __version__
from voicekit.audio.wav import WavAppender
from voicekit.errors import LogFormatError

# scrub stays public (voicekit.logformat.scrub); the masking helpers live in voicekit._secrets
__all__ = ["FORMAT", "LogWriter", "scrub"]

FORMAT = "voicekit-log/1"
HEADER_FLUSH_S = 1.0
EVENTS_FLUSH_S = 0.05
# lines written once per audio chunk: flushed at most EVENTS_FLUSH_S later (all others at once)
_CHUNK_DROP = {"input.audio": frozenset({"audio"}), "reply.audio": frozenset({"data"})}
_CHUNK_LINES = frozenset(_CHUNK_DROP)
_NO_KEYS: frozenset[str] = frozenset()
# field values scrub() returns unchanged: write_event skips the call for them
_PLAIN = frozenset({int, float, bool, type(None)})
# field names seen to be no credential (a bounded cache of the SECRET_KEYS test)
_SAFE_KEYS: set[Any] = set()
_SAFE_KEYS_MAX = 4096


def _safe_name(session_id: str) -> str:
    """A session id as one path component: the server chose it, so no ``/`` or ``..``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)[:128].replace("..", "__")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


# json.dumps(x, default=_json_default) builds a JSONEncoder on every call; one is enough
_encode_line = json.JSONEncoder(default=_json_default).encode
# The per-chunk lines are most of a log (one per 50 ms sent, one per chunk received); with
# their usual fields they are formatted directly, as the encoder would write them (same keys
# in the same order, ints as ints, floats by repr, as json does): no dict, no encoder call.
_CHUNK_FIELDS = frozenset({"offset", "samples", "reply_id", "timestamp"})
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.:-]*").fullmatch


def _chunk_text(t: float, direction: str, kind: str, fields: Mapping[str, Any]) -> str | None:
    """A chunk line's JSON text, or None when a field is not of the usual kind."""
    if type(t) is not float or not math.isfinite(t):
        return None
    text = f'{{"t": {t!r}, "dir": "{direction}", "type": "{kind}"'
    drop = _CHUNK_DROP[kind]
    for k, v in fields.items():
        if k not in _CHUNK_FIELDS:
            if k in drop:
                continue  # the base64 payload is never logged
            return None
        kind_of = type(v)
        if kind_of is int:
            text += f', "{k}": {v}'
        elif kind_of is float and math.isfinite(v):
            text += f', "{k}": {v!r}'
        elif kind_of is str and _PLAIN_TEXT(v):
            text += f', "{k}": "{v}"'
        elif v is None:
            text += f', "{k}": null'
        else:
            return None
    return text + "}"


class LogWriter:
    """Writes one session's bundle.

    Parameters
    ----------
    log_dir : str or os.PathLike
        Parent directory of bundles (created if missing).
    meta : dict
        Fields of ``meta.json`` besides those the writer fills in (``format``,
        ``voicekit``, ``started_at``, ``session_id``, ``sample_rate``).
    session_id : str, optional
        When already known.

    Raises
    ------
    LogFormatError
        If the directory cannot be created, saying which and why.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        meta: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> None:
        self.log_dir = Path(log_dir)
        now = datetime.datetime.now(datetime.timezone.utc)
        self._stamp = now.strftime("%Y%m%d-%H%M%S")
        name = f"{self._stamp}-{_safe_name(session_id or 'pending-' + secrets.token_hex(4))}"
        self.path = self.log_dir / name
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise LogFormatError(
                f"cannot create the log bundle {self.path} ({exc.strerror}); pass "
                "log_dir= a writable directory, or log_dir=None to keep no log"
            ) from None
        self.meta: dict[str, Any] = {
            "format": FORMAT,
            "voicekit": __version__,
            "started_at": now.isoformat().replace("+00:00", "Z"),
            "session_id": session_id,
            "sample_rate": 24000,
            **scrub(meta or {}),
        }
        self.meta["format"] = FORMAT
        self._write_meta()
        self._events = (self.path / "events.jsonl").open("a", encoding="utf-8")
        self.user = WavAppender(self.path / "user.wav")
        self.agent = WavAppender(self.path / "agent.wav")
        self._last_flush = time.monotonic()
        self._events_flushed = self._last_flush
        self._events_pending = False
        self.closed = False
        self.lines = 0

    def _write_meta(self) -> None:
        tmp = self.path / "meta.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2, default=_json_default) + "\n")
        os.replace(tmp, self.path / "meta.json")

    def set_session_id(self, session_id: str) -> None:
        """Record the session id and rename the bundle to ``<stamp>-<session id>``."""
        self.meta["session_id"] = session_id
        self._write_meta()
        target = self.log_dir / f"{self._stamp}-{_safe_name(session_id)}"
        if target != self.path and not target.exists():
            try:
                os.replace(self.path, target)
            except OSError:
                return  # keep the provisional name; meta.json has the id
            self.path = target
            self.user.path = target / "user.wav"
            self.agent.path = target / "agent.wav"

    def write_event(self, t: float, direction: str, kind: str, /, **fields: Any) -> None:
        """Append one line ``{"t", "dir", "type", ...fields}`` (see the module's crash safety).

        ``reply.audio`` lines lose their base64 ``data`` (``samples`` is kept) and
        ``input.audio`` lines their ``audio`` (``offset`` and ``samples`` are kept).
        """
        if not self.closed:
            self._write(t, direction, kind, fields)

    def write_fields(self, t: float, direction: str, kind: str, fields: Mapping[str, Any]) -> None:
        """:meth:`write_event` with the fields as a mapping (not changed): the session's
        path, which has the fields as a dict already."""
        if not self.closed:
            self._write(t, direction, kind, fields)

    def _write(self, t: float, direction: str, kind: str, fields: Mapping[str, Any]) -> None:
        chunk_line = kind in _CHUNK_LINES
        text = _chunk_text(t, direction, kind, fields) if chunk_line else None
        if text is None:
            text = self._encode(t, direction, kind, fields, chunk_line)
        self._events.write(text + "\n")
        self.lines += 1
        now = time.monotonic()
        if chunk_line and now - self._events_flushed < EVENTS_FLUSH_S:
            self._events_pending = True
        else:
            self._flush_events(now)
        if now - self._last_flush >= HEADER_FLUSH_S:
            self._flush_audio(now)

    @staticmethod
    def _encode(
        t: float, direction: str, kind: str, fields: Mapping[str, Any], chunk_line: bool
    ) -> str:
        skip = _CHUNK_DROP[kind] if chunk_line else _NO_KEYS
        # {"t", "dir", "type", **scrub(fields)} without scrub's per-value calls for numbers
        out: dict[str, Any] = {"t": t, "dir": direction, "type": kind}
        for k, v in fields.items():
            if k not in _SAFE_KEYS:
                if isinstance(k, str) and k.lower() in SECRET_KEYS:
                    continue
                if len(_SAFE_KEYS) < _SAFE_KEYS_MAX:
                    _SAFE_KEYS.add(k)
            if k in skip:
                continue
            out[k] = v if type(v) in _PLAIN else scrub(v)
        return str(_encode_line(out))

    def flush(self) -> None:
        """Flush the lines written so far to the OS (the writer also does so by itself)."""
        if not self.closed:
            self._flush_events(time.monotonic())

    def _flush_events(self, now: float) -> None:
        self._events.flush()
        self._events_flushed = now
        self._events_pending = False

    def write_user_audio(self, offset: int, samples: ArrayLike) -> None:
        """User audio sent at session sample ``offset``."""
        if not self.closed:
            self.user.write_at(offset, samples)
            self._maybe_flush()

    def write_agent_audio(self, offset: int, samples: ArrayLike) -> None:
        """Agent audio played at session sample ``offset``."""
        if not self.closed:
            self.agent.write_at(offset, samples)
            self._maybe_flush()

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if self._events_pending and now - self._events_flushed >= EVENTS_FLUSH_S:
            self._flush_events(now)
        if now - self._last_flush >= HEADER_FLUSH_S:
            self._flush_audio(now)

    def _flush_audio(self, now: float) -> None:
        self._last_flush = now
        self.user.flush()
        self.agent.flush()

    def close(self) -> None:
        """Flush and close every file, then write the events' columnar copy
        (``events.parquet``, see :mod:`voicekit.logformat.columnar`). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._events.close()
        self.user.close()
        self.agent.close()
        from voicekit.logformat.columnar import write_copy

        with contextlib.suppress(Exception):  # only a cache: a reader makes it again
            write_copy(self.path)
