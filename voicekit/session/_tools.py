"""The tool runner: a ``tool.call`` in, the function run off the loop, a ``tool.result`` out.

Runtime layer, private. Sync tools run in worker threads and async ones on the loop, with
their timeouts (:mod:`voicekit.tools`); the result goes back through the protocol, whose
timing rule decides when it is sent (after the ``reply.done`` of the reply that asked, held
while a newer reply is pending, dropped if that reply was cut). Each call is a
``tool.exec {call_id, name, start, end, ok}`` line; a call for a tool this session does not
have (a server-side tool's informational call) is ``tool.exec`` with ``skipped: true`` and is
never answered.

Must not import websockets, analysis or widgets.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicekit.session._bus import Bus
    from voicekit.tools import Tool

__all__ = ["ToolRunner"]


class ToolRunner:
    """Runs the session's tools for the agent (loop thread).

    Parameters
    ----------
    tools : sequence of Tool
        The tools offered to the agent.
    bus : Bus
        Where ``tool.exec`` lines go.
    spawn : callable
        ``spawn(coro, name)``: runs a coroutine as a task of the session.
    answer : callable
        ``answer(call_id, result, is_error)``: hands the result to the protocol (and sends
        what it releases).
    t0 : callable
        The session clock's origin (``time.monotonic()`` at start), to put tool times on
        the session clock.
    """

    def __init__(
        self,
        tools: Sequence[Tool],
        bus: Bus,
        spawn: Callable[[Coroutine[Any, Any, Any], str], object],
        answer: Callable[[str, str, bool], None],
        t0: Callable[[], float],
    ) -> None:
        self.tools = list(tools)
        self._bus = bus
        self._spawn = spawn
        self._answer = answer
        self._t0 = t0

    def call(self, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        """A ``tool.call``: run the tool in a task, or record that it is not ours."""
        tool = next((t for t in self.tools if t.name == name), None)
        if tool is None:
            self._bus.local("tool.exec", call_id=call_id, name=name, ok=False, skipped=True)
            return
        self._spawn(self._run(tool, call_id, dict(arguments)), f"voicekit-tool-{name}")

    async def _run(self, tool: Tool, call_id: str, arguments: dict[str, Any]) -> None:
        outcome = await tool.call(arguments)
        t0 = self._t0()
        self._bus.local(
            "tool.exec",
            call_id=call_id,
            name=tool.name,
            start=outcome.start_s - t0,
            end=outcome.end_s - t0,
            ok=not outcome.is_error,
        )
        self._answer(call_id, outcome.result, outcome.is_error)
