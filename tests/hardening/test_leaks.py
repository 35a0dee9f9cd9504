"""Start/stop cycles leave nothing behind (issue 10): threads, tasks, sockets, fds, memory.

Design rule (docs/architecture.md, threading model): ``stop()`` leaves no thread, task,
socket or file descriptor behind. The tests run fewer cycles than ``benchmarks/bench_leaks.py`` (200
sessions, 50 panels) to stay bounded, so counts must return to the baseline exactly and the
RSS trend (a least-squares slope over samples taken every few cycles), scaled to the
benchmark's cycle count, must stay under 20 MB. The stand-in agent runs in this process (the
shared fixture): its per-session speech models make RSS jump by ~10 MB over the first cycles
(malloc arenas of its worker threads) and then stay flat, hence the warm-up and the slope.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
import pytest

import voicekit as vk

pytestmark = pytest.mark.slow

SESSION_CYCLES = 80  # the benchmark does 200
PANEL_CYCLES = 15  # the benchmark does 50 (and 50 panels created and closed)
RSS_BUDGET_MB = 20.0  # over 200 session cycles / 50 panel cycles
SAMPLE_EVERY = 5  # cycles between RSS samples


def _counts(agent: vk.local.LocalAgent, settle: Callable[[], None]) -> dict[str, int]:
    """What a leak would grow: this process's threads, fds, sockets, and asyncio tasks
    (counted once the agent's per-session threads, which end just after a client, are gone)."""
    settle()
    gc.collect()
    proc = psutil.Process()
    return {
        "threads": len(threading.enumerate()),
        "fds": len(os.listdir("/proc/self/fd")),
        "sockets": len(proc.net_connections("all")),
        "agent_tasks": agent.task_count(),
        # type(), not isinstance(): a dead weakref.proxy raises ReferenceError on __class__
        "live_tasks": sum(issubclass(type(o), asyncio.Task) for o in gc.get_objects()),
    }


def _grown(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Counts that grew (a thread left over from an earlier test may end meanwhile: fewer
    is not a leak)."""
    return {k: (before[k], after[k]) for k in before if after.get(k, 0) > before[k]}


def _rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def _rss_trend_mb(samples: list[float], cycles: int) -> float:
    """RSS growth over ``cycles`` cycles at the least-squares slope of the samples."""
    x = np.arange(len(samples)) * SAMPLE_EVERY
    return float(np.polyfit(x, samples, 1)[0]) * cycles


def _session_threads() -> int:
    return sum(t.name == "voicekit-session" for t in threading.enumerate())


def _session_cycle(agent: vk.local.LocalAgent, log_dir: Any) -> None:
    s = vk.Session(url=agent.url, audio_in="null", audio_out="null", log_dir=log_dir)
    s.start()
    assert s.status == "ready" and _session_threads() == 1
    log = s.stop()
    assert s.status == "ended" and log is not None
    # the session's own thread (its loop's) has ended; a task left on it would still be
    # a live asyncio.Task, which _counts counts
    assert _session_threads() == 0


def test_session_start_stop_cycles_leave_nothing_behind(
    agent, tmp_path, agent_sessions_ended
) -> None:
    """Many Session start/stop cycles: thread, fd, socket and task counts back to baseline."""
    warm_up = 20  # imports, caches, the agent's worker threads and their malloc arenas
    for _ in range(warm_up):
        _session_cycle(agent, tmp_path)
    before, rss = _counts(agent, agent_sessions_ended), [_rss_mb()]
    for i in range(SESSION_CYCLES):
        _session_cycle(agent, tmp_path)
        if (i + 1) % SAMPLE_EVERY == 0:
            rss.append(_rss_mb())
    after = _counts(agent, agent_sessions_ended)
    assert not [t for t in threading.enumerate() if t.name == "voicekit-session"]
    assert not _grown(before, after), f"grew from {before} to {after} over {SESSION_CYCLES} cycles"
    trend = _rss_trend_mb(rss, 200)
    assert trend < RSS_BUDGET_MB, f"RSS trend {trend:.1f} MB per 200 cycles; samples {rss}"
    assert rss[-1] - rss[0] < RSS_BUDGET_MB, rss
    assert len(list(tmp_path.iterdir())) == SESSION_CYCLES + warm_up  # one bundle a cycle


def _kernel_counts(
    loop: asyncio.AbstractEventLoop, agent: vk.local.LocalAgent, settle: Callable[[], None]
) -> dict[str, int]:
    counts = _counts(agent, settle)
    counts["kernel_tasks"] = len(asyncio.all_tasks(loop))
    counts["kernel_timers"] = _live_timers(loop)
    return counts


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers scheduled on the kernel loop (the panel's ticks and debounces). asyncio has no
    public count: its event loop keeps them in ``_scheduled``, cancelled ones for a while."""
    return sum(not h.cancelled() for h in getattr(loop, "_scheduled", []))


def test_panel_start_stop_cycles_in_a_kernel_loop_leave_nothing_behind(
    agent, tmp_path, agent_sessions_ended
) -> None:
    """One AgentPanel started/stopped many times on a running loop: no tick, task or fd left."""

    async def main() -> tuple[dict[str, int], dict[str, int], list[float]]:
        loop = asyncio.get_running_loop()
        panel = vk.AgentPanel(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)

        async def cycle() -> None:
            panel.start()
            await asyncio.sleep(0.25)  # a few 10 Hz ticks run on the loop
            assert _live_timers(loop) == 1  # the next tick (no debounce without an edit)
            panel.stop()
            await asyncio.sleep(0.1)
            assert _live_timers(loop) == 0  # no tick or debounce survives stop()

        for _ in range(3):
            await cycle()
        before, rss = _kernel_counts(loop, agent, agent_sessions_ended), [_rss_mb()]
        for i in range(PANEL_CYCLES):
            await cycle()
            if (i + 1) % SAMPLE_EVERY == 0:
                rss.append(_rss_mb())
        return before, _kernel_counts(loop, agent, agent_sessions_ended), rss

    before, after, rss = asyncio.run(main())
    assert not _grown(before, after), f"grew from {before} to {after} over {PANEL_CYCLES} cycles"
    trend = _rss_trend_mb(rss, 50)
    assert trend < RSS_BUDGET_MB, f"RSS trend {trend:.1f} MB per 50 cycles; samples {rss}"


def test_panels_made_run_and_closed_free_their_widgets(
    agent, tmp_path, agent_sessions_ended
) -> None:
    """A cell re-run makes a new panel each time: close() frees its ~120 widgets and memory.

    ipywidgets holds every open widget (and through its observers the panel) forever; before
    ``AgentPanel.close()`` each panel cost ~1.5 MB and 123 widgets that never went away.
    """
    from ipywidgets import Widget

    def objects() -> dict[str, int]:
        gc.collect()
        live = gc.get_objects()
        return {
            "panels": sum(isinstance(o, vk.AgentPanel) for o in live),
            "widgets": sum(isinstance(o, Widget) for o in live),
        }

    async def main() -> tuple[dict[str, int], dict[str, int], list[float]]:
        loop = asyncio.get_running_loop()

        async def cycle() -> None:
            panel = vk.AgentPanel(
                url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path
            )
            panel.start()
            await asyncio.sleep(0.2)
            panel.stop()
            panel.close()
            panel.close()  # idempotent
            await asyncio.sleep(0.05)

        for _ in range(3):
            await cycle()
        before, rss = (
            {**_kernel_counts(loop, agent, agent_sessions_ended), **objects()},
            [_rss_mb()],
        )
        for i in range(PANEL_CYCLES):
            await cycle()
            if (i + 1) % SAMPLE_EVERY == 0:
                rss.append(_rss_mb())
        return before, {**_kernel_counts(loop, agent, agent_sessions_ended), **objects()}, rss

    before, after, rss = asyncio.run(main())
    assert not _grown(before, after), f"grew from {before} to {after} over {PANEL_CYCLES} panels"
    trend = _rss_trend_mb(rss, 50)
    assert trend < RSS_BUDGET_MB, f"RSS trend {trend:.1f} MB per 50 panels; samples {rss}"
