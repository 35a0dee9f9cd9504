"""Stored agents: create, list, read and delete agents kept by the service (``/v1/agents``).

Runtime layer. A stored agent holds a configuration (prompt, greeting, voice, tools,
server-side ``http`` tools) under an id ``agent_<32 hex>``; a session binds to it with
``vk.Session(agent_id=...)``. The REST calls go to the same service a session with the same
arguments would talk to, with the same key (:func:`voicekit.session.resolve_backend`):

- ``api_key=`` or ``ASSEMBLYAI_API_KEY``: the hosted service, ``https://agents.assemblyai.com``;
- no key (``backend="local"``): the embedded stand-in agent, which keeps stored agents in
  memory for as long as it runs (started on first use, like a local session's);
- ``url=`` (a session's WebSocket address, e.g. ``ws://127.0.0.1:8765/v1/ws``): the HTTP
  service on the same host and port (``ws`` -> ``http``, ``wss`` -> ``https``).

Shapes follow live observations: ``POST /v1/agents`` answers 201 with the record,
``GET /v1/agents`` ``{"agents": [{id, name, created_at, updated_at}], "has_more",
"response_metadata": {"next_cursor"}}``, ``DELETE`` 204; errors are
``{"code", "message", "param", "request_id"}``, raised here as
:class:`voicekit.ServerError` (``code``, ``param``) with a message that says what to do.
Header values of ``http`` tools are never returned by the service.

Standard library HTTP (``urllib.request``, through :mod:`voicekit._rest`, shared with
:mod:`voicekit.hosted`) only. Keys go into the ``Authorization`` header, never into a
message or a repr.

Examples
--------
>>> a = vk.agents.create(name="Concierge", system_prompt="You book tables.", voice="alba",
...                      tools=[book_table])
>>> [x.name for x in vk.agents.list()]
['Concierge']
>>> s = vk.Session(agent_id=a.id, audio_in="mic", audio_out="speaker")
>>> vk.agents.delete(a.id)
"""

from __future__ import annotations

import builtins
import dataclasses
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import voicekit._rest as _rest
from voicekit._rest import DEFAULT_TIMEOUT_S, HOSTED_API
from voicekit.errors import ConfigError

__all__ = ["HOSTED_API", "Agent", "create", "delete", "get", "list"]

_MAX_PAGES = 100

# what to do after the service's error codes (appended to its message)
_ADVICE = {"agent_not_found": "vk.agents.list() shows the agents there are"}


@dataclasses.dataclass(frozen=True)
class Agent:
    """A stored agent, as the service returns it.

    Attributes
    ----------
    id : str
        ``agent_<32 hex>``; pass it as ``vk.Session(agent_id=...)``.
    name : str
        Its name.
    system_prompt : str or None
        Its instructions (``None`` in :func:`list`'s summaries).
    greeting : str or None
        Spoken when a session starts; ``None`` for none (or in a summary).
    voice : str or None
        The voice id (the service stores ``{"voice_id": ...}``; ``None`` in a summary).
    tools : tuple of dict
        Flat tool definitions; server-side tools carry an ``http`` object, whose header
        values the service never returns. Empty in a summary.
    created_at, updated_at : str or None
        ISO-8601 UTC times as the service gives them.
    """

    id: str
    name: str
    system_prompt: str | None = None
    greeting: str | None = None
    voice: str | None = None
    tools: tuple[dict[str, Any], ...] = ()
    created_at: str | None = None
    updated_at: str | None = None

    def __hash__(self) -> int:  # the tool dicts are not hashable; the id and version are
        return hash((self.id, self.updated_at))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Agent:
        """An :class:`Agent` from the service's JSON record (or a list summary)."""
        voice = record.get("voice")
        if isinstance(voice, Mapping):
            voice = voice.get("voice_id")
        tools = record.get("tools") or []
        return cls(
            id=str(record.get("id", "")),
            name=str(record.get("name", "")),
            system_prompt=record.get("system_prompt"),
            greeting=record.get("greeting"),
            voice=voice if isinstance(voice, str) else None,
            tools=tuple(dict(t) for t in tools if isinstance(t, Mapping)),
            created_at=record.get("created_at"),
            updated_at=record.get("updated_at"),
        )

    @property
    def http_tools(self) -> builtins.list[str]:
        """Names of the agent's server-side (``http``) tools: the service runs them itself;
        a session only hears about them (informational ``tool.call``)."""
        return [str(t.get("name")) for t in self.tools if t.get("http")]


