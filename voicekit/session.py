"""The background session: one socket to a voice agent, driven from a notebook.

Runtime layer. A :class:`Session` owns one asyncio loop in one daemon thread. On that loop:

- a reader task feeds server frames to the sans-I/O :class:`~voicekit.protocol.ClientProtocol`,
  logs every event, hands agent audio to the sink and dispatches events to observers;
- a pacer task ticks every 50 ms on absolute deadlines: it asks paced sources for the next
  block, sends it (``input.audio``), polls the sink for what was played, and writes both
  audio tracks of the log on the session clock;
- tool calls run as tasks (sync tools in worker threads) and their results go back through
  the protocol's ``tool.result`` timing rule (§8.4).

Notebook cells never run any of this: ``start()``/``stop()``/``update()``/``say()`` hand work
to the loop with ``run_coroutine_threadsafe`` and wait for it with a timeout, so a cell that
blocks (``time.sleep(5)``) stalls no audio. Observers (``on``) run on the session thread and
must return quickly; widgets marshal to the kernel's loop themselves.

The one clock: every time is ``time.monotonic()`` minus the session's start, in seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from voicekit._aio import cancel_other_tasks
from voicekit.audio.level import LevelMeter
from voicekit.audio.sinks import Played, Sink, make_sink
from voicekit.audio.sources import SAMPLE_RATE, AudioLink, Source, make_source
from voicekit.errors import (
    AuthError,
    ConfigError,
    ConnectionClosed,
    ServerError,
    VoiceKitError,
)
from voicekit.errors import (
    ConnectionError as VKConnectionError,
)
from voicekit.logformat.writer import MaskedLogger, mask
from voicekit.tools import Tool, as_tool

__all__ = ["HOSTED_URL", "Session", "resolve_backend"]

log = logging.getLogger("voicekit.session")

HOSTED_URL = "wss://agents.assemblyai.com/v1/ws"
BLOCK = 1200  # 50 ms at 24 kHz
STOP_TIMEOUT_S = 2.0
# A paced source (script, WAV, array) whose loop turn came late sends the blocks it missed at
# once, up to this much: its audio is virtual and never lost to a busy machine. Further
# behind (a stall), the pacer skips to now and logs an input.gap instead of a burst.
CATCH_UP_SAMPLES = SAMPLE_RATE  # 1 s
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


def _mask(secret: str | None) -> str:
    return "none" if not secret else "set (hidden)"


@dataclasses.dataclass
class _ReplyPlayback:
    """Bookkeeping of one reply's audio: received, played, dropped."""

    reply_id: str
    received: int = 0
    played: int = 0
    dropped: int = 0
    end: int | None = None  # session sample index after the last played sample
    started: bool = False
    done_status: str | None = None
    stopped: bool = False


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
        Python functions offered to the agent (see :func:`voicekit.tools.as_tool`).
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
    ) -> None:
        from voicekit.protocol import AudioFormat, SessionConfig, check_voice

        if backend not in ("auto", "local", "assemblyai"):
            raise ConfigError(
                f"backend ({backend!r}) must be 'auto', 'local' or 'assemblyai'; "
                "or pass url=... for another agent",
                field="backend",
            )
        self.backend, self._api_key = resolve_backend(backend, url, api_key)
        if self.backend == "assemblyai" and not self._api_key:
            raise ConfigError(
                "backend 'assemblyai' needs an API key; pass api_key=... or set "
                "ASSEMBLYAI_API_KEY, or use backend='local' for the offline stand-in agent",
                field="api_key",
            )
        if url is not None and not (
            isinstance(url, str) and url.startswith(("ws://", "wss://")) and len(url) > 6
        ):
            raise ConfigError(
                "url must be a WebSocket address starting with ws:// or wss://, e.g. "
                "ws://127.0.0.1:8765/v1/ws (python -m voicekit serve prints one); got "
                + (f"one starting {url[:6]!r}" if isinstance(url, str) else type(url).__name__),
                field="url",
            )
        self._url = url
        if voice is not None:
            check_voice(voice)
        if isinstance(keyterms, str):
            raise ConfigError(
                f"keyterms must be a list of words or phrases, e.g. keyterms=[{keyterms!r}], "
                "not a single string",
                field="keyterms",
            )
        given: Any = tools  # checked for what the annotation promises
        if callable(given) or isinstance(given, str) or not isinstance(given, Sequence):
            raise ConfigError(
                f"tools must be a list of functions, e.g. tools=[get_weather]; got "
                f"{type(tools).__name__}",
                field="tools",
            )
        if not (
            isinstance(connect_timeout, (int, float))
            and not isinstance(connect_timeout, bool)
            and 0 < connect_timeout <= 300
        ):
            raise ConfigError(
                f"connect_timeout ({connect_timeout!r}) must be a number of seconds in (0, 300], "
                "e.g. 10",
                field="connect_timeout",
            )
        if token is not None and not (isinstance(token, str) or callable(token)):
            raise ConfigError(
                f"token must be a temporary token (str) or a function returning a fresh one, "
                f"got {type(token).__name__}",
                field="token",
            )
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise ConfigError(
                f"log_dir must be a directory path (str or pathlib.Path) or None for no log, "
                f"got {type(log_dir).__name__}",
                field="log_dir",
            )
        self.tools: list[Tool] = [as_tool(t) for t in tools]
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ConfigError(f"tools have duplicate names {names}; give each a unique name")
        sample_rates = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}
        for field, fmt in (("input_format", input_format), ("output_format", output_format)):
            if fmt not in sample_rates:
                raise ConfigError(
                    f"{field} ({fmt!r}) must be one of {sorted(sample_rates)}", field=field
                )
        self.config: Any = SessionConfig(
            system_prompt=system_prompt,
            greeting=greeting,
            voice=voice,
            keyterms=list(keyterms) if keyterms is not None else None,
            turn_detection=turn_detection,
            tools=[t.definition() for t in self.tools] or None,
            input_format=AudioFormat(input_format, sample_rates[input_format]),
            output_format=AudioFormat(output_format, sample_rates[output_format]),
        )
        self.source: Source = make_source(audio_in, input_device)
        self.sink: Sink = make_sink(audio_out, output_device)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.connect_timeout = connect_timeout
        self._token = token
        self._tokens_sent: collections.deque[str] = collections.deque(maxlen=16)
        self._handshaking = False

        self.status: Status = "idle"
        self.last_error: BaseException | None = None
        self.session_id: str | None = None
        self.log_path: Path | None = None
        self.epoch = 0
        self._observers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._subscribers: list[queue.SimpleQueue[dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._ws: Any = None
        self._proto: Any = None
        self._writer: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready: asyncio.Future[None] | None = None
        self._ended: asyncio.Event | None = None
        self._stopping = False
        self._user_offset = 0
        self._replies: dict[str, _ReplyPlayback] = {}
        self._playing: str | None = None
        self._resume_token: str | None = None
        self._result: Any = None
        self._link: AudioLink | None = None
        # agent audio the reader got before start() wired the sink (the greeting's first
        # chunks can come in the same read as session.ready); written once the sink starts
        self._early_audio: list[tuple[str, NDArray[np.int16]]] = []
        self._sent_audio: collections.deque[tuple[int, int]] = collections.deque()
        self._outbox: collections.deque[tuple[Any, str]] = collections.deque()
        self._sender: asyncio.Task[Any] | None = None
        self._meter = LevelMeter()

    # -- public API -----------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"<voicekit.Session backend={self.backend!r} status={self.status!r} "
            f"session_id={self.session_id!r} api_key={_mask(self._api_key)}>"
        )

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The agent's WebSocket URL (never with a token in it)."""
        return self._url_for_log()

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
        """The level of the user's audio as sent, in dBFS (a VU-style meter; -120: silence)."""
        return self._meter.value

    def now(self) -> float:
        """Seconds on the session clock (0 when the session started)."""
        return time.monotonic() - self._t0

    def on(self, event_type: str, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(event)`` for every event of ``event_type`` (``"*"``: all events).

        ``event`` is the log line as a dict: ``t`` (session seconds), ``dir``
        (``"recv"``, ``"send"`` or ``"local"``), ``type`` and the event's fields.
        Observers run on the session's thread: return quickly, never block, and marshal
        to your own thread (widgets do) before touching UI state. An observer that raises
        is logged and kept.
        """
        with self._lock:
            self._observers.setdefault(event_type, []).append(fn)

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """A thread-safe iterator of the session's events from now on.

        Ends when the session ends, or when no event arrived for ``timeout`` seconds.
        """
        q: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        with self._lock:
            self._subscribers.append(q)
        try:
            while True:
                try:
                    item = q.get(timeout=timeout)
                except queue.Empty:
                    return
                if item is None:
                    return
                yield item
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(q)

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
        if self.status not in ("idle",):
            raise VoiceKitError(
                f"session already {self.status}; create a new vk.Session to start again"
            )
        url = self._connect_url()  # starts the embedded agent if needed, in this thread
        self.status = "connecting"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="voicekit-session", daemon=True
        )
        self._thread.start()
        _live_sessions.add(self)
        fut = asyncio.run_coroutine_threadsafe(self._astart(url), self._loop)
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
            :class:`voicekit.TurnDetection`; unset fields keep their value), ``tools``.

        Raises
        ------
        ConfigError
            For invalid values, or for fields fixed for the session (``voice``,
            ``greeting``, formats), saying that a restart is needed.
        """
        from voicekit.protocol import diff

        new = self._changed_config(changes)
        patch = diff(self.config, new)
        if not patch:
            return
        if self._loop is None or self.status != "ready":
            self.config = new  # before start: just the initial config
            return
        asyncio.run_coroutine_threadsafe(self._aupdate(new, patch), self._loop).result(5.0)

    def say(self, text: str | None = None) -> None:
        """Ask the agent to speak now (``reply.create``), with ``text`` as instructions."""
        if self._loop is None or self.status != "ready":
            raise VoiceKitError("session is not ready; call start() first")
        asyncio.run_coroutine_threadsafe(self._asay(text), self._loop).result(5.0)

    # -- config ---------------------------------------------------------------------
    def _changed_config(self, changes: dict[str, Any]) -> Any:
        from voicekit.protocol import TurnDetection

        allowed = {
            "system_prompt",
            "keyterms",
            "turn_detection",
            "tools",
            "voice",
            "greeting",
        }
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ConfigError(
                f"update() got unknown field(s) {unknown}; it accepts {sorted(allowed)}",
                field=unknown[0],
            )
        fields: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "turn_detection":
                if isinstance(value, dict):
                    value = TurnDetection(**value)
                old = self.config.turn_detection or TurnDetection()
                merged = {
                    f.name: getattr(value, f.name)
                    for f in dataclasses.fields(value)
                    if getattr(value, f.name) is not None
                }
                value = dataclasses.replace(old, **merged)
            elif key == "tools":
                self.tools = [as_tool(t) for t in value]
                value = [t.definition() for t in self.tools] or None
            elif key == "keyterms" and value is not None:
                value = list(value)
            fields[key] = value
        return dataclasses.replace(self.config, **fields)

    # -- loop side: start, stop, update ---------------------------------------------
    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("voicekit session task %s failed: %r", task.get_name(), exc)
            self._emit("error", where=task.get_name(), message=repr(exc))

    def _meta(self) -> dict[str, Any]:
        from voicekit._version import __version__

        return {
            "voicekit": __version__,
            "backend": self.backend,
            "url": self._url_for_log(),
            "sample_rate": SAMPLE_RATE,
            "audio_in": self.source.describe(),
            "audio_out": self.sink.describe(),
            "config": self.config.to_dict(),
        }

    def _url_for_log(self) -> str:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self._connect_url())
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    async def _astart(self, url: str) -> None:
        from voicekit.logformat import LogWriter
        from voicekit.protocol import ClientProtocol

        loop = asyncio.get_running_loop()
        self._t0 = time.monotonic()
        self._ended = asyncio.Event()
        self._ready = loop.create_future()
        if self.log_dir is not None:
            self._writer = LogWriter(self.log_dir, meta=self._meta())
            self.log_path = Path(self._writer.path)
        self._emit("session.start", backend=self.backend, url=self._url_for_log())
        self._emit("config.epoch", epoch=0, config=self.config.to_dict())
        self._proto = ClientProtocol(self.config)
        try:
            await self._handshake(url)
        except BaseException as exc:
            await self._fail(exc)
            raise
        link = AudioLink(loop, self.now, self._on_push, self._emit)
        self._link = link
        self.source.start(link)
        self.sink.start(link)
        early, self._early_audio = self._early_audio, []
        for reply_id, samples in early:
            self.sink.write(reply_id, samples)
        self._spawn(self._pacer(), "voicekit-pacer")

    async def _handshake(self, url: str) -> None:
        """Connect and wait for ``session.ready``, trying again with backoff while a lost
        connection is worth it and ``connect_timeout`` lasts."""
        from voicekit.protocol import backoff_delays

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delays = backoff_delays(base=0.1, cap=2.0, budget=self.connect_timeout)
        self._handshaking = True
        try:
            for attempt in itertools.count(1):
                self._ready = loop.create_future()
                try:
                    await self._connect(url, timeout=deadline - loop.time())
                    await asyncio.wait_for(
                        asyncio.shield(self._ready), max(0.0, deadline - loop.time())
                    )
                    return
                except TimeoutError:
                    tries = f" ({attempt} attempts)" if attempt > 1 else ""
                    raise VKConnectionError(
                        f"no session.ready from {self._url_for_log()} within "
                        f"{self.connect_timeout:g} s{tries}; check the URL and that the agent "
                        "is running, or raise connect_timeout"
                    ) from None
                except (VKConnectionError, ServerError) as exc:
                    if not self._retryable(exc):
                        raise
                    delay = next(delays, None)
                    if delay is None or loop.time() + delay >= deadline:
                        raise _gave_up(exc, attempt, self.connect_timeout) from None
                    self._emit(
                        "connection.retry", attempt=attempt, error=str(exc), delay=round(delay, 3)
                    )
                    await asyncio.sleep(delay)
        finally:
            self._handshaking = False

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, _HandshakeLost):
            return True
        code = exc.code if isinstance(exc, ConnectionClosed) else None
        return isinstance(exc, (ConnectionClosed, ServerError)) and bool(
            self._proto.handshake_retryable(code)
        )

    async def _fail(self, exc: BaseException) -> None:
        self.status = "error"
        self.last_error = exc
        self._emit("error", message=str(exc), error=type(exc).__name__)
        await self._teardown()

    async def _connect(self, url: str, resume: bool = False, timeout: float | None = None) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        headers = {}
        credential = self._resume_token if resume and self._resume_token else self._api_key
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        url = self._with_fresh_token(url)
        _abort(self._ws)  # a connection a failed attempt left open: its socket goes
        timeout = self.connect_timeout if timeout is None else max(0.01, timeout)
        where = self._url_for_log()
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    url,
                    additional_headers=headers,
                    max_size=None,
                    open_timeout=timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    user_agent_header=f"voicekit/{self._meta()['voicekit']}",
                    logger=MaskedLogger("websockets.client", self._secrets),
                ),
                timeout,
            )
        except TimeoutError:
            raise  # the handshake's budget is spent: the caller says so
        except (ConnectionRefusedError, socket.gaierror) as exc:  # nobody there: no retry
            raise VKConnectionError(
                f"cannot connect to {where}: {exc}; check the URL, the network, "
                "or use backend='local' for the offline stand-in agent"
            ) from None
        except OSError as exc:  # reset, broken pipe: lost on the way, worth another try
            raise _HandshakeLost(
                f"connection to {where} lost during the handshake: {exc}"
            ) from None
        except Exception as exc:  # handshake refused (HTTP 401/403 ...) or cut
            text = mask(str(exc), self._secrets())
            if "401" in text or "403" in text:
                raise AuthError(
                    f"the agent refused the credentials ({text}); check api_key or "
                    "ASSEMBLYAI_API_KEY"
                ) from None
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
            if status is None or status >= 500:  # no valid HTTP answer, or a server error
                raise _HandshakeLost(f"cannot connect to {where}: {text}") from None
            raise VKConnectionError(f"cannot connect to {where}: {text}") from None
        if resume:
            self._proto.resume()
        else:
            self._proto.connect()
        self._flush()
        self._spawn(self._reader(self._ws), "voicekit-reader")

    def _with_fresh_token(self, url: str) -> str:
        """``url`` with this attempt's ``?token=``: a fresh one when ``token`` mints them."""
        if self._token is None:
            return url
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        token = self._token if isinstance(self._token, str) else self._token()
        if not isinstance(token, str) or not token:
            raise ConfigError(
                f"the token function returned {type(token).__name__}, not a token string",
                field="token",
            )
        self._tokens_sent.append(token)
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "token"]
        return urlunsplit(parts._replace(query=urlencode([*query, ("token", token)])))

    def _secrets(self) -> list[str]:
        """This session's credentials: API key, resume token, every token it sent."""
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(self._url or "").query)
        found = [self._api_key, self._resume_token, *query.get("token", []), *self._tokens_sent]
        return [s for s in found if s]

    def _flush(self, *, spawn: bool = True) -> None:
        """Log what the protocol has queued and hand it to the sender.

        With ``spawn=False`` the caller (the pacer) sends it itself with
        :meth:`_send_queued`, saving a task and a loop iteration per 50 ms block.
        """
        import json

        ws = self._ws
        for msg in self._proto.data_to_send():
            kind = msg.get("type")
            if kind == "input.audio":
                offset, n = self._sent_audio.popleft() if self._sent_audio else (None, 0)
                self._emit_line("send", "input.audio", offset=offset, samples=n)
            else:
                self._emit_line("send", str(kind), **{k: v for k, v in msg.items() if k != "type"})
            if ws is not None:
                self._outbox.append((ws, json.dumps(msg)))
        if spawn and self._outbox and self._sender is None:
            self._sender = self._spawn(self._send_queued(), "voicekit-send")

    async def _send_queued(self) -> None:
        """Send queued messages in order (one sender at a time; frames go out in order)."""
        if self._sender is None:
            self._sender = asyncio.current_task()
        try:
            while self._outbox:
                ws, text = self._outbox.popleft()
                with contextlib.suppress(Exception):  # a closed socket shows up in the reader
                    await ws.send(text)
        finally:
            if self._sender is asyncio.current_task():
                self._sender = None

    async def _reader(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed as WSClosed

        close_code: int | None = None
        reason = ""
        try:
            async for frame in ws:
                self._on_frame(frame)
        except WSClosed:
            pass
        finally:
            close_code = ws.close_code
            reason = ws.close_reason or ""
        if ws is self._ws:
            await self._on_closed(close_code, reason)

    def _on_frame(self, frame: str | bytes) -> None:
        from voicekit.errors import ProtocolError

        try:
            events = self._proto.receive(frame)
        except ProtocolError as exc:
            preview = frame[:200] if isinstance(frame, str) else f"<{len(frame)} bytes>"
            self._emit("error", where="recv", message=str(exc), frame=str(preview))
            return
        for event in events:
            try:
                self._on_event(event)
            except Exception as exc:  # one bad event never kills the session thread
                log.exception("voicekit: failed to handle %s", getattr(event, "type", event))
                self._emit("error", where=getattr(event, "type", "?"), message=repr(exc))
        self._flush()

    def _on_event(self, event: Any) -> None:
        from voicekit.protocol import UnknownEvent

        kind = event.kind if isinstance(event, UnknownEvent) else event.type
        fields = event.to_dict()
        fields.pop("type", None)
        if kind == "reply.audio":
            samples = self._decode_agent_audio(fields.pop("data", ""))
            fields["samples"] = len(samples)
            line = self._emit_line("recv", kind, **fields)
            self._on_reply_audio(str(fields.get("reply_id", "")), samples)
            return
        if kind == "session.ready":
            fields.pop("resume_token", None)
        line = self._emit_line("recv", kind, **fields)
        if kind == "session.ready":
            self.session_id = getattr(event, "session_id", None)
            self._resume_token = getattr(event, "resume_token", None)
            if self._writer is not None and self.session_id:
                self._writer.set_session_id(self.session_id)
                self.log_path = Path(self._writer.path)
            self.status = "ready"
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "session.error":
            err = ServerError(
                str(fields.get("message", "")),
                code=str(fields.get("code", "")),
                param=fields.get("param"),
            )
            self.last_error = err
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(
                    AuthError(f"{err}; check api_key or ASSEMBLYAI_API_KEY")
                    if err.code == "unauthorized"
                    else err
                )
        elif kind == "session.ended":
            if self._ended is not None:
                self._ended.set()
        elif kind == "input.speech.started":
            td = self.config.turn_detection
            if td is None or td.interrupt_response is not False:
                # with interrupt_response false the agent's reply goes on (protocol §5.1.3):
                # flushing here would cut what the user is meant to hear
                self._barge_in("speech_started")
        elif kind == "reply.started":
            rid = str(fields.get("reply_id", ""))
            self._replies.setdefault(rid, _ReplyPlayback(rid))
        elif kind == "reply.done":
            rid = str(fields.get("reply_id", ""))
            rec = self._replies.setdefault(rid, _ReplyPlayback(rid))
            rec.done_status = str(fields.get("status") or "completed")
            if rec.done_status == "interrupted":
                self._barge_in("interrupted", only=rid)
            self._maybe_stop_playback(rec)
        elif kind == "tool.call":
            self._on_tool_call(event, fields)
        del line

    def _decode_agent_audio(self, data: str) -> NDArray[np.int16]:
        from voicekit.audio import b64decode_audio, decode_from_wire

        raw = b64decode_audio(data)
        encoding = self.config.output_format.encoding
        if encoding == "audio/pcm" and len(raw) % 2:  # played without its last byte
            self._emit(
                "error",
                where="reply.audio",
                message=f"reply.audio data has an odd number of PCM16 bytes ({len(raw)}); "
                "the last byte was dropped",
            )
        return np.asarray(decode_from_wire(raw, encoding), np.int16)

    # -- agent audio and playback ----------------------------------------------------
    def _on_reply_audio(self, reply_id: str, samples: NDArray[np.int16]) -> None:
        rec = self._replies.setdefault(reply_id, _ReplyPlayback(reply_id))
        if rec.done_status == "interrupted" or rec.stopped:
            rec.dropped += len(samples)  # late audio of an interrupted reply is not played
            return
        rec.received += len(samples)
        if self._link is None:
            self._early_audio.append((reply_id, samples))
            return
        self.sink.write(reply_id, samples)

    def _barge_in(self, reason: str, only: str | None = None) -> None:
        """Flush playback (on input.speech.started, and again on reply.done interrupted).

        Flush first, then poll: a device callback may take a block between the two, and
        that block is heard, so it must count as played before ``playback.stop``.
        """
        dropped = self.sink.flush()
        for rid, samples in self._early_audio:
            dropped[rid] = dropped.get(rid, 0) + len(samples)
        self._early_audio = [(r, a) for r, a in self._early_audio if only is not None and r != only]
        self._poll_sink()
        for rid, n in dropped.items():
            if only is not None and rid != only:
                continue
            rec = self._replies.setdefault(rid, _ReplyPlayback(rid))
            rec.dropped += n
        for rec in self._replies.values():
            if rec.started and not rec.stopped and (only is None or rec.reply_id == only):
                self._stop_playback(rec, reason)

    def _poll_sink(self) -> None:
        played: list[Played] = self.sink.poll()
        for p in played:
            rec = self._replies.setdefault(p.reply_id, _ReplyPlayback(p.reply_id))
            if not rec.started:
                rec.started = True
                self._playing = p.reply_id
                self._emit("playback.start", reply_id=p.reply_id, offset=p.offset)
            rec.played += len(p.samples)
            rec.end = p.offset + len(p.samples)
            if self._writer is not None:
                self._writer.write_agent_audio(p.offset, p.samples)
        for rec in list(self._replies.values()):
            self._maybe_stop_playback(rec)

    def _maybe_stop_playback(self, rec: _ReplyPlayback) -> None:
        if (
            rec.started
            and not rec.stopped
            and rec.done_status is not None
            and rec.played + rec.dropped >= rec.received
        ):
            self._stop_playback(rec, "interrupted" if rec.dropped else "completed")

    def _stop_playback(self, rec: _ReplyPlayback, reason: str) -> None:
        rec.stopped = True
        if self._playing == rec.reply_id:
            self._playing = None
        self._emit(
            "playback.stop",
            reply_id=rec.reply_id,
            played=rec.played,
            dropped=rec.dropped,
            end=rec.end,
            reason=reason,
        )

    # -- user audio --------------------------------------------------------------------
    def _on_push(self, samples: NDArray[np.int16], offset: int) -> None:
        """Audio from a push source (mic, browser), on the loop thread."""
        if self.status == "ready":
            self._send_user_audio(samples, offset)
            self._flush()

    def _send_user_audio(self, samples: NDArray[np.int16], offset: int) -> None:
        from voicekit.audio import encode_for_wire

        if self._writer is not None:
            self._writer.write_user_audio(offset, samples)
        self._meter.update(samples)
        wire = encode_for_wire(samples, self.config.input_format.encoding)
        self._sent_audio.append((offset, len(samples)))
        self._proto.send_audio(bytes(wire))

    async def _pacer(self) -> None:
        """Every 50 ms on absolute deadlines: paced source -> socket, sink -> log."""
        loop = asyncio.get_running_loop()  # loop.time() is time.monotonic()
        offset = round(self.now() * SAMPLE_RATE)
        while True:
            await asyncio.sleep(max(0.0, self._t0 + (offset + BLOCK) / SAMPLE_RATE - loop.time()))
            # the blocks due by now: one, or those a late turn of the loop missed
            behind = round(self.now() * SAMPLE_RATE) - offset
            if behind > CATCH_UP_SAMPLES + BLOCK:  # a stall: skip to now, say so
                self._emit("input.gap", duration=behind / SAMPLE_RATE, reason="input lagged")
                offset += behind - behind % BLOCK
                behind %= BLOCK
            due = max(1, behind // BLOCK)
            if self.status == "ready" and self.source.paced:
                for k in range(due):
                    block = self.source.generate(offset + k * BLOCK, BLOCK)
                    self._send_user_audio(np.asarray(block, np.int16), offset + k * BLOCK)
                self._flush(spawn=False)
                if self._sender is None:
                    await self._send_queued()
            offset += due * BLOCK
            self._poll_sink()

    # -- tools -------------------------------------------------------------------------
    def _on_tool_call(self, event: Any, fields: dict[str, Any]) -> None:
        name = str(fields.get("name", ""))
        call_id = str(fields.get("call_id", ""))
        tool = next((t for t in self.tools if t.name == name), None)
        if tool is None:
            # a server-side (HTTP) tool's informational call, or a tool we do not have
            self._emit("tool.exec", call_id=call_id, name=name, ok=False, skipped=True)
            return
        arguments = getattr(event, "arguments", None) or {}
        self._spawn(self._run_tool(tool, call_id, dict(arguments)), f"voicekit-tool-{name}")

    async def _run_tool(self, tool: Tool, call_id: str, arguments: dict[str, Any]) -> None:
        outcome = await tool.call(arguments)
        self._emit(
            "tool.exec",
            call_id=call_id,
            name=tool.name,
            start=outcome.start_s - self._t0,
            end=outcome.end_s - self._t0,
            ok=not outcome.is_error,
        )
        self._proto.send_tool_result(call_id, outcome.result, is_error=outcome.is_error)
        self._flush()

    async def _aupdate(self, new: Any, patch: dict[str, Any]) -> None:
        self._proto.update(new)
        self.config = new
        self.epoch += 1
        self._emit("config.epoch", epoch=self.epoch, config=new.to_dict(), patch=patch)
        self._flush()

    async def _asay(self, text: str | None) -> None:
        self._proto.create_reply(text)
        self._flush()

    # -- ending --------------------------------------------------------------------------
    async def _astop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._ws is not None and self.status == "ready":
            self._proto.end()
            self._flush()
            assert self._ended is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), STOP_TIMEOUT_S)
        if self.status != "error":
            self.status = "ended"
        await self._teardown()

    async def _on_closed(self, code: int | None, reason: str) -> None:
        """The socket closed: the end, a fatal error, or a drop to resume from."""
        self._emit("connection.closed", code=code, reason=reason)
        assert self._ended is not None
        if self._stopping or self._ended.is_set():
            return
        if self._handshaking or (self._ready is not None and not self._ready.done()):
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(
                    ConnectionClosed(
                        f"the agent closed the connection before session.ready (code {code}"
                        f"{', ' + reason if reason else ''})",
                        code=code,
                        reason=reason,
                    )
                )
            return  # the handshake decides: another attempt, or the error start() raises
        if code in (1008, 1011):  # policy / internal error: fatal (§3); others: resume
            if self.last_error is None:
                self.last_error = ConnectionClosed(
                    f"the agent closed the session (code {code})", code=code, reason=reason
                )
            self.status = "error"
            await self._teardown()
            return
        await self._resume()

    async def _resume(self) -> None:
        """Reconnect with session.resume inside the 30 s window (exponential backoff)."""
        from voicekit.protocol import backoff_delays

        lost_at = self.now()
        self.status = "connecting"
        self._ready = asyncio.get_running_loop().create_future()
        for delay in backoff_delays():
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._connect(self._connect_url(), resume=True)
                await asyncio.wait_for(asyncio.shield(self._ready), self.connect_timeout)
            except ServerError as exc:
                self.last_error = exc
                break
            except Exception as exc:
                self.last_error = exc
                continue
            self.status = "ready"
            self._emit("input.gap", duration=self.now() - lost_at, reason="resumed")
            return
        self.status = "error"
        # nothing was sent since the drop: say so, as a resume does (the log stays continuous)
        self._emit("input.gap", duration=self.now() - lost_at, reason="resume failed")
        self._emit("error", message=f"resume failed: {self.last_error}")
        await self._teardown()

    async def _teardown(self) -> None:
        """Close socket, devices and log; cancel tasks. Idempotent."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current and task.get_name() != "voicekit-send":
                task.cancel()
        with contextlib.suppress(Exception):
            self.source.stop()
        with contextlib.suppress(Exception):
            self._poll_sink()
            self.sink.stop()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
            _abort(ws)  # a close handshake that timed out leaves the socket open
        pending = [t for t in self._tasks if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        for rec in self._replies.values():
            if rec.started and not rec.stopped:
                self._stop_playback(rec, "session_end")
        self._emit("session.stop", status=self.status)
        self._broadcast(None)
        if self._writer is not None:
            self._writer.close()
            from voicekit.logformat import load_log

            with contextlib.suppress(Exception):
                self._result = load_log(self._writer.path)

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

    # -- events: log, observers, subscribers -------------------------------------------------
    def _emit(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        """A ``local`` event: logged and dispatched (loop thread)."""
        return self._emit_line("local", kind, **fields)

    def _emit_line(self, direction: str, kind: str, /, **fields: Any) -> dict[str, Any]:
        line = {"t": round(self.now(), 6), "dir": direction, "type": kind, **fields}
        if self._writer is not None:
            self._writer.write_event(line["t"], direction, kind, **fields)
        if direction != "send":
            with contextlib.suppress(Exception):
                self.source.on_event(line)
        with self._lock:
            observers = self._observers.get(kind, []) + self._observers.get("*", [])
        for fn in observers:
            try:
                fn(line)
            except Exception:
                log.exception("voicekit: observer %r of %s raised", fn, kind)
        self._broadcast(line)
        return line

    def _broadcast(self, item: dict[str, Any] | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            q.put(item)


def _stop_all_at_exit() -> None:
    """A session left running at interpreter exit is stopped and its log closed."""
    for session in list(_live_sessions):
        with contextlib.suppress(Exception):
            session.stop()


atexit.register(_stop_all_at_exit)


class _HandshakeLost(VKConnectionError):
    """The connection broke before the WebSocket handshake finished: worth another try."""


def _gave_up(exc: BaseException, attempts: int, budget: float) -> BaseException:
    """The error ``start()`` raises when the handshake budget is spent: the last one's type."""
    text = f"{exc}; gave up after {attempts} attempts in {budget:g} s (connect_timeout)"
    if isinstance(exc, ConnectionClosed):
        return ConnectionClosed(text, code=exc.code, reason=exc.reason)
    if isinstance(exc, ServerError):
        return ServerError(
            f"{exc.server_message}; gave up after {attempts} attempts",
            code=exc.code,
            param=exc.param,
            fatal=True,
        )
    return VKConnectionError(text)


def _abort(ws: Any) -> None:
    """Drop a websocket's TCP connection now (no-op if it is closed or ``None``)."""
    transport = getattr(ws, "transport", None)
    if transport is not None and not transport.is_closing():
        transport.abort()
