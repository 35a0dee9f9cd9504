"""Reading logs: one synthetic hour, and many five-minute bundles, cold and warm.

"Cold" is a bundle without its columnar copy (``events.parquet``: an older or foreign
bundle; the first read makes it), "warm" one with it. Targets (issue 19), side by side as
ratios to a bare ``json.loads`` loop over the same ``events.jsonl``:

- the 1-hour bundle (~235k lines, made by :func:`synth_bundle`): load + turn table warm
  <= 0.3 s and <= 0.4x the loop; cold <= 1.0x the loop;
- ``plot_timeline`` of the whole hour <= 1 s;
- ``N_BUNDLES`` (default 100) five-minute bundles -> one DataFrame with ``load_logs`` on
  all cores, scaled to 1,000 bundles: <= 20 s cold, <= 3 s warm on 2 cores;
- memory: RSS growth while reading the hour (the audio is not loaded), and of this process
  over N/2 and N bundles (flat: the table grows with the turns, nothing else).

Imports (pyarrow, matplotlib) happen once a process and are made before timing; the
loop, the hour's cold read and the many bundles' warm read are each the best of two runs (the
first cold read of a process is printed too); written files are synced to disk before the
many bundles are timed, so the kernel's write-back does not share the cores. Bundles are
written with sparse WAV files (only the audible blips at the start and end of each reply
hold data), so the thousand-bundle case needs little disk. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import rss_mb

R = 24000


def synth_bundle(path: Path, minutes: float, seed: int = 0) -> int:
    """Write a plausible bundle: a turn every ~10 s, 3-s replies; returns the line count."""
    from voicekit.audio.wav import HEADER_BYTES, riff_header

    rng = random.Random(seed)
    path.mkdir(parents=True)
    end = minutes * 60
    meta = {
        "format": "voicekit-log/1",
        "voicekit": "bench",
        "started_at": f"2026-01-01T00:{seed % 60:02d}:00Z",
        "backend": "local",
        "session_id": f"sess_{seed}",
        "sample_rate": R,
        "audio_in": "scripted",
        "audio_out": "null",
        "config": {},
    }
    (path / "meta.json").write_text(json.dumps(meta))
    lines: list[tuple[float, str]] = []

    def ev(t: float, d: str, kind: str, /, **f: object) -> None:
        lines.append((t, json.dumps({"t": round(t, 6), "dir": d, "type": kind, **f})))

    ev(
        0.0,
        "local",
        "config.epoch",
        epoch=0,
        config={"input": {"turn_detection": {"min_silence": 600}}},
    )
    for k in range(int(end * 20)):
        ev(k * 0.05, "send", "input.audio", offset=k * 1200, samples=1200)
    blips: list[int] = []
    t, turn = 2.0, 0
    while t + 8 < end:
        u_on, u_off = t, t + rng.uniform(1.0, 2.5)
        ev(
            u_off,
            "local",
            "user.utterance",
            start=u_on,
            end=u_off,
            text="a user turn",
            kind="turn",
            turn=turn,
        )
        ev(u_on + 0.1, "recv", "input.speech.started")
        stop = u_off + rng.uniform(0.5, 0.9)
        ev(stop, "recv", "input.speech.stopped")
        rid = f"r{turn}"
        ev(stop + 0.01, "recv", "reply.started", reply_id=rid)
        first = stop + 0.1
        for c in range(300):
            ev(first + c * 0.01, "recv", "reply.audio", reply_id=rid, samples=240)
        ev(first, "local", "playback.start", reply_id=rid, offset=round(first * R))
        ev(
            first + 3,
            "local",
            "playback.stop",
            reply_id=rid,
            played=3 * R,
            dropped=0,
            reason="completed",
        )
        ev(first + 3, "recv", "transcript.agent", reply_id=rid, text="an agent reply")
        ev(first + 3, "recv", "reply.done", reply_id=rid, status="completed")
        blips += [round((first + 0.25) * R), round((first + 3) * R) - 240]
        t, turn = first + 3 + rng.uniform(0.5, 2.0), turn + 1
    lines.sort(key=lambda x: x[0])
    (path / "events.jsonl").write_text("\n".join(text for _, text in lines) + "\n")
    n = int(end * R)
    for track in ("user", "agent"):
        with open(path / f"{track}.wav", "wb") as f:
            f.write(riff_header(R, 2 * n))
            blip = (8000 * np.ones(240)).astype("<i2").tobytes()
            for b in blips if track == "agent" else []:
                f.seek(HEADER_BYTES + 2 * b)
                f.write(blip)
            f.truncate(HEADER_BYTES + 2 * n)
    return len(lines)


def _hour_json_loop(events: Path) -> float:
    t0 = time.perf_counter()
    with open(events) as f:
        for line in f:
            json.loads(line)
    return time.perf_counter() - t0


def _uncopy(root: Path) -> None:
    for copy in root.rglob("events.parquet"):
        copy.unlink()


def main() -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # imported once a process: not timed
    import pyarrow.compute
    import pyarrow.json
    import pyarrow.parquet  # noqa: F401

    import voicekit as vk

    n_bundles = int(os.environ.get("N_BUNDLES", "100"))
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp) / "hour"
        lines = synth_bundle(hour, 60)
        bare = min(_hour_json_loop(hour / "events.jsonl") for _ in range(2))
        before, grown = rss_mb(), math.nan
        cold, first = math.inf, math.nan
        for _ in range(2):  # best of two, as the loop: the first also pays one-time costs
            _uncopy(hour)
            t0 = time.perf_counter()
            turns = vk.load_log(hour).turns  # cold: parses events.jsonl, writes the copy
            took = time.perf_counter() - t0
            first = took if math.isnan(first) else first
            cold = min(cold, took)
            grown = rss_mb() - before if math.isnan(grown) else grown
        warm = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            vk.load_log(hour).turns  # noqa: B018 - warm: from the copy
            warm = min(warm, time.perf_counter() - t0)
        log = vk.load_log(hour)
        log.turns  # noqa: B018 - plotted below, timed separately
        log.barge_ins  # noqa: B018
        t0 = time.perf_counter()
        vk.plot_timeline(log).savefig(Path(tmp) / "hour.png")
        plot = time.perf_counter() - t0
        print(
            f"analysis: 1-hour bundle, {lines} lines, {len(turns)} turns; bare json.loads loop "
            f"{bare:.2f} s; load + turn table cold {cold:.2f} s = {cold / bare:.2f}x (target "
            f"<= 1.0x; the process's first read {first:.2f} s), warm {warm:.3f} s = "
            f"{warm / bare:.2f}x (targets <= 0.3 s, <= 0.4x); "
            f"RSS +{grown:.0f} MB cold (audio not loaded: {2 * 2 * 60 * 60 * R / 1e6:.0f} MB "
            "of WAV)"
        )
        print(f"analysis: plot_timeline of the whole hour {plot:.2f} s (target <= 1 s)")
        many = Path(tmp) / "many"
        total = sum(synth_bundle(many / f"b{i:04d}", 5, seed=i) for i in range(n_bundles))
        half = sorted(many.iterdir())[: n_bundles // 2]
        base = rss_mb()
        vk.load_logs(half, progress=False)
        rss_half = rss_mb() - base
        _uncopy(many)
        os.sync()  # what was just written goes to disk now, not during the timed reads
        t0 = time.perf_counter()
        df = vk.load_logs(many, progress=False)
        many_cold = time.perf_counter() - t0
        rss_full = rss_mb() - base
        os.sync()
        many_warm = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            vk.load_logs(many, progress=False)
            many_warm = min(many_warm, time.perf_counter() - t0)
        scale = 1000 / n_bundles
        print(
            f"analysis: {n_bundles} five-minute bundles ({total} lines) -> {len(df)} turns on "
            f"{os.cpu_count()} cores: cold {many_cold:.1f} s, warm {many_warm:.1f} s; 1,000 "
            f"bundles ~ {many_cold * scale:.0f} s cold (target <= 20 s), "
            f"{many_warm * scale:.1f} s warm (target <= 3 s); RSS of this process "
            f"+{rss_half:.0f} MB after {len(half)} bundles, +{rss_full:.0f} MB after {n_bundles}"
        )
    return {
        "hour_json_loop_s": bare,
        "hour_cold_s": cold,
        "hour_cold_vs_json": cold / bare,
        "hour_warm_s": warm,
        "hour_warm_vs_json": warm / bare,
        "hour_plot_s": plot,
        "thousand_cold_s": many_cold * scale,
        "thousand_warm_s": many_warm * scale,
    }


if __name__ == "__main__":
    main()
