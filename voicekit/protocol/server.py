"""The server side of the protocol as a sans-I/O state machine (for the stand-in agent).

Protocol layer, pure: no sockets, no asyncio, nothing above the protocol layer. One
:class:`ServerProtocol` per socket, ``AWAIT_FIRST -> READY -> ENDED`` (reference §14). The
driver feeds each received frame to :meth:`ServerProtocol.receive`, which validates it and
returns :class:`Action` objects for what the application must do (speak, listen, run the
tool round trip) — one small class per kind (:class:`AudioReceived`,
:class:`ToolResultReceived`, ...), for the driver to ``match`` on. Replies, errors and the
config echo are the same typed server events the client parses
(:mod:`voicekit.protocol.events`), queued by :meth:`ServerProtocol.send` and handed out as
wire dicts by :meth:`data_to_send`; when the protocol decides the socket must close,
:attr:`close_code` says with which code.

Errors follow §7 (codes and whether they close): invalid JSON, unknown types and
wrong-shaped messages are ``invalid_format`` and keep the session open; broken base64 is
``invalid_audio``; configuration errors in the *first* ``session.update`` close with 1008;
later ones (``immutable_field``, ``agent_id_not_first``, ``invalid_value``) keep it open.

Choices where the reference is silent (§16): ``input.audio`` before the first
``session.update`` gets ``invalid_format`` and the session stays open; an odd-length PCM16
chunk gets ``invalid_audio`` once per session and its last byte is dropped;
``input.format`` is immutable after the first update, like ``output.format``.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from voicekit.errors import ConfigError, ProtocolError
from voicekit.protocol.config import AudioFormat, SessionConfig, merge
from voicekit.protocol.events import (
    CLIENT_EVENTS,
    ConversationMessage,
    Event,
    InputAudio,
    InputSpeechStarted,
    InputSpeechStopped,
    ReplyAudio,
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
    TranscriptAgent,
    TranscriptAgentDelta,
    TranscriptUser,
    TranscriptUserDelta,
    decode_audio,
    encode_audio,
    loads,
)
from voicekit.protocol.voices import voice_ids

__all__ = [
    "Action",
    "AudioReceived",
    "ConfigUpdated",
    "MessageAdded",
    "ReplyCancelRequested",
    "ReplyRequested",
    "ServerProtocol",
    "SessionEndRequested",
    "SessionResumed",
    "SessionStarted",
    "ToolResultReceived",
    "config_echo",
]

E = TypeVar("E", bound=Event)

AWAIT_FIRST, READY, ENDED = "await_first", "ready", "ended"
RATE_BUCKET_S = 1.5  # audio beyond ~1 s per second plus a small burst is a violation


class Action:
    """Something the application must act on, decoded from a client frame.

    The base of one frozen dataclass per kind; drivers ``match`` on the class, e.g.
    ``case AudioReceived(pcm=pcm):``.

    Attributes
    ----------
    kind : str
        The kind as text (``session.started``, ``input.audio``, ...), a class constant.
    """

    __slots__ = ()
    kind: ClassVar[str] = ""

    @property
    def type(self) -> str:
        """Alias of ``kind``."""
        return self.kind


@dataclasses.dataclass(frozen=True, slots=True)
class SessionStarted(Action):
    """The first ``session.update`` was accepted; ``session.ready`` is queued."""

    kind: ClassVar[str] = "session.started"
    config: SessionConfig
    session_id: str
    resume_token: str
    agent_id: str | None = None  # the stored agent the session is bound to


@dataclasses.dataclass(frozen=True, slots=True)
class SessionResumed(Action):
    """``session.resume`` found the held session; ``session.ready`` is queued."""

    kind: ClassVar[str] = "session.resumed"
    config: SessionConfig
    session_id: str
    resume_token: str


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigUpdated(Action):
    """A later ``session.update`` was applied; ``config`` is the merged configuration."""

    kind: ClassVar[str] = "config.updated"
    config: SessionConfig


@dataclasses.dataclass(frozen=True, slots=True)
class AudioReceived(Action):
    """``input.audio``: ``pcm`` is the decoded audio, in the input encoding."""

    kind: ClassVar[str] = "input.audio"
    pcm: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ToolResultReceived(Action):
    """``tool.result``: the client's answer to a ``tool.call``."""

    kind: ClassVar[str] = "tool.result"
    call_id: str
    result: str
    is_error: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ReplyRequested(Action):
    """``reply.create``: reply now, with optional ``instructions``."""

    kind: ClassVar[str] = "reply.create"
    instructions: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ReplyCancelRequested(Action):
    """``reply.cancel``: stop the reply ``reply_id`` (None: the current one)."""

    kind: ClassVar[str] = "reply.cancel"
    reply_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class MessageAdded(Action):
    """``conversation.message``: context to add (``role`` user or system), no reply."""

    kind: ClassVar[str] = "conversation.message"
    role: str
    content: str


