"""A session whose resume fails starts over (``on_resume_failure="restart"``) or ends.

Live observations: the hosted service answered every ``session.resume`` with
``session_not_found``; the stand-in agent does the same under its default behaviour
("observed"), which these tests ask for (the suite's own agents resume).
"""

from __future__ import annotations

import json
import time

import pytest

import voicekit as vk
from voicekit.session._restart import CARRY_MAX_CHARS, carried_prompt
from voicekit.testing import drop_connection, wait_for_event

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def observed_agent() -> vk.local.LocalAgent:
    """A stand-in agent that, like the hosted service, never resumes a session."""
    with vk.local.serve(profile="fast") as agent:  # behaviour "observed"
        yield agent


def _held(agent: vk.local.LocalAgent, session_id: str | None, timeout: float = 5.0) -> object:
    """The agent's record of a session (it registers it just after sending session.ready)."""
    deadline = time.monotonic() + timeout
    while session_id not in agent.state.sessions:
        assert time.monotonic() < deadline, f"the agent never registered {session_id}"
        time.sleep(0.02)
    return agent.state.sessions[session_id]


def _talk(s: vk.Session, text: str) -> dict:
    """Have the agent say ``text`` (reply.create); returns its transcript line."""
    s.say(f"Say: {text}")
    return wait_for_event(s, "transcript.agent", lambda e: text.lower() in e["text"].lower(), 20)


