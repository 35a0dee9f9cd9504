"""Hosted sessions read as logs, checked against the client's own bundle of the same session.

Each session runs against the stand-in agent (fast profile, with an API key) with a
scripted user; its history artifacts are downloaded and read with ``vk.load_hosted``. The
client's bundle is the ground truth for when audio was sent and played; its times are moved
to the recording's clock (0 = ``session.ready``). The truth for the user's speech is the
first and last audible sample of each utterance in the client's ``user.wav``; for the
agent, the client's own turn table (``a_on``, as played).

Tolerances: the twin places the user's audio where it arrived less its duration (one
20-50 ms frame of jitter on a busy machine), and the agent's where it was sent (the client
plays it a few ms later, after its jitter buffer): ``PLACE`` = 0.1 s for times taken from
the two different clocks. Speech edges found on the recording are within the VAD's frame
and Opus's smear of the truth: ``EDGE`` = 0.06 s plus the placement. Timeline values are
compared with the client's receive times of the same events: ``PLACE``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import soundfile as sf

import voicekit as vk
from voicekit.audio.level import AUDIBLE
from voicekit.logformat import LogFormatWarning

matplotlib.use("Agg")

pytestmark = pytest.mark.slow  # one real-time session (~20 s), shared by the module

R = 24000
KEY = "vk_test_hosted_load_key"
PLACE = 0.1
EDGE = 0.06 + PLACE


@pytest.fixture(scope="module")
def voicekit_agent_options() -> dict[str, object]:
    return {"profile": "fast", "behaviour": {"resume_fails": False}, "api_key": KEY}


def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


@pytest.fixture(scope="module")
def served(agent, tmp_path_factory) -> tuple[vk.SessionLog, Path]:
    """Greeting; a question the user interrupts 1 s into its answer; the answer to the
    barge-in; a question answered with a tool."""
    s = vk.Session(
        url=agent.url,
        api_key=KEY,
        greeting="Hello, how can I help you today?",
        tools=[get_weather],
        audio_in=vk.ScriptedUser(
            [
                vk.Say("tell me a long story about the sea"),
                vk.BargeIn("stop please", after=1.0),
                vk.Say("what is the weather in paris"),
            ]
        ),
        audio_out="null",
        log_dir=tmp_path_factory.mktemp("bundles"),
    )
    s.start()
    assert s.wait(90)
    log = s.stop()
    into = tmp_path_factory.mktemp("hosted")
    return log, vk.hosted.download(log.session_id, into, url=agent.url, api_key=KEY, wait=10)


def ready_t(log: vk.SessionLog) -> float:
    return float(log.of_type("session.ready")[0]["t"])


def spoken(log: vk.SessionLog) -> list[tuple[float, float]]:
    """Each utterance's first and last audible sample in the client's user.wav, moved to
    the recording's clock."""
    user, _ = log.audio("user")
    out = []
    for u in log.of_type("user.utterance"):
        a, b = round(u["start"] * R), round(u["end"] * R)
        loud = np.flatnonzero(np.abs(user[a:b].astype(np.int32)) >= AUDIBLE)
        out.append(((a + loud[0]) / R - ready_t(log), (a + loud[-1] + 1) / R - ready_t(log)))
    return out


