"""A session killed with SIGKILL leaves a bundle that loads and lacks at most its last second.

A child process runs a ``vk.Session`` (a scripted user talking without pause, so events and
both audio tracks keep flowing) against the stand-in agent of this process and prints a
heartbeat every 100 ms: its session clock and the user samples sent so far. The test kills it
at a seeded random moment, then loads the bundle: a truncated last line may be skipped with
a ``LogFormatWarning``, the WAV headers (rewritten once a second) are repaired from the file
sizes, and the last event and the user track reach the last heartbeat minus 1 s.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import voicekit as vk
from voicekit.logformat.reader import LogFormatWarning

pytestmark = pytest.mark.slow

MAX_LOSS_S = 1.0

CHILD = r"""
import json, sys, time
import voicekit as vk

url, log_dir = sys.argv[1], sys.argv[2]
lines = ["please tell me about the trains to london tomorrow morning",
         "and what about the weather in paris this weekend",
         "one more thing how long does the journey take"]
steps = []
for i in range(12):
    steps += [vk.Say(lines[i % 3], wait=False), vk.Pause(0.2)]
user = vk.ScriptedUser(steps, gap=(0.1, 0.1), settle=0.0, response_timeout=2.0)
s = vk.Session(url=url, greeting="Hello there, I am listening.", audio_in=user,
               audio_out="null", log_dir=log_dir)
sent = [0]
s.on("input.audio", lambda e: sent.__setitem__(0, e["offset"] + e["samples"]))
s.start()
print(json.dumps({"log": str(s.log_path)}), flush=True)
while True:
    print(json.dumps({"t": s.now(), "sent": sent[0]}), flush=True)
    time.sleep(0.1)
"""


def _run_and_kill(url: str, log_dir: Path, kill_after: float) -> list[dict[str, Any]]:
    """Start the child, SIGKILL it ``kill_after`` s after its session is ready; its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ASSEMBLYAI_API_KEY", None)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(log_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out: list[dict[str, Any]] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            out.append(json.loads(line))
            ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the child never started its session"
        time.sleep(kill_after)
        assert child.poll() is None, "the child ended before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        reader.join(10)
        assert child.stderr is not None
        stderr = child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL, stderr
    assert "Traceback" not in stderr, stderr
    return out


@pytest.mark.parametrize("seed", [14, 7, 5])  # killed after 3.9 s, 7.8 s and 13.2 s
def test_a_killed_session_leaves_a_bundle_missing_at_most_its_last_second(
    agent, tmp_path, seed: int
) -> None:
    """SIGKILL at a random moment: the bundle loads and lost at most 1 s of events and audio."""
    kill_after = random.Random(seed).uniform(2.0, 20.0)
    out = _run_and_kill(agent.url, tmp_path, kill_after)
    beats = [o for o in out if "t" in o]
    assert len(beats) >= 10 * kill_after * 0.8, f"{len(beats)} heartbeats in {kill_after:.1f} s"
    last = beats[-1]
    bundles = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(bundles) == 1, bundles
    path = bundles[0]
    assert path == Path(out[0]["log"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = vk.load_log(path)
        events = log.raw_events
        user, rate = log.audio("user")
        agent_audio, _ = log.audio("agent")
    # the only damage a kill may do to events.jsonl is a line cut in the middle
    for w in caught:
        assert issubclass(w.category, LogFormatWarning), w
        assert "truncated last line" in str(w.message), w
    assert log.meta["session_id"] and path.name.endswith(log.meta["session_id"])

    # the WAV headers were at most one flush behind; the reader took sizes from the files
    for track, samples in (("user", user), ("agent", agent_audio)):
        raw = (path / f"{track}.wav").read_bytes()
        assert raw[:4] == b"RIFF" and raw[36:40] == b"data", track
        assert len(samples) == (len(raw) - 44) // 2, track
        header_samples = struct.unpack("<I", raw[40:44])[0] // 2
        assert len(samples) - header_samples <= rate * 1.2, (track, header_samples)

    # nothing but the last second is missing: events, user track, and what was sent
    kinds = {e["type"] for e in events}
    assert {"session.start", "session.ready", "input.audio", "user.utterance"} <= kinds
    assert "session.stop" not in kinds  # it really was killed, not stopped
    lost_events = last["t"] - events[-1]["t"]
    lost_user = last["t"] - len(user) / rate
    sent = max(e["offset"] + e["samples"] for e in log.of_type("input.audio"))
    lost_sent = (last["sent"] - sent) / rate
    print(
        f"seed {seed}: killed at {last['t']:.2f} s (session clock, last heartbeat); "
        f"lost {lost_events:.3f} s of events, {lost_user:.3f} s of user audio, "
        f"{lost_sent:.3f} s of sent-audio lines; agent track {len(agent_audio) / rate:.2f} s"
    )
    assert lost_events <= MAX_LOSS_S, (last, events[-1])
    assert lost_user <= MAX_LOSS_S, (last, len(user) / rate)
    assert lost_sent <= MAX_LOSS_S, (last, sent)
    # the agent track holds what the log says was played (the kill may cut the last second)
    starts = {e["reply_id"]: e["offset"] for e in log.of_type("playback.start")}
    for stop in log.of_type("playback.stop"):
        end = starts[stop["reply_id"]] + stop["played"]
        assert len(agent_audio) >= end - rate * MAX_LOSS_S, (stop, len(agent_audio))
