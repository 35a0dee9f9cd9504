"""Helpers for testing code built on voicekit against the stand-in agent.

Importing this package does not import pytest; the fixtures live in
:mod:`voicekit.testing.plugin`, which a test suite enables in its top-level
``conftest.py``::

    pytest_plugins = ["voicekit.testing.plugin"]

Fixtures (from the plugin)
--------------------------
voicekit_agent
    A ``vk.local.LocalAgent`` served on a free loopback port, one per test module.
voicekit_agent_options
    Its ``vk.local.serve`` options (default ``{"profile": "fast"}``); override this
    module-scoped fixture to serve another agent.
voicekit_agent_factory
    ``make(**options)`` serves an agent of the test's own, stopped when the test ends.
voicekit_session_factory
    A :class:`SessionFactory` bound to ``voicekit_agent`` and the test's ``tmp_path``.

Functions and classes
---------------------
drop_connection(target, session_id=None)
    Abort a connection without a close frame (server side for an agent, client side for
    a session); the session reconnects as after a network failure: it resumes, or, on an
    agent that behaves as the hosted service was observed to (resume fails), restarts.
SessionFactory(url, log_dir, **defaults)
    Makes ``vk.Session`` objects with ``audio_in="null", audio_out="null"`` and stops every
    one at the end; also usable without pytest.
wait_for_event(session, event_type, where=None, timeout=10.0)
    Wait until the session's log holds a matching event (also one logged before the call).

The agent itself has read-only hooks for tests: ``LocalAgent.is_running``,
``LocalAgent.task_count()`` and ``LocalAgent.drop_connections(session_id=None)``.

Examples
--------
A test of the user's own code, which is given the agent's URL:

>>> # conftest.py
>>> pytest_plugins = ["voicekit.testing.plugin"]
>>> # test_my_agent.py
>>> import voicekit as vk
>>> from voicekit.testing import drop_connection, wait_for_event
>>> def test_the_reply_survives_a_dropped_socket(voicekit_agent, voicekit_session_factory):
...     s = voicekit_session_factory(start=True)
...     assert drop_connection(voicekit_agent, s.session_id) == 1
...     # the twin answers resume with session_not_found, as the hosted service did: the
...     # session restarts (on_resume_failure="restart"), carrying the conversation
...     wait_for_event(s, "session.restarted", timeout=15)
...     s.say("Say: still here.")
...     wait_for_event(s, "reply.done")
...     log = s.stop()
...     assert log.of_type("session.resume", direction="send")
"""

from __future__ import annotations

from voicekit.testing._hooks import SessionFactory, drop_connection, wait_for_event

__all__ = ["SessionFactory", "drop_connection", "wait_for_event"]
