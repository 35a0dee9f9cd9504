"""Fixtures of the browser tests: one Jupyter server and one chromium per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labdriver import CHROMIUM, ROOT, jupyter_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """JupyterLab on a copy of the notebooks folder."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run 'make test' (it apt-get installs chromium)")
    home = tmp_path_factory.mktemp("home")
    root = tmp_path_factory.mktemp("notebooks")
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", root)
    with jupyter_server(home, root) as info:
        yield info


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """One Playwright driver per test module.

    Its sync API cannot be started twice at once, and while it runs it holds an event loop
    in the main thread (``asyncio.run`` then fails), so it must stop with its module.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--autoplay-policy=no-user-gesture-required", "--disable-gpu"],
    )
    try:
        yield b
    finally:
        b.close()
