"""Audio sinks: where the agent's audio goes, and when it was actually heard.

Runtime layer. A sink receives the agent's 24 kHz int16 audio reply by reply and reports
what it has *played*, with the session time of each played block: agent audio is timed
when it is played, not when it arrived (docs/architecture.md, "One clock"). The session writes the
played blocks into ``agent.wav`` at their play time and derives ``playback.start`` /
``playback.stop`` from them.

- :class:`NullSink` simulates real-time playout from the first received chunk.
- :class:`WavSink` does the same and also writes what was played to a WAV file.
- :class:`SpeakerSink` plays through PortAudio; the stream's callback pulls samples, and the
  played-sample count of the stream is the clock.

Threading: ``write``, ``flush`` and ``poll`` run on the session's loop thread. The speaker's
PortAudio callback runs on PortAudio's thread and shares the queue under a short lock; it
never blocks on anything else and allocates nothing large.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.sources import SAMPLE_RATE, AudioLink, XrunCounter, close_stream
from voicekit.errors import AudioError

__all__ = ["NullSink", "Played", "Sink", "SpeakerSink", "WavSink", "make_sink"]

Int16 = NDArray[np.int16]


@dataclasses.dataclass(frozen=True)
class Played:
    """A block of agent audio that has been played.

    Attributes
    ----------
    reply_id : str
        The reply the samples belong to.
    offset : int
        Session sample index (``t = offset / 24000``) at which the first sample played.
    samples : ndarray of int16
        The samples played.
    """

    reply_id: str
    offset: int
    samples: Int16


class Sink:
    """Base class of sinks: a queue of reply audio and a play head.

    The base class simulates playout in real time on the session clock (the null sink);
    subclasses that own a device move the play head from the device instead.
    """

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[str, Int16]] = collections.deque()
        self._pos = 0  # samples of queue[0] already played
        self._lock = threading.Lock()
        self._head: int | None = None  # session sample index of the next sample to play
        self._link: AudioLink | None = None

    # -- session side ---------------------------------------------------------------
    def start(self, link: AudioLink) -> None:
        """Called on the session's loop thread once audio may flow."""
        self._link = link

    def stop(self) -> None:
        """Called on the loop thread when the session stops; drops what was not played."""

    def write(self, reply_id: str, samples: Int16) -> None:
        """Queue agent audio for playback (loop thread)."""
        if len(samples) == 0:
            return
        with self._lock:
            if not self._queue and self._link is not None:
                # idle until now: playout of this chunk starts on arrival
                now = math.floor(self._link.now() * SAMPLE_RATE)
                self._head = now if self._head is None else max(self._head, now)
            self._queue.append((reply_id, samples))

    def flush(self) -> dict[str, int]:
        """Drop everything not yet played; returns the dropped samples per reply."""
        dropped: dict[str, int] = {}
        with self._lock:
            for i, (reply_id, samples) in enumerate(self._queue):
                n = len(samples) - (self._pos if i == 0 else 0)
                dropped[reply_id] = dropped.get(reply_id, 0) + n
            self._queue.clear()
            self._pos = 0
        return dropped

    def queued(self) -> int:
        """Samples queued and not yet played."""
        with self._lock:
            return sum(len(s) for _, s in self._queue) - self._pos

    def poll(self) -> list[Played]:
        """What has been played since the last poll (loop thread)."""
        if self._link is None:
            return []
        now = math.floor(self._link.now() * SAMPLE_RATE)
        with self._lock:
            if not self._queue or self._head is None:
                return []
            return self._take(now - self._head)

    def _take(self, budget: int) -> list[Played]:
        """Pop up to ``budget`` samples off the queue (lock held)."""
        out: list[Played] = []
        assert self._head is not None
        while budget > 0 and self._queue:
            reply_id, samples = self._queue[0]
            n = min(budget, len(samples) - self._pos)
            out.append(Played(reply_id, self._head, samples[self._pos : self._pos + n]))
            self._head += n
            self._pos += n
            budget -= n
            if self._pos == len(samples):
                self._queue.popleft()
                self._pos = 0
        return out

    def describe(self) -> str:
        """A short description for ``meta.json`` (``audio_out``)."""
        return type(self).__name__


class NullSink(Sink):
    """No sound: playout simulated in real time from the first received chunk."""

    def describe(self) -> str:
        """``"null"``."""
        return "null"


class WavSink(Sink):
    """Simulated real-time playout, written to a WAV file as it is played.

    Parameters
    ----------
    path : str or os.PathLike
        The WAV file to write (24 kHz int16 mono; silence between replies is kept, so the
        file is on the session clock like the log's ``agent.wav``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.parent.exists():
            raise AudioError(
                f"audio_out directory {str(self.path.parent)!r} does not exist; create it first"
            )
        self._writer: Any = None

    def start(self, link: AudioLink) -> None:
        """Open the WAV file."""
        from voicekit.audio.wav import WavAppender

        super().start(link)
        self._writer = WavAppender(self.path, SAMPLE_RATE)

    def poll(self) -> list[Played]:
        """Advance playout and write what was played at its session offset."""
        played = super().poll()
        for p in played:
            self._writer.write_at(p.offset, p.samples)
        return played

    def stop(self) -> None:
        """Close the WAV file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def describe(self) -> str:
        """The WAV file name."""
        return str(self.path)


