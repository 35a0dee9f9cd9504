"""The background session: one socket to a voice agent, driven from a notebook.

Runtime layer. :class:`Session` is a facade: a notebook calls ``start()``, ``update()``,
``say()`` and ``stop()``; the work is done on one asyncio loop in one daemon thread by parts
that each hold one job and can be read (and tested) alone:

- :mod:`._connection` — the WebSocket, the handshake and its retries, resume after a drop;
  the sans-I/O :class:`~voicekit.protocol.ClientProtocol` inside it is the authority on the
  connection's state, the session id and what a close means;
- :mod:`._playback` — what of each reply was received, played and flushed;
- :mod:`._pacer` — the 50 ms clock that sends paced audio and polls the sink;
- :mod:`._tools` — runs tool calls and answers them;
- :mod:`._restart` — the conversation so far, carried into a fresh session when a resume
  fails;
- :mod:`._bus` — every log line, to the bundle, the audio source, the observers (on their
  own thread) and ``events()`` iterators;
- :mod:`._options` — checking the arguments.

Notebook cells never run any of this: they hand work to the loop with
``run_coroutine_threadsafe`` and wait for it with a timeout, so a cell that blocks
(``time.sleep(5)``) stalls no audio.

The one clock: every time is ``time.monotonic()`` minus the session's start, in seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from voicekit._aio import TaskSet, cancel_other_tasks
from voicekit._secrets import shown
from voicekit.audio.level import LevelMeter
from voicekit.audio.pcm import decode_from_wire, encode_for_wire
from voicekit.audio.sinks import Sink, make_sink
from voicekit.audio.sources import SAMPLE_RATE, AudioLink, Source, make_source
from voicekit.errors import ConfigError, VoiceKitError
from voicekit.protocol.events import (
    Event,
    InputSpeechStarted,
    ReplyAudio,
    ReplyDone,
    ReplyStarted,
    SessionReady,
    ToolCall,
    TranscriptAgent,
    TranscriptUser,
    UnknownEvent,
)
from voicekit.session._bus import Bus, LogLine, Observer
from voicekit.session._connection import Connection, url_without_query
from voicekit.session._options import (
    check_agent_binding,
    check_arguments,
    make_config,
    make_tools,
    updated_config,
)
from voicekit.session._pacer import BLOCK, CATCH_UP_SAMPLES, Pacer
from voicekit.session._playback import Playback
from voicekit.session._restart import Conversation, carried_prompt
from voicekit.session._tools import ToolRunner
from voicekit.tools import Tool

if TYPE_CHECKING:
    from voicekit.protocol import SessionConfig

# The parts are exported for tests and for readers: each can be built and driven alone.
__all__ = [
    "BLOCK",
    "CATCH_UP_SAMPLES",
    "HOSTED_URL",
    "Bus",
    "Connection",
    "LogLine",
    "Pacer",
    "Playback",
    "Session",
    "ToolRunner",
    "resolve_backend",
]

log = logging.getLogger("voicekit.session")

HOSTED_URL = "wss://agents.assemblyai.com/v1/ws"
STOP_TIMEOUT_S = 2.0
Status = Literal["idle", "connecting", "ready", "ended", "error"]

_live_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


def _env_key() -> str | None:
    key = os.environ.get("ASSEMBLYAI_API_KEY", "").strip()
    return key or None


def resolve_backend(
    backend: str = "auto", url: str | None = None, api_key: str | None = None
) -> tuple[str, str | None]:
    """Which backend a session with these arguments talks to, and with which key.

    The one place of the rule: ``url`` wins (``"url"``); ``"auto"`` is the hosted service
    when a key is given or ``ASSEMBLYAI_API_KEY`` is set, else the stand-in agent
    (``"local"``, which never sends a key). Returns ``(backend, api_key)``.
    """
    key = api_key or (_env_key() if backend != "local" else None)
    if url is not None:
        return "url", key
    if backend == "auto":
        return ("assemblyai" if key else "local"), key
    return backend, key


class Session:
    """A conversation with a voice agent, run by a background asyncio thread.

    Parameters
    ----------
    backend : {"auto", "local", "assemblyai"}
        ``"auto"``: the hosted service when ``api_key`` is given or ``ASSEMBLYAI_API_KEY``
        is set, else the embedded stand-in agent (started on demand, offline).
    url : str, optional
        Any agent speaking the protocol (e.g. ``python -m voicekit serve`` for a class);
        overrides ``backend``.
    api_key : str, optional
        Key of the hosted service. Never written to logs, reprs or error messages.
    voice, system_prompt, greeting, keyterms, turn_detection
        The agent's configuration (see :class:`voicekit.TurnDetection`). ``voice`` and
        ``greeting`` are fixed for the session; the rest can change with :meth:`update`.
    tools : sequence of callables
        Python functions offered to the agent (see :func:`voicekit.tools.as_tool`). A
        ``tool.call`` for a tool the session does not have is answered with an error result
        (the agent can recover at once instead of waiting for the tool's timeout), except
        the informational calls of the agent's server-side ``http`` tools (live
        observations: the service runs them itself and still tells the client): those are a
        ``tool.informational {call_id, name}`` line and are never answered.
    agent_id : str, optional
        Bind the session to a stored agent (``vk.agents.create(...)``; ``"agent_..."``):
        the first ``session.update`` is ``{"agent_id": ...}`` alone, as the service demands
        (it refuses ``agent_id`` beside inline fields and closes with 1008). ``voice``,
        ``greeting`` and the formats belong to the agent: passing them too is a
        :class:`voicekit.ConfigError` naming them. ``system_prompt``, ``tools``,
        ``keyterms``, ``turn_detection`` and ``transcription_mode`` may be given: they are
        sent as a second ``session.update`` once the session is ready (``tools`` then
        replaces the agent's tools for this session, its ``http`` tools included, since an
        update replaces the whole list). The log's config records ``agent_id``.
    transcription_mode : {"balanced", "min_latency", "max_accuracy"}, optional
        ``input.transcription_mode``: recognition accuracy against end-of-turn patience
        (live observations: a reply is audible ~2.1-2.6 s after the user stops with
        ``min_latency``, ~2.9-3.2 s with ``balanced``, the service's default, ~4.2-4.5 s
        with ``max_accuracy``). Mutable with :meth:`update`.
    tool_results : {"after_reply_done", "immediate"}
        When a tool's result is sent. ``"after_reply_done"`` (default, the documented rule):
        held until the ``reply.done`` of the reply that asked (the pre-amble).
        ``"immediate"``: as soon as the tool returns; live observations: the service
        accepts it and the answer is audible about 1.0 s sooner. Either way a result whose
        reply was interrupted is dropped.
    on_resume_failure : {"restart", "error"}
        What happens when a dropped session cannot be resumed (live observations: the
        hosted service answered every ``session.resume`` with ``session_not_found``).
        ``"restart"`` (default): a fresh session is opened with the same configuration,
        the conversation so far carried in its system prompt (the original prompt, then
        ``"Conversation so far:"`` and the ``User:`` / ``Agent:`` transcripts, the newest
        4000 characters; without its greeting, since the conversation goes on); the same
        log bundle (named after, and with the ``session_id`` of, the first session) gets a
        ``session.restarted {old_session_id, new_session_id, reason}`` line just before the
        new ``session.ready``, the new session's events and a ``config.epoch`` with
        ``restarted: true``; :attr:`session_id` becomes the new id, :attr:`config` the
        carried one, and :attr:`status` returns to ``"ready"``. A bound session
        (``agent_id``) binds again, the agent's prompt plus the conversation sent after.
        ``"error"``: the session ends with the server's error (:attr:`last_error`).
    audio_in : "mic", "null", WAV path, ndarray, ScriptedUser or Source
        Where the user's audio comes from.
    audio_out : "speaker", "null", WAV path or Sink
        Where the agent's audio goes.
    log_dir : str or path
        Directory of the log bundles; every session writes one.
    input_device, output_device : int or str, optional
        Sound devices for ``"mic"`` / ``"speaker"`` (index or part of the name).
    connect_timeout : float
        Seconds to wait for ``session.ready``. A connection lost before it (a drop, close
        1006, a server restarting) is tried again with backoff within this budget; each
        failed attempt is a ``connection.retry`` line of the log. Auth and configuration
        errors are not retried.
    token : str or callable, optional
        A temporary token (sent as ``?token=``), or a function returning a fresh one: it is
        called before every connection attempt (the first, each retry, each resume), so a
        single-use token is never sent twice. Never logged.
    input_format, output_format : {"audio/pcm", "audio/pcmu", "audio/pcma"}
        Wire encodings; audio is always 24 kHz int16 inside voicekit.

    Attributes
    ----------
    connection : Connection or None
        The link to the agent while the session runs (``connection.drop()`` cuts it as a
        network fault would, for tests and demos; see :mod:`voicekit.testing`).

    Examples
    --------
    >>> s = vk.Session(audio_in=vk.ScriptedUser([vk.Say("hello")]), audio_out="null")
    >>> s.start(); s.wait(); log = s.stop()
    """

    def __init__(
        self,
        backend: Literal["auto", "local", "assemblyai"] = "auto",
        url: str | None = None,
        api_key: str | None = None,
        *,
        voice: str | None = None,
        system_prompt: str | None = None,
        greeting: str | None = None,
        keyterms: Sequence[str] | None = None,
        turn_detection: Any = None,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        audio_in: Any = "mic",
        audio_out: Any = "speaker",
        log_dir: str | os.PathLike[str] | None = "voicekit-logs",
        input_device: int | str | None = None,
        output_device: int | str | None = None,
        connect_timeout: float = 10.0,
        input_format: str = "audio/pcm",
        output_format: str = "audio/pcm",
        token: str | Callable[[], str] | None = None,
        agent_id: str | None = None,
        transcription_mode: str | None = None,
        tool_results: Literal["after_reply_done", "immediate"] = "after_reply_done",
        on_resume_failure: Literal["restart", "error"] = "restart",
    ) -> None:
        check_arguments(
            backend=backend,
            url=url,
            connect_timeout=connect_timeout,
            token=token,
            log_dir=log_dir,
            agent_id=agent_id,
            tool_results=tool_results,
            on_resume_failure=on_resume_failure,
        )
        check_agent_binding(
            agent_id,
            {
                "voice": voice,
                "greeting": greeting,
                "input_format": input_format,
                "output_format": output_format,
            },
        )
        self.backend, self._api_key = resolve_backend(backend, url, api_key)
        if self.backend == "assemblyai" and not self._api_key:
            raise ConfigError(
                "backend 'assemblyai' needs an API key; pass api_key=... or set "
                "ASSEMBLYAI_API_KEY, or use backend='local' for the offline stand-in agent",
                field="api_key",
            )
        self._url = url
        offered = make_tools(tools)
        self.config: SessionConfig = make_config(
            voice=voice,
            system_prompt=system_prompt,
            greeting=greeting,
            keyterms=keyterms,
            turn_detection=turn_detection,
            tools=offered,
            input_format=input_format,
            output_format=output_format,
            transcription_mode=transcription_mode,
        )
        self.agent_id = agent_id
        self.tool_results = tool_results
        self.on_resume_failure = on_resume_failure
        # the conversation so far and the prompt it is carried under, for a restart
        self._conversation = Conversation()
        self._prompt_base = system_prompt
        self._restart_config: SessionConfig | None = None
        self._current_reply: str | None = None
        self._tool_replies: set[str] = set()
        self._call_protocol: dict[str, object] = {}
        self.source: Source = make_source(audio_in, input_device)
        self.sink: Sink = make_sink(audio_out, output_device)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.connect_timeout = float(connect_timeout)
        self._token = token

        self.epoch = 0
        self.log_path: Path | None = None
        self.connection: Connection | None = None
        self._error: BaseException | None = None  # a failure of this side (not the agent's)
        self._t0 = 0.0
        self._bus = Bus(self.now)
        self._bus.source = self.source
        self._playback = Playback(self.sink, self._bus)
        self._tasks = TaskSet(on_error=self._task_failed, logger=log)
        self._tools = ToolRunner(
            offered, self._bus, self._tasks.spawn, self._answer_tool, lambda: self._t0
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._torn_down: asyncio.Task[None] | None = None
        self._result: Any = None
        self._meter = LevelMeter()
        self._last_block: NDArray[np.int16] | None = None
        self._meter_read = time.monotonic()

    # -- state: read from the protocol, never kept twice ------------------------------------
    @property
    def status(self) -> Status:
        """``"idle"``, ``"connecting"``, ``"ready"``, ``"ended"`` or ``"error"``."""
        conn = self.connection
        if conn is None:
            return "error" if self._error is not None else "idle"
        state = str(conn.state)
        return "connecting" if state == "idle" else state  # type: ignore[return-value]

    @property
    def tools(self) -> list[Tool]:
        """The tools offered to the agent (the tool runner's list; ``update(tools=...)``
        replaces it)."""
        return self._tools.tools

    @property
    def session_id(self) -> str | None:
        """The agent's session id (from ``session.ready``; after a restart, the new one's)."""
        return None if self.connection is None else self.connection.session_id

    @property
    def last_error(self) -> BaseException | None:
        """The error that ended the session or the last ``session.error`` (or ``None``)."""
        if self._error is not None:
            return self._error
        return None if self.connection is None else self.connection.last_error

    # -- public API -----------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"<voicekit.Session backend={self.backend!r} status={self.status!r} "
            f"session_id={self.session_id!r} api_key={shown(self._api_key)}>"
        )

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The agent's WebSocket URL (never with a token in it)."""
        return url_without_query(self._connect_url())

    def _connect_url(self) -> str:
        """The URL to connect to, with its ``?token=`` if one was given."""
        if self._url is not None:
            return self._url
        if self.backend == "assemblyai":
            return HOSTED_URL
        from voicekit.local import embedded_agent

        return str(embedded_agent().url)

    @property
    def input_level(self) -> float:
        """The level of the user's audio as sent, in dBFS (a VU-style meter; -120: silence).

        Measured when read (a widget reads it ~10 times a second) from the last block sent,
        so an unread meter costs the audio path nothing.
        """
        block, self._last_block = self._last_block, None
        if block is not None:
            now = time.monotonic()
            self._meter.update(block, seconds=now - self._meter_read)
            self._meter_read = now
        return self._meter.value

    def now(self) -> float:
        """Seconds on the session clock (0 when the session started)."""
        return time.monotonic() - self._t0

    def on(self, event_type: str, fn: Observer) -> None:
        """Call ``fn(line)`` for every log line of ``event_type`` (``"*"``: all).

        ``line`` is a :class:`LogLine`: a read-only mapping with the keys of the log's
        line — ``t`` (session seconds), ``dir`` (``"recv"``, ``"send"`` or ``"local"``),
        ``type`` and the event's fields — and, for received lines, the typed protocol event
        as ``line.event``. Observers run on the session's observer thread, in order, off
        the audio path: a slow one delays other observers, never audio. Marshal to your own
        thread (widgets do) before touching UI state. An observer that raises is logged and
        kept. ``stop()`` returns after observers have seen the last line (waiting at most
        2 s for a slow one).
        """
        self._bus.on(event_type, fn)

    def events(self, timeout: float | None = None) -> Iterator[LogLine]:
        """A thread-safe iterator of the session's log lines from now on.

        Ends when the session ends, or when no line arrived for ``timeout`` seconds.
        """
        return self._bus.subscribe(timeout)

    def start(self, wait: bool = True) -> Session:
        """Connect, configure and start audio.

        Parameters
        ----------
        wait : bool
            Return when ``session.ready`` arrives (default), raising the server's error
            as :class:`voicekit.ServerError` (with ``code`` and ``param``) or a
            :class:`voicekit.ConnectionError`. With ``wait=False`` return at once; see
            :attr:`status` and :attr:`last_error`.
        """
        if self.status != "idle" or self._loop is not None:
            raise VoiceKitError(
                f"session already {self.status}; create a new vk.Session to start again"
            )
        url = self._connect_url()  # starts the embedded agent if needed, in this thread
        from voicekit._version import __version__

        self.connection = Connection(
            self.config,
            url=lambda: url,
            api_key=self._api_key,
            token=self._token,
            connect_timeout=self.connect_timeout,
            bus=self._bus,
            dispatch=self._dispatch,
            lost=self._teardown,
            user_agent=f"voicekit/{__version__}",
            spawn=self._tasks.spawn,
            agent_id=self.agent_id,
            tool_results=self.tool_results,
            restart=self._restarted_config if self.on_resume_failure == "restart" else None,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="voicekit-session", daemon=True
        )
        self._thread.start()
        _live_sessions.add(self)
        fut = asyncio.run_coroutine_threadsafe(self._astart(), self._loop)
        if wait:
            try:
                fut.result(self.connect_timeout + 5.0)
            except BaseException:
                self._shutdown_thread()
                raise
        return self

    async def astart(self) -> Session:
        """``start()`` for asyncio applications: awaits ``session.ready`` without blocking."""
        await asyncio.to_thread(self.start)
        return self

    async def astop(self) -> Any:
        """``stop()`` for asyncio applications."""
        return await asyncio.to_thread(self.stop)

    def stop(self) -> Any:
        """End the session and close its log; returns the :class:`voicekit.SessionLog`.

        Idempotent and bounded: sends ``session.end``, waits up to 2 s for
        ``session.ended``, closes socket, devices and log, and stops the thread.
        """
        if self._loop is None or self._thread is None:
            return self._result
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._astop(), self._loop).result(STOP_TIMEOUT_S + 3.0)
        self._shutdown_thread()
        return self._result

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a scripted user's script is done (returns False on timeout).

        Only meaningful with ``audio_in=vk.ScriptedUser(...)``; with other sources it
        returns at once. Never call it from an observer.
        """
        waiter = getattr(self.source, "wait", None)
        return True if waiter is None else bool(waiter(timeout))

    def update(self, **changes: Any) -> None:
        """Change the configuration mid-session and start a new config epoch.

        Parameters
        ----------
        **changes
            Any of ``system_prompt``, ``keyterms``, ``turn_detection`` (a
            :class:`voicekit.TurnDetection`; unset fields keep their value), ``tools``,
            ``transcription_mode`` (``"balanced"``, ``"min_latency"`` or
            ``"max_accuracy"``).

        Raises
        ------
        ConfigError
            For invalid values, or for fields fixed for the session (``voice``,
            ``greeting``, formats), saying that a restart is needed.
        """
        new, tools = updated_config(self.config, changes)
        if self._loop is None or self.status != "ready":
            self.config = new  # before start: just the initial config
            if tools is not None:
                self._tools.tools = tools
        else:
            asyncio.run_coroutine_threadsafe(self._aupdate(new, tools), self._loop).result(5.0)
        if "system_prompt" in changes:  # applied: what a restart carries the conversation on
            self._prompt_base = changes["system_prompt"]

    def say(self, text: str | None = None) -> None:
        """Ask the agent to speak now (``reply.create``), with ``text`` as instructions."""
        if self._loop is None or self.status != "ready":
            raise VoiceKitError("session is not ready; call start() first")
        asyncio.run_coroutine_threadsafe(self._asay(text), self._loop).result(5.0)

    # -- loop side: start, update, say -----------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        from voicekit._version import __version__

        return {
            "voicekit": __version__,
            "backend": self.backend,
            "url": self.url,
            "sample_rate": SAMPLE_RATE,
            "audio_in": self.source.describe(),
            "audio_out": self.sink.describe(),
            "config": self._config_dict(),
        }

    def _config_dict(self, config: SessionConfig | None = None) -> dict[str, Any]:
        """A configuration as the log records it: the wire fields, and ``agent_id`` when the
        session is bound to a stored agent."""
        fields = (config or self.config).to_dict()
        if self.agent_id is not None:
            fields = {"agent_id": self.agent_id, **fields}
        return fields

    def _restarted_config(self) -> SessionConfig:
        """The configuration of the fresh session that replaces one that cannot resume (loop
        thread): the conversation so far carried in the system prompt, no greeting."""
        prompt = carried_prompt(self._prompt_base, self._conversation.turns)
        self._restart_config = dataclasses.replace(self.config, system_prompt=prompt, greeting=None)
        return self._restart_config

    async def _astart(self) -> None:
        conn = self.connection
        assert conn is not None
        self._t0 = time.monotonic()
        if self.log_dir is not None:
            from voicekit.logformat import LogWriter

            self._bus.writer = LogWriter(self.log_dir, meta=self._meta())
            self.log_path = Path(self._bus.writer.path)
        self._bus.local("session.start", backend=self.backend, url=self.url)
        self._bus.local("config.epoch", epoch=0, config=self._config_dict())
        try:
            await conn.open()
        except BaseException as exc:
            self._error = exc
            conn.protocol.fail()
            self._bus.local("error", message=str(exc), error=type(exc).__name__)
            await self._teardown()
            raise
        link = AudioLink(asyncio.get_running_loop(), self.now, self._on_push, self._bus.local)
        self.source.start(link)
        self.sink.start(link)
        self._playback.attach()
        pacer = Pacer(
            self.source,
            self._t0,
            sending=lambda: conn.state == "ready",
            send=self._send_user_audio,
            flush=conn.flush_and_send,
            poll=self._playback.poll,
            bus=self._bus,
        )
        self._tasks.spawn(pacer.run(), "voicekit-pacer")

    async def _aupdate(self, new: SessionConfig, tools: list[Tool] | None) -> None:
        assert self.connection is not None
        patch = self.connection.protocol.update(new)  # the one diff of old and new
        if not patch:
            return
        self.config = new
        if tools is not None:
            self._tools.tools = tools
        self.epoch += 1
        self._bus.local(
            "config.epoch", epoch=self.epoch, config=self._config_dict(new), patch=patch
        )
        self.connection.flush()

    async def _asay(self, text: str | None) -> None:
        assert self.connection is not None
        self.connection.protocol.create_reply(text)
        self.connection.flush()

    def _answer_tool(self, call_id: str, result: str, is_error: bool) -> None:
        assert self.connection is not None
        protocol = self.connection.protocol
        if self._call_protocol.pop(call_id, protocol) is not protocol:
            # asked by a session that was since replaced (restart): nobody waits for it
            self._bus.local("tool.dropped", call_id=call_id, reason="session restarted")
            return
        protocol.send_tool_result(call_id, result, is_error=is_error)
        self.connection.flush()

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self._bus.local("error", where=name, message=repr(exc))

    # -- received events: logged, then each to the part that owns it ---------------------------
    def _dispatch(self, event: Event) -> None:
        match event:
            case ReplyAudio(reply_id=reply_id):
                samples = self._decode_agent_audio(event)
                fields: dict[str, Any] = {"reply_id": reply_id, "samples": len(samples)}
                if event.timestamp is not None:
                    fields["timestamp"] = event.timestamp
                if event.extra:
                    fields.update(event.extra)
                self._bus.emit("recv", "reply.audio", fields, event)
                self._playback.audio(str(reply_id or ""), samples)
                return
            case UnknownEvent():
                self._bus.emit("recv", event.kind, _fields(event), event)
                return
        self._bus.emit("recv", event.type, _fields(event), event)
        match event:
            case SessionReady(session_id=session_id, config=echo):
                self._tools.server_side = _http_tools(echo)
                restarted, self._restart_config = self._restart_config, None
                if restarted is not None:  # a fresh session in place of one lost
                    self._on_restarted(restarted)
                    return
                if self.agent_id is not None and self._prompt_base is None and echo:
                    prompt = echo.get("system_prompt")  # the stored agent's, for a restart
                    self._prompt_base = prompt if isinstance(prompt, str) else None
                writer = self._bus.writer
                if writer is not None and session_id:
                    writer.set_session_id(session_id)
                    self.log_path = Path(writer.path)
            case InputSpeechStarted():
                td = self.config.turn_detection
                if td is None or td.interrupt_response is not False:
                    # with interrupt_response false the agent's reply goes on (§5.1.3):
                    # flushing here would cut what the user is meant to hear
                    self._playback.barge_in("speech_started")
            case ReplyStarted(reply_id=reply_id):
                self._current_reply = reply_id
                self._playback.reply(reply_id)
            case ReplyDone(reply_id=reply_id, status=status):
                rid = str(reply_id or "")
                self._playback.done(
                    rid, str(status or "completed"), tool_call=rid in self._tool_replies
                )
                self._tool_replies.discard(rid)
            case ToolCall(call_id=call_id, name=name, arguments=arguments):
                if self._current_reply is not None:
                    self._tool_replies.add(self._current_reply)
                if self.connection is not None and not self._tools.informational(name):
                    self._call_protocol[call_id] = self.connection.protocol
                self._tools.call(call_id, name, dict(arguments or {}))
            case TranscriptUser(text=text):
                self._conversation.user(text)
            case TranscriptAgent(text=text):
                self._conversation.agent(text)

    def _on_restarted(self, config: SessionConfig) -> None:
        """The fresh session after a failed resume is ready: its configuration is a new
        epoch (the protocol sent it whole; ``patch`` is what differs from the last)."""
        patch = {"system_prompt": config.system_prompt or ""}
        self.config = config
        self.epoch += 1
        self._current_reply = None
        self._tool_replies.clear()
        self._bus.local(
            "config.epoch",
            epoch=self.epoch,
            config=self._config_dict(config),
            patch=patch,
            restarted=True,
        )

    def _decode_agent_audio(self, event: ReplyAudio) -> NDArray[np.int16]:
        raw = event.audio_bytes()
        encoding = self.config.output_format.encoding
        if encoding == "audio/pcm" and len(raw) % 2:  # played without its last byte
            self._bus.local(
                "error",
                where="reply.audio",
                message=f"reply.audio data has an odd number of PCM16 bytes ({len(raw)}); "
                "the last byte was dropped",
            )
        return decode_from_wire(raw, encoding)

    # -- user audio --------------------------------------------------------------------
    def _on_push(self, samples: NDArray[np.int16], offset: int) -> None:
        """Audio from a push source (mic, browser), on the loop thread."""
        conn = self.connection
        if conn is not None and conn.state == "ready":
            self._send_user_audio(samples, offset)
            conn.flush()

    def _send_user_audio(self, samples: NDArray[np.int16], offset: int) -> None:
        assert self.connection is not None
        writer = self._bus.writer
        if writer is not None:
            writer.write_user_audio(offset, samples)
        self._last_block = samples  # for input_level, which measures when it is read
        wire = encode_for_wire(samples, self.config.input_format.encoding)
        self.connection.send_audio(wire, offset, len(samples))

    # -- ending --------------------------------------------------------------------------
    async def _astop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.connection is not None:
            await self.connection.end(STOP_TIMEOUT_S)
        await self._teardown()

    async def _teardown(self) -> None:
        """Close socket, devices and log; cancel tasks. Idempotent: a second caller (``stop()``
        while a failed resume tears down) waits for the first one's teardown to finish."""
        if self._torn_down is None:
            # its own task, outside the task set it cancels, so no caller's cancellation
            # can cut it half-way
            self._torn_down = asyncio.get_running_loop().create_task(
                self._close_everything(), name="voicekit-teardown"
            )
        await asyncio.shield(self._torn_down)

    async def _close_everything(self) -> None:
        conn = self.connection
        await self._tasks.cancel(0.0, keep=lambda t: t.get_name() == "voicekit-send")
        with contextlib.suppress(Exception):
            self.source.stop()
        with contextlib.suppress(Exception):
            self._playback.poll()
            self.sink.stop()
        if conn is not None:
            await conn.close()
        await self._tasks.cancel(1.0)
        self._playback.stop_all("session_end")
        if conn is not None:
            conn.protocol.finish()
        self._bus.local("session.stop", status=self.status)
        writer = self._bus.writer
        self._bus.close(STOP_TIMEOUT_S)
        if writer is not None:
            writer.close()
            from voicekit.logformat import load_log

            with contextlib.suppress(Exception):
                self._result = load_log(writer.path)

    def _shutdown_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self.status in ("connecting", "ready"):
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(STOP_TIMEOUT_S + 3)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_other_tasks(2.0), loop).result(3.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None
        _live_sessions.discard(self)


def _http_tools(config: Any) -> frozenset[str]:
    """Names of the server-side (``http``) tools in a ``session.ready`` config echo."""
    tools = config.get("tools") if isinstance(config, dict) else None
    return frozenset(
        str(t.get("name"))
        for t in tools or []
        if isinstance(t, dict) and t.get("http") and t.get("name")
    )


def _fields(event: Event) -> dict[str, Any]:
    """A received event's fields as its log line holds them (no resume token)."""
    fields = event.to_dict()
    fields.pop("type", None)
    if isinstance(event, SessionReady):
        fields.pop("resume_token", None)
    return fields


def _stop_all_at_exit() -> None:
    """A session left running at interpreter exit is stopped and its log closed."""
    for session in list(_live_sessions):
        with contextlib.suppress(Exception):
            session.stop()


atexit.register(_stop_all_at_exit)
