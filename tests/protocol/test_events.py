"""Events: every type round-trips; tolerant parsing per §15; bad input is ProtocolError only."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicekit.errors import ProtocolError
from voicekit.protocol import CLIENT_EVENTS, SERVER_EVENTS, UnknownEvent
from voicekit.protocol.events import (
    Event,
    InputAudio,
    ReplyAudio,
    ReplyDone,
    SessionError,
    SessionReady,
    ToolCall,
    TranscriptAgentDelta,
    decode_audio,
    encode_audio,
    parse_client_event,
    parse_server_event,
)

SERVER_SAMPLES = [
    {
        "type": "session.ready",
        "session_id": "sess_1",
        "expires_at": 1790000000,
        "resume_token": "rt",
        "config": {"id": "sess_1"},
    },
    {"type": "session.updated", "config": {"id": "sess_1"}},
    {"type": "session.ended", "session_duration_seconds": 35.2, "audio_duration_seconds": None},
    {
        "type": "session.error",
        "code": "invalid_value",
        "message": "bad",
        "param": "output.voice",
        "session_id": "sess_1",
    },
    {"type": "input.speech.started"},
    {"type": "input.speech.stopped"},
    {"type": "transcript.user.delta", "item_id": "msg_1", "text": "where is"},
    {"type": "transcript.user", "item_id": "msg_1", "text": "where is order 4"},
    {"type": "reply.started", "reply_id": "resp_1", "item_id": "msg_2"},
    {"type": "reply.audio", "reply_id": "resp_1", "data": "AAAA"},
    {"type": "reply.done", "reply_id": "resp_1", "status": "interrupted"},
    {"type": "reply.error", "reply_id": "resp_1", "code": "llm", "message": "x", "retryable": True},
    {
        "type": "transcript.agent.delta",
        "reply_id": "resp_1",
        "item_id": "msg_2",
        "delta": "Hi",
        "start_ms": 250,
        "end_ms": 610,
    },
    {
        "type": "transcript.agent",
        "reply_id": "resp_1",
        "item_id": "msg_2",
        "text": "Hi",
        "interrupted": False,
    },
    {"type": "tool.call", "call_id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
]
CLIENT_SAMPLES = [
    {"type": "session.update", "session": {"system_prompt": "x"}},
    {"type": "session.resume", "session_id": "sess_1"},
    {"type": "input.audio", "audio": "AAAA"},
    {"type": "tool.result", "call_id": "c1", "result": "{}", "is_error": True},
    {"type": "reply.create", "instructions": "say hi"},
    {"type": "reply.cancel", "reply_id": "resp_1"},
    {"type": "conversation.message", "role": "user", "content": "hi"},
    {"type": "session.end"},
]


def test_every_event_type_has_a_sample() -> None:
    assert {s["type"] for s in SERVER_SAMPLES} == set(SERVER_EVENTS) - {"error"}
    assert {s["type"] for s in CLIENT_SAMPLES} == set(CLIENT_EVENTS)


@pytest.mark.parametrize("sample", SERVER_SAMPLES, ids=lambda s: s["type"])
def test_server_events_round_trip(sample: dict) -> None:
    stamped = {**sample, "timestamp": 1790210425.654429, "future_field": [1, 2]}
    event = parse_server_event(json.dumps(stamped))
    assert type(event).type == sample["type"]
    assert event.to_dict() == stamped
    assert parse_server_event(event.to_json()).to_dict() == stamped


@pytest.mark.parametrize("sample", CLIENT_SAMPLES, ids=lambda s: s["type"])
def test_client_events_round_trip(sample: dict) -> None:
    assert parse_client_event(sample).to_dict() == sample


def test_tolerant_parsing_of_section_15() -> None:
    err = parse_server_event({"type": "error", "code": "UNAUTHORIZED", "message": "no"})
    assert isinstance(err, SessionError) and err.code == "unauthorized"
    call = parse_server_event(
        {"type": "tool.call", "call_id": "c", "name": "n", "arguments": '{"city": "Rome"}'}
    )
    assert isinstance(call, ToolCall) and call.arguments == {"city": "Rome"}
    legacy = parse_server_event(
        {"type": "tool.call", "call_id": "c", "name": "n", "args": {"x": 1}}
    )
    assert isinstance(legacy, ToolCall) and legacy.arguments == {"x": 1}
    done = parse_server_event({"type": "reply.done", "reply_id": "r"})
    assert isinstance(done, ReplyDone) and done.status == "completed"
    iso = parse_server_event({"type": "input.speech.started", "timestamp": "2025-01-01T00:00:00Z"})
    assert iso.timestamp == 1735689600.0
    unknown = parse_server_event({"type": "brand.new", "x": 1})
    assert isinstance(unknown, UnknownEvent) and unknown.kind == "brand.new"
    assert unknown.to_dict() == {"type": "brand.new", "x": 1}
    ended = parse_server_event({"type": "session.ended", "audio_duration_seconds": None})
    assert ended.to_dict()["type"] == "session.ended"


def test_audio_helpers_and_secret_free_repr() -> None:
    audio = InputAudio.from_bytes(b"\x01\x02")
    assert audio.pcm_bytes() == b"\x01\x02"
    with pytest.raises(ProtocolError, match="base64"):
        ReplyAudio(data="!!!not base64").audio_bytes()
    ready = SessionReady(session_id="sess_1", resume_token="SECRET-RESUME")
    assert "SECRET-RESUME" not in repr(ready)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        ("not json", "Invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"no": "type"}', "type"),
        ('{"type": "reply.started"}', "reply_id is missing"),
        ('{"type": "transcript.user", "text": 5}', "wrong type"),
        ('{"type": "tool.call", "call_id": "c", "name": "n", "arguments": "{oops"}', "not JSON"),
        ('{"type": "tool.call", "call_id": "c", "name": "n", "arguments": [1]}', "object"),
        ('{"type": "input.speech.started", "timestamp": "yesterday"}', "ISO-8601"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_server_event(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(SERVER_EVENTS) + sorted(CLIENT_EVENTS) + ["x"]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "session_id",
                "text",
                "data",
                "reply_id",
                "status",
                "arguments",
                "call_id",
                "name",
                "timestamp",
                "code",
                "session",
                "audio",
                "role",
            ]
        ),
        json_values,
        max_size=5,
    ),
)
def test_arbitrary_dicts_never_raise_anything_but_protocol_error(kind: str, fields: dict) -> None:
    for parse in (parse_server_event, parse_client_event):
        try:
            event = parse({"type": kind, **fields})
        except ProtocolError:
            continue
        json.dumps(event.to_dict())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(frame: bytes | str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_server_event(frame)


def test_the_schema_is_derived_from_the_dataclass_fields() -> None:
    assert dict(TranscriptAgentDelta.FIELDS) == {
        "reply_id": ("str?", False),
        "item_id": ("str?", False),
        "delta": ("str", True),
        "start_ms": ("num?", False),
        "end_ms": ("num?", False),
    }
    assert dict(ToolCall.FIELDS)["arguments"] == ("any", False)
    assert dict(SessionError.FIELDS)["code"] == ("str", False)  # a default: not required
    for cls in {*SERVER_EVENTS.values(), *CLIENT_EVENTS.values()}:
        wire = [f.name for f in dataclasses.fields(cls) if f.name not in ("timestamp", "extra")]
        assert list(cls.FIELDS) == wire  # one declaration, in wire order


@dataclasses.dataclass(kw_only=True, slots=True)
class _Custom(Event):
    type = "x.custom"
    count: int
    ratio: float | None = None
    blob: dict[str, Any] | None = None
    anything: Any = None
    flag: bool = False


@dataclasses.dataclass(kw_only=True, slots=True)
class _Unsupported(Event):
    type = "x.unsupported"
    items: list[int] = dataclasses.field(default_factory=list)


def test_a_new_event_class_gets_its_schema_on_first_use() -> None:
    event = _Custom.parse({"type": "x.custom", "count": 3, "ratio": 1, "blob": None, "z": 1})
    assert (event.count, event.ratio, event.blob, event.extra) == (
        3,
        1,
        None,
        {"z": 1, "blob": None},
    )
    assert event.to_dict() == {
        "type": "x.custom",
        "count": 3,
        "ratio": 1,
        "flag": False,
        "z": 1,
        "blob": None,
    }
    for bad, match in [
        ({"count": True}, "count has the wrong type"),  # a bool is not a number
        ({"count": 1.5}, "count has the wrong type"),
        ({"count": 1, "ratio": "x"}, "ratio has the wrong type"),
        ({"count": 1, "flag": None}, "flag has the wrong type"),  # not nullable
        ({}, "count is missing"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            _Custom.parse({"type": "x.custom", **bad})
    with pytest.raises(TypeError, match="items"):
        _Unsupported.parse({"type": "x.unsupported"})


def test_one_base64_codec() -> None:
    from voicekit import audio

    assert not hasattr(audio, "b64decode_audio")  # the protocol's codec is the only one
    assert decode_audio(encode_audio(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(ProtocolError, match="data must be a base64 string, got int"):
        decode_audio(5, "data")
    with pytest.raises(ProtocolError, match="audio is not valid base64"):
        decode_audio("not*base64")


_USUAL_AUDIO = st.fixed_dictionaries(
    {"data": st.text(max_size=8), "reply_id": st.text(max_size=8)},
    optional={"timestamp": st.floats(allow_nan=False)},
)
_ANY_AUDIO = st.dictionaries(
    st.sampled_from(["data", "reply_id", "timestamp", "item_id", "x"]),
    st.one_of(st.text(max_size=8), st.floats(allow_nan=False), st.integers(), st.none()),
    max_size=5,
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_USUAL_AUDIO, _ANY_AUDIO))
def test_the_reply_audio_fast_path_makes_what_the_general_parser_makes(fields) -> None:
    """Most frames are reply.audio with reply_id, data and a float timestamp: they are built
    directly; every other shape goes through the general parser. Both give the same event,
    or the same error."""
    from voicekit.protocol.events import ReplyAudio

    frame = {"type": "reply.audio", **fields}
    try:
        general: Any = ReplyAudio.parse(dict(frame))
    except ProtocolError as exc:
        general = ("error", str(exc))
    try:
        fast: Any = parse_server_event(json.dumps(frame))
    except ProtocolError as exc:
        fast = ("error", str(exc))
    if isinstance(general, tuple):
        assert fast == general
    else:  # as text, so that a NaN timestamp ("NAN" is a number to float()) compares equal
        assert type(fast) is type(general)
        assert repr(fast) == repr(general) and json.dumps(fast.to_dict()) == json.dumps(
            general.to_dict()
        )
