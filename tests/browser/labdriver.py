"""Drive JupyterLab in Debian's chromium: a server on a temporary folder, page helpers.

Used by the browser tests (fixtures in conftest.py). Playwright is given chromium's
executable; no browser is ever downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
# what @jupyterlab/services rejects a widget comm's pending subshell request with when the
# page's kernel connection is disposed (see explain_console)
SUBSHELL_CANCELLED = "Canceled future for create_subshell_request"
_KERNEL_WS = re.compile(r"/api/kernels/([0-9a-f-]{36})/channels")


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
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}{explain_console(page)}; "
        f"console:\n{console_tail(page)}"
    )


def watch_console(page: Any) -> Any:
    """Keep the page's console messages, errors and kernel connections (shown when a wait times
    out)."""
    page.vk_console = []
    page.vk_kernel_ws = []  # [kernel id, open] per kernel websocket the page opened
    page.on("console", lambda m: page.vk_console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page.vk_console.append(f"pageerror: {_error_text(e)}"))
    page.on("websocket", lambda ws: _track_kernel_ws(page, ws))
    return page


def _error_text(error: Any) -> str:
    # an uncaught non-Error value "A: B" comes as name A, message B (Playwright splits it)
    name = getattr(error, "name", "") or "Error"
    return str(error.message) if name == "Error" else f"{name}: {error.message}"


def _track_kernel_ws(page: Any, ws: Any) -> None:
    found = _KERNEL_WS.search(ws.url)
    if found:
        entry = [found.group(1), True]
        page.vk_kernel_ws.append(entry)
        ws.on("close", lambda _ws: entry.__setitem__(1, False))


def page_kernels(page: Any, open_only: bool = True) -> list[str]:
    """Ids of the kernels the page has connected to (open connections only, by default)."""
    ids = [k for k, is_open in getattr(page, "vk_kernel_ws", []) if is_open or not open_only]
    return list(dict.fromkeys(ids))


def console_tail(page: Any, lines: int = 15) -> str:
    """The page's last console lines, a run of one repeated line as one line with its count."""
    runs: list[list[Any]] = []
    for line in getattr(page, "vk_console", []):
        if runs and runs[-1][0] == line:
            runs[-1][1] += 1
        else:
            runs.append([line, 1])
    return "\n".join(line if n == 1 else f"{line}  (x{n})" for line, n in runs[-lines:])


def explain_console(page: Any) -> str:
    """What the page's kernel connections and known error bursts say about a failed wait.

    ``Per comm-target subshell creation failed: Error: Canceled future for
    create_subshell_request message before replies were done``: JupyterLab 4 and Notebook 7
    (@jupyterlab/services) send widget comm messages over a kernel subshell when the kernel has
    them (ipykernel 7), one subshell per comm target, and every comm the page opens waits on
    that target's ``create_subshell_request``. When the page's kernel connection is disposed
    (kernel restarted, shut down or replaced) its pending requests are cancelled and each
    waiting comm leaves one unhandled rejection: a burst of these errors, one per widget. They
    are the teardown's echo, not its cause; a comm without a subshell uses the main shell, so
    they are harmless when the widgets drew and worked afterwards.
    """
    notes = []
    cancelled = sum(SUBSHELL_CANCELLED in line for line in getattr(page, "vk_console", []))
    seen, open_now = page_kernels(page, open_only=False), page_kernels(page)
    if cancelled:
        notes.append(
            f"{cancelled} widget comms lost the page's kernel connection while their subshell "
            f"was being created ('{SUBSHELL_CANCELLED}'): the connection was disposed (kernel "
            "restarted, shut down or replaced); those errors follow that, they do not cause it"
        )
    if len(seen) > 1:
        notes.append(
            f"the page connected to {len(seen)} kernels ({', '.join(k[:8] for k in seen)}; "
            f"open: {', '.join(k[:8] for k in open_now) or 'none'}): it replaced the notebook's "
            "kernel, e.g. a cell run before the page had attached to the running one"
        )
    elif seen and not open_now:
        notes.append(f"the page's connection to kernel {seen[0][:8]} is closed")
    return "".join(f"\n- {note}" for note in notes)


def _notebook_kernel(server: dict[str, Any], notebook: str) -> dict[str, Any] | None:
    url = f"{server['base']}/api/sessions?token={server['token']}"
    with urllib.request.urlopen(url, timeout=5) as r:
        sessions = json.load(r)
    kernels = [
        s["kernel"] for s in sessions if s.get("kernel") and s.get("path", "").endswith(notebook)
    ]
    return kernels[-1] if kernels else None


def kernel_state(server: dict[str, Any], notebook: str) -> str | None:
    """The execution state of ``notebook``'s kernel, from the server's REST API."""
    kernel = _notebook_kernel(server, notebook)
    return kernel["execution_state"] if kernel else None


def kernel_id(server: dict[str, Any], notebook: str) -> str | None:
    """The id of ``notebook``'s kernel, from the server's REST API."""
    kernel = _notebook_kernel(server, notebook)
    return str(kernel["id"]) if kernel else None


def wait_for_kernel(page: Any, server: dict[str, Any], notebook: str, timeout: float) -> str:
    """Wait until the page is attached to ``notebook``'s kernel and shows it idle; its id.

    The server calling the kernel idle is not enough when the kernel was already running
    (started by an earlier page): until the page's session context has found that session, a
    cell run makes JupyterLab and Notebook 7 see "No Kernel" and start another one, then shut
    the running kernel down with the cells already sent to it (NotebookActions' runCell calls
    ``sessionContext.startKernel()`` when ``hasNoKernel``). The page opens its kernel websocket
    in the same step that gives it its session, so that websocket is the signal; the toolbar's
    kernel name and execution indicator then say the connection is up and the kernel idle.
    """
    shown = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    indicator = page.locator(f"{shown} .jp-Notebook-ExecutionIndicator")

    def attached() -> str | None:
        kernel = kernel_id(server, notebook)
        return kernel if kernel in page_kernels(page) else None

    def ready() -> bool:
        if attached() is None or not indicator.count():
            return False
        name = text(page, f"{shown} .jp-Toolbar-kernelName").strip()
        # the indicator says "idle" before the page has any kernel: the name tells them apart
        return (
            name not in ("", "No Kernel") and indicator.first.get_attribute("data-status") == "idle"
        )

    wait_for(page, ready, "the page attached to the kernel", timeout)
    kernel = attached()
    assert kernel is not None
    return kernel


def open_in_lab(page: Any, server: dict[str, Any], notebook: str) -> None:
    """Open ``notebook`` in JupyterLab and wait for its kernel."""
    # ?reset: a fresh workspace, not the tabs an earlier page left open
    page.goto(f"{server['base']}/lab/tree/{notebook}?reset&token={server['token']}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    wait_for_kernel(page, server, notebook, 90)
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
    """The inner text of what ``selector`` matches in ``page`` (or in a locator), joined."""
    loc = page.locator(selector)
    return " ".join(loc.all_inner_texts()) if loc.count() else ""
