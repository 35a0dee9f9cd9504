"""Start/stop cycles: do threads, tasks, sockets, fds or memory grow? (issue 10)

Against one stand-in agent in another process (so only the client is measured):

- 200 ``vk.Session`` start/stop cycles (null audio in and out, a log bundle each);
- 50 start/stop cycles of one ``vk.AgentPanel`` on a running loop (as in a kernel);
- 50 ``vk.AgentPanel`` made, started, stopped and closed (a cell re-run each time).

Counts (threads, /proc/self/fd, sockets, asyncio tasks alive) and RSS are taken after a
warm-up of 10 cycles and at the end, after ``gc.collect()``. Target: counts unchanged,
RSS growth < 20 MB.

    python benchmarks/bench_leaks.py

Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
from _common import agent_url, rss_mb

import voicekit as vk

SESSIONS = 200
PANELS = 50
WARM_UP = 10


def counts() -> dict[str, float]:
    gc.collect()
    return {
        "threads": len(threading.enumerate()),
        "fds": len(os.listdir("/proc/self/fd")),
        "sockets": len(psutil.Process().net_connections("all")),
        "tasks": sum(isinstance(o, asyncio.Task) for o in gc.get_objects()),
        "rss_mb": round(rss_mb(), 1),
    }


def report(name: str, n: int, before: dict[str, float], after: dict[str, float], s: float) -> None:
    growth = {k: round(after[k] - before[k], 1) for k in before}
    print(f"{name}: {n} cycles, {s / n * 1000:.0f} ms a cycle")
    print(f"  before {before}\n  after  {after}\n  growth {growth}")


async def measure(cycle: Callable[[], Awaitable[None]], n: int) -> tuple[Any, Any, float]:
    for _ in range(WARM_UP):
        await cycle()
    before, t0 = counts(), time.monotonic()
    for _ in range(n):
        await cycle()
    return before, counts(), time.monotonic() - t0


def main() -> None:
    with agent_url() as url, tempfile.TemporaryDirectory() as logs:

        async def session_cycle() -> None:
            s = vk.Session(url=url, audio_in="null", audio_out="null", log_dir=logs)
            s.start()
            s.stop()

        report("Session start/stop", SESSIONS, *asyncio.run(measure(session_cycle, SESSIONS)))

        async def panels() -> None:
            panel = vk.AgentPanel(url=url, audio_in="null", audio_out="null", log_dir=logs)

            async def same_panel() -> None:
                panel.start()
                await asyncio.sleep(0.25)  # ticks run on the loop
                panel.stop()
                await asyncio.sleep(0.1)

            async def new_panel() -> None:
                p = vk.AgentPanel(url=url, audio_in="null", audio_out="null", log_dir=logs)
                p.start()
                await asyncio.sleep(0.25)
                p.stop()
                p.close()
                await asyncio.sleep(0.05)

            report("AgentPanel start/stop", PANELS, *await measure(same_panel, PANELS))
            panel.close()
            report("AgentPanel made/run/closed", PANELS, *await measure(new_panel, PANELS))

        asyncio.run(panels())


if __name__ == "__main__":
    main()
