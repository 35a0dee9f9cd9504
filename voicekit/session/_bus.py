"""Where a session's log lines go: the bundle, the audio source, observers, subscribers.

Runtime layer, private. Every line of a session (``recv``, ``send`` and ``local``) is made
once, as a :class:`LogLine`, on the session's loop thread, and handed to:

1. the log writer (inline: the bundle is the record, written as things happen);
2. the audio source's ``on_event`` (inline: a scripted user follows the agent's replies to
   time its barge-ins; it only updates counters);
3. the observers registered with ``Session.on`` — on their own thread, fed by a queue, so a
   slow or blocking observer delays other observers but never the audio path (the pattern
   of Pipecat's observer workers);
4. the iterators of ``Session.events()`` (thread-safe queues).

Must not import websockets, the session facade, analysis or widgets.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["Bus", "LogLine", "Observer"]

log = logging.getLogger("voicekit.session")

_HEAD = ("t", "dir", "type")


class LogLine(Mapping[str, Any]):
    """One line of a session's log, as observers and ``Session.events()`` receive it.

    A read-only mapping with the same keys as the ``events.jsonl`` line (``t``, ``dir``,
    ``type`` and the event's fields), plus typed attributes.

    Attributes
    ----------
    t : float
        Seconds on the session clock.
    dir : {"recv", "send", "local"}
        Received from the agent, sent to it, or voicekit's own record.
    type : str
        The event type (``"transcript.user"``, ``"playback.stop"``, ...).
    fields : dict
        The line's fields (for ``reply.audio``: ``reply_id`` and ``samples``, not the audio).
    event : voicekit.protocol.events.Event or None
        For received lines, the parsed protocol event (``line.event.text`` of a
        ``TranscriptUser``); ``None`` for ``send`` and ``local`` lines.
    """

    __slots__ = ("dir", "event", "fields", "t", "type")

    def __init__(
        self, t: float, dir: str, type: str, fields: dict[str, Any], event: Any = None
    ) -> None:
        self.t = t
        self.dir = dir
        self.type = type
        self.fields = fields
        self.event = event

    def __getitem__(self, key: str) -> Any:
        if key == "t":
            return self.t
        if key == "dir":
            return self.dir
        if key == "type":
            return self.type
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        yield from _HEAD
        yield from self.fields

    def __len__(self) -> int:
        return 3 + len(self.fields)

    def __contains__(self, key: object) -> bool:
        return key in _HEAD or key in self.fields

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        if key in _HEAD:
            return self[key]
        return self.fields.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The line as a plain dict, as ``events.jsonl`` holds it."""
        return {"t": self.t, "dir": self.dir, "type": self.type, **self.fields}

    def __repr__(self) -> str:
        return f"LogLine({self.to_dict()!r})"


Observer = Callable[[LogLine], None]


class Bus:
    """Fan-out of a session's log lines (see the module docstring).

    Parameters
    ----------
    clock : callable
        Seconds on the session clock.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.writer: Any = None  # a LogWriter, set when the bundle is opened
        self.source: Any = None  # the audio source, whose on_event follows the agent
        self._lock = threading.Lock()
        self._observers: dict[str, list[Observer]] = {}
        self._any = False
        self._subscribers: list[queue.SimpleQueue[LogLine | None]] = []
        self._queue: queue.SimpleQueue[tuple[LogLine, list[Observer]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started with the first observed line
        self._closed = False

    # -- registration (any thread) --------------------------------------------------------
    def on(self, kind: str, fn: Observer) -> None:
        """Call ``fn(line)`` on the observer thread for every line of ``kind`` (``"*"``: all)."""
        with self._lock:
            self._observers.setdefault(kind, []).append(fn)
            self._any = True

    def subscribe(self, timeout: float | None) -> Iterator[LogLine]:
        """Lines from the moment of this call, until :meth:`close` or ``timeout`` seconds
        without one (registered at once, not at the first ``next()``)."""
        q: queue.SimpleQueue[LogLine | None] = queue.SimpleQueue()
        with self._lock:
            if self._closed:
                return iter(())
            self._subscribers.append(q)
        return self._drain(q, timeout)

    def _drain(
        self, q: queue.SimpleQueue[LogLine | None], timeout: float | None
    ) -> Iterator[LogLine]:
        try:
            while True:
                try:
                    item = q.get(timeout=timeout)
                except queue.Empty:
                    return
                if item is None:
                    return
                yield item
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(q)

    # -- emitting (the session's loop thread) -------------------------------------------------
    def emit(self, direction: str, kind: str, fields: dict[str, Any], event: Any = None) -> LogLine:
        """Make, write and dispatch one line."""
        line = LogLine(round(self.clock(), 6), direction, kind, fields, event)
        if self.writer is not None:
            self.writer.write_fields(line.t, direction, kind, fields)
        if direction != "send" and self.source is not None:
            try:
                self.source.on_event(line)
            except Exception:
                log.exception("voicekit: the audio source failed on %s", kind)
        if self._any:
            observers = self._observers.get(kind, []) + self._observers.get("*", [])
            if observers and not self._closed:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="voicekit-observers", daemon=True
                    )
                    self._thread.start()
                self._queue.put((line, observers))
        if self._subscribers:
            for q in list(self._subscribers):
                q.put(line)
        return line

    def local(self, kind: str, /, **fields: Any) -> LogLine:
        """A ``local`` line (voicekit's own record)."""
        return self.emit("local", kind, fields)

    def close(self, timeout: float = 2.0) -> None:
        """End the subscribers' iterators; let observers see every line already emitted
        (waiting at most ``timeout`` s for a slow one), then end the observer thread."""
        with self._lock:
            subscribers, thread = list(self._subscribers), self._thread
            self._thread, self._closed = None, True
        for q in subscribers:
            q.put(None)
        if thread is not None:
            self._queue.put(None)
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            line, observers = item
            for fn in observers:
                try:
                    fn(line)
                except Exception:
                    log.exception("voicekit: observer %r of %s raised", fn, line.type)
