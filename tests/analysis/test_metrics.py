"""Turn table, barge-ins and summary on hand-built bundles with hand-computed answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import voicekit as vk
from voicekit.analysis import TURN_COLUMNS
from voicekit.logformat import LogWriter

R = 24000


def tone(seconds: float, lead: float = 0.0) -> np.ndarray:
    """``lead`` s of silence, then a loud tone: the audible part starts after ``lead``."""
    n, k = round(seconds * R), round(lead * R)
    out = (8000 * np.sin(np.arange(n) * 0.05)).astype(np.int16)
    out[:k] = 0
    out[k] = 8000  # the first audible sample is exactly at the lead
    out[-1] = 8000  # and the last one at the end
    return out


class Bundle:
    """A bundle written event by event, as a session would."""

    def __init__(self, tmp_path: Path, session_id: str = "sess_test") -> None:
        self.w = LogWriter(tmp_path, meta={"backend": "local", "audio_in": "scripted"})
        self.w.set_session_id(session_id)
        self.lines: list[tuple[float, str, str, dict]] = []

    def ev(self, t: float, direction: str, kind: str, /, **fields) -> None:
        self.lines.append((t, direction, kind, fields))  # written in time order on close

    def reply(
        self,
        rid: str,
        started: float,
        first_audio: float,
        audio: np.ndarray,
        played: int | None = None,
        status: str = "completed",
        text: str = "",
        stop_reason: str | None = None,
    ) -> None:
        """reply.started, one reply.audio, playback at receive time, stop and done."""
        played = len(audio) if played is None else played
        self.ev(started, "recv", "reply.started", reply_id=rid)
        self.ev(first_audio, "recv", "reply.audio", reply_id=rid, samples=len(audio))
        offset = round(first_audio * R)
        self.ev(first_audio, "local", "playback.start", reply_id=rid, offset=offset)
        self.w.write_agent_audio(offset, audio[:played])
        end = first_audio + played / R
        reason = stop_reason or ("completed" if played == len(audio) else "interrupted")
        self.ev(
            end,
            "local",
            "playback.stop",
            reply_id=rid,
            played=played,
            dropped=len(audio) - played,
            reason=reason,
        )
        self.ev(end, "recv", "transcript.agent", reply_id=rid, text=text)
        self.ev(end, "recv", "reply.done", reply_id=rid, status=status)

    def close(self) -> vk.SessionLog:
        for t, direction, kind, fields in sorted(self.lines, key=lambda line: line[0]):
            self.w.write_event(t, direction, kind, **fields)
        self.w.close()
        return vk.load_log(self.w.path)


def config(min_silence: int) -> dict:
    return {
        "input": {"turn_detection": {"min_silence": min_silence, "vad_threshold": 0.5}},
        "output": {"voice": "ivy"},
    }


@pytest.fixture
def conversation(tmp_path) -> vk.SessionLog:
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "session.start", backend="local")
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.ev(0.10, "recv", "session.ready", session_id="sess_test")
    # greeting: audible from 0.20 + 0.25 = 0.45 s
    b.reply("g", 0.15, 0.20, tone(1.0, lead=0.25), text="Hi there.")
    # turn 0: user 2.0-3.0; server ends the turn at 3.5; first audio 3.6, 0.1 s lead
    b.ev(2.1, "recv", "input.speech.started")
    b.ev(3.0, "local", "user.utterance", start=2.0, end=3.0, text="hello", kind="turn", turn=0)
    b.ev(3.5, "recv", "input.speech.stopped")
    b.reply("r1", 3.52, 3.6, tone(2.0, lead=0.1), text="Hello!")
    # a new epoch, then turn 1 with a hesitation the server cut prematurely at 7.9
    b.ev(
        6.0,
        "local",
        "config.epoch",
        epoch=1,
        config=config(300),
        patch={"input": {"turn_detection": {"min_silence": 300}}},
    )
    b.ev(7.5, "local", "user.utterance", start=7.0, end=7.5, text="wait", kind="turn", turn=1)
    b.ev(7.9, "recv", "input.speech.stopped")
    b.ev(9.0, "local", "user.utterance", start=8.0, end=9.0, text="and more", kind="turn", turn=1)
    b.ev(9.4, "recv", "input.speech.stopped")
    # reply r2 (3 s, no lead) from 9.5; the user barges in at 10.5; playback stops at 11.0
    b.ev(10.8, "recv", "input.speech.started")
    b.reply(
        "r2",
        9.45,
        9.5,
        tone(3.0),
        played=36000,
        status="interrupted",
        stop_reason="speech_started",
        text="You said",
    )
    b.ev(
        11.5, "local", "user.utterance", start=10.5, end=11.5, text="stop", kind="barge_in", turn=2
    )
    b.ev(20.0, "local", "session.stop", status="ended")
    return b.close()


def test_turn_table_columns_and_hand_computed_values(conversation) -> None:
    t = conversation.turns
    assert list(t.columns) == list(TURN_COLUMNS)
    assert t["turn"].tolist() == [0, 1, 2]
    first, second, third = (t.iloc[i] for i in range(3))

    assert (first.u_on, first.u_off, first.source, first.text) == (2.0, 3.0, "script", "hello")
    assert first.epoch == 0 and first.min_silence == 600 and first.voice == "ivy"
    assert first.reply_id == "r1" and first.reply_text == "Hello!"
    assert first.a_on == pytest.approx(3.7, abs=1e-4)
    assert first.a_off == pytest.approx(5.6, abs=1e-4)
    assert first.fto == pytest.approx(0.7, abs=1e-4)
    assert first.endpoint_delay == pytest.approx(0.5)
    assert first.server_first_audio == pytest.approx(0.1)
    assert first.lead_silence == pytest.approx(0.1, abs=1e-4)
    assert first.playout_delay == pytest.approx(0.0, abs=1e-4)
    assert not first.premature and not first.no_response and not first.interrupted
    assert first.tool is None and math.isnan(first.tool_dead_air)

    assert second.epoch == 1 and second.min_silence == 300
    assert (second.u_on, second.u_off, second.text) == (7.0, 9.0, "wait and more")
    assert second.fto == pytest.approx(0.5, abs=1e-4)
    assert second.endpoint_delay == pytest.approx(0.4)
    assert second.premature  # the server ended the turn at 7.9, inside the hesitation
    assert second.interrupted

    assert third.text == "stop" and third.no_response  # 1 s of speech, nothing answered it
    assert math.isnan(third.fto) and math.isnan(third.endpoint_delay)


def test_barge_in_table_hand_computed(conversation) -> None:
    bi = conversation.barge_ins
    assert len(bi) == 1
    row = bi.iloc[0]
    assert (row.onset, row.kind, row.reply_id, row.source) == (10.5, "interruption", "r2", "script")
    assert row.detect_latency == pytest.approx(0.3)
    assert row.stop_latency == pytest.approx(0.5, abs=1e-4)  # played to 9.5 + 1.5 = 11.0
    assert row.residual == pytest.approx(0.5, abs=1e-4)
    assert row.heard_fraction == pytest.approx(0.5)
    assert (row.played, row.received) == (36000, 72000)


def test_a_playback_gap_moves_the_end_of_the_reply(tmp_path) -> None:
    """A device that ran dry for 0.1 s mid-reply: the reply is heard 0.1 s longer than
    ``offset + played`` says; ``playback.stop``'s ``end`` gives where it really stopped."""
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "session.start", backend="local")
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    audio = tone(2.0)
    b.ev(0.95, "recv", "reply.started", reply_id="r")
    b.ev(1.0, "recv", "reply.audio", reply_id="r", samples=len(audio))
    b.ev(1.0, "local", "playback.start", reply_id="r", offset=R)
    b.w.write_agent_audio(R, audio[: R // 2])  # 1.0-1.5 s, then 0.1 s of nothing
    b.w.write_agent_audio(R * 16 // 10, audio[R // 2 : R])  # 1.6-2.1 s
    b.ev(1.8, "local", "user.utterance", start=1.8, end=2.4, text="stop", kind="barge_in", turn=0)
    b.ev(1.9, "recv", "input.speech.started")
    stop = dict(played=R, dropped=len(audio) - R, end=R * 21 // 10, reason="speech_started")
    b.ev(2.1, "local", "playback.stop", reply_id="r", **stop)
    b.ev(2.1, "recv", "reply.done", reply_id="r", status="interrupted")
    b.ev(5.0, "local", "session.stop", status="ended")
    row = b.close().barge_ins.iloc[0]
    assert row.stop_latency == pytest.approx(0.3, abs=1e-4)  # 2.1 - 1.8, not 2.0 - 1.8
    assert row.residual == pytest.approx(0.3, abs=1e-4)


def test_summary_medians_counts_and_greeting(conversation) -> None:
    s = conversation.summary()
    assert s["turns"] == 3
    assert s["fto_median"] == pytest.approx(0.6, abs=1e-4)  # of 0.7 and 0.5
    assert s["endpoint_delay_median"] == pytest.approx(0.45)
    assert (s["premature"], s["no_response"], s["interrupted"], s["barge_ins"]) == (1, 1, 1, 1)
    assert s["greeting_latency"] == pytest.approx(0.35, abs=1e-4)  # a_on 0.45 - ready 0.10


def test_tool_dead_air_is_split_into_its_parts(tmp_path) -> None:
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.ev(3.0, "local", "user.utterance", start=2.0, end=3.0, text="weather", kind="turn", turn=0)
    b.ev(3.4, "recv", "input.speech.stopped")
    b.ev(3.5, "recv", "reply.started", reply_id="r1")
    b.ev(3.6, "recv", "tool.call", call_id="c1", name="get_weather", arguments={})
    b.ev(
        3.81, "local", "tool.exec", call_id="c1", name="get_weather", start=3.61, end=3.81, ok=True
    )
    b.ev(3.82, "send", "tool.result", call_id="c1", result="{}")
    b.reply("r2", 3.9, 4.0, tone(1.0), text="Sunny.")
    t = b.close().turns
    row = t.iloc[0]
    assert row.tool == "get_weather"
    assert row.tool_server == pytest.approx(0.6)
    assert row.tool_exec == pytest.approx(0.2)
    assert row.tool_result_to_audio == pytest.approx(0.18, abs=1e-4)
    assert row.tool_dead_air == pytest.approx(1.0, abs=1e-4)
    assert row.fto == pytest.approx(1.0, abs=1e-4)


def test_vad_finds_turns_without_a_script(tmp_path) -> None:
    from voicekit.speech import USER_STYLE, synthesize

    words = synthesize("what is the weather in paris", USER_STYLE).samples
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.w.write_user_audio(0, np.concatenate([np.zeros(R, np.int16), words, np.zeros(R, np.int16)]))
    u_off_true = 1.0 + len(words) / R
    b.ev(u_off_true + 0.6, "recv", "input.speech.stopped")
    b.reply("r1", u_off_true + 0.61, u_off_true + 0.7, tone(1.0), text="Sunny.")
    t = b.close().turns
    assert len(t) == 1 and t.iloc[0].source == "vad"
    assert t.iloc[0].u_on == pytest.approx(1.0, abs=0.15)
    assert t.iloc[0].u_off == pytest.approx(u_off_true, abs=0.2)
    assert t.iloc[0].fto == pytest.approx(0.7, abs=0.2)


def test_echo_is_found_and_marks_barge_ins(tmp_path) -> None:
    from voicekit.speech import style_for_voice, synthesize

    text = "I am the agent and I am talking for a while now"
    agent = synthesize(text, style_for_voice("alba")).samples
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.reply("r1", 0.9, 1.0, agent, text="...")
    # the microphone hears the speaker 120 ms later at a quarter of the level
    echo = np.zeros(R + len(agent) + R, np.int16)
    lag = round(0.12 * R)
    echo[R + lag : R + lag + len(agent)] = agent // 4
    b.w.write_user_audio(0, echo)
    log = b.close()
    check = vk.echo_check(log)
    assert check["echo"] and check["delay"] == pytest.approx(0.12, abs=0.002)
    assert check["level_db"] == pytest.approx(-12.0, abs=1.5)
    assert set(log.barge_ins["kind"]) == {"echo"}


def test_utterances_without_turn_numbers_are_turns_of_their_own(tmp_path) -> None:
    """A bundle written to the documented format by another program (``user.utterance
    {start, end, text, kind}``, no ``turn``): each utterance is its own turn, so the first
    turn's offset, fto and endpoint delay are its own, and nothing is premature."""
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "session.start", backend="url")
    for k, (u_on, u_off) in enumerate([(1.0, 2.0), (6.0, 7.5)]):
        b.ev(u_off, "local", "user.utterance", start=u_on, end=u_off, text=f"q{k}", kind="turn")
        b.ev(u_off + 0.6, "recv", "input.speech.stopped")
        b.reply(f"r{k}", u_off + 0.62, u_off + 0.7, tone(1.5, lead=0.2), text=f"a{k}")
    b.ev(12.0, "local", "session.stop", status="ended")
    turns = b.close().turns
    assert list(turns["turn"]) == [0, 1]
    assert list(turns["u_off"]) == [2.0, 7.5]
    assert list(turns["reply_id"]) == ["r0", "r1"]
    np.testing.assert_allclose(turns["fto"], [0.9, 0.9], atol=1 / R)  # 0.7 + 0.2 lead
    np.testing.assert_allclose(turns["endpoint_delay"], [0.6, 0.6], atol=1e-9)
    assert not turns["premature"].any()


class _Track:
    """What ``_AgentTrack`` reads of a log: its agent samples."""

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = samples

    def agent_samples(self) -> np.ndarray:
        return self.samples


@pytest.mark.parametrize("seed", range(40))
def test_audible_spans_searched_from_each_end_match_a_whole_scan(seed: int) -> None:
    """The block search finds the same first and last audible samples as scanning every
    sample of the span: loud samples anywhere (block edges, the span's ends, -32768), or
    none."""
    from voicekit.analysis.metrics import AUDIBLE, _AgentTrack

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60_000))
    samples = rng.integers(-AUDIBLE + 1, AUDIBLE, n).astype(np.int16)  # all quiet
    for k in rng.integers(0, n, int(rng.integers(0, 4))):
        samples[k] = rng.choice([AUDIBLE, -AUDIBLE, 32767, -32768])
    track = _AgentTrack(_Track(samples))  # type: ignore[arg-type]
    for _ in range(20):
        start, stop = sorted(int(x) for x in rng.integers(-100, n + 100, 2))
        span = samples[max(start, 0) : max(stop, 0)].astype(np.int32)
        loud = np.flatnonzero(np.abs(span) >= AUDIBLE) + max(start, 0)
        expected = (int(loud[0]), int(loud[-1])) if len(loud) else None
        assert track.audible(start, stop) == expected
