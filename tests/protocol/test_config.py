"""Config validation names field, value and limit; diff/merge follow the mutability rules."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicekit.errors import ConfigError
from voicekit.protocol import (
    AudioFormat,
    SessionConfig,
    TurnDetection,
    check_voice,
    diff,
    get_voice,
    merge,
    voice_ids,
    voices,
)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        (
            {"vad_threshold": 1.5},
            "turn_detection.vad_threshold",
            ["vad_threshold", "1.5", "0 and 1"],
        ),
        ({"vad_threshold": True}, "turn_detection.vad_threshold", ["vad_threshold"]),
        ({"min_silence": 0}, "turn_detection.min_silence", ["min_silence", "positive integer"]),
        ({"min_silence": 300.5}, "turn_detection.min_silence", ["300.5"]),
        ({"max_silence": True}, "turn_detection.max_silence", ["max_silence"]),
        (
            {"min_silence": 2000, "max_silence": 1500},
            "turn_detection.min_silence",
            ["min_silence (2000 ms) must not exceed max_silence (1500 ms)"],
        ),
        ({"interruption_delay": 1001}, "turn_detection.interruption_delay", ["0 to 1000"]),
        ({"interrupt_response": "yes"}, "turn_detection.interrupt_response", ["True or False"]),
    ],
)
def test_turn_detection_errors(kwargs: dict, field: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        TurnDetection(**kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("build", "field", "text"),
    [
        (lambda: SessionConfig(voice=""), "output.voice", "non-empty"),
        (lambda: SessionConfig(keyterms=["ok", ""]), "input.keyterms", r"keyterms\[1\]"),
        (lambda: SessionConfig(keyterms=["x"] * 101), "input.keyterms", "at most 100"),
        (lambda: SessionConfig(keyterms=["y" * 51]), "input.keyterms", "at most 50"),
        (lambda: SessionConfig(keyterms="Ozempic"), "input.keyterms", "list of strings"),
        (lambda: AudioFormat("audio/pcm", 16000), "format.sample_rate", "must be 24000"),
        (lambda: AudioFormat("audio/pcmu", 24000), "format.sample_rate", "must be 8000"),
        (lambda: AudioFormat("audio/opus", 48000), "format.encoding", "audio/pcm"),
        (lambda: SessionConfig(tools=[{"name": "bad name"}]), "tools[0].name", "letters"),
        (
            lambda: SessionConfig(
                tools=[{"name": "t", "parameters": {"type": "object", "properties": 7}}]
            ),
            "tools[0].parameters.properties",
            "must be an object",
        ),
        (
            lambda: SessionConfig(tools=[{"name": "t", "execution_mode": "later"}]),
            "tools[0].execution_mode",
            "interactive",
        ),
        (lambda: SessionConfig(volume=101), "output.volume", "0 to 100"),
    ],
)
def test_session_config_errors(build, field: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as info:
        build()
    assert info.value.field == field


def test_wire_form_round_trip_and_echo_nulls() -> None:
    cfg = SessionConfig(
        system_prompt="p",
        greeting="g",
        voice="ivy",
        keyterms=["Ozempic"],
        turn_detection=TurnDetection(vad_threshold=0.4, min_silence=300),
        tools=[
            {
                "type": "function",
                "name": "t",
                "description": "d",
                "parameters": {"type": "object", "properties": {}},
            }
        ],
        output_format=AudioFormat("audio/pcmu", 8000),
    )
    wire = cfg.to_dict()
    assert wire["input"]["turn_detection"] == {"vad_threshold": 0.4, "min_silence": 300}
    assert wire["output"] == {
        "format": {"encoding": "audio/pcmu", "sample_rate": 8000},
        "voice": "ivy",
    }
    assert SessionConfig.from_dict(wire) == cfg
    echo = {
        "input": {"turn_detection": None, "keyterms": None, "format": None},
        "output": {"voice": "alba", "volume": None},
        "greeting": None,
        "tools": [],
    }
    back = SessionConfig.from_dict(echo)
    assert back.voice == "alba" and back.turn_detection is None and back.tools == []
    assert SessionConfig.from_dict({"output": {"voice": {"voice_id": "alba"}}}).voice == "alba"


def test_diff_gives_minimal_patches_and_refuses_immutable_fields() -> None:
    old = SessionConfig(voice="ivy", greeting="hi", turn_detection=TurnDetection(min_silence=600))
    assert diff(old, old) == {}
    new = SessionConfig(
        voice="ivy",
        greeting="hi",
        system_prompt="be brief",
        turn_detection=TurnDetection(min_silence=300),
        keyterms=["Ozempic"],
    )
    patch = diff(old, new)
    assert patch == {
        "system_prompt": "be brief",
        "input": {"turn_detection": {"min_silence": 300}, "keyterms": ["Ozempic"]},
    }
    assert merge(old, patch) == new
    with pytest.raises(
        ConfigError,
        match=r"voice cannot change mid-session \('ivy' -> 'james'\)"
        r".*voice='james'",
    ):
        diff(old, SessionConfig(voice="james", greeting="hi"))
    with pytest.raises(ConfigError, match="greeting cannot change"):
        diff(old, SessionConfig(voice="ivy", greeting="hello"))
    with pytest.raises(ConfigError, match="output_format cannot change"):
        diff(
            old,
            SessionConfig(
                voice="ivy", greeting="hi", output_format=AudioFormat("audio/pcma", 8000)
            ),
        )


def test_voice_catalogue() -> None:
    assert len(voice_ids("claire")) == 34 and len(voice_ids("ivy")) == 34
    assert len(voice_ids("alba")) == 18 and "iris" in voice_ids("alba")
    sophie = get_voice("sophie")
    assert sophie is not None and sophie.removed and sophie.accent == "British English"
    assert get_voice("alba").era == "alba"
    frame = voices()
    assert {"id", "era", "description", "group"} <= set(frame.columns) and len(frame) == 86
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_voice("ivy") == "ivy"
    with pytest.warns(UserWarning, match="not in voicekit's catalogue"):
        assert check_voice("zelda") == "zelda"


@settings(max_examples=300, deadline=None)
@given(
    vad=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 5), st.booleans()),
    lo=st.one_of(st.none(), st.integers(-100, 5000), st.floats(0, 5000)),
    hi=st.one_of(st.none(), st.integers(-100, 5000)),
)
def test_turn_detection_validation_is_total(vad, lo, hi) -> None:
    try:
        td = TurnDetection(vad_threshold=vad, min_silence=lo, max_silence=hi)
    except ConfigError as exc:
        assert exc.field and exc.field.startswith("turn_detection.")
        return
    assert td.vad_threshold is None or 0 <= td.vad_threshold <= 1
    if td.min_silence is not None and td.max_silence is not None:
        assert 0 < td.min_silence <= td.max_silence
