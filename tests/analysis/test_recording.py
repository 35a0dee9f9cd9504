"""Call recordings: turn tables by voice activity alone, checked against hand-computed times.

Each recording is built from synthesized speech placed at chosen times on two channels. The
true times are measured on the clean tracks (the first and last audible sample of each
utterance as placed), so the TTS's own leading and trailing silence is part of the answer.
The tolerance is the VAD's frame (32 ms); the analysis sets speech edges by level in 10 ms
hops inside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile as sf

import voicekit as vk
from voicekit.analysis.acoustic import HOP_S, echo_coupling, frame_levels
from voicekit.audio.level import AUDIBLE
from voicekit.audio.resample import resample
from voicekit.speech import USER_STYLE, style_for_voice, synthesize
from voicekit.speech.vad import FRAME
from voicekit.speech.vad import RATE as VAD_RATE

matplotlib.use("Agg")

R = 24000
TOL = FRAME / VAD_RATE  # 32 ms
AGENT = style_for_voice("alba")


class Call:
    """Two clean tracks with utterances placed at known times, and the true spans."""

    def __init__(self, seconds: float) -> None:
        self.user = np.zeros(round(seconds * R), np.float64)
        self.agent = np.zeros(round(seconds * R), np.float64)

    def put(
        self, track: str, text: str, at: float, cut: float | None = None
    ) -> tuple[float, float]:
        """Speak ``text`` from ``at`` s (stopped at ``cut`` s); returns its audible span (s)."""
        style = USER_STYLE if track == "user" else AGENT
        clip = synthesize(text, style).samples.astype(np.float64)
        lane = self.user if track == "user" else self.agent
        a = round(at * R)
        b = min(a + len(clip), len(lane), round(cut * R) if cut is not None else len(lane))
        lane[a:b] += clip[: b - a]
        loud = np.flatnonzero(np.abs(clip[: b - a]) >= AUDIBLE)
        return (a + loud[0]) / R, (a + loud[-1] + 1) / R

    def mix(self, noise_dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
        """(n, 2) float samples in [-1, 1], user then agent, over a light noise floor."""
        rng = np.random.default_rng(seed)
        noise = 10 ** (noise_dbfs / 20)
        both = np.stack([self.user, self.agent], axis=1) / 32768
        return both + rng.normal(0, noise, both.shape)


@pytest.fixture(scope="module")
def call() -> tuple[Call, dict[str, tuple[float, float]]]:
    """A question answered, a barge-in the agent yields to 0.4 s later, an answer, an early
    start over the user's last words, and a backchannel the agent talks through."""
    c = Call(19.0)
    t: dict[str, tuple[float, float]] = {}
    t["q1"] = c.put("user", "what is my account balance", 1.0)
    t["a1"] = c.put(
        "agent",
        "Your balance is forty two dollars and ten cents, and your next payment is due",
        3.1,
        cut=5.0,  # the agent stops 0.4 s after the barge-in below
    )
    t["b"] = c.put("user", "no wait I need to speak to a person", 4.6)
    t["a2"] = c.put("agent", "Of course, one moment.", t["b"][1] + 0.6)
    t["q3"] = c.put("user", "and what is my address", 10.0)
    t["a3"] = c.put(
        "agent", "Your address is ten downing street in london", t["q3"][1] - 0.3
    )  # starts 0.3 s before the user has finished
    t["bc"] = c.put("user", "okay", t["a3"][0] + 1.2)
    return c, t


FORMATS = {
    "wav-pcm16-24k": ({"subtype": "PCM_16"}, 24000),
    "wav-mulaw-8k": ({"subtype": "ULAW"}, 8000),
    "wav-alaw-8k": ({"subtype": "ALAW"}, 8000),
    "wav-float-44k": ({"subtype": "FLOAT"}, 44100),
    "flac-24bit-16k": ({"format": "FLAC", "subtype": "PCM_24"}, 16000),
    "ogg-opus-48k": ({"format": "OGG", "subtype": "OPUS"}, 48000),
    "ogg-vorbis-48k": ({"format": "OGG", "subtype": "VORBIS"}, 48000),
}


