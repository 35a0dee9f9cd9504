"""The stand-in agent's REST surface (tokens, stored agents, HTTP tools) over real sockets.

Requests go through the standard library's HTTP clients (and raw sockets for what they
cannot send), against ``vk.local.serve(profile="fast")`` on the WebSocket's own port.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from rawclient import RawClient, run

import voicekit as vk
from voicekit.local.brain import ToolRequest

KEY = "rest-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _brain(history: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
    """Calls the first tool on ``reply.create`` "call ...", speaks a tool result, else
    names itself after the system prompt's last word."""
    last = history[-1]
    if last["role"] == "tool":
        return f"Result {last['content']} error {last['is_error']}"
    if last["role"] == "instructions" and last["content"].startswith("call") and tools:
        return ToolRequest(tools[0]["name"], {"city": "Oslo"}, preamble="")
    system = [m["content"] for m in history if m["role"] == "system"]
    return f"I am {system[-1].split()[-1]}" if system else "I am nobody"


@pytest.fixture(scope="module")
def server() -> Iterator[vk.local.LocalAgent]:
    with vk.local.serve(profile="fast", api_key=KEY, asr_processes=0, brain=_brain) as agent:
        yield agent


@pytest.fixture(scope="module")
def open_server() -> Iterator[vk.local.LocalAgent]:
    """An agent without an api_key: any credential, or none, is accepted."""
    with vk.local.serve(profile="fast", asr_processes=0) as agent:
        yield agent


