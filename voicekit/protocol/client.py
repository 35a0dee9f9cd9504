"""The client side of the protocol as a sans-I/O state machine.

Protocol layer, pure: no sockets, no asyncio. A driver (``vk.Session``, a test) opens the
socket, calls :meth:`ClientProtocol.connect`, sends what :meth:`data_to_send` returns, and
feeds every received frame to :meth:`receive`, which returns the parsed events. The rules
written here once, for every driver:

- the first message is ``session.update`` (or ``session.resume`` on a new socket);
- audio is held until ``session.ready`` (at most ``max_held_audio_s``; older audio is
  dropped first, since a turn detector cannot use stale speech);
- a ``tool.result`` waits until the ``reply.done`` of the reply that issued the call is the
  latest relevant event; it is held while a newer ``reply.started`` or
  ``input.speech.started`` is pending, and dropped if that reply was interrupted (§8.4).
  With ``tool_results="immediate"`` it is sent as soon as it is given (live observations:
  the service accepts it and the answer is audible about 1 s sooner); a result for a call
  whose reply was already interrupted is still dropped;
- a session bound to a stored agent (``agent_id``) sends ``{"agent_id": ...}`` alone as its
  first ``session.update`` (the service refuses it beside inline fields, close 1008) and the
  configuration's mutable fields as a second ``session.update`` once ``session.ready`` came;
- resume: after a drop, :meth:`resume` queues ``session.resume`` for the new socket.

Connection state (:class:`ConnectionState`, :attr:`ClientProtocol.state`) is owned here::

    IDLE --connect()--> CONNECTING --session.ready--> READY --session.ended--> ENDED
                            ^                           |
                            +------ drop (RESUME) ------+      fatal error -> ERROR

What a closed socket means is decided here too, by :meth:`ClientProtocol.connection_closed`
(the driver only carries it out, :class:`AfterClose`):

- ``ENDED``: :meth:`~ClientProtocol.end` was queued or ``session.ended`` arrived;
- before the first ``session.ready`` (no ``session_id``): ``RETRY`` when
  :meth:`~ClientProtocol.handshake_retryable` says another attempt is worth it, else ``FATAL``;
- after it (or while resuming): ``FATAL`` for a close code in ``FATAL_CLOSE_CODES`` (1008
  policy, 1011 internal error, §3) or after a fatal ``session.error`` (a code in
  ``FATAL_CODES``; while connecting or resuming also ``invalid_value`` and ``server_error``);
  otherwise ``RESUME`` (a drop: call :meth:`~ClientProtocol.resume` on a new socket).

A driver that gives up (its resume budget spent) calls :meth:`~ClientProtocol.fail`; one
that closes for good calls :meth:`~ClientProtocol.finish`. ``session_id``,
``resume_token`` and ``error`` are the authority on the session; drivers read them here
rather than keep copies. :meth:`~ClientProtocol.update` is the one place a client diffs
configurations. Malformed frames raise :class:`voicekit.ProtocolError` from
:meth:`receive` (drivers log them and go on); the state machine is unchanged by them.

Must not import asyncio, sockets or anything above the protocol layer.
"""

from __future__ import annotations

import collections
import enum
import random
from collections.abc import Iterator, Mapping
from typing import Any

from voicekit.errors import ConfigError
from voicekit.protocol.config import SessionConfig, diff
from voicekit.protocol.events import (
    ConversationMessage,
    Event,
    InputAudio,
    InputSpeechStarted,
    ReplyCancel,
    ReplyCreate,
    ReplyDone,
    ReplyStarted,
    SessionEnd,
    SessionEnded,
    SessionError,
    SessionReady,
    SessionResume,
    SessionUpdate,
    SessionUpdated,
    ToolCall,
    ToolResult,
    parse_server_event,
)

__all__ = [
    "FATAL_CLOSE_CODES",
    "FATAL_CODES",
    "RETRYABLE_CLOSE_CODES",
    "RETRYABLE_ERROR_CODES",
    "TOOL_RESULT_TIMINGS",
    "AfterClose",
    "ClientProtocol",
    "ConnectionState",
    "backoff_delays",
]

# session.error codes after which the session is over (state ERROR)
FATAL_CODES = {
    "unauthorized",
    "forbidden",
    "session_not_found",
    "session_forbidden",
    "session_expired",
    "agent_not_found",
    "internal_error",
    "agent_init_failed",
    "agent_timeout",
    "at_capacity",
    "concurrency_exceeded",
}

