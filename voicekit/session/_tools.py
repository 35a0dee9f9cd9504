"""The tool runner: a ``tool.call`` in, the function run off the loop, a ``tool.result`` out.

Runtime layer, private. Sync tools run in worker threads and async ones on the loop, with
their timeouts (:mod:`voicekit.tools`); the result goes back through the protocol, whose
timing rule decides when it is sent (after the ``reply.done`` of the reply that asked, held
while a newer reply is pending, dropped if that reply was cut; or at once with
``tool_results="immediate"``). Each call is a ``tool.exec {call_id, name, start, end, ok}``
line. A call that is not for one of the session's tools is either

- **informational**: it names one of the agent's server-side ``http`` tools (live
  observations: the service runs those itself and still sends the client a ``tool.call``);
  it is a ``tool.informational {call_id, name}`` line and is **never answered**; or
- **unknown**: answered at once with an error result (``{"error": "unknown tool ..."}``,
  ``is_error``), logged as ``tool.exec`` with ``ok: false, unknown: true``, so that the agent
  can recover now rather than wait out the tool's timeout (120 s by default).

Must not import websockets, analysis or widgets.
"""

from __future__ import annotations

import json
import time
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

    Attributes
    ----------
    tools : list of Tool
        The session's own tools (``update(tools=...)`` replaces them).
    server_side : frozenset of str
        Names of the agent's server-side (``http``) tools, from ``session.ready``'s config
        echo: a call for one of them is informational.
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
        self.server_side: frozenset[str] = frozenset()
        self._bus = bus
        self._spawn = spawn
        self._answer = answer
        self._t0 = t0

    def informational(self, name: str) -> bool:
        """Whether a call of ``name`` only informs: an agent's ``http`` tool, not ours."""
        return name in self.server_side and all(t.name != name for t in self.tools)

    def call(self, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        """A ``tool.call``: run the tool in a task; an informational call is logged only, an
        unknown tool is answered with an error result."""
        if self.informational(name):
            self._bus.local("tool.informational", call_id=call_id, name=name)
            return
        tool = next((t for t in self.tools if t.name == name), None)
        if tool is None:
            ours = ", ".join(t.name for t in self.tools) or "none"
            now = time.monotonic() - self._t0()
            self._bus.local(
                "tool.exec", call_id=call_id, name=name, start=now, end=now, ok=False, unknown=True
            )
            message = f"unknown tool {name!r}: this client has no such tool (its tools: {ours})"
            self._answer(call_id, json.dumps({"error": message}), True)
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
