"""Bad input at every public entry point: a typed error whose message names the field and the fix.

One row per mistake a user makes (a string where a list goes, a lambda as a tool, a folder
as a WAV file, ...): the error is a voicekit error (ConfigError also a ValueError), never a
bare TypeError/AttributeError from deep inside, and its text names the argument and says
what to pass instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import voicekit as vk

NULL = {"audio_in": "null", "audio_out": "null"}


def _cases(tmp: Path) -> list[tuple[str, Callable[[], Any], type[Exception], str, str]]:
    """(id, call, error type, the field the message names, a word of the fix)."""
    not_wav = tmp / "notes.txt"
    not_wav.write_text("not audio")
    a_file = tmp / "a-file"
    a_file.write_text("x")
    user = vk.ScriptedUser([vk.Say("hello")])
    return [
        # vk.Session
        ("backend", lambda: vk.Session(backend="cloud", **NULL), vk.ConfigError, "backend", "url="),
        (
            "url-http",
            lambda: vk.Session(url="http://h:1/v1/ws", **NULL),
            vk.ConfigError,
            "url",
            "ws://",
        ),
        ("url-int", lambda: vk.Session(url=8765, **NULL), vk.ConfigError, "url", "ws://"),
        (
            "keyterms-str",
            lambda: vk.Session(keyterms="Ozempic", **NULL),
            vk.ConfigError,
            "keyterms",
            "['Ozempic']",
        ),
        (
            "keyterms-int",
            lambda: vk.Session(keyterms=[1], **NULL),
            vk.ConfigError,
            "keyterms",
            "string",
        ),
        (
            "greeting",
            lambda: vk.Session(greeting=["hi"], **NULL),
            vk.ConfigError,
            "greeting",
            "string",
        ),
        (
            "prompt",
            lambda: vk.Session(system_prompt=3, **NULL),
            vk.ConfigError,
            "system_prompt",
            "string",
        ),
        (
            "turn-str",
            lambda: vk.Session(turn_detection="fast", **NULL),
            vk.ConfigError,
            "turn_detection",
            "vk.TurnDetection",
        ),
        (
            "tools-fn",
            lambda: vk.Session(tools=print, **NULL),
            vk.ConfigError,
            "tools",
            "tools=[get_weather]",
        ),
        ("tools-int", lambda: vk.Session(tools=[3], **NULL), vk.ToolError, "tools", "functions"),
        (
            "tools-lambda",
            lambda: vk.Session(tools=[lambda x: x], **NULL),
            vk.ToolError,
            "tool name",
            "vk.as_tool(fn, name=",
        ),
        (
            "timeout-neg",
            lambda: vk.Session(connect_timeout=-1, **NULL),
            vk.ConfigError,
            "connect_timeout",
            "e.g. 10",
        ),
        (
            "timeout-str",
            lambda: vk.Session(connect_timeout="10", **NULL),
            vk.ConfigError,
            "connect_timeout",
            "seconds",
        ),
        ("log-dir-int", lambda: vk.Session(log_dir=5, **NULL), vk.ConfigError, "log_dir", "None"),
        (
            "format",
            lambda: vk.Session(input_format="pcm16", **NULL),
            vk.ConfigError,
            "input_format",
            "audio/pcm",
        ),
        # sources and sinks
        (
            "in-word",
            lambda: vk.Session(audio_in="mik", audio_out="null"),
            vk.AudioError,
            "audio_in",
            '"mic"',
        ),
        (
            "in-missing",
            lambda: vk.Session(audio_in=str(tmp / "no.wav"), audio_out="null"),
            vk.AudioError,
            "audio_in",
            "WAV path",
        ),
        (
            "in-not-wav",
            lambda: vk.Session(audio_in=str(not_wav), audio_out="null"),
            vk.AudioError,
            "audio_in",
            "PCM WAV",
        ),
        (
            "in-stereo",
            lambda: vk.Session(audio_in=np.zeros((10, 2), np.int16), audio_out="null"),
            vk.AudioError,
            "audio_in",
            "mono",
        ),
        (
            "in-dtype",
            lambda: vk.Session(audio_in=np.zeros(10, np.int64), audio_out="null"),
            vk.AudioError,
            "audio_in",
            "int16",
        ),
        (
            "out-word",
            lambda: vk.Session(audio_in="null", audio_out="speakr"),
            vk.AudioError,
            "audio_out",
            '"speaker"',
        ),
        (
            "out-int",
            lambda: vk.Session(audio_in="null", audio_out=7),
            vk.AudioError,
            "audio_out",
            ".wav",
        ),
        # turn detection
        (
            "vad",
            lambda: vk.TurnDetection(vad_threshold=2),
            vk.ConfigError,
            "vad_threshold",
            "between 0 and 1",
        ),
        (
            "min-float",
            lambda: vk.TurnDetection(min_silence=0.6),
            vk.ConfigError,
            "min_silence",
            "milliseconds",
        ),
        (
            "min>max",
            lambda: vk.TurnDetection(min_silence=2000, max_silence=1000),
            vk.ConfigError,
            "max_silence",
            "raise max_silence",
        ),
        (
            "interrupt",
            lambda: vk.TurnDetection(interrupt_response="yes"),
            vk.ConfigError,
            "interrupt_response",
            "True or False",
        ),
        # scripted users
        ("step-str", lambda: vk.ScriptedUser(["hello"]), vk.ConfigError, "steps[0]", "vk.Say"),
        (
            "say-empty",
            lambda: vk.ScriptedUser([vk.Say(" ")]),
            vk.ConfigError,
            "steps[0].text",
            "words",
        ),
        (
            "pause-neg",
            lambda: vk.ScriptedUser([vk.Pause(-1)]),
            vk.ConfigError,
            "steps[0].seconds",
            "vk.Pause(0.8)",
        ),
        (
            "after-neg",
            lambda: vk.ScriptedUser([vk.BargeIn("stop", after=-1)]),
            vk.ConfigError,
            "steps[0].after",
            ">= 0",
        ),
        ("gap", lambda: vk.ScriptedUser([vk.Say("hi")], gap=(1, 0)), vk.ConfigError, "gap", "e.g."),
        # tools
        ("tool-hint", lambda: vk.as_tool(_untyped), vk.ToolError, "'city'", "city: str"),
        ("tool-timeout", lambda: vk.as_tool(_typed, timeout_s=0), vk.ToolError, "timeout_s", "300"),
        # logs and analysis
        ("load-missing", lambda: vk.load_log(tmp / "nope"), vk.LogFormatError, "nope", "meta.json"),
        ("load-file", lambda: vk.load_log(a_file), vk.LogFormatError, "a-file", "meta.json"),
        (
            "logs-missing",
            lambda: vk.load_logs(tmp / "nope", progress=False),
            vk.LogFormatError,
            "nope",
            "log bundle",
        ),
        ("plot-int", lambda: vk.plot_timeline(5), vk.ConfigError, "log", "vk.load_log(path)"),
        ("fto-int", lambda: vk.plot_fto(5), vk.ConfigError, "df", "vk.SessionLog"),
        ("barge-int", lambda: vk.plot_barge_ins(5), vk.ConfigError, "data", "vk.SessionLog"),
        ("echo-int", lambda: vk.echo_check(5), vk.ConfigError, "log", "vk.load_log(path)"),
        ("report-int", lambda: vk.report(5, tmp / "r.html"), vk.ConfigError, "logs", "glob"),
        (
            "sweep-field",
            lambda: vk.sweep(user, grid={"min_silense": [1]}),
            vk.ConfigError,
            "min_silense",
            "min_silence",
        ),
        (
            "sweep-empty",
            lambda: vk.sweep(user, grid={"min_silence": []}),
            vk.ConfigError,
            "grid",
            "non-empty",
        ),
        (
            "sweep-user",
            lambda: vk.sweep("hello", grid={"min_silence": [300]}),
            vk.ConfigError,
            "user",
            "vk.ScriptedUser",
        ),
        (
            "sweep-repeats",
            lambda: vk.sweep(user, grid={"min_silence": [300]}, repeats=0),
            vk.ConfigError,
            "repeats",
            "at least 1",
        ),
        # widgets
        (
            "panel-arg",
            lambda: vk.AgentPanel(audio_inn="null"),
            vk.ConfigError,
            "audio_inn",
            "audio_in",
        ),
        (
            "panel-fps",
            lambda: vk.AgentPanel(timeline_fps=50, **NULL),
            vk.ConfigError,
            "timeline_fps",
            "10",
        ),
        (
            "panel-window",
            lambda: vk.AgentPanel(timeline_window=-3, **NULL),
            vk.ConfigError,
            "timeline_window",
            "e.g. 30",
        ),
        (
            "browser-chunk",
            lambda: vk.BrowserAudio(chunk_ms=5),
            vk.ConfigError,
            "chunk_ms",
            "between 20 and 200",
        ),
    ]


def _untyped(city):  # type: ignore[no-untyped-def]
    """Weather for a city."""
    return city


def _typed(city: str) -> str:
    """Weather for a city."""
    return city


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rows = _cases(tmp_path_factory.mktemp("bad-input"))
    return {row[0]: row[1:] for row in rows}


def _ids() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return [row[0] for row in _cases(Path(tmp))]


@pytest.mark.parametrize("case", _ids())
def test_bad_input_names_the_field_and_the_fix(case: str, cases: dict[str, Any]) -> None:
    call, kind, field, fix = cases[case]
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert field in message, f"{case}: the message does not name {field!r}: {message}"
    assert fix in message, f"{case}: the message does not say what to do ({fix!r}): {message}"
    assert len(message.splitlines()) == 1, f"{case}: one line, please: {message}"
    if isinstance(info.value, vk.ConfigError):  # .field, for code that reacts to the error
        assert info.value.field, f"{case}: ConfigError without .field"
        assert info.value.field.split(".")[-1].split("[")[0] in message, info.value.field


def test_a_log_can_be_given_as_its_path(tmp_path: Path) -> None:
    """Plots and checks take a bundle path where they take a log (no load_log needed)."""
    bundles = sorted((Path(__file__).parents[2] / "notebooks" / "example-logs").glob("*/meta.json"))
    assert bundles, "example logs missing: python notebooks/make_example_logs.py"
    path = bundles[0].parent
    log = vk.load_log(path)
    assert vk.echo_check(path) == vk.echo_check(log)
    fig = vk.plot_timeline(path)
    assert fig.axes and fig.axes[0].get_title() == vk.plot_timeline(log).axes[0].get_title()
    assert vk.plot_fto(path).axes[0].patches  # the histogram of that session's turns


def test_a_bad_update_keeps_the_running_session(agent: Any, tmp_path: Path) -> None:
    """A bad s.update raises at once, names the field, and the session runs on unchanged."""
    with vk.Session(url=agent.url, log_dir=tmp_path, **NULL) as s:
        before = s.config
        with pytest.raises(vk.ConfigError) as info:
            s.update(turn_detection=vk.TurnDetection(min_silence=300), min_silense=5)
        assert "min_silense" in str(info.value)
        with pytest.raises(vk.ConfigError, match="min_silence"):
            s.update(turn_detection={"min_silence": -1})
        assert s.config == before and s.status == "ready"
        s.update(turn_detection=vk.TurnDetection(min_silence=300))
        assert s.config.turn_detection.min_silence == 300
    log = s.stop()
    assert [e["epoch"] for e in log.of_type("config.epoch")] == [0, 1]
    assert not log.of_type("error")
