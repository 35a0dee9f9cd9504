"""ClientProtocol's connection state and its decision after a socket closes (AfterClose)."""

from __future__ import annotations

import json

import pytest

from voicekit.protocol import AfterClose, ClientProtocol, ConnectionState, SessionConfig
from voicekit.protocol.client import FATAL_CLOSE_CODES


def frame(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, **fields})


def connecting() -> ClientProtocol:
    c = ClientProtocol(SessionConfig())
    assert c.state is ConnectionState.IDLE and c.state == "idle"
    c.connect()
    assert c.state is ConnectionState.CONNECTING
    return c


def ready() -> ClientProtocol:
    c = connecting()
    c.receive(frame("session.ready", session_id="sess_1", resume_token="rt"))
    assert c.state == "ready" and c.state is ConnectionState.READY
    assert [m["type"] for m in c.data_to_send()] == ["session.update"]
    return c


def test_states_are_strings() -> None:
    assert [s.value for s in ConnectionState] == ["idle", "connecting", "ready", "ended", "error"]
    assert ConnectionState.READY == "ready" and f"{ConnectionState.ERROR}" == "error"
    assert "state=idle" in repr(ClientProtocol(SessionConfig()))


def test_audio_sent_while_idle_is_held_until_ready() -> None:
    c = ClientProtocol(SessionConfig())
    c.send_audio(b"\x01\x00")
    c.connect()
    assert [m["type"] for m in c.data_to_send()] == ["session.update"]
    c.receive(frame("session.ready", session_id="s"))
    assert [m["type"] for m in c.data_to_send()] == ["input.audio"]


@pytest.mark.parametrize("code", [None, 1001, 1006, 1011, 1012, 1013])
def test_handshake_lost_is_retried(code: int | None) -> None:
    c = connecting()
    assert c.connection_closed(code, "gone") is AfterClose.RETRY
    assert c.state is ConnectionState.CONNECTING
    assert (c.close_code, c.close_reason) == (code, "gone")
    c.connect()  # the next attempt starts over
    assert [m["type"] for m in c.data_to_send()] == ["session.update", "session.update"]


@pytest.mark.parametrize(
    ("error", "code", "after"),
    [
        (None, 1008, AfterClose.FATAL),
        (None, 1000, AfterClose.FATAL),
        ("unauthorized", 1008, AfterClose.FATAL),
        ("invalid_value", 1008, AfterClose.FATAL),
        ("at_capacity", 1013, AfterClose.RETRY),
        ("internal_error", 1011, AfterClose.RETRY),
    ],
)
def test_handshake_errors(error: str | None, code: int, after: AfterClose) -> None:
    c = connecting()
    if error is not None:
        c.receive(frame("session.error", code=error, message="x"))
    assert c.handshake_retryable(code) is (after is AfterClose.RETRY)
    assert c.connection_closed(code) is after
    expected = ConnectionState.CONNECTING if after is AfterClose.RETRY else ConnectionState.ERROR
    assert c.state is expected


@pytest.mark.parametrize("code", [None, 1000, 1001, 1006, 1012])
def test_a_ready_session_that_drops_is_resumed(code: int | None) -> None:
    c = ready()
    assert not c.handshake_retryable(code)  # the handshake rule no longer applies
    assert c.connection_closed(code) is AfterClose.RESUME
    assert c.state is ConnectionState.CONNECTING and c.session_id == "sess_1"
    c.resume()
    assert c.data_to_send() == [{"type": "session.resume", "session_id": "sess_1"}]
    c.receive(frame("session.ready", session_id="sess_1", resume_token="rt2"))
    assert c.state is ConnectionState.READY and c.resume_token == "rt2"


@pytest.mark.parametrize("code", sorted(FATAL_CLOSE_CODES))
def test_policy_and_internal_error_closes_are_fatal_after_ready(code: int) -> None:
    assert {1008, 1011} == FATAL_CLOSE_CODES
    c = ready()
    assert c.connection_closed(code, "policy") is AfterClose.FATAL
    assert c.state is ConnectionState.ERROR


def test_a_fatal_session_error_makes_any_close_fatal() -> None:
    c = ready()
    c.receive(frame("session.error", code="invalid_value", message="later update"))
    assert c.state is ConnectionState.READY  # not fatal once ready
    c.receive(frame("session.error", code="INTERNAL_ERROR", message="boom"))
    assert c.state is ConnectionState.ERROR
    assert c.connection_closed(1006) is AfterClose.FATAL


def test_a_failed_resume_is_fatal() -> None:
    c = ready()
    assert c.connection_closed(1006) is AfterClose.RESUME
    c.resume()
    c.receive(frame("session.error", code="session_not_found", message="gone"))
    assert c.connection_closed(1008) is AfterClose.FATAL
    assert c.state is ConnectionState.ERROR and c.error is not None


def test_a_resume_socket_lost_again_is_resumed_again() -> None:
    c = ready()
    assert c.connection_closed(1006) is AfterClose.RESUME
    c.resume()
    assert c.connection_closed(None) is AfterClose.RESUME
    assert c.connection_closed(1011) is AfterClose.FATAL


def test_end_and_session_ended_make_the_close_the_end() -> None:
    c = ready()
    c.end()
    assert c.connection_closed(1006) is AfterClose.ENDED  # even without session.ended
    assert c.state is ConnectionState.ENDED
    c2 = ready()
    c2.receive(frame("session.ended"))
    assert c2.state is ConnectionState.ENDED
    assert c2.connection_closed(1000) is AfterClose.ENDED
    c3 = connecting()
    c3.end()  # stopped during the handshake: no retry
    assert c3.connection_closed(1006) is AfterClose.ENDED


def test_fail_and_finish() -> None:
    c = ready()
    c.fail()
    assert c.state is ConnectionState.ERROR
    c.finish()
    assert c.state is ConnectionState.ERROR  # a failure is not masked by the close
    c.send_audio(b"\x00\x00")
    assert c.data_to_send() == []  # nothing is sent or held once it failed
    c2 = ready()
    c2.finish()
    assert c2.state is ConnectionState.ENDED
