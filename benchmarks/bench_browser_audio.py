"""vk.BrowserAudio in JupyterLab and Debian's chromium: microphone -> kernel latency, page CPU.

Chromium's fake microphone plays a WAV of clicks (a 5 ms full-scale burst every 0.5 s, the
browser's capture processing off so the clicks pass unchanged). For each click the kernel
records when the chunk holding it arrived and where in the chunk the click sits; the page
stamps each chunk with the capture time of its last sample, on the same machine clock. The
click's one-way latency is arrival minus its capture time: the AudioWorklet block, the
50 ms chunking, the websocket to the Jupyter server, ZeroMQ to the kernel (target: p95 <=
100 ms). Page CPU: chromium's processes (renderer, audio service, browser) while capturing
and playing, minus the same page idle, as a share of one core.

Prints figures; asserts nothing. Needs chromium (``make test`` installs it). About 1 min.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TESTS = HERE.parent / "tests" / "browser"
CLICK_EVERY_S = 0.5
SECONDS = 15
TICKS = os.sysconf("SC_CLK_TCK")

NOTEBOOK_CELLS = [
    "import voicekit as vk\n"
    "b = vk.BrowserAudio(echo_cancellation=False, noise_suppression=False,\n"
    "                    auto_gain_control=False, chunk_ms={chunk_ms})\n"
    "b",
    "import json, threading\n"
    's = vk.Session(audio_in=b, audio_out="null", log_dir="bench-logs")\n'
    "s.start()\n"
    "def _dump():\n"
    '    json.dump({"arrivals": list(b._source.arrivals)}, open("arrivals.json", "w"))\n'
    "    s.stop()\n"
    f"threading.Timer({SECONDS + 2}, _dump).start()",
]


def _clicks_wav(path: Path) -> None:
    from voicekit.audio.wav import write_wav

    rate = 48000
    track = np.zeros(rate * (SECONDS + 3), np.int16)
    burst = int(0.005 * rate)
    for k in range(1, int(SECONDS / CLICK_EVERY_S)):
        at = int(k * CLICK_EVERY_S * rate)
        track[at : at + burst] = 30000
    write_wav(path, track, rate=rate)


def _chromium_cpu() -> float:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"chromium" not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / TICKS


def _measure(chunk_ms: int) -> dict[str, float]:
    import nbformat
    from labdriver import CHROMIUM, jupyter_server, open_in_lab, run_all
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        home, root = Path(tmp) / "home", Path(tmp) / "root"
        home.mkdir()
        root.mkdir()
        wav = Path(tmp) / "clicks.wav"
        _clicks_wav(wav)
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        cells = [c.replace("{chunk_ms}", str(chunk_ms)) for c in NOTEBOOK_CELLS]
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nbformat.write(nb, root / "bench.ipynb")
        with jupyter_server(home, root) as server, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={wav}%noloop",
                    "--autoplay-policy=no-user-gesture-required",
                    "--disable-gpu",
                ],
            )
            page = browser.new_page()
            open_in_lab(page, server, "bench.ipynb")
            cpu0, t0 = _chromium_cpu(), time.monotonic()
            time.sleep(5)
            idle = (_chromium_cpu() - cpu0) / (time.monotonic() - t0)
            run_all(page, 60)
            time.sleep(2)
            cpu0, t0 = _chromium_cpu(), time.monotonic()
            time.sleep(8)
            busy = (_chromium_cpu() - cpu0) / (time.monotonic() - t0)
            out = root / "arrivals.json"
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(1)
            cpu0, t0 = _chromium_cpu(), time.monotonic()
            time.sleep(5)
            after = (_chromium_cpu() - cpu0) / (time.monotonic() - t0)
            browser.close()
            arrivals = json.loads(out.read_text())["arrivals"]
    chunk = chunk_ms * 24
    lat = [
        arrived - (wall - (chunk - 1 - loud) / 24.0)
        for _frame, loud, wall, arrived in arrivals
        if loud >= 0 and wall is not None
    ]
    transport = [arrived - wall for _f, _l, wall, arrived in arrivals if wall is not None]
    p50, p95 = np.percentile(lat, [50, 95]) if lat else (np.nan, np.nan)
    print(
        f"browser audio, {chunk_ms} ms chunks: mic -> kernel one-way latency of {len(lat)} "
        f"clicks p50 {p50:.0f} ms, p95 {p95:.0f} ms (target p95 <= 100 ms); chunk transport "
        f"alone p50 {np.percentile(transport, 50):.0f} ms over {len(transport)} chunks"
    )
    print(
        f"browser audio, {chunk_ms} ms chunks: chromium CPU while capturing {busy:.1%} of a "
        f"core, idle page {idle:.1%}, after the session stopped {after:.1%} -> the audio "
        f"path costs {busy - idle:.1%} of a core (headless, software rendering)"
    )
    return {"click_p50_ms": float(p50), "click_p95_ms": float(p95), "page_cpu": busy - idle}


def main() -> dict[str, float]:
    sys.path.insert(0, str(TESTS))
    from labdriver import CHROMIUM

    if not Path(CHROMIUM).exists():
        print(f"browser audio: skipped, {CHROMIUM} is missing (make test installs it)")
        return {}
    out: dict[str, float] = {}
    for chunk_ms in (50, 100):
        out |= {f"{k}_{chunk_ms}": v for k, v in _measure(chunk_ms).items()}
    return out


if __name__ == "__main__":
    main()
