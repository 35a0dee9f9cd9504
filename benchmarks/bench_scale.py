"""Sessions per second per worker: ``load_logs`` over many synthetic five-minute sessions.

``N_SESSIONS`` (default 300, about five minutes in all; ``N_SESSIONS=10000`` for the
full figure) bundles made by ``bench_analysis.synth_bundle``, read into
one turn table by the local engine (one process) and by the dask engine on a
``LocalCluster`` of one and of two single-threaded worker processes, each cold (no
columnar copies: the first read of older or foreign bundles) and warm; printed side by side
as sessions/s and sessions/s per worker, the figure that extrapolates to a real cluster
(see the README's "Many sessions" section). Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_analysis import _uncopy, synth_bundle


def main() -> dict[str, float]:
    from distributed import Client, LocalCluster

    import voicekit as vk

    n = int(os.environ.get("N_SESSIONS", "300"))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        for i in range(n):
            synth_bundle(root / f"b{i:05d}", 5, seed=i)
        print(f"scale: wrote {n} five-minute bundles in {time.perf_counter() - t0:.0f} s")
        rows = []

        def timed(name: str, workers: int, read: Callable[[], Any]) -> None:
            for state in ("cold", "warm"):  # cold: no columnar copies yet; warm: with them
                if state == "cold":
                    _uncopy(root)
                t0 = time.perf_counter()
                df = read()
                rows.append((f"{name}, {state}", workers, time.perf_counter() - t0, len(df)))

        timed("local, 1 process", 1, lambda: vk.load_logs(root, progress=False, workers=1))
        for workers in (1, 2):
            with (
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                ) as cluster,
                Client(cluster) as client,
            ):
                timed(
                    f"dask, {workers} worker{'s' * (workers > 1)}",
                    workers,
                    lambda: vk.load_logs(root, engine="dask", client=client, progress=False),
                )
    print(f"scale: {n} sessions -> one turn table, {os.cpu_count()} cores")
    print(f"  {'engine':<24} {'s':>8} {'sessions/s':>11} {'per worker':>11} {'turns':>8}")
    for name, workers, took, turns in rows:
        print(f"  {name:<24} {took:8.1f} {n / took:11.1f} {n / took / workers:11.1f} {turns:8d}")
        figures[name] = n / took / workers
    return figures


if __name__ == "__main__":
    main()
