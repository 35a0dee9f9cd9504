"""Running widget code on the kernel's event loop (docs/architecture.md, threading model).

Session observers run on the session's observer thread; widget traits may only be set on the
kernel's loop. :class:`KernelLoop` captures that loop when a widget is created and offers
three things: a thread-safe hand-over (:meth:`call_soon`), a periodic tick (:meth:`every`)
and a debounce (:meth:`later`). Outside a kernel (plain Python, a test) there is no running
loop: hand-overs run at once on the caller's thread and ticks do not run; the owner then
drives itself (``panel.refresh()``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

__all__ = ["KernelLoop"]


class KernelLoop:
    """The event loop of the thread that created a widget, if one is running."""

    def __init__(self) -> None:
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self._handles: dict[str, Any] = {}

    @property
    def live(self) -> bool:
        """True inside a kernel: ticks and debounces run by themselves."""
        return self.loop is not None and not self.loop.is_closed()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the kernel loop (from any thread); at once when there is none."""
        if self.loop is None:
            fn()
            return
        with contextlib.suppress(RuntimeError):  # loop closed: the kernel is shutting down
            self.loop.call_soon_threadsafe(fn)

    def later(self, key: str, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay`` seconds, replacing a pending call with the same key.

        Without a kernel loop ``fn`` runs at once (code-driven use needs no debounce).
        """
        self.cancel(key)
        if not self.live:
            fn()
            return
        assert self.loop is not None

        def run() -> None:
            self._handles.pop(key, None)
            fn()

        self._handles[key] = self.loop.call_later(delay, run)

    def every(self, key: str, interval: float, fn: Callable[[], bool]) -> None:
        """Call ``fn`` every ``interval`` seconds on the kernel loop while it returns True."""
        self.cancel(key)
        if not self.live:
            return
        assert self.loop is not None

        def tick() -> None:
            self._handles.pop(key, None)
            if fn() and self.loop is not None and not self.loop.is_closed():
                self._handles[key] = self.loop.call_later(interval, tick)

        self._handles[key] = self.loop.call_later(interval, tick)

    def pending(self, key: str) -> bool:
        """Whether a call with this key is scheduled."""
        return key in self._handles

    def flush(self, key: str, fn: Callable[[], None]) -> None:
        """Run a pending debounced call now (if one is pending)."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
            fn()

    def cancel(self, key: str) -> None:
        """Cancel the pending call with this key, if any."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()
