"""The stand-in agent under load, on a real socket.

- latency: end of user speech -> first ``reply.audio`` with ``profile="fast"``
  (target <= min_silence + 250 ms);
- pacing: 8 concurrent sessions each receiving a long reply; jitter of ``reply.audio``
  arrival against the ideal 10 ms schedule, p99 (target <= 20 ms), and underruns (a chunk
  more than 100 ms late, i.e. past a 100 ms jitter buffer);
- memory: RSS per session (target <= 150 MB);
- cold handshake: first valid ``session.update`` -> ``session.ready`` for the first session
  of a just-started agent, over several fresh agents (target <= 150 ms; the hosted service
  answers ~17 ms after ``session.updated``), against a warm agent's later sessions.

Prints figures; asserts nothing. Bounded: about a minute.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path

import numpy as np
from _common import rss_mb

import voicekit as vk

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "local"))
from rawclient import RawClient, silence, speech


async def latency(url: str, runs: int = 3) -> list[float]:
    out = []
    c = await RawClient.open(url, {"input": {"turn_detection": {"min_silence": 600}}})
    for i in range(runs):
        words = speech("what is the weather in paris")
        # keep streaming, as a microphone does: speech, then silence while the agent answers
        streaming = asyncio.create_task(c.stream(np.concatenate([words, silence(4.0)])))
        await asyncio.sleep(0)
        end_of_speech = time.monotonic() - c.t0 + len(words) / 24000
        started = await c.wait_for("reply.started", count=i + 1)
        first = await c.wait_for("reply.audio", reply_id=started["reply_id"])
        out.append(first["_t"] - end_of_speech)
        await c.wait_for("reply.done", count=i + 1, timeout=30)
        await streaming
    await c.close()
    return out


async def pacing(url: str, sessions: int = 8) -> tuple[list[float], int, int]:
    text = "Say: " + "this is a long reply to measure pacing under load " * 3
    clients = [await RawClient.open(url, {}) for _ in range(sessions)]
    for c in clients:
        await c.send("reply.create", instructions=text)
    for c in clients:
        await c.wait_for("reply.done", timeout=60)
    jitter, late, chunks = [], 0, 0
    for c in clients:
        audio = c.of("reply.audio")
        t0 = audio[0]["_t"]
        played = 0.0
        for e in audio:
            ideal = t0 + played
            jitter.append(abs(e["_t"] - ideal))
            late += e["_t"] - ideal > 0.1
            played += len(base64.b64decode(e["data"])) / 48000
        chunks += len(audio)
    for c in clients:
        await c.close()
    return jitter, late, chunks


async def handshake(url: str) -> float:
    """Seconds from sending the first session.update to receiving session.ready."""
    c = await RawClient.open(url)
    sent = time.monotonic() - c.t0
    await c.send("session.update", session={"greeting": "Hi."})
    ready = await c.wait_for("session.ready")
    await c.close()
    return float(ready["_t"] - sent)


def cold_handshakes(agents: int = 5) -> tuple[list[float], list[float]]:
    """The first session of each of ``agents`` fresh agents, then a warm agent's later ones."""
    cold, warm = [], []
    for _ in range(agents):
        with vk.local.serve(profile="fast") as agent:
            cold.append(asyncio.run(handshake(agent.url)))
            warm.append(asyncio.run(handshake(agent.url)))
    return cold, warm


def main() -> dict[str, float]:
    cold, warm = cold_handshakes()
    before = rss_mb()
    with vk.local.serve(profile="fast") as agent:
        lat = asyncio.run(latency(agent.url))
        jitter, late, chunks = asyncio.run(pacing(agent.url))
        after = rss_mb()
    p99 = float(np.percentile(jitter, 99) * 1000)
    result = {
        "end_of_speech_to_first_audio_s": float(np.median(lat)),
        "pacing_p99_ms": p99,
        "underruns": late,
        "chunks": chunks,
        "rss_per_session_mb": (after - before) / 9,
        "cold_handshake_max_ms": max(cold) * 1000,
        "warm_handshake_median_ms": float(np.median(warm)) * 1000,
    }
    print(
        f"agent: cold handshake (first session of {len(cold)} fresh agents) "
        f"session.update -> session.ready max {max(cold) * 1000:.0f} ms, median "
        f"{np.median(cold) * 1000:.0f} ms (target <= 150 ms); warm median "
        f"{np.median(warm) * 1000:.0f} ms -> cold/warm {np.median(cold) / np.median(warm):.2f}x"
    )
    print(
        "agent: end of speech -> first reply.audio median "
        f"{result['end_of_speech_to_first_audio_s']:.3f} s "
        f"(min_silence 0.600 s; target <= 0.850 s) runs {[round(x, 3) for x in lat]}"
    )
    print(
        f"agent: 8 concurrent replies: pacing jitter p99 {p99:.1f} ms (target <= 20 ms), "
        f"{late} of {chunks} chunks late by > 100 ms"
    )
    print(
        f"agent: RSS growth {after - before:.0f} MB for 9 sessions -> "
        f"{result['rss_per_session_mb']:.0f} MB per session (target <= 150 MB)"
    )
    return result


if __name__ == "__main__":
    main()
