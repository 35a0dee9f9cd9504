"""Reading ``voicekit-log/1`` bundles: :class:`SessionLog` and :func:`load_log`.

Format layer: standard library, numpy and pyarrow; pandas is imported when a DataFrame is
asked for. Audio is never loaded unless asked (:meth:`SessionLog.audio`). The events are
read into an :class:`~voicekit.logformat.columnar.EventTable` (the per-chunk lines as
columns, from the bundle's ``events.parquet`` copy when it is current; see
:mod:`voicekit.logformat.columnar`).

Damage is survivable, and readable data is never dropped: a line that is not JSON (a
truncated last line after a crash, or a corrupt one) is skipped with a
:class:`LogFormatWarning` naming ``file:line``; WAV headers are repaired from the file size
in memory; events out of time order are sorted (stably) with a warning. What cannot be read
at all — a missing ``meta.json`` or ``events.jsonl``, an unknown format — raises
:class:`voicekit.LogFormatError` naming the file and what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicekit.errors import ConfigError, LogFormatError
from voicekit.logformat.columnar import EventTable, LogFormatWarning, read_events
from voicekit.logformat.writer import FORMAT

__all__ = ["SUPPORTED_FORMATS", "LogFormatWarning", "SessionLog", "as_log", "load_log"]

SUPPORTED_FORMATS = (FORMAT,)


class SessionLog:
    """One session's log bundle, read back.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle directory.

    Attributes
    ----------
    path : Path
    meta : dict
        ``meta.json``.
    raw_events : list of dict
        The lines of ``events.jsonl`` (``t``, ``dir``, ``type``, fields), in time order;
        made on first use (the analysis reads :attr:`event_table` instead, which holds the
        per-chunk lines as columns), so opening a thousand bundles reads only their
        ``meta.json``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            hint = (
                "; for a call recording use vk.load_recording(path)" if self.path.is_file() else ""
            )
            raise LogFormatError(
                "not a log bundle directory; pass the directory that holds "
                f"meta.json and events.jsonl{hint}",
                str(self.path),
            )
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise LogFormatError("missing; is this a voicekit log bundle?", str(meta_path))
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LogFormatError(f"not valid JSON ({exc})", str(meta_path)) from None
        if not isinstance(meta, dict):
            raise LogFormatError("must hold a JSON object", str(meta_path))
        fmt = meta.get("format")
        if fmt not in SUPPORTED_FORMATS:
            raise LogFormatError(
                f"unknown format {fmt!r}; this voicekit reads {', '.join(SUPPORTED_FORMATS)}; "
                "upgrade voicekit to read newer logs",
                str(meta_path),
            )
        self.meta: dict[str, Any] = meta
        events_path = self.path / "events.jsonl"
        if not events_path.exists():
            raise LogFormatError("missing; the bundle has no events", str(events_path))
        self._events_path = events_path
        self._raw: list[dict[str, Any]] | None = None
        self._frames: dict[str, Any] = {}

    @property
    def event_table(self) -> EventTable:
        """The events, the per-chunk lines as columns (read on first use)."""
        table: EventTable = self.memo("event_table", self._read_table)
        return table

    def _read_table(self) -> EventTable:
        """The events of ``events.jsonl``, by way of its columnar copy; logs that make their
        events in memory override this."""
        return read_events(self._events_path)

    @property
    def raw_events(self) -> list[dict[str, Any]]:
        """The lines of ``events.jsonl`` as dicts, made (and cached) on first use."""
        if self._raw is None:
            self._raw = self.event_table.dicts()
        return self._raw

    def __repr__(self) -> str:
        return (
            f"<SessionLog {self.path.name} events={len(self.event_table)} "
            f"duration={self.duration:.1f}s>"
        )

    @property
    def session_id(self) -> str | None:
        """The server's session id."""
        sid = self.meta.get("session_id")
        return str(sid) if sid else None

    @property
    def started_at(self) -> str | None:
        """ISO-8601 UTC start time."""
        value = self.meta.get("started_at")
        return str(value) if value else None

    @property
    def backend(self) -> str | None:
        """``local``, ``assemblyai`` or ``url``."""
        value = self.meta.get("backend")
        return str(value) if value else None

    @property
    def config(self) -> dict[str, Any]:
        """The first session config (wire form)."""
        value = self.meta.get("config")
        return value if isinstance(value, dict) else {}

    @property
    def duration(self) -> float:
        """Seconds from the first to the last event."""
        t = self.event_table.t
        return float(t[-1]) if len(t) else 0.0

    @property
    def events(self) -> Any:
        """The events as a pandas DataFrame (``t``, ``dir``, ``type`` and the fields)."""
        if "events" not in self._frames:
            import pandas as pd

            frame = pd.DataFrame.from_records(self.raw_events)
            for col in ("t", "dir", "type"):
                if col not in frame:
                    frame[col] = pd.Series(dtype=float if col == "t" else object)
            self._frames["events"] = frame
        return self._frames["events"]

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` computed once per log and kept with it (derived tables, speech
        segments): what several analyses of one log read is worked out once."""
        if key not in self._frames:
            self._frames[key] = make()
        return self._frames[key]

    def of_type(self, *types: str, direction: str | None = None) -> list[dict[str, Any]]:
        """The raw events of the given types (and direction), in time order."""
        return self.event_table.of_type(*types, direction=direction)

    def columns(self, kind: str) -> Mapping[str, Any]:
        """The lines of one per-chunk type (``input.audio``, ``reply.audio``) as numpy
        columns (see :meth:`voicekit.logformat.columnar.EventTable.columns`): what the
        analysis sums without making a dict per chunk."""
        return self.event_table.columns(kind)

    @property
    def user_audio(self) -> NDArray[np.int16]:
        """``user.wav`` samples (24 kHz int16), loaded on first use."""
        if "user_audio" not in self._frames:
            self._frames["user_audio"] = self.audio("user")[0]
        audio: NDArray[np.int16] = self._frames["user_audio"]
        return audio

    @property
    def agent_audio(self) -> NDArray[np.int16]:
        """``agent.wav`` samples (24 kHz int16, as played), loaded on first use."""
        if "agent_audio" not in self._frames:
            self._frames["agent_audio"] = self.audio("agent")[0]
        audio: NDArray[np.int16] = self._frames["agent_audio"]
        return audio

    def track_samples(self, track: str) -> NDArray[np.int16]:
        """One track, ``"user"`` or ``"agent"`` (24 kHz int16), without reading it: the
        bundle's WAV by memory map (empty when it has none). Analysis and plots read audio
        spans through this; readers of other sources (a call recording) override it."""
        from voicekit.audio.wav import HEADER_BYTES

        if track not in ("user", "agent"):
            raise LogFormatError(f"track ({track!r}) must be 'user' or 'agent'")
        path = self.path / f"{track}.wav"
        if path.is_file() and path.stat().st_size > HEADER_BYTES + 1:
            n = (path.stat().st_size - HEADER_BYTES) // 2
            return np.memmap(path, np.dtype("<i2"), "r", HEADER_BYTES, (n,))
        return np.zeros(0, np.int16)

    def agent_samples(self) -> NDArray[np.int16]:
        """The agent track as played (:meth:`track_samples` of ``"agent"``): what the
        analysis reads replies' audible spans from."""
        return self.track_samples("agent")

    @property
    def turns(self) -> Any:
        """The turn table: one row a user turn (see :func:`voicekit.analysis.turn_table`)."""
        if "turns" not in self._frames:
            from voicekit.analysis import turn_table

            self._frames["turns"] = turn_table(self)
        return self._frames["turns"]

    @property
    def replies(self) -> Any:
        """One row an agent reply (see :func:`voicekit.analysis.reply_table`)."""
        if "reply_table" not in self._frames:
            from voicekit.analysis import reply_table

            self._frames["reply_table"] = reply_table(self)
        return self._frames["reply_table"]

    @property
    def barge_ins(self) -> Any:
        """One row a barge-in (see :func:`voicekit.analysis.barge_in_table`)."""
        if "barge_ins" not in self._frames:
            from voicekit.analysis import barge_in_table

            self._frames["barge_ins"] = barge_in_table(self)
        return self._frames["barge_ins"]

    def summary(self) -> dict[str, Any]:
        """Medians, p90s and counts of the turn table, barge-ins and replies; the first
        session's greeting latency and how often the session restarted (a fresh server
        session after a failed resume, in the same bundle)."""
        from voicekit.analysis import greeting_latency, summarize

        return {
            **summarize(self.turns, self.barge_ins, self.replies),
            "greeting_latency": greeting_latency(self),
            "restarts": len(self.of_type("session.restarted")),
        }

    def audio(self, track: str = "user") -> tuple[NDArray[np.int16], int]:
        """One audio track, ``"user"`` or ``"agent"``, as (int16 samples, rate).

        Loaded on demand; a header cut off by a crash is repaired in memory.
        """
        from voicekit.audio.wav import read_wav
        from voicekit.errors import AudioError

        if track not in ("user", "agent"):
            raise LogFormatError(f"track ({track!r}) must be 'user' or 'agent'")
        path = self.path / f"{track}.wav"
        if not path.exists():
            return np.zeros(0, np.int16), 24000
        try:
            return read_wav(path)
        except AudioError as exc:
            raise LogFormatError(str(exc), str(path)) from None


def load_log(path: str | os.PathLike[str]) -> SessionLog:
    """Read a log bundle (see :class:`SessionLog`).

    Raises
    ------
    LogFormatError
        If the bundle cannot be read at all, naming the file and what to do.
    """
    return SessionLog(path)


def as_log(value: Any, field: str = "log") -> SessionLog:
    """``value`` as a :class:`SessionLog`: a log as it is, a bundle path loaded.

    Raises
    ------
    ConfigError
        If ``value`` is neither, naming ``field`` and what to pass.
    """
    if isinstance(value, SessionLog):
        return value
    if isinstance(value, (str, os.PathLike)):
        return load_log(value)
    raise ConfigError(
        f"{field} must be a vk.SessionLog (what session.stop() and vk.load_log(path) return) "
        f"or the path of a log bundle, got {type(value).__name__}",
        field=field,
    )
