"""``vk.BrowserAudio``: the microphone and speaker of the browser page, for remote kernels.

Faces layer (an anywidget; the page's code is ``browser_audio.js`` next to this file).
One object serves both ends of a session::

    b = vk.BrowserAudio()
    b                                   # display it: the page holds the audio devices
    s = vk.Session(audio_in=b, audio_out=b)

The page captures with ``getUserMedia`` (echo cancellation on by default), resamples to
24 kHz int16 and sends 50 ms chunks to the kernel as binary buffers, each stamped with its
first sample's index on the page's capture clock. Agent audio goes the other way and plays
from an AudioWorklet queue; the page reports how much of each reply it has played, and the
sink turns those reports into :class:`~voicekit.audio.sinks.Played` blocks, so agent audio
is timed when heard (docs/architecture.md, "One clock"). The connection to the agent stays in the
kernel: no URL or key reaches the page.

Threading: the page's messages are handled on the kernel's main thread, and only while no
cell is executing (ipykernel's shell handler), so a long cell mid-conversation holds the
user's audio back; it arrives when the cell ends and is placed by its capture stamp, not
by its arrival. Agent audio is sent from the session's thread (ipykernel's iopub socket is
thread-safe) and keeps flowing while a cell runs. (With JupyterLab 4.6 and ipykernel 7.4,
whose comms may travel over kernel subshells, the page's messages still waited for a
running cell to end: measured, see the README.)
"""

from __future__ import annotations

import collections
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from voicekit.audio.sinks import Played, Sink
from voicekit.audio.sources import SAMPLE_RATE, AudioLink, Source
from voicekit.errors import AudioError, ConfigError

__all__ = ["BrowserAudio"]

RESYNC_SAMPLES = SAMPLE_RATE // 5  # play reports this far behind the clock move the head
CLICK_LEVEL = 16000  # a sample this loud marks a chunk's "click" in latency records


