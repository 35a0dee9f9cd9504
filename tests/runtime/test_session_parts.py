"""The session's parts, each without a socket: the bus, playback bookkeeping, the tool runner,
the pacer.

The sink is the real null sink (playout simulated on the session clock) driven by a clock
the test moves, so what counts as played is exact and independent of the machine's speed.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import numpy as np
import pytest

import voicekit as vk
from voicekit.audio.sinks import Sink
from voicekit.audio.sources import ArraySource, AudioLink
from voicekit.protocol.events import TranscriptUser
from voicekit.session import BLOCK, Bus, LogLine, Pacer, Playback, ToolRunner


class Clock:
    """A session clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _lines(bus: Bus) -> list[LogLine]:
    seen: list[LogLine] = []
    bus.on("*", seen.append)
    return seen


# -- the bus -------------------------------------------------------------------------------
def test_a_blocked_observer_never_holds_up_the_emitter_and_sees_every_line_in_order() -> None:
    bus = Bus(Clock())
    release, entered = threading.Event(), threading.Event()
    seen: list[str] = []

    def slow(line: LogLine) -> None:
        entered.set()
        release.wait(30)  # an observer that blocks (a cell doing I/O, a lock held elsewhere)
        seen.append(line["n"])

    bus.on("tick", slow)
    bus.local("tick", n="0")
    assert entered.wait(10)
    for n in range(1, 200):  # all emitted while the observer is stuck on the first line
        bus.local("tick", n=str(n))
    assert seen == [] and not release.is_set()
    release.set()
    bus.close(timeout=30)  # lets the observer see every line emitted before it
    assert seen == [str(n) for n in range(200)]


def test_an_observer_that_raises_is_kept_and_the_others_still_run() -> None:
    bus = Bus(Clock())
    good: list[str] = []

    def bad(line: LogLine) -> None:
        raise RuntimeError("observer bug")

    bus.on("*", bad)
    bus.on("*", lambda line: good.append(line.type))
    bus.local("a")
    bus.local("b")
    bus.close()
    assert good == ["a", "b"]


def test_log_lines_read_as_the_log_file_and_carry_the_typed_event() -> None:
    clock = Clock()
    clock.t = 1.25
    bus = Bus(clock)
    event = TranscriptUser(text="hello there", item_id="msg_1")
    line = bus.emit("recv", "transcript.user", {"text": "hello there", "item_id": "msg_1"}, event)
    assert (
        dict(line)
        == line.to_dict()
        == {
            "t": 1.25,
            "dir": "recv",
            "type": "transcript.user",
            "text": "hello there",
            "item_id": "msg_1",
        }
    )
    assert line["text"] == line.get("text") == line.event.text == "hello there"
    assert "t" in line and "text" in line and "nope" not in line
    assert line.get("nope", 7) == 7
    with pytest.raises(KeyError):
        line["nope"]
    assert bus.local("playback.start", reply_id="r").event is None


def test_events_iterators_end_when_the_bus_closes() -> None:
    bus = Bus(Clock())
    got: list[str] = []
    lines = bus.subscribe(timeout=30)  # from now on, before the first next()
    reader = threading.Thread(target=lambda: got.extend(line.type for line in lines))
    reader.start()
    bus.local("one")
    bus.local("two")
    bus.close()
    reader.join(10)
    assert not reader.is_alive() and got == ["one", "two"]


# -- playback bookkeeping ------------------------------------------------------------------
def _playback() -> tuple[Playback, Clock, Bus, list[LogLine]]:
    clock = Clock()
    bus = Bus(clock)
    lines: list[LogLine] = []
    sink = Sink()
    playback = Playback(sink, bus)
    loop = asyncio.new_event_loop()
    sink.start(AudioLink(loop, clock, lambda samples, offset: None))
    loop.close()
    bus.source = Recorder(lines)  # a source's on_event sees every non-send line, inline
    return playback, clock, bus, lines


class Recorder:
    """Stands where the audio source follows the session's lines (inline, in order)."""

    def __init__(self, lines: list[LogLine]) -> None:
        self.lines = lines

    def on_event(self, line: LogLine) -> None:
        self.lines.append(line)


def _samples(n: int, level: int = 1000) -> np.ndarray:
    return np.full(n, level, np.int16)


def test_a_reply_played_to_its_end_stops_as_completed_with_every_sample_counted() -> None:
    playback, clock, _bus, lines = _playback()
    playback.attach()
    playback.reply("r1")
    playback.audio("r1", _samples(2400))
    playback.audio("r1", _samples(2400))
    clock.t = 0.1  # 2400 samples played
    playback.poll()
    assert [ln.type for ln in lines] == ["playback.start"]
    playback.done("r1", "completed")  # the server is done; 2400 samples still to play
    assert [ln.type for ln in lines] == ["playback.start"]
    clock.t = 0.3
    playback.poll()
    stop = lines[-1]
    assert stop.type == "playback.stop"
    assert (stop["played"], stop["dropped"], stop["reason"], stop["end"]) == (
        4800,
        0,
        "completed",
        4800,
    )


