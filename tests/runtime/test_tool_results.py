"""When a tool's result is sent: after the pre-amble's reply.done (§8.4) or at once.

The rule itself is the protocol's (sans-I/O: fed events, asked what to send); the sessions
below run it against the stand-in agent on a real socket.
"""

from __future__ import annotations

import json

import pytest

import voicekit as vk
from voicekit.protocol import ClientProtocol, SessionConfig
from voicekit.testing import wait_for_event


def _ready(tool_results: str) -> ClientProtocol:
    c = ClientProtocol(SessionConfig(), tool_results=tool_results)
    c.connect()
    c.receive({"type": "session.ready", "session_id": "sess_1"})
    c.data_to_send()
    return c


def _results(c: ClientProtocol) -> list[str]:
    return [m["call_id"] for m in c.data_to_send() if m["type"] == "tool.result"]


def test_by_default_a_result_waits_for_the_reply_done_of_the_pre_amble() -> None:
    c = _ready("after_reply_done")
    c.receive({"type": "reply.started", "reply_id": "resp_1"})
    c.receive({"type": "tool.call", "call_id": "call_1", "name": "f", "arguments": {}})
    c.send_tool_result("call_1", '"ok"')
    assert _results(c) == []  # the pre-amble is still going
    c.receive({"type": "reply.done", "reply_id": "resp_1"})
    assert _results(c) == ["call_1"]


def test_immediate_results_are_sent_as_soon_as_the_tool_returns() -> None:
    c = _ready("immediate")
    c.receive({"type": "reply.started", "reply_id": "resp_1"})
    c.receive({"type": "tool.call", "call_id": "call_1", "name": "f", "arguments": {}})
    c.receive({"type": "input.speech.started"})  # would hold it under the documented rule
    c.send_tool_result("call_1", '"ok"')
    assert _results(c) == ["call_1"]
    c.receive({"type": "reply.done", "reply_id": "resp_1"})
    assert _results(c) == []  # sent once


def test_immediate_still_drops_a_result_whose_reply_was_interrupted() -> None:
    c = _ready("immediate")
    c.receive({"type": "reply.started", "reply_id": "resp_1"})
    c.receive({"type": "tool.call", "call_id": "call_1", "name": "f", "arguments": {}})
    c.receive({"type": "reply.done", "reply_id": "resp_1", "status": "interrupted"})
    c.send_tool_result("call_1", '"late"')
    assert _results(c) == []


def test_tool_results_is_checked_with_a_message_naming_both_choices() -> None:
    with pytest.raises(vk.ConfigError, match=r"after_reply_done.*immediate") as err:
        vk.Session(backend="local", tool_results="asap", audio_in="null", audio_out="null")  # type: ignore[arg-type]
    assert err.value.field == "tool_results"


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Parameters
    ----------
    city : str
        The city, e.g. Paris.
    """
    return json.dumps({"city": city, "sky": "sunny", "celsius": 21})


@pytest.mark.parametrize("timing", ["after_reply_done", "immediate"])
def test_a_tool_round_trip_works_with_either_timing(agent, tmp_path, timing: str) -> None:
    s = vk.Session(
        url=agent.url,
        tools=[get_weather],
        tool_results=timing,  # type: ignore[arg-type]
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    try:
        s.say("what is the weather in Paris")
        call = wait_for_event(s, "tool.call", timeout=20)
        sent = wait_for_event(s, "tool.result", timeout=20)
        # the answer after the result: a reply that names what the tool returned
        wait_for_event(
            s,
            "transcript.agent",
            lambda e: e["t"] > sent["t"] and "sunny" in e["text"].lower(),
            timeout=20,
        )
    finally:
        log = s.stop()
    assert sent["call_id"] == call["call_id"]
    exec_line = next(e for e in log.of_type("tool.exec") if e["call_id"] == call["call_id"])
    preamble_done = next(
        e for e in log.of_type("reply.done") if e["t"] >= call["t"] and e["t"] <= sent["t"] + 5
    )
    if timing == "immediate":
        # handed over when the tool returned: the same loop turn, not after any later event
        assert sent["t"] - exec_line["t"] < 0.05
    else:
        assert sent["t"] >= preamble_done["t"]
    assert not log.of_type("session.error")


def test_transcription_mode_is_an_argument_and_an_update_checked_by_name(agent, tmp_path) -> None:
    with pytest.raises(vk.ConfigError, match="balanced, min_latency, max_accuracy") as err:
        vk.Session(url=agent.url, transcription_mode="fastest", audio_in="null")
    assert err.value.field == "input.transcription_mode"
    s = vk.Session(
        url=agent.url,
        transcription_mode="min_latency",
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    try:
        with pytest.raises(vk.ConfigError, match="transcription_mode"):
            s.update(transcription_mode="slow")
        s.update(transcription_mode="max_accuracy")
        epoch = wait_for_event(s, "config.epoch", lambda e: e["epoch"] == 1, timeout=5)
        wait_for_event(s, "session.updated", lambda e: e["t"] >= epoch["t"], timeout=10)
        held = agent.state.sessions[s.session_id]  # registered by now (after its ready)
        assert held.config.transcription_mode == "max_accuracy"
        assert s.config.transcription_mode == "max_accuracy"
    finally:
        log = s.stop()
    sent = [u["session"] for u in log.of_type("session.update", direction="send")]
    assert sent[0]["input"]["transcription_mode"] == "min_latency"
    assert sent[1] == {"input": {"transcription_mode": "max_accuracy"}}
    assert log.of_type("config.epoch")[-1]["patch"] == sent[1]
