"""The Voice Agent protocol, pure: events, configuration, voices and state machines.

No I/O and no asyncio here: bytes and dicts in, events and messages out. The client
session, the stand-in agent and the tests drive the same state machines, so each
sequencing rule is written once. Must not import anything above this layer.
"""

from __future__ import annotations

from voicekit.protocol.client import AfterClose, ClientProtocol, ConnectionState, backoff_delays
from voicekit.protocol.config import (
    IMMUTABLE_FIELDS,
    MUTABLE_FIELDS,
    AudioFormat,
    SessionConfig,
    TurnDetection,
    diff,
    merge,
    validate_tool,
)
from voicekit.protocol.events import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    Event,
    UnknownEvent,
    parse_client_event,
    parse_server_event,
)
from voicekit.protocol.server import Action, ServerProtocol, config_echo
from voicekit.protocol.voices import (
    CATALOGUE,
    DEFAULT_VOICE,
    Voice,
    check_voice,
    get_voice,
    voice_ids,
    voices,
)

__all__ = [
    "CATALOGUE",
    "CLIENT_EVENTS",
    "DEFAULT_VOICE",
    "IMMUTABLE_FIELDS",
    "MUTABLE_FIELDS",
    "SERVER_EVENTS",
    "Action",
    "AfterClose",
    "AudioFormat",
    "ClientProtocol",
    "ConnectionState",
    "Event",
    "ServerProtocol",
    "SessionConfig",
    "TurnDetection",
    "UnknownEvent",
    "Voice",
    "backoff_delays",
    "check_voice",
    "config_echo",
    "diff",
    "get_voice",
    "merge",
    "parse_client_event",
    "parse_server_event",
    "validate_tool",
    "voice_ids",
    "voices",
]