def test_a_completed_reply_that_was_all_silence_is_flagged_and_only_that_one() -> None:
    playback, _clock, _bus, lines = _playback()
    playback.attach()
    playback.audio("quiet", _samples(12000, level=99))  # just below AUDIBLE: half a second
    playback.audio("quiet", np.full(12000, -99, np.int16))
    playback.done("quiet", "completed")
    playback.done("empty", "completed", tool_call=True)  # no audio at all (a tool pre-amble)
    playback.audio("spoken", np.concatenate([_samples(2400, 0), _samples(1, -100)]))
    playback.done("spoken", "completed")  # one audible sample is enough
    playback.audio("cut", _samples(2400, 0))
    playback.done("cut", "interrupted")  # cut before it spoke: a barge-in, not a silent reply
    silent = {ln["reply_id"]: ln for ln in lines if ln.type == "reply.silent"}
    assert sorted(silent) == ["empty", "quiet"]
    assert (silent["quiet"]["duration"], silent["quiet"]["samples"]) == (1.0, 24000)
    assert silent["quiet"]["tool_call"] is False
    assert (silent["empty"]["duration"], silent["empty"]["tool_call"]) == (0.0, True)


def test_a_barge_in_flushes_counts_what_was_heard_and_drops_late_audio() -> None:
    playback, clock, _bus, lines = _playback()
    playback.attach()
    playback.audio("r1", _samples(24000))  # one second queued
    clock.t = 0.25
    playback.poll()  # 6000 heard
    playback.barge_in("speech_started")
    stop = lines[-1]
    assert (stop.type, stop["played"], stop["dropped"], stop["reason"]) == (
        "playback.stop",
        6000,
        24000 - 6000,
        "speech_started",
    )
    playback.done("r1", "interrupted")
    playback.audio("r1", _samples(4800))  # late audio of the cut reply is never played
    clock.t = 1.0
    playback.poll()
    rec = playback.replies["r1"]
    assert (rec.played, rec.received, rec.dropped) == (6000, 24000, 24000 - 6000 + 4800)
    assert [ln.type for ln in lines].count("playback.stop") == 1


def test_audio_before_the_sink_starts_is_played_once_it_does() -> None:
    playback, clock, _bus, lines = _playback()
    playback.audio("greeting", _samples(1200))  # the greeting came with session.ready
    clock.t = 1.0
    playback.poll()
    assert lines == []
    playback.attach()
    clock.t = 1.1
    playback.poll()
    assert lines[0].type == "playback.start" and playback.replies["greeting"].played == 1200


# -- the tool runner -------------------------------------------------------------------------
def get_weather(city: str) -> str:
    """The weather in a city.

    Parameters
    ----------
    city : str
        The city.
    """
    return f"sunny in {city}"


def test_the_tool_runner_answers_its_tools_errs_on_unknown_ones_and_never_answers_http_ones() -> (
    None
):
    bus = Bus(Clock())
    answers: list[tuple[str, str, bool]] = []
    lines = _lines(bus)

    async def run() -> None:
        tasks: set[asyncio.Task[None]] = set()

        def spawn(coro: object, name: str) -> None:
            tasks.add(asyncio.get_running_loop().create_task(coro, name=name))  # type: ignore[arg-type]

        runner = ToolRunner(
            [vk.as_tool(get_weather)], bus, spawn, lambda *a: answers.append(a), lambda: 0.0
        )
        runner.server_side = frozenset({"transfer_call"})  # the agent's http tool
        runner.call("c1", "get_weather", {"city": "Paris"})
        runner.call("c2", "transfer_call", {})  # a server-side tool's informational call
        runner.call("c3", "book_table", {})  # nobody's tool
        await asyncio.gather(*tasks)

    asyncio.run(run())
    bus.close()
    assert [a[0] for a in answers] == ["c3", "c1"]  # c3 at once, c1 when its thread returned
    assert answers[1] == ("c1", "sunny in Paris", False)
    assert answers[0][2] is True and "unknown tool 'book_table'" in answers[0][1]
    assert "get_weather" in answers[0][1]  # the error names the tools there are
    execs = {ln["call_id"]: ln for ln in lines if ln.type == "tool.exec"}
    assert execs["c1"]["ok"] is True and execs["c1"]["end"] >= execs["c1"]["start"]
    assert execs["c3"]["ok"] is False and execs["c3"]["unknown"] is True
    assert "c2" not in execs
    info = [ln for ln in lines if ln.type == "tool.informational"]
    assert [(ln["call_id"], ln["name"]) for ln in info] == [("c2", "transfer_call")]


# -- the pacer ----------------------------------------------------------------------------------
def test_the_pacer_sends_a_paced_source_block_by_block_without_gaps() -> None:
    audio = (np.arange(BLOCK * 6) % 3000).astype(np.int16)
    source = ArraySource(audio)
    bus = Bus(Clock())
    sent: list[tuple[int, np.ndarray]] = []
    polls = [0]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        source.start(AudioLink(loop, lambda: loop.time() - t0, lambda s, o: None))
        done = asyncio.Event()

        def send(samples: np.ndarray, offset: int) -> None:
            sent.append((offset, samples.copy()))
            if len(sent) >= 8:
                done.set()

        async def flush() -> None:
            return None

        def poll() -> None:
            polls[0] += 1

        pacer = Pacer(source, t0, lambda: True, send, flush, poll, bus)
        task = loop.create_task(pacer.run())
        await asyncio.wait_for(done.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    asyncio.run(run())
    offsets = [o for o, _ in sent]
    assert all(b - a == BLOCK for a, b in itertools.pairwise(offsets))
    assert all(len(s) == BLOCK for _, s in sent) and polls[0] >= 1
    got = np.concatenate([s for _, s in sent])
    # the clip from its first sample, then silence: nothing lost or repeated
    assert np.array_equal(got[: len(audio)], audio) and not got[len(audio) :].any()
