"""What the live service was seen to do, flagged: silent replies, text never spoken, turns
merged after an early commit, tool calls on the right turn, bundles of several sessions.

Hand-built bundles carry known audio (tone or silence at known sample offsets); the real
runs drive the stand-in agent and check against what its own log and agent track say.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import voicekit as vk
from voicekit.analysis import REPLY_COLUMNS, TURN_COLUMNS
from voicekit.audio.level import AUDIBLE
from voicekit.testing import drop_connection, wait_for_event

from .test_metrics import Bundle, R, config, tone


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * R), np.int16)


def first_audible(log: vk.SessionLog, reply_id: str) -> float:
    """The first audible sample of a reply as played, read from agent.wav by hand."""
    start = next(e for e in log.of_type("playback.start") if e["reply_id"] == reply_id)
    stop = next(e for e in log.of_type("playback.stop") if e["reply_id"] == reply_id)
    agent, _ = log.audio("agent")
    span = agent[start["offset"] : stop["end"]].astype(np.int32)
    return (start["offset"] + int(np.flatnonzero(np.abs(span) >= AUDIBLE)[0])) / R


def turn(b: Bundle, number: int, start: float, end: float, text: str, commit: float) -> None:
    b.ev(end, "local", "user.utterance", start=start, end=end, text=text, kind="turn", turn=number)
    b.ev(commit, "recv", "input.speech.stopped")


# -- silent replies ---------------------------------------------------------------------------
def test_silent_replies_are_completed_unheard_and_no_tool_preamble(tmp_path) -> None:
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.ev(0.1, "recv", "session.ready", session_id="sess_test")
    b.reply("g", 0.15, 0.2, tone(0.5), text="Hi.")
    # turn 0: a reply of pure silence, completed, no transcript (a failing LLM)
    turn(b, 0, 1.0, 2.0, "hello", commit=2.5)
    b.ev(2.5, "recv", "reply.started", reply_id="r0")
    b.ev(2.5, "recv", "reply.audio", reply_id="r0", samples=R)
    b.ev(2.5, "local", "playback.start", reply_id="r0", offset=round(2.5 * R))
    b.w.write_agent_audio(round(2.5 * R), quiet(1.0))
    b.ev(3.5, "local", "playback.stop", reply_id="r0", played=R, dropped=0, reason="completed")
    b.ev(3.5, "recv", "reply.done", reply_id="r0", status="completed")
    # turn 1: a silent tool pre-amble carrying the call, then an audible answer
    turn(b, 1, 5.0, 6.0, "weather", commit=6.5)
    b.reply("r1", 6.5, 6.5, quiet(1.0), text="")
    b.ev(7.0, "recv", "tool.call", call_id="c1", name="get_weather", arguments={})
    b.ev(7.6, "send", "tool.result", call_id="c1", result="{}")
    b.reply("r2", 7.7, 7.7, tone(1.0, lead=0.2), text="Sunny.")
    # turn 2: a reply cut by a barge-in during its silent lead-in is not "silent"
    turn(b, 2, 10.0, 11.0, "and now", commit=11.5)
    b.reply("r3", 11.5, 11.5, quiet(2.0), played=R // 2, status="interrupted", text="")
    # turn 3: a reply never played here (no playback lines), flagged by the session
    turn(b, 3, 14.0, 15.0, "more", commit=15.5)
    b.ev(15.5, "recv", "reply.started", reply_id="r4")
    b.ev(15.5, "recv", "reply.audio", reply_id="r4", samples=R)
    b.ev(16.5, "recv", "reply.done", reply_id="r4", status="completed")
    b.ev(16.5, "local", "reply.silent", reply_id="r4", duration=1.0, samples=R, tool_call=False)
    log = b.close()

    replies = log.replies
    assert list(replies.columns) == list(REPLY_COLUMNS)
    flags = dict(zip(replies.reply_id, replies.silent, strict=True))
    assert flags == {"g": False, "r0": True, "r1": False, "r2": False, "r3": False, "r4": True}
    assert not replies.unspoken_text.any()  # no text in any silent reply
    assert list(replies.trigger) == [
        "greeting",
        "user_speech",
        "user_speech",
        "tool_result",
        "user_speech",
        "user_speech",
    ]
    assert list(replies.turn.fillna(-1)) == [-1, 0, 1, 1, 2, 3]
    assert math.isnan(replies.set_index("reply_id").played["r4"])  # never played here
    assert replies.set_index("reply_id").played["r3"] == pytest.approx(0.5)
    turns = log.turns
    assert list(turns.columns) == list(TURN_COLUMNS)
    assert list(turns.silent) == [True, False, False, True]
    s = log.summary()
    assert s["silent_replies"] == 2 and s["unspoken_text_replies"] == 0


# -- text the listener never heard ------------------------------------------------------------
def words_bundle(tmp_path, audio, played, text, interrupted, status, words) -> vk.SessionLog:
    """One turn, one reply of ``audio`` from sample 2.0 s; ``words``: (word, start_ms, end_ms)
    from the reply's first chunk."""
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    turn(b, 0, 0.5, 1.5, "tell me", commit=1.9)
    b.ev(1.95, "recv", "reply.started", reply_id="r")
    for w, start, end in words:
        b.ev(
            2.0, "recv", "transcript.agent.delta", reply_id="r", delta=w, start_ms=start, end_ms=end
        )
    b.ev(2.0, "recv", "reply.audio", reply_id="r", samples=len(audio))
    b.ev(2.0, "local", "playback.start", reply_id="r", offset=2 * R)
    b.w.write_agent_audio(2 * R, audio[:played])
    stop = 2.0 + played / R
    reason = "completed" if played == len(audio) else "speech_started"
    b.ev(stop, "local", "playback.stop", reply_id="r", played=played, dropped=0, reason=reason)
    if text is not None:  # None: no final transcript
        b.ev(stop, "recv", "transcript.agent", reply_id="r", text=text, interrupted=interrupted)
    b.ev(stop, "recv", "reply.done", reply_id="r", status=status)
    return b.close()


