"""Fixtures shared by every test folder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

import voicekit as vk


@pytest.fixture(scope="module")
def agent() -> Iterator[vk.local.LocalAgent]:
    """The stand-in agent on a real socket (fast latency profile), one per test module."""
    with vk.local.serve(profile="fast") as server:
        yield server


@pytest.fixture
def agent_sessions_ended() -> Callable[[], None]:
    """Wait (up to 5 s) until the in-process stand-in agent's per-session worker threads
    (``voicekit-agent-<id>``) have ended: they go a moment after the client has closed, so a
    thread count taken right after ``stop()`` can include one. Fails if one stays."""

    def wait() -> None:
        deadline = time.monotonic() + 5
        while True:
            left = [t.name for t in threading.enumerate() if t.name.startswith("voicekit-agent-")]
            if not left:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the stand-in agent's session threads did not end: {left}")
            time.sleep(0.02)

    return wait
