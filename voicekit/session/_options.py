"""Checking what ``vk.Session(...)`` and ``Session.update(...)`` are given.

Runtime layer, private. The session's own arguments (backend, URL, timeout, token, log
directory, tools as Python functions) are checked here; the agent's configuration is checked
by :class:`voicekit.protocol.SessionConfig`, which is the one authority on it (keyterms, voice,
turn detection, encodings and their sample rates). Every problem is a
:class:`voicekit.ConfigError` naming the argument and the fix.

Must not import websockets, analysis or widgets.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from voicekit.errors import ConfigError
from voicekit.protocol.config import ENCODING_RATES, AudioFormat, SessionConfig, TurnDetection
from voicekit.tools import Tool, as_tool

__all__ = [
    "AGENT_FIXED",
    "UPDATABLE",
    "check_agent_binding",
    "check_arguments",
    "make_config",
    "make_tools",
    "updated_config",
]

UPDATABLE = (
    "system_prompt",
    "keyterms",
    "turn_detection",
    "transcription_mode",
    "tools",
    "voice",
    "greeting",
)

# Session arguments a stored agent fixes: the service takes agent_id only alone in the first
# session.update (live observations: agent_id with inline fields is refused, close 1008), and
# these cannot change afterwards. The mutable ones (system_prompt, tools, keyterms,
# turn_detection, transcription_mode) are sent as a second update after session.ready.
AGENT_FIXED = ("voice", "greeting", "input_format", "output_format")


def check_arguments(
    *,
    backend: str,
    url: object,
    connect_timeout: object,
    token: object,
    log_dir: object,
    agent_id: object = None,
    tool_results: object = "after_reply_done",
    on_resume_failure: object = "restart",
) -> None:
    """Raise ConfigError for the first of the session's own arguments that is wrong."""
    if agent_id is not None and not (isinstance(agent_id, str) and agent_id.strip()):
        raise ConfigError(
            f"agent_id must be a stored agent's id such as 'agent_3f2a...' (vk.agents.list() "
            f"shows them), got {agent_id!r}",
            field="agent_id",
        )
    if tool_results not in ("after_reply_done", "immediate"):
        raise ConfigError(
            f"tool_results ({tool_results!r}) must be 'after_reply_done' (held until the "
            "reply that asked is done, the documented rule) or 'immediate' (sent as soon as "
            "the tool returns: the answer comes about 1 s sooner)",
            field="tool_results",
        )
    if on_resume_failure not in ("restart", "error"):
        raise ConfigError(
            f"on_resume_failure ({on_resume_failure!r}) must be 'restart' (open a fresh "
            "session carrying the conversation in its system prompt) or 'error' (the session "
            "ends with the server's error)",
            field="on_resume_failure",
        )
    if backend not in ("auto", "local", "assemblyai"):
        raise ConfigError(
            f"backend ({backend!r}) must be 'auto', 'local' or 'assemblyai'; "
            "or pass url=... for another agent",
            field="backend",
        )
    if url is not None and not (
        isinstance(url, str) and url.startswith(("ws://", "wss://")) and len(url) > 6
    ):
        raise ConfigError(
            "url must be a WebSocket address starting with ws:// or wss://, e.g. "
            "ws://127.0.0.1:8765/v1/ws (python -m voicekit serve prints one); got "
            + (f"one starting {url[:6]!r}" if isinstance(url, str) else type(url).__name__),
            field="url",
        )
    if not (
        isinstance(connect_timeout, (int, float))
        and not isinstance(connect_timeout, bool)
        and 0 < connect_timeout <= 300
    ):
        raise ConfigError(
            f"connect_timeout ({connect_timeout!r}) must be a number of seconds in (0, 300], "
            "e.g. 10",
            field="connect_timeout",
        )
    if token is not None and not (isinstance(token, str) or callable(token)):
        raise ConfigError(
            f"token must be a temporary token (str) or a function returning a fresh one, "
            f"got {type(token).__name__}",
            field="token",
        )
    if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
        raise ConfigError(
            f"log_dir must be a directory path (str or pathlib.Path) or None for no log, "
            f"got {type(log_dir).__name__}",
            field="log_dir",
        )


