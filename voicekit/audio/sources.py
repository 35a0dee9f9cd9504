"""Audio sources: where the user's side of a conversation comes from.

Runtime layer. A source produces 24 kHz int16 mono audio for a :class:`voicekit.Session`.
Two kinds, told apart by :attr:`Source.paced`:

- **paced** sources (silence, a WAV file, a numpy array, a scripted user) are asked for
  audio by the session's real-time pacer: every 50 ms, on the session's loop thread, the
  pacer calls :meth:`Source.generate` for the next block. They must return quickly and
  never block.
- **push** sources (a microphone, the browser) deliver audio from their own threads by
  calling :meth:`AudioLink.push`; that method is thread-safe and never blocks.

Offsets are sample indices on the session clock (``t = offset / 24000``), the index into
the log's ``user.wav``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.pcm import CHUNK_MS, SAMPLE_RATE
from voicekit.errors import AudioError

__all__ = [
    "SAMPLE_RATE",
    "XRUN_FLAGS",
    "ArraySource",
    "AudioLink",
    "MicSource",
    "NullSource",
    "Source",
    "XrunCounter",
    "close_stream",
    "make_source",
]

BLOCK = SAMPLE_RATE * CHUNK_MS // 1000  # 1200 samples: 50 ms at 24 kHz

Int16 = NDArray[np.int16]


class AudioLink:
    """What a source or sink may use of its session: the clock, the loop, a push channel.

    Created by the session. ``push`` may be called from any thread (device callbacks);
    everything else must be used on the session's loop thread.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The session's loop.
    clock : callable
        Seconds on the session clock.
    on_push : callable
        Called on the loop thread with ``(samples, offset)`` for pushed audio.
    emit : callable, optional
        Writes a ``local`` log line ``emit(type, **fields)`` (loop thread only); scripted
        users log their ground truth (``user.utterance``) through it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float],
        on_push: Callable[[Int16, int], None],
        emit: Callable[..., object] | None = None,
    ) -> None:
        self.loop = loop
        self.now = clock
        self._on_push = on_push
        self.emit: Callable[..., object] = emit or (lambda type_, **fields: None)
        self._lock = threading.Lock()
        self._next_offset: int | None = None

    def push(self, samples: Int16, offset: int | None = None) -> None:
        """Hand captured audio to the session (thread-safe, never blocks).

        Parameters
        ----------
        samples : ndarray of int16
            A copy the caller will not touch again.
        offset : int, optional
            Sample index on the session clock of the first sample; by default the
            audio continues right after the previous push (the first push starts now).
        """
        with self._lock:
            if offset is None:
                if self._next_offset is None:
                    self._next_offset = round(self.now() * SAMPLE_RATE)
                offset = self._next_offset
            self._next_offset = offset + len(samples)
        # a closed loop means the session has stopped: drop quietly
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._on_push, samples, offset)


XRUN_FLAGS = (
    "input_underflow",
    "input_overflow",
    "output_underflow",
    "output_overflow",
    "priming_output",
)  # the flags of sounddevice.CallbackFlags, in PortAudio's bit order
XRUN_REPORT_S = 1.0  # at most one audio.xrun line per device per this many seconds


def close_stream(stream: Any, xruns: XrunCounter | None) -> None:
    """Stop and close a PortAudio stream (if any), then log its xruns not yet logged."""
    if stream is not None:
        stream.stop()
        stream.close()
    if xruns is not None:
        xruns.close()


