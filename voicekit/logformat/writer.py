"""Writing a ``voicekit-log/1`` bundle while a session runs.

Format layer: imports the standard library, numpy, ``voicekit.audio.wav``,
``voicekit._secrets`` and ``voicekit.errors`` only; never the session, protocol, analysis
or widgets.

A bundle is a directory ``<YYYYmmdd-HHMMSS>-<session id>`` holding ``meta.json``,
``events.jsonl`` (one JSON object a line, flushed as written) and the two audio tracks
``user.wav`` / ``agent.wav`` on the session clock. The session id is known only after
``session.ready``: the directory starts as ``<stamp>-pending-<random>`` and is renamed when
:meth:`LogWriter.set_session_id` is called (files stay open across the rename on POSIX).

Secrets never reach a bundle: everything written passes :func:`voicekit._secrets.scrub`,
which drops credential fields and masks ``token=`` query parameters (defence in depth: the
session already leaves them out).

Threading: one writer is used from one thread (the session's loop).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from voicekit._secrets import scrub
from voicekit._version import __version__
from voicekit.audio.wav import WavAppender
from voicekit.errors import LogFormatError

# scrub stays public (voicekit.logformat.scrub); the masking helpers live in voicekit._secrets
__all__ = ["FORMAT", "LogWriter", "scrub"]

FORMAT = "voicekit-log/1"
HEADER_FLUSH_S = 1.0


def _safe_name(session_id: str) -> str:
    """A session id as one path component: the server chose it, so no ``/`` or ``..``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)[:128].replace("..", "__")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


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
        """Append one line ``{"t", "dir", "type", ...fields}`` and flush it.

        ``reply.audio`` lines lose their base64 ``data`` (``samples`` is kept) and
        ``input.audio`` lines their ``audio`` (``offset`` and ``samples`` are kept).
        """
        if self.closed:
            return
        if kind == "reply.audio":
            fields.pop("data", None)
        elif kind == "input.audio":
            fields.pop("audio", None)
        line = {"t": t, "dir": direction, "type": kind, **scrub(fields)}
        self._events.write(json.dumps(line, default=_json_default) + "\n")
        self._events.flush()
        self.lines += 1
        self._maybe_flush_audio()

    def write_user_audio(self, offset: int, samples: ArrayLike) -> None:
        """User audio sent at session sample ``offset``."""
        if not self.closed:
            self.user.write_at(offset, samples)
            self._maybe_flush_audio()

    def write_agent_audio(self, offset: int, samples: ArrayLike) -> None:
        """Agent audio played at session sample ``offset``."""
        if not self.closed:
            self.agent.write_at(offset, samples)
            self._maybe_flush_audio()

    def _maybe_flush_audio(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= HEADER_FLUSH_S:
            self._last_flush = now
            self.user.flush()
            self.agent.flush()

    def close(self) -> None:
        """Flush and close every file. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._events.close()
        self.user.close()
        self.agent.close()
