"""Every client and server event of the Voice Agent protocol, as typed objects.

Protocol layer, pure: no I/O, no asyncio, no numpy (and nothing above the protocol layer).
Parsing is tolerant where the reference says clients must be (§15): unknown event types
become :class:`UnknownEvent` with the whole dict kept; unknown fields are kept in ``extra``
and written back by ``to_dict()``; ``error`` is an alias of ``session.error``; error codes
are lower-cased; ``tool.call`` arguments may be an object or a JSON string (or arrive as
``args``); ``timestamp`` may be a float or an ISO-8601 string; ``reply.done`` without a
status is ``completed``. Anything malformed raises :class:`voicekit.ProtocolError` — and
nothing else.

Each event declares its fields once, as dataclass fields in wire order. The wire schema is
derived from them, once per class: a field without a default is required; its JSON kind
comes from the annotation (``str``, ``int``, ``float`` — any number but a bool —, ``bool``,
``dict``, ``Any``); ``X | None`` may be null. ``encode_audio`` / ``decode_audio`` are the
package's one base64 codec (``voicekit.audio`` re-exports them).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import dataclasses
import datetime
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from voicekit.errors import ProtocolError

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "ConversationMessage",
    "Event",
    "InputAudio",
    "InputSpeechStarted",
    "InputSpeechStopped",
    "ReplyAudio",
    "ReplyCancel",
    "ReplyCreate",
    "ReplyDone",
    "ReplyError",
    "ReplyStarted",
    "SessionEnd",
    "SessionEnded",
    "SessionError",
    "SessionReady",
    "SessionResume",
    "SessionUpdate",
    "SessionUpdated",
    "ToolCall",
    "ToolResult",
    "TranscriptAgent",
    "TranscriptAgentDelta",
    "TranscriptUser",
    "TranscriptUserDelta",
    "UnknownEvent",
    "decode_audio",
    "encode_audio",
    "loads",
    "parse_client_event",
    "parse_server_event",
]

E = TypeVar("E", bound="Event")


def loads(data: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """A frame as a dict; ProtocolError for non-JSON, non-objects or a missing ``type``."""
    if isinstance(data, Mapping):
        obj: Any = data
    else:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"Invalid JSON format. ({exc})") from None
        except RecursionError:
            raise ProtocolError("Invalid JSON format. (nested too deeply)") from None
    if not isinstance(obj, dict):
        if isinstance(obj, Mapping):
            obj = dict(obj)
        else:
            raise ProtocolError(f"a frame must be a JSON object, got {type(obj).__name__}")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError("a frame must have a string 'type'")
    result: dict[str, Any] = obj
    return result


def encode_audio(data: bytes) -> str:
    """Base64 text of audio bytes, as the wire carries it (``input.audio``, ``reply.audio``).

    Parameters
    ----------
    data : bytes
        Audio in a wire encoding.

    Returns
    -------
    str
        ASCII base64 text.
    """
    return base64.b64encode(data).decode("ascii")


def decode_audio(text: Any, field: str = "audio") -> bytes:
    """Audio bytes from base64 text.

    Parameters
    ----------
    text : str
        Base64 text (anything else is an error).
    field : str
        The field's name, for the error message.

    Raises
    ------
    ProtocolError
        When ``text`` is not a string or not valid base64 (never ``binascii.Error``).
    """
    if not isinstance(text, str):
        raise ProtocolError(f"{field} must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{field} is not valid base64") from None


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if value.__class__ is float:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ProtocolError("timestamp is too large for a number of seconds") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ProtocolError(
                f"timestamp {value[:40]!r} is neither a number nor ISO-8601"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        return parsed.timestamp()
    raise ProtocolError(
        f"timestamp must be a number or an ISO-8601 string, got {type(value).__name__}"
    )


# -- the schema, derived from the dataclass fields ------------------------------------------
# One field: (name, accepted types or None for anything, whether a bool is refused (numbers),
# whether null is accepted, whether the field is required).
_Spec = tuple[str, tuple[type, ...] | None, bool, bool, bool]
_KINDS: dict[Any, tuple[str, tuple[type, ...] | None, bool]] = {
    str: ("str", (str,), False),
    int: ("int", (int,), True),
    float: ("num", (int, float), True),
    bool: ("bool", (bool,), False),
    dict: ("obj", (dict,), False),
    Any: ("any", None, False),
}
_BASE_FIELDS = frozenset({"timestamp", "extra"})  # Event's own dataclass fields
_ENVELOPE = frozenset({"type", "timestamp"})  # keys of every frame that are not fields


class _Schema:
    """How one event class reads and writes its fields (built once per class)."""

    __slots__ = ("fields", "names", "out")

    def __init__(self, cls: builtins.type[Event]) -> None:
        hints = typing.get_type_hints(cls)
        specs: list[_Spec] = []
        legacy: dict[str, tuple[str, bool]] = {}
        for f in dataclasses.fields(cls):
            if f.name in _BASE_FIELDS:
                continue
            label, accepted, no_bool, nullable = _kind(cls, f.name, hints[f.name])
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            specs.append((f.name, accepted, no_bool, nullable, required))
            legacy[f.name] = (label + ("?" if nullable and accepted else ""), required)
        self.fields: tuple[_Spec, ...] = tuple(specs)
        self.names = frozenset(legacy)
        self.out = tuple((name, required) for name, _, _, _, required in specs)
        cls.FIELDS = types.MappingProxyType(legacy)


def _kind(
    cls: builtins.type[Event], name: str, annotation: Any
) -> tuple[str, tuple[type, ...] | None, bool, bool]:
    """(label, accepted types, refuse bools, nullable) of one annotation."""
    nullable = False
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else None
    kind = _KINDS.get(typing.get_origin(annotation) or annotation)
    if kind is None:
        raise TypeError(
            f"{cls.__name__}.{name}: an event field must be annotated str, int, float, bool, "
            f"dict, Any or one of them | None, not {annotation!r}"
        )
    label, accepted, no_bool = kind
    return label, accepted, no_bool, nullable or accepted is None


_SCHEMAS: dict[builtins.type[Event], _Schema] = {}


def _schema(cls: builtins.type[Event]) -> _Schema:
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = _Schema(cls)
    return schema


@dataclasses.dataclass(kw_only=True, slots=True)
class Event:
    """Base of every event: ``type`` (a class constant), ``timestamp`` and ``extra``.

    Subclasses declare their wire fields as dataclass fields, in wire order; the schema
    (required, kind, nullable) is derived from them (see the module docstring).

    Attributes
    ----------
    timestamp : float or None
        Epoch seconds (server events carry one; ISO strings are converted).
    extra : dict
        Fields this version of voicekit does not model, kept and written back; a modelled
        optional field sent as an explicit ``null`` is kept here too, so the null survives.
    FIELDS : mapping
        Derived from the fields, read-only: name -> (kind, required), kinds ``str int num
        bool obj any`` with a ``?`` suffix when null is allowed (introspection only).
    """

    type: ClassVar[str] = ""
    FIELDS: ClassVar[Mapping[str, tuple[str, bool]]] = types.MappingProxyType({})

    timestamp: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls: builtins.type[E], data: str | bytes | Mapping[str, Any]) -> E:
        """Build the event from a frame (JSON text or dict); ProtocolError if malformed."""
        obj = loads(data)
        if (
            cls.type
            and obj["type"] != cls.type
            and not (cls is SessionError and obj["type"] == "error")
        ):
            raise ProtocolError(f"expected a {cls.type} event, got {obj['type']}")
        return cls._from(obj)

    @classmethod
    def _from(cls: builtins.type[E], obj: dict[str, Any]) -> E:
        schema = _SCHEMAS.get(cls) or _schema(cls)
        kwargs: dict[str, Any] = {}
        nulls: list[str] = []
        seen = 1  # "type"
        for name, accepted, no_bool, nullable, required in schema.fields:
            if name in obj:
                seen += 1
                value = obj[name]
                if value is None:
                    if not nullable:
                        raise _wrong_type(obj, name, value)
                    if not required:  # explicit nulls survive a round trip
                        nulls.append(name)
                elif accepted is not None and (
                    not isinstance(value, accepted) or (no_bool and value.__class__ is bool)
                ):
                    raise _wrong_type(obj, name, value)
                kwargs[name] = value
            elif required:
                raise ProtocolError(
                    f"Invalid message format for type '{obj['type']}': {name} is missing"
                )
        stamp = obj.get("timestamp")
        if "timestamp" in obj:
            seen += 1
        extra: dict[str, Any] = {}
        if len(obj) > seen:
            names = schema.names
            extra = {k: v for k, v in obj.items() if k not in names and k not in _ENVELOPE}
        for name in nulls:
            extra[name] = None
        event = cls(timestamp=_timestamp(stamp), extra=extra, **kwargs)
        event._fixup()
        return event

    def _fixup(self) -> None:
        """Per-event normalisation after parsing (override)."""

    def to_dict(self) -> dict[str, Any]:
        """The event as a wire dict (``type`` first, unknown fields included)."""
        cls = type(self)
        out: dict[str, Any] = {"type": self.type}
        for name, required in (_SCHEMAS.get(cls) or _schema(cls)).out:
            value = getattr(self, name)
            if value is not None or required:
                out[name] = value
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        if self.extra:
            out.update(self.extra)
        return out

    def to_json(self) -> str:
        """The event as a JSON text frame."""
        return json.dumps(self.to_dict())


def _wrong_type(obj: dict[str, Any], name: str, value: Any) -> ProtocolError:
    return ProtocolError(
        f"Invalid message format for type '{obj['type']}': "
        f"{name} has the wrong type ({type(value).__name__})"
    )


# -- client events -------------------------------------------------------------------------
@dataclasses.dataclass(kw_only=True, slots=True)
class SessionUpdate(Event):
    """``session.update``: the first message, and later changes to mutable fields."""

    type: ClassVar[str] = "session.update"
    session: dict[str, Any]


@dataclasses.dataclass(kw_only=True, slots=True)
class SessionResume(Event):
    """``session.resume``: reattach to a dropped session within 30 s."""

    type: ClassVar[str] = "session.resume"
    session_id: str


@dataclasses.dataclass(kw_only=True, slots=True)
class InputAudio(Event):
    """``input.audio``: base64 audio in the input encoding."""

    type: ClassVar[str] = "input.audio"
    audio: str

    @classmethod
    def from_bytes(cls, data: bytes) -> InputAudio:
        """Wrap raw audio bytes."""
        return cls(audio=encode_audio(data))

    def pcm_bytes(self) -> bytes:
        """The decoded audio; ProtocolError on broken base64."""
        return decode_audio(self.audio)


@dataclasses.dataclass(kw_only=True, slots=True)
class ToolResult(Event):
    """``tool.result``: the client's answer to a ``tool.call`` (result is a string)."""

    type: ClassVar[str] = "tool.result"
    call_id: str
    result: str
    is_error: bool | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class ReplyCreate(Event):
    """``reply.create``: make the agent reply now, with optional instructions."""

    type: ClassVar[str] = "reply.create"
    instructions: str | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class ReplyCancel(Event):
    """``reply.cancel`` (SDK only): stop a reply."""

    type: ClassVar[str] = "reply.cancel"
    reply_id: str | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class ConversationMessage(Event):
    """``conversation.message``: add context (role user or system) without a reply."""

    type: ClassVar[str] = "conversation.message"
    role: str
    content: str

    def _fixup(self) -> None:
        if self.role not in ("user", "system"):
            raise ProtocolError(
                "Invalid message format for type 'conversation.message': role must be "
                "'user' or 'system'"
            )