def test_a_failed_resume_restarts_with_the_conversation_in_the_system_prompt(
    observed_agent, tmp_path
) -> None:
    user = vk.ScriptedUser([vk.Say("my name is robin")])
    s = vk.Session(
        url=observed_agent.url,
        system_prompt="You are a helpful agent.",
        greeting="Hello there.",
        audio_in=user,
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    first_id = s.session_id
    assert s.wait(30) and user.error is None
    heard = wait_for_event(s, "transcript.user", timeout=20)
    wait_for_event(s, "transcript.agent", lambda e: e["t"] > heard["t"], timeout=20)
    _talk(s, "the parcel is blue")
    bundle = s.log_path

    assert drop_connection(observed_agent, first_id) == 1
    restarted = wait_for_event(s, "session.restarted", timeout=30)
    assert s.status == "ready" and s.session_id not in (None, first_id)
    _talk(s, "still with you")  # the new session talks
    log = s.stop()

    # one bundle: the old session's events, the failed resume, then the new session's
    assert log.path == bundle and log.session_id == first_id
    assert restarted["old_session_id"] == first_id
    assert restarted["new_session_id"] == s.session_id
    assert "session_not_found" in restarted["reason"]
    errors = log.of_type("session.error")
    assert [e["code"] for e in errors] == ["session_not_found"]
    assert errors[0]["t"] < restarted["t"]
    readies = log.of_type("session.ready")
    assert [r["session_id"] for r in readies] == [first_id, s.session_id]
    assert readies[1]["t"] >= restarted["t"]  # the restarted line comes just before
    assert log.of_type("session.stop")[-1]["status"] == "ended"
    gaps = [g for g in log.of_type("input.gap") if g.get("reason") == "restarted"]
    assert len(gaps) == 1 and gaps[0]["t"] > restarted["t"]
    assert not [e for e in log.of_type("error") if "resume failed" in e.get("message", "")]

    # the new session's first update: the same config, the conversation in the prompt, no
    # greeting (the conversation goes on)
    updates = log.of_type("session.update", direction="send")
    fresh = updates[-1]["session"]
    assert "greeting" not in fresh
    prompt = fresh["system_prompt"]
    assert prompt.startswith("You are a helpful agent.\n\nConversation so far:\n")
    lines = prompt.split("Conversation so far:\n", 1)[1].splitlines()
    assert lines[0] == "Agent: Hello there."
    assert f"User: {heard['text'].strip()}" in lines  # what the service heard, verbatim
    assert lines[-1].lower().startswith("agent: the parcel is blue")
    epoch = log.of_type("config.epoch")[-1]
    assert epoch["restarted"] is True and epoch["epoch"] == 1
    assert epoch["config"]["system_prompt"] == prompt and epoch["t"] > restarted["t"]
    assert s.config.system_prompt == prompt


def test_a_second_drop_restarts_again_from_the_original_prompt(observed_agent, tmp_path) -> None:
    s = vk.Session(
        url=observed_agent.url,
        system_prompt="Be brief.",
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    ids = [s.session_id]
    for word in ("apple", "pear"):
        _talk(s, f"the word is {word}")
        drop_connection(observed_agent, ids[-1])
        wait_for_event(
            s, "session.restarted", lambda e, old=ids[-1]: e["old_session_id"] == old, 30
        )
        ids.append(s.session_id)
    log = s.stop()
    assert len(set(ids)) == 3
    prompt = log.of_type("session.update", direction="send")[-1]["session"]["system_prompt"]
    # the original prompt once, then every turn of both earlier sessions
    assert prompt.count("Be brief.") == 1 and prompt.count("Conversation so far:") == 1
    assert "apple" in prompt and "pear" in prompt
    assert [e["epoch"] for e in log.of_type("config.epoch")] == [0, 1, 2]


def test_on_resume_failure_error_ends_the_session_with_the_servers_error(
    observed_agent, tmp_path
) -> None:
    s = vk.Session(
        url=observed_agent.url,
        on_resume_failure="error",
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    first_id = s.session_id
    drop_connection(observed_agent, first_id)
    wait_for_event(s, "session.stop", timeout=30)
    assert s.status == "error" and s.session_id == first_id
    assert isinstance(s.last_error, vk.ServerError)
    assert s.last_error.code == "session_not_found"
    log = s.stop()
    assert not log.of_type("session.restarted")
    assert log.of_type("error")[-1]["message"].startswith("resume failed")


def test_an_agent_that_resumes_is_resumed_not_restarted(voicekit_agent_factory, tmp_path) -> None:
    agent = voicekit_agent_factory(profile="fast", behaviour={"resume_fails": False})
    s = vk.Session(url=agent.url, audio_in="null", audio_out="null", log_dir=tmp_path)
    s.start()
    first_id = s.session_id
    drop_connection(agent, first_id)
    wait_for_event(s, "input.gap", lambda e: e.get("reason") == "resumed", timeout=30)
    _talk(s, "back again")
    log = s.stop()
    assert s.session_id == first_id and not log.of_type("session.restarted")
    assert log.of_type("session.stop")[-1]["status"] == "ended"


def test_the_carried_conversation_keeps_the_newest_turns_within_its_cap() -> None:
    turns = [("User", f"turn {i} " + "x" * 90) for i in range(100)]  # ~10000 characters
    prompt = carried_prompt("Base.", turns)
    assert prompt is not None
    body = prompt.split("Conversation so far:\n", 1)[1]
    assert len(body) <= CARRY_MAX_CHARS + len("(earlier turns omitted)\n")
    assert body.startswith("(earlier turns omitted)\n")
    assert body.rstrip().endswith(turns[-1][1]) and "turn 0 " not in body
    assert carried_prompt("Base.", []) == "Base."
    assert carried_prompt(None, [("User", "hi")]) == "Conversation so far:\nUser: hi"
    huge = carried_prompt(None, [("Agent", "y" * 10 * CARRY_MAX_CHARS)])
    assert huge is not None and len(huge) < CARRY_MAX_CHARS + 40
    json.dumps(huge)  # a plain string, sent as is


def test_a_session_bound_to_a_stored_agent_restarts_bound_to_it(observed_agent, tmp_path) -> None:
    made = vk.agents.create(name="Keeper", system_prompt="You keep notes.", url=observed_agent.url)
    s = vk.Session(
        url=observed_agent.url,
        agent_id=made.id,
        audio_in="null",
        audio_out="null",
        log_dir=tmp_path,
    )
    s.start()
    first_id = s.session_id
    _talk(s, "the note is green")
    drop_connection(observed_agent, first_id)
    wait_for_event(s, "session.restarted", timeout=30)
    _talk(s, "noted again")
    log = s.stop()
    vk.agents.delete(made.id, url=observed_agent.url)
    updates = [u["session"] for u in log.of_type("session.update", direction="send")]
    # bound alone both times; the second session gets the stored prompt plus the conversation
    assert [u for u in updates if "agent_id" in u] == [{"agent_id": made.id}] * 2
    carried = updates[-1]["system_prompt"]
    assert carried.startswith("You keep notes.\n\nConversation so far:\n")
    assert "the note is green" in carried.lower()
    assert not [e for e in log.of_type("session.error") if e["code"] != "session_not_found"]


def test_a_restart_leaks_no_key_or_resume_token(tmp_path) -> None:
    key = "sk-restart-secret-0a1b2c3d4e"
    with vk.local.serve(profile="fast", api_key=key) as guarded:
        s = vk.Session(
            url=guarded.url, api_key=key, audio_in="null", audio_out="null", log_dir=tmp_path
        )
        s.start()
        tokens = [_held(guarded, s.session_id).resume_token]
        drop_connection(guarded, s.session_id)
        wait_for_event(s, "session.restarted", timeout=30)
        tokens.append(_held(guarded, s.session_id).resume_token)
        shown = repr(s) + str(s.last_error)
        log = s.stop()
    for secret in [key, *tokens]:
        assert secret and secret not in shown
        for path in log.path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
