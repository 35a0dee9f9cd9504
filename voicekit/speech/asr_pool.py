"""Speech recognition in helper processes, off the agent's interpreter lock.

Speech layer; no asyncio, no sockets.

pocketsphinx's Python binding keeps the interpreter lock while it decodes: ~1.6 ms per 32 ms
frame and ~90 ms to end an utterance, during which no other thread of the process runs —
the loop that paces every session's reply audio included. Measured on the 2-core machine:
a thread ticking every 1 ms lags p99 57 ms, max 86 ms, while one recogniser runs; one agent
held a single real-time session before reply pacing jitter p99 passed 20 ms.

An :class:`AsrPool` runs recognisers in a few child processes (:func:`child_main` in a new
interpreter; two pipes, passed as file descriptors), each hosting the
decoders of the sessions assigned to it (the least busy one). A :class:`RemoteRecognizer`
has the :class:`~voicekit.speech.asr.Recognizer` interface and forwards every call over
its child's pipes, blocking the calling worker thread without holding the lock. A child ends
when its request pipe closes — when the pool closes, or when the agent's process dies. The
children run at a lower CPU priority (``NICE``) than audio work: with recognition in parallel
on both cores, a sound server's real-time capture glitched and the recogniser heard garbage.

Threading: calls to one child are serialized by its lock (a child decodes one request at a
time); a :class:`RemoteRecognizer`, like a ``Recognizer``, is used from one thread at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from voicekit.errors import AudioError

__all__ = ["AsrPool", "RemoteRecognizer"]

NICE = 10  # the children's CPU priority, relative to the agent's process


class _Child:
    """One recognition process and the two pipes to it."""

    def __init__(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(req_r), str(rep_w)],
                pass_fds=(req_r, rep_w),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (req_r, req_w, rep_r, rep_w):
                os.close(fd)
            raise
        os.close(req_r)
        os.close(rep_w)
        self.requests = Connection(req_w, readable=False)
        self.replies = Connection(rep_r, writable=False)
        self.lock = threading.Lock()
        self.sessions = 0
        self.to_close: list[int] = []  # recognisers released, closed on the next call

    def call(self, key: int, op: str, *args: Any) -> Any:
        with self.lock:
            try:
                while self.to_close:
                    self.requests.send((self.to_close.pop(), "close", ()))
                    self.replies.recv()
                self.requests.send((key, op, args))
                ok, value = self.replies.recv()
            except (OSError, EOFError):
                raise AudioError(
                    f"the speech recognition process exited (code {self.proc.poll()}); "
                    "restart the agent"
                ) from None
        if not ok:
            raise AudioError(f"speech recognition failed: {value}")
        return value

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.requests.close()
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.replies.close()


class RemoteRecognizer:
    """A :class:`~voicekit.speech.asr.Recognizer` living in a pool's child process.

    Same methods (``start``, ``feed``, ``finish``, ``set_keyterms``, ``transcribe``) and
    ``keyterms``; :meth:`close` releases the decoder (~90 MB in the child).
    """

    def __init__(self, child: _Child, key: int, keyterms: Sequence[str], stock: bool) -> None:
        self._child, self._key = child, key
        self.keyterms: tuple[str, ...] = child.call(key, "open", tuple(keyterms), stock)
        self._closed = False

    def _call(self, op: str, *args: Any) -> Any:
        value, self.keyterms = self._child.call(self._key, op, *args)
        return value

    def set_keyterms(self, keyterms: Sequence[str]) -> None:
        """Use the model for these key terms from the next utterance on."""
        self._call("set_keyterms", tuple(keyterms))

    def start(self) -> None:
        """Begin an utterance."""
        self._call("start")

    def feed(self, pcm16: bytes) -> str | None:
        """Feed 16 kHz PCM16 bytes; returns the partial transcript (None before a word)."""
        result: str | None = self._call("feed", pcm16)
        return result

    def finish(self) -> str:
        """End the utterance; returns its final transcript."""
        return str(self._call("finish"))

    def transcribe(self, pcm16: bytes) -> str:
        """Recognise one whole utterance."""
        return str(self._call("transcribe", pcm16))

    def close(self) -> None:
        """Release the decoder (without waiting: it is closed with the child's next call)."""
        if not self._closed:
            self._closed = True
            self._child.sessions -= 1
            self._child.to_close.append(self._key)


class AsrPool:
    """Child processes that host recognisers; :meth:`recognizer` hands one out.

    Parameters
    ----------
    processes : int
        How many children (started now, ~0.3 s each, in parallel).
    """

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes ({processes}) must be at least 1")
        self._children = [_Child() for _ in range(processes)]
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False

    def recognizer(
        self, keyterms: Sequence[str] = (), stock_model: bool = False
    ) -> RemoteRecognizer:
        """A new recogniser in the least busy child (call from a worker thread)."""
        with self._lock:
            if self.closed:
                raise AudioError("the agent's speech recognition has shut down")
            child = min(self._children, key=lambda c: c.sessions)
            child.sessions += 1
            key = next(self._keys)
        try:
            return RemoteRecognizer(child, key, keyterms, stock_model)
        except BaseException:
            child.sessions -= 1
            raise

    def close(self) -> None:
        """End every child (each finishes its current request first). Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for child in self._children:
            child.close()

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The recognition child processes, in pool order (for tests and tools)."""
        return [child.proc for child in self._children]

    def session_counts(self) -> list[int]:
        """Recognisers open in each child process, in the order of :attr:`processes`."""
        with self._lock:
            return [child.sessions for child in self._children]


# -- the child process ---------------------------------------------------------------------
def _serve(requests: Connection, replies: Connection) -> None:
    from voicekit.speech import asr

    recognizers: dict[int, asr.Recognizer] = {}
    spare: asr.Recognizer | None = None  # made while idle: a session opens without waiting
    make_spares = True
    while True:
        if make_spares and spare is None and not requests.poll(0):
            try:
                spare = asr.Recognizer()
            except Exception:  # "open" reports the same failure to the caller
                make_spares = False
        try:
            key, op, args = requests.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "open":
                if spare is not None and not args[0] and not args[1]:
                    rec, spare = spare, None
                else:
                    rec = asr.Recognizer(args[0], stock_model=args[1])
                recognizers[key] = rec
                value: Any = rec.keyterms
            elif op == "close":
                recognizers.pop(key, None)
                value = None
            else:
                rec = recognizers[key]
                value = (getattr(rec, op)(*args), rec.keyterms)
            replies.send((True, value))
        except Exception as exc:  # reported to the caller, the child goes on
            replies.send((False, f"{type(exc).__name__}: {exc}"))


def child_main(requests_fd: int, replies_fd: int) -> None:
    """A recognition process: serve requests until the request pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the agent's to handle
    # below audio work (the agent's pacing loop, sound servers, the client's devices): on a
    # busy machine a transcript may come later, but no audio stutters
    os.nice(NICE)
    # the language models it opens stay in the per-user cache for the next process
    # (voicekit.speech.asr.cache_dir); a temporary fallback folder removes itself at exit
    _serve(Connection(requests_fd, writable=False), Connection(replies_fd, readable=False))


_CHILD = (
    "import sys; from voicekit.speech.asr_pool import child_main; "
    "child_main(int(sys.argv[1]), int(sys.argv[2]))"
)
