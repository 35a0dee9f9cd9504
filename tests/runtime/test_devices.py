"""The sound-device path for real, without a sound card (set up by ``make test``; see the README).

- ALSA ``file`` devices through PortAudio give exact content but no clock: the microphone
  reads a raw file, the speaker writes one, and both are compared sample for sample.
- A PulseAudio daemon with two null sinks gives real-time pacing: a whole conversation with
  ``audio_in="mic"`` and ``audio_out="speaker"`` against the stand-in agent, barge-in flush
  included. The daemon is started and stopped here; ``make test`` installs it.

Each set-up runs in a fresh interpreter (device_scripts.py) because PortAudio reads its
configuration once.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from device_scripts import QUESTION  # tests/runtime is on sys.path (rootdir import mode)

import voicekit as vk
from voicekit.audio.sources import XRUN_FLAGS
from voicekit.audio.wav import read_wav

pytestmark = [pytest.mark.device, pytest.mark.slow]

SCRIPTS = Path(__file__).with_name("device_scripts.py")
SYSTEM_ALSA = Path("/usr/share/alsa/alsa.conf")
INSTALL = "run 'make test' as root, or 'sudo apt-get install {}'"


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- ALSA file devices: exact content -------------------------------------------------------
def test_microphone_and_speaker_exact_through_alsa_file_devices(tmp_path: Path) -> None:
    if not SYSTEM_ALSA.exists():
        pytest.fail("ALSA is missing: " + INSTALL.format("libportaudio2 alsa-utils"))
    infile, outfile = tmp_path / "in.raw", tmp_path / "out.raw"
    capture = np.random.default_rng(3).integers(-30000, 30000, 24000 * 2, dtype=np.int16)
    infile.write_bytes(capture.astype("<i2").tobytes())
    conf = tmp_path / "asoundrc"
    conf.write_text(
        textwrap.dedent(f"""
        pcm.fileout {{ type file; slave.pcm "null"; file "{outfile}"; format "raw" }}
        pcm.filein {{ type file; slave.pcm "null"; file "/dev/null"; infile "{infile}";
                      format "raw" }}
        """)
    )
    env = {**os.environ, "ALSA_CONFIG_PATH": f"{SYSTEM_ALSA}:{conf}"}
    result = _run(["alsa", str(tmp_path), str(infile)], env)

    assert {"filein", "fileout"} <= set(result["devices"])
    # the microphone delivers the capture file exactly, sample for sample
    np.testing.assert_array_equal(np.load(tmp_path / "captured.npy"), capture)
    # the speaker wrote exactly what was queued, after PortAudio's leading silence
    signal = np.load(tmp_path / "signal.npy")
    written = np.frombuffer(outfile.read_bytes(), "<i2")
    start = int(np.flatnonzero(written)[0])
    np.testing.assert_array_equal(written[start : start + len(signal)], signal)
    # and reported every sample as played, contiguously on the session clock
    assert result["played"] == len(signal)
    assert result["contiguous"]


def test_unknown_device_names_what_exists() -> None:
    with pytest.raises(vk.AudioError, match="no input device matches 'no such mic'"):
        vk.Session(audio_in="mic", input_device="no such mic", audio_out="null").start()


# -- PulseAudio null sinks: real time -----------------------------------------------------
@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private PulseAudio daemon with null sinks ``vk_mic`` and ``vk_speaker``."""
    for tool in ("pulseaudio", "paplay", "parecord"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: " + INSTALL.format("pulseaudio pulseaudio-utils"))
    home = tmp_path_factory.mktemp("pulse")
    socket = home / "native"
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    env.pop("PULSE_SERVER", None)
    daemon_args = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1"]
    modules = [
        "module-null-sink sink_name=vk_mic rate=24000 channels=1",
        "module-null-sink sink_name=vk_speaker rate=24000 channels=1",
        f"module-native-protocol-unix socket={socket} auth-anonymous=1",
    ]
    with (home / "daemon.log").open("w") as daemon_log:
        daemon = subprocess.Popen(
            [*daemon_args, "--log-target=stderr", *(f"--load={m}" for m in modules)],
            env=env,
            stderr=daemon_log,
        )
    client_env = {
        **env,
        "PULSE_SERVER": f"unix:{socket}",
        "PULSE_SOURCE": "vk_mic.monitor",
        "PULSE_SINK": "vk_speaker",
    }
    deadline = time.monotonic() + 15
    while subprocess.run(["pactl", "info"], env=client_env, capture_output=True).returncode:
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            pytest.fail("PulseAudio did not start: " + (home / "daemon.log").read_text()[-2000:])
        time.sleep(0.1)
    yield client_env
    daemon.terminate()
    daemon.wait(10)


def _best_match(needle: np.ndarray, haystack: np.ndarray) -> tuple[float, int]:
    """Highest normalised cross-correlation of ``needle`` in ``haystack``, and where."""
    a = needle.astype(np.float64) - needle.mean()
    b = haystack.astype(np.float64)
    n = len(a)
    size = 1 << int(np.ceil(np.log2(len(b) + n)))
    xc = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[: len(b) - n]
    csum, csum2 = np.cumsum(np.r_[0, b]), np.cumsum(np.r_[0, b * b])
    window = csum[n:] - csum[:-n]
    energy = (csum2[n:] - csum2[:-n]) - window**2 / n
    norm = np.sqrt(np.maximum(energy[: len(xc)], 1e-9) * (a @ a))
    score = xc / norm
    return float(score.max()), int(score.argmax())


def _best_window(
    track: np.ndarray, start: int, stop: int, haystack: np.ndarray, width: int = 6000
) -> tuple[float, int]:
    """The best :func:`_best_match` of four ``width``-sample windows of ``track[start:stop]``,
    its position moved back to where ``start`` lies in ``haystack``."""
    best = (-1.0, 0)
    for k in range(4):
        a = start + k * width
        if a + width > stop and k:
            break
        score, pos = _best_match(track[a : a + width], haystack)
        if score > best[0]:
            best = (score, pos - k * width)
    return best


def test_conversation_through_pulseaudio_in_real_time(pulse: dict[str, str], tmp_path) -> None:
    result = _run(["pulse", str(tmp_path)], pulse, timeout=180)
    log = vk.load_log(result["log"])
    ev = log.events
    assert result["failure"] is None, ev[["t", "dir", "type"]].to_string()

    # greeting, answer: both started playing through the real output stream
    starts = log.of_type("playback.start")
    stops = {e["reply_id"]: e for e in log.of_type("playback.stop")}
    assert len(starts) >= 2, ev[["t", "dir", "type"]].to_string()
    greeting, answer = starts[0]["reply_id"], starts[1]["reply_id"]

    # the greeting played to its end; the user's question came through the microphone: the
    # agent heard one stretch of speech as long as the question and recognised some of it
    # (which words varies run to run: streaming recognition of this sentence is rough; that
    # the audio arrived intact is checked sample-wise at the end)
    assert stops[greeting]["reason"] == "completed"
    turns = ev[ev["type"].str.startswith(("input.speech", "transcript.user"))]
    table = turns[["t", "type", "text"]].to_string()
    heard = " ".join(e["text"] for e in log.of_type("transcript.user"))
    assert len(set(heard.split()) & set(QUESTION.split())) >= 2, table
    question, _ = read_wav(tmp_path / "question.wav")
    voiced = np.flatnonzero(np.abs(question) > 500)
    spoken = (voiced[-1] - voiced[0]) / 24000
    began = log.of_type("input.speech.started")[0]["t"]
    ended = log.of_type("input.speech.stopped")[0]["t"]
    assert spoken - 0.3 < ended - began < spoken + 2.5, table

    # the barge-in cut the answer (about 1.6 s into a reply of over 4 s): whatever was
    # queued was flushed, and no answer audio reached the speaker after that
    assert stops[answer]["reason"] in ("speech_started", "interrupted")
    assert stops[answer]["played"] < 3 * 24000
    # "end": after the last sample the device played; past offset + played when the device
    # ran dry mid-reply (an underrun, heard as silence and written as silence)
    cut = stops[answer]["end"]
    # (how long it ran dry depends on the machine: what lies between is silence and the
    # played samples, nothing more)
    assert cut >= starts[1]["offset"] + stops[answer]["played"]
    span = log.agent_audio[starts[1]["offset"] : cut]
    assert np.count_nonzero(span) <= stops[answer]["played"]
    after = starts[2]["offset"] if len(starts) > 2 else None  # a reply to the barge-in
    late = np.flatnonzero(log.agent_audio[cut:after])
    assert not len(late), (
        f"agent audio after the cut at {cut}: samples {cut + late[0]}..{cut + late[-1]}; "
        + ev[
            ev["type"].isin(
                [
                    "playback.start",
                    "playback.stop",
                    "reply.started",
                    "reply.done",
                    "input.speech.started",
                    "input.speech.stopped",
                ]
            )
        ].to_string()
    )
    done = [e for e in log.of_type("reply.done") if e.get("reply_id") == answer]
    assert done and done[0]["status"] == "interrupted"

    # the speaker really sounded, in real time and on the log's clock: greeting and answer
    # sit as far apart in the recording of the null sink as their offsets in the log
    recorded, rate = read_wav(tmp_path / "speaker.wav")
    assert rate == 24000
    agent = log.agent_audio
    # from each reply's first audible sample (a busy machine may cut the answer early)
    at = {}
    for r, e in zip((greeting, answer), starts[:2], strict=True):
        loud = np.flatnonzero(np.abs(agent[e["offset"] : e["offset"] + 48000]) >= 100)
        assert len(loud), f"reply {r} played nothing audible"
        at[r] = e["offset"] + int(loud[0])
    # a quarter-second window, the best of four: on a busy machine the sound server may
    # insert a gap of silence (an underrun) that a longer window would straddle
    g_score, g_pos = _best_window(agent, at[greeting], at[greeting] + 24000, recorded)
    a_score, a_pos = _best_window(agent, at[answer], min(at[answer] + 24000, cut), recorded)
    assert g_score > 0.9 and a_score > 0.9
    assert abs((a_pos - g_pos) - (at[answer] - at[greeting])) < 0.03 * 24000

    # the log's user track holds the question as spoken into the null sink
    assert _best_match(question[voiced[0] :][:12000], log.user_audio)[0] > 0.9


def test_a_starved_speaker_logs_its_underflow_as_an_xrun_line(
    pulse: dict[str, str], tmp_path: Path
) -> None:
    """The speaker's callback is kept from running for a second (the interpreter lock held)
    while PulseAudio plays on in real time: PortAudio reports an output underflow, and the
    log gets one ``audio.xrun`` line for it, not one per callback."""
    result = _run(["xrun", str(tmp_path)], pulse, timeout=120)
    log = vk.load_log(result["log"])
    xruns = log.of_type("audio.xrun")
    assert result["failure"] is None, log.events[["t", "dir", "type"]].to_string()
    assert xruns[0]["dir"] == "local" and xruns[0]["device"] == "output"
    assert "output_underflow" in xruns[0]["flags"] and xruns[0]["count"] >= 1
    assert set(xruns[0]["flags"]) <= set(XRUN_FLAGS)
    assert {e["device"] for e in xruns} == {"output"}  # the null microphone has no stream
    # coalesced: at most one line per device and second
    times = [e["t"] for e in xruns]
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(times)), times


