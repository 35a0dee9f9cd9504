"""vk.Session against a bare client: what the session's comfort costs.

Both clients run the same scripted user audio (synthesized once, ~45 s, with pauses in
which the agent answers) against the same stand-in agent, each in its own process, the
agent in a third, so that ``time.process_time()`` counts only the client:

- client CPU per audio minute, session / bare (target <= 1.2x);
- receive -> sink added latency, p99 (target <= 2 ms): for the session, from the moment a
  ``reply.audio`` frame is taken off the socket (its ``t`` in the log) to the moment its
  samples reach the sink; for the bare client, from ``recv`` to the decoded buffer.

The three clients run in turns, ``ROUNDS`` rounds (``--rounds N``): on the shared 2-core
machine one run of each swung the ratio between 1.78x and 2.13x for the same code, as the
other processes' load changed between the runs. Each figure is the median of its rounds,
and every round's ratio is printed, so the spread is visible.

Prints figures; asserts nothing. Bounded: about two and a half minutes a round.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
ROUNDS = 2
LINES = [
    "hello can you hear me",
    "what time is it",
    "please tell me about the trains to london tomorrow morning",
    "what did you say",
    "thank you very much",
    "goodbye",
]


def user_track() -> np.ndarray:
    from voicekit.speech import USER_STYLE, synthesize

    parts = [np.zeros(24000 * 2, np.int16)]
    for text in LINES:
        parts += [synthesize(text, USER_STYLE).samples, np.zeros(24000 * 6, np.int16)]
    return np.concatenate(parts)


def session_client(url: str, raw: str, logged: bool = True) -> dict[str, Any]:
    """The same job through vk.Session: array in, a timing sink out, a log bundle."""
    # what the session imports on first use, imported before measuring (as the bare
    # client imports websockets before it starts its clock)
    import websockets.asyncio.client  # noqa: F401

    import voicekit as vk
    import voicekit.logformat
    import voicekit.protocol
    import voicekit.session
    from voicekit.audio.sinks import NullSink

    class TimingSink(NullSink):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[float] = []

        def write(self, reply_id: str, samples: np.ndarray) -> None:
            super().write(reply_id, samples)
            assert self._link is not None
            self.writes.append(self._link.now())

    audio = np.frombuffer(Path(raw).read_bytes(), np.int16)
    sink = TimingSink()
    with tempfile.TemporaryDirectory() as logs:
        cpu0 = time.process_time()
        s = vk.Session(url=url, audio_in=audio, audio_out=sink, log_dir=logs if logged else None)
        received: list[float] = []
        if not logged:
            s.on("reply.audio", lambda e: received.append(e["t"]))
        s.start()
        time.sleep(len(audio) / 24000 + 0.5)
        log = s.stop()
        cpu = time.process_time() - cpu0
        if logged:
            received = [e["t"] for e in log.of_type("reply.audio")]
            played = sum(e["played"] for e in log.of_type("playback.stop"))
        else:
            played = 0
    latency = [(w - r) * 1000 for w, r in zip(sink.writes, received, strict=False)]
    return {
        "cpu_s": cpu,
        "audio_s": len(audio) / 24000,
        "played_s": played / 24000,
        "latency_ms": latency,
    }


def _run(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(rounds: int = ROUNDS) -> dict[str, float]:
    from _common import agent_url

    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "sess": [], "nolog": []}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "user.raw"
        raw.write_bytes(user_track().astype("<i2").tobytes())
        with agent_url() as url:
            for _ in range(rounds):  # in turns: a change of the machine's load hits all three
                runs["bare"].append(_run([str(HERE / "bare_client.py"), url, str(raw)]))
                runs["sess"].append(_run([__file__, "--session", url, str(raw)]))
                runs["nolog"].append(_run([__file__, "--session-nolog", url, str(raw)]))
    each = {k: [r["cpu_s"] / r["audio_s"] * 60 for r in rs] for k, rs in runs.items()}
    per_min = {k: float(np.median(v)) for k, v in each.items()}
    ratio = per_min["sess"] / per_min["bare"]
    bare, sess = runs["bare"][-1], runs["sess"][-1]
    p99 = {
        k: float(np.percentile([x for r in rs for x in r["latency_ms"]], 99))
        for k, rs in runs.items()
    }
    print(
        f"client: CPU per audio minute: session {per_min['sess']:.2f} s, bare client "
        f"{per_min['bare']:.2f} s -> {ratio:.2f}x (target <= 1.2x); agent audio played "
        f"{sess['played_s']:.1f} s / {bare['played_s']:.1f} s"
    )
    print(
        f"client: without a log bundle (log_dir=None) the session takes {per_min['nolog']:.2f} s "
        f"-> {per_min['nolog'] / per_min['bare']:.2f}x (what the log bundle costs on top)"
    )
    turns = zip(each["bare"], each["sess"], each["nolog"], strict=True)
    rounds_text = ", ".join(f"{s_ / b:.2f}x / {n / b:.2f}x" for b, s_, n in turns)
    print(f"client: each round, session / bare with and without a log bundle: {rounds_text}")
    print(
        f"client: receive -> sink added latency p99: session {p99['sess']:.2f} ms, bare "
        f"{p99['bare']:.3f} ms (target <= 2 ms) over {len(sess['latency_ms'])} chunks a run"
    )
    cpu = {f"cpu_{k}": v for k, v in per_min.items()}
    return {"cpu_ratio": ratio, "latency_p99_ms": p99["sess"], **cpu}


if __name__ == "__main__":
    if sys.argv[1:2] in (["--session"], ["--session-nolog"]):
        print(json.dumps(session_client(sys.argv[2], sys.argv[3], sys.argv[1] == "--session")))
    elif sys.argv[1:2] == ["--rounds"]:
        main(int(sys.argv[2]))
    else:
        main()
