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

__all__ = ["UPDATABLE", "check_arguments", "make_config", "make_tools", "updated_config"]

UPDATABLE = ("system_prompt", "keyterms", "turn_detection", "tools", "voice", "greeting")


def check_arguments(
    *,
    backend: str,
    url: object,
    connect_timeout: object,
    token: object,
    log_dir: object,
) -> None:
    """Raise ConfigError for the first of the session's own arguments that is wrong."""
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
