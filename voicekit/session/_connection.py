"""The session's connection: one WebSocket at a time, driven by the sans-I/O protocol.

Runtime layer, private. :class:`Connection` is the only place that touches websockets. It
owns the :class:`~voicekit.protocol.ClientProtocol`, which is the authority on the
connection's state, the session id, the resume token and what a close means; this module
only does the I/O around it:

- **handshake** (:meth:`Connection.open`): connect, send the first ``session.update``, wait
  for ``session.ready``; a connection lost before it (a drop, close 1006, a server
  restarting, a retryable ``session.error``) is tried again with jittered backoff within
  ``connect_timeout``, each failed attempt a ``connection.retry`` line. Auth and
  configuration errors are not retried; a refused connection (nobody listening) neither.
- **reading**: a reader task feeds every frame to the protocol and hands the parsed events to
  the session's dispatcher, then sends what the protocol queued in reply.
- **sending**: :meth:`Connection.flush` logs what the protocol queued (``send`` lines) and
  sends it in order through one sender.
- **drops**: when the socket closes, the protocol decides: the end, a fatal error, or a drop to
  resume from (``session.resume`` on a new socket with backoff inside the 30 s window).
- **restart**: when a resume fails and the session asked for it (``restart=``), a fresh
  session is opened with the configuration the session hands over (the conversation so far
  in its system prompt): a new protocol, the handshake as at the start, and a
  ``session.restarted {old_session_id, new_session_id, reason}`` line just before its
  ``session.ready``.

Credentials (API key, temporary tokens, the resume token) go into headers and the query of
the request only, never into a log line, an error message or a repr.

Must not import analysis, widgets or the stand-in agent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from voicekit._secrets import MaskedLogger, mask
from voicekit.errors import AuthError, ConfigError, ConnectionClosed, ProtocolError, ServerError
from voicekit.errors import ConnectionError as VKConnectionError
from voicekit.protocol import (
    AfterClose,
    ClientProtocol,
    ConnectionState,
    SessionConfig,
    backoff_delays,
)
from voicekit.protocol.events import Event, SessionEnded, SessionError, SessionReady
from voicekit.session._bus import Bus

__all__ = ["Connection", "HandshakeLost", "url_without_query"]

log = logging.getLogger("voicekit.session")


class HandshakeLost(VKConnectionError):
    """The connection broke before the WebSocket handshake finished: worth another try."""


def url_without_query(url: str) -> str:
    """``url`` without its query (where a ``?token=`` would be) and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Connection:
    """A session's link to its agent (loop thread, except :meth:`drop`).

    Parameters
    ----------
    config : SessionConfig
        The first ``session.update``.
    url : callable
        Returns the URL to connect to (called per attempt: the embedded agent may restart).
    api_key : str, optional
        Sent as ``Authorization: Bearer``.
    token : str or callable, optional
        A temporary token for ``?token=``, or a function minting a fresh one per attempt.
    connect_timeout : float
        Seconds for the handshake, retries included.
    bus : Bus
        Where ``send`` / ``recv`` / ``connection.*`` lines go.
    dispatch : callable
        ``dispatch(event)``: the session's handling of each received event (it logs it).
    lost : callable
        Awaited when the connection is gone for good (a fatal close, a failed resume).
    user_agent : str
        The ``User-Agent`` header.
    spawn : callable
        ``spawn(coro, name)``: runs a coroutine as a task of the session.
    agent_id : str, optional
        Bind to this stored agent (see :class:`~voicekit.protocol.ClientProtocol`).
    tool_results : {"after_reply_done", "immediate"}
        When tool results are sent (the protocol's rule).
    restart : callable, optional
        ``restart()`` is called when a resume failed; it returns the configuration of a
        fresh session to open in its place, or ``None`` to give up (the session then ends
        with the error, as without ``restart``).
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        url: Callable[[], str],
        api_key: str | None,
        token: str | Callable[[], str] | None,
        connect_timeout: float,
        bus: Bus,
        dispatch: Callable[[Event], None],
        lost: Callable[[], Awaitable[None]],
        user_agent: str,
        spawn: Callable[[Any, str], asyncio.Task[Any]],
        agent_id: str | None = None,
        tool_results: str = "after_reply_done",
        restart: Callable[[], SessionConfig | None] | None = None,
    ) -> None:
        self.protocol = ClientProtocol(config, agent_id=agent_id, tool_results=tool_results)
        self._restart = restart
        self._restarting: tuple[str | None, str] | None = None  # (old session id, reason)
        self.restarts = 0
        self._recovering = False  # a resume (or the restart after it) is under way
        self._url = url
        self._api_key = api_key
        self._token = token
        self.connect_timeout = connect_timeout
        self._bus = bus
        self._dispatch = dispatch
        self._lost = lost
        self._user_agent = user_agent
        self._spawn = spawn
        self.last_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: Any = None
        self._ready: asyncio.Future[None] | None = None
        self.ended = asyncio.Event()
        self._handshaking = False
        self.closing = False  # the session is stopping: a close is the end
        self._tokens_sent: collections.deque[str] = collections.deque(maxlen=16)
        self._sent_audio: collections.deque[tuple[int, int]] = collections.deque()
        self._outbox: collections.deque[tuple[Any, str]] = collections.deque()
        self._sender: asyncio.Task[Any] | None = None

    # -- what the protocol knows ------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        """The protocol's connection state."""
        return self.protocol.state

    @property
    def session_id(self) -> str | None:
        """The session id from ``session.ready`` (``None`` before)."""
        return self.protocol.session_id

    def secrets(self) -> list[str]:
        """This connection's credentials: API key, resume token, every token it sent."""
        query = parse_qs(urlsplit(self._url()).query)
        found = [
            self._api_key,
            self.protocol.resume_token,
            *query.get("token", []),
            *self._tokens_sent,
        ]
        return [s for s in found if s]

    def where(self) -> str:
        """The agent's URL as it may be shown (no query)."""
        return url_without_query(self._url())

    # -- handshake ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and wait for ``session.ready``, trying again with backoff while a lost
        connection is worth it and ``connect_timeout`` lasts."""
        loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        delays = backoff_delays(base=0.1, cap=2.0, budget=self.connect_timeout)
        self._handshaking = True
        try:
            for attempt in itertools.count(1):
                self._ready = loop.create_future()
                try:
                    await self._connect(timeout=deadline - loop.time())
                    await asyncio.wait_for(
                        asyncio.shield(self._ready), max(0.0, deadline - loop.time())
                    )
                    return
                except TimeoutError:
                    tries = f" ({attempt} attempts)" if attempt > 1 else ""
                    raise VKConnectionError(
                        f"no session.ready from {self.where()} within "
                        f"{self.connect_timeout:g} s{tries}; check the URL and that the agent "
                        "is running, or raise connect_timeout"
                    ) from None
                except (VKConnectionError, ServerError) as exc:
                    if not self._retryable(exc):
                        raise
                    delay = next(delays, None)
                    if delay is None or loop.time() + delay >= deadline:
                        raise _gave_up(exc, attempt, self.connect_timeout) from None
                    self._bus.local(
                        "connection.retry", attempt=attempt, error=str(exc), delay=round(delay, 3)
                    )
                    await asyncio.sleep(delay)
        finally:
            self._handshaking = False

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, HandshakeLost):
            return True
        code = exc.code if isinstance(exc, ConnectionClosed) else None
        return isinstance(
            exc, (ConnectionClosed, ServerError)
        ) and self.protocol.handshake_retryable(code)

    async def _connect(self, resume: bool = False, timeout: float | None = None) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        headers = {}
        token = self.protocol.resume_token
        credential = token if resume and token else self._api_key
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        url = self._with_fresh_token(self._url())
        _abort(self._ws)  # a connection a failed attempt left open: its socket goes
        self._ws = None  # ...and its reader's close is no longer this connection's news
        timeout = self.connect_timeout if timeout is None else max(0.01, timeout)
        where = self.where()
        try:
            self._ws = await asyncio.wait_for(
                connect(
                    url,
                    additional_headers=headers,
                    max_size=None,
                    open_timeout=timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    user_agent_header=self._user_agent,
                    logger=MaskedLogger("websockets.client", self.secrets),
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
            raise HandshakeLost(f"connection to {where} lost during the handshake: {exc}") from None
        except Exception as exc:  # handshake refused (HTTP 401/403 ...) or cut
            text = mask(str(exc), self.secrets())
            if "401" in text or "403" in text:
                raise AuthError(
                    f"the agent refused the credentials ({text}); check api_key or "
                    "ASSEMBLYAI_API_KEY"
                ) from None
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
            if status is None or status >= 500:  # no valid HTTP answer, or a server error
                raise HandshakeLost(f"cannot connect to {where}: {text}") from None
            raise VKConnectionError(f"cannot connect to {where}: {text}") from None
        if resume:
            self.protocol.resume()
        else:
            self.protocol.connect()
        self.flush()
        self._spawn(self._reader(self._ws), "voicekit-reader")

    def _with_fresh_token(self, url: str) -> str:
        """``url`` with this attempt's ``?token=``: a fresh one when ``token`` mints them."""
        if self._token is None:
            return url
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

    # -- sending ------------------------------------------------------------------------------
    def send_audio(self, wire: bytes, offset: int, samples: int) -> None:
        """Queue one block of user audio (``samples`` samples at session index ``offset``)."""
        self._sent_audio.append((offset, samples))
        self.protocol.send_audio(wire)

    def flush(self, *, spawn: bool = True) -> None:
        """Log what the protocol has queued and hand it to the sender.

        With ``spawn=False`` the caller (the pacer) awaits :meth:`send_queued` itself,
        saving a task and a loop iteration per 50 ms block.
        """
        ws, bus, outbox = self._ws, self._bus, self._outbox
        for msg in self.protocol.data_to_send():
            kind = msg["type"]
            if kind == "input.audio":
                offset, n = self._sent_audio.popleft() if self._sent_audio else (None, 0)
                bus.emit("send", kind, {"offset": offset, "samples": n})
                # base64 needs no JSON escaping: the frame is built without json.dumps
                text = '{"type": "input.audio", "audio": "' + msg["audio"] + '"}'
            else:
                bus.emit("send", kind, {k: v for k, v in msg.items() if k != "type"})
                text = json.dumps(msg)
            if ws is not None:
                outbox.append((ws, text))
        if spawn and outbox and self._sender is None:
            self._sender = self._spawn(self.send_queued(), "voicekit-send")

    async def send_queued(self) -> None:
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

    async def flush_and_send(self) -> None:
        """:meth:`flush` and send, in this task (the pacer's tick)."""
        self.flush(spawn=False)
        if self._sender is None and self._outbox:
            await self.send_queued()

    # -- receiving ------------------------------------------------------------------------------
    async def _reader(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed as WSClosed

        try:
            async for frame in ws:
                self._on_frame(frame)
        except WSClosed:
            pass
        if ws is self._ws:
            await self._on_closed(ws.close_code, ws.close_reason or "")

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            events = self.protocol.receive(frame)
        except ProtocolError as exc:
            preview = frame[:200] if isinstance(frame, str) else f"<{len(frame)} bytes>"
            self._bus.local("error", where="recv", message=str(exc), frame=str(preview))
            return
        for event in events:
            if self._restarting is not None and isinstance(event, SessionReady):
                old_id, reason = self._restarting
                self._restarting = None
                self.restarts += 1
                self._bus.local(
                    "session.restarted",
                    old_session_id=old_id,
                    new_session_id=event.session_id,
                    reason=reason,
                )
            try:
                self._dispatch(event)
                self._track(event)
            except Exception as exc:  # one bad event never kills the session thread
                log.exception("voicekit: failed to handle %s", event.type or "?")
                self._bus.local("error", where=event.type or "?", message=repr(exc))
        self.flush()

    def _track(self, event: Event) -> None:
        """The connection's own use of an event: the handshake's outcome, the end."""
        match event:
            case SessionReady():
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            case SessionError(code=code):
                err = ServerError(event.message or "", code=code, param=event.param)
                self.last_error = err
                if self._ready is not None and not self._ready.done():
                    self._ready.set_exception(
                        AuthError(f"{err}; check api_key or ASSEMBLYAI_API_KEY")
                        if code == "unauthorized"
                        else err
                    )
            case SessionEnded():
                self.ended.set()

    async def _on_closed(self, code: int | None, reason: str) -> None:
        """The socket closed: the protocol says whether it is the end, fatal or a drop."""
        self._bus.local("connection.closed", code=code, reason=reason)
        if self.closing or self.ended.is_set():
            return
        after = self.protocol.connection_closed(code, reason)
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
        if self._recovering:
            return  # a resume attempt's socket closed after its error: _resume goes on
        if after is AfterClose.RESUME:
            await self._resume()
        elif after is AfterClose.FATAL:
            if self.last_error is None:
                self.last_error = ConnectionClosed(
                    f"the agent closed the session (code {code})", code=code, reason=reason
                )
            await self._lost()

    async def _resume(self) -> None:
        """Reconnect with session.resume inside the 30 s window (exponential backoff)."""
        self._recovering = True
        try:
            await self._resume_or_restart()
        finally:
            self._recovering = False

    async def _resume_or_restart(self) -> None:
        loop = asyncio.get_running_loop()
        lost_at = loop.time()
        self._ready = loop.create_future()
        for delay in backoff_delays():
            await asyncio.sleep(delay)
            if self.closing:
                return
            try:
                await self._connect(resume=True)
                await asyncio.wait_for(asyncio.shield(self._ready), self.connect_timeout)
            except ServerError as exc:
                self.last_error = exc
                break
            except Exception as exc:
                self.last_error = exc
                continue
            self._bus.local("input.gap", duration=loop.time() - lost_at, reason="resumed")
            return
        if self._restart is not None and not self.closing and await self._start_over():
            self._bus.local("input.gap", duration=loop.time() - lost_at, reason="restarted")
            return
        self.protocol.fail()
        # nothing was sent since the drop: say so, as a resume does (the log stays continuous)
        self._bus.local("input.gap", duration=loop.time() - lost_at, reason="resume failed")
        self._bus.local("error", message=f"resume failed: {self.last_error}")
        await self._lost()

    async def _start_over(self) -> bool:
        """The resume failed: open a fresh session in its place (True once it is ready)."""
        assert self._restart is not None
        config = self._restart()
        if config is None:
            return False
        old = self.protocol
        if old.resume_token:  # still masked wherever it might show up
            self._tokens_sent.append(old.resume_token)
        reason = f"resume failed: {self.last_error}" if self.last_error else "resume failed"
        self.protocol = ClientProtocol(config, agent_id=old.agent_id, tool_results=old.tool_results)
        self._restarting = (old.session_id, reason)
        try:
            await self.open()
        except Exception as exc:
            self._restarting = None
            self.last_error = exc
            self._bus.local("error", message=f"restart failed: {exc}")
            return False
        return True

    # -- ending ---------------------------------------------------------------------------------
    async def end(self, timeout: float) -> None:
        """Send ``session.end`` and wait up to ``timeout`` s for ``session.ended``."""
        self.closing = True
        if self._ws is None or self.state != ConnectionState.READY:
            return
        self.protocol.end()
        self.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout)

    async def close(self) -> None:
        """Close the socket (a close handshake of at most 1 s, then the TCP connection)."""
        self.closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
            _abort(ws)  # a close handshake that timed out leaves the socket open

    def drop(self) -> None:
        """Cut the TCP connection now, without a close frame — a network fault, as a test
        or a demo injects one. The session then resumes as after any drop. Thread-safe."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: _abort(self._ws))


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
