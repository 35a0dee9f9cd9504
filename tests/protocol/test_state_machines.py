"""ClientProtocol and ServerProtocol: the §7 errors and close codes, the §8 sequencing rules."""

from __future__ import annotations

import base64
import json
import random

import pytest

from voicekit.errors import ConfigError, ProtocolError
from voicekit.protocol import (
    SERVER_EVENTS,
    Action,
    ClientProtocol,
    ServerProtocol,
    SessionConfig,
    TurnDetection,
    backoff_delays,
    parse_server_event,
)
from voicekit.protocol.events import ReplyDone, SessionError, TranscriptAgentDelta
from voicekit.protocol.server import (
    AudioReceived,
    ConfigUpdated,
    MessageAdded,
    ReplyCancelRequested,
    ReplyRequested,
    SessionEndRequested,
    SessionResumed,
    SessionStarted,
    ToolResultReceived,
)


def frame(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, **fields})


def types(msgs: list[dict]) -> list[str]:
    return [m["type"] for m in msgs]


# -- client --------------------------------------------------------------------------------
def ready_client() -> ClientProtocol:
    c = ClientProtocol(SessionConfig(voice="ivy"))
    c.connect()
    first = c.data_to_send()
    assert types(first) == ["session.update"] and first[0]["session"]["output"]["voice"] == "ivy"
    c.receive(frame("session.updated", config={}))
    assert c.state == "connecting"  # session.updated before ready is accepted (§15)
    c.receive(frame("session.ready", session_id="sess_1", resume_token="rt"))
    assert c.state == "ready" and c.session_id == "sess_1"
    return c


def test_audio_is_held_until_ready_and_bounded() -> None:
    c = ClientProtocol(SessionConfig(), max_held_audio_s=0.1)  # 4800 bytes
    c.connect()
    c.data_to_send()
    for i in range(4):
        c.send_audio(bytes([i]) * 2400)
    assert c.data_to_send() == [] and c.dropped_audio_bytes == 4800
    c.receive(frame("session.ready", session_id="s"))
    sent = c.data_to_send()
    assert types(sent) == ["input.audio", "input.audio"]
    assert base64.b64decode(sent[0]["audio"])[:1] == b"\x02"  # oldest dropped first
    c.send_audio(b"\x00\x00")
    assert types(c.data_to_send()) == ["input.audio"]


def test_tool_result_waits_for_reply_done_of_its_reply() -> None:
    c = ready_client()
    c.receive(frame("reply.started", reply_id="r1"))
    c.receive(frame("tool.call", call_id="c1", name="t", arguments={}))
    c.send_tool_result("c1", "{}")
    assert c.data_to_send() == []  # reply.done not yet received
    c.receive(frame("reply.done", reply_id="r1", status="completed"))
    assert [m["call_id"] for m in c.data_to_send()] == ["c1"]


def test_tool_result_flushes_from_the_completion_path_after_reply_done() -> None:
    c = ready_client()
    c.receive(frame("reply.started", reply_id="r1"))
    c.receive(frame("tool.call", call_id="c1", name="t", arguments={}))
    c.receive(frame("tool.call", call_id="c2", name="t", arguments={}))
    c.receive(frame("reply.done", reply_id="r1"))
    c.send_tool_result("c2", "b", is_error=True)
    c.send_tool_result("c1", "a")
    sent = c.data_to_send()
    assert [(m["call_id"], m.get("is_error")) for m in sent] == [("c2", True), ("c1", None)]


def test_tool_result_is_held_while_a_newer_reply_or_speech_is_pending() -> None:
    c = ready_client()
    c.receive(frame("reply.started", reply_id="r1"))
    c.receive(frame("tool.call", call_id="c1", name="t", arguments={}))
    c.receive(frame("reply.done", reply_id="r1"))
    c.receive(frame("input.speech.started"))
    c.send_tool_result("c1", "x")
    assert c.data_to_send() == []
    c.receive(frame("reply.started", reply_id="r2"))
    c.receive(frame("reply.done", reply_id="r2"))
    assert [m["call_id"] for m in c.data_to_send()] == ["c1"]


