"""What :mod:`voicekit.testing` offers without pytest: dropping a connection, a session factory.

Layer: uses the public API of :mod:`voicekit.local` and :mod:`voicekit.session` only (both
imported when first needed, so that importing :mod:`voicekit.testing` stays cheap and
cycle-free); must not import pytest, the widgets or the analysis.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import ConfigError, VoiceKitError

if TYPE_CHECKING:
    from voicekit.local import LocalAgent
    from voicekit.session import Session

__all__ = ["SessionFactory", "drop_connection", "wait_for_event"]

POLL_S = 0.05  # how often wait_for_event reads the log again

#: What :class:`SessionFactory` passes to every ``vk.Session`` unless told otherwise.
SESSION_DEFAULTS: dict[str, Any] = {"audio_in": "null", "audio_out": "null"}


def drop_connection(target: LocalAgent | Session, session_id: str | None = None) -> int:
    """Cut a connection as a network failure would: the TCP socket goes, no close frame.

    The session then reconnects as after any drop: it logs ``connection.closed`` and sends
    ``session.resume`` with its resume token. An agent that resumes (the documented
    behaviour, e.g. ``behaviour={"resume_fails": False}``) gives an ``input.gap`` with
    ``reason="resumed"``; one that fails it, as the hosted service was observed to (the
    twin's default), gives a ``session.restarted`` line and an ``input.gap`` with
    ``reason="restarted"`` (``on_resume_failure="restart"``, the session's default). Either
    way the conversation goes on.

    Parameters
    ----------
    target : vk.local.LocalAgent or vk.Session
        An agent: abort its side of the connection(s) (see
        :meth:`voicekit.local.LocalAgent.drop_connections`). A session: abort the client's
        side (``session.connection.drop()``).
    session_id : str or None
        With an agent: only the connection that carries this session (``None``: every
        connection). Not allowed with a session (it has one connection).

    Returns
    -------
    int
        How many connections were aborted (for a session: 1).

    Raises
    ------
    ConfigError
        If ``target`` is neither, or ``session_id`` is given with a session.
    VoiceKitError
        If the session has no open connection (not started, or stopped).
    """
    from voicekit.local import LocalAgent
    from voicekit.session import Session

    if isinstance(target, LocalAgent):
        return target.drop_connections(session_id)
    if isinstance(target, Session):
        if session_id is not None:
            raise ConfigError(
                "session_id is only for an agent target; a session has one connection, "
                "call drop_connection(session)",
                field="session_id",
            )
        if target.status not in ("connecting", "ready"):
            raise VoiceKitError(
                f"the session is {target.status}, it has no connection to drop; start() it first"
            )
        connection = target.connection
        assert connection is not None  # a started session has one
        connection.drop()
        return 1
    raise ConfigError(
        f"target ({type(target).__name__}) must be a vk.local.LocalAgent or a vk.Session",
        field="target",
    )


def wait_for_event(
    session: Session,
    event_type: str,
    where: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Wait until the session's log holds an event of ``event_type`` (and ``where(event)``).

    Reads the log bundle's ``events.jsonl`` (complete lines only, so a line being written
    is not an error), from the start: an event logged before the call counts too.

    Parameters
    ----------
    session : vk.Session
        A started session (its ``log_path`` is set by ``start()``).
    event_type : str
        The ``type`` of the log line, e.g. ``"input.gap"`` or ``"reply.done"``.
    where : callable or None
        ``where(event) -> bool``: only events it accepts count.
    timeout : float
        Seconds to wait.

    Returns
    -------
    dict
        The first matching event (the log line as a dict: ``t``, ``dir``, ``type``, ...).

    Raises
    ------
    TimeoutError
        If none came within ``timeout`` (the message lists the types that did).
    """
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        if session.log_path is not None:
            seen = []
            try:
                data = (Path(session.log_path) / "events.jsonl").read_bytes()
            except FileNotFoundError:  # renamed to the session id just now: read again
                data = b""
            for line in data.split(b"\n")[:-1]:  # the last piece has no newline yet
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                seen.append(str(event.get("type")))
                if event.get("type") == event_type and (where is None or where(event)):
                    return dict(event)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no {event_type!r} event in the session's log within {timeout} s; "
                f"it logged {sorted(set(seen))}"
            )
        time.sleep(POLL_S)


class SessionFactory:
    """Makes ``vk.Session`` objects against one agent, and stops every one at the end.

    Parameters
    ----------
    url : str
        The agent's URL (``agent.url``); a session given ``url=`` or ``backend=`` of its
        own uses that instead.
    log_dir : str or os.PathLike
        Where the sessions write their log bundles (a test's ``tmp_path``).
    **defaults
        Further ``vk.Session`` arguments for every session (on top of
        ``audio_in="null", audio_out="null"``).

    Examples
    --------
    >>> with vk.local.serve(profile="fast") as agent, SessionFactory(agent.url, tmp) as make:
    ...     s = make(greeting="Hello.", start=True)
    ...     s.say("Say: hi.")
    """

    def __init__(self, url: str, log_dir: str | os.PathLike[str], **defaults: Any) -> None:
        self.url = url
        self.log_dir = Path(log_dir)
        self.defaults = {**SESSION_DEFAULTS, **defaults}
        self.sessions: list[Session] = []

    def __call__(self, *, start: bool = False, **kwargs: Any) -> Session:
        """A new session with the factory's defaults under ``kwargs``.

        Parameters
        ----------
        start : bool
            Start it before returning (``start()`` waits for ``session.ready``).
        **kwargs
            ``vk.Session`` arguments; they win over the factory's defaults.

        Returns
        -------
        vk.Session
            Stopped by :meth:`stop_all` (the fixture does it at teardown) if still running.
        """
        from voicekit.session import Session

        options = {**self.defaults, "log_dir": self.log_dir, **kwargs}
        if "backend" not in kwargs:
            options.setdefault("url", self.url)
        session = Session(**options)
        self.sessions.append(session)
        if start:
            session.start()
        return session

    def stop_all(self) -> None:
        """Stop every session made (``stop()`` is idempotent); re-raises the first failure
        once all are stopped."""
        first: BaseException | None = None
        for session in self.sessions:
            try:
                session.stop()
            except Exception as exc:
                first = first or exc
        self.sessions.clear()
        if first is not None:
            raise first

    def __enter__(self) -> SessionFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