def copy(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def test_turns_match_the_clients_bundle(served) -> None:
    log, d = served
    h = vk.load_hosted(d)
    assert isinstance(h, vk.SessionLog)
    assert h.backend == "hosted" and h.session_id == log.session_id
    assert h.config["greeting"] == "Hello, how can I help you today?"
    assert h.started_at.endswith("Z") and h.started_at[:16] in log.started_at
    ended = log.of_type("session.ended")[0]["session_duration_seconds"]
    assert h.duration == pytest.approx(ended, abs=0.05)  # the recording's last Opus frame
    assert repr(h).startswith(f"<HostedSession {log.session_id} turns=5")
    assert all(e["origin"] in ("timeline", "recording") for e in h.raw_events)

    turns, truth, client = h.turns, spoken(log), log.turns
    assert len(turns) == len(client) == 3
    assert list(turns["reply_id"]) == list(client["reply_id"])
    assert list(turns["source"]) == ["recording"] * 3
    assert list(turns["measured_from"]) == ["recording"] * 3
    r0 = ready_t(log)
    stopped = [e["t"] - r0 for e in log.of_type("input.speech.stopped")]
    for row, (u_on, u_off), mine, commit in zip(
        turns.itertuples(), truth, client.itertuples(), stopped, strict=True
    ):
        assert row.u_on == pytest.approx(u_on, abs=EDGE)
        assert row.u_off == pytest.approx(u_off, abs=EDGE)
        assert row.a_on == pytest.approx(mine.a_on - r0, abs=EDGE)
        assert row.a_off == pytest.approx(mine.a_off - r0, abs=EDGE)
        assert row.fto == pytest.approx(mine.a_on - r0 - u_off, abs=EDGE + PLACE)
        # the server's commit, not the acoustic end: later by the endpointing delay
        assert row.commit == pytest.approx(commit, abs=PLACE)
        assert row.commit > row.u_off + 0.2
        assert row.endpoint_delay == pytest.approx(commit - u_off, abs=EDGE + PLACE)
        assert row.endpoint_delay == pytest.approx(row.commit - row.u_off)
        assert row.lead_silence == pytest.approx(mine.lead_silence, abs=PLACE)
        assert math.isnan(row.playout_delay)  # the recording is what the service sent
    answered, barged, asked = turns.itertuples()
    # the service's time to first audio: commit -> first audible sample, on the recording
    for row in (answered, barged):
        assert row.server_ttfa == pytest.approx(row.a_on - row.commit, abs=0.045)
    assert list(turns["interrupted"]) == [True, False, False]
    assert answered.unspoken_text  # its text holds the words cut off by the barge-in
    assert not barged.unspoken_text and not asked.unspoken_text
    assert barged.text == "stop please" and barged.overlap > 0.3

    summary = h.summary()
    assert summary["turns"] == 3 and summary["barge_ins"] == 1 and summary["interrupted"] == 1
    assert summary["measured_from"] == "recording"
    assert summary["server_ttfa_median"] == pytest.approx(
        np.median([answered.server_ttfa, barged.server_ttfa])
    )
    greeting_on = client_greeting_on = log.summary()["greeting_latency"]
    assert summary["greeting_latency"] == pytest.approx(greeting_on, abs=PLACE), client_greeting_on


def test_tool_turn_has_no_server_ttfa_and_its_duration_from_the_timeline(served) -> None:
    log, d = served
    h = vk.load_hosted(d)
    row = h.turns.iloc[2]
    assert math.isnan(row.server_ttfa)  # null on tool turns, as observed
    (call,) = json.loads((d / "timeline.json").read_text())["turns"][3]["tool_calls"]
    assert row.tool == "get_weather"
    assert row.tool_duration == pytest.approx(call["duration_ms"] / 1000)
    assert row.tool_exec == pytest.approx(row.tool_duration)
    assert row.tool_timed_out is False and row.tool_is_error is False
    r0 = ready_t(log)
    sent = log.of_type("tool.call")[0]["t"] - r0
    assert row.tool_server == pytest.approx(sent - row.u_off, abs=EDGE + PLACE)
    client = log.turns.iloc[2]  # its u_off is the clip's end, trailing silence included
    answer_on = client.u_off + client.tool_dead_air - r0  # the tool's answer, as played
    assert row.tool_dead_air == pytest.approx(answer_on - spoken(log)[2][1], abs=EDGE + PLACE)
    assert h.turns.attrs["measured_from"]["tool_duration"] == "timeline"
    assert h.turns.attrs["measured_from"]["fto"] == "recording"


def test_barge_in_measured_on_the_recording(served) -> None:
    log, d = served
    h = vk.load_hosted(d)
    (bi,) = h.barge_ins.itertuples()
    (client,) = log.barge_ins.itertuples()
    r0 = ready_t(log)
    assert bi.kind == "interruption" and bi.source == "recording"
    assert bi.reply_id == client.reply_id
    assert bi.onset == pytest.approx(spoken(log)[1][0], abs=EDGE)
    # the agent's audio on the recording stops where the client stopped playing it
    assert bi.onset + bi.stop_latency == pytest.approx(
        client.onset + client.stop_latency - r0, abs=EDGE
    )
    started = log.of_type("input.speech.started")[1]["t"] - r0
    assert bi.detect_latency == pytest.approx(started - bi.onset, abs=PLACE)
    assert bi.interrupted_at == pytest.approx(log.of_type("reply.done")[1]["t"] - r0, abs=PLACE)
    assert bi.server_stop_latency == pytest.approx(bi.interrupted_at - bi.onset)
    fig = vk.plot_timeline(h)
    assert fig.axes[0].get_xlabel() == "session time (s)"


def test_mislabelled_greeting_is_the_tool_answer(served, tmp_path) -> None:
    _, d = served
    odd = copy(d, tmp_path / d.name)
    timeline = json.loads((odd / "timeline.json").read_text())
    assert timeline["turns"][4]["trigger"] == "tool_result"  # the twin labels it right
    timeline["turns"][4]["trigger"] = "greeting"  # as the service labelled an HTTP tool's
    (odd / "timeline.json").write_text(json.dumps(timeline))
    h, plain = vk.load_hosted(odd), vk.load_hosted(d)
    assert list(h.turns["trigger_fixed"]) == [False, False, True]
    started = h.of_type("reply.started")
    assert [e["trigger"] for e in started][-1] == "tool_result"
    assert started[-1]["trigger_label"] == "greeting" and started[0]["trigger"] == "greeting"
    cols = ["u_on", "u_off", "a_on", "a_off", "fto", "tool_dead_air", "reply_text"]
    assert h.turns[cols].equals(plain.turns[cols])  # still the tool turn's answer
    assert h.summary()["greeting_latency"] == plain.summary()["greeting_latency"]


def test_config_changes_are_epochs(served, tmp_path) -> None:
    _, d = served
    odd = copy(d, tmp_path / d.name)
    timeline = json.loads((odd / "timeline.json").read_text())
    at_ms = timeline["turns"][3]["user_speech_started_at_ms"] - 1000  # before the last turn
    change = {"input": {"turn_detection": {"min_silence": 300, "max_silence": 1200}}}
    timeline["config_changes"] = [{"at_ms": at_ms, "changes": change}]
    (odd / "timeline.json").write_text(json.dumps(timeline))
    h = vk.load_hosted(odd)
    (epoch,) = [e for e in h.of_type("config.epoch") if e["epoch"] == 1]
    assert epoch["t"] == at_ms / 1000 and epoch["patch"] == change
    assert epoch["config"]["output"]["voice"] == h.config["output"]["voice"]  # merged
    turns = h.turns
    assert list(turns["epoch"]) == [0, 0, 1]
    assert list(turns["min_silence"])[2] == 300 and list(turns["max_silence"])[2] == 1200


def test_text_the_agent_never_spoke(served, tmp_path) -> None:
    """The agent channel silenced where the tool's answer was: its text is unspoken."""
    _, d = served
    odd = copy(d, tmp_path / d.name)
    audio, rate = sf.read(str(odd / "recording.ogg"), dtype="float32", always_2d=True)
    answer = json.loads((odd / "timeline.json").read_text())["turns"][4]
    audio[round(answer["agent_reply_started_at_ms"] / 1000 * rate) :, 1] = 0
    sf.write(str(odd / "recording.ogg"), audio, rate, format="OGG", subtype="OPUS")
    h = vk.load_hosted(odd)
    row = h.turns.iloc[2]
    assert row.unspoken_text
    assert row.a_off == pytest.approx(answer["agent_reply_started_at_ms"] / 1000, abs=0.05)


def test_without_the_recording_the_timeline_gives_the_metrics(served, tmp_path) -> None:
    _, d = served
    odd = copy(d, tmp_path / d.name, drop=("recording.ogg",))
    with pytest.warns(LogFormatWarning, match=r"recording\.ogg: missing.*vk\.hosted\.download"):
        h = vk.load_hosted(odd)
    timeline = json.loads((d / "timeline.json").read_text())["turns"]
    turns = h.turns
    assert list(turns["measured_from"]) == ["timeline"] * 3
    assert list(turns["source"]) == ["timeline"] * 3
    users = [t for t in timeline if t["user_speech_started_at_ms"] is not None]
    assert list(turns["u_on"]) == [t["user_speech_started_at_ms"] / 1000 for t in users]
    assert list(turns["u_off"]) == [t["user_speech_ended_at_ms"] / 1000 for t in users]
    first = users[0]
    a_on = (first["user_speech_ended_at_ms"] + first["time_to_first_audio_ms"]) / 1000
    assert turns.iloc[0].a_on == pytest.approx(a_on)
    assert turns.iloc[0].fto == pytest.approx(first["time_to_first_audio_ms"] / 1000)
    assert turns["endpoint_delay"].isna().all()  # no acoustic end to measure it from
    assert math.isnan(turns.iloc[2].a_on)  # a tool turn: the timeline has no first audio
    assert h.summary()["measured_from"] == "timeline"
    assert "no recording" in repr(h)


def test_missing_and_bad_files(served, tmp_path) -> None:
    _, d = served
    odd = copy(d, tmp_path / "a", drop=("timeline.json",))
    with pytest.raises(vk.LogFormatError, match=r"timeline\.json.*vk\.hosted\.download"):
        vk.load_hosted(odd)
    mono = copy(d, tmp_path / "b")
    audio, rate = sf.read(str(mono / "recording.ogg"), dtype="float32")
    sf.write(str(mono / "recording.ogg"), audio.mean(axis=1), rate, format="OGG", subtype="OPUS")
    with pytest.raises(vk.LogFormatError, match=r"has 1 channel; a hosted recording is stereo"):
        vk.load_hosted(mono)
    with pytest.raises(vk.LogFormatError, match="no such directory"):
        vk.load_hosted(tmp_path / "nope")
    bad = copy(d, tmp_path / "c")
    (bad / "timeline.json").write_text("{")
    with pytest.raises(vk.LogFormatError, match=r"timeline\.json.*not valid JSON"):
        vk.load_hosted(bad)
    # the download's parent directory, holding one session, is read as that session
    assert vk.load_hosted(d.parent).session_id == d.name


def test_load_hosted_by_id_downloads_then_reads(served, agent, tmp_path) -> None:
    log, d = served
    h = vk.load_hosted(log.session_id, dir=tmp_path, url=agent.url, api_key=KEY)
    assert h.path == tmp_path / log.session_id and (h.path / "session.json").exists()
    assert h.turns[["u_off", "commit"]].equals(vk.load_hosted(d).turns[["u_off", "commit"]])
    # downloaded already: read without asking (the address below answers nothing)
    again = vk.load_hosted(log.session_id, dir=tmp_path, url="ws://127.0.0.1:9/v1/ws")
    assert again.session_id == log.session_id
    with pytest.raises(vk.ServerError, match=r"no session 'sess_nope'.*list_sessions") as err:
        vk.load_hosted("sess_nope", dir=tmp_path, url=agent.url, api_key=KEY)
    assert err.value.code == "session_not_found"
    with pytest.raises(vk.LogFormatError, match="no such directory"):
        vk.load_hosted(str(tmp_path / "missing" / "sess_x"))
    assert not (tmp_path / "sess_nope").exists()


def test_load_logs_mixes_bundles_and_hosted_sessions(served) -> None:
    log, d = served
    df = vk.load_logs([log.path, d], progress=False)
    assert sorted(set(df["origin"])) == ["hosted", "voicekit"]
    assert list(df.columns[:5]) == ["session_id", "started_at", "backend", "origin", "log"]
    assert (df["session_id"] == log.session_id).sum() == 6  # one session, seen both ways
    hosted = df[df["origin"] == "hosted"]
    mine = df[df["origin"] == "voicekit"]
    assert list(hosted["backend"]) == ["hosted"] * 3 and list(hosted["log"]) == [str(d)] * 3
    assert hosted["commit"].notna().all() and mine["commit"].isna().all()
    assert np.allclose(hosted["fto"], mine["fto"], atol=EDGE + PLACE)
    # a parent directory of both is searched for either kind
    both = vk.load_logs([log.path.parent, d.parent], progress=False)
    assert sorted(both["origin"]) == sorted(df["origin"])
    # a call recording named beside them: its turns by voice activity alone
    three = vk.load_logs([log.path, d, d / "recording.ogg"], progress=False)
    recording = three[three["origin"] == "recording"]
    assert len(recording) == 3 and recording["commit"].isna().all()
    assert np.allclose(recording["u_on"], hosted["u_on"], atol=0.05)


def test_compare_lines_the_client_up_with_the_server(served) -> None:
    log, d = served
    c = vk.compare(log, vk.load_hosted(d))
    # the recording's clock starts at session.ready, which the client received one trip later
    assert c.attrs["offset"] == pytest.approx(ready_t(log), abs=PLACE)
    assert c.attrs["matched"] >= 10 and c.attrs["offset_spread"] < PLACE
    assert list(c["turn"]) == list(log.turns["turn"]) and not c["only"].any()
    assert list(c["reply_id"]) == list(log.turns["reply_id"])
    for name in ("a_on", "u_off"):  # both views measured the same audio
        assert c[f"{name}_diff"].abs().max() < EDGE, c[[f"{name}_client", f"{name}_server"]]
    timing = {"u_off", "a_on", "fto", "interrupted", "tool"}
    assert not any(timing & set(filter(None, d.split(", "))) for d in c["disagree"])


def test_compare_shows_where_the_views_disagree(served, tmp_path) -> None:
    log, d = served
    edited = copy(d, tmp_path / d.name)
    timeline = json.loads((edited / "timeline.json").read_text())
    turn = next(t for t in timeline["turns"] if t["tool_calls"])
    turn["tool_calls"] = []  # the server's record lost the tool call of the last turn
    (edited / "timeline.json").write_text(json.dumps(timeline))
    c = vk.compare(log, vk.load_hosted(edited))
    row = c[c["reply_id"] == log.turns["reply_id"].iloc[-1]].iloc[0]
    assert "tool" in row["disagree"].split(", ")
    assert row["tool_client"] == "get_weather" and not isinstance(row["tool_server"], str)


def test_compare_refuses_two_different_sessions(served, tmp_path) -> None:
    log, _ = served
    other = vk.load_log(sorted(Path(__file__).parents[2].glob("notebooks/example-logs/*"))[0])
    with pytest.raises(ValueError, match="share no event"):
        vk.compare(log, other)
