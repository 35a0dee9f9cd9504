"""Reading logs: one synthetic hour, and many five-minute bundles.

- a 1-hour bundle (~200k event lines, made by :func:`synth_bundle`): load + turn table
  (target < 0.5 s and <= 3x a bare ``json.loads`` loop over the same file), and
  ``plot_timeline`` of the whole hour (target < 1 s);
- ``N_BUNDLES`` (default 100) five-minute bundles -> one DataFrame with ``load_logs`` on
  all cores; scaled to 1,000 bundles for the target (< 30 s on 2 cores);
- memory: the audio is not loaded (RSS growth while building the hour's turn table).

Bundles are written with sparse WAV files (only the audible blips at the start and end of
each reply hold data), so the thousand-bundle case needs little disk.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
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


def main() -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import voicekit as vk

    n_bundles = int(os.environ.get("N_BUNDLES", "100"))
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp) / "hour"
        lines = synth_bundle(hour, 60)
        t0 = time.perf_counter()
        with open(hour / "events.jsonl") as f:
            for line in f:
                json.loads(line)
        bare = time.perf_counter() - t0
        before = rss_mb()
        t0 = time.perf_counter()
        turns = vk.load_log(hour).turns
        load = time.perf_counter() - t0
        grown = rss_mb() - before
        log = vk.load_log(hour)
        log.turns  # noqa: B018 - plotted below, timed separately
        log.barge_ins  # noqa: B018
        t0 = time.perf_counter()
        vk.plot_timeline(log).savefig(Path(tmp) / "hour.png")
        plot = time.perf_counter() - t0
        print(
            f"analysis: 1-hour bundle, {lines} lines, {len(turns)} turns: load + turn table "
            f"{load:.2f} s (target < 0.5 s) = {load / bare:.1f}x a bare json.loads loop "
            f"({bare:.2f} s; target <= 3x); RSS +{grown:.0f} MB (audio not loaded: "
            f"{2 * 2 * 60 * 60 * R / 1e6:.0f} MB of WAV)"
        )
        print(f"analysis: plot_timeline of the whole hour {plot:.2f} s (target < 1 s)")
        many = Path(tmp) / "many"
        total = sum(synth_bundle(many / f"b{i:04d}", 5, seed=i) for i in range(n_bundles))
        t0 = time.perf_counter()
        df = vk.load_logs(many, progress=False)
        took = time.perf_counter() - t0
        print(
            f"analysis: {n_bundles} five-minute bundles ({total} lines) -> {len(df)} turns in "
            f"{took:.1f} s on {os.cpu_count()} cores; 1,000 bundles ~ "
            f"{took * 1000 / n_bundles:.0f} s (target < 30 s)"
        )
    return {
        "hour_load_s": load,
        "hour_vs_json": load / bare,
        "hour_plot_s": plot,
        "thousand_s": took * 1000 / n_bundles,
    }


if __name__ == "__main__":
    main()
