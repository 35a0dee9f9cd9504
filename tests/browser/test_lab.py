"""The quickstart notebook in real JupyterLab 4 and Notebook 7, driven in Debian's chromium.

JupyterLab runs the notebook top to bottom (the scripted session, its tables and plots,
and the panel); then the test presses Start on the panel, waits for the scripted user's
words and the agent's answer in the live transcript, moves the ``vad_threshold`` slider
with the keyboard as a user would, waits for the config epoch on the timeline, and presses
Stop. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A Jupyter server (JupyterLab and Notebook 7) on a copy of the notebooks folder."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test' (it apt-get installs chromium)")
    home = tmp_path_factory.mktemp("home")
    root = tmp_path_factory.mktemp("notebooks")
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", root)
    port, token = _free_port(), secrets.token_hex(16)
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


@pytest.fixture(scope="module")
def browser(server: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--autoplay-policy=no-user-gesture-required", "--disable-gpu"],
        )
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_for(page: Any, predicate: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(250)
    _shot(page, "timeout-" + what.replace(" ", "-"))
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _kernel_state(server: dict[str, Any]) -> str | None:
    """The execution state of the (one) notebook kernel, from the server's REST API."""
    url = f"{server['base']}/api/sessions?token={server['token']}"
    with urllib.request.urlopen(url, timeout=5) as r:
        sessions = json.load(r)
    states = [s["kernel"]["execution_state"] for s in sessions if s.get("kernel")]
    return states[-1] if states else None


def _text(page: Any, selector: str) -> str:
    loc = page.locator(selector)
    return " ".join(loc.all_inner_texts()) if loc.count() else ""


def test_quickstart_panel_in_jupyterlab(server: dict[str, Any], browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server['base']}/lab/tree/quickstart.ipynb?token={server['token']}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    _wait_for(page, lambda: _kernel_state(server) == "idle", "kernel", 60)
    page.keyboard.press("Escape")  # a first-start dialog, if any

    # Run All, as a user would from the menu
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).click()

    def all_ran() -> bool:
        if page.locator(".jp-OutputArea-output[data-mime-type*='error']").count():
            raise AssertionError(_text(page, ".jp-OutputArea-output[data-mime-type*='error']"))
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        return bool(prompts) and all(p.strip()[1:-2].isdigit() for p in prompts)

    _wait_for(page, all_ran, "Run All", 240)
    outputs = _text(page, ".jp-OutputArea")
    assert "Traceback" not in outputs, outputs[-3000:]
    assert "endpoint_delay" in outputs  # the turn table of the scripted session
    panel = page.locator(".vk-panel")
    panel.wait_for(timeout=30_000)
    panel.scroll_into_view_if_needed()
    _shot(page, "lab-1-panel")

    # Start: the scripted user talks to the embedded stand-in agent
    panel.get_by_role("button", name="Start").click()
    _wait_for(page, lambda: panel.get_by_role("button", name="Stop").count() > 0, "Stop", 30)
    _wait_for(
        page,
        lambda: (
            _text(page, ".vk-transcript .vk-user").strip() != ""
            and _text(page, ".vk-transcript .vk-agent").strip() != ""
        ),
        "user and agent text in the transcript",
        90,
    )
    assert "you" in _text(page, ".vk-transcript .vk-user")
    _shot(page, "lab-2-talking")

    # move vad_threshold one step with the keyboard: one debounced session.update
    before = page.locator("img.vk-timeline").get_attribute("src")
    slider = page.locator(".vk-vad-threshold")
    readout = slider.locator(".widget-readout").inner_text()
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    _wait_for(
        page,
        lambda: slider.locator(".widget-readout").inner_text() != readout,
        "the slider to move",
        10,
    )
    moved = slider.locator(".widget-readout").inner_text()
    _wait_for(
        page,
        lambda: f"vad_threshold={float(moved):g}" in _text(page, ".vk-timeline-caption"),
        "the config epoch on the timeline",
        15,
    )
    caption = _text(page, ".vk-timeline-caption")
    assert "epoch 1" in caption, caption
    assert "epoch 1" in _text(page, ".vk-transcript")
    assert page.locator("img.vk-timeline").get_attribute("src") != before  # redrawn
    metrics = _text(page, ".vk-metrics")
    _shot(page, "lab-3-epoch")

    # Stop
    panel.get_by_role("button", name="Stop").click()
    _wait_for(page, lambda: "ended" in _text(page, ".vk-status"), "the session to end", 30)
    assert panel.get_by_role("button", name="Start").count() > 0
    assert "fto" in metrics
    _shot(page, "lab-4-stopped")
    page.close()


def test_panel_renders_in_notebook_7(server: dict[str, Any], browser: Any) -> None:
    """Notebook 7's own front-end shows the panel and runs a session from it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server['base']}/notebooks/quickstart.ipynb?token={server['token']}")
    page.locator(".jp-Cell").first.wait_for(timeout=60_000)
    _wait_for(page, lambda: _kernel_state(server) == "idle", "kernel", 60)
    page.keyboard.press("Escape")
    # run the import cell and the panel cell only (Shift+Enter from the top)
    page.locator(".jp-Cell").first.click()
    for _ in range(4):
        page.keyboard.press("Shift+Enter")
    panel = page.locator(".vk-panel")
    _wait_for(page, lambda: panel.count() > 0, "the panel", 60)
    panel.get_by_role("button", name="Start").click()
    _wait_for(
        page,
        lambda: _text(page, ".vk-transcript .vk-agent").strip() != "",
        "the agent's greeting in the transcript",
        60,
    )
    panel.get_by_role("button", name="Stop").click()
    _wait_for(page, lambda: "ended" in _text(page, ".vk-status"), "the session to end", 30)
    _shot(page, "notebook7-panel")
    page.close()
