"""vk.AgentPanel in a real kernel: what the live views cost, and the timeline redraw time.

Two fresh IPython kernels (jupyter_client, as JupyterLab starts them) run the same scripted
user audio (~50 s, see ``bench_client.user_track``) against one stand-in agent in its own
process: one kernel with a bare ``vk.Session``, the other with a displayed ``vk.AgentPanel``
ticking at 10 Hz and redrawing its timeline at the default 2 fps. A thread here reads the
kernels' iopub messages as a front-end would. Cells return at once, so the kernels' event
loops are free while the audio plays, as when someone talks to the panel.

- kernel CPU (utime + stime of the kernel process) over the conversation, panel minus
  session, as a share of one core (target: the panel adds < 25 %);
- widget messages (comm_msg) per second the panel sends to the front-end, and their bytes;
- timeline redraw (draw + PNG encode) with a 30 s window, at the end of the conversation.

Prints figures; asserts nothing. Bounded: about two and a half minutes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TICKS = os.sysconf("SC_CLK_TCK")

SETUP = """
import json, time
import numpy as np
import voicekit as vk
audio = np.fromfile({raw!r}, dtype="<i2")
"""
START_SESSION = """
job = vk.Session(url={url!r}, audio_in=audio, audio_out="null", log_dir={logs!r})
job.start()
"""
START_PANEL = """
job = vk.AgentPanel(url={url!r}, audio_in=audio, audio_out="null", log_dir={logs!r})
display(job)
job.start()
"""
REDRAW = """
_times = []
for _ in range(20):
    _t0 = time.perf_counter()
    job._draw_timeline(force=True)
    _times.append(time.perf_counter() - _t0)
print(json.dumps({"redraw_ms": sorted(_times)[len(_times) // 2] * 1000,
                  "png_bytes": len(job.timeline.value),
                  "turns": job.state.metrics()["turns"]}))
"""


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class _Frontend(threading.Thread):
    """Reads a kernel's iopub channel, counting widget messages as a front-end would."""

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.comm_msgs = 0
        self.comm_bytes = 0
        self.stream: list[str] = []
        self.errors: list[str] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                msg = self.client.get_iopub_msg(timeout=0.2)
            except Exception:  # queue.Empty
                continue
            kind = msg["msg_type"]
            if kind == "comm_msg":
                self.comm_msgs += 1
                self.comm_bytes += len(json.dumps(msg["content"], default=str))
                self.comm_bytes += sum(len(b) for b in msg.get("buffers", ()))
            elif kind == "stream":
                self.stream.append(msg["content"]["text"])
            elif kind == "error":
                self.errors.append("\n".join(msg["content"]["traceback"]))


def _run(kind: str, url: str, raw: Path, seconds: float) -> dict[str, Any]:
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory() as logs:
        km, kc = start_new_kernel(kernel_name="python3")
        front = _Frontend(kc)
        front.start()
        try:
            pid = km.provisioner.process.pid  # type: ignore[union-attr]
            kc.execute(SETUP.format(raw=str(raw)), reply=True, timeout=120)
            start = START_PANEL if kind == "panel" else START_SESSION
            cpu0, wall0, msgs0 = _cpu(pid), time.monotonic(), front.comm_msgs
            bytes0 = front.comm_bytes
            reply = kc.execute(start.format(url=url, logs=logs), reply=True, timeout=60)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{kind}: {front.errors}")
            time.sleep(seconds)  # the cell has returned: the kernel's loop is free
            cpu, wall = _cpu(pid) - cpu0, time.monotonic() - wall0
            msgs, sent = front.comm_msgs - msgs0, front.comm_bytes - bytes0
            result: dict[str, Any] = {"cpu_s": cpu, "wall_s": wall}
            result.update(comm_per_s=msgs / wall, comm_kb_per_s=sent / wall / 1024)
            if kind == "panel":
                kc.execute("job.stop()", reply=True, timeout=60)
                front.stream.clear()
                kc.execute(REDRAW, reply=True, timeout=120)
                time.sleep(0.5)  # the printed line arrives on iopub
                result.update(json.loads("".join(front.stream).strip().splitlines()[-1]))
            else:
                kc.execute("job.stop()", reply=True, timeout=60)
            if front.errors:
                raise RuntimeError(front.errors[-1])
            return result
        finally:
            front.running = False
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def main() -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from _common import agent_url
    from bench_client import user_track

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "user.raw"
        track = user_track()
        raw.write_bytes(track.astype("<i2").tobytes())
        seconds = len(track) / 24000 + 1.0
        with agent_url() as url:
            bare = _run("session", url, raw, seconds)
            panel = _run("panel", url, raw, seconds)
    core = {k: r["cpu_s"] / r["wall_s"] for k, r in (("session", bare), ("panel", panel))}
    added = core["panel"] - core["session"]
    print(
        f"panel: kernel CPU over a {seconds:.0f} s conversation: session alone "
        f"{core['session']:.1%} of a core, with the panel {core['panel']:.1%} -> the panel "
        f"adds {added:.1%} of one core (target < 25 %)"
    )
    print(
        f"panel: {panel['comm_per_s']:.1f} widget messages/s to the front-end, "
        f"{panel['comm_kb_per_s']:.1f} kB/s (session alone: {bare['comm_per_s']:.1f}/s)"
    )
    print(
        f"panel: timeline redraw at a 30 s window: {panel['redraw_ms']:.0f} ms median "
        f"(draw + PNG, {panel['png_bytes'] / 1024:.0f} kB, {panel['turns']} turns shown); "
        f"at the default 2 fps that is {panel['redraw_ms'] * 2 / 10:.1f} % of a core"
    )
    return {
        "panel_added_core": added,
        "session_core": core["session"],
        "redraw_ms": panel["redraw_ms"],
        "comm_per_s": panel["comm_per_s"],
    }


if __name__ == "__main__":
    main()
