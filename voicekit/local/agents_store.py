"""Stored agents of the stand-in agent: validated records, kept in memory per agent.

``voicekit.local`` layer, pure: no I/O, no asyncio. :class:`AgentStore` is what
``POST/GET/DELETE /v1/agents`` (:mod:`voicekit.local.rest`) read and write, and what a
session's first ``session.update {"agent_id": ...}`` binds to
(:meth:`AgentStore.session_for`, the protocol's ``agents=`` lookup hook). Every record lives
as long as its :class:`voicekit.local.LocalAgent`; nothing is written to disk. Loop thread
only (the server's one asyncio loop), so no lock.

A record, as created (live observations §4; the hosted service's field names)::

    {"id": "agent_<32 hex>", "name": str, "system_prompt": str, "greeting": str | None,
     "voice": {"voice_id": str}, "tools": [tool, ...], "llm": [object, ...],
     "input": object | None, "output": object | None,
     "created_at": "2026-09-24T10:15:02.123Z", "updated_at": "..."}

``created_at`` / ``updated_at`` are ISO-8601 UTC strings with milliseconds and a ``Z``
suffix (the reference gives no format; this one sorts as text and parses with
``datetime.fromisoformat``). ``input`` / ``output`` are the optional ``session.input`` /
``session.output`` objects of an inline session (``output.voice`` excluded: the voice is
``voice.voice_id``). ``llm`` is stored and returned but never used: the stand-in's brain
answers every reply.

Tools are the flat ``session.tools[]`` schema plus an optional ``http`` object that makes
the tool server-side (:mod:`voicekit.local.http_tools`)::

    "http": {"url": "http://127.0.0.1:8080/lookup", "http_method": "POST",
             "headers": [{"name": "X-Api-Key", "value": "..."}]}

``http_method`` (alias ``method``) is one of GET, POST, PUT, PATCH, DELETE (default POST).
Header values are kept for the calls the agent makes, and omitted on every read
(:meth:`AgentStore.public`), as on the hosted service.
"""

from __future__ import annotations

import copy
import datetime
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from voicekit.errors import ConfigError
from voicekit.protocol.config import SessionConfig

__all__ = ["HTTP_METHODS", "AgentStore", "AgentValidationError"]

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_FIELDS = ("name", "system_prompt", "greeting", "voice", "tools", "llm", "input", "output")
_REQUIRED = ("name", "system_prompt", "voice")
MAX_AGENTS = 1000  # a runaway test loop gets an error, not an agent that eats memory


class AgentValidationError(ValueError):
    """A stored-agent body the store refuses.

    Attributes
    ----------
    param : str or None
        The offending field's path (``"voice"``, ``"tools[0].http.url"``), or None.
    """

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def _now() -> str:
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _validate_http(http: Any, where: str) -> dict[str, Any]:
    """The ``http`` object of a tool, normalised to ``{url, http_method, headers}``."""
    if not isinstance(http, Mapping):
        raise AgentValidationError(
            f"{where} must be an object {{url, http_method, headers}}", where
        )
    url = http.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise AgentValidationError(
            f"{where}.url ({url!r}) must be an http:// or https:// URL", f"{where}.url"
        )
    method = http.get("http_method", http.get("method", "POST"))
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise AgentValidationError(
            f"{where}.http_method ({method!r}) must be one of {', '.join(HTTP_METHODS)}",
            f"{where}.http_method",
        )
    headers = http.get("headers") or []
    if not isinstance(headers, list):
        raise AgentValidationError(
            f"{where}.headers must be a list of {{name, value}} objects", f"{where}.headers"
        )
    clean = []
    for i, header in enumerate(headers):
        ok = (
            isinstance(header, Mapping)
            and isinstance(header.get("name"), str)
            and header["name"].strip()
            and isinstance(header.get("value"), str)
            and not any(c in header["name"] + header["value"] for c in "\r\n")
        )
        if not ok:
            raise AgentValidationError(
                f"{where}.headers[{i}] must be {{name, value}} with string values "
                "and no line breaks",
                f"{where}.headers[{i}]",
            )
        clean.append({"name": header["name"].strip(), "value": header["value"]})
    return {"url": url, "http_method": method.upper(), "headers": clean}


