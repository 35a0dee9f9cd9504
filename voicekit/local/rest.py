"""The stand-in agent's REST surface on its WebSocket port: HTTP plumbing and routes.

``voicekit.local`` layer: built on websockets (its asyncio server) and
:mod:`voicekit.local.agents_store`; the router itself is ``AgentServer.process_request`` in
:mod:`voicekit.local.server`. Loop thread only.

**Requests with bodies on a WebSocket port.** websockets parses every request as a
WebSocket handshake: its parser refuses a request that carries a body ("unsupported
request body"), and older versions refuse methods other than GET. :class:`HttpConnection`
(passed to ``serve(create_connection=...)``, websockets' documented extension point) reads
the first request's head itself; when it announces a body (``Content-Length`` > 0) it waits
for the whole body (at most :data:`MAX_BODY_BYTES`, else 413), stashes the method and the
body on the connection (:attr:`HttpConnection.http_method`, :attr:`HttpConnection.http_body`),
and hands websockets the head rewritten as a body-less ``GET``, so that ``process_request``
sees an ordinary request and answers it with a :class:`~websockets.http11.Response`
(websockets then closes the connection). A chunked body is refused with 411. After the first
request every byte goes straight to websockets: a WebSocket's frames cost one attribute test
per chunk read, nothing else.

**Answers.** Every non-WebSocket answer is JSON (``Content-Type: application/json``; a
204 has no body), websockets' own refusals included (:func:`json_rejection`; bytes that are
not HTTP at all get no answer, as before), in the shape the hosted service was seen to use
(live observations §3, §4):

- ``GET /v1/token``: FastAPI-style, ``422 {"detail": [{type, loc, msg, input[, ctx]}]}``
  for a missing ``Authorization`` header (when the agent has an ``api_key``) or bad query
  parameters, ``404 {"detail": "Invalid API key"}`` for a wrong key, else
  ``200 {"token", "expires_in_seconds"}``. ``max_session_duration_seconds`` (60-10800) is
  validated but not enforced, as observed.
- ``POST /v1/tokens {"expires_in_seconds"}`` (the SDK's form): the same rules and error
  shapes, ``200 {"token", "expires_at"}``.
- ``/v1/agents``: errors are ``{"code", "message", "param", "request_id"}``
  (``validation_error`` 422, ``agent_not_found`` 404, ``unauthorized`` 401,
  ``method_not_allowed`` 405, ``invalid_request`` 400/411/413); ``POST`` answers 201 with
  the record, ``GET`` 200 with the record or the list, ``DELETE`` 204 with no body.

Auth follows the WebSocket's rule: any credential (or none) when the agent has no
``api_key``; otherwise that key, as ``Authorization: Bearer <key>`` or the raw key.
Temporary tokens open sessions only; they do not manage agents.
"""

from __future__ import annotations

import dataclasses
import datetime
import hmac
import http
import json
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from voicekit.local.agents_store import AgentStore, AgentValidationError

__all__ = [
    "MAX_BODY_BYTES",
    "AgentsRoute",
    "HttpConnection",
    "HttpRequest",
    "first_header",
    "json_rejection",
    "json_response",
    "mint_token",
    "mint_token_sdk",
]

MAX_BODY_BYTES = 1 << 20  # a request body over 1 MB gets 413
MAX_HEAD_BYTES = 64 << 10  # a longer head goes to websockets as is (which refuses it)
TOKEN_EXPIRES = (1, 600)  # expires_in_seconds, inclusive (reference §2.2)
TOKEN_SESSION = (60, 10800)  # max_session_duration_seconds, inclusive; not enforced
AGENTS_PATH = "/v1/agents"
TOKENS_PATH = "/v1/tokens"  # the SDK's POST form of /v1/token

Handler = Callable[["HttpRequest"], Response]


def first_header(headers: Headers, name: str) -> str | None:
    """The first value of a header (``headers.get`` raises when a client repeats it)."""
    values = headers.get_all(name)
    return values[0] if values else None


def json_response(status: int, body: Any = None) -> Response:
    """A JSON answer (``body`` None: no body, for 204)."""
    data = b"" if body is None else json.dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    if body is None:
        del headers["Content-Type"]
    headers["Connection"] = "close"  # websockets closes the connection after any answer
    return Response(status, http.HTTPStatus(status).phrase, headers, data)


