"""More of vk.Session: WAV and array sources, WAV sinks, G.711 end to end, asyncio, leaks."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import numpy as np
import pytest

import voicekit as vk
from voicekit.audio import read_wav
from voicekit.speech import USER_STYLE, synthesize

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("encoding", ["audio/pcmu", "audio/pcma"])
def test_wav_in_wav_out_and_g711_end_to_end(agent, tmp_path, encoding: str) -> None:
    words = synthesize("what is the weather in paris", USER_STYLE).samples
    clip = np.concatenate([np.zeros(12000, np.int16), words])
    wav_in = tmp_path / "in.wav"
    vk.audio.write_wav(wav_in, vk.audio.resample(clip, 24000, 16000), 16000)  # any rate works
    wav_out = tmp_path / "out.wav"
    heard: list[str] = []
    s = vk.Session(
        url=agent.url,
        audio_in=str(wav_in),
        audio_out=str(wav_out),
        log_dir=tmp_path / "logs",
        input_format=encoding,
        output_format=encoding,
    )
    s.on("transcript.user", lambda e: heard.append(e["text"]))
    done = threading.Event()
    s.on("playback.stop", lambda e: done.set())
    s.start()
    assert done.wait(20), "no reply was played"
    log = s.stop()
    # narrowband G.711 speech is recognised less well than 24 kHz PCM; it must be heard
    assert heard and len(heard[0].split()) >= 2
    assert log.meta["config"]["input"]["format"] == {"encoding": encoding, "sample_rate": 8000}
    played, rate = read_wav(wav_out)
    stop = log.of_type("playback.stop")[0]
    start = log.of_type("playback.start")[0]
    assert rate == 24000 and np.abs(played).max() > 1000
    assert len(played) >= start["offset"] + stop["played"] - 480
    assert np.array_equal(
        played[start["offset"] : start["offset"] + stop["played"]],
        log.agent_audio[start["offset"] : start["offset"] + stop["played"]],
    )


def test_numpy_source_and_asyncio_api(agent, tmp_path) -> None:
    words = synthesize("hello can you hear me", USER_STYLE).samples

    async def app() -> vk.SessionLog:
        s = vk.Session(url=agent.url, audio_in=words, audio_out="null", log_dir=tmp_path)
        await s.astart()
        assert s.status == "ready"
        await asyncio.sleep(3.0)  # the app's own loop stays free
        return await s.astop()

    log = asyncio.run(app())
    assert log.of_type("transcript.user") or log.of_type("input.speech.started")
    assert np.abs(log.user_audio).max() > 1000


def _fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def test_fifty_start_stop_cycles_leak_nothing(agent, tmp_path, agent_sessions_ended) -> None:
    def cycle() -> None:
        s = vk.Session(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
        s.start()
        s.stop()

    for _ in range(3):
        cycle()
    agent_sessions_ended()
    gc.collect()
    threads, fds = threading.active_count(), _fds()
    for _ in range(50):
        cycle()
    agent_sessions_ended()
    gc.collect()
    assert threading.active_count() <= threads
    assert _fds() <= fds + 2
    assert len(list(tmp_path.iterdir())) == 53


def test_interpreter_exit_stops_a_running_session(agent, tmp_path) -> None:
    import subprocess
    import sys

    code = (
        f"import voicekit as vk\n"
        f"s = vk.Session(url={agent.url!r}, audio_in='null', audio_out='null', "
        f"log_dir={str(tmp_path)!r})\n"
        f"s.start()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (bundle,) = tmp_path.iterdir()
    log = vk.load_log(bundle)
    kinds = [e["type"] for e in log.raw_events]
    assert kinds[-1] == "session.stop" and "session.end" in kinds


def test_with_interrupt_response_off_the_user_never_cuts_the_agent(agent, tmp_path) -> None:
    """Protocol §5.1.3: interrupt_response false disables barge-in; the client keeps playing."""
    user = vk.ScriptedUser(
        [vk.Say("please tell me about the trains to london tomorrow"), vk.BargeIn("no wait stop")]
    )
    s = vk.Session(
        url=agent.url,
        audio_in=user,
        audio_out="null",
        log_dir=tmp_path,
        turn_detection=vk.TurnDetection(interrupt_response=False),
    )
    played = threading.Semaphore(0)
    s.on("playback.stop", lambda e: played.release())
    with s:
        assert s.wait(60)
        # the answer to the question, then the one to the would-be barge-in: both heard out
        assert played.acquire(timeout=30) and played.acquire(timeout=30)
    log = s.stop()
    stops = log.of_type("playback.stop")
    assert stops and all(e["reason"] == "completed" for e in stops), stops
    assert all(e["dropped"] == 0 for e in stops)
    assert not [e for e in log.of_type("reply.done") if e["status"] == "interrupted"]