WORDS = [("one", 100, 400), ("two", 500, 900), ("three", 1200, 1500)]


def test_unspoken_text_by_word_timings(tmp_path) -> None:
    speech_then_silence = np.concatenate([tone(1.0), quiet(1.0)])  # audible 0-1.0 s only
    # the transcript claims all three words, uninterrupted; "three" (1.2-1.5 s) was silence
    said = words_bundle(
        tmp_path / "a", speech_then_silence, 2 * R, "one two three", False, "completed", WORDS
    )
    assert said.replies.unspoken_text.tolist() == [True]
    assert said.turns.unspoken_text.tolist() == [True]
    assert said.replies.silent.tolist() == [False]  # two words were heard
    # a trimmed transcript of the words that played: all heard
    trimmed = words_bundle(
        tmp_path / "b", speech_then_silence, 2 * R, "one two", True, "interrupted", WORDS
    )
    assert trimmed.replies.unspoken_text.tolist() == [False]
    # the whole reply audible, but playback stopped at 0.45 s: "two" (0.5-0.9 s) never played
    cut = words_bundle(
        tmp_path / "c", tone(2.0), round(0.45 * R), "one two", True, "interrupted", WORDS
    )
    assert cut.replies.unspoken_text.tolist() == [True]
    assert cut.replies.interrupted.tolist() == [True]
    # every word audible and played
    heard = words_bundle(
        tmp_path / "d", tone(2.0), 2 * R, "one two three", False, "completed", WORDS
    )
    assert heard.replies.unspoken_text.tolist() == [False]
    assert heard.summary()["unspoken_text_replies"] == 0


def test_unspoken_text_without_word_timings(tmp_path) -> None:
    silent = words_bundle(
        tmp_path / "a", quiet(1.0), R, "Sure, here it is.", False, "completed", []
    )
    assert silent.replies.unspoken_text.tolist() == [True]
    assert silent.replies.silent.tolist() == [True]
    assert silent.replies.text.tolist() == ["Sure, here it is."]
    loud = words_bundle(tmp_path / "b", tone(1.0), R, "Sure, here it is.", False, "completed", [])
    assert loud.replies.unspoken_text.tolist() == [False]
    # no transcript.agent: the deltas, joined, are the text
    joined = words_bundle(tmp_path / "c", tone(2.0), 2 * R, None, False, "completed", WORDS)
    assert joined.replies.text.tolist() == ["one two three"]


