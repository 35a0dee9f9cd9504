"""pytest fixtures for tests of code built on voicekit (see :mod:`voicekit.testing`).

Enable it in the top-level ``conftest.py`` of a test suite::

    pytest_plugins = ["voicekit.testing.plugin"]

(or ``pytest -p voicekit.testing.plugin`` for one run). It is not registered as an
automatically loaded plugin: installing voicekit does not change other test suites.

This is the only module of voicekit that imports pytest; nothing in voicekit imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from voicekit.testing._hooks import SessionFactory

__all__ = [
    "voicekit_agent",
    "voicekit_agent_factory",
    "voicekit_agent_options",
    "voicekit_session_factory",
]


@pytest.fixture(scope="module")
def voicekit_agent_options() -> dict[str, Any]:
    """Options of :func:`voicekit_agent` (``vk.local.serve(**options)``); default
    ``{"profile": "fast"}``. Override this fixture (module scope) in a test module or a
    ``conftest.py`` to serve another agent, e.g. one with ``api_key=`` or a ``brain=``."""
    return {"profile": "fast"}


@pytest.fixture(scope="module")
def voicekit_agent(voicekit_agent_options: dict[str, Any]) -> Iterator[Any]:
    """A stand-in agent on a free loopback port, one per test module, stopped after it.

    Pass ``voicekit_agent.url`` to the code under test (or use
    :func:`voicekit_session_factory`).
    """
    from voicekit.local import serve

    with serve(port=0, **voicekit_agent_options) as agent:
        yield agent


@pytest.fixture
def voicekit_agent_factory() -> Iterator[Callable[..., Any]]:
    """``make(**options)`` serves a stand-in agent of its own for one test (any
    ``vk.local.serve`` option); every one made is stopped when the test ends."""
    from voicekit.local import serve

    agents: list[Any] = []

    def make(**options: Any) -> Any:
        agent = serve(**{"port": 0, **options})
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture
def voicekit_session_factory(voicekit_agent: Any, tmp_path: Path) -> Iterator[SessionFactory]:
    """A :class:`voicekit.testing.SessionFactory` for :func:`voicekit_agent`: sessions with
    ``audio_in="null", audio_out="null"`` and their logs in the test's ``tmp_path``; every
    one still running is stopped when the test ends."""
    with SessionFactory(voicekit_agent.url, tmp_path) as factory:
        yield factory