@dataclasses.dataclass(kw_only=True, slots=True)
class SessionEnd(Event):
    """``session.end``: end the session cleanly (no resume)."""

    type: ClassVar[str] = "session.end"


# -- server events -------------------------------------------------------------------------
@dataclasses.dataclass(kw_only=True, slots=True)
class SessionReady(Event):
    """``session.ready``: the session is configured; audio may flow."""

    type: ClassVar[str] = "session.ready"
    session_id: str
    expires_at: float | None = None
    resume_token: str | None = None
    config: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never show the resume token
        token = "***" if self.resume_token else None
        return f"SessionReady(session_id={self.session_id!r}, resume_token={token!r})"


@dataclasses.dataclass(kw_only=True, slots=True)
class SessionUpdated(Event):
    """``session.updated``: an update was applied; ``config`` is the resolved config."""

    type: ClassVar[str] = "session.updated"
    config: dict[str, Any] | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class SessionEnded(Event):
    """``session.ended``: the last event of a clean teardown."""

    type: ClassVar[str] = "session.ended"
    session_duration_seconds: float | None = None
    audio_duration_seconds: float | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class SessionError(Event):
    """``session.error`` (alias ``error``): ``code`` is lower-cased."""

    type: ClassVar[str] = "session.error"
    code: str = ""
    message: str | None = None
    param: str | None = None
    session_id: str | None = None

    def _fixup(self) -> None:
        self.code = self.code.lower()