def test_tool_result_sent_while_a_newer_reply_runs_waits_for_its_reply_done() -> None:
    c = ready_client()
    c.receive(frame("reply.started", reply_id="rA"))
    c.receive(frame("tool.call", call_id="cA", name="t", arguments={}))
    c.receive(frame("reply.done", reply_id="rA"))
    c.receive(frame("reply.started", reply_id="rB"))  # newer reply pending: hold results
    c.send_tool_result("cA", "held")
    assert c.data_to_send() == []
    c.receive(frame("transcript.agent.delta", reply_id="rB", delta="Hm"))
    c.send_audio(b"\x00\x00")
    assert types(c.data_to_send()) == ["input.audio"]  # only the audio: the result waits
    c.receive(frame("reply.done", reply_id="rB"))
    assert [(m["type"], m["call_id"], m["result"]) for m in c.data_to_send()] == [
        ("tool.result", "cA", "held")
    ]


def test_tool_results_of_an_interrupted_reply_are_dropped() -> None:
    c = ready_client()
    c.receive(frame("reply.started", reply_id="r1"))
    c.receive(frame("tool.call", call_id="c1", name="t", arguments={}))
    c.send_tool_result("c1", "early")
    c.receive(frame("reply.done", reply_id="r1", status="interrupted"))
    c.send_tool_result("c1", "late")
    assert c.data_to_send() == []
    with pytest.raises(ConfigError, match="must be a string"):
        c.send_tool_result("c9", {"not": "a string"})  # type: ignore[arg-type]


def test_update_end_resume_and_errors() -> None:
    c = ready_client()
    patch = c.update(SessionConfig(voice="ivy", turn_detection=TurnDetection(min_silence=300)))
    assert patch == {"input": {"turn_detection": {"min_silence": 300}}}
    c.create_reply("hello")
    c.add_message("system", "be brief")
    c.cancel_reply("r1")
    c.end()
    assert types(c.data_to_send()) == [
        "session.update",
        "reply.create",
        "conversation.message",
        "reply.cancel",
        "session.end",
    ]
    with pytest.raises(ConfigError, match="role"):
        c.add_message("assistant", "x")
    c.resume()
    assert c.data_to_send() == [{"type": "session.resume", "session_id": "sess_1"}]
    c.receive(frame("session.error", code="SESSION_NOT_FOUND", message="gone"))
    assert c.state == "error" and c.error is not None and c.error.code == "session_not_found"
    with pytest.raises(ProtocolError):
        c.receive("{broken")
    c2 = ClientProtocol(SessionConfig())
    with pytest.raises(ConfigError, match="never became ready"):
        c2.resume()
    c.receive(frame("session.ended"))
    assert c.state == "ended"


def test_backoff_policy() -> None:
    delays = list(backoff_delays(rng=random.Random(1)))
    assert 0.125 <= delays[0] <= 0.25
    assert all(d <= 5.0 for d in delays) and sum(delays) <= 25.0
    assert len(delays) >= 6
    nominal = [min(5.0, 0.25 * 2**k) for k in range(len(delays))]
    assert all(0.5 * n <= d <= n for d, n in zip(delays, nominal, strict=True))


# -- server ---------------------------------------------------------------------------------
def server(**kw: object) -> ServerProtocol:
    return ServerProtocol(clock=lambda: 1000.0, **kw)  # type: ignore[arg-type]


def start(p: ServerProtocol, session: dict | None = None) -> list[dict]:
    actions = p.receive(frame("session.update", session=session or {"output": {"voice": "ivy"}}))
    assert [a.kind for a in actions] == ["session.started"]
    return p.data_to_send()


def test_handshake_sends_updated_then_ready_with_echo() -> None:
    p = server()
    out = start(p, {"greeting": "Hi", "output": {"voice": "alba"}})
    assert types(out) == ["session.updated", "session.ready"]
    ready = out[1]
    assert ready["session_id"].startswith("sess_") and len(ready["session_id"]) == 37
    assert ready["expires_at"] == 4600 and ready["resume_token"] and ready["timestamp"] == 1000.0
    echo = ready["config"]
    assert echo["greeting"] == "Hi" and echo["output"]["voice"] == "alba"
    assert echo["input"]["turn_detection"] is None and echo["llm"] == []
    assert p.close_code is None


