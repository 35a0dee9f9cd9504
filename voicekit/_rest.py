"""The REST plumbing shared by the service's HTTP clients (stored agents, session history).

Runtime layer, private: where the calls go (the service a ``vk.Session`` with the same
``backend=``, ``url=`` and ``api_key=`` would talk to, by
:func:`voicekit.session.resolve_backend`), one JSON call, one streamed ``GET`` of a URL, and
the :class:`voicekit.ServerError` of an error answer. Standard library HTTP
(``urllib.request``) only; loopback addresses never go through a proxy.

Keys travel in the ``Authorization`` header only and are masked out of every message
(:func:`voicekit._secrets.mask`); :class:`Api`'s repr never shows one.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from voicekit._secrets import mask, shown
from voicekit.errors import ConfigError, ServerError
from voicekit.errors import ConnectionError as VKConnectionError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "HOSTED_API",
    "Api",
    "api",
    "api_error",
    "http_base",
    "opener",
    "request",
]

HOSTED_API = "https://agents.assemblyai.com"
DEFAULT_TIMEOUT_S = 10.0

# what to do after the service's error codes (appended to its message); callers add theirs
ADVICE = {
    "validation_error": "fix the field named by param",
    "unauthorized": "check api_key= or ASSEMBLYAI_API_KEY",
}


@dataclasses.dataclass(frozen=True)
class Api:
    """Where the REST calls go, and with which key (never shown)."""

    base: str  # scheme://host[:port], no path
    api_key: str | None
    timeout: float

    def __repr__(self) -> str:
        return f"Api(base={self.base!r}, api_key={shown(self.api_key)})"

    @property
    def secrets(self) -> list[str]:
        """The strings no message may show (the key, if any)."""
        return [self.api_key] if self.api_key else []


def http_base(ws_url: str) -> str:
    """The HTTP origin of a URL: ``ws://h:p/v1/ws`` -> ``http://h:p`` (http(s) as is)."""
    parts = urllib.parse.urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, "", "", ""))


def api(
    backend: str,
    url: str | None,
    api_key: str | None,
    timeout: float,
    start: bool = True,
    what: str = "the REST API",
) -> Api | None:
    """The service ``vk.Session(backend=, url=, api_key=)`` would talk to, as a REST base.

    Parameters
    ----------
    backend, url, api_key
        As for :class:`voicekit.Session`.
    timeout : float
        Seconds to wait for each answer.
    start : bool
        ``False``: ``None`` for the embedded stand-in agent when it is not running (it has
        nothing stored then), instead of starting it.
    what : str
        The API, for the message of a wrong ``url`` (e.g. ``"the stored-agents API"``).
    """
    from voicekit.session import resolve_backend

    if backend not in ("auto", "local", "assemblyai"):
        raise ConfigError(
            f"backend ({backend!r}) must be 'auto', 'local' or 'assemblyai'; or pass url=...",
            field="backend",
        )
    if url is not None and not (isinstance(url, str) and url.startswith(("ws://", "wss://"))):
        raise ConfigError(
            "url must be the agent's WebSocket address (ws:// or wss://, e.g. "
            f"ws://127.0.0.1:8765/v1/ws); {what} is on the same host and port",
            field="url",
        )
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
        raise ConfigError(
            f"timeout ({timeout!r}) must be a positive number of seconds", field="timeout"
        )
    kind, key = resolve_backend(backend, url, api_key)
    if kind == "url":
        assert url is not None
        return Api(http_base(url), key, float(timeout))
    if kind == "assemblyai":
        if not key:
            raise ConfigError(
                "backend 'assemblyai' needs an API key; pass api_key=... or set "
                "ASSEMBLYAI_API_KEY, or use backend='local' for the offline stand-in agent",
                field="api_key",
            )
        return Api(HOSTED_API, key, float(timeout))
    from voicekit.local import embedded_agent

    if not start:
        from voicekit.local import server

        running = server._embedded  # the process-wide agent, if one was started
        if running is None or not running.is_running:
            return None
    return Api(http_base(embedded_agent().agents_url), None, float(timeout))