# -- merged turns ----------------------------------------------------------------------------
def merge_bundle(tmp_path, ids: tuple[str | None, str | None], texts: tuple[str, str]):
    """A scripted turn with a pause: "what is the weather" 1.0-2.0, "and tomorrow" 2.4-3.0;
    the server commits at 2.8 (0.8 s after the pause began) with a held silent reply, then
    again at 4.0 with the turn's transcript."""
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    first, second = ("what is the weather", "and tomorrow")
    b.ev(2.0, "local", "user.utterance", start=1.0, end=2.0, text=first, kind="turn", turn=0)
    b.ev(3.0, "local", "user.utterance", start=2.4, end=3.0, text=second, kind="turn", turn=0)
    b.ev(2.8, "recv", "input.speech.stopped")
    b.ev(2.8, "recv", "transcript.user", item_id=ids[0], text=texts[0])
    b.ev(4.0, "recv", "input.speech.stopped")
    b.ev(4.0, "recv", "transcript.user", item_id=ids[1], text=texts[1])
    b.reply("held", 2.8, 2.8, quiet(1.2), text="The weather is fine.")
    b.reply("answer", 4.0, 4.0, tone(1.0, lead=0.3), text="Tomorrow too.")
    return b.close()


@pytest.mark.parametrize(
    ("ids", "texts", "merged"),
    [
        (("m1", "m1"), ("what is the weather", "what is the weather and tomorrow"), True),
        (("m1", "m2"), ("what is the weather", "and tomorrow"), False),  # a turn of its own
        ((None, None), ("what is the weather", "What is the weather, and tomorrow?"), True),
        ((None, None), ("what is the weather", "and tomorrow"), False),
    ],
)
def test_merged_turn_from_transcripts(tmp_path, ids, texts, merged) -> None:
    log = merge_bundle(tmp_path, ids, texts)
    row = log.turns.iloc[0]
    assert len(log.turns) == 1 and row.premature  # the early commit either way
    assert bool(row.merged) is merged
    assert row.silent and row.unspoken_text  # the held reply: silence, text never spoken
    assert row.reply_id == "answer" and row.a_on == pytest.approx(4.3, abs=1e-4)
    assert log.summary()["merged"] == int(merged)


def test_merged_vad_segments_are_one_turn(tmp_path) -> None:
    from voicekit.speech import USER_STYLE, synthesize

    first = synthesize("what is the weather in paris", USER_STYLE).samples
    second = synthesize("and tomorrow", USER_STYLE).samples
    user = np.concatenate([quiet(1.0), first, quiet(0.4), second, quiet(2.0)])
    end1 = 1.0 + len(first) / R
    end2 = end1 + 0.4 + len(second) / R

    def build(path, second_id):
        b = Bundle(path)
        b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
        b.w.write_user_audio(0, user)
        b.ev(end1 + 0.8, "recv", "input.speech.stopped")
        b.ev(end1 + 0.8, "recv", "transcript.user", item_id="m1", text="what is the weather")
        b.reply("held", end1 + 0.8, end1 + 0.8, quiet(1.0), text="It is fine.")
        b.ev(end2 + 0.9, "recv", "input.speech.stopped")
        b.ev(end2 + 0.9, "recv", "transcript.user", item_id=second_id, text="and tomorrow")
        b.reply("answer", end2 + 0.9, end2 + 1.0, tone(1.0), text="Tomorrow too.")
        return b.close()

    merged = build(tmp_path / "a", "m1").turns
    assert len(merged) == 1 and merged.iloc[0].merged and merged.iloc[0].source == "vad"
    assert merged.iloc[0].u_on == pytest.approx(1.0, abs=0.15)
    assert merged.iloc[0].u_off == pytest.approx(end2, abs=0.2)
    assert merged.iloc[0].fto == pytest.approx(end2 + 1.0 - merged.iloc[0].u_off, abs=1e-6)
    apart = build(tmp_path / "b", "m2").turns  # two server turns: two turns, none merged
    assert len(apart) == 2 and not apart.merged.any()


