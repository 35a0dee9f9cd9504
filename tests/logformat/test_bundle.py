"""Log bundles: write and read back; crashes, damage and secrets."""

from __future__ import annotations

import json
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicekit.errors import LogFormatError
from voicekit.logformat import FORMAT, LogFormatWarning, LogWriter, load_log, scrub

SECRET = "sk-live-SECRET123"
TOKEN = "tok_TEMP456"


def _bundle(tmp_path, close: bool = True) -> LogWriter:
    w = LogWriter(tmp_path, meta={"backend": "local", "url": "ws://x/v1/ws", "config": {}})
    w.write_event(0.0, "local", "session.start")
    w.write_event(0.1, "send", "input.audio", audio="AAAA", offset=0, samples=1200)
    w.write_event(0.2, "recv", "reply.audio", reply_id="r1", data="AAAA", samples=240)
    w.write_event(0.3, "recv", "session.ready", session_id="sess_1")
    w.write_user_audio(2400, np.ones(1200, np.int16))
    w.write_agent_audio(0, np.full(240, 3, np.int16))
    w.set_session_id("sess_1")
    if close:
        w.close()
    return w


def test_round_trip(tmp_path) -> None:
    w = _bundle(tmp_path)
    assert w.path.name.endswith("-sess_1")
    log = load_log(w.path)
    assert log.meta["format"] == FORMAT and log.session_id == "sess_1"
    assert log.backend == "local" and log.started_at.endswith("Z")
    assert [e["type"] for e in log.raw_events] == [
        "session.start",
        "input.audio",
        "reply.audio",
        "session.ready",
    ]
    audio_in = log.of_type("input.audio")[0]
    assert "audio" not in audio_in and audio_in["offset"] == 0 and audio_in["samples"] == 1200
    reply = log.of_type("reply.audio", direction="recv")[0]
    assert "data" not in reply and reply["samples"] == 240
    user, rate = log.audio("user")
    assert rate == 24000 and len(user) == 3600 and user[:2400].sum() == 0 and user[2400] == 1
    agent, _ = log.audio("agent")
    assert agent.tolist() == [3] * 240
    frame = log.events
    assert list(frame.columns[:3]) == ["t", "dir", "type"] and len(frame) == 4
    assert log.duration == pytest.approx(0.3)
    with pytest.raises(LogFormatError, match="track"):
        log.audio("both")


def test_a_crashed_bundle_loads_with_a_warning(tmp_path) -> None:
    w = _bundle(tmp_path, close=False)
    with (w.path / "events.jsonl").open("a", encoding="utf-8") as events:  # every line
        events.write('{"t": 0.4, "dir": "recv", "type": "reply.do')  # is flushed: cut mid-line
    w.user.flush()  # the periodic (1 s) flush that bounds what a crash can lose
    w.agent.flush()
    copy = tmp_path / "copy"
    shutil.copytree(w.path, copy)  # what a killed process leaves (headers not final)
    w.close()
    log = load_log(copy)  # reads meta.json only; the events are read on first use
    with pytest.warns(LogFormatWarning, match=r"events.jsonl:5: skipped a truncated last line"):
        assert len(log.raw_events) == 4
    assert len(log.audio("user")[0]) == 3600


def test_only_audio_chunk_lines_wait_for_a_flush(tmp_path) -> None:
    """Chunk lines may sit in the buffer (at most 50 ms); any other line flushes them."""
    w = LogWriter(tmp_path)
    events = w.path / "events.jsonl"

    def on_disk() -> list[str]:
        return [json.loads(line)["type"] for line in events.read_text().splitlines()]

    w.write_event(0.0, "local", "session.start")
    assert on_disk() == ["session.start"]
    w.write_event(0.05, "send", "input.audio", offset=0, samples=1200)
    w.write_event(0.06, "recv", "reply.audio", reply_id="r1", samples=240)
    w.write_event(0.07, "recv", "reply.done", reply_id="r1", status="completed")
    assert on_disk() == ["session.start", "input.audio", "reply.audio", "reply.done"]
    w.write_event(0.1, "send", "input.audio", offset=1200, samples=1200)
    w.flush()
    assert on_disk()[-1] == "input.audio" and w.lines == 5
    w.close()


