"""Server-side HTTP tools of stored agents: the stand-in agent calls the tool's URL itself.

``voicekit.local`` layer: the standard library's ``urllib`` in a worker thread (no new
dependency), driven from the agent's loop. A tool whose definition has an ``http`` object
(``{url, http_method, headers}``, see :mod:`voicekit.local.agents_store`) is executed by
the agent, as the hosted service executes its stored agents' HTTP tools (reference §8.6);
it still sends the informational ``tool.call`` to the client (live observations §2), and
ignores any ``tool.result`` a client sends for it.

The call: GET and DELETE put the arguments in the query string (strings as is, other
values as JSON), POST, PUT and PATCH send them as a JSON body; the tool's headers are added;
the timeout is the tool's ``timeout_seconds`` (default 120 s). The result is the response
body as text, an error (``is_error``) for a status of 300 or more (redirects are not
followed), a failed connection, a timeout or a body over 8 KiB (the documented limit).

Only loopback URLs are called (127.0.0.0/8, ``::1`` and ``localhost`` resolving only to
them): anything else gets the error result ``"only loopback URLs are allowed by the
stand-in agent"``, so a stored agent can never make this machine reach the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicekit.local.agent import AgentSession

__all__ = ["LOOPBACK_ONLY", "MAX_RESPONSE_BYTES", "call_http_tool", "start"]

LOOPBACK_ONLY = "only loopback URLs are allowed by the stand-in agent"
MAX_RESPONSE_BYTES = 8192  # the documented response limit of HTTP tools
DEFAULT_TIMEOUT_S = 120.0
_BODY_METHODS = ("POST", "PUT", "PATCH")


def is_loopback(url: str) -> bool:
    """Whether ``url`` is http(s) to a loopback address (``localhost`` is resolved)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        hosts = {str(info[4][0]) for info in infos}
    else:
        hosts = {host}
    try:
        return bool(hosts) and all(ipaddress.ip_address(h).is_loopback for h in hosts)
    except ValueError:  # a name other than localhost: never resolved
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could leave loopback: it is answered as the error it is."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def _query_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _read(resp: Any) -> tuple[str, bool]:
    data = resp.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        return f"the HTTP tool's response exceeds {MAX_RESPONSE_BYTES} bytes", True
    return data.decode("utf-8", "replace"), False


def call_http_tool(
    http: Mapping[str, Any], arguments: Mapping[str, Any], timeout: float
) -> tuple[str, bool]:
    """Call one HTTP tool (blocking: run it in a thread).

    Parameters
    ----------
    http : mapping
        The tool's ``http`` object: ``url``, ``http_method`` (or ``method``), ``headers``
        (a list of ``{name, value}``).
    arguments : mapping
        The call's arguments (the query or the JSON body).
    timeout : float
        Seconds for connecting and for each read.

    Returns
    -------
    (str, bool)
        The result text and whether it is an error.
    """
    url = str(http.get("url") or "")
    if not is_loopback(url):
        return LOOPBACK_ONLY, True
    method = str(http.get("http_method") or http.get("method") or "POST").upper()
    headers = {"Accept": "application/json", "User-Agent": "voicekit-local"}
    for header in http.get("headers") or []:
        headers[str(header["name"])] = str(header["value"])
    body = None
    if method in _BODY_METHODS:
        body = json.dumps(dict(arguments)).encode()
        headers["Content-Type"] = "application/json"
    elif arguments:
        parts = urllib.parse.urlsplit(url)
        extra = urllib.parse.urlencode({k: _query_value(v) for k, v in arguments.items()})
        query = f"{parts.query}&{extra}" if parts.query else extra
        url = urllib.parse.urlunsplit(parts._replace(query=query))
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            return _read(resp)
    except urllib.error.HTTPError as exc:
        with exc:
            text, _ = _read(exc)
        return text or f"HTTP {exc.code} {exc.reason}", True
    except TimeoutError:
        return f"the HTTP tool did not answer within {timeout:g} s", True
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return f"the HTTP tool did not answer within {timeout:g} s", True
        return f"the HTTP tool call failed: {exc.reason}", True
    except OSError as exc:
        return f"the HTTP tool call failed: {exc}", True


def start(
    session: AgentSession,
    definition: Mapping[str, Any],
    call: Mapping[str, Any],
    waiter: asyncio.Future[tuple[str, bool]],
) -> None:
    """The tool round trip's hook for an HTTP tool (loop thread): call it, then resolve
    ``waiter`` with the result.

    The call's waiter leaves ``session.tool_waiters``, so that a client's ``tool.result``
    for this ``call_id`` is ignored (the client is told of the call, never asked).
    """
    session.tool_waiters.pop(str(call["call_id"]), None)
    http = dict(definition["http"])
    arguments = dict(call.get("arguments") or {})
    timeout = float(definition.get("timeout_seconds") or DEFAULT_TIMEOUT_S)

    async def run() -> None:
        result = await asyncio.to_thread(call_http_tool, http, arguments, timeout)
        if not waiter.done():
            waiter.set_result(result)

    session.tasks.spawn(run(), f"voicekit-http-tool-{call['call_id']}")