class AgentStore:
    """The stored agents of one stand-in agent (loop thread only).

    Parameters
    ----------
    voices : collection of str
        The voice ids a stored agent may use: the same the WebSocket side accepts.
    """

    def __init__(self, voices: Collection[str]) -> None:
        self.voices = set(voices)
        self._agents: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def validate(self, body: Any) -> dict[str, Any]:
        """A record's fields (without id and times) from a ``POST /v1/agents`` body.

        Raises
        ------
        AgentValidationError
            Naming the field (``param``) and the fix.
        """
        if not isinstance(body, Mapping):
            raise AgentValidationError("the request body must be a JSON object", None)
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            raise AgentValidationError(
                f"unknown field(s) {unknown}; an agent has {', '.join(_FIELDS)}", unknown[0]
            )
        for name in _REQUIRED:
            if body.get(name) is None:
                raise AgentValidationError(f"{name} is required", name)
        for name in ("name", "system_prompt"):
            if not isinstance(body[name], str) or not body[name].strip():
                raise AgentValidationError(f"{name} must be a non-empty string", name)
        greeting = body.get("greeting")
        if greeting is not None and not isinstance(greeting, str):
            raise AgentValidationError("greeting must be a string (omit it for none)", "greeting")
        voice = body["voice"]
        voice_id = voice.get("voice_id") if isinstance(voice, Mapping) else None
        if not isinstance(voice_id, str):
            raise AgentValidationError('voice must be an object {"voice_id": "alba"}', "voice")
        if voice_id not in self.voices:
            raise AgentValidationError(
                f"Invalid voice '{voice_id}'. Must be one of: {', '.join(sorted(self.voices))}",
                "voice",
            )
        llm = body.get("llm") or []
        if not isinstance(llm, list) or not all(isinstance(x, Mapping) for x in llm):
            raise AgentValidationError("llm must be a list of objects", "llm")
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            raise AgentValidationError("tools must be a list of tool definitions", "tools")
        tools = [dict(t) if isinstance(t, Mapping) else t for t in tools]
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("http") is not None:
                tool["http"] = _validate_http(tool["http"], f"tools[{i}].http")
        for name in ("input", "output"):
            if body.get(name) is not None and not isinstance(body[name], Mapping):
                raise AgentValidationError(f"{name} must be an object", name)
        if isinstance(body.get("output"), Mapping) and "voice" in body["output"]:
            raise AgentValidationError(
                "output.voice is not a stored-agent field; use voice.voice_id", "output.voice"
            )
        fields: dict[str, Any] = {
            "name": body["name"],
            "system_prompt": body["system_prompt"],
            "greeting": greeting,
            "voice": {"voice_id": voice_id},
            "tools": tools,
            "llm": [dict(x) for x in llm],
            "input": body.get("input"),
            "output": body.get("output"),
        }
        try:  # the checks a session.update gets, so that binding to it cannot fail later
            SessionConfig.from_dict(self._session(fields))
        except ConfigError as exc:
            raise AgentValidationError(str(exc), exc.field) from None
        return copy.deepcopy(fields)

    def create(self, body: Any) -> dict[str, Any]:
        """Validate and store a new agent; returns its full record (a copy).

        Raises
        ------
        AgentValidationError
            For a body :meth:`validate` refuses, or when the store is full.
        """
        fields = self.validate(body)
        if len(self._agents) >= MAX_AGENTS:
            raise AgentValidationError(
                f"at most {MAX_AGENTS} agents can be stored; delete some first", None
            )
        agent_id = "agent_" + secrets.token_hex(16)
        now = _now()
        self._agents[agent_id] = {"id": agent_id, **fields, "created_at": now, "updated_at": now}
        return self.public(agent_id)

    def get(self, agent_id: str) -> dict[str, Any] | None:
        """The full stored record (header values included), or None; do not modify it."""
        return self._agents.get(agent_id)

    def public(self, agent_id: str) -> dict[str, Any]:
        """The record as ``GET /v1/agents/{id}`` shows it: HTTP tool header values omitted."""
        record = copy.deepcopy(self._agents[agent_id])
        for tool in record["tools"]:
            http = tool.get("http") if isinstance(tool, dict) else None
            if isinstance(http, dict):
                http["headers"] = [{"name": h["name"]} for h in http.get("headers", [])]
        return record

    def summaries(self) -> list[dict[str, Any]]:
        """``{id, name, created_at, updated_at}`` of every agent, oldest first."""
        keys = ("id", "name", "created_at", "updated_at")
        return [{k: a[k] for k in keys} for a in self._agents.values()]

    def delete(self, agent_id: str) -> bool:
        """Forget an agent; False when there was none with that id."""
        return self._agents.pop(agent_id, None) is not None

    def session_for(self, agent_id: str) -> dict[str, Any] | None:
        """The stored agent as the ``session`` object of a first ``session.update``.

        The protocol's ``agents=`` lookup hook: a session bound with
        ``{"agent_id": ...}`` is configured exactly as if the client had sent these
        inline fields (system prompt, greeting, voice, tools with their ``http`` objects,
        input/output). None for an unknown id.
        """
        record = self._agents.get(agent_id)
        return copy.deepcopy(self._session(record)) if record is not None else None

    @staticmethod
    def _session(fields: Mapping[str, Any]) -> dict[str, Any]:
        session: dict[str, Any] = {"system_prompt": fields["system_prompt"]}
        if fields.get("greeting") is not None:
            session["greeting"] = fields["greeting"]
        output = dict(fields.get("output") or {})
        output.setdefault("voice", fields["voice"]["voice_id"])
        session["output"] = output
        if fields.get("input"):
            session["input"] = dict(fields["input"])
        if fields.get("tools"):
            session["tools"] = list(fields["tools"])
        return session