@pytest.mark.slow
def test_a_pause_inside_a_turn_on_the_observed_twin(tmp_path) -> None:
    """The live observation, reproduced: a 0.4 s pause ends the turn early, the reply held
    for it stays silent with its text reported, and the continuation is merged."""
    user = vk.ScriptedUser(
        [vk.Say("what's the weather in Paris"), vk.Pause(0.4), vk.Say("and tomorrow")],
        settle=0.5,
    )
    with vk.local.serve(port=0, profile="hosted", behaviour="observed", seed=5) as agent:
        s = vk.Session(url=agent.url, audio_in=user, audio_out="null", log_dir=tmp_path)
        s.start()
        assert s.wait(40) and user.error is None
        # the answer played to its end (the held reply's playback stops at speech.started)
        wait_for_event(s, "playback.stop", lambda e: e.get("reason") == "completed", 30)
        log = s.stop()
    finals = log.of_type("transcript.user")
    assert len(finals) == 2 and finals[0]["item_id"] == finals[1]["item_id"]  # the twin merged
    held_id = log.of_type("reply.started")[0]["reply_id"]
    held_text = next(e for e in log.of_type("transcript.agent") if e["reply_id"] == held_id)
    assert held_text["text"] and held_text["interrupted"] is False
    row = log.turns.iloc[0]
    assert len(log.turns) == 1 and row.merged and row.premature
    assert row.silent and row.unspoken_text
    replies = log.replies.set_index("reply_id")
    assert replies.silent[held_id] and replies.unspoken_text[held_id]
    assert replies.trigger[held_id] == "user_speech" and replies.turn[held_id] == 0
    answer = replies.drop(held_id)
    assert len(answer) == 1 and not answer.silent.iloc[0] and not answer.unspoken_text.iloc[0]
    assert answer.audible_at.iloc[0] == pytest.approx(first_audible(log, answer.index[0]))
    s = log.summary()
    assert (s["merged"], s["silent_replies"], s["unspoken_text_replies"]) == (1, 1, 1)


# -- tool calls on the turn whose reply carried them ------------------------------------------
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


