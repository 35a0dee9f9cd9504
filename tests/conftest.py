"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import voicekit as vk


@pytest.fixture(scope="module")
def agent() -> Iterator[vk.local.LocalAgent]:
    """The stand-in agent on a real socket (fast latency profile), one per test module."""
    with vk.local.serve(profile="fast") as server:
        yield server