@pytest.mark.parametrize(
    ("session", "code", "param", "close"),
    [
        ({"output": {"voice": "zelda"}}, "invalid_value", "output.voice", 1008),
        ({"agent_id": "agent_1", "greeting": "x"}, "invalid_value", "agent_id", 1008),
        ({"agent_id": "agent_1"}, "agent_not_found", "agent_id", 1008),
        ({"llm": [{}]}, "invalid_value", "llm", 1008),
        (
            {"input": {"format": {"encoding": "audio/pcm", "sample_rate": 16000}}},
            "invalid_value",
            "input.format.sample_rate",
            1008,
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "name": "t",
                        "parameters": {"type": "object", "properties": 7},
                    }
                ]
            },
            "invalid_value",
            "tools[0].parameters.properties",
            1008,
        ),
        ({"greeting": None}, "invalid_format", None, None),
    ],
)
def test_first_update_errors(
    session: dict, code: str, param: str | None, close: int | None
) -> None:
    p = server()
    assert p.receive(frame("session.update", session=session)) == []
    (err,) = p.data_to_send()
    assert err["type"] == "session.error" and err["code"] == code
    assert err.get("param") == param
    assert p.close_code == close
    if code == "invalid_value" and param == "output.voice":
        assert err["message"].startswith("Invalid voice 'zelda'. Must be one of: ")


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("not json", "invalid_format", "Invalid JSON format."),
        (frame("bogus"), "invalid_format", "Unknown message type: bogus"),
        (frame("input.audio"), "invalid_format", "Invalid message format for type 'input.audio'"),
        (frame("input.audio", audio="!!!"), "invalid_audio", "Invalid audio data"),
        (
            frame("conversation.message", role="assistant", content="x"),
            "invalid_format",
            "Invalid message format for type 'conversation.message'",
        ),
        (b"\x00\x01", "invalid_format", "binary frames"),
        (frame("session.resume", session_id="s"), "invalid_format", "first message"),
    ],
)
def test_message_errors_keep_the_session_open(raw: str | bytes, code: str, message: str) -> None:
    p = server()
    start(p)
    assert p.receive(raw) == []
    (err,) = p.data_to_send()
    assert err["code"] == code and message in err["message"]
    assert p.close_code is None and not p.ended


def test_audio_before_first_update_and_odd_pcm() -> None:
    p = server()
    p.receive(frame("input.audio", audio="AAAA"))
    assert p.data_to_send()[0]["code"] == "invalid_format" and p.close_code is None
    start(p)
    (action,) = p.receive(frame("input.audio", audio=base64.b64encode(b"abc").decode()))
    assert action.pcm == b"ab"
    assert p.data_to_send()[0]["code"] == "invalid_audio"
    p.receive(frame("input.audio", audio=base64.b64encode(b"abc").decode()))
    assert p.data_to_send() == []  # reported once


def test_later_updates() -> None:
    p = server()
    start(p, {"greeting": "Hi", "output": {"voice": "ivy"}})
    for patch, param in [
        ({"output": {"voice": "james"}}, "output.voice"),
        ({"output": {"voice": "nonexistent"}}, "output.voice"),
        ({"greeting": "Hello"}, "greeting"),
        ({"output": {"format": {"encoding": "audio/pcmu"}}}, "output.format"),
    ]:
        assert p.receive(frame("session.update", session=patch)) == []
        (err,) = p.data_to_send()
        assert (err["code"], err["param"]) == ("immutable_field", param)
    p.receive(frame("session.update", session={"agent_id": "a"}))
    assert p.data_to_send()[0]["code"] == "agent_id_not_first"
    p.receive(frame("session.update", session={"input": {"turn_detection": {"min_silence": -1}}}))
    err = p.data_to_send()[0]
    assert err["code"] == "invalid_value" and p.close_code is None
    (action,) = p.receive(
        frame(
            "session.update",
            session={"input": {"turn_detection": {"min_silence": 300}}, "output": {"voice": "ivy"}},
        )
    )
    assert action.kind == "config.updated" and action.config.turn_detection.min_silence == 300
    assert types(p.data_to_send()) == ["session.updated"]


