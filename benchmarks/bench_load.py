"""How many concurrent real-time sessions one stand-in agent holds on this machine.

The agent runs in its own process (``python -m voicekit serve --profile fast``). For each
level of the ramp 1, 2, 4, 6, 8, 10, 12, 16, 20, 24 concurrent sessions, scripted users
(raw protocol clients in this process, one asyncio loop) stream a microphone-like track in
real time: an utterance, then silence while the agent answers, again and again, each user
starting at a different point of its script. Every utterance gets a reply.

Per level, after all sessions are open (opening one costs the agent ~0.25 s of CPU and is
not what is measured), agent audio arriving during a ``WINDOW_S`` window is timed: the
pacing jitter of a ``reply.audio`` chunk is ``|arrival - ideal|``, the ideal being the
arrival of its reply's first chunk plus the audio before it at real time (the measure of
``bench_agent.py``, per reply). The ramp stops at the first level whose p99 passes
``LIMIT_MS`` (20 ms), or when the time budget (~5 minutes) would be exceeded.

    python benchmarks/bench_load.py        # LOAD_LEVELS="1,2,4" to choose levels

Prints a table and the answer; asserts nothing. Bounded: about five minutes.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "local"))

LIMIT_MS = 20.0
WINDOW_S = 20.0
BUDGET_S = 290.0
LEVELS = (1, 2, 4, 6, 8, 10, 12, 16, 20, 24)
LINES = (
    "hello can you hear me",
    "what time is it",
    "please tell me about the trains to london tomorrow morning",
    "thank you very much",
)
RATE = 24000


def pacing_jitter_s(chunks: Iterable[tuple[float, str, int]]) -> list[float]:
    """Pacing jitter of agent audio chunks as received, in seconds.

    Parameters
    ----------
    chunks : iterable of (arrival_s, reply_id, samples)
        Every ``reply.audio`` chunk in arrival order: arrival time (any clock in seconds),
        its reply and its length in 24 kHz samples.

    Returns
    -------
    list of float
        ``|arrival - ideal|`` per chunk; ideal = first chunk of the reply + the samples
        before this chunk at real time (a reply paced perfectly has jitter 0).
    """
    first: dict[str, float] = {}
    played: dict[str, int] = {}
    out = []
    for t, reply_id, samples in chunks:
        t0 = first.setdefault(reply_id, t)
        before = played.get(reply_id, 0)
        out.append(abs(t - (t0 + before / RATE)))
        played[reply_id] = before + samples
    return out


@functools.cache
def _speech(text: str) -> np.ndarray:
    from rawclient import speech

    return speech(text)


def _user_track(rng: random.Random) -> np.ndarray:
    """A microphone-like track: each line, then ~5 s of silence for the reply."""
    from rawclient import silence

    lines = list(LINES)
    rng.shuffle(lines)
    parts = [silence(rng.uniform(0.2, 3.0))]
    for text in lines:
        parts += [_speech(text), silence(rng.uniform(4.5, 5.5))]
    return np.concatenate(parts)


async def _level(url: str, n: int, seed: int) -> dict[str, Any]:
    """Run ``n`` talking sessions; time the agent audio arriving during the window."""
    from rawclient import RawClient

    rng = random.Random(seed)
    tracks = [_user_track(rng) for _ in range(n)]
    config = {"input": {"turn_detection": {"min_silence": 500}}}
    clients = [await RawClient.open(url, config) for _ in range(n)]
    streams = [
        asyncio.create_task(c.stream(np.tile(tr, 3))) for c, tr in zip(clients, tracks, strict=True)
    ]
    await asyncio.sleep(1.0)  # the last session's pipeline is built; all are talking
    start = time.monotonic()
    await asyncio.sleep(WINDOW_S)
    end = time.monotonic()
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    jitter: list[float] = []
    replies = late = 0
    for c in clients:
        t_lo, t_hi = start - c.t0, end - c.t0
        ids = {e["reply_id"] for e in c.of("reply.started") if t_lo <= e["_t"] and e["_t"] < t_hi}
        chunks = [
            (e["_t"], e["reply_id"], len(base64.b64decode(e["data"])) // 2)
            for e in c.of("reply.audio")
            if e["reply_id"] in ids and e["_t"] < t_hi
        ]
        replies += len({r for _, r, _ in chunks})
        j = pacing_jitter_s(chunks)
        late += sum(x > 0.1 for x in j)
        jitter += j
    for c in clients:
        await c.send("session.end")
    for c in clients:
        await c.close()
    ms = np.array(jitter) * 1000 if jitter else np.array([np.nan])
    return {
        "sessions": n,
        "replies": replies,
        "chunks": len(jitter),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "late": late,
        "load1": os.getloadavg()[0],
    }


def main() -> dict[str, float]:
    from _common import agent_url

    levels = tuple(int(x) for x in os.environ.get("LOAD_LEVELS", "").split(",") if x) or LEVELS
    t_start = time.monotonic()
    rows: list[dict[str, Any]] = []
    print(f"load: uptime before: {Path('/proc/loadavg').read_text().split()[:3]} (1/5/15 min)")
    with agent_url() as url:
        for n in levels:
            expected = WINDOW_S + 2.0 + 0.3 * n
            if rows and time.monotonic() - t_start + expected > BUDGET_S:
                print(f"load: time budget reached before {n} sessions")
                break
            row = asyncio.run(_level(url, n, seed=n))
            rows.append(row)
            print(
                f"load: {n:3d} sessions  {row['replies']:3d} replies  {row['chunks']:6d} chunks  "
                f"jitter p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
                f"max {row['max_ms']:7.1f} ms  late>100ms {row['late']:4d}  "
                f"load1 {row['load1']:.2f}",
                flush=True,
            )
            if row["p99_ms"] > LIMIT_MS:
                break
    print(f"load: uptime after: {Path('/proc/loadavg').read_text().split()[:3]} (1/5/15 min)")
    held = [r["sessions"] for r in rows if r["p99_ms"] <= LIMIT_MS]
    best = max(held, default=0)
    passed = next((r for r in rows if r["p99_ms"] > LIMIT_MS), None)
    verdict = (
        f"p99 passed {LIMIT_MS:g} ms at {passed['sessions']} sessions ({passed['p99_ms']:.1f} ms)"
        if passed is not None
        else f"p99 stayed <= {LIMIT_MS:g} ms up to the last level tried"
    )
    print(
        f"load: one stand-in agent holds {best} concurrent real-time sessions with reply "
        f"pacing jitter p99 <= {LIMIT_MS:g} ms on {os.cpu_count()} cores; {verdict}; "
        f"{time.monotonic() - t_start:.0f} s"
    )
    return {
        "sessions_within_20ms": float(best),
        **{f"p99_ms_{r['sessions']}": r["p99_ms"] for r in rows},
    }


if __name__ == "__main__":
    main()