def test_write_fields_writes_what_write_event_writes(tmp_path) -> None:
    a, b = LogWriter(tmp_path / "a"), LogWriter(tmp_path / "b")
    cases = [
        ("recv", "reply.audio", {"reply_id": "r1", "data": "AAAA", "samples": 240}),
        ("send", "input.audio", {"audio": "AAAA", "offset": 0, "samples": 1200}),
        ("recv", "session.ready", {"session_id": "s", "resume_token": SECRET, "n": [{"key": 2}]}),
        ("local", "error", {"message": f"at ?token={TOKEN}", "arr": np.arange(2)}),
    ]
    for i, (direction, kind, fields) in enumerate(cases):
        a.write_event(i / 10, direction, kind, **fields)
        given = dict(fields)
        b.write_fields(i / 10, direction, kind, given)
        assert given.keys() == fields.keys()  # unchanged
    a.close()
    b.close()
    text = (a.path / "events.jsonl").read_text()
    assert text == (b.path / "events.jsonl").read_text() and SECRET not in text
    assert TOKEN not in text and '"data"' not in text and '"audio"' not in text


def test_damage_in_the_middle_and_out_of_order(tmp_path) -> None:
    w = _bundle(tmp_path)
    lines = (w.path / "events.jsonl").read_text().splitlines()
    lines.insert(1, "garbage")
    lines.append(json.dumps({"t": 0.05, "dir": "local", "type": "late"}))
    (w.path / "events.jsonl").write_text("\n".join(lines) + "\n")
    log = load_log(w.path)
    with pytest.warns(LogFormatWarning) as record:
        log.raw_events  # noqa: B018 - read on first use
    messages = [str(r.message) for r in record]
    assert any("events.jsonl:2: skipped an unreadable line" in m for m in messages)
    assert any("out of time order" in m for m in messages)
    assert [e["type"] for e in log.raw_events][:3] == ["session.start", "late", "input.audio"]


def test_unreadable_bundles_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(LogFormatError, match="not a log bundle directory"):
        load_log(tmp_path / "nope")
    w = _bundle(tmp_path)
    meta = json.loads((w.path / "meta.json").read_text())
    (w.path / "meta.json").write_text(json.dumps({**meta, "format": "voicekit-log/9"}))
    with pytest.raises(LogFormatError, match=r"meta.json: unknown format 'voicekit-log/9'"):
        load_log(w.path)
    (w.path / "meta.json").unlink()
    with pytest.raises(LogFormatError, match=r"meta.json: missing"):
        load_log(w.path)
    with pytest.raises(LogFormatError, match="cannot create the log bundle"):
        LogWriter("/proc/voicekit-cannot-write-here")


def test_secrets_never_reach_the_bundle(tmp_path) -> None:
    w = LogWriter(
        tmp_path,
        meta={
            "url": f"wss://h/v1/ws?token={TOKEN}",
            "api_key": SECRET,
            "config": {"headers": {"Authorization": f"Bearer {SECRET}"}},
        },
    )
    w.write_event(0.1, "recv", "session.ready", session_id="s", resume_token=SECRET)
    w.write_event(0.2, "local", "error", message=f"failed with Bearer {SECRET} at ?token={TOKEN}")
    w.close()
    for path in w.path.rglob("*"):
        data = path.read_bytes()
        assert SECRET.encode() not in data and TOKEN.encode() not in data, path.name
    assert scrub({"nested": [{"token": "x", "ok": 1}]}) == {"nested": [{"ok": 1}]}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.one_of(
            st.text(max_size=30),
            st.builds(
                lambda t, k: json.dumps({"t": t, "dir": "recv", "type": k}),
                st.floats(0, 100, allow_nan=False),
                st.sampled_from(["a", "b", "reply.done"]),
            ),
        ),
        max_size=20,
    )
)
def test_reader_never_fails_on_garbage_lines(tmp_path, lines: list[str]) -> None:
    w = _bundle(tmp_path / "g")
    (w.path / "events.jsonl").write_text("\n".join(x.replace("\n", " ") for x in lines))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogFormatWarning)
        ts = [e["t"] for e in load_log(w.path).raw_events]
    assert ts == sorted(ts)
    shutil.rmtree(tmp_path / "g")


_VALUES = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["input.audio", "reply.audio"]),
    t=st.one_of(st.floats(0, 1e6), st.integers(0, 10)),
    fields=st.dictionaries(
        st.sampled_from(["offset", "samples", "reply_id", "timestamp", "audio", "data", "x"]),
        _VALUES,
        max_size=5,
    ),
)
def test_chunk_lines_are_written_as_the_json_encoder_writes_them(kind, t, fields) -> None:
    """The per-chunk lines take a direct path; whatever their fields, the line is the one
    the general path (json with the payload dropped) would write."""
    with tempfile.TemporaryDirectory() as tmp:
        w = LogWriter(tmp)
        w.write_event(t, "recv", kind, **fields)
        w.close()
        line = (w.path / "events.jsonl").read_text().splitlines()[-1]
    drop = {"input.audio": "audio", "reply.audio": "data"}[kind]
    expect = {"t": t, "dir": "recv", "type": kind}
    expect.update((k, scrub(v)) for k, v in fields.items() if k != drop)
    assert line == json.dumps(expect)