@dataclasses.dataclass(kw_only=True, slots=True)
class InputSpeechStarted(Event):
    """``input.speech.started``: the user began a turn (or a barge-in was decided)."""

    type: ClassVar[str] = "input.speech.started"


@dataclasses.dataclass(kw_only=True, slots=True)
class InputSpeechStopped(Event):
    """``input.speech.stopped``: the end of the user's turn was committed."""

    type: ClassVar[str] = "input.speech.stopped"


@dataclasses.dataclass(kw_only=True, slots=True)
class TranscriptUserDelta(Event):
    """``transcript.user.delta``: the whole user transcript so far (replace, not append)."""

    type: ClassVar[str] = "transcript.user.delta"
    item_id: str | None = None
    text: str


@dataclasses.dataclass(kw_only=True, slots=True)
class TranscriptUser(Event):
    """``transcript.user``: the final text of a user turn."""

    type: ClassVar[str] = "transcript.user"
    item_id: str | None = None
    text: str


@dataclasses.dataclass(kw_only=True, slots=True)
class ReplyStarted(Event):
    """``reply.started``: the agent begins a reply."""

    type: ClassVar[str] = "reply.started"
    reply_id: str
    item_id: str | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class ReplyAudio(Event):
    """``reply.audio``: base64 audio of a reply in ``data`` (not ``audio``)."""

    type: ClassVar[str] = "reply.audio"
    reply_id: str | None = None
    data: str

    def audio_bytes(self) -> bytes:
        """The decoded audio; ProtocolError on broken base64."""
        return decode_audio(self.data, "data")