# -- the service's address: voicekit._rest ------------------------------------------------------
def _api(
    backend: str, url: str | None, api_key: str | None, timeout: float, start: bool = True
) -> _rest.Api | None:
    return _rest.api(backend, url, api_key, timeout, start, what="the stored-agents API")


def _request(
    api: _rest.Api,
    method: str,
    path: str,
    body: Any = None,
    query: Mapping[str, str] | None = None,
) -> Any:
    return _rest.request(api, method, path, body, query, advice=_ADVICE)


# -- tools -------------------------------------------------------------------------------------
def _tool_definitions(tools: object) -> builtins.list[dict[str, Any]]:
    """Python callables (schema from signature and docstring), Tools or dicts, as the
    flat definitions a stored agent keeps; dicts may carry an ``http`` object."""
    from voicekit.protocol.config import validate_tool
    from voicekit.tools import Tool, as_tool

    if (
        callable(tools)
        or isinstance(tools, (str, bytes, Mapping))
        or not isinstance(tools, Sequence)
    ):
        raise ConfigError(
            "tools must be a list of functions or tool definitions, e.g. tools=[get_weather]; "
            f"got {type(tools).__name__}",
            field="tools",
        )
    out: builtins.list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, Mapping):
            checked = {k: v for k, v in tool.items() if k != "http"}
            validate_tool(checked, f"tools[{i}]")
            definition = {"type": "function", **dict(tool)}
            http = tool.get("http")
            if http is not None and not (isinstance(http, Mapping) and http.get("url")):
                raise ConfigError(
                    f"tools[{i}].http must be an object with a url, e.g. "
                    '{"url": "https://example.com/lookup", "http_method": "POST"}',
                    field=f"tools[{i}].http",
                )
            out.append(definition)
        elif isinstance(tool, Tool) or callable(tool):
            out.append(as_tool(tool).definition())
        else:
            raise ConfigError(
                f"tools[{i}] must be a function or a tool definition (dict), got "
                f"{type(tool).__name__}",
                field=f"tools[{i}]",
            )
    names = [t["name"] for t in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"tool names must be unique, got {names}", field="tools")
    return out


def _check_id(agent_id: object) -> str:
    if not (isinstance(agent_id, str) and agent_id.strip() and "/" not in agent_id):
        raise ConfigError(
            f"agent_id must be a stored agent's id such as 'agent_3f2a...' "
            f"(vk.agents.list() shows them), got {agent_id!r}",
            field="agent_id",
        )
    return agent_id.strip()


