"""Programs run by test_devices.py in a fresh interpreter, one per sound-device set-up.

PortAudio reads the ALSA configuration (and the PulseAudio server address) once, when it
initialises, so each set-up gets its own process with its environment set by the test.
Each program prints one JSON line with what it observed; the test makes the assertions.

    python device_scripts.py alsa  OUTDIR INFILE   # exact content through ALSA file devices
    python device_scripts.py pulse OUTDIR          # a paced conversation through PulseAudio
    python device_scripts.py xrun  OUTDIR          # a starved speaker callback underflows
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import voicekit as vk
from voicekit.audio.sinks import SpeakerSink
from voicekit.audio.sources import AudioLink, MicSource

QUESTION = "please tell me about the trains to london tomorrow morning"


def _link(pushed: list[np.ndarray]) -> tuple[AudioLink, asyncio.AbstractEventLoop]:
    """A real AudioLink on a loop thread, as a session would make it."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    t0 = time.monotonic()
    link = AudioLink(loop, lambda: time.monotonic() - t0, lambda s, off: pushed.append(s))
    return link, loop


def alsa(out: Path, infile: Path) -> dict[str, Any]:
    """Read the capture file through MicSource; write a known signal through SpeakerSink."""
    expected = np.frombuffer(infile.read_bytes(), "<i2")
    devices = [d["name"] for d in vk.list_devices()]

    pushed: list[np.ndarray] = []
    link, loop = _link(pushed)
    mic = MicSource(device="filein")
    mic.start(link)
    deadline = time.monotonic() + 20
    while sum(map(len, pushed)) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.01)
    mic.stop()
    captured = np.concatenate(pushed)[: len(expected)] if pushed else np.zeros(0, np.int16)
    np.save(out / "captured.npy", captured)

    signal = np.random.default_rng(7).integers(-20000, 20000, 24000, dtype=np.int16)
    signal[0] = 1234  # the first sample marks where the signal starts in the file
    np.save(out / "signal.npy", signal)
    speaker = SpeakerSink(device="fileout")
    speaker.write("r1", signal)  # queued before the stream starts: played from its first block
    speaker.start(link)
    played: list[Any] = []
    deadline = time.monotonic() + 20
    while sum(len(p.samples) for p in played) < len(signal) and time.monotonic() < deadline:
        played += speaker.poll()
        time.sleep(0.001)
    speaker.stop()
    loop.call_soon_threadsafe(loop.stop)
    offsets = [p.offset for p in played]
    contiguous = all(a.offset + len(a.samples) == b.offset for a, b in itertools.pairwise(played))
    return {
        "devices": devices,
        "played": sum(len(p.samples) for p in played),
        "first_offset": offsets[0] if offsets else None,
        "contiguous": contiguous,
    }


def _wait_for(events: queue.Queue[dict[str, Any]], kind: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            e = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if e["type"] == kind:
            return e
    raise TimeoutError(f"no {kind} within {timeout} s")


def pulse(out: Path) -> dict[str, Any]:
    """Greeting, a question, an answer cut off by a barge-in: mic and speaker in real time.

    The session's microphone is the monitor of the null sink ``vk_mic``, into which
    ``paplay`` speaks the user's lines; its speaker is the null sink ``vk_speaker``, whose
    monitor ``parecord`` records.
    """
    from voicekit.audio.wav import write_wav
    from voicekit.speech import USER_STYLE, synthesize

    def line(name: str, text: str) -> Path:
        path = out / f"{name}.wav"
        write_wav(path, synthesize(text, USER_STYLE).samples, 24000)
        return path

    question = line("question", QUESTION)
    barge = line("barge", "no no wait stop that please")
    recorder = ["parecord", "--device=vk_speaker.monitor", "--rate=24000", "--channels=1"]
    record = subprocess.Popen([*recorder, "--file-format=wav", str(out / "speaker.wav")])
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    failure = None
    try:
        with vk.local.serve(profile="fast") as agent:
            session = vk.Session(
                url=agent.url,
                audio_in="mic",
                audio_out="speaker",
                input_device="pulse",
                output_device="pulse",
                greeting="Hello, this is the test agent. Ask me anything.",
                log_dir=out / "logs",
            )
            session.on("*", events.put)
            wall0 = time.monotonic()
            session.start()
            try:
                _wait_for(events, "playback.stop", 20)  # the greeting has been played
                time.sleep(0.4)
                subprocess.run(["paplay", "--device=vk_mic", str(question)], check=True)
                _wait_for(events, "playback.start", 20)  # the answer starts playing
                time.sleep(1.0)
                subprocess.run(["paplay", "--device=vk_mic", str(barge)], check=True)
                _wait_for(events, "playback.stop", 20)
                time.sleep(0.5)
            except TimeoutError as exc:
                failure = str(exc)  # the test shows the log's events
            log = session.stop()
            wall = time.monotonic() - wall0
    finally:
        record.terminate()
        record.wait(10)
    return {"log": str(log.path), "wall": wall, "failure": failure}


def hold_the_gil(seconds: float) -> None:
    """Keep every other Python thread from running for ``seconds``, the speaker's PortAudio
    callback included: a busy loop that gives up the interpreter lock only after a switch
    interval longer than the hold. The device goes on playing in real time meanwhile, so
    its buffer runs dry whatever the machine's speed."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(seconds + 1.0)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    finally:
        sys.setswitchinterval(interval)


def xrun(out: Path) -> dict[str, Any]:
    """A session whose speaker (PulseAudio) is starved for a second: the output underflow
    PortAudio reports to the callback reaches the log as an ``audio.xrun`` line."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    failure = None
    with vk.local.serve(profile="fast") as agent:
        session = vk.Session(
            url=agent.url,
            audio_in="null",
            audio_out="speaker",
            output_device="pulse",
            greeting="Hello, this is the test agent.",
            log_dir=out / "logs",
        )
        session.on("*", events.put)
        session.start()
        try:
            _wait_for(events, "playback.start", 20)  # the stream runs, past its warm-up
            hold_the_gil(1.0)
            _wait_for(events, "audio.xrun", 10)
        except TimeoutError as exc:
            failure = str(exc)
        log = session.stop()
    return {"log": str(log.path), "failure": failure}


if __name__ == "__main__":
    outdir = Path(sys.argv[2])
    programs = {"alsa": lambda: alsa(outdir, Path(sys.argv[3])), "pulse": lambda: pulse(outdir)}
    programs["xrun"] = lambda: xrun(outdir)
    print(json.dumps(programs[sys.argv[1]]()))
