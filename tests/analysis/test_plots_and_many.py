"""Plots checked structurally; many logs at once; sweeps, reports and the CLI; a real run."""

from __future__ import annotations

import shutil
import subprocess
import sys

import matplotlib
import pytest

import voicekit as vk

from .test_metrics import Bundle, config, tone

matplotlib.use("Agg")


@pytest.fixture
def log(tmp_path) -> vk.SessionLog:
    b = Bundle(tmp_path)
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.ev(
        1.0, "local", "user.utterance", start=0.5, end=1.0, text="hello there", kind="turn", turn=0
    )
    b.ev(1.3, "recv", "input.speech.stopped")
    b.reply(
        "r1", 1.35, 1.4, tone(2.0), played=24000, status="interrupted", text="Hi, how can I help"
    )
    b.ev(2.0, "recv", "input.speech.started")
    b.ev(2.5, "local", "user.utterance", start=1.9, end=2.5, text="wait", kind="barge_in", turn=1)
    b.ev(
        3.0,
        "local",
        "config.epoch",
        epoch=1,
        config=config(300),
        patch={"input": {"turn_detection": {"min_silence": 300}}},
    )
    b.ev(4.0, "recv", "tool.call", call_id="c1", name="get_weather", arguments={})
    b.ev(4.2, "local", "tool.exec", call_id="c1", name="get_weather", start=4.0, end=4.2, ok=True)
    b.ev(4.21, "send", "tool.result", call_id="c1", result="{}")
    b.ev(3.8, "local", "user.utterance", start=3.2, end=3.8, text="weather", kind="turn", turn=2)
    b.reply("r2", 4.3, 4.4, tone(1.0), text="Sunny.")
    return b.close()


def test_timeline_has_lanes_markers_labels_and_epochs(log) -> None:
    fig = vk.plot_timeline(log)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["agent", "user"]
    assert ax.get_xlabel() == "session time (s)"
    labels = set(ax.get_legend_handles_labels()[1])
    assert {"user speech", "agent speech", "speech.started", "speech.stopped"} <= labels
    assert "barge-in residual (interruption)" in labels and "tool dead air" in labels
    texts = [t.get_text() for t in ax.texts]
    assert any("min_silence=300" in t for t in texts)  # the epoch boundary says what changed
    assert "get_weather()" in texts
    assert any(t.startswith("hello") for t in texts)  # transcripts as labels
    window = vk.plot_timeline(log, start=3.0, end=5.0).axes[0]
    assert window.get_xlim() == (3.0, 5.0)


def test_latency_fto_barge_in_and_sweep_plots(log) -> None:
    t = log.turns
    ax = vk.plot_latency(t, by="epoch").axes[0]
    assert [x.get_text() for x in ax.get_xticklabels()] == [
        "0",
        "1",
    ] and ax.get_ylabel() == "seconds"
    with pytest.raises(vk.ConfigError, match="by='nope' is not a column"):
        vk.plot_latency(t, by="nope")
    ax = vk.plot_fto(t).axes[0]
    assert "human modal gap" in " ".join(ax.get_legend_handles_labels()[1])
    ax = vk.plot_barge_ins(log).axes[0]
    assert any("interruption (n=1" in s for s in ax.get_legend_handles_labels()[1])
    t2 = t.assign(run=[0, 0, 1])
    fig = vk.plot_sweep(t2, x="min_silence")
    assert fig.axes[0].get_xlabel() == "min_silence" and len(fig.axes) == 2


def test_load_logs_many_bundles_with_session_columns(tmp_path, log) -> None:
    for i in range(20):  # enough for the process pool
        shutil.copytree(log.path, tmp_path / "many" / f"20260101-0000{i:02d}-sess_{i}")
    (tmp_path / "many" / "broken").mkdir()
    (tmp_path / "many" / "broken" / "meta.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken: skipped"):
        df = vk.load_logs(tmp_path / "many", progress=False)
    assert len(df) == 20 * 3
    assert {"session_id", "started_at", "backend", "log", "fto"} <= set(df.columns)
    assert df["backend"].eq("local").all()


def test_report_and_cli(tmp_path, log) -> None:
    path = vk.report(log, tmp_path / "r.html")
    page = path.read_text()
    assert page.count("data:image/png;base64,") >= 3 and "hello there" in page
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "report", str(log.path), "-o", str(tmp_path / "c.html")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and (tmp_path / "c.html").exists(), done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "voicekit", "report", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "no such log bundle" in bad.stderr


@pytest.mark.slow
def test_a_real_conversation_and_a_sweep(agent, tmp_path) -> None:
    user = vk.ScriptedUser(
        [vk.Say("hello can you hear me"), vk.Say("what time is it"), vk.Say("thank you")],
        gap=(0.3, 0.3),
    )
    with pytest.raises(vk.ConfigError, match="grid key 'speed'"):
        vk.sweep(user, grid={"speed": [1]})
    with pytest.raises(vk.ConfigError, match=r"transcription_mode \('fastest'\) must be one of"):
        vk.sweep(user, grid={"transcription_mode": ["balanced", "fastest"]})  # nothing runs
    df = vk.sweep(
        user,
        grid={"min_silence": [300, 900]},
        repeats=1,
        parallel=2,
        url=agent.url,
        greeting="Hi.",
        log_dir=tmp_path,
        progress=False,
    )
    assert sorted(df.groupby("min_silence").size().tolist()) == [3, 3]
    # the agent answered after each turn (how soon depends on the machine's load: the
    # recogniser's final transcript comes first; the speech benchmark has the figures)
    assert (df["fto"] > 0).all(), df[["min_silence", "fto"]]
    assert not df["no_response"].any()
    # a longer silence threshold makes the agent wait longer before answering
    medians = df.groupby("min_silence")["endpoint_delay"].median()
    assert medians[900] > medians[300] + 0.3
