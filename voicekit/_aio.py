"""asyncio helpers shared by the session and the stand-in agent (no voicekit imports)."""

from __future__ import annotations

import asyncio

__all__ = ["cancel_other_tasks"]


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