def call(
    agent: vk.local.LocalAgent,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib: (status, headers, body), error statuses included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{agent.host}:{agent.port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def call_json(agent: vk.local.LocalAgent, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    status, headers, data = call(agent, method, path, **kw)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(data)


def raw_http(agent: vk.local.LocalAgent, payload: bytes) -> bytes:
    """Send raw bytes, read the answer until the server closes."""
    with socket.create_connection((agent.host, agent.port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def new_agent(agent: vk.local.LocalAgent, **fields: Any) -> dict[str, Any]:
    body = {"name": "Desk", "system_prompt": "You are Nova", "voice": {"voice_id": "alba"}}
    status, record = call_json(agent, "POST", "/v1/agents", body={**body, **fields})
    assert status == 201, record
    return record


# -- tokens -------------------------------------------------------------------------------


def test_token_errors_have_the_fastapi_shapes(server) -> None:
    status, body = call_json(server, "GET", "/v1/token?expires_in_seconds=60", headers={})
    assert status == 422
    assert body == {
        "detail": [
            {
                "type": "missing",
                "loc": ["header", "authorization"],
                "msg": "Field required",
                "input": None,
            }
        ]
    }
    status, body = call_json(server, "GET", "/v1/token")
    assert status == 422
    assert body["detail"][0]["type"] == "missing"
    assert body["detail"][0]["loc"] == ["query", "expires_in_seconds"]
    status, body = call_json(
        server, "GET", "/v1/token?expires_in_seconds=0&max_session_duration_seconds=30"
    )
    assert status == 422
    assert body["detail"] == [
        {
            "type": "greater_than_equal",
            "loc": ["query", "expires_in_seconds"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        },
        {
            "type": "greater_than_equal",
            "loc": ["query", "max_session_duration_seconds"],
            "msg": "Input should be greater than or equal to 60",
            "input": "30",
            "ctx": {"ge": 60},
        },
    ]
    status, body = call_json(
        server, "GET", "/v1/token?expires_in_seconds=601&max_session_duration_seconds=10801"
    )
    assert [(d["type"], d["ctx"]) for d in body["detail"]] == [
        ("less_than_equal", {"le": 600}),
        ("less_than_equal", {"le": 10800}),
    ]
    status, body = call_json(server, "GET", "/v1/token?expires_in_seconds=abc")
    assert status == 422 and body["detail"][0]["type"] == "int_parsing"
    status, body = call_json(
        server, "GET", "/v1/token?expires_in_seconds=60", headers={"Authorization": "wrong"}
    )
    assert (status, body) == (404, {"detail": "Invalid API key"})


def test_a_token_is_reusable_inside_its_window(server) -> None:
    status, body = call_json(
        server,
        "GET",
        "/v1/token?expires_in_seconds=60&max_session_duration_seconds=60",
        headers={"Authorization": KEY},  # the raw key works too
    )
    assert status == 200 and body["expires_in_seconds"] == 60
    token = body["token"]
    assert KEY not in token

    async def main() -> None:
        for _ in range(2):  # two sequential sessions on one token, as observed
            c = await RawClient.open(server.url + "?token=" + token, {})
            assert c.of("session.ready")
            await c.close()
        bad = await RawClient.open(server.url + "?token=nope")
        err = await bad.wait_for("session.error")
        assert err["code"] == "unauthorized"

    run(main())


# -- stored agents ----------------------------------------------------------------------------


def test_agents_crud_round_trip(server) -> None:
    secret_tool = {
        **WEATHER,
        "http": {
            "url": "http://127.0.0.1:9/weather",
            "http_method": "GET",
            "headers": [{"name": "X-Api-Key", "value": "tool-secret"}],
        },
    }
    record = new_agent(server, greeting="Hi there", tools=[secret_tool], llm=[{"model": "x"}])
    assert re.fullmatch(r"agent_[0-9a-f]{32}", record["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["created_at"])
    assert record["updated_at"] == record["created_at"]
    assert record["name"] == "Desk" and record["greeting"] == "Hi there"
    assert record["voice"] == {"voice_id": "alba"} and record["llm"] == [{"model": "x"}]
    http_echo = record["tools"][0]["http"]
    assert http_echo == {
        "url": "http://127.0.0.1:9/weather",
        "http_method": "GET",
        "headers": [{"name": "X-Api-Key"}],  # header values are omitted on read
    }

    status, got = call_json(server, "GET", "/v1/agents/" + record["id"])
    assert status == 200 and got == record
    status, listing = call_json(server, "GET", "/v1/agents")
    assert status == 200
    assert listing["has_more"] is False and listing["response_metadata"] == {"next_cursor": ""}
    summary = {k: record[k] for k in ("id", "name", "created_at", "updated_at")}
    assert summary in listing["agents"]
    assert all(set(a) == set(summary) for a in listing["agents"])
    assert b"tool-secret" not in call(server, "GET", "/v1/agents")[2]

    status, headers, data = call(server, "DELETE", "/v1/agents/" + record["id"])
    assert (status, data) == (204, b"") and "Content-Type" not in headers
    for method in ("GET", "DELETE"):
        status, body = call_json(server, method, "/v1/agents/" + record["id"])
        assert status == 404 and body["code"] == "agent_not_found"
        assert body["message"] and body["request_id"].startswith("req_")
    assert summary not in call_json(server, "GET", "/v1/agents")[1]["agents"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"voice": {"voice_id": "zelda"}}, "voice"),
        ({"voice": "alba"}, "voice"),
        ({"name": ""}, "name"),
        ({"system_prompt": None}, "system_prompt"),
        ({"tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
        ({"tools": [{**WEATHER, "http": {"url": "ftp://x"}}]}, "tools[0].http.url"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_agents_get_422_validation_error(server, fields, param) -> None:
    body = {"name": "n", "system_prompt": "p", "voice": {"voice_id": "alba"}, **fields}
    status, error = call_json(server, "POST", "/v1/agents", body=body)
    assert status == 422
    assert error["code"] == "validation_error" and error["param"] == param
    assert error["message"] and error["request_id"].startswith("req_")
    if param == "voice" and fields["voice"] != "alba":
        assert "zelda" in error["message"] and "alba" in error["message"]


def test_agents_auth_follows_the_websocket_rule(server, open_server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, error = call_json(server, "GET", "/v1/agents", headers=headers)
        assert status == 401 and error["code"] == "unauthorized"
    assert call_json(server, "GET", "/v1/agents", headers={"Authorization": KEY})[0] == 200
    assert call_json(open_server, "GET", "/v1/agents", headers={})[0] == 200
    record = new_agent(open_server)
    assert call(open_server, "DELETE", "/v1/agents/" + record["id"], headers={})[0] == 204


def test_http_plumbing_edges(server) -> None:
    big = raw_http(
        server,
        b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\n\r\n",
    )
    head, _, body = big.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["code"] == "invalid_request"
    chunked = raw_http(
        server,
        b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
    )
    assert chunked.startswith(b"HTTP/1.1 411 ")
    assert json.loads(chunked.partition(b"\r\n\r\n")[2])["code"] == "invalid_request"
    # a body sent in pieces, after "100 Continue", is read whole
    payload = json.dumps(
        {"name": "Slow", "system_prompt": "You are Slow", "voice": {"voice_id": "alba"}}
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: " + KEY.encode() + b"\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(payload[:10])
        sock.sendall(payload[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 ")
    created = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert call(server, "DELETE", "/v1/agents/" + created["id"])[0] == 204
    # unknown paths, methods and bad JSON: JSON errors too
    status, body = call_json(server, "GET", "/v2/nothing")
    assert status == 404 and "error" in body
    assert call_json(server, "GET", "/v1/token/x?expires_in_seconds=5")[0] == 404
    status, body = call_json(server, "PUT", "/v1/agents")
    assert status == 405 and body["code"] == "method_not_allowed"
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("POST", "/v1/agents", body=b"{not json", headers=AUTH)
        resp = conn.getresponse()
        assert resp.status == 422
        assert json.loads(resp.read())["code"] == "validation_error"
    finally:
        conn.close()
    status, body = call_json(server, "POST", "/v1/ws", body={})
    assert status == 405
    status, headers, data = call(server, "GET", "/v1/ws")  # no upgrade: websockets refuses
    assert status == 426 and headers["Content-Type"] == "application/json"
    assert "error" in json.loads(data) and headers["Upgrade"] == "websocket"


# -- sessions bound to a stored agent -------------------------------------------------------


def test_a_session_binds_to_a_stored_agent(server) -> None:
    record = new_agent(server, voice={"voice_id": "vera"}, tools=[WEATHER])

    async def main() -> None:
        c = await RawClient.open(server.url, {"agent_id": record["id"]}, additional_headers=AUTH)
        config = c.of("session.ready")[0]["config"]
        assert config["system_prompt"] == "You are Nova"
        assert config["output"]["voice"] == "vera" and config["greeting"] is None
        assert [t["name"] for t in config["tools"]] == ["get_weather"]
        assert config["tools"][0]["http"] is None and config["llm"] == []
        await c.send("reply.create", instructions="who are you")
        said = await c.wait_for("transcript.agent")
        assert said["text"] == "I am Nova"  # the stored prompt reached the brain
        await c.send("session.update", session={"system_prompt": "You are Orion", "tools": []})
        updated = await c.wait_for("session.updated", count=2)  # 1: the binding's
        assert updated["config"]["system_prompt"] == "You are Orion"
        assert updated["config"]["tools"] == []
        await c.send("reply.create", instructions="who are you")
        said = await c.wait_for("transcript.agent", count=2)
        assert said["text"] == "I am Orion"
        await c.send("session.update", session={"agent_id": record["id"]})
        err = await c.wait_for("session.error")
        assert err["code"] == "agent_id_not_first" and not c.closed.is_set()
        await c.close()

    run(main())


@pytest.mark.parametrize(
    ("session", "code", "message"),
    [
        ({"system_prompt": "x"}, "invalid_value", "agent_id is mutually exclusive"),
        ({}, "agent_not_found", "Agent not found"),
    ],
)
def test_bad_agent_bindings_close_1008(server, session, code, message) -> None:
    record = new_agent(server)
    agent_id = record["id"]
    if code == "agent_not_found":  # deleted, then unknown
        assert call(server, "DELETE", "/v1/agents/" + agent_id)[0] == 204

    async def main() -> None:
        c = await RawClient.open(server.url, additional_headers=AUTH)
        await c.send("session.update", session={"agent_id": agent_id, **session})
        err = await c.wait_for("session.error")
        assert err["code"] == code and err["param"] == "agent_id"
        assert err["message"].startswith(message)
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1008
        assert not c.of("session.ready")

    run(main())


# -- server-side HTTP tools -----------------------------------------------------------------


class _ToolServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP endpoint that records each request and answers ``{"temp_c": 21}``
    once ``release`` is set."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                server.release.wait(10)
                data = json.dumps({"temp_c": 21}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()
        self.thread.join(5)


@pytest.fixture
def tool_server() -> Iterator[_ToolServer]:
    endpoint = _ToolServer()
    try:
        yield endpoint
    finally:
        endpoint.close()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_http_tool_is_called_by_the_agent(server, tool_server, method) -> None:
    port = tool_server.server_address[1]
    http_def = {
        "url": f"http://127.0.0.1:{port}/weather?units=c",
        "http_method": method,
        "headers": [{"name": "X-Api-Key", "value": "tool-secret"}],
    }
    record = new_agent(server, tools=[{**WEATHER, "timeout_seconds": 10, "http": http_def}])

    async def main() -> None:
        c = await RawClient.open(server.url, {"agent_id": record["id"]}, additional_headers=AUTH)
        echo = c.of("session.ready")[0]["config"]["tools"][0]["http"]
        assert echo["url"] == http_def["url"] and echo["method"] == method
        await c.send("reply.create", instructions="call the tool")
        call_event = await c.wait_for("tool.call")  # informational: never answered ...
        assert call_event["name"] == "get_weather"
        assert call_event["arguments"] == {"city": "Oslo"}
        if method == "POST":  # ... and a client's answer would be ignored
            await c.send("tool.result", call_id=call_event["call_id"], result="from the client")
            await c.send("session.update", session={"system_prompt": "You are Nova"})
            await c.wait_for("session.updated", count=2)  # frames are handled in order
        tool_server.release.set()
        said = await c.wait_for("transcript.agent", text='Result {"temp_c": 21} error False')
        assert said["interrupted"] is False
        assert all("tool-secret" not in json.dumps(e) for e in c.events)
        await c.close()

    run(main())
    [seen] = tool_server.requests
    assert seen["method"] == method and seen["headers"]["X-Api-Key"] == "tool-secret"
    if method == "GET":
        assert seen["path"] == "/weather?units=c&city=Oslo" and seen["body"] == b""
    else:
        assert seen["path"] == "/weather?units=c"
        assert json.loads(seen["body"]) == {"city": "Oslo"}
        assert seen["headers"]["Content-Type"] == "application/json"


@pytest.mark.slow
@pytest.mark.parametrize("url", ["http://192.0.2.1/weather", "http://example.com/weather"])
def test_an_http_tool_off_loopback_is_refused(server, url) -> None:
    record = new_agent(server, tools=[{**WEATHER, "http": {"url": url}}])

    async def main() -> None:
        c = await RawClient.open(server.url, {"agent_id": record["id"]}, additional_headers=AUTH)
        await c.send("reply.create", instructions="call the tool")
        await c.wait_for("tool.call")
        said = await c.wait_for("transcript.agent", count=2)  # 1: the silent pre-amble
        assert said["text"] == (
            "Result only loopback URLs are allowed by the stand-in agent error True"
        )
        await c.close()

    run(main())


def test_the_protocol_binds_through_its_agents_hook() -> None:
    """The sans-I/O side alone: the hook's session is applied as if sent inline."""
    from voicekit.protocol.server import ServerProtocol, SessionStarted

    stored = {"system_prompt": "You are Nova", "output": {"voice": "vera"}, "tools": [WEATHER]}
    proto = ServerProtocol(agents={"agent_1": stored}.get)
    [started] = proto.receive(
        json.dumps({"type": "session.update", "session": {"agent_id": "agent_1"}})
    )
    assert isinstance(started, SessionStarted) and started.agent_id == "agent_1"
    assert proto.agent_id == "agent_1" and proto.config is not None
    assert (proto.config.system_prompt, proto.config.voice) == ("You are Nova", "vera")
    ready = proto.data_to_send()[-1]
    assert ready["type"] == "session.ready" and ready["config"]["tools"][0]["name"] == "get_weather"
    other = ServerProtocol(agents={"agent_1": stored}.get)
    assert (
        other.receive(json.dumps({"type": "session.update", "session": {"agent_id": "agent_2"}}))
        == []
    )
    assert other.data_to_send()[0]["code"] == "agent_not_found" and other.close_code == 1008


def test_the_sdk_token_form_posts_json(server) -> None:
    status, body = call_json(server, "POST", "/v1/tokens", body={"expires_in_seconds": 30})
    assert status == 200 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    assert call_json(server, "POST", "/v1/tokens", body={})[0] == 200  # default 60 s
    status, body = call_json(server, "POST", "/v1/tokens", body={"expires_in_seconds": 0})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "expires_in_seconds"]
    assert body["detail"][0]["ctx"] == {"ge": 1}
    status, body = call_json(server, "POST", "/v1/tokens", body={}, headers={"Authorization": "x"})
    assert (status, body) == (404, {"detail": "Invalid API key"})


def test_http_tool_results_for_errors_redirects_and_big_bodies() -> None:
    """``call_http_tool`` alone, against a loopback endpoint with awkward answers."""
    from voicekit.local.http_tools import LOOPBACK_ONLY, MAX_RESPONSE_BYTES, call_http_tool

    answers = {
        "/fail": (500, b'{"error": "boom"}', {}),
        "/moved": (302, b"", {"Location": "http://192.0.2.1/elsewhere"}),
        "/big": (200, b"x" * (MAX_RESPONSE_BYTES + 1), {}),
        "/ok": (200, b"fine", {}),
    }
    hold = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/slow":
                hold.wait(10)
                return
            status, data, headers = answers[self.path]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.daemon_threads = True
    thread = threading.Thread(target=endpoint.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{endpoint.server_address[1]}"
    try:

        def get(path: str, timeout: float = 5.0) -> tuple[str, bool]:
            return call_http_tool({"url": base + path, "http_method": "GET"}, {}, timeout)

        assert get("/ok") == ("fine", False)
        assert get("/fail") == ('{"error": "boom"}', True)
        text, is_error = get("/moved")  # never followed: it could leave loopback
        assert is_error and "302" in text
        text, is_error = get("/big")
        assert is_error and str(MAX_RESPONSE_BYTES) in text
        text, is_error = get("/slow", timeout=1.0)
        assert is_error and "did not answer within 1 s" in text
        for url in ("http://10.0.0.1/", "http://[::2]/", "file:///etc/passwd", "http://x:99999/"):
            assert call_http_tool({"url": url}, {}, 1.0) == (LOOPBACK_ONLY, True)
    finally:
        hold.set()
        endpoint.shutdown()
        endpoint.server_close()
        thread.join(5)
