"""vk.BrowserAudio in real JupyterLab and Debian's chromium, with a fake microphone.

Chromium's fake capture device plays a WAV once (``%noloop``) from the moment the page
opens the microphone: 2 s of silence, then "what is the weather in paris", then silence.
The session's greeting is long, so the user's words barge in on it. Asserted from the
session's log bundle (written as it happens) and from the page's DOM:

- the agent heard the words of the WAV (``transcript.user``);
- the greeting was cut by the barge-in: playback flushed in the page, less played than sent;
- the answer reached the page and played (the page's played count grows past the cut).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from labdriver import CHROMIUM, open_in_lab, run_all, shot, text, wait_for, watch_console

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GREETING = (
    "Hello there! I am the stand in agent. I can tell you about trains, the weather and "
    "the time of day, and I am happy to help with anything else you need."
)


@pytest.fixture(scope="module")
def capture_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from voicekit.audio.resample import resample
    from voicekit.audio.wav import write_wav
    from voicekit.speech import USER_STYLE, synthesize

    speech = synthesize("what is the weather in paris", USER_STYLE).samples
    track = np.concatenate([np.zeros(48000, np.int16), speech, np.zeros(24000 * 12, np.int16)])
    path = tmp_path_factory.mktemp("capture") / "user48k.wav"
    write_wav(path, resample(track, 24000, 48000).astype(np.int16), rate=48000)
    return path


@pytest.fixture(scope="module")
def fake_mic_browser(playwright: Any, capture_wav: Path) -> Iterator[Any]:
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={capture_wav}%noloop",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-gpu",
        ],
    )
    try:
        yield b
    finally:
        b.close()


def _events(root: Path, logs: str = "ba-logs") -> list[dict[str, Any]]:
    files = sorted(root.glob(f"{logs}/*/events.jsonl"))
    if not files:
        return []
    out = []
    for line in files[-1].read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line being written
            out.append(json.loads(line))
    return out


def _notebook(path: Path, log_dir: str, greeting: str) -> None:
    """Two cells: show a vk.BrowserAudio, start a session with it at both ends."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("import voicekit as vk\nb = vk.BrowserAudio()\nb"),
        nbformat.v4.new_code_cell(
            f"s = vk.Session(audio_in=b, audio_out=b, log_dir={log_dir!r}, greeting={greeting!r})"
            "\ns.start()"
        ),
    ]
    nbformat.write(nb, path)


def test_browser_audio_talks_and_is_interrupted(server: dict[str, Any], fake_mic_browser) -> None:
    _notebook(server["root"] / "browser_audio.ipynb", "ba-logs", GREETING)
    page = watch_console(fake_mic_browser.new_page(viewport={"width": 1400, "height": 900}))
    open_in_lab(page, server, "browser_audio.ipynb")
    run_all(page, 120)
    widget = page.locator(".vk-browser-audio")
    widget.wait_for(timeout=30_000)
    wait_for(page, lambda: "capturing" in text(page, ".vk-ba-status"), "capture", 20)
    shot(page, "browser-audio-1-capturing")

    root = server["root"]

    def of(kind: str) -> list[dict[str, Any]]:
        return [e for e in _events(root) if e["type"] == kind]

    def heard() -> set[str]:
        return set(" ".join(e["text"] for e in of("transcript.user")).split())

    wait_for(page, lambda: bool({"weather", "paris"} & heard()), "the WAV's words", 40)

    greeting = of("reply.started")[0]["reply_id"]
    wait_for(page, lambda: len(of("playback.start")) >= 2, "the answer to play", 30)
    stops = {e["reply_id"]: e for e in of("playback.stop")}
    assert stops[greeting]["reason"] in ("speech_started", "interrupted"), stops[greeting]
    sent = sum(e["samples"] for e in of("reply.audio") if e["reply_id"] == greeting)
    assert 0 < stops[greeting]["played"] < sent  # cut: the page flushed the rest

    # the page's own count: the greeting's played part plus the answer, growing
    def page_played() -> int:
        return int(page.locator(".vk-ba-played").get_attribute("data-samples") or 0)

    cut = page_played()
    wait_for(page, lambda: page_played() > cut + 24000 // 2, "the answer in the page", 20)
    # the answer played to its end, all of it: what the page reported matches what was sent
    answer = of("playback.start")[1]["reply_id"]
    wait_for(page, lambda: answer in {e["reply_id"] for e in of("playback.stop")}, "end", 30)
    done = {e["reply_id"]: e for e in of("playback.stop")}[answer]
    sent = sum(e["samples"] for e in of("reply.audio") if e["reply_id"] == answer)
    assert done["reason"] == "completed" and abs(done["played"] - sent) <= 0.02 * sent, (done, sent)
    started = of("audio.browser")
    assert started and started[0]["rate"] in (44100, 48000), started
    assert not [e for e in of("error") if str(e.get("code", "")).startswith("browser_")]
    shot(page, "browser-audio-2-answered")
    time.sleep(0.2)
    page.close()


def test_a_denied_microphone_is_reported_and_the_session_runs_on(
    server: dict[str, Any], playwright: Any
) -> None:
    """Without the fake permission prompt, headless chromium denies the microphone."""
    _notebook(server["root"] / "denied.ipynb", "denied-logs", "Hello.")
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=["--use-fake-device-for-media-stream", "--disable-gpu"]
    )
    try:
        page = watch_console(browser.new_page(viewport={"width": 1400, "height": 900}))
        open_in_lab(page, server, "denied.ipynb")
        run_all(page, 120)
        wait_for(page, lambda: "error" in text(page, ".vk-ba-status"), "the error", 20)
        assert "allow the microphone" in text(page, ".vk-ba-status")
        shot(page, "browser-audio-denied")
    finally:
        browser.close()
    deadline = time.monotonic() + 20
    while True:  # the session runs on in the kernel: wait for the greeting to end
        events = _events(server["root"], "denied-logs")
        if any(e["type"] == "reply.done" for e in events) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    codes = [e.get("code") for e in events if e["type"] == "error"]
    assert "browser_permission_denied" in codes, codes
    # the session itself went on: still connected, the agent's greeting still arriving
    error_t = next(e["t"] for e in events if e.get("code") == "browser_permission_denied")
    assert any(e["type"] == "session.ready" for e in events)
    assert not [e for e in events if e["type"] in ("connection.closed", "session.stop")]
    assert [e for e in events if e["type"] == "reply.done"], "the greeting never finished"
    assert error_t > 0
