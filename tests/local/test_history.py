"""The stand-in agent's session history (live observations, session history): sessions
recorded, listed, fetched; recordings, timelines, metadata; pre-signed artifact URLs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from rawclient import RawClient, run, silence, speech

import voicekit as vk
from voicekit.audio import encode_for_wire

pytestmark = pytest.mark.slow

RATE = 24000
KEY = "vk_test_history_key"


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """(status, headers, body) of a GET, error statuses included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, body = http_get(url, headers)
    return status, json.loads(body)


def base(agent: vk.local.LocalAgent) -> str:
    return f"http://{agent.host}:{agent.port}"


def detail(agent: vk.local.LocalAgent, session_id: str, **kw: Any) -> dict[str, Any]:
    status, body = get_json(f"{base(agent)}/v1/sessions/{session_id}", **kw)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def wait_artifacts(
    agent: vk.local.LocalAgent, session_id: str, timeout: float = 5.0, **kw: Any
) -> dict[str, Any]:
    """Poll the record until its artifacts are listed (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        record = detail(agent, session_id, **kw)
        if record["artifacts"]:
            return record
        assert time.monotonic() < deadline, f"no artifacts within {timeout} s: {record}"
        time.sleep(0.1)


def wait_completed(
    agent: vk.local.LocalAgent, session_id: str, timeout: float = 5.0, **kw: Any
) -> dict[str, Any]:
    """Poll the record until the agent has closed the session (a moment after session.ended)."""
    deadline = time.monotonic() + timeout
    while True:
        record = detail(agent, session_id, **kw)
        if record["status"] == "completed":
            return record
        assert time.monotonic() < deadline, f"still {record['status']} after {timeout} s"
        time.sleep(0.02)


def artifacts(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["type"]: a for a in record["artifacts"]}


def fetch(record: dict[str, Any], kind: str) -> bytes:
    status, headers, body = http_get(artifacts(record)[kind]["url"])
    assert status == 200, body
    assert headers["Content-Type"] == artifacts(record)[kind]["content_type"]
    return body


def decode_ogg(data: bytes) -> np.ndarray:
    audio, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    assert rate == RATE and audio.shape[1] == 2
    return audio


def onset(x: np.ndarray, start: int = 0, level: int = 300) -> float:
    """Seconds of the first sample at or after ``start`` louder than ``level``."""
    loud = np.flatnonzero(np.abs(x[start:].astype(np.int32)) > level)
    assert len(loud), "no audio above the level"
    return (start + int(loud[0])) / RATE


def mean_abs(x: np.ndarray, a: float, b: float) -> float:
    return float(np.abs(x[int(a * RATE) : int(b * RATE)].astype(np.int32)).mean())


def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


@pytest.fixture(scope="module")
def served(agent: vk.local.LocalAgent, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One scripted session (greeting + one user turn) through vk.Session: its log and record."""
    s = vk.Session(
        url=agent.url,
        audio_in=vk.ScriptedUser([vk.Say("hello there")]),
        audio_out="null",
        log_dir=tmp_path_factory.mktemp("history"),
        greeting="Hi",
    )
    s.start()
    assert s.wait(60)
    log = s.stop()
    return log, wait_artifacts(agent, log.session_id)


def test_the_session_is_listed_with_its_three_artifacts(agent, served) -> None:
    log, record = served
    status, listing = get_json(f"{base(agent)}/v1/sessions?limit=5")
    assert status == 200
    assert set(listing) == {"sessions", "has_more", "response_metadata"}
    assert "next_cursor" in listing["response_metadata"]
    mine = [s for s in listing["sessions"] if s["id"] == log.session_id]
    assert len(mine) == 1
    ended = log.of_type("session.ended")[0]
    assert mine[0]["agent_id"] is None
    assert mine[0]["status"] == "completed" and mine[0]["public_close_reason"] == "client_end"
    assert mine[0]["duration_seconds"] == ended["session_duration_seconds"]
    for key in ("id", "agent_id", "status", "public_close_reason", "duration_seconds"):
        assert record[key] == mine[0][key]
    assert {"config", "created_at", "ended_at", "artifacts"} <= set(record)
    assert record["config"]["id"] == log.session_id and record["config"]["greeting"] == "Hi"
    assert {a["type"]: a["content_type"] for a in record["artifacts"]} == {
        "audio": "audio/ogg",
        "timeline": "application/json",
        "metadata": "application/json",
    }
    for a in record["artifacts"]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(a["url"]).query)
        assert int(query["expires"][0]) == pytest.approx(time.time() + 3600, abs=120)
        assert a["url"].startswith(f"{base(agent)}/v1/artifacts/{log.session_id}/{a['type']}?")