def json_rejection(
    connection: ServerConnection, request: Request, response: Response
) -> Response | None:
    """websockets' ``process_response`` hook: its own plain-text refusals (a GET on the
    WebSocket path without an upgrade, a failed ``process_request``) as JSON
    ``{"error": text}``, their status and other headers kept; None leaves a response as is."""
    if response.status_code == 101 or not (
        response.headers.get("Content-Type", "").startswith("text/plain")
    ):
        return None
    text = bytes(response.body or b"").decode("utf-8", "replace").strip()
    answer = json_response(response.status_code, {"error": text})
    for name, value in response.headers.raw_items():
        if name.lower() not in ("content-type", "content-length", "connection"):
            answer.headers[name] = value
    return answer


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


def api_error(status: int, code: str, message: str, param: str | None = None) -> Response:
    """An error in the stored-agents API's shape: ``{code, message, param, request_id}``."""
    body = {"code": code, "message": message, "param": param, "request_id": _request_id()}
    return json_response(status, body)


# -- the connection: requests with bodies -------------------------------------------------


class HttpConnection(ServerConnection):
    """A websockets server connection that also reads the body of its first request.

    See the module docstring. ``http_error`` is set instead of the body when the head or
    the body is refused (chunked, oversize, a bad ``Content-Length``): the router answers
    with it.

    Attributes
    ----------
    http_method : str
        The first request's method as the client sent it (websockets sees ``GET``).
    http_body : bytes
        Its body (empty for none).
    http_error : Response or None
        The answer to send instead of routing the request.
    """

    http_method: str = "GET"
    http_body: bytes = b""
    http_error: Response | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head: bytearray | None = bytearray()  # None once websockets has the request
        self._continued = False  # "100 Continue" sent

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # the WebSocket's frames, or a request being answered
            super().data_received(data)
            return
        self._head += data
        ready = self._preface()
        if ready is not None:
            self._head = None
            super().data_received(ready)

    def _preface(self) -> bytes | None:
        """The bytes websockets should parse, once the first request is complete; None
        while it is not."""
        buf = self._head
        assert buf is not None
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            line_end = buf.find(b"\n")
            first = buf[:line_end].rstrip(b"\r")
            if len(buf) > MAX_HEAD_BYTES or (
                line_end >= 0 and not first.endswith((b" HTTP/1.1", b" HTTP/1.0"))
            ):
                return bytes(buf)  # not HTTP, or a head too long: websockets refuses it
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        if not lines[0].endswith((b" HTTP/1.1", b" HTTP/1.0")):
            return bytes(buf)  # not HTTP: websockets refuses it
        method, _, rest = lines[0].partition(b" ")
        self.http_method = method.decode("latin-1")
        kept: list[bytes] = []
        lengths: set[bytes] = set()
        chunked = False
        for line in lines[1:]:
            name = line.partition(b":")[0].strip().lower()
            if name == b"content-length":
                lengths.add(line.partition(b":")[2].strip())
            elif name == b"transfer-encoding":
                chunked = True
            elif name != b"expect":
                kept.append(line)
        head = b"\r\n".join([b"GET " + rest, *kept]) + b"\r\n\r\n"
        if chunked:
            self.http_error = api_error(
                411,
                "invalid_request",
                "chunked request bodies are not supported; send a Content-Length",
            )
            return head
        if not lengths or lengths == {b"0"}:
            return head if method != b"GET" or lengths else bytes(buf)
        if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
            self.http_error = api_error(400, "invalid_request", "invalid Content-Length header")
            return head
        size = int(next(iter(lengths)))
        if size > MAX_BODY_BYTES:
            self.http_error = api_error(
                413,
                "invalid_request",
                f"the request body ({size} bytes) exceeds {MAX_BODY_BYTES} bytes",
            )
            return head
        start = end + 4
        if len(buf) - start < size:
            expect = (line.partition(b":") for line in lines[1:])
            continued = any(
                n.strip().lower() == b"expect" and v.strip().lower() == b"100-continue"
                for n, _, v in expect
            )
            if continued and not self._continued:  # curl waits for it before a large body
                self._continued = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        self.http_body = bytes(buf[start : start + size])
        return head  # pipelined bytes after the body are dropped: the connection closes


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """One REST request as the routes see it.

    Attributes
    ----------
    method : str
        As the client sent it (``POST``, ``DELETE``, ...).
    path : str
        Without the query.
    query : dict of str to list of str
        Parsed query parameters.
    headers : Headers
        Request headers.
    body : bytes
        The body (empty for none).
    local_address : tuple or None
        The socket's local address (for absolute URLs when the request has no Host).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes = b""
    local_address: Any = None

    @classmethod
    def of(cls, connection: ServerConnection, request: Request) -> HttpRequest:
        """The request websockets parsed, with the method and body :class:`HttpConnection`
        stashed (a plain ``ServerConnection``: the method websockets saw, no body)."""
        parts = urllib.parse.urlsplit(request.path)
        method = getattr(connection, "http_method", request.method)
        return cls(
            method=method.upper(),
            path=parts.path,
            query=urllib.parse.parse_qs(parts.query, keep_blank_values=True),
            headers=request.headers,
            body=getattr(connection, "http_body", b""),
            local_address=connection.local_address,
        )

    def credential(self) -> str | None:
        """The ``Authorization`` value without its ``Bearer`` scheme, or None."""
        return bearer(self.headers)


def bearer(headers: Headers) -> str | None:
    """A request's ``Authorization`` value without its ``Bearer`` scheme, or None."""
    auth = first_header(headers, "Authorization")
    if not auth or not auth.strip():
        return None
    scheme, _, rest = auth.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else auth.strip()