@dataclasses.dataclass(frozen=True, slots=True)
class SessionEndRequested(Action):
    """``session.end``: ``session.ended`` is queued and the socket closes with 1000."""

    kind: ClassVar[str] = "session.end"


def config_echo(config: SessionConfig, session_id: str) -> dict[str, Any]:
    """The resolved ``config`` object of ``session.ready`` (§6.1): unset fields are null."""
    td = config.turn_detection
    return {
        "id": session_id,
        "system_prompt": config.system_prompt,
        "greeting": config.greeting,
        "input": {
            "type": "audio",
            "format": config.input_format.to_dict(),
            "turn_detection": td.to_dict() if td is not None else None,
            "keyterms": list(config.keyterms) if config.keyterms is not None else None,
            "transcription_mode": config.transcription_mode,
            "continuous_partials": None,
            "transcription_prompt": None,
            "language_codes": None,
            "voice_focus": None,
            "voice_focus_threshold": None,
        },
        "output": {
            "type": "audio",
            "voice": config.voice,
            "format": config.output_format.to_dict(),
            "volume": config.volume,
        },
        "tools": [
            {
                "type": "function",
                "name": t.get("name"),
                "description": t.get("description", ""),
                "parameters": t.get("parameters", {}),
                "timeout_seconds": t.get("timeout_seconds", 120),
                "execution_mode": t.get("execution_mode", "interactive"),
                "http": _http_echo(t.get("http")),
                "response_instructions": t.get("response_instructions"),
            }
            for t in config.tools or []
        ],
        "llm": [],
        "pre_connect_requests": [],
    }


def _http_echo(http: Any) -> dict[str, Any] | None:
    """A server-side HTTP tool's ``http`` as the config echo shows it (§5.1.5): the URL and
    method, the headers only as opaque stand-ins for the service's encrypted fields (their
    values never reach a client)."""
    if not isinstance(http, Mapping):
        return None
    headers = http.get("headers") or []
    hidden = "omitted" if headers else None
    return {
        "url": http.get("url"),
        "method": http.get("http_method", http.get("method", "POST")),
        "headers_ciphertext": hidden,
        "headers_encrypted_data_key": hidden,
        "headers_kms_key_id": hidden,
    }


def _same(name: str, new: Any, old: Any) -> bool:
    """Whether a patch value leaves an immutable field as it is."""
    if new == old:
        return True
    if name.endswith("format") and isinstance(new, Mapping) and isinstance(old, Mapping):
        try:
            return AudioFormat.from_dict(new) == AudioFormat.from_dict(old)
        except ConfigError:
            return False
    return False


def _hex(n: int) -> str:
    return secrets.token_hex(n)


def _nulls(event: E, *names: str) -> E:
    """``event`` with the named fields written as explicit nulls when they are None."""
    for name in names:
        if getattr(event, name) is None:
            event.extra[name] = None
    return event