@dataclasses.dataclass(kw_only=True, slots=True)
class ReplyDone(Event):
    """``reply.done``: a reply ended; a missing status means ``completed``."""

    type: ClassVar[str] = "reply.done"
    reply_id: str | None = None
    status: str | None = "completed"

    def _fixup(self) -> None:
        self.status = (self.status or "completed").lower()


@dataclasses.dataclass(kw_only=True, slots=True)
class ReplyError(Event):
    """``reply.error`` (newer SDK only): a reply failed."""

    type: ClassVar[str] = "reply.error"
    reply_id: str | None = None
    code: str | None = None
    message: str | None = None
    retryable: bool | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class TranscriptAgentDelta(Event):
    """``transcript.agent.delta``: the next word of a reply, with its audio times in ms."""

    type: ClassVar[str] = "transcript.agent.delta"
    reply_id: str | None = None
    item_id: str | None = None
    delta: str
    start_ms: float | None = None
    end_ms: float | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class TranscriptAgent(Event):
    """``transcript.agent``: the reply's full text (trimmed when interrupted)."""

    type: ClassVar[str] = "transcript.agent"
    reply_id: str | None = None
    item_id: str | None = None
    text: str
    interrupted: bool | None = False


@dataclasses.dataclass(kw_only=True, slots=True)
class ToolCall(Event):
    """``tool.call``: the agent asks the client to run a tool (``arguments`` is a dict)."""

    type: ClassVar[str] = "tool.call"
    call_id: str
    name: str
    arguments: Any = None

    def _fixup(self) -> None:
        args = self.arguments
        if args is None and "args" in self.extra:
            args = self.extra.pop("args")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except (ValueError, RecursionError):
                raise ProtocolError(
                    "Invalid message format for type 'tool.call': arguments is not JSON"
                ) from None
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ProtocolError(
                "Invalid message format for type 'tool.call': arguments must be an object"
            )
        self.arguments = args