class XrunCounter:
    """Counts the status flags PortAudio passes to a stream callback; logs them from the loop.

    A device callback calls :meth:`count` with its ``status`` (a
    ``sounddevice.CallbackFlags``): that adds to a few integers and, at the first flag
    since the last report, asks the session's loop for one (``call_soon_threadsafe``); it
    never blocks. On the loop, :meth:`report` writes one ``audio.xrun`` line with what was
    counted since the previous line, e.g. ``{"type": "audio.xrun", "dir": "local",
    "device": "output", "flags": ["output_underflow"], "count": 3}`` (``count``: callbacks
    that reported a flag). Bursts are coalesced: at most one line per device every
    :data:`XRUN_REPORT_S` seconds.

    Parameters
    ----------
    link : AudioLink
        The session's link (its loop, and ``emit`` for the log line).
    device : {"input", "output"}
        Which side of the sound device the stream is.
    """

    def __init__(self, link: AudioLink, device: str) -> None:
        self.link = link
        self.device = device
        self.counts = [0] * len(XRUN_FLAGS)  # written by the callback only
        self.calls = 0  # callbacks with any flag set
        self._reported = [0] * len(XRUN_FLAGS)
        self._reported_calls = 0
        self._asked = False
        self._next_report = 0.0
        self._closed = False

    def count(self, status: Any) -> None:
        """Add a callback's status flags (PortAudio's thread; never blocks)."""
        if not status:
            return
        for i, name in enumerate(XRUN_FLAGS):
            if getattr(status, name, False):
                self.counts[i] += 1
        self.calls += 1
        if not self._asked:
            self._asked = True
            with contextlib.suppress(RuntimeError):  # the loop has closed: the session ended
                self.link.loop.call_soon_threadsafe(self.report)

    def report(self) -> None:
        """Write what was counted since the last line (loop thread); at most one line per
        :data:`XRUN_REPORT_S`, later ones are deferred."""
        if self._closed:
            return
        wait = self._next_report - self.link.loop.time()
        if wait > 0:
            self.link.loop.call_later(wait, self.report)
            return
        self._asked = False  # before reading: a flag counted from now on asks again
        calls, counts = self.calls, list(self.counts)
        if calls == self._reported_calls:
            return
        flags = [n for n, c, r in zip(XRUN_FLAGS, counts, self._reported, strict=True) if c > r]
        self.link.emit(
            "audio.xrun", device=self.device, flags=flags, count=calls - self._reported_calls
        )
        self._reported, self._reported_calls = counts, calls
        self._next_report = self.link.loop.time() + XRUN_REPORT_S

    def close(self) -> None:
        """Report what is left, now, and stop (loop thread; the stream has stopped)."""
        self._next_report = 0.0
        self.report()
        self._closed = True


class Source:
    """Base class of audio sources (see the module docstring for the two kinds).

    Subclasses override :meth:`generate` (paced) or :meth:`start`/:meth:`stop` (push).
    """

    paced: bool = True

    def start(self, link: AudioLink) -> None:
        """Called on the session's loop thread once the session is ready for audio."""

    def stop(self) -> None:
        """Called on the session's loop thread when the session stops; must not block long."""

    def generate(self, offset: int, n: int) -> Int16:
        """Return exactly ``n`` samples starting at session sample ``offset`` (paced only)."""
        return np.zeros(n, np.int16)

    def on_event(self, event: dict[str, Any]) -> None:
        """Observe a session event (a log line as a dict), on the loop thread. Default: ignore."""

    def describe(self) -> str:
        """A short description for the log's ``meta.json`` (``audio_in``)."""
        return type(self).__name__


class NullSource(Source):
    """Silence in real time (the agent hears nothing; useful for greetings and ``say()``)."""

    def describe(self) -> str:
        """``"null"``."""
        return "null"


class ArraySource(Source):
    """Play a numpy array or a WAV file once, in real time, then silence.

    Parameters
    ----------
    audio : ndarray, str or os.PathLike
        Mono samples (int16, or float in [-1, 1]) or a WAV path.
    sample_rate : int, optional
        Rate of ``audio`` when it is an array (default 24000); WAV files carry their own.
    start_s : float
        Session time at which playback starts (default 0: as soon as audio flows).
    """

    def __init__(
        self,
        audio: NDArray[Any] | str | os.PathLike[str],
        sample_rate: int = SAMPLE_RATE,
        start_s: float = 0.0,
    ) -> None:
        from voicekit.audio.resample import resample

        if isinstance(audio, (str, os.PathLike)):
            from voicekit.audio.wav import read_wav

            path = Path(audio)
            if not path.exists():
                raise AudioError(f"audio_in file {str(path)!r} does not exist; pass a WAV path")
            data, sample_rate = read_wav(path)
            self._name = path.name
        else:
            data = np.asarray(audio)
            self._name = f"array[{len(data)}@{sample_rate}]"
        if data.ndim != 1:
            raise AudioError(f"audio_in array must be mono (1-D), got shape {data.shape}")
        if data.dtype.kind == "f":
            data = np.clip(np.round(data * 32767.0), -32768, 32767).astype(np.int16)
        elif data.dtype != np.int16:
            raise AudioError(f"audio_in array must be int16 or float, got {data.dtype}")
        self.samples: Int16 = resample(data, sample_rate, SAMPLE_RATE)
        self.start_s = start_s
        self._origin: int | None = None

    def generate(self, offset: int, n: int) -> Int16:
        """The next ``n`` samples of the clip (zeros outside it)."""
        if self._origin is None:
            self._origin = offset + round(self.start_s * SAMPLE_RATE)
        lo = offset - self._origin
        if lo >= 0 and lo + n <= len(self.samples):
            return self.samples[lo : lo + n]  # inside the clip: a view, nothing allocated
        out = np.zeros(n, np.int16)
        a, b = max(lo, 0), min(lo + n, len(self.samples))
        if a < b:
            out[a - lo : b - lo] = self.samples[a:b]
        return out

    def describe(self) -> str:
        """The file name or the array's length and rate."""
        return self._name


