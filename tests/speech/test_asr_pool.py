"""Recognition in child processes (voicekit.speech.asr_pool) and the agent's use of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import voicekit as vk
from voicekit.audio import resample
from voicekit.errors import AudioError, ConfigError
from voicekit.speech import USER_STYLE, Recognizer, synthesize
from voicekit.speech.asr_pool import AsrPool


def _speech16(text: str) -> np.ndarray:
    return np.asarray(resample(synthesize(text, USER_STYLE).samples, 24000, 16000), np.int16)


@pytest.fixture
def pool():
    p = AsrPool(2)
    yield p
    p.close()


def test_a_pool_recogniser_streams_like_an_in_process_one(pool) -> None:
    audio = _speech16("what is the weather in paris")
    remote, local = pool.recognizer(), Recognizer()
    got = {}
    for name, rec in (("remote", remote), ("local", local)):
        rec.start()
        partials = [rec.feed(audio[i : i + 1600].tobytes()) for i in range(0, len(audio), 1600)]
        got[name] = (partials, rec.finish())
    assert got["remote"] == got["local"]
    # the words themselves: espeak-ng's output varies by a few samples with what it spoke
    # before (tests in another order), which can change how the last word is heard
    assert got["remote"][1].startswith("what is the weather in ")
    assert remote.finish() == ""


def test_keyterms_reach_the_child_and_sessions_spread_over_children(pool) -> None:
    audio = _speech16("i need saxophone please").tobytes()
    a, b = pool.recognizer(), pool.recognizer(["saxophone"])
    assert "saxophone" not in a.transcribe(audio)
    assert "saxophone" in b.transcribe(audio) and b.keyterms == ("saxophone",)
    a.set_keyterms(["saxophone"])
    assert a.keyterms == ("saxophone",) and "saxophone" in a.transcribe(audio)
    assert sorted(pool.session_counts()) == [1, 1]
    a.close()
    a.close()  # idempotent
    assert sorted(pool.session_counts()) == [0, 1]


def test_the_decoders_live_in_other_processes() -> None:
    """The parent never imports pocketsphinx (whose decoding holds the interpreter lock)."""
    code = (
        "import sys, json; from voicekit.speech.asr_pool import AsrPool\n"
        "p = AsrPool(1); r = p.recognizer(); r.start(); r.feed(bytes(3200)); r.finish()\n"
        "pid = p.processes[0].pid; p.close()\n"
        "print(json.dumps(['pocketsphinx' in sys.modules, pid]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    imported, pid = json.loads(out.stdout.strip().splitlines()[-1])
    assert imported is False and pid != os.getpid()


def test_children_end_with_the_pool_and_remove_their_model_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the children write their models
    pool = AsrPool(2)
    recs = [pool.recognizer(["saxophone"]) for _ in range(2)]
    assert all(r.transcribe(bytes(3200)) == "" for r in recs)
    procs = pool.processes
    pool.close()
    pool.close()  # idempotent
    assert [p.returncode for p in procs] == [0, 0]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(AudioError, match="shut down"):
        pool.recognizer()


def test_a_dead_child_gives_an_error_that_says_what_to_do(pool) -> None:
    rec = pool.recognizer()
    busy = pool.processes[pool.session_counts().index(1)]
    busy.kill()
    busy.wait()
    with pytest.raises(AudioError, match=r"speech recognition process exited.*restart the agent"):
        rec.feed(bytes(1024))


def test_the_agent_owns_its_recognition_processes_and_can_do_without(tmp_path) -> None:
    with pytest.raises(ConfigError, match="asr_processes"):
        vk.local.serve(asr_processes=-1)
    with vk.local.serve(profile="fast") as agent:
        procs = agent.state.asr_pool.processes
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
    assert all(p.returncode == 0 for p in procs)
    with vk.local.serve(profile="fast", asr_processes=0) as agent:
        assert agent.state.asr_pool is None
        with vk.Session(
            url=agent.url,
            audio_in=vk.ScriptedUser([vk.Say("what time is it")], gap=(0.3, 0.3)),
            audio_out="null",
            log_dir=tmp_path,
        ) as s:
            assert s.wait(30)
        log = s.stop()
    [user_turn] = log.of_type("transcript.user")
    assert user_turn["text"].endswith("is it")
    assert [r["status"] for r in log.of_type("reply.done")] == ["completed"]