def test_timeline_turns_match_the_clients_log(served) -> None:
    log, record = served
    timeline = json.loads(fetch(record, "timeline"))
    assert set(timeline) == {"session_id", "started_at_unix_ms", "turns", "config_changes", "ended"}
    assert timeline["session_id"] == log.session_id and timeline["config_changes"] == []
    ready = log.of_type("session.ready")[0]
    assert timeline["started_at_unix_ms"] == pytest.approx(ready["timestamp"] * 1000, abs=50)
    assert timeline["ended"] == {
        "reason": "user_initiated",
        "public_reason": "client_end",
        "duration_seconds": log.of_type("session.ended")[0]["session_duration_seconds"],
    }

    def ms(event: dict[str, Any]) -> float:  # the client's time of an event, on the record's clock
        return (event["t"] - ready["t"]) * 1000

    turns = timeline["turns"]
    replies = log.of_type("reply.started")
    assert [t["turn_id"] for t in turns] == [r["reply_id"] for r in replies]
    assert [t["item_id"] for t in turns] == [r["item_id"] for r in replies]
    assert [t["trigger"] for t in turns] == ["greeting", "user_speech"]
    assert [t["status"] for t in turns] == ["completed", "completed"]
    keys = {
        "turn_id", "item_id", "status", "trigger", "requested_instructions", "user_transcript",
        "user_speech_started_at_ms", "user_speech_ended_at_ms", "user_confidence", "agent_text",
        "agent_reply_started_at_ms", "agent_reply_ended_at_ms", "interrupted_at_ms",
        "time_to_first_audio_ms", "tool_calls",
    }  # fmt: skip
    assert all(set(t) == keys for t in turns)
    greeting, answer = turns
    assert greeting["user_transcript"] is None and greeting["time_to_first_audio_ms"] is None
    finals = log.of_type("transcript.agent")
    assert [t["agent_text"] for t in turns] == [f["text"] for f in finals]
    assert answer["user_transcript"] == log.of_type("transcript.user")[0]["text"]
    started, stopped = (
        log.of_type("input.speech.started")[0],
        log.of_type("input.speech.stopped")[0],
    )
    assert answer["user_speech_started_at_ms"] == pytest.approx(ms(started), abs=150)
    # the end-of-turn commit (input.speech.stopped), not the acoustic end of the utterance
    assert answer["user_speech_ended_at_ms"] == pytest.approx(ms(stopped), abs=150)
    acoustic_end = ms({"t": log.of_type("user.utterance")[0]["end"]})
    assert answer["user_speech_ended_at_ms"] > acoustic_end + 300
    for turn, reply, done in zip(turns, replies, log.of_type("reply.done"), strict=True):
        assert turn["agent_reply_started_at_ms"] == pytest.approx(ms(reply), abs=150)
        assert turn["agent_reply_ended_at_ms"] == pytest.approx(ms(done), abs=150)
        assert turn["interrupted_at_ms"] is None and turn["tool_calls"] == []
    # commit -> the first audible agent sample of the answer (after its lead-in silence)
    audio = decode_ogg(fetch(record, "audio"))
    commit = answer["user_speech_ended_at_ms"] / 1000
    first_audible = onset(audio[:, 1], int(commit * RATE), level=104)
    assert answer["time_to_first_audio_ms"] == pytest.approx(
        (first_audible - commit) * 1000, abs=40
    )
    assert answer["time_to_first_audio_ms"] > (ms(replies[1]) - ms(stopped))  # lead-in silence