def test_client_events_become_actions_and_end_closes_1000() -> None:
    p = server()
    start(p)
    kinds = [
        a.kind
        for raw in [
            frame("tool.result", call_id="c", result="{}"),
            frame("reply.create"),
            frame("reply.cancel", reply_id="r"),
            frame("conversation.message", role="user", content="hi"),
        ]
        for a in p.receive(raw)
    ]
    assert kinds == ["tool.result", "reply.create", "reply.cancel", "conversation.message"]
    (end,) = p.receive(frame("session.end"))
    assert end.kind == "session.end"
    (ended,) = p.data_to_send()
    assert ended["type"] == "session.ended" and ended["audio_duration_seconds"] is None
    assert p.close_code == 1000 and p.ended
    assert p.receive(frame("reply.create")) == []


def test_resume_and_unauthorized() -> None:
    p = server()
    start(p)
    held = {"config": p.config}
    fresh = ServerProtocol(resume=lambda sid: held if sid == p.session_id else "session_not_found")
    (action,) = fresh.receive(frame("session.resume", session_id=p.session_id))
    assert action.kind == "session.resumed"
    (ready,) = fresh.data_to_send()
    assert ready["type"] == "session.ready" and ready["session_id"] == p.session_id
    gone = ServerProtocol(resume=lambda sid: "session_expired")
    gone.receive(frame("session.resume", session_id="sess_x"))
    assert gone.data_to_send()[0]["code"] == "session_expired" and gone.close_code == 1008
    nobody = ServerProtocol()
    nobody.reject_unauthorized()
    (err,) = nobody.data_to_send()
    assert (err["code"], err["message"], err["session_id"]) == (
        "unauthorized",
        "Authentication failed",
        None,
    )
    assert nobody.close_code == 1008


def test_audio_rate_enforcement_is_optional() -> None:
    now = [0.0]
    p = ServerProtocol(monotonic=lambda: now[0], enforce_audio_rate=True)
    start(p)
    second = base64.b64encode(bytes(48000)).decode()
    assert p.receive(frame("input.audio", audio=second))
    assert p.receive(frame("input.audio", audio=second)) == []
    assert p.data_to_send()[0]["code"] == "audio_rate_violation"
    now[0] = 2.0
    assert p.receive(frame("input.audio", audio=second))


def test_emitters_generate_documented_ids() -> None:
    p = server()
    start(p)
    reply_id, item_id = p.reply_started()
    assert reply_id.startswith("resp_") and item_id.startswith("msg_")
    assert p.new_call_id().startswith("chatcmpl-tool-") and len(p.new_call_id()) == 30
    p.reply_audio(reply_id, b"\x00\x00")
    p.agent_delta(reply_id, item_id, "Hi", 250, 610)
    p.agent_final(reply_id, item_id, "Hi", interrupted=False)
    p.reply_done(reply_id)
    p.tool_call_event({"call_id": "c", "name": "t", "arguments": {"a": 1}})
    p.speech_started()
    p.speech_stopped()
    p.user_delta(item_id, "hel")
    p.user_final(item_id, "hello")
    p.error("server_error", "boom", fatal=True, close_code=1011)
    out = p.data_to_send()
    assert types(out) == [
        "reply.started",
        "reply.audio",
        "transcript.agent.delta",
        "transcript.agent",
        "reply.done",
        "tool.call",
        "input.speech.started",
        "input.speech.stopped",
        "transcript.user.delta",
        "transcript.user",
        "session.error",
    ]
    assert all(isinstance(m["timestamp"], float) for m in out)
    assert p.close_code == 1011