class BrowserAudio(anywidget.AnyWidget):
    """Microphone and speaker of the browser page showing this widget.

    Parameters
    ----------
    echo_cancellation, noise_suppression, auto_gain_control : bool
        The browser's capture processing (all on by default). Echo cancellation is what
        keeps the agent from hearing, and interrupting, itself on open speakers.
    muted : bool
        Send silence instead of the microphone (the session keeps running).
    device_id : str
        A ``deviceId`` from :attr:`devices`; empty: the browser's default microphone.
    chunk_ms : int
        Milliseconds of audio per message to the kernel (20-200, default 50). Each message
        costs the page a redraw of the kernel's busy/idle status: longer chunks cost the
        page less CPU and add their length to the latency (see
        benchmarks/bench_browser_audio.py for both figures).

    Attributes
    ----------
    status : str
        The page's state: ``idle``, ``capturing``, ``stopped`` or ``error``.
    error : str
        What went wrong in the page, and what to do (empty when fine).
    last_error : voicekit.AudioError or None
        The same as a typed error on the Python side.
    devices : list of [label, deviceId]
        Microphones the page can see (labels appear once permission is granted).

    Notes
    -----
    Use it where the kernel's machine has no sound device of yours: JupyterHub, Colab, a
    server. The page must be a secure context (https or localhost) for the microphone, and
    browsers play sound only after a click on the page ("Enable audio").
    """

    _esm = Path(__file__).with_name("browser_audio.js")

    _vk_id = traitlets.Unicode().tag(sync=True)  # keys the page's state of this widget
    status = traitlets.Unicode("idle").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    echo_cancellation = traitlets.Bool(True).tag(sync=True)
    noise_suppression = traitlets.Bool(True).tag(sync=True)
    auto_gain_control = traitlets.Bool(True).tag(sync=True)
    muted = traitlets.Bool(False).tag(sync=True)
    device_id = traitlets.Unicode("").tag(sync=True)
    chunk_ms = traitlets.Int(50).tag(sync=True)
    devices: traitlets.List[Any] = traitlets.List([]).tag(sync=True)

    @traitlets.validate("chunk_ms")
    def _check_chunk(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if not 20 <= value <= 200:
            raise ConfigError(
                f"chunk_ms ({value!r}) must be between 20 and 200 milliseconds; 50 is the "
                "default, longer chunks cost the page less CPU and add latency",
                field="chunk_ms",
            )
        return int(value)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(_vk_id=uuid.uuid4().hex, **kwargs)
        self.last_error: AudioError | None = None
        self._source = _PageSource(self)
        self._sink = _PageSink(self)
        self.on_msg(self._on_page)

    # -- the two ends, for make_source / make_sink ------------------------------------------
    def as_source(self) -> Source:
        """The microphone end (what ``vk.Session(audio_in=b)`` uses)."""
        return self._source

    def as_sink(self) -> Sink:
        """The speaker end (what ``vk.Session(audio_out=b)`` uses)."""
        return self._sink

    def latency(self) -> dict[str, float]:
        """Microphone -> kernel latency of the recent chunks, in ms (p50, p95, max).

        From the capture of a chunk's last sample in the page to its handling in the kernel
        (both on this machine's clock when page and kernel share a machine; across machines
        it includes their clock difference). It grows while a cell runs: the kernel reads
        the page's messages only between cells.
        """
        lags = [k - p for _f, _i, p, k in self._source.arrivals if p is not None]
        if not lags:
            return {"p50": math.nan, "p95": math.nan, "max": math.nan, "chunks": 0}
        a = np.asarray(lags)
        return {
            "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)),
            "max": float(a.max()),
            "chunks": len(a),
        }

    def __repr__(self) -> str:
        return f"<vk.BrowserAudio {self.status}{': ' + self.error if self.error else ''}>"

    # -- messages from the page (kernel main thread) ------------------------------------------
    def _on_page(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type")
        if kind == "audio" and buffers:
            self._source.receive(
                int(content.get("frame", 0)), bytes(buffers[0]), content.get("wall")
            )
        elif kind == "played":
            self._sink.receive(content.get("played") or {})
        elif kind == "started":
            self.last_error = None
            self._source.log(
                "audio.browser", rate=content.get("rate"), device=content.get("device")
            )
        elif kind == "error":
            code, message = str(content.get("code")), str(content.get("message"))
            self.last_error = AudioError(f"browser audio ({code}): {message}")
            self._source.log("error", code=f"browser_{code}", message=message)


class _PageSource(Source):
    """The page's microphone as a push source (stamped by the page's capture clock)."""

    paced = False

    def __init__(self, widget: BrowserAudio) -> None:
        self.widget = widget
        self.link: AudioLink | None = None
        self._origin: int | None = None
        self._lock = threading.Lock()
        # the last 10 minutes of chunks: (frame, loudest sample index or -1, page capture
        # time of the chunk's last sample, kernel arrival time), both times in epoch ms
        self.arrivals: collections.deque[tuple[int, int, float | None, float]] = collections.deque(
            maxlen=12000
        )

    def start(self, link: AudioLink) -> None:
        with self._lock:
            self.link, self._origin = link, None
        self.widget.send({"type": "start"})

    def stop(self) -> None:
        with self._lock:
            self.link = None
        self.widget.send({"type": "stop"})

    def receive(self, frame: int, data: bytes, wall: Any = None) -> None:
        """A chunk from the page: ``frame`` is its first sample on the capture clock."""
        arrived = time.time() * 1000.0
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        loud = int(np.abs(samples).argmax()) if len(samples) else -1
        if loud >= 0 and abs(int(samples[loud])) < CLICK_LEVEL:
            loud = -1
        page = float(wall) if isinstance(wall, (int, float)) else None
        self.arrivals.append((frame, loud, page, arrived))
        with self._lock:
            link = self.link
            if link is None:
                return  # no session: the page's audio goes nowhere
            if self._origin is None:
                self._origin = round(link.now() * SAMPLE_RATE) - frame
            offset = self._origin + frame
        link.push(samples, offset)

    def log(self, type_: str, **fields: Any) -> None:
        link = self.link
        if link is not None:
            link.loop.call_soon_threadsafe(lambda: link.emit(type_, **fields))

    def describe(self) -> str:
        return "browser"


class _PageSink(Sink):
    """The page's speaker: agent audio out, play reports back."""

    def __init__(self, widget: BrowserAudio) -> None:
        super().__init__()
        self.widget = widget
        self._played: list[Played] = []

    def write(self, reply_id: str, samples: Any) -> None:
        super().write(reply_id, samples)
        if len(samples):
            data = np.asarray(samples, dtype="<i2").tobytes()
            self.widget.send({"type": "audio", "id": reply_id}, buffers=[data])

    def flush(self) -> dict[str, int]:
        dropped = super().flush()
        self.widget.send({"type": "flush"})
        return dropped

    def receive(self, played: dict[str, Any]) -> None:
        """A play report: samples (24 kHz) of each reply played since the last report."""
        total = sum(int(n) for n in played.values() if isinstance(n, (int, float)) and n > 0)
        link = self._link
        if total <= 0 or link is None:
            return
        heard_end = math.floor(link.now() * SAMPLE_RATE)
        with self._lock:
            if self._head is None or self._head + total < heard_end - RESYNC_SAMPLES:
                self._head = heard_end - total
            self._played.extend(self._take(total))

    def poll(self) -> list[Played]:
        with self._lock:
            out, self._played = self._played, []
        return out

    def stop(self) -> None:
        self.widget.send({"type": "flush"})

    def describe(self) -> str:
        return "browser"