def test_recording_is_stereo_user_left_agent_right_on_the_clients_clock(served) -> None:
    log, record = served
    audio = decode_ogg(fetch(record, "audio"))
    duration = record["duration_seconds"]
    assert len(audio) / RATE == pytest.approx(duration, abs=0.3)
    user, agent = audio[:, 0], audio[:, 1]
    ready_t = log.of_type("session.ready")[0]["t"]
    client_user, _ = log.audio("user")
    client_agent, _ = log.audio("agent")
    # onsets on the record's clock (0 = session.ready) against the client's tracks
    assert onset(user) == pytest.approx(onset(client_user) - ready_t, abs=0.3)
    assert onset(agent) == pytest.approx(onset(client_agent) - ready_t, abs=0.3)
    said = log.of_type("user.utterance")[0]
    a, b = said["start"] - ready_t, said["end"] - ready_t
    assert mean_abs(user, a, b) > 300  # the user where the user spoke
    assert mean_abs(agent, a, b) < 30  # the agent silent meanwhile
    greeting_end = (log.of_type("reply.done")[0]["t"]) - ready_t
    assert mean_abs(agent, onset(agent), greeting_end) > 300
    assert mean_abs(user, 0, greeting_end) < 30
    second = onset(agent, int((said["end"] - ready_t) * RATE))
    assert mean_abs(agent, second, second + 0.5) > 300  # the answer, after the turn


def test_metadata_fields(served) -> None:
    log, record = served
    metadata = json.loads(fetch(record, "metadata"))
    assert metadata == {
        "session_id": log.session_id,
        "started_at": record["created_at"],
        "ended_at": record["ended_at"],
        "format": "ogg/opus",
        "channels": 2,
        "channel_layout": "stereo (left=user, right=agent)",
        "sample_rate": 24000,
        "file": f"{log.session_id}/recording/audio.ogg",
        "uploaded_chunks": math.ceil(len(decode_ogg(fetch(record, "audio"))) / (8 * RATE)),
        "dropped_chunks": 0,
    }
    assert record["created_at"].endswith("Z") and record["created_at"] < record["ended_at"]


def test_signed_urls_tampered_or_expired_are_refused(agent, served) -> None:
    log, record = served
    url = artifacts(record)["audio"]["url"]
    status, headers, body = http_get(url, {"Range": "bytes=0-3"})
    assert status == 206 and body == b"OggS" and headers["Content-Type"] == "audio/ogg"
    head, _, sig = url.rpartition("signature=")
    tampered = head + "signature=" + ("0" if sig[0] != "0" else "1") + sig[1:]
    status, error = get_json(tampered)
    assert status == 403 and error["code"] == "signature_does_not_match"
    # the timeline URL's signature does not open the audio
    other = artifacts(record)["timeline"]["url"].replace("/timeline?", "/audio?")
    assert get_json(other)[0] == 403
    expired = agent.history.sign_url(base(agent), log.session_id, "audio", int(time.time()) - 1)
    status, error = get_json(expired)
    assert status == 403 and error["code"] == "access_denied" and "expired" in error["message"]
    status, error = get_json(url.partition("?")[0])
    assert status == 403 and error["code"] == "access_denied"
    status, error = get_json(f"{base(agent)}/v1/sessions/sess_nope")
    assert status == 404 and error["code"] == "session_not_found"