# A connection lost before session.ready is tried again for these (§3, §7): a drop (1006 or
# no close frame), a server going away or restarting, an internal error; and for the error
# codes the reference calls retryable. Auth and configuration errors (1008) are not.
RETRYABLE_CLOSE_CODES = frozenset({None, 1001, 1006, 1011, 1012, 1013})
RETRYABLE_ERROR_CODES = frozenset({"at_capacity", "concurrency_exceeded", "internal_error"})
# A connection lost after session.ready is resumed, except for these close codes (§3):
# policy violation and internal error end the session.
FATAL_CLOSE_CODES = frozenset({1008, 1011})

# when a tool.result is sent: after the reply.done of the reply that asked (§8.4, the
# documented rule), or as soon as the tool returns (accepted live, ~1 s sooner)
TOOL_RESULT_TIMINGS = ("after_reply_done", "immediate")


class ConnectionState(enum.StrEnum):
    """Where a client session stands (a ``str``: ``state == "ready"`` works).

    ``IDLE`` before :meth:`ClientProtocol.connect`; ``CONNECTING`` while a socket is being
    set up (the first handshake, a retry, a resume); ``READY`` after ``session.ready``;
    ``ENDED`` after a clean end; ``ERROR`` after a fatal error.
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    READY = "ready"
    ENDED = "ended"
    ERROR = "error"


class AfterClose(enum.Enum):
    """What the driver must do once a socket closed (:meth:`ClientProtocol.connection_closed`).

    ``ENDED``: the session is over, cleanly. ``RETRY``: the handshake was lost; connect
    again (with backoff) and call :meth:`ClientProtocol.connect`. ``RESUME``: a ready
    session dropped; reconnect within the resume window and call
    :meth:`ClientProtocol.resume`. ``FATAL``: the session failed; give up.
    """

    ENDED = "ended"
    RETRY = "retry"
    RESUME = "resume"
    FATAL = "fatal"


def backoff_delays(
    base: float = 0.25,
    factor: float = 2.0,
    cap: float = 5.0,
    budget: float = 25.0,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Reconnect delays: exponential with full jitter, within a total budget.

    Yields delays ``d_k`` drawn uniformly from ``[0.5, 1.0] * min(cap, base * factor**k)``
    until their sum would pass ``budget`` (the resume window is 30 s; 25 s leaves time for
    the last attempt to connect).
    """
    rng = rng or random.Random()
    spent, k = 0.0, 0
    while True:
        delay = min(cap, base * factor**k) * rng.uniform(0.5, 1.0)
        if spent + delay > budget:
            return
        spent += delay
        k += 1
        yield delay