class MicSource(Source):
    """A microphone through PortAudio: 24 kHz int16 mono in 50 ms blocks.

    Parameters
    ----------
    device : int or str, optional
        Device index or part of its name (see :func:`voicekit.list_devices`); default:
        the system's default input.

    Notes
    -----
    Threading: PortAudio calls the stream callback on its own thread. The callback only
    copies the block and hands it to the session with ``AudioLink.push`` (which uses
    ``loop.call_soon_threadsafe``); it never blocks and allocates one small array. Input
    overflows and other status flags are counted there and logged from the loop as
    ``audio.xrun`` lines (:class:`XrunCounter`).
    """

    paced = False

    def __init__(self, device: int | str | None = None) -> None:
        self.device = device
        self._stream: Any = None
        self._xruns: XrunCounter | None = None

    def start(self, link: AudioLink) -> None:
        """Open and start the input stream."""
        from voicekit.audio.devices import resolve_device, sounddevice

        sd = sounddevice()
        index = resolve_device(self.device, "input")
        xruns = self._xruns = XrunCounter(link, "input")

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            xruns.count(status)
            link.push(indata[:, 0].copy())

        try:
            self._stream = sd.InputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=BLOCK,
                device=index,
                callback=callback,
            )
            self._stream.start()
        except Exception as exc:
            raise AudioError(
                f"cannot open input device {self.device!r} at 24000 Hz: {exc}; "
                'pick another with device=..., or pass audio_in="null"'
            ) from exc

    def stop(self) -> None:
        """Stop and close the stream; log the xruns not yet logged."""
        close_stream(self._stream, self._xruns)
        self._stream = self._xruns = None

    def describe(self) -> str:
        """``"mic"`` or ``"mic:<device>"``."""
        return "mic" if self.device is None else f"mic:{self.device}"


def make_source(spec: Any, device: int | str | None = None) -> Source:
    """Build a source from what a user passes as ``audio_in``.

    Parameters
    ----------
    spec : str, path, ndarray or Source
        ``"mic"``, ``"null"``, a WAV path, a numpy array (24 kHz), any :class:`Source`
        (a :class:`voicekit.ScriptedUser` included) or an object with ``as_source()``
        (:class:`voicekit.BrowserAudio`).
    device : int or str, optional
        Input device for ``"mic"``.

    Raises
    ------
    AudioError
        If ``spec`` is none of these, naming what is accepted.
    """
    if isinstance(spec, Source):
        return spec
    if callable(getattr(spec, "as_source", None)):  # vk.BrowserAudio: one object, two ends
        source: Source = spec.as_source()
        return source
    if isinstance(spec, np.ndarray):
        return ArraySource(spec)
    if spec == "mic":
        return MicSource(device)
    if spec is None or spec == "null":
        return NullSource()
    if isinstance(spec, (str, os.PathLike)) and (
        str(spec).lower().endswith(".wav") or Path(spec).exists()
    ):
        try:
            return ArraySource(spec)
        except AudioError as exc:
            if str(exc).startswith("audio_in"):
                raise
            raise AudioError(f"audio_in: {exc}; pass a PCM WAV file (any rate)") from None
    if hasattr(spec, "generate") or hasattr(spec, "start"):
        raise AudioError(
            f"audio_in object {type(spec).__name__} must subclass voicekit.audio.Source"
        )
    raise AudioError(
        f'audio_in={spec!r} is not understood; pass "mic", "null", a WAV path, a numpy '
        "array, vk.ScriptedUser([...]) or vk.BrowserAudio()"
    )