def opener(url: str) -> urllib.request.OpenerDirector:
    """A urllib opener for ``url``: loopback addresses never go through a proxy."""
    host = urllib.parse.urlsplit(url).hostname or ""
    handlers = []
    if host in ("127.0.0.1", "localhost", "::1"):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def user_agent() -> str:
    """The ``User-Agent`` header of every call."""
    from voicekit._version import __version__

    return f"voicekit/{__version__}"


def request(
    api: Api,
    method: str,
    path: str,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    advice: Mapping[str, str] | None = None,
) -> Any:
    """One REST call; returns the decoded JSON answer (``None`` for an empty one).

    Raises
    ------
    ServerError
        For an error answer (:func:`api_error`, with ``advice`` by code) or one that is not
        JSON.
    voicekit.ConnectionError
        When the service cannot be reached or does not answer within ``api.timeout``.
    """
    url = api.base + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {"Accept": "application/json", "User-Agent": user_agent()}
    if api.api_key:
        headers["Authorization"] = f"Bearer {api.api_key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    where = f"{method} {api.base}{path}"
    try:
        with opener(api.base).open(req, timeout=api.timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            raw = exc.read()
        raise api_error(exc.code, raw, where, api.secrets, advice) from None
    except (urllib.error.URLError, OSError) as exc:
        raise connection_error(exc, where, api.timeout, api.secrets) from None
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ServerError(
            f"{where} answered with something that is not JSON ({raw[:80]!r}); is this a "
            "voice agent service?",
            code="invalid_response",
        ) from None


def connection_error(
    exc: BaseException, where: str, timeout: float, secrets: Iterable[str]
) -> VKConnectionError:
    """The :class:`voicekit.ConnectionError` of a call that got no answer."""
    reason = getattr(exc, "reason", exc)
    if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
        return VKConnectionError(
            mask(
                f"{where}: no answer within {timeout:g} s; check the network or raise timeout=",
                secrets,
            )
        )
    return VKConnectionError(
        mask(
            f"{where}: cannot connect ({reason}); check the URL and the network, or use "
            "backend='local' for the offline stand-in agent",
            secrets,
        )
    )


def api_error(
    status: int,
    raw: bytes,
    where: str,
    secrets: Iterable[str],
    advice: Mapping[str, str] | None = None,
) -> ServerError:
    """The :class:`ServerError` for an HTTP error answer of the service.

    Parameters
    ----------
    status : int
        The HTTP status.
    raw : bytes
        The answer's body: ``{"code", "message", "param"}``, or FastAPI's ``{"detail": ...}``.
    where : str
        ``METHOD URL`` of the call, for the message (without credentials).
    secrets : iterable of str
        Strings masked out of the message.
    advice : mapping, optional
        What to do after an error code (added to the common advice).
    """
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        body = {}
    code, param, message = "", None, ""
    if isinstance(body, Mapping):
        code = str(body.get("code") or "")
        param = body.get("param") if isinstance(body.get("param"), str) else None
        detail = body.get("detail")  # FastAPI-style answers: {"detail": "..."} or [...]
        message = str(body.get("message") or (detail if isinstance(detail, str) else "") or "")
        first = detail[0] if isinstance(detail, list) and detail else None
        if not message and isinstance(first, Mapping):  # [{type, loc, msg, ...}]
            loc = [str(x) for x in first.get("loc") or []]
            message = f"{'.'.join(loc[1:]) or 'request'}: {first.get('msg') or 'invalid'}"
            param = param or (loc[-1] if loc else None)
            if param == "authorization":  # no key sent to a service that wants one
                code, param = code or "unauthorized", None
    if not code:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(
            status, "validation_error" if status == 422 else f"http_{status}"
        )
    if status in (401, 403) or "api key" in message.lower():
        code = "unauthorized" if code in ("not_found", "http_404") else code
    tips = {**ADVICE, **(advice or {})}
    tip = tips.get(code, "")
    if code == "validation_error" and param:
        tip = f"fix {param}" + ("; vk.voices() lists the voices" if param == "voice" else "")
    text = f"{message or f'HTTP {status}'} ({where}, HTTP {status}"
    text += f"; {tip})" if tip else ")"
    return ServerError(mask(text, secrets), code=code, param=param, fatal=False)
