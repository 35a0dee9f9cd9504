"""Drive JupyterLab in Debian's chromium: a server on a temporary folder, page helpers.

Used by the browser tests (fixtures in conftest.py). Playwright is given chromium's
executable; no browser is ever downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(home: Path, root: Path) -> Iterator[dict[str, Any]]:
    """A Jupyter server (JupyterLab and Notebook 7) on ``root``, its state under ``home``."""
    port, token = free_port(), secrets.token_hex(16)
    # every cell in the DOM (no virtual scrolling), and no news toast over the notebook
    settings = home / "lab-settings"
    for name, value in (
        ("notebook-extension/tracker", '{"windowingMode": "none"}'),
        ("apputils-extension/notification", '{"fetchNews": "false"}'),
    ):
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    env = {**os.environ, "HOME": str(home), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    env.pop("ASSEMBLYAI_API_KEY", None)
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={root}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((home / "server.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "home": home}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_for(page: Any, predicate: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(250)
    shot(page, "timeout-" + what.replace(" ", "-"))
    console = "\n".join(getattr(page, "vk_console", [])[-15:])
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; console:\n{console}")


def watch_console(page: Any) -> Any:
    """Keep the page's console messages and errors (shown when a wait times out)."""
    page.vk_console = []
    page.on("console", lambda m: page.vk_console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.vk_console.append(f"pageerror: {e}"))
    return page


def kernel_state(server: dict[str, Any], notebook: str) -> str | None:
    """The execution state of ``notebook``'s kernel, from the server's REST API."""
    url = f"{server['base']}/api/sessions?token={server['token']}"
    with urllib.request.urlopen(url, timeout=5) as r:
        sessions = json.load(r)
    states = [
        s["kernel"]["execution_state"]
        for s in sessions
        if s.get("kernel") and s.get("path", "").endswith(notebook)
    ]
    return states[-1] if states else None


def open_in_lab(page: Any, server: dict[str, Any], notebook: str) -> None:
    """Open ``notebook`` in JupyterLab and wait for its kernel."""
    # ?reset: a fresh workspace, not the tabs an earlier page left open
    page.goto(f"{server['base']}/lab/tree/{notebook}?reset&token={server['token']}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    wait_for(page, lambda: kernel_state(server, notebook) == "idle", "kernel", 60)
    page.keyboard.press("Escape")  # a first-start dialog, if any


def run_all(page: Any, timeout: float) -> None:
    """Run > Run All Cells, as a user would; wait until every code cell has run."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).click()
    shown = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    errors = f"{shown} .jp-OutputArea-output[data-mime-type*='error']"

    def all_ran() -> bool:
        if page.locator(errors).count():
            raise AssertionError(text(page, errors))
        prompts = page.locator(f"{shown} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        return bool(prompts) and all(p.strip()[1:-2].isdigit() for p in prompts)

    wait_for(page, all_ran, "Run All", timeout)


def text(page: Any, selector: str) -> str:
    loc = page.locator(selector)
    return " ".join(loc.all_inner_texts()) if loc.count() else ""