def test_a_tool_call_belongs_to_the_turn_whose_reply_carried_it(agent, tmp_path) -> None:
    """The quickstart's case: the user barges in on the tool's pre-amble before the
    ``tool.call`` arrives; the call is the question's, not the barge-in's (which got
    ``tool_server`` < 0 before). The barge-in does not interrupt (interrupt_response off),
    so the pre-amble plays on and carries the call."""
    user = vk.ScriptedUser(
        [vk.Say("what is the weather in paris"), vk.BargeIn("stop thanks", after=0.2)],
        settle=0.3,
    )
    s = vk.Session(
        url=agent.url,
        greeting="Hi!",
        tools=[get_weather],
        turn_detection=vk.TurnDetection(interrupt_response=False),
        audio_in=user,
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    assert s.wait(60) and user.error is None
    result = wait_for_event(s, "tool.result", timeout=30)
    wait_for_event(s, "playback.stop", lambda e: e["t"] > result["t"], 30)
    log = s.stop()
    call = log.of_type("tool.call")[0]
    question, barge = log.of_type("user.utterance")
    assert barge["kind"] == "barge_in" and barge["start"] < call["t"]  # the case at hand
    # the pre-amble: the last reply started before the call, done with it or after
    carrier = [r for r in log.of_type("reply.started") if r["t"] <= call["t"]][-1]
    done = next(e for e in log.of_type("reply.done") if e["reply_id"] == carrier["reply_id"])
    assert done["t"] >= call["t"]
    turns = log.turns.set_index("turn")
    assert turns.tool[0] == "get_weather" and not isinstance(turns.tool[1], str)
    assert turns.tool_server[0] == pytest.approx(call["t"] - question["end"])
    answer = next(r for r in log.of_type("reply.started") if r["t"] > result["t"])
    assert turns.tool_dead_air[0] == pytest.approx(
        first_audible(log, answer["reply_id"]) - question["end"]
    )
    replies = log.replies.set_index("reply_id")
    assert replies.trigger[answer["reply_id"]] == "tool_result"
    assert replies.turn[answer["reply_id"]] == 0 and replies.turn[carrier["reply_id"]] == 0
    assert not replies.silent.any() and not replies.unspoken_text.any()


def test_a_tool_call_with_no_reply_in_progress_goes_to_the_last_ended_turn(tmp_path) -> None:
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    turn(b, 0, 1.0, 2.0, "weather", commit=2.4)
    b.reply("r0", 2.4, 2.4, tone(0.5), text="Let me check.")  # done at 2.9
    b.ev(3.0, "local", "user.utterance", start=2.6, end=3.6, text="hm", kind="barge_in", turn=1)
    b.ev(3.1, "recv", "tool.call", call_id="c1", name="get_weather", arguments={})
    b.ev(3.2, "send", "tool.result", call_id="c1", result="{}")
    b.reply("r1", 3.3, 3.3, tone(1.0, lead=0.1), text="Sunny.")
    t = b.close().turns.set_index("turn")
    # no reply open at 3.1; turn 0 committed at 2.4, turn 1 still going on: turn 0's
    assert t.tool[0] == "get_weather" and not isinstance(t.tool[1], str)
    assert t.tool_server[0] == pytest.approx(1.1)
    assert t.tool_dead_air[0] == pytest.approx(3.4 - 2.0, abs=1e-4)


# -- bundles holding several server sessions ----------------------------------------------------
@pytest.fixture(scope="module")
def observed_agent():
    """A stand-in agent that, like the hosted service, never resumes a session."""
    with vk.local.serve(profile="fast") as served:  # behaviour "observed"
        yield served


def test_a_restarted_session_is_a_second_session_with_its_own_greeting(
    observed_agent, tmp_path
) -> None:
    made = vk.agents.create(
        name="Greeter", system_prompt="Be brief.", greeting="Hello there.", url=observed_agent.url
    )
    try:
        user = vk.ScriptedUser([vk.Say("my name is robin")], settle=0.3)
        s = vk.Session(
            url=observed_agent.url,
            agent_id=made.id,
            audio_in=user,
            audio_out="null",
            log_dir=tmp_path,
        )
        s.start()
        first_id = s.session_id
        assert s.wait(30) and user.error is None
        heard = wait_for_event(s, "transcript.user", timeout=20)
        wait_for_event(s, "playback.stop", lambda e: e["t"] > heard["t"], 20)
        drop_connection(observed_agent, first_id)
        restarted = wait_for_event(s, "session.restarted", timeout=30)
        # the stored agent greets the fresh session too
        wait_for_event(s, "playback.stop", lambda e: e["t"] > restarted["t"], 20)
        log = s.stop()
    finally:
        vk.agents.delete(made.id, url=observed_agent.url)
    readies = log.of_type("session.ready")
    assert len(readies) == 2 and readies[1]["t"] >= restarted["t"]
    replies = log.replies
    greetings = replies[replies.trigger == "greeting"]
    assert list(greetings.session) == [0, 1] and greetings.turn.isna().all()
    assert replies[replies.started > restarted["t"]].session.eq(1).all()
    assert replies[replies.started < restarted["t"]].session.eq(0).all()
    turns = log.turns
    assert list(turns.session) == [0]
    answer = replies[replies.turn == 0]
    assert len(answer) == 1 and answer.session.iloc[0] == 0
    # the second greeting is no reply of the turn before the restart
    assert turns.reply_text.iloc[0] == answer.text.iloc[0]
    assert "hello there" not in turns.reply_text.iloc[0].lower()
    g0, g1 = greetings.reply_id
    assert vk.analysis.greeting_latency(log) == pytest.approx(
        first_audible(log, g0) - readies[0]["t"]
    )
    assert vk.analysis.greeting_latency(log, session=1) == pytest.approx(
        first_audible(log, g1) - readies[1]["t"]
    )
    s = log.summary()
    assert s["restarts"] == 1
    assert s["greeting_latency"] == pytest.approx(first_audible(log, g0) - readies[0]["t"])