def test_talk_command_through_pulseaudio(pulse: dict[str, str], tmp_path: Path, agent) -> None:
    """``python -m voicekit talk``: microphone in, transcripts out, Ctrl-C ends with the log."""
    import queue
    import signal
    import threading

    from voicekit.audio.wav import write_wav
    from voicekit.speech import USER_STYLE, synthesize

    question = tmp_path / "question.wav"
    write_wav(question, synthesize("what is the weather in paris", USER_STYLE).samples, 24000)
    args = ["talk", "--url", agent.url, "--input-device", "pulse", "--output-device", "pulse"]
    args += ["--voice", "ivy", "--min-silence", "500", "--log-dir", str(tmp_path / "logs")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicekit", *args],
        env=pulse,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    seen: list[str] = []

    def until(predicate, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                seen.append(lines.get(timeout=0.2).rstrip("\n"))
            except queue.Empty:
                continue
            if predicate(seen[-1]):
                return
        proc.kill()
        raise AssertionError(f"timed out; output so far: {seen}; {proc.stderr.read()[-2000:]}")

    try:
        until(lambda x: "ready" in x and "voice ivy" in x, 30)
        time.sleep(0.5)
        subprocess.run(["paplay", "--device=vk_mic", str(question)], env=pulse, check=True)
        until(lambda x: x.startswith("  you:") and ("weather" in x or "paris" in x), 20)
        until(lambda x: x.startswith("agent:"), 20)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.wait(30)
    reader.join(10)  # stdout: read by the thread into ``lines``
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 0, err[-2000:]
    while not lines.empty():
        seen.append(lines.get().rstrip("\n"))
    logs = [x for x in seen if x.startswith("log: ")]
    assert logs, (seen, err[-2000:])
    log = vk.load_log(logs[-1][5:])
    sent = log.of_type("session.update", direction="send")[0]["session"]
    assert sent["output"]["voice"] == "ivy"
    assert sent["input"]["turn_detection"] == {"min_silence": 500}
    assert log.of_type("playback.start")  # the answer went to the speaker
