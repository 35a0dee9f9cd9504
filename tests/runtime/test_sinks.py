"""Sinks time agent audio when it is played: real-time playout on the session clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicekit.audio.sinks import NullSink, make_sink
from voicekit.audio.sources import AudioLink, NullSource, make_source
from voicekit.errors import AudioError


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def link() -> tuple[AudioLink, Clock]:
    loop = asyncio.new_event_loop()
    clock = Clock()
    yield AudioLink(loop, clock, lambda s, o: None), clock
    loop.close()


def test_null_sink_plays_in_real_time_from_the_first_chunk(link) -> None:
    lnk, clock = link
    sink = NullSink()
    sink.start(lnk)
    clock.t = 1.0
    sink.write("r1", np.ones(2400, np.int16))  # 100 ms arrives at t = 1.0
    sink.write("r1", np.full(2400, 2, np.int16))
    clock.t = 1.05
    played = sink.poll()
    assert [(p.reply_id, p.offset, len(p.samples)) for p in played] == [("r1", 24000, 1200)]
    clock.t = 1.25  # past the end of the queued 200 ms
    played = sink.poll()
    assert sum(len(p.samples) for p in played) == 3600
    assert played[0].offset == 25200 and played[-1].samples[-1] == 2
    assert sink.queued() == 0 and sink.poll() == []
    # after an underrun, the next chunk starts when it arrives, not back in time
    clock.t = 2.0
    sink.write("r2", np.ones(480, np.int16))
    clock.t = 2.1
    (p,) = sink.poll()
    assert (p.reply_id, p.offset, len(p.samples)) == ("r2", 48000, 480)


def test_flush_drops_what_was_not_played_and_counts_it(link) -> None:
    lnk, clock = link
    sink = NullSink()
    sink.start(lnk)
    sink.write("r1", np.ones(2400, np.int16))
    sink.write("r2", np.ones(1000, np.int16))
    clock.t = 0.025  # 600 samples played
    assert sum(len(p.samples) for p in sink.poll()) == 600
    assert sink.flush() == {"r1": 1800, "r2": 1000}
    assert sink.queued() == 0


def test_make_source_and_sink_errors_say_what_is_accepted(tmp_path) -> None:
    assert isinstance(make_source("null"), NullSource)
    assert isinstance(make_sink("null"), NullSink)
    with pytest.raises(AudioError, match=r"audio_in=42 is not understood; pass \"mic\""):
        make_source(42)
    with pytest.raises(AudioError, match=r"audio_out='loud' is not understood"):
        make_sink("loud")
    with pytest.raises(AudioError, match="does not exist"):
        make_sink(str(tmp_path / "missing" / "out.wav"))


def test_xrun_flags_are_counted_on_the_device_thread_and_logged_coalesced() -> None:
    """PortAudio's status flags (real ``sounddevice.CallbackFlags``) become ``audio.xrun``
    lines: one per burst, none for a clean callback, the rest of a burst logged at close.
    (test_devices.py provokes a real underflow through PulseAudio.)"""
    import sounddevice as sd

    from voicekit.audio.sources import XRUN_REPORT_S, XrunCounter

    loop = asyncio.new_event_loop()
    lines: list[tuple[str, dict[str, object]]] = []
    lnk = AudioLink(
        loop, loop.time, lambda s, o: None, lambda kind, **fields: lines.append((kind, fields))
    )
    xruns = XrunCounter(lnk, "input")
    overflow, clean, out = sd.CallbackFlags(), sd.CallbackFlags(), sd.CallbackFlags()
    overflow.input_overflow = True
    out.output_underflow = out.output_overflow = True
    try:
        for _ in range(50):  # a burst while the loop is busy: one report asked for
            xruns.count(overflow)
            xruns.count(clean)
        loop.run_until_complete(asyncio.sleep(0))
        assert lines == [
            ("audio.xrun", {"device": "input", "flags": ["input_overflow"], "count": 50})
        ]
        for _ in range(3):  # within XRUN_REPORT_S of that line: deferred, not logged yet
            xruns.count(out)
        loop.run_until_complete(asyncio.sleep(0))
        assert len(lines) == 1 and XRUN_REPORT_S > 0
        xruns.close()  # the stream has stopped: what is left is logged now
        flags = ["output_underflow", "output_overflow"]
        assert lines[1] == ("audio.xrun", {"device": "input", "flags": flags, "count": 3})
        xruns.count(clean)
        xruns.close()
        assert len(lines) == 2
    finally:
        loop.close()