def check_agent_binding(agent_id: str | None, given: Mapping[str, object]) -> None:
    """ConfigError when a session bound to ``agent_id`` is also given fixed inline fields.

    ``given`` maps the Session arguments of :data:`AGENT_FIXED` to their values; a value
    other than ``None`` (formats: other than ``"audio/pcm"``) is a conflict.
    """
    if agent_id is None:
        return
    conflicts = [
        name
        for name in AGENT_FIXED
        if given.get(name) is not None
        and not (name.endswith("_format") and given.get(name) == "audio/pcm")
    ]
    if conflicts:
        raise ConfigError(
            f"agent_id={agent_id!r} cannot be combined with {', '.join(conflicts)}: a stored "
            "agent fixes them (the service refuses agent_id beside inline fields); change "
            "them on the agent (vk.agents) or drop agent_id for an inline session. "
            "system_prompt, tools, keyterms, turn_detection and transcription_mode may be "
            "given: they are sent as an update once the session is ready",
            field=conflicts[0],
        )


def make_tools(tools: object) -> list[Tool]:
    """Python functions (or Tools) as Tools; ConfigError for anything but a list of them."""
    if callable(tools) or isinstance(tools, str) or not isinstance(tools, Sequence):
        raise ConfigError(
            f"tools must be a list of functions, e.g. tools=[get_weather]; got "
            f"{type(tools).__name__}",
            field="tools",
        )
    return [as_tool(t) for t in tools]


def audio_format(field: str, encoding: object) -> AudioFormat:
    """The wire format of ``encoding`` at its sample rate (the protocol's table)."""
    if encoding not in ENCODING_RATES:
        raise ConfigError(
            f"{field} ({encoding!r}) must be one of {sorted(ENCODING_RATES)}", field=field
        )
    assert isinstance(encoding, str)
    return AudioFormat(encoding, ENCODING_RATES[encoding])


def make_config(
    *,
    voice: str | None,
    system_prompt: str | None,
    greeting: str | None,
    keyterms: Sequence[str] | None,
    turn_detection: Any,
    tools: Sequence[Tool],
    input_format: str,
    output_format: str,
    transcription_mode: str | None = None,
) -> SessionConfig:
    """The agent's configuration of a new session (validated by SessionConfig)."""
    if voice is not None:
        from voicekit.protocol.voices import check_voice

        check_voice(voice)
    return SessionConfig(
        system_prompt=system_prompt,
        greeting=greeting,
        voice=voice,
        keyterms=keyterms if keyterms is None or isinstance(keyterms, str) else list(keyterms),  # type: ignore[arg-type]  # a str is refused by SessionConfig, naming the fix
        turn_detection=turn_detection,
        tools=[t.definition() for t in tools] or None,
        input_format=audio_format("input_format", input_format),
        output_format=audio_format("output_format", output_format),
        transcription_mode=transcription_mode,
    )


def updated_config(
    config: SessionConfig, changes: Mapping[str, Any]
) -> tuple[SessionConfig, list[Tool] | None]:
    """``config`` with ``changes`` applied (turn detection merged field by field).

    Returns the new config and, when ``tools`` changed, the new Tools.
    """
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise ConfigError(
            f"update() got unknown field(s) {unknown}; it accepts {sorted(UPDATABLE)}",
            field=unknown[0],
        )
    fields: dict[str, Any] = {}
    tools: list[Tool] | None = None
    for key, value in changes.items():
        if key == "turn_detection":
            if isinstance(value, Mapping):
                value = TurnDetection(**value)
            old = config.turn_detection or TurnDetection()
            merged = {
                f.name: getattr(value, f.name)
                for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None
            }
            value = dataclasses.replace(old, **merged)
        elif key == "tools":
            tools = make_tools(value)
            value = [t.definition() for t in tools] or None
        elif key == "keyterms" and value is not None and not isinstance(value, str):
            value = list(value)
        fields[key] = value
    return dataclasses.replace(config, **fields), tools