class ServerProtocol:
    """Sans-I/O server state of one socket.

    Parameters
    ----------
    voices : collection of str, optional
        Accepted ``output.voice`` ids (default: every era's ids).
    resume : callable, optional
        ``resume(session_id) -> dict | str``: the held session (a dict with ``config``) or
        an error code (``session_not_found``, ``session_forbidden``, ``session_expired``).
        Without it every resume fails with ``session_not_found``.
    agents : callable, optional
        ``agents(agent_id) -> dict | None``: a stored agent as the ``session`` object of an
        inline first ``session.update`` (``system_prompt``, ``greeting``, ``output``,
        ``tools``, ...), or None for an unknown id. A first update ``{"agent_id": ...}``
        alone is then configured from it; without the hook every id is ``agent_not_found``.
    clock : callable
        Epoch seconds for ``timestamp`` fields (injectable for tests).
    monotonic : callable
        Seconds for durations and the audio rate bucket.
    enforce_audio_rate : bool
        Report ``audio_rate_violation`` and drop audio sent faster than real time.
    default_voice : str
        Voice used when the first update names none.
    observer : callable, optional
        ``observer(item)``, called with every server event :meth:`send` queues (stamped)
        and every :class:`Action` :meth:`receive` returns, in order, as it happens (the
        stand-in agent's session recorder). Passive: it must not raise, block or change
        the session. Settable later as the attribute ``observer``.
    session_ttl_s : int
        ``session.ready`` ``expires_at`` is now plus this (the hosted service was seen to
        send now + 3595 s whatever the token asked).
    """

    def __init__(
        self,
        voices: Any = None,
        resume: Callable[[str], Mapping[str, Any] | str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        enforce_audio_rate: bool = False,
        default_voice: str = "alba",
        agents: Callable[[str], Mapping[str, Any] | None] | None = None,
        observer: Callable[[Event | Action], None] | None = None,
        session_ttl_s: int = 3600,
    ) -> None:
        self.voices = set(voices) if voices is not None else set(voice_ids())
        self._resume = resume
        self._agents = agents
        self.agent_id: str | None = None  # the stored agent the session is bound to
        self.clock = clock
        self.monotonic = monotonic
        self.enforce_audio_rate = enforce_audio_rate
        self.default_voice = default_voice
        self.observer = observer
        self.session_ttl_s = session_ttl_s
        self.state = AWAIT_FIRST
        self.config: SessionConfig | None = None
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.started = monotonic()
        self.audio_seconds = 0.0
        self._out: list[dict[str, Any]] = []
        self._odd_reported = False
        self._bucket = RATE_BUCKET_S
        self._bucket_t = monotonic()

    @property
    def ended(self) -> bool:
        """Whether the session ended cleanly (``session.end``) or fatally."""
        return self.state == ENDED

    # -- output ----------------------------------------------------------------------------
    def data_to_send(self) -> list[dict[str, Any]]:
        """Server events to send now, in order; empties the queue."""
        out, self._out = self._out, []
        return out

    def send(self, event: E) -> E:
        """Queue a server event, stamped with ``timestamp`` from the clock.

        Parameters
        ----------
        event : Event
            One of the server events of :mod:`voicekit.protocol.events`; its wire dict is
            taken now (later changes to the object are not sent).

        Returns
        -------
        Event
            ``event``, stamped.
        """
        event.timestamp = self.clock()
        self._out.append(event.to_dict())
        if self.observer is not None:
            self.observer(event)
        return event

    def error(
        self,
        code: str,
        message: str,
        param: str | None = None,
        fatal: bool = False,
        close_code: int = 1008,
    ) -> None:
        """Queue ``session.error``; ``fatal`` also closes the socket with ``close_code``."""
        event = SessionError(code=code, message=message)
        if param is not None or fatal:
            event.param = param
            event.session_id = self.session_id
            _nulls(event, "param", "session_id")
        self.send(event)
        if fatal:
            self._close(close_code, code)

    def _close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.state = ENDED

    def reject_unauthorized(self) -> None:
        """Bad credentials: the observed behaviour (§2.3) — error, then close 1008."""
        self.send(
            _nulls(
                SessionError(code="unauthorized", message="Authentication failed"),
                "session_id",
                "param",
            )
        )
        self._close(1008, "unauthorized")

    # -- input -----------------------------------------------------------------------------
    def receive(self, frame: str | bytes) -> list[Action]:
        """Validate one client frame; returns the actions for the application.

        Never raises for bad input: every problem becomes a ``session.error`` (and, where
        §7 says so, a close code).
        """
        if self.state == ENDED:
            return []
        if isinstance(frame, (bytes, bytearray, memoryview)):
            self.error(
                "invalid_format",
                "Invalid message format: binary frames are not supported; send JSON text frames",
            )
            return []
        try:
            obj = loads(frame)
        except ProtocolError as exc:
            message = (
                "Invalid JSON format."
                if "JSON" in str(exc)
                else ("Invalid message format: " + str(exc))
            )
            self.error("invalid_format", message)
            return []
        kind = obj["type"]
        cls = CLIENT_EVENTS.get(kind)
        if cls is None:
            self.error("invalid_format", f"Unknown message type: {kind[:100]}")
            return []
        try:
            event = cls._from(obj)
        except ProtocolError:
            self.error("invalid_format", f"Invalid message format for type '{kind}'")
            return []
        if self.state == AWAIT_FIRST:
            match event:
                case SessionUpdate(session=session):
                    return self._observed(self._first_update(session))
                case SessionResume(session_id=session_id):
                    return self._observed(self._resume_session(session_id))
            self.error(
                "invalid_format", "The first message must be session.update or session.resume"
            )
            return []
        return self._observed(self._ready_event(event))

    def _observed(self, actions: list[Action]) -> list[Action]:
        if self.observer is not None:
            for action in actions:
                self.observer(action)
        return actions

    def _ready_event(self, event: Event) -> list[Action]:
        match event:
            case InputAudio():
                return self._audio(event)
            case SessionUpdate(session=session):
                return self._later_update(session)
            case SessionResume():
                self.error("invalid_format", "session.resume is only valid as the first message")
                return []
            case ToolResult(call_id=call_id, result=result, is_error=is_error):
                return [ToolResultReceived(call_id, result, bool(is_error))]
            case ReplyCreate(instructions=instructions):
                return [ReplyRequested(instructions)]
            case ReplyCancel(reply_id=reply_id):
                return [ReplyCancelRequested(reply_id)]
            case ConversationMessage(role=role, content=content):
                return [MessageAdded(role, content)]
            case SessionEnd():
                self.send(
                    _nulls(
                        SessionEnded(
                            session_duration_seconds=round(self.monotonic() - self.started, 6)
                        ),
                        "audio_duration_seconds",
                    )
                )
                self._close(1000, "session ended")
                return [SessionEndRequested()]
        raise AssertionError(f"unhandled client event {event.type}")  # CLIENT_EVENTS only

    def _audio(self, event: InputAudio) -> list[Action]:
        try:
            data = decode_audio(event.audio)
        except ProtocolError:
            self.error("invalid_audio", "Invalid audio data")
            return []
        assert self.config is not None
        pcm = self.config.input_format.encoding == "audio/pcm"
        if pcm and len(data) % 2:
            if not self._odd_reported:
                self._odd_reported = True
                self.error(
                    "invalid_audio",
                    "Invalid audio data: PCM16 needs an even number "
                    "of bytes; the odd byte was dropped",
                )
            data = data[:-1]
        seconds = len(data) / (48000 if pcm else 8000)
        if self.enforce_audio_rate:
            now = self.monotonic()
            self._bucket = min(RATE_BUCKET_S, self._bucket + (now - self._bucket_t))
            self._bucket_t = now
            if seconds > self._bucket:
                self.error(
                    "audio_rate_violation",
                    "Audio sent faster than real time was dropped; send audio at real-time pace",
                )
                return []
            self._bucket -= seconds
        self.audio_seconds += seconds
        return [AudioReceived(data)] if data else []

    # -- configuration ---------------------------------------------------------------------
    def _first_update(self, session: dict[str, Any]) -> list[Action]:
        if "greeting" in session and session["greeting"] is None:
            self.error("invalid_format", "Invalid message format for type 'session.update'")
            return []
        agent_id = session.get("agent_id")
        if "agent_id" in session:
            if len(session) > 1:
                self.error(
                    "invalid_value",
                    "agent_id is mutually exclusive with other session fields",
                    "agent_id",
                    fatal=True,
                )
                return []
            stored = (
                self._agents(agent_id)
                if self._agents is not None and isinstance(agent_id, str)
                else None
            )
            if stored is None:
                self.error("agent_not_found", "Agent not found", "agent_id", fatal=True)
                return []
            session = dict(stored)  # as if sent inline: the same checks and defaults
        if "llm" in session:
            self.error(
                "invalid_value",
                "BYO LLM config is not allowed on session.update; "
                "define it on a stored agent via POST /v1/agents",
                "llm",
                fatal=True,
            )
            return []
        config = self._parse_config(session, fatal=True)
        if config is None:
            return []
        if config.voice is None:
            config = dataclasses.replace(config, voice=self.default_voice)
        self.config = config
        self.agent_id = agent_id
        self.session_id = "sess_" + _hex(16)
        self.resume_token = "vk_resume_" + _hex(24)
        echo = config_echo(config, self.session_id)
        self.send(SessionUpdated(config=echo))
        self.send(
            SessionReady(
                session_id=self.session_id,
                expires_at=int(self.clock()) + self.session_ttl_s,
                resume_token=self.resume_token,
                config=echo,
            )
        )
        self.state = READY
        return [SessionStarted(config, self.session_id, self.resume_token, agent_id)]

    def _parse_config(self, session: Mapping[str, Any], fatal: bool) -> SessionConfig | None:
        try:
            config = SessionConfig.from_dict(session)
        except ConfigError as exc:
            self.error("invalid_value", str(exc), exc.field, fatal=fatal)
            return None
        if config.voice is not None and config.voice not in self.voices:
            self.error(
                "invalid_value",
                f"Invalid voice '{config.voice}'. Must be one of: {', '.join(sorted(self.voices))}",
                "output.voice",
                fatal=fatal,
            )
            return None
        return config

    def _later_update(self, patch: dict[str, Any]) -> list[Action]:
        assert self.config is not None
        if "agent_id" in patch:
            self.error(
                "agent_id_not_first",
                "agent_id can only be set on the first session.update",
                "agent_id",
            )
            return []
        current = self.config.to_dict()
        checks = [
            ("greeting", patch.get("greeting", current.get("greeting")), current.get("greeting")),
        ]
        for section, key in (("output", "voice"), ("output", "format"), ("input", "format")):
            part = patch.get(section)
            if isinstance(part, Mapping) and key in part:
                checks.append((f"{section}.{key}", part[key], current[section].get(key)))
        for name, new, old in checks:
            if not _same(name, new, old):
                self.error(
                    "immutable_field",
                    f"'{name}' cannot be changed after the first session.update",
                    name,
                )
                return []
        try:
            config = merge(self.config, patch)
        except ConfigError as exc:
            self.error("invalid_value", str(exc), exc.field)
            return []
        self.config = config
        self.send(SessionUpdated(config=config_echo(config, self.session_id or "")))
        return [ConfigUpdated(config)]

    def _resume_session(self, session_id: str) -> list[Action]:
        found = self._resume(session_id) if self._resume is not None else "session_not_found"
        if isinstance(found, str):
            messages = {
                "session_not_found": "Session not found or grace window has expired",
                "session_forbidden": "Session belongs to another account",
                "session_expired": "Session expired",
            }
            self.error(found, messages.get(found, found), "session_id", fatal=True)
            return []
        config = found.get("config")
        assert isinstance(config, SessionConfig)
        self.config = config
        self.session_id = session_id
        self.resume_token = "vk_resume_" + _hex(24)
        self.send(
            SessionReady(
                session_id=session_id,
                expires_at=int(self.clock()) + self.session_ttl_s,
                resume_token=self.resume_token,
                config=config_echo(config, session_id),
            )
        )
        self.state = READY
        return [SessionResumed(config, session_id, self.resume_token)]

    # -- what the application says -----------------------------------------------------------
    def speech_started(self) -> None:
        """Queue ``input.speech.started``."""
        self.send(InputSpeechStarted())

    def speech_stopped(self) -> None:
        """Queue ``input.speech.stopped``."""
        self.send(InputSpeechStopped())

    def user_delta(self, item_id: str, text: str) -> None:
        """Queue ``transcript.user.delta`` (the whole text so far)."""
        self.send(TranscriptUserDelta(item_id=item_id, text=text))

    def user_final(self, item_id: str, text: str) -> None:
        """Queue ``transcript.user``."""
        self.send(TranscriptUser(item_id=item_id, text=text))

    def new_item_id(self) -> str:
        """A fresh ``msg_...`` item id."""
        return "msg_" + _hex(12)

    def new_call_id(self) -> str:
        """A fresh ``chatcmpl-tool-<16 hex>`` call id."""
        return "chatcmpl-tool-" + _hex(8)

    def reply_started(self) -> tuple[str, str]:
        """Queue ``reply.started``; returns ``(reply_id, item_id)``."""
        reply_id, item_id = "resp_" + _hex(12), self.new_item_id()
        self.send(ReplyStarted(reply_id=reply_id, item_id=item_id))
        return reply_id, item_id

    def reply_audio(self, reply_id: str, data: bytes) -> None:
        """Queue one ``reply.audio`` chunk (bytes in the output encoding)."""
        self.send(ReplyAudio(reply_id=reply_id, data=encode_audio(data)))

    def agent_delta(
        self, reply_id: str, item_id: str, delta: str, start_ms: int | None, end_ms: int | None
    ) -> None:
        """Queue ``transcript.agent.delta`` (one word; unknown times are sent as null)."""
        event = TranscriptAgentDelta(
            reply_id=reply_id, item_id=item_id, delta=delta, start_ms=start_ms, end_ms=end_ms
        )
        self.send(_nulls(event, "start_ms", "end_ms"))

    def agent_final(self, reply_id: str, item_id: str, text: str, interrupted: bool) -> None:
        """Queue ``transcript.agent``."""
        self.send(
            TranscriptAgent(reply_id=reply_id, item_id=item_id, text=text, interrupted=interrupted)
        )

    def reply_done(self, reply_id: str, status: str = "completed") -> None:
        """Queue ``reply.done``."""
        self.send(ReplyDone(reply_id=reply_id, status=status))

    def tool_call_event(self, call: Mapping[str, Any]) -> None:
        """Queue ``tool.call`` with ``call_id``, ``name`` and ``arguments``."""
        self.send(
            ToolCall(
                call_id=call["call_id"],
                name=call["name"],
                arguments=dict(call.get("arguments") or {}),
            )
        )
