"""asyncio helpers shared by the session and the stand-in agent (no voicekit imports)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["TaskSet", "cancel_other_tasks"]


class TaskSet:
    """The tasks a driver spawned: kept referenced (ruff RUF006), failures reported once.

    Parameters
    ----------
    on_error : callable, optional
        ``on_error(task_name, exception)``, called on the loop when a task fails (not when
        it is cancelled); the failure is also logged to ``logger``.
    logger : logging.Logger
        Where failures are logged.
    """

    def __init__(
        self,
        on_error: Callable[[str, BaseException], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_error = on_error
        self._log = logger or logging.getLogger("voicekit")

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Any:
        return iter(list(self._tasks))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as a task on the running loop and keep it until it is done."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self._log.error("task %s failed: %r", task.get_name(), exc, exc_info=exc)
        if self._on_error is not None:
            self._on_error(task.get_name(), exc)

    async def cancel(
        self, timeout: float, keep: Callable[[asyncio.Task[Any]], bool] | None = None
    ) -> None:
        """Cancel every task but the current one (and those ``keep`` spares); wait for them
        at most ``timeout`` seconds."""
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current and not (keep and keep(t))]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)


async def cancel_other_tasks(timeout: float) -> None:
    """Cancel every other task of the running loop and wait (at most ``timeout`` s) until
    they are done, so that none is destroyed pending when the loop closes (websockets'
    keepalive of an aborted connection, for one, is still cancelling)."""
    current = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not current]
    for task in rest:
        task.cancel()
    if rest:
        await asyncio.wait(rest, timeout=timeout)