@dataclasses.dataclass(kw_only=True, slots=True)
class UnknownEvent(Event):
    """An event of a type this version does not know; ``data`` is the whole dict."""

    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The event's ``type``."""
        return str(self.data.get("type", ""))

    def to_dict(self) -> dict[str, Any]:
        """The original dict."""
        return dict(self.data)


CLIENT_EVENTS: dict[str, type[Event]] = {
    c.type: c
    for c in (
        SessionUpdate,
        SessionResume,
        InputAudio,
        ToolResult,
        ReplyCreate,
        ReplyCancel,
        ConversationMessage,
        SessionEnd,
    )
}
SERVER_EVENTS: dict[str, type[Event]] = {
    c.type: c
    for c in (
        SessionReady,
        SessionUpdated,
        SessionEnded,
        SessionError,
        InputSpeechStarted,
        InputSpeechStopped,
        TranscriptUserDelta,
        TranscriptUser,
        ReplyStarted,
        ReplyAudio,
        ReplyDone,
        ReplyError,
        TranscriptAgentDelta,
        TranscriptAgent,
        ToolCall,
    )
}
SERVER_EVENTS["error"] = SessionError
for _cls in (*CLIENT_EVENTS.values(), *SERVER_EVENTS.values()):
    _schema(_cls)  # derived once, at import (other subclasses: on first use)
del _cls


def _usual_reply_audio(obj: Mapping[str, Any]) -> ReplyAudio | None:
    """A ``reply.audio`` with only its usual fields, of the usual types — most frames a client
    receives — built directly; ``None`` sends anything else through the general parser, which
    makes the same event (tests/protocol/test_events.py checks they agree)."""
    data, reply_id, stamp = obj.get("data"), obj.get("reply_id"), obj.get("timestamp")
    if type(data) is not str or type(reply_id) is not str:
        return None
    if stamp is None:
        if len(obj) != 3:  # an explicit null timestamp or other fields: the general path
            return None
    elif type(stamp) is not float or len(obj) != 4:
        return None
    return ReplyAudio(data=data, reply_id=reply_id, timestamp=stamp)


def _parse(table: dict[str, type[Event]], data: str | bytes | Mapping[str, Any]) -> Event:
    obj = loads(data)
    if obj["type"] == "reply.audio" and table is SERVER_EVENTS:
        event = _usual_reply_audio(obj)
        if event is not None:
            return event
    cls = table.get(obj["type"])
    if cls is None:
        unknown = UnknownEvent(data=obj)
        unknown.timestamp = None
        return unknown
    return cls._from(obj)


def parse_server_event(data: str | bytes | Mapping[str, Any]) -> Event:
    """Parse a server frame; unknown types give :class:`UnknownEvent`.

    Raises
    ------
    ProtocolError
        For non-JSON, non-objects, a missing ``type``, missing or wrong-typed fields.
    """
    return _parse(SERVER_EVENTS, data)


def parse_client_event(data: str | bytes | Mapping[str, Any]) -> Event:
    """Parse a client frame; unknown types give :class:`UnknownEvent` (see above)."""
    return _parse(CLIENT_EVENTS, data)
