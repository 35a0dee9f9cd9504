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
