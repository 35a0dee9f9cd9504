"""vk.agents (the stored-agents REST client) and sessions bound to a stored agent.

Against the stand-in agent's own REST on its WebSocket port (real sockets); one HTTP tool
is a real HTTP server on loopback.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

import voicekit as vk
from voicekit.testing import wait_for_event

KEY = "sk-test-agents-9f8e7d6c5b4a"


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Parameters
    ----------
    city : str
        The city, e.g. Paris.
    """
    return json.dumps({"city": city, "sky": "sunny"})


class _Lookup(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        _Lookup.calls.append(
            {"body": json.loads(self.rfile.read(size) or b"{}"), "key": self.headers.get("X-Key")}
        )
        data = json.dumps({"order": "shipped"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lookup_url() -> Iterator[str]:
    """A real HTTP endpoint on loopback, for a stored agent's server-side tool."""
    _Lookup.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lookup)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/orders"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _order_tool(url: str) -> dict:
    return {
        "name": "track_order",
        "description": "Track the status of an order.",
        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
        "http": {"url": url, "http_method": "POST", "headers": [{"name": "X-Key", "value": "k1"}]},
    }


# -- the REST client -----------------------------------------------------------------------
def test_create_get_list_delete_round_trip(agent, lookup_url) -> None:
    made = vk.agents.create(
        name="Concierge",
        system_prompt="You track orders.",
        voice="alba",
        greeting="Hello, concierge here.",
        tools=[get_weather, _order_tool(lookup_url)],
        url=agent.url,
    )
    assert isinstance(made, vk.agents.Agent)
    assert made.id.startswith("agent_") and len(made.id) == len("agent_") + 32
    assert (made.name, made.system_prompt, made.greeting, made.voice) == (
        "Concierge",
        "You track orders.",
        "Hello, concierge here.",
        "alba",
    )
    assert [t["name"] for t in made.tools] == ["get_weather", "track_order"]
    weather = made.tools[0]
    assert weather["parameters"]["properties"]["city"]["description"] == "The city, e.g. Paris."
    assert made.http_tools == ["track_order"]
    assert made.tools[1]["http"]["headers"] == [{"name": "X-Key"}]  # values never come back
    assert made.created_at and made.updated_at
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "x"  # type: ignore[misc]
    assert len({made, made}) == 1  # hashable, though its tools are dicts

    got = vk.agents.get(made.id, url=agent.url)
    assert got == made
    listed = vk.agents.list(url=agent.url)
    mine = [a for a in listed if a.id == made.id]
    assert len(mine) == 1 and mine[0].name == "Concierge" and mine[0].system_prompt is None

    assert vk.agents.delete(made.id, url=agent.url) is None
    assert made.id not in [a.id for a in vk.agents.list(url=agent.url)]
    with pytest.raises(vk.ServerError) as err:
        vk.agents.get(made.id, url=agent.url)
    assert err.value.code == "agent_not_found" and "vk.agents.list()" in str(err.value)
    with pytest.raises(vk.ServerError, match="agent_not_found"):
        vk.agents.delete(made.id, url=agent.url)


def test_the_services_refusals_carry_its_code_and_param_and_say_what_to_do(agent) -> None:
    with pytest.raises(vk.ServerError) as err:
        vk.agents.create(name="x", system_prompt="y", voice="nobody", url=agent.url)
    assert (err.value.code, err.value.param) == ("validation_error", "voice")
    assert "vk.voices()" in str(err.value) and "nobody" in str(err.value)
    with pytest.raises(vk.ConfigError, match="system_prompt") as cerr:
        vk.agents.create(name="x", system_prompt="", url=agent.url)
    assert cerr.value.field == "system_prompt"
    with pytest.raises(vk.ConfigError, match=r"tools\[0\]") as cerr:
        vk.agents.create(name="x", system_prompt="y", tools=[42], url=agent.url)  # type: ignore[list-item]
    with pytest.raises(vk.ConfigError, match="agent_id"):
        vk.agents.get("", url=agent.url)


def test_a_key_is_sent_as_the_session_sends_it_and_never_shown(voicekit_agent_factory) -> None:
    guarded = voicekit_agent_factory(profile="fast", api_key=KEY)
    with pytest.raises(vk.ServerError) as err:
        vk.agents.list(url=guarded.url, api_key="sk-wrong-key-123456")
    assert err.value.code == "unauthorized" and "api_key" in str(err.value)
    assert "sk-wrong-key-123456" not in str(err.value) + repr(err.value)
    made = vk.agents.create(name="Keyed", system_prompt="Hi.", url=guarded.url, api_key=KEY)
    assert [a.id for a in vk.agents.list(url=guarded.url, api_key=KEY)] == [made.id]
    assert KEY not in repr(made)


def test_a_service_that_is_not_there_is_a_connection_error_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(vk.ConnectionError, match=rf"127\.0\.0\.1:{port}/v1/agents"):
        vk.agents.list(url=f"ws://127.0.0.1:{port}/v1/ws", timeout=2)


# -- sessions bound to a stored agent ---------------------------------------------------------
def test_the_protocol_binds_with_agent_id_alone_and_patches_after_ready_not_after_resume() -> None:
    from voicekit.protocol import ClientProtocol, SessionConfig

    config = SessionConfig(system_prompt="Be brief.", turn_detection=vk.TurnDetection())
    c = ClientProtocol(config, agent_id="agent_1")
    c.connect()
    assert c.data_to_send() == [{"type": "session.update", "session": {"agent_id": "agent_1"}}]
    c.receive({"type": "session.ready", "session_id": "sess_1", "resume_token": "rt"})
    # the mutable fields, once ready; an unset turn detection is not sent
    assert c.data_to_send() == [
        {"type": "session.update", "session": {"system_prompt": "Be brief."}}
    ]
    c.connection_closed(None)
    c.resume()
    c.receive({"type": "session.ready", "session_id": "sess_1"})
    assert [m["type"] for m in c.data_to_send()] == ["session.resume"]  # nothing sent again
    bare = ClientProtocol(SessionConfig(), agent_id="agent_1")
    bare.connect()
    bare.receive({"type": "session.ready", "session_id": "sess_2"})
    assert [m["session"] for m in bare.data_to_send()] == [{"agent_id": "agent_1"}]


def test_a_session_binds_with_agent_id_alone_then_sends_its_mutable_fields(agent, tmp_path) -> None:
    made = vk.agents.create(
        name="Greeter",
        system_prompt="You are called Juniper.",
        greeting="Juniper speaking.",
        voice="alba",
        url=agent.url,
    )
    s = vk.Session(
        url=agent.url,
        agent_id=made.id,
        keyterms=["Juniper"],
        transcription_mode="min_latency",
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    try:
        greeting = wait_for_event(s, "transcript.agent", timeout=20)
        s.say("Say: bound and ready.")
        wait_for_event(s, "transcript.agent", lambda e: "bound" in e["text"].lower(), 20)
    finally:
        log = s.stop()
    assert "juniper speaking" in greeting["text"].lower()  # the stored agent's greeting
    updates = log.of_type("session.update", direction="send")
    assert updates[0]["session"] == {"agent_id": made.id}
    ready = log.of_type("session.ready")[0]
    assert updates[1]["t"] >= ready["t"]  # the inline fields come once the session is ready
    assert updates[1]["session"]["input"] == {
        "keyterms": ["Juniper"],
        "transcription_mode": "min_latency",
    }
    assert not log.of_type("session.error")
    assert log.meta["config"]["agent_id"] == made.id
    assert log.of_type("config.epoch")[0]["config"]["agent_id"] == made.id
    vk.agents.delete(made.id, url=agent.url)


def test_agent_id_with_fields_the_agent_fixes_is_refused_naming_them(agent) -> None:
    with pytest.raises(vk.ConfigError, match=r"voice, greeting.*vk\.agents") as err:
        vk.Session(url=agent.url, agent_id="agent_x", voice="alba", greeting="Hi.", audio_in="null")
    assert err.value.field == "voice"
    with pytest.raises(vk.ConfigError, match="output_format"):
        vk.Session(url=agent.url, agent_id="agent_x", output_format="audio/pcmu", audio_in="null")
    # the mutable ones are fine (sent after ready)
    vk.Session(
        url=agent.url,
        agent_id="agent_x",
        system_prompt="p",
        tools=[get_weather],
        audio_in="null",
        audio_out="null",
        log_dir=None,
    )


def test_an_unknown_agent_id_fails_start_with_the_services_code(agent, tmp_path) -> None:
    s = vk.Session(
        url=agent.url,
        agent_id="agent_" + "0" * 32,
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    with pytest.raises(vk.ServerError) as err:
        s.start()
    assert err.value.code == "agent_not_found" and err.value.param == "agent_id"
    assert s.status == "error"


def test_informational_calls_of_http_tools_are_never_answered(agent, tmp_path, lookup_url) -> None:
    made = vk.agents.create(
        name="Tracker",
        system_prompt="You track orders.",
        tools=[_order_tool(lookup_url)],
        url=agent.url,
    )
    s = vk.Session(
        url=agent.url, agent_id=made.id, audio_in="null", audio_out="null", log_dir=tmp_path
    )
    s.start()
    try:
        s.say("track my order 42")
        info = wait_for_event(s, "tool.informational", timeout=20)
        call = wait_for_event(s, "tool.call", timeout=5)
        # the agent ran the tool itself and answers from its result
        wait_for_event(s, "transcript.agent", lambda e: "shipped" in e["text"].lower(), timeout=20)
    finally:
        log = s.stop()
    assert (info["call_id"], info["name"]) == (call["call_id"], "track_order")
    assert not log.of_type("tool.result", direction="send")
    assert not log.of_type("tool.exec")
    assert _Lookup.calls and _Lookup.calls[0]["key"] == "k1"
    vk.agents.delete(made.id, url=agent.url)


def test_an_unknown_tool_call_on_a_bound_session_gets_an_error_result(agent, tmp_path) -> None:
    # the stored agent has a client-side tool; this session does not offer the function
    made = vk.agents.create(
        name="Weather", system_prompt="You know the weather.", tools=[get_weather], url=agent.url
    )
    s = vk.Session(
        url=agent.url, agent_id=made.id, audio_in="null", audio_out="null", log_dir=tmp_path
    )
    s.start()
    try:
        s.say("what is the weather in Paris")
        result = wait_for_event(s, "tool.result", timeout=20)
        wait_for_event(s, "transcript.agent", lambda e: e["t"] > result["t"], timeout=20)
    finally:
        log = s.stop()
    assert result["is_error"] is True and "unknown tool 'get_weather'" in result["result"]
    assert log.of_type("tool.exec")[0]["unknown"] is True
    vk.agents.delete(made.id, url=agent.url)


def test_the_embedded_agent_keeps_stored_agents_for_local_sessions(tmp_path) -> None:
    made = vk.agents.create(name="Local", system_prompt="You are local.", backend="local")
    try:
        assert made.id in [a.id for a in vk.agents.list(backend="local", start=False)]
        s = vk.Session(
            backend="local", agent_id=made.id, audio_in="null", audio_out="null", log_dir=tmp_path
        )
        s.start()
        assert s.status == "ready"
        log = s.stop()
        assert log.of_type("session.update", direction="send")[0]["session"] == {
            "agent_id": made.id
        }
    finally:
        vk.agents.delete(made.id, backend="local")