# -- the calls -------------------------------------------------------------------------------
def create(
    name: str,
    system_prompt: str,
    voice: str | None = None,
    greeting: str | None = None,
    tools: Sequence[Callable[..., Any] | Mapping[str, Any]] = (),
    *,
    backend: str = "auto",
    url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Agent:
    """Store a new agent (``POST /v1/agents``).

    Parameters
    ----------
    name : str
        A name to find it by.
    system_prompt : str
        Its instructions (required by the service).
    voice : str, optional
        A voice id (``vk.voices()``); default: the catalogue's default voice.
    greeting : str, optional
        Spoken verbatim when a session starts; omit it for a listen-first agent.
    tools : sequence of callables or dicts
        Python functions (the schema comes from the signature and docstring, as for
        ``vk.Session(tools=...)``; the session that binds to the agent must offer the same
        functions to answer them), or flat tool definitions as dicts, including server-side
        tools with an ``http`` object ``{"url", "http_method", "headers": [{"name",
        "value"}]}`` that the service calls itself.
    backend, url, api_key
        Which service, as for :class:`voicekit.Session`.
    timeout : float
        Seconds to wait for the answer.

    Returns
    -------
    Agent
        The stored record (with its ``id``).

    Raises
    ------
    ConfigError
        For arguments that are wrong before anything is sent.
    ServerError
        For the service's refusal (``code`` ``"validation_error"`` with ``param``, e.g. an
        unknown voice; ``"unauthorized"``).
    voicekit.ConnectionError
        When the service cannot be reached.
    """
    from voicekit.protocol.voices import DEFAULT_VOICE

    for field, value in (("name", name), ("system_prompt", system_prompt)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{field} must be a non-empty string", field=field)
    if greeting is not None and not isinstance(greeting, str):
        raise ConfigError("greeting must be a string (omit it for none)", field="greeting")
    if voice is not None and (not isinstance(voice, str) or not voice.strip()):
        raise ConfigError(
            f"voice ({voice!r}) must be a voice id such as 'alba'; see vk.voices()",
            field="voice",
        )
    body: dict[str, Any] = {
        "name": name,
        "system_prompt": system_prompt,
        "voice": {"voice_id": voice or DEFAULT_VOICE},
    }
    if greeting is not None:
        body["greeting"] = greeting
    definitions = _tool_definitions(tools)
    if definitions:
        body["tools"] = definitions
    api = _api(backend, url, api_key, timeout)
    assert api is not None
    record = _request(api, "POST", "/v1/agents", body)
    return Agent.from_record(record if isinstance(record, Mapping) else {})


def list(  # vk.agents.list() is the fixed public name (builtins.list inside)
    *,
    backend: str = "auto",
    url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    start: bool = True,
) -> builtins.list[Agent]:
    """The stored agents (``GET /v1/agents``), oldest first, every page.

    The service lists summaries: each :class:`Agent` has ``id``, ``name`` and the times;
    :func:`get` reads one whole. Further pages (``has_more``) are asked for with
    ``?cursor=<next_cursor>``, an assumption: live observations only ever saw one page.

    Parameters and errors as for :func:`create`; with ``start=False`` an embedded stand-in
    agent that is not running is not started for the question (it has no stored agents):
    the answer is ``[]`` (for views that list on display, such as ``vk.AgentPanel``).
    """
    api = _api(backend, url, api_key, timeout, start=start)
    return [] if api is None else _list(api)


def _list(api: _rest.Api) -> builtins.list[Agent]:
    agents: builtins.list[Agent] = []
    query: dict[str, str] = {}
    for _ in range(_MAX_PAGES):
        page = _request(api, "GET", "/v1/agents", query=query)
        if not isinstance(page, Mapping):
            break
        agents += [Agent.from_record(a) for a in page.get("agents") or [] if isinstance(a, Mapping)]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            break
        query = {"cursor": str(cursor)}
    return agents


def get(
    agent_id: str,
    *,
    backend: str = "auto",
    url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Agent:
    """One stored agent, whole (``GET /v1/agents/{id}``).

    Raises
    ------
    ServerError
        ``code`` ``"agent_not_found"`` for an id the service does not know.
    """
    agent_id = _check_id(agent_id)
    api = _api(backend, url, api_key, timeout)
    assert api is not None
    record = _request(api, "GET", f"/v1/agents/{urllib.parse.quote(agent_id)}")
    return Agent.from_record(record if isinstance(record, Mapping) else {})


def delete(
    agent_id: str,
    *,
    backend: str = "auto",
    url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Delete a stored agent (``DELETE /v1/agents/{id}``; the service answers 204).

    Raises
    ------
    ServerError
        ``code`` ``"agent_not_found"`` for an id the service does not know (or no longer:
        deleting twice).
    """
    agent_id = _check_id(agent_id)
    api = _api(backend, url, api_key, timeout)
    assert api is not None
    _request(api, "DELETE", f"/v1/agents/{urllib.parse.quote(agent_id)}")
