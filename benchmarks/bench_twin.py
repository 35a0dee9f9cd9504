"""The twin beside the hosted service: the same conversations, the live figure next to ours.

Runs scripted conversations through the stand-in agent with ``profile="hosted"`` (the
default) on a real socket, with a raw protocol client that streams synthesized speech in
real time as a microphone would, and prints one row per measured figure: the range people
outside this project recorded on the running hosted service (September 2026, with its
source), the twin's median and range over the runs, and whether the median falls inside
the live range (with a 10 % margin: the live figures include a ~170 ms network round trip
and come from a handful of sessions).

Times are from the end of the user's last voiced sample (the last 10 ms window above
-50 dBFS of the synthesized clip) unless the row says otherwise; "first audible" is the
arrival of the reply's first ``reply.audio`` plus the reply's lead-in silence, so it does
not depend on a sound card.

Each run uses a fresh agent with its own seed, so the rows are distributions, not one
draw repeated. Prints figures; asserts nothing. ``--quick``: 2 runs (about 2 minutes);
default 4 runs (about 4 minutes); ``--markdown`` also prints the README's table.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

import voicekit as vk
from voicekit.local.timing import LIVE_FIGURES

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "local"))
from rawclient import RawClient, silence, speech

RATE = 24000
AUDIBLE = 100  # |sample| at or above: audible (the analysis' threshold)
QUESTION = "what is the weather like today"
STATEMENT = (
    "I would like to tell you about my trip last summer, we drove along the coast for "
    "two weeks and stopped in every small town we found on the way"
)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city"}},
        "required": ["city"],
    },
}
LONG_REPLY = "Say: " + "this is a long answer that keeps going so that you can interrupt it " * 4


def voiced(clip: np.ndarray) -> tuple[float, float]:
    """Onset and offset (s) of the audible part of a synthesized clip (10 ms windows)."""
    win = RATE // 100
    n = len(clip) // win
    peaks = np.abs(clip[: n * win].astype(np.int32)).reshape(n, win).max(axis=1)
    loud = np.flatnonzero(peaks >= AUDIBLE)
    return float(loud[0] * win / RATE), float((loud[-1] + 1) * win / RATE)


def lead_silence(client: RawClient, reply_id: str) -> float:
    """Seconds of silence at the start of a reply's audio (PCM16)."""
    pcm = b"".join(
        base64.b64decode(e["data"]) for e in client.of("reply.audio") if e["reply_id"] == reply_id
    )
    samples = np.frombuffer(pcm, "<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= AUDIBLE)
    return (loud[0] if len(loud) else len(samples)) / RATE


def first_audio(client: RawClient, reply_id: str) -> dict[str, Any]:
    return next(e for e in client.of("reply.audio") if e["reply_id"] == reply_id)


async def say(client: RawClient, text: str, tail: float = 8.0) -> tuple[float, float]:
    """Stream ``text`` (then silence, as an open microphone); returns the voiced onset and
    offset on the client's clock, once the audio has started."""
    clip = speech(text)
    on, off = voiced(clip)
    audio = np.concatenate([silence(0.3), clip, silence(tail)])
    start = _age(client)  # the stream task sends its first chunk at its first step
    TASKS.setdefault(id(client), []).append(asyncio.create_task(client.stream(audio)))
    await asyncio.sleep(0)
    return start + 0.3 + on, start + 0.3 + off


TASKS: dict[int, list[asyncio.Task[Any]]] = {}  # streams per client, cancelled at the end
READY_AFTER: dict[int, float] = {}  # first session.update sent -> session.ready, per client


async def opened(url: str, session: dict[str, Any]) -> RawClient:
    client = await RawClient.open(url)
    sent = _age(client)
    await client.send("session.update", session=session)
    ready = await client.wait_for("session.ready")
    READY_AFTER[id(client)] = ready["_t"] - sent
    return client


def _age(client: RawClient) -> float:
    """Now on the client's clock (the clock of its events' ``_t``)."""
    return time.monotonic() - client.t0


async def finish(client: RawClient) -> None:
    for task in TASKS.pop(id(client), []):
        task.cancel()
    await client.close()


# -- scenarios: each returns {row key: value} ---------------------------------------------
async def short_question(url: str, mode: str) -> dict[str, float]:
    c = await opened(url, {"input": {"transcription_mode": mode}})
    on, off = await say(c, QUESTION)
    started = await c.wait_for("input.speech.started", timeout=30)
    stopped = await c.wait_for("input.speech.stopped", timeout=30)
    user = await c.wait_for("transcript.user", timeout=30)
    reply = await c.wait_for("reply.started", timeout=30)
    audio = await c.wait_for("reply.audio", reply_id=reply["reply_id"], timeout=30)
    await c.wait_for("reply.done", timeout=40)
    lead = lead_silence(c, reply["reply_id"])
    await finish(c)
    return {
        "speech_started": started["_t"] - on,
        f"commit_{mode}": stopped["_t"] - off,
        f"audible_{mode}": audio["_t"] + lead - off,
        "time_to_first_audio": audio["_t"] + lead - stopped["_t"],
        "reply_with_commit": max(abs(x["_t"] - stopped["_t"]) for x in (user, reply, audio)),
        "lead_plain": lead,
    }


async def pause_inside_turn(url: str) -> dict[str, float]:
    """A 0.4 s pause after a complete phrase, then more words (live: committed 0.8 s after
    the pause began, and merged with the continuation)."""
    c = await opened(url, {})
    first, second = speech("what is the weather in paris"), speech("and tomorrow as well")
    _, off1 = voiced(first)
    on2, _ = voiced(second)
    gap = 0.4 - (len(first) / RATE - off1) - on2  # 0.4 s from voiced end to voiced start
    audio = np.concatenate([silence(0.3), first, silence(max(0.0, gap)), second, silence(8.0)])
    start = _age(c)
    TASKS.setdefault(id(c), []).append(asyncio.create_task(c.stream(audio)))
    stopped = await c.wait_for("input.speech.stopped", timeout=30)
    await c.wait_for("reply.done", timeout=40)
    await finish(c)
    return {"early_commit": stopped["_t"] - (start + 0.3 + off1)}


async def long_statement(url: str) -> dict[str, float]:
    c = await opened(url, {"input": {"transcription_mode": "balanced"}})
    _, off = await say(c, STATEMENT)
    stopped = await c.wait_for("input.speech.stopped", timeout=40)
    await c.wait_for("reply.done", timeout=40)
    await finish(c)
    return {"commit_long_balanced": stopped["_t"] - off}


async def greeting(url: str) -> dict[str, float]:
    c = await opened(url, {"greeting": "Hello! How can I help you today?"})
    reply = await c.wait_for("reply.started")
    await c.wait_for("reply.done", timeout=30)
    updated, ready = c.of("session.updated")[0], c.of("session.ready")[0]
    out = {
        "lead_greeting": lead_silence(c, reply["reply_id"]),
        "session_ready": READY_AFTER[id(c)],
        "ready_after_updated": ready["_t"] - updated["_t"],
    }
    await finish(c)
    return out


async def barge_in(url: str) -> dict[str, float]:
    c = await opened(url, {})
    stream = asyncio.create_task(c.stream(silence(40.0)))
    await c.send("reply.create", instructions=LONG_REPLY)
    reply = await c.wait_for("reply.started")
    audio = await c.wait_for("reply.audio", reply_id=reply["reply_id"])
    await asyncio.sleep(max(0.0, audio["_t"] + 2.5 - _age(c)))  # past the lead-in: speaking
    stream.cancel()
    on, _ = await say(c, "wait a moment I have a different question about my booking")
    decided = await c.wait_for("input.speech.started", timeout=30)
    cut = await c.wait_for("reply.done", reply_id=reply["reply_id"], timeout=30)
    final = await c.wait_for("transcript.agent", reply_id=reply["reply_id"], timeout=30)
    spread = max(x["_t"] for x in (decided, cut, final)) - min(
        x["_t"] for x in (decided, cut, final)
    )
    after = await c.wait_for("reply.started", count=2, timeout=40)
    await c.wait_for("reply.audio", reply_id=after["reply_id"], timeout=30)
    await c.wait_for("reply.done", reply_id=after["reply_id"], timeout=40)
    out = {
        "barge_in": decided["_t"] - on,
        "barge_in_together": spread,
        "lead_barge_in": lead_silence(c, after["reply_id"]),
    }
    await finish(c)
    return out


async def tool_turn(url: str, immediate: bool) -> dict[str, float]:
    c = await opened(url, {"tools": [WEATHER_TOOL]})
    _, off = await say(c, "what is the weather in paris", tail=14.0)
    call = await c.wait_for("tool.call", timeout=30)
    preamble = next(e for e in reversed(c.of("reply.started")) if e["_t"] <= call["_t"] + 0.05)
    result = {"call_id": call["call_id"], "result": '{"temp_c": 21}'}
    if immediate:
        await c.send("tool.result", **result)
        done = await c.wait_for("reply.done", reply_id=preamble["reply_id"], timeout=30)
    else:
        done = await c.wait_for("reply.done", reply_id=preamble["reply_id"], timeout=30)
        await c.send("tool.result", **result)
    answer = await c.wait_for("reply.started", count=2, timeout=30)
    audio = await c.wait_for("reply.audio", reply_id=answer["reply_id"], timeout=30)
    await c.wait_for("reply.done", reply_id=answer["reply_id"], timeout=40)
    lead = lead_silence(c, answer["reply_id"])
    said = [e for e in c.of("transcript.agent") if e["reply_id"] == preamble["reply_id"]]
    out = {
        f"answer_audible_{'immediate' if immediate else 'after_done'}": audio["_t"]
        + lead
        - call["_t"],
        "preamble_text_chars": float(sum(len(e.get("text") or "") for e in said)),
    }
    if not immediate:
        out["tool_call"] = call["_t"] - off
        out["preamble_hold"] = done["_t"] - call["_t"]
        out["lead_tool"] = lead
    await finish(c)
    return out


SCENARIOS: list[Callable[[str], Awaitable[dict[str, float]]]] = [
    greeting,
    lambda url: short_question(url, "min_latency"),
    lambda url: short_question(url, "balanced"),
    lambda url: short_question(url, "max_accuracy"),
    long_statement,
    pause_inside_turn,
    barge_in,
    lambda url: tool_turn(url, immediate=False),
    lambda url: tool_turn(url, immediate=True),
]


async def one_run(url: str) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    for scenario in SCENARIOS:
        try:
            got = await scenario(url)
        except (AssertionError, StopIteration) as exc:  # did not play out: say so, go on
            print(f"   (a scenario failed: {exc})")
            continue
        finally:
            await RawClient.close_all()
        for key, value in got.items():
            figures.setdefault(key, []).append(value)
    late, soon = figures.get("answer_audible_after_done"), figures.get("answer_audible_immediate")
    if late and soon:  # how much sooner an early tool.result makes the answer audible
        figures["early_result_gain"] = [late[-1] - soon[-1]]
    return figures


def main() -> dict[str, Any]:
    runs = 2 if "--quick" in sys.argv else 4
    measured: dict[str, list[float]] = {}
    for seed in range(runs):
        with vk.local.serve(profile="hosted", seed=seed) as agent:
            for key, values in asyncio.run(one_run(agent.url)).items():
                measured.setdefault(key, []).extend(values)
    print(f"twin (profile='hosted', {runs} runs, one seed each) beside the live service")
    print(f"  {'figure':<52} {'live':>15}  {'twin median':>11}  {'twin range':>15}  ok  source")
    rows: dict[str, Any] = {}
    for fig in LIVE_FIGURES:
        values = measured.get(fig.key)
        if not values:
            print(f"  {fig.what:<52} {fig.low_s:>6.2f}-{fig.high_s:<6.2f} s  (not measured)")
            continue
        med = statistics.median(values)
        margin = 0.1 * max(fig.high_s - fig.low_s, fig.high_s)
        ok = fig.low_s - margin <= med <= fig.high_s + margin
        rows[fig.key] = {"live": (fig.low_s, fig.high_s), "median": med, "ok": ok}
        print(
            f"  {fig.what:<52} {fig.low_s:>6.2f}-{fig.high_s:<6.2f} s  {med:>9.2f} s  "
            f"{min(values):>6.2f}-{max(values):<6.2f} s  {'yes' if ok else 'NO ':<3} {fig.source}"
        )
    if "--markdown" in sys.argv:  # the README's calibration table
        print("| figure | live (source) | twin median |\n|---|---|---|")
        for fig in LIVE_FIGURES:
            if fig.key in rows:
                live = (
                    f"{fig.low_s:.2f}"
                    if fig.low_s == fig.high_s
                    else (f"{fig.low_s:.2f}-{fig.high_s:.2f}")
                )
                print(f"| {fig.what} | {live} s ({fig.source}) | {rows[fig.key]['median']:.2f} s |")
    for key in sorted(set(measured) - {f.key for f in LIVE_FIGURES}):
        values = measured[key]
        print(f"  {key:<52} {'':>15}  {statistics.median(values):>9.2f}    (no live figure)")
    return rows


if __name__ == "__main__":
    main()
