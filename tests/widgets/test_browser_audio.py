"""vk.BrowserAudio's Python side with a fake page: the widget's ``send`` replaced by a recorder.

The fake page does what browser_audio.js does: it sends 50 ms chunks stamped with their
capture frame, in real time, and reports agent audio as played as it would play it. Its
messages reach the widget as the kernel hands over a front-end's custom message: a
``comm_msg`` given to the widget's comm.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

import voicekit as vk
from voicekit.speech import USER_STYLE, synthesize

pytestmark = pytest.mark.slow
CHUNK = 1200


def from_page(widget: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
    """Deliver a custom message from the page, as the kernel does with a ``comm_msg``."""
    data = {"method": "custom", "content": content}
    widget.comm.handle_msg({"content": {"data": data}, "buffers": buffers or []})


class FakePage:
    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []
        self.queued: list[tuple[str, int]] = []  # agent audio waiting to "play"
        self.lock = threading.Lock()
        widget.send = self.receive  # what the kernel sends to the page

    def receive(self, content: dict[str, Any], buffers: Any = None) -> None:
        self.sent.append((content, list(buffers or [])))
        with self.lock:
            if content["type"] == "audio":
                self.queued.append((content["id"], len(buffers[0]) // 2))
            elif content["type"] == "flush":
                self.queued.clear()

    def talk(self, samples: np.ndarray, stop: threading.Event) -> None:
        """Capture in real time; play 50 ms of queued agent audio per chunk, and say so."""
        frame = 0
        start = time.monotonic()
        while not stop.is_set():
            chunk = samples[frame : frame + CHUNK]
            if len(chunk) < CHUNK:
                chunk = np.zeros(CHUNK, np.int16)
            stamp = {"type": "audio", "frame": frame, "wall": time.time() * 1000}
            from_page(self.widget, stamp, [chunk.astype("<i2").tobytes()])
            played: dict[str, int] = {}
            budget = CHUNK
            with self.lock:
                while budget and self.queued:
                    rid, n = self.queued[0]
                    take = min(n, budget)
                    played[rid] = played.get(rid, 0) + take
                    budget -= take
                    if take == n:
                        self.queued.pop(0)
                    else:
                        self.queued[0] = (rid, n - take)
            if played:
                from_page(self.widget, {"type": "played", "played": played})
            frame += CHUNK
            time.sleep(max(0.0, start + frame / 24000 - time.monotonic()))


def test_browser_audio_carries_a_conversation_both_ways(agent, tmp_path) -> None:
    b = vk.BrowserAudio()
    page = FakePage(b)
    speech = synthesize("what is the weather in paris", USER_STYLE).samples
    track = np.concatenate([np.zeros(24000, np.int16), speech, np.zeros(24000 * 8, np.int16)])
    stop = threading.Event()
    s = vk.Session(url=agent.url, audio_in=b, audio_out=b, log_dir=tmp_path, greeting="Hello.")
    s.start()
    assert page.sent[0][0] == {"type": "start"}
    talker = threading.Thread(target=page.talk, args=(track, stop), daemon=True)
    talker.start()
    try:
        time.sleep(len(track) / 24000)
    finally:
        stop.set()
        talker.join(5)
    log = s.stop()
    assert {"type": "stop"} in [c for c, _ in page.sent]

    heard = " ".join(e["text"] for e in log.of_type("transcript.user"))
    assert {"weather", "paris"} & set(heard.split()), heard
    # agent audio went to the page as binary buffers, and was logged when the page played it
    audio = [bufs[0] for c, bufs in page.sent if c["type"] == "audio"]
    assert audio and all(isinstance(x, bytes) for x in audio)
    sent_samples = sum(len(x) // 2 for x in audio)
    stops = log.of_type("playback.stop")
    played = sum(e["played"] for e in stops)
    assert stops and 0.9 * sent_samples <= played <= sent_samples
    assert log.meta["audio_in"] == "browser" and log.meta["audio_out"] == "browser"
    lat = b.latency()  # stamped by the fake page just before handing over: near zero
    assert lat["chunks"] > 100 and 0 <= lat["p50"] < 20, lat


def test_page_errors_are_typed_and_logged_and_the_session_keeps_running(agent, tmp_path) -> None:
    b = vk.BrowserAudio()
    page = FakePage(b)
    s = vk.Session(url=agent.url, audio_in=b, audio_out=b, log_dir=tmp_path)
    s.start()
    from_page(b, {"type": "error", "code": "permission_denied", "message": "allow the microphone"})
    assert isinstance(b.last_error, vk.AudioError)
    assert "permission_denied" in str(b.last_error)
    time.sleep(0.3)
    assert s.status == "ready"
    log = s.stop()
    errors = log.of_type("error")
    assert any(e.get("code") == "browser_permission_denied" for e in errors), errors
    assert page.sent[-1][0]["type"] in ("stop", "flush")


def test_bad_audio_values_name_browser_audio() -> None:
    with pytest.raises(vk.AudioError, match="BrowserAudio"):
        vk.Session(audio_in=object(), audio_out="null")