def write(path: Path, both: np.ndarray, rate: int, **kw: str) -> Path:
    if rate != R:
        both = np.stack([resample(both[:, i].astype(np.float32), R, rate) for i in (0, 1)], 1)
    sf.write(str(path), both, rate, **kw)
    return path


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_turns_and_barge_ins_by_voice_activity(call, tmp_path, fmt) -> None:
    c, t = call
    kw, rate = FORMATS[fmt]
    suffix = {"FLAC": ".flac", "OGG": ".ogg"}.get(kw.get("format", ""), ".wav")
    rec = vk.load_recording(write(tmp_path / f"call{suffix}", c.mix(), rate, **kw))
    assert isinstance(rec, vk.SessionLog)
    assert rec.meta["original_rate"] == rate and rec.meta["channels"] == 2
    assert rec.meta["subtype"] == kw["subtype"]
    assert rec.audio("agent")[1] == 24000 and len(rec.agent_samples()) == len(c.agent)

    turns = rec.turns
    assert len(turns) == 3, turns[["u_on", "u_off", "a_on", "a_off"]]
    q1, b, q3 = turns.itertuples()
    a1_stop = t["a1"][1]  # the last audible sample before the cut at 5.0 s
    expected = [
        # turn, u_on, u_off, a_on, a_off, fto, overlap
        (q1, t["q1"], t["a1"][0], a1_stop, t["a1"][0] - t["q1"][1], 0.0),
        (b, t["b"], t["a2"][0], t["a2"][1], t["a2"][0] - t["b"][1], a1_stop - t["b"][0]),
        (q3, t["q3"], t["a3"][0], t["a3"][1], t["a3"][0] - t["q3"][1], t["q3"][1] - t["a3"][0]),
    ]
    for row, (u_on, u_off), a_on, a_off, fto, overlap in expected:
        assert row.source == "vad"
        assert row.u_on == pytest.approx(u_on, abs=TOL)
        assert row.u_off == pytest.approx(u_off, abs=TOL)
        assert row.a_on == pytest.approx(a_on, abs=TOL)
        assert row.a_off == pytest.approx(a_off, abs=TOL)
        assert row.fto == pytest.approx(fto, abs=TOL)
        assert row.overlap == pytest.approx(overlap, abs=TOL)
        for col in ("endpoint_delay", "server_first_audio", "lead_silence", "playout_delay"):
            assert math.isnan(getattr(row, col)), col  # only the protocol knows these
    assert q3.fto < 0  # the agent spoke before the user had finished
    assert [bool(x) for x in turns["interrupted"]] == [True, False, False]

    bi = rec.barge_ins
    assert list(bi["kind"]) == ["interruption", "backchannel"], bi
    cut, bc = bi.itertuples()
    assert cut.onset == pytest.approx(t["b"][0], abs=TOL)
    assert cut.stop_latency == pytest.approx(a1_stop - t["b"][0], abs=TOL)  # about 0.4 s
    assert cut.residual == pytest.approx(cut.stop_latency)
    assert bc.onset == pytest.approx(t["bc"][0], abs=TOL)
    assert math.isnan(bc.stop_latency)  # the agent talked through it
    assert bc.residual == pytest.approx(t["a3"][1] - t["bc"][0], abs=TOL)
    assert bi["heard_fraction"].isna().all() and bi["detect_latency"].isna().all()

    summary = rec.summary()
    assert summary["turns"] == 3 and summary["barge_ins"] == 2 and summary["interrupted"] == 1
    assert summary["overlap_total"] == pytest.approx(turns["overlap"].sum())
    assert math.isnan(summary["endpoint_delay_median"]) and math.isnan(summary["greeting_latency"])


def test_a_short_stop_the_hosted_service_yields_to_late_is_an_interruption(tmp_path) -> None:
    """The hosted service decides a barge-in 1.1-2.2 s after its onset: a short "no stop"
    ends well before the agent does (here over a second before), and still cut the reply.
    (It opens on a voiced sound: espeak-ng's output varies by a few samples with what it
    spoke before, and the onset of "stop please"'s /s/ then moved by up to 50 ms.)"""
    c = Call(12.0)
    q = c.put("user", "tell me a long story about the sea", 0.5)
    said = "Once upon a time there was a little boat that sailed far out over the sea"
    b_on = q[1] + 1.5
    stop = c.put("user", "no stop", b_on)
    a = c.put("agent", said, q[1] + 0.5, cut=stop[0] + 2.2)
    assert a[1] - stop[1] > 1.0  # the agent went on more than a second after the user
    answer = c.put("agent", "Okay.", a[1] + 1.2)
    rec = vk.load_recording(write(tmp_path / "late.wav", c.mix(), R, subtype="PCM_16"))
    turns = rec.turns
    assert [bool(x) for x in turns["interrupted"]] == [True, False], turns
    assert turns["u_on"].iloc[1] == pytest.approx(stop[0], abs=TOL)
    assert turns["a_on"].iloc[1] == pytest.approx(answer[0], abs=TOL)
    cut = rec.barge_ins.iloc[0]
    assert cut.kind == "interruption"
    assert cut.stop_latency == pytest.approx(a[1] - stop[0], abs=TOL)