def key_matches(credential: str | None, api_key: str | None) -> bool:
    """Whether a credential is the agent's API key (any, or none, when it has none)."""
    if api_key is None:
        return True
    return credential is not None and hmac.compare_digest(credential.encode(), api_key.encode())


# -- GET /v1/token --------------------------------------------------------------------------


def _int_param(
    query: dict[str, list[str]], name: str, bounds: tuple[int, int], required: bool
) -> tuple[int | None, dict[str, Any] | None]:
    """A bounded integer query parameter: (value, None) or (None, a FastAPI error item)."""
    loc = ["query", name]
    values = query.get(name)
    if not values:
        if not required:
            return None, None
        return None, {"type": "missing", "loc": loc, "msg": "Field required", "input": None}
    raw = values[-1]  # FastAPI reads the last of repeated query values
    try:
        value = int(raw.strip())
    except ValueError:
        return None, {
            "type": "int_parsing",
            "loc": loc,
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "input": raw,
        }
    return _bounded(value, raw, loc, bounds)


def _bounded(
    value: int, raw: Any, loc: list[Any], bounds: tuple[int, int]
) -> tuple[int | None, dict[str, Any] | None]:
    """``value`` within ``bounds``: (value, None), or (None, pydantic's ge/le error item)."""
    low, high = bounds
    if value < low:
        return None, {
            "type": "greater_than_equal",
            "loc": loc,
            "msg": f"Input should be greater than or equal to {low}",
            "input": raw,
            "ctx": {"ge": low},
        }
    if value > high:
        return None, {
            "type": "less_than_equal",
            "loc": loc,
            "msg": f"Input should be less than or equal to {high}",
            "input": raw,
            "ctx": {"le": high},
        }
    return value, None


def _auth_errors(credential: str | None, api_key: str | None) -> list[dict[str, Any]]:
    if credential is not None or api_key is None:
        return []
    return [
        {
            "type": "missing",
            "loc": ["header", "authorization"],
            "msg": "Field required",
            "input": None,
        }
    ]


def mint_token(request: HttpRequest, mint: Callable[[float], str], api_key: str | None) -> Response:
    """``GET /v1/token?expires_in_seconds=N[&max_session_duration_seconds=M]``.

    Parameters
    ----------
    request : HttpRequest
        The request.
    mint : callable
        ``mint(expires_in_seconds) -> token`` (the server's token table).
    api_key : str or None
        The agent's key; None accepts any credential, or none.

    Returns
    -------
    Response
        200 ``{"token", "expires_in_seconds"}``; 422 FastAPI-style validation errors (query
        parameters first, then the header, as FastAPI orders them); 404 for a wrong key;
        405 for a method other than GET.
    """
    if request.method != "GET":
        return json_response(405, {"detail": "Method Not Allowed"})
    errors = []
    expires, error = _int_param(request.query, "expires_in_seconds", TOKEN_EXPIRES, True)
    if error:
        errors.append(error)
    _, error = _int_param(request.query, "max_session_duration_seconds", TOKEN_SESSION, False)
    if error:
        errors.append(error)
    refused = key_refusal(request.credential(), api_key, errors)
    if refused is not None:
        return refused
    assert expires is not None
    return json_response(200, {"token": mint(expires), "expires_in_seconds": expires})