def test_actions_are_one_class_per_kind() -> None:
    p = server()
    (started,) = p.receive(frame("session.update", session={"output": {"voice": "ivy"}}))
    match started:
        case SessionStarted(config=config, session_id=sid, resume_token=token):
            assert config.voice == "ivy" and sid == p.session_id and token == p.resume_token
        case _:
            pytest.fail(f"not SessionStarted: {started!r}")
    actions = [
        a
        for raw in [
            frame("input.audio", audio=base64.b64encode(b"\x01\x02").decode()),
            frame("session.update", session={"input": {"turn_detection": {"min_silence": 300}}}),
            frame("tool.result", call_id="c", result="{}", is_error=True),
            frame("tool.result", call_id="d", result="x"),
            frame("reply.create", instructions="go"),
            frame("reply.cancel"),
            frame("conversation.message", role="system", content="be brief"),
            frame("session.end"),
        ]
        for a in p.receive(raw)
    ]
    assert all(isinstance(a, Action) for a in actions)
    assert actions[0] == AudioReceived(b"\x01\x02")
    assert isinstance(actions[1], ConfigUpdated)
    assert actions[1].config.turn_detection is not None
    assert actions[1].config.turn_detection.min_silence == 300
    assert actions[2:] == [
        ToolResultReceived("c", "{}", True),
        ToolResultReceived("d", "x", False),
        ReplyRequested("go"),
        ReplyCancelRequested(None),
        MessageAdded("system", "be brief"),
        SessionEndRequested(),
    ]
    assert [a.kind for a in actions] == [a.type for a in actions]
    with pytest.raises(AttributeError):
        actions[0].pcm = b""  # type: ignore[misc]  # frozen
    held = {"config": p.config}
    fresh = ServerProtocol(resume=lambda sid: held)
    (resumed,) = fresh.receive(frame("session.resume", session_id="sess_x"))
    assert isinstance(resumed, SessionResumed) and resumed.session_id == "sess_x"
    assert resumed.resume_token == fresh.resume_token and resumed.config is p.config


def test_the_server_sends_the_events_the_client_parses() -> None:
    p = server()
    out = start(p, {"greeting": "Hi", "output": {"voice": "alba"}})
    reply_id, item_id = p.reply_started()
    p.reply_audio(reply_id, b"\x00\x01")
    p.agent_delta(reply_id, item_id, "Hi", None, None)
    p.agent_final(reply_id, item_id, "Hi", interrupted=True)
    p.reply_done(reply_id, "interrupted")
    p.tool_call_event({"call_id": "c", "name": "t"})
    p.user_delta(item_id, "he")
    p.user_final(item_id, "hello")
    p.speech_started()
    p.speech_stopped()
    p.error("invalid_value", "bad", param="output.voice")
    p.error("server_error", "boom", fatal=True, close_code=1011)
    out += p.data_to_send()
    assert {m["type"] for m in out} == set(SERVER_EVENTS) - {
        "error",
        "reply.error",
        "session.ended",
    }
    for msg in out:
        event = parse_server_event(msg)
        assert type(event) is SERVER_EVENTS[msg["type"]]
        assert event.to_dict() == msg  # nothing lost, explicit nulls included
    delta = next(m for m in out if m["type"] == "transcript.agent.delta")
    assert delta["start_ms"] is None and delta["end_ms"] is None  # sent as null
    fatal = out[-1]
    assert fatal["param"] is None and fatal["session_id"] == p.session_id


def test_send_queues_a_typed_event_stamped_by_the_clock() -> None:
    p = server()
    start(p)
    event = p.send(ReplyDone(reply_id="r"))
    assert event.timestamp == 1000.0
    event.status = "changed later"  # the wire dict was taken at send()
    p.send(TranscriptAgentDelta(delta="x", reply_id="r"))
    p.send(SessionError(code="x", message="y", extra={"param": None}))
    assert p.data_to_send() == [
        {"type": "reply.done", "reply_id": "r", "status": "completed", "timestamp": 1000.0},
        {"type": "transcript.agent.delta", "reply_id": "r", "delta": "x", "timestamp": 1000.0},
        {"type": "session.error", "code": "x", "message": "y", "timestamp": 1000.0, "param": None},
    ]