def test_two_mono_files_and_channels_of_a_wider_file(call, tmp_path) -> None:
    c, _ = call
    both = c.mix()
    stereo = vk.load_recording(write(tmp_path / "call.wav", both, R, subtype="PCM_16"))
    user = write(tmp_path / "call-user.wav", both[:, :1], R, subtype="PCM_16")
    agent = write(tmp_path / "call-agent.wav", both[:, 1:], R, subtype="PCM_16")
    pair = vk.load_recording((user, agent))
    assert pair.session_id == "call" and pair.meta["path"] == [str(user), str(agent)]
    cols = ["u_on", "u_off", "a_on", "a_off", "fto", "overlap"]
    assert np.allclose(pair.turns[cols].to_numpy(), stereo.turns[cols].to_numpy())
    # four channels: the agent on 0, the user on 2, other parties' legs on 1 and 3
    zeros = np.zeros(len(both))
    wide = np.stack([both[:, 1], zeros, both[:, 0], zeros + 1e-3], axis=1)
    four = vk.load_recording(
        write(tmp_path / "conf.wav", wide, R, subtype="PCM_16"), user_channel=2, agent_channel=0
    )
    assert four.meta["channels"] == 4
    assert four.meta["user_channel"] == 2 and four.meta["agent_channel"] == 0
    assert np.allclose(four.turns[cols].to_numpy(), stereo.turns[cols].to_numpy(), atol=0.011)


def test_telephony_line_noise_hum_and_echo(call, tmp_path) -> None:
    """8 kHz mu-law, noise at -50 dBFS, 50 Hz hum at -40 dBFS, and the agent's echo on the
    user's channel 60 ms late at -20 dB: the echo is found and never becomes a turn."""
    c, t = call
    both = c.mix(noise_dbfs=-50.0, seed=1)
    n = len(both)
    both += (10 ** (-40 / 20) * np.sin(2 * np.pi * 50 * np.arange(n) / R))[:, None]
    lag = round(0.060 * R)
    both[lag:, 0] += both[:-lag, 1] * 10 ** (-20 / 20)
    rec = vk.load_recording(write(tmp_path / "line.wav", both, 8000, subtype="ULAW"))

    coupling = echo_coupling(frame_levels(rec.audio("user")[0]), frame_levels(rec.agent_samples()))
    assert coupling is not None
    delay, gain = coupling
    assert delay * HOP_S == pytest.approx(0.060, abs=0.011)
    assert gain == pytest.approx(-20.0, abs=2.0)

    turns = rec.turns
    assert len(turns) == 3, turns[["u_on", "u_off", "a_on", "a_off"]]
    starts = [t["q1"][0], t["b"][0], t["q3"][0]]
    ends = [t["q1"][1], t["b"][1], t["q3"][1]]
    replies = [t["a1"][0], t["a2"][0], t["a3"][0]]
    assert np.allclose(turns["u_on"], starts, atol=TOL)  # the barge-in's in double talk too
    assert np.allclose(turns["a_on"], replies, atol=TOL)
    # the last turn ends in double talk (the agent started 0.3 s early): its last syllable
    # is within a few dB of the agent's echo and cannot be told from it
    assert np.allclose(turns["u_off"], ends, atol=[TOL, TOL, 0.15])
    assert turns["u_off"][2] <= ends[2] + TOL
    assert [bool(x) for x in turns["interrupted"]] == [True, False, False]
    bi = rec.barge_ins
    assert "interruption" in set(bi["kind"])
    assert set(bi["kind"]) <= {"interruption", "backchannel", "echo"}
    cut = bi[bi["kind"] == "interruption"].iloc[0]
    assert cut.stop_latency == pytest.approx(t["a1"][1] - t["b"][0], abs=TOL)