def test_tool_turns(agent, tmp_path) -> None:
    s = vk.Session(
        url=agent.url,
        tools=[get_weather],
        audio_in=vk.ScriptedUser([vk.Say("what is the weather in paris")]),
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    assert s.wait(60)
    log = s.stop()
    timeline = json.loads(fetch(wait_artifacts(agent, log.session_id), "timeline"))
    turns = timeline["turns"]
    assert [t["trigger"] for t in turns] == ["user_speech", "tool_result"]
    asked, answered = turns
    assert asked["time_to_first_audio_ms"] is None  # tool turns have none
    assert answered["time_to_first_audio_ms"] is None
    (call,) = asked["tool_calls"]
    sent = log.of_type("tool.call")[0]
    result = log.of_type("tool.result")[0]
    assert call["call_id"] == sent["call_id"] and call["name"] == "get_weather"
    assert call["arguments"] == sent["arguments"]
    assert call["result"] == result["result"] and call["is_error"] is False
    assert call["timed_out"] is False and call["parallel_call_id"] is None
    assert call["duration_ms"] == call["result_received_at_ms"] - call["dispatched_at_ms"] >= 0
    assert call["dispatched_at_ms"] <= answered["agent_reply_started_at_ms"]
    assert "21" in answered["agent_text"]


def test_active_sessions_are_listed_and_unready_ones_never(agent) -> None:
    async def main() -> None:
        before = get_json(f"{base(agent)}/v1/sessions?limit=100")[1]["sessions"]
        refused = await RawClient.open(agent.url)
        await refused.send("session.update", session={"output": {"voice": "not_a_voice"}})
        await refused.wait_for("session.error")
        await asyncio.wait_for(refused.closed.wait(), 5)
        idle = await RawClient.open(agent.url)
        await idle.close()
        live = await RawClient.open(agent.url, session={})
        sid = live.of("session.ready")[0]["session_id"]
        listing = get_json(f"{base(agent)}/v1/sessions?limit=100")[1]["sessions"]
        assert [s["id"] for s in listing] == [sid] + [s["id"] for s in before]
        assert listing[0]["status"] == "active" and listing[0]["ended_at"] is None
        record = detail(agent, sid)
        assert record["status"] == "active" and record["artifacts"] == []
        await live.stream(speech("good morning"))
        await live.stream(silence(1.0))
        await live.send("session.end")
        await live.wait_for("session.ended")
        record = wait_artifacts(agent, sid)
        assert record["status"] == "completed"
        audio = decode_ogg(fetch(record, "audio"))
        assert mean_abs(audio[:, 0], 0, len(audio) / RATE) > 100

    run(main())


def test_mulaw_input_is_recorded(agent) -> None:
    async def main() -> None:
        fmt = {"encoding": "audio/pcmu"}
        client = await RawClient.open(
            agent.url, session={"input": {"format": fmt}, "output": {"format": fmt}}
        )
        sid = client.of("session.ready")[0]["session_id"]
        said = np.concatenate([silence(0.5), speech("good morning to you"), silence(1.0)])
        wire = encode_for_wire(said, "audio/pcmu")
        start = time.monotonic()
        for k in range(0, len(wire), 400):  # 50 ms of 8 kHz mu-law, in real time
            await client.send("input.audio", audio=base64.b64encode(wire[k : k + 400]).decode())
            await asyncio.sleep(max(0.0, start + (k + 400) / 8000 - time.monotonic()))
        await client.send("session.end")
        await client.wait_for("session.ended")
        audio = decode_ogg(fetch(wait_artifacts(agent, sid), "audio"))
        sent_onset = onset(said)
        assert onset(audio[:, 0]) == pytest.approx(sent_onset, abs=0.3)
        assert mean_abs(audio[:, 0], sent_onset, sent_onset + 0.5) > 300

    run(main())


def test_cursor_paging_newest_first(agent) -> None:
    async def main() -> list[str]:
        ids = []
        for _ in range(3):
            client = await RawClient.open(agent.url, session={})
            ids.append(client.of("session.ready")[0]["session_id"])
            await client.send("session.end")
            await client.wait_for("session.ended")
            await client.close()
        return ids

    made = run(main())
    everything = get_json(f"{base(agent)}/v1/sessions?limit=100")[1]
    assert everything["has_more"] is False
    assert everything["response_metadata"]["next_cursor"] is None
    all_ids = [s["id"] for s in everything["sessions"]]
    assert all_ids[:3] == made[::-1]
    paged, cursor = [], ""
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = get_json(f"{base(agent)}/v1/sessions?{query}")
        assert status == 200 and len(page["sessions"]) <= 2
        paged += [s["id"] for s in page["sessions"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert paged == all_ids
    assert get_json(f"{base(agent)}/v1/sessions?limit=1&after={cursor or 'x'}")[0] == 400
    assert get_json(f"{base(agent)}/v1/sessions?limit=0")[0] == 422


def _writer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("voicekit-history")}


def test_hosted_profile_delays_artifacts_and_rest_needs_the_key() -> None:
    writers = _writer_threads()  # the module agent's
    with vk.local.serve(profile="hosted", api_key=KEY, asr_processes=0) as hosted:
        auth = {"Authorization": f"Bearer {KEY}"}

        async def main() -> tuple[str, float]:
            client = await RawClient.open(
                hosted.url, session={}, additional_headers={"Authorization": KEY}
            )
            sid = client.of("session.ready")[0]["session_id"]
            await client.send("session.end")
            await client.wait_for("session.ended")
            return sid, time.monotonic()

        sid, ended = run(main())
        record = wait_completed(hosted, sid, headers=auth)
        assert record["artifacts"] == []  # listed at once, its artifacts ~6.7 s later
        listing = get_json(f"{base(hosted)}/v1/sessions?limit=10", auth)[1]["sessions"]
        assert [s["id"] for s in listing] == [sid] and listing[0]["status"] == "completed"
        assert get_json(f"{base(hosted)}/v1/sessions")[0] == 422
        assert get_json(f"{base(hosted)}/v1/sessions", {"Authorization": "Bearer nope"})[0] == 404
        assert get_json(f"{base(hosted)}/v1/sessions", {"Authorization": KEY})[0] == 200
        record = wait_artifacts(hosted, sid, timeout=20, headers=auth)
        assert time.monotonic() - ended > 5.5  # designed: ~6.7 s after session.end
        metadata = json.loads(fetch(record, "metadata"))  # no credential: the URL is signed
        assert metadata["session_id"] == sid
        directory = Path(hosted.history.directory)
        assert (directory / f"{sid}.ogg").exists()
    assert not directory.exists()  # the recordings go with the agent
    assert _writer_threads() == writers  # the hosted agent's writer thread has ended


# -- the recorder driven through a ServerProtocol, on an injected clock (no sockets) ---------
class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def pcm_b64(samples: np.ndarray) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


def tone(seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    return (3000 * np.sin(np.arange(n) * 2 * np.pi * 440 / RATE)).astype(np.int16)


def test_recorder_timeline_through_the_protocol(tmp_path) -> None:
    from voicekit.local.history import HistoryStore
    from voicekit.protocol.server import ServerProtocol, SessionStarted

    clock = Clock()
    store = HistoryStore("fast", monotonic=clock)
    proto = ServerProtocol(monotonic=clock)
    tool = {"type": "function", "name": "lookup", "description": "x", "timeout_seconds": 5}
    (started,) = proto.receive(frame("session.update", session={"greeting": "Hi", "tools": [tool]}))
    assert isinstance(started, SessionStarted)
    recorder = store.record(proto, started.session_id, started.config)
    try:

        def at(t: float) -> ServerProtocol:
            clock.t = t
            return proto

        def speak(t: float, reply_id: str, seconds: float, lead: float = 0.25) -> None:
            at(t).reply_audio(reply_id, np.zeros(int(lead * RATE), np.int16).tobytes())
            at(t + lead).reply_audio(reply_id, tone(seconds).tobytes())

        greeting, _ = at(0.0).reply_started()
        speak(0.0, greeting, 0.5)
        at(1.0).agent_final(greeting, "m", "Hi", interrupted=False)
        proto.reply_done(greeting)
        for k in range(20):  # 1 s of user speech from t=1.5, 50 ms frames on time
            at(1.55 + 0.05 * k).receive(frame("input.audio", audio=pcm_b64(tone(0.05))))
        at(1.7).speech_started()
        at(3.1).speech_stopped()  # the commit, 0.6 s after the acoustic end
        proto.user_final("msg_u1", "look up my order")
        asked, _ = proto.reply_started()
        speak(3.1, asked, 0.4)
        for word in ("Let", "me", "check"):
            proto.agent_delta(asked, "m", word, 0, 10)
        call_id = proto.new_call_id()
        at(4.0).tool_call_event({"call_id": call_id, "name": "lookup", "arguments": {"n": 1}})
        proto.agent_final(asked, "m", "Let me check", interrupted=False)
        proto.reply_done(asked)
        at(6.5).receive(frame("tool.result", call_id=call_id, result='{"ok": true}'))
        answer, _ = proto.reply_started()
        speak(6.5, answer, 0.4)
        for word in ("It", "is", "on", "its", "way"):
            proto.agent_delta(answer, "m", word, 0, 10)
        at(7.0).speech_started()  # barge-in
        at(7.2).agent_final(answer, "m", "It", interrupted=True)
        proto.reply_done(answer, "interrupted")
        at(8.0).receive(frame("reply.create", instructions="say bye"))
        bye, _ = proto.reply_started()
        at(8.5).reply_done(bye)
        at(9.0).receive(frame("session.update", session={"system_prompt": "new"}))
        at(10.0).receive(frame("session.end"))
        store.finish(recorder)
        record = store.finished[started.session_id]
        record.closed.result(10)
        turns = record.timeline["turns"]
        assert [t["trigger"] for t in turns] == [
            "greeting",
            "user_speech",
            "tool_result",
            "reply_create",
        ]
        assert [t["status"] for t in turns] == [
            "completed",
            "completed",
            "interrupted",
            "completed",
        ]
        assert turns[0]["agent_reply_started_at_ms"] == 0
        assert turns[0]["agent_reply_ended_at_ms"] == 1000
        user = turns[1]
        assert user["user_transcript"] == "look up my order"
        assert (user["user_speech_started_at_ms"], user["user_speech_ended_at_ms"]) == (1700, 3100)
        assert user["time_to_first_audio_ms"] is None  # a tool turn
        assert user["agent_text"] == "Let me check"
        (call,) = user["tool_calls"]
        assert call == {
            "call_id": call_id,
            "name": "lookup",
            "arguments": {"n": 1},
            "result": '{"ok": true}',
            "dispatched_at_ms": 4000,
            "result_received_at_ms": 6500,
            "duration_ms": 2500,
            "is_error": False,
            "timed_out": False,
            "parallel_call_id": None,
        }
        cut = turns[2]
        assert cut["interrupted_at_ms"] == 7200 and cut["agent_reply_ended_at_ms"] == 7200
        assert cut["agent_text"] == "It is on its way"  # unspoken words included
        assert cut["time_to_first_audio_ms"] is None
        assert turns[3]["requested_instructions"] == "say bye"
        assert record.timeline["config_changes"] == [
            {"at_ms": 9000, "changes": {"system_prompt": "new"}}
        ]
        assert record.timeline["ended"] == {
            "reason": "user_initiated",
            "public_reason": "client_end",
            "duration_seconds": 10.0,
        }
        audio, rate = sf.read(record.path, dtype="int16", always_2d=True)
        assert rate == RATE and len(audio) / RATE == pytest.approx(10.0, abs=0.05)
        # the user where its samples arrived (the frame ending at 1.55 s started at 1.5 s)
        assert onset(audio[:, 0]) == pytest.approx(1.5, abs=0.02)
        assert mean_abs(audio[:, 0], 1.55, 2.45) > 1000 and mean_abs(audio[:, 0], 2.6, 10) < 30
        # the agent where its chunks were sent: each reply after its 0.25 s lead-in
        for t in (0.0, 3.1, 6.5):
            assert onset(audio[:, 1], int(t * RATE)) == pytest.approx(t + 0.25, abs=0.02)
        assert mean_abs(audio[:, 1], 1.0, 3.3) < 30
    finally:
        store.close()
    assert not Path(store.directory).exists()


def test_a_drop_ends_the_recording_there_and_a_paused_stream_keeps_its_gap() -> None:
    from voicekit.local.history import HistoryStore
    from voicekit.protocol.server import ServerProtocol

    clock = Clock()
    store = HistoryStore("hosted", monotonic=clock)
    proto = ServerProtocol(monotonic=clock)
    (started,) = proto.receive(frame("session.update", session={}))
    recorder = store.record(proto, started.session_id, started.config)
    try:
        for t0 in (0.0, 4.0):  # 0.5 s of audio, a 3.5 s pause in the stream, 0.5 s more
            for k in range(10):
                clock.t = t0 + 0.05 * (k + 1)
                proto.receive(frame("input.audio", audio=pcm_b64(tone(0.05))))
        clock.t = 5.0
        store.detached(recorder)  # the socket dropped
        clock.t = 35.0  # the resume window closed
        store.finish(recorder)
        record = store.finished[started.session_id]
        assert record.timeline["ended"]["reason"] == "participant_disconnected"
        assert record.timeline["ended"]["duration_seconds"] == 5.0
        assert not store.detail(started.session_id, "http://h")["artifacts"]  # hosted: later
        clock.t = 35.0 + 6.8
        assert len(store.detail(started.session_id, "http://h")["artifacts"]) == 3
        audio, _ = sf.read(record.path, dtype="int16", always_2d=True)
        assert len(audio) / RATE == pytest.approx(5.0, abs=0.05)
        assert mean_abs(audio[:, 0], 0.05, 0.45) > 1000
        assert mean_abs(audio[:, 0], 0.6, 3.9) < 30  # the pause, kept as silence
        assert onset(audio[:, 0], int(1 * RATE)) == pytest.approx(4.0, abs=0.02)
    finally:
        store.close()
