"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
