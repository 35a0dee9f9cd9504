"""A long session with null audio: does the client's memory stay flat?

One ``vk.Session`` (null audio in and out, a log bundle) runs against a stand-in agent in
another process for ``SOAK_MINUTES`` (default 30), asking the agent to speak every 20 s so
that replies, playout and the log keep working. The client's RSS is sampled every 10 s;
growth is measured from the end of the first minute (imports and caches warmed up) to the
end (target: < 20 MB over 30 minutes).

    SOAK_MINUTES=30 python benchmarks/bench_soak.py

Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import rss_mb

import voicekit as vk


def main() -> dict[str, float]:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    agent = subprocess.Popen(
        [sys.executable, "-m", "voicekit", "serve", "--port", "0", "--profile", "fast"],
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, float]] = []
    try:
        assert agent.stdout is not None
        url = agent.stdout.readline().split()[-1]
        with tempfile.TemporaryDirectory() as logs:
            s = vk.Session(url=url, audio_in="null", audio_out="null", log_dir=logs)
            s.start()
            t0 = time.monotonic()
            next_say = 0.0
            while (elapsed := time.monotonic() - t0) < minutes * 60:
                if elapsed >= next_say:
                    s.say("Say: the soak test is still running, all is well.")
                    next_say += 20
                samples.append((elapsed, rss_mb()))
                time.sleep(10)
            log = s.stop()
            lines = len(log.raw_events)
    finally:
        agent.terminate()
        agent.wait(10)
    t = np.array([x for x, _ in samples])
    rss = np.array([y for _, y in samples])
    warm = rss[t >= min(60.0, t[-1])][0]
    growth = float(rss[-1] - warm)
    slope = float(np.polyfit(t[t >= 60], rss[t >= 60], 1)[0] * 600) if (t >= 60).sum() > 2 else 0.0
    print(
        f"soak: {minutes:g} min session, {lines} log lines: RSS {warm:.0f} MB after 1 min -> "
        f"{rss[-1]:.0f} MB at the end (growth {growth:+.1f} MB, target < 20 MB over 30 min; "
        f"trend {slope:+.2f} MB per 10 min), peak {rss.max():.0f} MB"
    )
    return {"rss_growth_mb": growth, "rss_trend_mb_per_10min": slope}


if __name__ == "__main__":
    main()
