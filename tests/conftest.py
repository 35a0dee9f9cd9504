"""Fixtures shared by every test folder."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import voicekit as vk

# Modules whose tests take longest (a minute or more each, mostly real-time audio): run first,
# so that with two workers (make test) neither is left with them at the end.
LONGEST_FIRST = ("test_notebooks.py", "test_hostile_clients.py", "test_lab.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the longest modules to the front, each kept whole (module fixtures stay shared)."""

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside and between the other modules stays


pytest_plugins = ["voicekit.testing.plugin"]  # what users enable: our tests use it too

# The suite's agents: fast, with the hosted service's observed deviations except that a
# dropped session resumes (the resume and fault tests are about the client's resume path;
# tests of the observed resume failure ask for it).
SUITE_AGENT = {"profile": "fast", "behaviour": {"resume_fails": False}}


@pytest.fixture(scope="module")
def voicekit_agent_options() -> dict[str, object]:
    """The plugin's agent options for this suite (see ``SUITE_AGENT``)."""
    return dict(SUITE_AGENT)


@pytest.fixture(scope="module")
def agent(voicekit_agent: vk.local.LocalAgent) -> vk.local.LocalAgent:
    """The stand-in agent on a real socket (fast latency profile), one per test module:
    the plugin's ``voicekit_agent``."""
    return voicekit_agent


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
