from __future__ import annotations

from collections.abc import Iterator

import pytest

import voicekit as vk


@pytest.fixture(scope="module")
def agent() -> Iterator[vk.local.LocalAgent]:
    with vk.local.serve(profile="fast") as server:
        yield server