RESYNC_SAMPLES = 480  # 20 ms
WARMUP_CALLS = 8  # device callbacks of silence before agent audio is played


class SpeakerSink(Sink):
    """A speaker through PortAudio (24 kHz int16 mono output stream).

    Parameters
    ----------
    device : int or str, optional
        Output device index or part of its name; default: the system's default output.

    Notes
    -----
    The played-sample count of the stream is the agent-audio clock: the callback records
    which samples it handed to the device, and :meth:`poll` reports them with the session
    offset at which the device plays them (stream start + samples played). When the device
    falls behind that count by more than 20 ms (PulseAudio stalls about a second after a
    stream starts; a server underrun), the count is moved forward to when the block will be
    heard (PortAudio's DAC time); it never moves back, so offsets stay contiguous on devices
    that run ahead of real time (ALSA ``file`` devices). The first few callbacks play
    silence, so that no reply audio is handed over before such a start-up stall. Output
    underflows and other status flags of the callback are logged as ``audio.xrun`` lines
    (:class:`voicekit.audio.sources.XrunCounter`).
    """

    def __init__(self, device: int | str | None = None) -> None:
        super().__init__()
        self.device = device
        self._stream: Any = None
        self._played: collections.deque[Played] = collections.deque()
        self._stream_origin = 0  # session sample index of stream sample 0
        self._stream_pos = 0
        self._calls = 0
        self._clock_offset = math.inf
        self._xruns: XrunCounter | None = None

    def start(self, link: AudioLink) -> None:
        """Open and start the output stream."""
        from voicekit.audio.devices import resolve_device, sounddevice

        super().start(link)
        sd = sounddevice()
        index = resolve_device(self.device, "output")
        self._stream_origin = round(link.now() * SAMPLE_RATE)
        xruns = self._xruns = XrunCounter(link, "output")

        def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
            xruns.count(status)
            out = outdata[:, 0]
            out[:] = 0
            # when this block will be heard, on the session clock: PortAudio's stream times
            # mapped onto it by the smallest offset seen (a callback that waited for the
            # GIL sees a larger one)
            try:
                now = link.now()
                offset = now - float(time_info.currentTime)
                self._clock_offset = min(self._clock_offset, offset)
                dac = float(time_info.outputBufferDacTime) + self._clock_offset
                heard = math.floor(min(max(dac, now - 0.05), now + 1.0) * SAMPLE_RATE)
            except (AttributeError, TypeError):  # pragma: no cover - backend without times
                heard = 0
            with self._lock:
                behind = heard - (self._stream_origin + self._stream_pos)
                if behind > RESYNC_SAMPLES:
                    # the device stalled (stream start-up, an underrun of the server): the
                    # samples it asks for now are heard later than the count says
                    self._stream_origin += behind
                self._head = self._stream_origin + self._stream_pos
                self._calls += 1
                if self._calls <= WARMUP_CALLS:
                    # silence while the stream starts: what a device is handed in its first
                    # callbacks may be heard only after a start-up stall
                    self._stream_pos += frames
                    return
                filled = 0
                for p in self._take(frames):
                    out[filled : filled + len(p.samples)] = p.samples
                    filled += len(p.samples)
                    self._played.append(p)
                self._stream_pos += frames

        try:
            self._stream = sd.OutputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=480,
                device=index,
                callback=callback,
            )
            self._stream.start()
        except Exception as exc:
            raise AudioError(
                f"cannot open output device {self.device!r} at 24000 Hz: {exc}; "
                'pick another with device=..., or pass audio_out="null"'
            ) from exc

    def poll(self) -> list[Played]:
        """What the device played since the last poll."""
        with self._lock:
            out = list(self._played)
            self._played.clear()
        return out

    def stop(self) -> None:
        """Stop and close the stream; log the xruns not yet logged."""
        close_stream(self._stream, self._xruns)
        self._stream = self._xruns = None

    def describe(self) -> str:
        """``"speaker"`` or ``"speaker:<device>"``."""
        return "speaker" if self.device is None else f"speaker:{self.device}"


def make_sink(spec: Any, device: int | str | None = None) -> Sink:
    """Build a sink from what a user passes as ``audio_out``.

    Parameters
    ----------
    spec : str, path or Sink
        ``"speaker"``, ``"null"``, a WAV path, any :class:`Sink`, or an object with
        ``as_sink()`` (:class:`voicekit.BrowserAudio`).
    device : int or str, optional
        Output device for ``"speaker"``.
    """
    if isinstance(spec, Sink):
        return spec
    if callable(getattr(spec, "as_sink", None)):  # vk.BrowserAudio
        sink: Sink = spec.as_sink()
        return sink
    if spec == "speaker":
        return SpeakerSink(device)
    if spec is None or spec == "null":
        return NullSink()
    if isinstance(spec, (str, os.PathLike)) and str(spec).lower().endswith(".wav"):
        return WavSink(spec)
    raise AudioError(
        f'audio_out={spec!r} is not understood; pass "speaker", "null", a path ending in .wav '
        "or vk.BrowserAudio()"
    )
