from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import voicekit as vk

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def agent() -> Iterator[vk.local.LocalAgent]:
    with vk.local.serve(profile="fast") as server:
        yield server
