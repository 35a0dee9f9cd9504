"""The quickstart notebook in real JupyterLab 4 and Notebook 7, driven in Debian's chromium.

JupyterLab runs the notebook top to bottom (the scripted session, its tables and plots,
and the panel); then the test presses Start on the panel, waits for the scripted user's
words and the agent's answer in the live transcript, moves the ``vad_threshold`` slider
with the keyboard as a user would, waits for the config epoch on the timeline, and presses
Stop. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

from typing import Any

import pytest
from labdriver import (
    explain_console,
    kernel_id,
    open_in_lab,
    run_all,
    shot,
    text,
    wait_for,
    wait_for_kernel,
    watch_console,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_quickstart_panel_in_jupyterlab(server: dict[str, Any], browser: Any) -> None:
    page = watch_console(browser.new_page(viewport={"width": 1400, "height": 1000}))
    open_in_lab(page, server, "quickstart.ipynb")
    run_all(page, 240)
    outputs = text(page, ".jp-OutputArea")
    assert "Traceback" not in outputs, outputs[-3000:]
    assert "endpoint_delay" in outputs  # the turn table of the scripted session
    panel = page.locator(".vk-panel")
    panel.wait_for(timeout=30_000)
    panel.scroll_into_view_if_needed()
    shot(page, "lab-1-panel")

    # Start: the scripted user talks to the embedded stand-in agent
    panel.get_by_role("button", name="Start").click()
    wait_for(page, lambda: panel.get_by_role("button", name="Stop").count() > 0, "Stop", 30)
    wait_for(
        page,
        lambda: (
            # "hello can you hear me": partial transcripts come first, so wait for the word
            "you" in text(page, ".vk-transcript .vk-user")
            and text(page, ".vk-transcript .vk-agent").strip() != ""
        ),
        "user and agent text in the transcript",
        90,
    )
    shot(page, "lab-2-talking")

    # move vad_threshold one step with the keyboard: one debounced session.update
    before = page.locator("img.vk-timeline").get_attribute("src")
    slider = page.locator(".vk-vad-threshold")
    readout = slider.locator(".widget-readout").inner_text()
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    wait_for(
        page,
        lambda: slider.locator(".widget-readout").inner_text() != readout,
        "the slider to move",
        10,
    )
    moved = slider.locator(".widget-readout").inner_text()
    wait_for(
        page,
        lambda: f"vad_threshold={float(moved):g}" in text(page, ".vk-timeline-caption"),
        "the config epoch on the timeline",
        15,
    )
    caption = text(page, ".vk-timeline-caption")
    assert "epoch 1" in caption, caption
    assert "epoch 1" in text(page, ".vk-transcript")
    assert page.locator("img.vk-timeline").get_attribute("src") != before  # redrawn
    metrics = text(page, ".vk-metrics")
    shot(page, "lab-3-epoch")

    # Stop
    panel.get_by_role("button", name="Stop").click()
    wait_for(page, lambda: "ended" in text(page, ".vk-status"), "the session to end", 30)
    # the button's label is a separate widget update: it may land a moment after the status
    start_again = panel.get_by_role("button", name="Start")
    wait_for(page, lambda: start_again.count() > 0, "the Start button to come back", 10)
    assert "fto" in metrics
    shot(page, "lab-4-stopped")
    page.close()


def test_panel_renders_in_notebook_7(server: dict[str, Any], browser: Any) -> None:
    """Notebook 7's own front-end shows the panel and runs a session from it.

    The notebook's kernel is still running (the JupyterLab test started it, with its panel):
    this page must attach to it before a cell runs, or Notebook 7 starts a second kernel and
    shuts the first down under the cells already sent (see labdriver.wait_for_kernel).
    """
    page = watch_console(browser.new_page(viewport={"width": 1400, "height": 1000}))
    page.goto(f"{server['base']}/notebooks/quickstart.ipynb?token={server['token']}")
    page.locator(".jp-Cell").first.wait_for(timeout=60_000)
    kernel = wait_for_kernel(page, server, "quickstart.ipynb", 90)
    page.keyboard.press("Escape")
    # run the import cell and the panel cell only (Shift+Enter from the top)
    page.locator(".jp-Cell").first.click()
    for _ in range(4):
        page.keyboard.press("Shift+Enter")
    # the panel this run made (never started: idle), in the panel's cell; not one drawn from
    # outputs an earlier run saved
    errors = ".jp-OutputArea-output[data-mime-type*='error']"
    panel = page.locator(".jp-CodeCell").nth(1).locator(".vk-panel")

    def drawn() -> bool:
        if page.locator(errors).count():
            raise AssertionError(text(page, errors))
        return panel.count() == 1 and panel.locator(".vk-status-idle").count() == 1

    wait_for(page, drawn, "the panel", 60)
    panel.get_by_role("button", name="Start").click()
    wait_for(
        page,
        lambda: text(panel, ".vk-transcript .vk-agent").strip() != "",
        "the agent's greeting in the transcript",
        60,
    )
    panel.get_by_role("button", name="Stop").click()
    wait_for(page, lambda: "ended" in text(panel, ".vk-status"), "the session to end", 30)
    shot(page, "notebook7-panel")
    # all on the kernel the page attached to: none was started in its place
    assert kernel_id(server, "quickstart.ipynb") == kernel, explain_console(page)
    # page errors 'Canceled future for create_subshell_request', if any, echo a kernel
    # connection torn down on the way: with the panel drawn and a session run from it they
    # were noise. A wait that fails names them and the kernels (labdriver.explain_console).
    page.close()