def key_refusal(
    credential: str | None, api_key: str | None, errors: list[dict[str, Any]] | None = None
) -> Response | None:
    """The service's key check (tokens, history): 422 with ``errors`` (the request's
    parameter errors) and a missing credential, 404 for a wrong key, or None: go on."""
    errors = (errors or []) + _auth_errors(credential, api_key)
    if errors:
        return json_response(422, {"detail": errors})
    if not key_matches(credential, api_key):
        return json_response(404, {"detail": "Invalid API key"})
    return None


# -- /v1/agents -------------------------------------------------------------------------------


class AgentsRoute:
    """``/v1/agents`` and ``/v1/agents/{id}`` over an :class:`AgentStore`.

    Parameters
    ----------
    store : AgentStore
        The agent's stored agents.
    api_key : str or None
        The agent's key; None accepts any credential, or none.
    """

    def __init__(self, store: AgentStore, api_key: str | None) -> None:
        self.store = store
        self.api_key = api_key

    def __call__(self, request: HttpRequest) -> Response:
        """Answer one request under ``/v1/agents``."""
        if not key_matches(request.credential(), self.api_key):
            return api_error(
                401, "unauthorized", "Invalid API key; send Authorization: Bearer <api key>"
            )
        rest = request.path[len(AGENTS_PATH) :].strip("/")
        if not rest:
            if request.method == "GET":
                return json_response(
                    200,
                    {
                        "agents": self.store.summaries(),
                        "has_more": False,
                        "response_metadata": {"next_cursor": ""},
                    },
                )
            if request.method == "POST":
                return self._create(request)
            return self._not_allowed(request, "GET, POST")
        if "/" in rest:
            return api_error(404, "not_found", f"no such path: {request.path}")
        if request.method == "GET":
            if self.store.get(rest) is None:
                return self._not_found()
            return json_response(200, self.store.public(rest))
        if request.method == "DELETE":
            return json_response(204) if self.store.delete(rest) else self._not_found()
        return self._not_allowed(request, "GET, DELETE")

    def _create(self, request: HttpRequest) -> Response:
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError as exc:
            return api_error(422, "validation_error", f"the request body is not valid JSON ({exc})")
        try:
            record = self.store.create(body)
        except AgentValidationError as exc:
            return api_error(422, "validation_error", str(exc), exc.param)
        return json_response(201, record)

    @staticmethod
    def _not_found() -> Response:
        return api_error(404, "agent_not_found", "Agent not found")

    @staticmethod
    def _not_allowed(request: HttpRequest, allowed: str) -> Response:
        response = api_error(
            405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}"
        )
        response.headers["Allow"] = allowed
        return response


def mint_token_sdk(
    request: HttpRequest, mint: Callable[[float], str], api_key: str | None
) -> Response:
    """``POST /v1/tokens {"expires_in_seconds": N}``: the SDK's form of minting (reference
    §2.2; never seen live): N 1-600, default 60.

    Returns
    -------
    Response
        200 ``{"token", "expires_at"}`` (ISO-8601 UTC); otherwise as :func:`mint_token`,
        the body's errors located at ``["body", ...]``.
    """
    if request.method != "POST":
        return json_response(405, {"detail": "Method Not Allowed"})
    try:
        body = json.loads(request.body) if request.body.strip() else {}
    except ValueError as exc:
        item = {"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}
        return json_response(422, {"detail": [{**item, "input": {}, "ctx": {"error": str(exc)}}]})
    errors: list[dict[str, Any]] = []
    expires: int | None = None
    if not isinstance(body, dict):
        errors.append(
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": body,
            }
        )
    else:
        value = body.get("expires_in_seconds", 60)
        loc = ["body", "expires_in_seconds"]
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(
                {
                    "type": "int_type",
                    "loc": loc,
                    "msg": "Input should be a valid integer",
                    "input": value,
                }
            )
        else:
            expires, error = _bounded(value, value, loc, TOKEN_EXPIRES)
            if error:
                errors.append(error)
    refused = key_refusal(request.credential(), api_key, errors)
    if refused is not None:
        return refused
    assert expires is not None
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires)
    stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return json_response(200, {"token": mint(expires), "expires_at": stamp})