class ClientProtocol:
    """Sans-I/O client state: idle -> connecting -> ready -> ended (or error).

    Parameters
    ----------
    config : SessionConfig
        The configuration of the first ``session.update``.
    max_held_audio_s : float
        Audio sent before ``session.ready`` is held up to this many seconds (24 kHz PCM
        bytes-equivalent), oldest dropped first.
    agent_id : str, optional
        A stored agent to bind to: the first ``session.update`` is ``{"agent_id": ...}``
        alone, and ``config``'s mutable fields (system prompt, tools, keyterms, turn
        detection, transcription mode) follow in a second update after ``session.ready``.
        ``config`` must leave the fixed fields (voice, greeting, formats) at their defaults.
    tool_results : {"after_reply_done", "immediate"}
        When a ``tool.result`` is sent (see the module docstring).

    Attributes
    ----------
    state : ConnectionState
        ``idle`` until :meth:`connect`, then ``connecting``, ``ready``, ``ended`` or
        ``error`` (see the module docstring).
    session_id, resume_token : str or None
        From ``session.ready``; the token is never logged.
    server_config : dict or None
        The resolved config echoed by the server.
    error : SessionError or None
        The last ``session.error`` received.
    close_code : int or None
        The close code last given to :meth:`connection_closed`; ``close_reason`` its text.
    """

    def __init__(
        self,
        config: SessionConfig,
        max_held_audio_s: float = 5.0,
        *,
        agent_id: str | None = None,
        tool_results: str = "after_reply_done",
    ) -> None:
        if tool_results not in TOOL_RESULT_TIMINGS:
            raise ConfigError(
                f"tool_results ({tool_results!r}) must be 'after_reply_done' (the documented "
                "rule) or 'immediate' (sent as soon as the tool returns)",
                field="tool_results",
            )
        self.config = config
        self.agent_id = agent_id
        self.tool_results = tool_results
        self._agent_patch_due = False
        self.state = ConnectionState.IDLE
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.server_config: dict[str, Any] | None = None
        self.error: SessionError | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._ending = False  # end() was queued
        self._out: list[dict[str, Any]] = []
        self._held_audio: collections.deque[bytes] = collections.deque()
        self._held_bytes = 0
        self._max_held = int(max_held_audio_s * 48000)
        self.dropped_audio_bytes = 0
        # §8.4 bookkeeping
        self._current_reply: str | None = None
        self._call_reply: dict[str, str | None] = {}
        self._done_replies: set[str | None] = {None}
        self._results: dict[str, dict[str, Any]] = {}
        self._flushable = True
        self._dropped_calls: set[str] = set()

    def __repr__(self) -> str:
        return f"<ClientProtocol state={self.state} session_id={self.session_id!r}>"

    # -- outgoing ----------------------------------------------------------------------------
    def data_to_send(self) -> list[dict[str, Any]]:
        """Messages to send now, in order (JSON-able dicts); empties the queue."""
        out, self._out = self._out, []
        return out

    def _queue(self, event: Event) -> None:
        self._out.append(event.to_dict())

    def connect(self) -> None:
        """A socket is open: queue the first ``session.update`` (again, on a new attempt)."""
        self.state = ConnectionState.CONNECTING
        self.error = None
        if self.agent_id is not None:
            self._queue(SessionUpdate(session={"agent_id": self.agent_id}))
            self._agent_patch_due = True
        else:
            self._queue(SessionUpdate(session=self.config.to_dict()))

    def agent_patch(self) -> dict[str, Any]:
        """What a session bound to a stored agent sends after ``session.ready``: the
        configuration's mutable fields that differ from an agent's own (empty: nothing)."""
        c = self.config
        td = c.turn_detection
        base = SessionConfig(
            voice=c.voice,
            greeting=c.greeting,
            input_format=c.input_format,
            output_format=c.output_format,
            turn_detection=td if td is not None and not td.to_dict() else None,  # {}: unset
        )
        return diff(base, c)

    def handshake_retryable(self, close_code: int | None) -> bool:
        """Whether a connection lost before ``session.ready`` is worth another attempt.

        Yes for a drop, a server going away or restarting and an internal error
        (``RETRYABLE_CLOSE_CODES``), and after a ``session.error`` whose code is retryable
        (capacity, internal error); no after any other ``session.error`` (credentials,
        configuration: the same request would fail again) or once the session was ready.
        """
        if self.session_id is not None or self.state in (
            ConnectionState.READY,
            ConnectionState.ENDED,
        ):
            return False
        if self.error is not None:
            return self.error.code.lower() in RETRYABLE_ERROR_CODES
        return close_code in RETRYABLE_CLOSE_CODES

    def resume(self) -> None:
        """A new socket after a drop: queue ``session.resume`` for the session."""
        if self.session_id is None:
            raise ConfigError("cannot resume: the session never became ready")
        self.state = ConnectionState.CONNECTING
        self._flushable = True
        self._queue(SessionResume(session_id=self.session_id))

    def send_audio(self, data: bytes) -> None:
        """Queue audio (in the input encoding); held until ``session.ready``."""
        if self.state is ConnectionState.READY:
            self._queue(InputAudio.from_bytes(data))
            return
        if self.state in (ConnectionState.ENDED, ConnectionState.ERROR):
            return
        self._held_audio.append(bytes(data))
        self._held_bytes += len(data)
        while self._held_bytes > self._max_held and self._held_audio:
            dropped = self._held_audio.popleft()
            self._held_bytes -= len(dropped)
            self.dropped_audio_bytes += len(dropped)

    def send_tool_result(self, call_id: str, result: str, is_error: bool = False) -> None:
        """Queue a ``tool.result``; sent when §8.4 allows, dropped if its reply was cut."""
        if not isinstance(result, str):
            raise ConfigError(
                f"tool result must be a string (JSON-encode structured results), got "
                f"{type(result).__name__}"
            )
        if call_id in self._dropped_calls:
            return  # its reply was interrupted: the result is discarded (§8.4)
        msg = ToolResult(call_id=call_id, result=result, is_error=is_error or None).to_dict()
        if self.tool_results == "immediate":
            self._call_reply.pop(call_id, None)
            self._out.append(msg)
            return
        self._results[call_id] = msg
        self._flush_results()

    def _flush_results(self) -> None:
        if not self._flushable:
            return
        for call_id in list(self._results):
            reply = self._call_reply.get(call_id)
            if call_id not in self._call_reply or reply in self._done_replies:
                self._out.append(self._results.pop(call_id))
                self._call_reply.pop(call_id, None)

    def update(self, new: SessionConfig) -> dict[str, Any]:
        """Queue the ``session.update`` patch from the current config to ``new``.

        Returns the patch (empty: nothing queued). Raises ConfigError for immutable fields.
        """
        patch = diff(self.config, new)
        self.config = new
        if patch:
            self._queue(SessionUpdate(session=patch))
        return patch

    def create_reply(self, instructions: str | None = None) -> None:
        """Queue ``reply.create``."""
        self._queue(ReplyCreate(instructions=instructions))

    def cancel_reply(self, reply_id: str | None = None) -> None:
        """Queue ``reply.cancel`` (not in the documented client set; SDK only)."""
        self._queue(ReplyCancel(reply_id=reply_id))

    def add_message(self, role: str, content: str) -> None:
        """Queue ``conversation.message`` (role ``user`` or ``system``)."""
        if role not in ("user", "system"):
            raise ConfigError(f"role ({role!r}) must be 'user' or 'system'", field="role")
        self._queue(ConversationMessage(role=role, content=content))

    def end(self) -> None:
        """Queue ``session.end`` (a socket closing from now on is the end, not a drop)."""
        self._ending = True
        self._queue(SessionEnd())

    # -- the connection's fate ---------------------------------------------------------------
    def connection_closed(self, code: int | None, reason: str = "") -> AfterClose:
        """The socket closed (``code`` None: no close frame): decide what happens next.

        Parameters
        ----------
        code : int or None
            The WebSocket close code.
        reason : str
            The close reason (kept in ``close_reason`` for the driver's messages).

        Returns
        -------
        AfterClose
            ``ENDED`` after :meth:`end` or ``session.ended`` (state ``ended``);
            before the first ``session.ready``: ``RETRY`` (state ``connecting``) when
            :meth:`handshake_retryable`, else ``FATAL`` (state ``error``); after it:
            ``FATAL`` for a close code in ``FATAL_CLOSE_CODES`` or after a fatal
            ``session.error`` (state ``error``), else ``RESUME`` (state ``connecting``).
        """
        self.close_code, self.close_reason = code, reason
        if self._ending or self.state is ConnectionState.ENDED:
            if self.state is not ConnectionState.ERROR:
                self.state = ConnectionState.ENDED
            return AfterClose.ENDED
        if self.session_id is None:
            if self.handshake_retryable(code):
                self.state = ConnectionState.CONNECTING
                return AfterClose.RETRY
            self.state = ConnectionState.ERROR
            return AfterClose.FATAL
        if code in FATAL_CLOSE_CODES or self.state is ConnectionState.ERROR:
            self.state = ConnectionState.ERROR
            return AfterClose.FATAL
        self.state = ConnectionState.CONNECTING
        return AfterClose.RESUME

    def fail(self) -> None:
        """The driver gave up (retries or resume window spent): state ``error``."""
        self.state = ConnectionState.ERROR

    def finish(self) -> None:
        """The driver closed the session for good: state ``ended`` (``error`` stays)."""
        if self.state is not ConnectionState.ERROR:
            self.state = ConnectionState.ENDED

    # -- incoming ----------------------------------------------------------------------------
    def receive(self, frame: str | bytes | Mapping[str, Any]) -> list[Event]:
        """Parse one server frame and update the state; returns the events (0 or 1).

        Raises
        ------
        ProtocolError
            For a malformed frame (the state is unchanged).
        """
        event = parse_server_event(frame)
        self._apply(event)
        return [event]

    def _apply(self, event: Event) -> None:
        if isinstance(event, SessionReady):
            self.state = ConnectionState.READY
            self.session_id = event.session_id
            self.resume_token = event.resume_token or self.resume_token
            self.server_config = event.config
            if self._agent_patch_due:  # bound to a stored agent: now the inline fields
                self._agent_patch_due = False
                patch = self.agent_patch()
                if patch:
                    self._queue(SessionUpdate(session=patch))
            while self._held_audio:
                self._queue(InputAudio.from_bytes(self._held_audio.popleft()))
            self._held_bytes = 0
        elif isinstance(event, SessionUpdated):
            self.server_config = event.config or self.server_config
        elif isinstance(event, SessionEnded):
            self.state = ConnectionState.ENDED
        elif isinstance(event, SessionError):
            self.error = event
            if event.code in FATAL_CODES or (
                self.state is ConnectionState.CONNECTING
                and event.code in ("invalid_value", "server_error")
            ):
                self.state = ConnectionState.ERROR
        elif isinstance(event, ReplyStarted):
            self._current_reply = event.reply_id
            self._flushable = False
        elif isinstance(event, InputSpeechStarted):
            self._flushable = False
        elif isinstance(event, ToolCall):
            self._call_reply[event.call_id] = self._current_reply
        elif isinstance(event, ReplyDone):
            if event.status == "interrupted":
                cut = event.reply_id
                for call_id, reply in list(self._call_reply.items()):
                    if reply == cut:
                        self._call_reply.pop(call_id)
                        self._results.pop(call_id, None)
                        self._dropped_calls.add(call_id)
            else:
                self._done_replies.add(event.reply_id)
            self._flushable = True
            self._flush_results()
