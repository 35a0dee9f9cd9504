"""Helpers shared by the benchmarks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def agent_url() -> Iterator[str]:
    """A stand-in agent (fast profile) in its own process, so it is not counted as ours."""
    agent = subprocess.Popen(
        [sys.executable, "-m", "voicekit", "serve", "--port", "0", "--profile", "fast"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        yield agent.stdout.readline().split()[-1]
    finally:
        agent.terminate()
        agent.wait(10)