def test_mono_is_refused_saying_what_is_needed(tmp_path) -> None:
    path = tmp_path / "mixed.wav"
    sf.write(str(path), np.zeros(R, np.int16), R, subtype="PCM_16")
    with pytest.raises(vk.LogFormatError) as err:
        vk.load_recording(path)
    text = str(err.value)
    assert "mono" in text and "two channels, one per party" in text
    assert 'vk.load_recording(("user.wav", "agent.wav"))' in text and "mixed.wav" in text


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"user_channel": 2}, "user_channel", "has 2 (0-1)"),
        ({"agent_channel": 5}, "agent_channel", "has 2 (0-1)"),
        ({"user_channel": 1, "agent_channel": 1}, "agent_channel", "must differ"),
        ({"user_channel": -1}, "user_channel", "channel index"),
        ({"agent_channel": True}, "agent_channel", "channel index"),
        ({"user_channel": "left"}, "user_channel", "channel index"),
    ],
)
def test_channel_arguments_are_checked(tmp_path, kwargs, field, words) -> None:
    path = tmp_path / "call.wav"
    sf.write(str(path), np.zeros((R, 2), np.int16), R, subtype="PCM_16")
    with pytest.raises(vk.ConfigError) as err:
        vk.load_recording(path, **kwargs)
    assert err.value.field == field and words in str(err.value)


def test_unreadable_inputs_name_the_file(tmp_path) -> None:
    with pytest.raises(vk.LogFormatError, match="no such recording"):
        vk.load_recording(tmp_path / "missing.wav")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "meta.json").write_text("{}")
    with pytest.raises(vk.LogFormatError, match=r"it is a log bundle: use vk\.load_log"):
        vk.load_recording(bundle)
    junk = tmp_path / "notes.wav"
    junk.write_text("not audio")
    with pytest.raises(vk.LogFormatError, match="not an audio file") as err:
        vk.load_recording(junk)
    assert "notes.wav" in str(err.value)
    stereo = tmp_path / "s.wav"
    sf.write(str(stereo), np.zeros((R, 2), np.int16), R, subtype="PCM_16")
    with pytest.raises(vk.LogFormatError, match=r"for a call recording use vk\.load_recording"):
        vk.load_log(stereo)
    with pytest.raises(vk.LogFormatError, match="two mono files"):
        vk.load_recording((stereo, stereo))
    with pytest.raises(vk.ConfigError) as cfg:
        vk.load_recording((stereo, stereo), agent_channel=0)
    assert cfg.value.field == "agent_channel"
    with pytest.raises(vk.ConfigError) as cfg:
        vk.load_recording(42)  # type: ignore[arg-type]
    assert cfg.value.field == "path"


def test_a_silent_recording_has_no_turns(tmp_path) -> None:
    path = tmp_path / "quiet.wav"
    sf.write(str(path), np.zeros((2 * R, 2), np.int16), R, subtype="PCM_16")
    rec = vk.load_recording(path)
    assert rec.turns.empty and rec.barge_ins.empty and rec.duration == pytest.approx(2.0)


def test_plots_report_and_cli_work_on_a_recording(call, tmp_path) -> None:
    from voicekit.cli import main

    c, _ = call
    path = write(tmp_path / "call.flac", c.mix(), R, format="FLAC", subtype="PCM_16")
    rec = vk.load_recording(path)
    fig = vk.plot_timeline(rec)
    ax = fig.axes[0]
    assert ax.get_title() == "Session call: timeline"
    spans = {c.get_label(): len(c.get_paths()) for c in ax.collections}
    assert spans["user speech"] + spans["agent speech"] >= 3 + 4  # one collection a lane
    assert len(ax.collections) >= 2 + 2  # and the two waveforms
    assert ax.get_xlim() == pytest.approx((0.0, 19.0))
    fig = vk.plot_barge_ins(rec)
    assert {t.get_text() for t in fig.axes[0].get_xticklabels()} >= {"stop_latency"}
    html = vk.report(rec, tmp_path / "r.html").read_text()
    assert "1 session(s), 3 turns" in html and "overlap" in html
    out = tmp_path / "cli.html"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert "1 session(s), 3 turns" in out.read_text()
