"""The README's first command, ``make lab``, on a fresh clone: as root (as CI runs), with no
display, and with ``LAB_PORT`` taken. It must start JupyterLab, say which port it took, and
serve the quickstart notebook; the test then stops it and checks nothing is left running.

The clone reuses this checkout's ``.venv`` (a symlink) when its install stamp is up to date,
so ``make lab`` installs nothing; otherwise ``make lab`` builds the clone its own ``.venv``
from scratch, as on a newcomer's machine (minutes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
URL = re.compile(r"http://(?:localhost|127\.0\.0\.1):(\d+)/lab\?token=([0-9a-f]+)")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def _clone(tmp_path: Path) -> tuple[Path, bool]:
    """A fresh clone of this repository's HEAD, and whether it reuses this checkout's venv."""
    clone = tmp_path / "voicekit"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    if not (VENV / ".installed").exists():
        return clone, False
    # A clone's files are newer than the stamp: give its pyproject.toml the time of ours (the
    # one that was installed), then ask make whether the stamp is up to date. A reinstall
    # through the symlink would point our venv's editable install at the clone.
    st = (ROOT / "pyproject.toml").stat()
    os.utime(clone / "pyproject.toml", ns=(st.st_atime_ns, st.st_mtime_ns))
    (clone / ".venv").symlink_to(VENV)
    fresh = subprocess.run(
        ["make", "-q", ".venv/.installed"], cwd=clone, env=_env(tmp_path), timeout=60
    )
    if fresh.returncode == 0:
        return clone, True
    (clone / ".venv").unlink()
    return clone, False


def _env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: no display, an empty home, no Jupyter settings, not in a venv or make."""
    dropped = ("DISPLAY", "WAYLAND_DISPLAY", "VIRTUAL_ENV", "LAB_PORT", "PYTHON", "VENV")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in dropped and not k.startswith(("JUPYTER", "MAKE", "MFLAGS", "XDG_"))
    }
    env.pop("ASSEMBLYAI_API_KEY", None)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(VENV))
    )
    # pip's settings (a package mirror) live in the real home's config; keep them
    user_pip = Path.home() / ".config" / "pip" / "pip.conf"
    if user_pip.exists() and "PIP_CONFIG_FILE" not in env:
        env["PIP_CONFIG_FILE"] = str(user_pip)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to make's process group (make and JupyterLab), then wait until it is empty."""
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("make lab did not end within 60 s of SIGTERM")
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid):
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("a process of make lab was still running 30 s after make ended")
        time.sleep(0.1)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200, f"{url}: HTTP {r.status}"
        body: bytes = r.read()
        return body


def _sources(notebook: dict[str, Any]) -> list[str]:
    """The cells' sources as strings (a file may hold them as lists of lines)."""
    return [
        c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        for c in notebook["cells"]
    ]


def test_make_lab_starts_on_a_fresh_clone_as_root_headless_with_the_port_taken(
    tmp_path: Path,
) -> None:
    clone, reused = _clone(tmp_path)
    env = _env(tmp_path)
    out_path = tmp_path / "make-lab.log"

    def output() -> str:
        return out_path.read_text(errors="replace")

    with socket.socket() as busy:  # another server on LAB_PORT
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                ["make", "lab", f"LAB_PORT={taken}"],
                cwd=clone,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            # JupyterLab prints its URL once it listens (from scratch: after the installs)
            deadline = time.monotonic() + (120 if reused else 1200)
            while not (m := URL.search(output())):
                if proc.poll() is not None:
                    pytest.fail(f"make lab ended ({proc.returncode}):\n{output()[-4000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"make lab printed no URL in time:\n{output()[-4000:]}")
                time.sleep(0.2)
            port, token = int(m.group(1)), m.group(2)
            base = f"http://127.0.0.1:{port}"

            notebook = json.loads(_get(f"{base}/api/contents/quickstart.ipynb?token={token}"))
            page = _get(f"{base}/lab/tree/quickstart.ipynb?token={token}").decode()
        finally:
            _stop(proc)

    text = output()
    assert port != taken, f"JupyterLab says it listens on the taken port {taken}:\n{text}"
    assert f"port {taken} is in use" in text and f"takes port {port}" in text, text
    assert "Running as root is not recommended" not in text, text
    if reused:
        assert "install -q -e ." not in text, f"make lab reinstalled into the reused venv:\n{text}"

    assert notebook["type"] == "notebook" and notebook["name"] == "quickstart.ipynb", notebook
    content = notebook["content"]
    assert content["nbformat"] == 4 and content["cells"], "the served notebook has no cells"
    on_disk = json.loads((clone / "notebooks" / "quickstart.ipynb").read_text())
    assert _sources(content) == _sources(on_disk), "the served cells differ from the file's"
    assert "JupyterLab" in page, page[:500]
