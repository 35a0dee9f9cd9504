"""Network faults under vk.Session: 50 short sessions through a fault-injecting proxy.

Each session (a greeting, one scripted user turn, then ``say()``) talks to a stand-in agent
through the proxy of ``tests/hardening/test_network_faults.py``, which injects one fault at a
seeded random moment: ``drop``, ``stall`` (5 s), ``slow`` (3 s at ~13 kB/s), ``half_close``
(one direction), ``partition`` (a drop, then reconnects refused for 1-40 s, so that some
outlast the client's 25 s resume budget) or ``failover`` (a drop, then reconnects reach an
agent that does not know the session). Every session must resume, ride the fault out, or
end with a typed error; the log must stay continuous and loadable (checked per session; a
violation is printed as such, not raised).

    FAULT_SESSIONS=50 FAULT_SEED=1 python benchmarks/bench_faults.py

Prints one row per session and the figures (about 10 minutes for 50 sessions); asserts nothing.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import voicekit as vk
from tests.hardening.test_network_faults import (
    KINDS,
    FaultProxy,
    make_fault,
    run_one,
)


def main() -> dict[str, float]:
    n = int(os.environ.get("FAULT_SESSIONS", "50"))
    rng = random.Random(int(os.environ.get("FAULT_SEED", "1")))
    counts = {"resumed": 0, "rode_through": 0, "error": 0, "violation": 0}
    resume_s: list[float] = []
    error_s: list[float] = []
    detect_s: list[float] = []
    stop_s: list[float] = []
    started = time.monotonic()
    print(f"{'fault':18} {'at':>5} {'result':13} {'detect':>6} {'settle':>6} {'stop':>5}")
    with (
        vk.local.serve(profile="fast") as agent,
        vk.local.serve(profile="fast") as other,
        tempfile.TemporaryDirectory() as logs,
    ):
        proxy = FaultProxy(agent.url, failover_url=other.url)
        try:
            for k in range(n):
                fault = make_fault(KINDS[k % len(KINDS)], rng)
                try:
                    out = run_one(proxy, fault, Path(logs))
                except (AssertionError, vk.VoiceKitError) as exc:
                    counts["violation"] += 1
                    print(f"{fault.describe():18} {fault.at:5.2f} VIOLATION     {exc}")
                    continue
                print(out.row(), flush=True)
                counts[out.result] += 1
                stop_s.append(out.stop_s)
                if out.detect_s is not None:
                    detect_s.append(out.detect_s)
                if out.result == "resumed" and out.settle_s is not None:
                    resume_s.append(out.settle_s)
                if out.result == "error" and out.settle_s is not None:
                    error_s.append(out.settle_s)
        finally:
            proxy.stop()
    figures = {
        "sessions": float(n),
        "resumed": float(counts["resumed"]),
        "rode_through": float(counts["rode_through"]),
        "ended_with_error": float(counts["error"]),
        "violations": float(counts["violation"]),
        "max_detect_s": max(detect_s, default=float("nan")),
        "max_time_to_resume_s": max(resume_s, default=float("nan")),
        "max_time_to_error_s": max(error_s, default=float("nan")),
        "max_stop_s": max(stop_s, default=float("nan")),
        "wall_s": time.monotonic() - started,
    }
    print()
    for key, value in figures.items():
        print(f"{key:24} {value:8.2f}")
    return figures


if __name__ == "__main__":
    main()
