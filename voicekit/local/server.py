"""The stand-in agent's WebSocket server: auth, tokens, sessions, resume, threads.

``voicekit.local`` layer: built on :mod:`voicekit.protocol` (the sans-I/O
``ServerProtocol``), :mod:`voicekit.audio` codecs and :mod:`voicekit.speech`; never
imports the session, analysis or widgets.

One asyncio loop in one daemon thread serves every connection (``serve()`` starts it, so a
notebook can use it). Per connection, :class:`voicekit.local.agent.AgentSession` drives the
protocol and the speech pipeline; CPU-heavy speech work runs in worker threads, and speech
recognition in child processes (:mod:`voicekit.speech.asr_pool`: pocketsphinx holds the
interpreter lock while it decodes), so one session's recogniser never stalls another
session's audio pacing.

Endpoints on one port:

- ``ws://HOST:PORT/v1/ws`` — the Voice Agent protocol.
- ``GET /v1/token?expires_in_seconds=N`` — mints a temporary token (§2.2): single use, or
  reusable inside its window under ``behaviour.reusable_tokens`` (as observed);
  ``POST /v1/tokens`` is the SDK's form of it.
- ``POST /v1/agents``, ``GET /v1/agents``, ``GET|DELETE /v1/agents/{id}`` — stored agents
  (in memory, per agent), which a session binds to with ``session.update {"agent_id"}``.

Every non-WebSocket answer is JSON; the HTTP plumbing (requests with bodies on this port)
and the route handlers are in :mod:`voicekit.local.rest`, the stored agents in
:mod:`voicekit.local.agents_store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response

from voicekit._aio import cancel_other_tasks
from voicekit._secrets import MaskedLogger
from voicekit.errors import ConfigError, VoiceKitError
from voicekit.local import rest
from voicekit.local.agents_store import AgentStore
from voicekit.local.behaviour import Behaviour
from voicekit.protocol.voices import voice_ids
from voicekit.speech.asr_pool import AsrPool

__all__ = ["AgentOptions", "LocalAgent", "embedded_agent", "serve"]

log = logging.getLogger("voicekit.local")

WS_PATH = "/v1/ws"
TOKEN_PATH = "/v1/token"
RESUME_WINDOW_S = 30.0
MAX_FRAME_BYTES = 1 << 20  # frames over 1 MB are refused (close 1009)
PROFILES = ("hosted", "fast")


@dataclasses.dataclass
class AgentOptions:
    """Behaviour of a stand-in agent (everything ``serve()`` accepts besides host/port).

    Attributes
    ----------
    api_key : str or None
        When set, only this key (or a token minted with it) is accepted; otherwise any
        credential, or none, is.
    profile : {"hosted", "fast"}
        ``"hosted"`` (the default) times turn-taking, replies, barge-ins and tools as the
        hosted service was measured doing (seeded distributions); ``"fast"`` answers as
        soon as it can, for tests where timing is not the point. ``"realistic"`` is the
        old name of ``"hosted"``.
    behaviour : {"observed", "documented"} or Behaviour or dict
        Which observed deviations of the hosted service to reproduce (default: all of
        them); see :class:`voicekit.local.Behaviour`.
    seed : int
        Seed of the hosted profile's timing distributions, so runs are reproducible.
    brain : callable or None
        ``brain(history, tools) -> str | ToolRequest``; default: the deterministic brain.
    voices : {"all", "claire", "ivy", "alba"}
        Which catalogue era's voice ids are accepted (default: all three).
    reject_auth_at_http : bool
        Refuse bad credentials with HTTP 401 at the upgrade (the documented browser-1006
        case) instead of the observed ``session.error`` + close 1008.
    enforce_audio_rate : bool or None
        Drop input audio faster than real time with ``audio_rate_violation`` (§10.3).
        ``None`` (default) follows ``behaviour`` (observed: accepted).
    backchannels_interrupt : bool
        Let short backchannels ("uh-huh") interrupt the agent (default: they do not).
    cancel_status : str
        ``reply.done`` status after ``reply.cancel``: ``"cancelled"`` or ``"interrupted"``.
    asr_processes : int
        Speech recognition processes (default 2; each hosts the recognisers of its share of
        the sessions). 0 runs recognition in the sessions' threads instead, which delays
        other sessions' reply audio by up to ~90 ms (pocketsphinx holds the interpreter lock).
    """

    api_key: str | None = None
    profile: str = "hosted"
    behaviour: Any = "observed"
    seed: int = 0
    brain: Callable[..., Any] | None = None
    voices: str = "all"
    reject_auth_at_http: bool = False
    enforce_audio_rate: bool | None = None
    backchannels_interrupt: bool = False
    cancel_status: str = "cancelled"
    asr_processes: int = 2

    def __post_init__(self) -> None:
        if self.profile == "realistic":
            self.profile = "hosted"
        if self.profile not in PROFILES:
            raise ConfigError(
                f"profile ({self.profile!r}) must be 'hosted' or 'fast'", field="profile"
            )
        self.behaviour = Behaviour.resolve(self.behaviour)
        if self.enforce_audio_rate is None:
            self.enforce_audio_rate = not self.behaviour.accept_fast_audio
        if self.voices not in ("all", "claire", "ivy", "alba"):
            raise ConfigError(
                f"voices ({self.voices!r}) must be 'all', 'claire', 'ivy' or 'alba'",
                field="voices",
            )
        if self.cancel_status not in ("cancelled", "interrupted"):
            raise ConfigError(
                f"cancel_status ({self.cancel_status!r}) must be 'cancelled' or 'interrupted'",
                field="cancel_status",
            )
        n = self.asr_processes
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 32:
            raise ConfigError(
                f"asr_processes ({n!r}) must be an integer 0-32; 0 recognises in threads",
                field="asr_processes",
            )


class _Tokens:
    """Temporary tokens (loop thread only): single use, or reusable inside their window
    (``reusable``, as the hosted service was seen to accept them)."""

    def __init__(self, reusable: bool = False) -> None:
        self._expiry: dict[str, float] = {}
        self.reusable = reusable

    def mint(self, expires_in: float) -> str:
        now = time.monotonic()
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}
        token = "vk_tmp_" + secrets.token_urlsafe(32)
        self._expiry[token] = now + expires_in
        return token

    def outstanding(self, token: str) -> bool:
        """Whether ``token`` was minted and not yet redeemed (expiry is checked on redeem)."""
        return token in self._expiry

    def redeem(self, token: str) -> bool:
        expiry = self._expiry.get(token) if self.reusable else self._expiry.pop(token, None)
        return expiry is not None and expiry > time.monotonic()


def _credential(request: Request) -> str | None:
    """The credential of an upgrade request: Bearer or raw header, or ``?token=``."""
    auth = rest.first_header(request.headers, "Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value else auth.strip()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
    tokens = query.get("token")
    return tokens[0] if tokens else None


class AgentServer:
    """The server state shared by all connections (loop thread only)."""

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.tokens = _Tokens(reusable=options.behaviour.reusable_tokens)
        self.sessions: dict[str, Any] = {}  # session_id -> AgentSession (for resume)
        self.connections: set[Any] = set()
        self.started = time.monotonic()
        self.asr_pool: AsrPool | None = None
        self.vads = VadPool()
        if options.asr_processes and os.name == "posix":
            self.asr_pool = AsrPool(options.asr_processes)
        era = options.voices
        self.agents = AgentStore(voice_ids(None if era == "all" else era))
        # REST routes: exact path or path prefix (``prefix/...``) -> handler(HttpRequest)
        self.routes: dict[str, rest.Handler] = {
            TOKEN_PATH: self._mint,
            rest.TOKENS_PATH: self._mint_sdk,
            rest.AGENTS_PATH: rest.AgentsRoute(self.agents, options.api_key),
        }

    # -- HTTP side ----------------------------------------------------------------------
    def authorized(self, credential: str | None) -> bool:
        """Whether a credential opens a session (any, when no api_key is configured)."""
        key = self.options.api_key
        if key is None:
            if credential and credential.startswith("vk_tmp_"):
                return self.tokens.redeem(credential)
            return True
        if credential is None:
            return False
        if hmac.compare_digest(credential.encode(), key.encode()):
            return True
        if credential.startswith("vk_resume_"):
            return any(s.resume_token == credential for s in self.sessions.values())
        return self.tokens.redeem(credential)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route the HTTP request: the WebSocket path (None: upgrade), a REST route, or 404.

        ``connection`` is a :class:`voicekit.local.rest.HttpConnection`: the method and
        body the client sent are on it (websockets itself only parses body-less GETs).
        REST routes live in ``self.routes`` (exact path or prefix -> handler), one entry per
        feature, each answering a :class:`voicekit.local.rest.HttpRequest` with a Response.
        """
        error = getattr(connection, "http_error", None)
        if error is not None:  # a body refused while it was read (chunked, oversize)
            return error  # type: ignore[no-any-return]
        req = rest.HttpRequest.of(connection, request)
        if req.path == WS_PATH:
            if req.method != "GET":
                return rest.json_response(
                    405, {"error": f"{req.method} is not allowed; open a WebSocket here"}
                )
            if self.options.reject_auth_at_http and not self._peek_authorized(_credential(request)):
                return rest.json_response(401, {"error": "Authentication failed"})
            return None
        handler = self.route(req.path)
        if handler is None:
            return rest.json_response(404, {"error": f"not found; the agent is at {WS_PATH}"})
        return handler(req)

    def route(self, path: str) -> rest.Handler | None:
        """The REST handler of a path: its exact entry in ``routes``, or its longest prefix."""
        if path in self.routes:
            return self.routes[path]
        prefixes = [p for p in self.routes if path.startswith(p.rstrip("/") + "/")]
        return self.routes[max(prefixes, key=len)] if prefixes else None

    def _peek_authorized(self, credential: str | None) -> bool:
        key = self.options.api_key
        if key is None:
            return True
        return credential is not None and (
            hmac.compare_digest(credential.encode(), key.encode())
            or self.tokens.outstanding(credential)
            or any(s.resume_token == credential for s in self.sessions.values())
        )

    def _mint(self, request: rest.HttpRequest) -> Response:
        if request.path != TOKEN_PATH:  # no sub-paths
            return rest.json_response(404, {"detail": "Not Found"})
        return rest.mint_token(request, self.tokens.mint, self.options.api_key)

    def _mint_sdk(self, request: rest.HttpRequest) -> Response:
        if request.path != rest.TOKENS_PATH:
            return rest.json_response(404, {"detail": "Not Found"})
        return rest.mint_token_sdk(request, self.tokens.mint, self.options.api_key)

    # -- WebSocket side --------------------------------------------------------------------
    async def handler(self, ws: ServerConnection) -> None:
        """One connection: hand it to an AgentSession (which owns the protocol)."""
        from voicekit.local.agent import AgentSession

        assert ws.request is not None
        credential = _credential(ws.request)
        conn = AgentSession(self, ws, authorized=self.authorized(credential))
        self.connections.add(conn)
        try:
            await conn.run()
        except Exception:  # no client input may kill the server
            log.exception("voicekit.local: session failed")
        finally:
            self.connections.discard(conn)

    def expire_sessions(self) -> None:
        """Forget detached sessions whose resume window has passed."""
        now = time.monotonic()
        for sid, sess in list(self.sessions.items()):
            if sess.detached_at is not None and now - sess.detached_at > RESUME_WINDOW_S:
                sess.close_pipeline()
                del self.sessions[sid]


class VadPool:
    """Loaded VAD models for the sessions' pipelines: loading one takes ~0.2 s and its native
    memory is not all given back, resetting one ~10 us (any thread)."""

    KEEP = 16  # models kept for reuse; more concurrent sessions load their own

    def __init__(self) -> None:
        self._free: list[Any] = []
        self._lock = threading.Lock()

    def take(self) -> Any:
        """A VAD with a fresh stream state."""
        from voicekit.speech import SileroVad

        with self._lock:
            if self._free:
                return self._free.pop()
        return SileroVad()

    def give(self, vad: Any) -> None:
        """Return a VAD a pipeline no longer uses."""
        vad.reset()
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(vad)


def _warm_speech(vads: VadPool) -> None:
    """Load the speech engines before the agent listens (~0.4 s the first time in a process,
    ~0.2 s after), so its first session's pipeline and greeting take no longer than any
    other's; the recognition processes warm themselves meanwhile."""
    from voicekit.speech import style_for_voice, synthesize

    vads.give(vads.take())
    synthesize("hello", style_for_voice("alba"))


class LocalAgent:
    """A running stand-in agent (returned by :func:`serve`).

    Attributes
    ----------
    url : str
        ``ws://127.0.0.1:PORT/v1/ws``: pass it as ``vk.Session(url=...)`` or to any client.
    host, port : str, int
        Where it listens.
    token_url : str
        ``http://127.0.0.1:PORT/v1/token``: ``GET`` it with ``?expires_in_seconds=N``.
    agents_url : str
        ``http://127.0.0.1:PORT/v1/agents``: the stored agents (``POST``, ``GET``,
        ``GET|DELETE .../{id}``), kept in memory while the agent runs.
    """

    def __init__(self, host: str, port: int, options: AgentOptions) -> None:
        self.host = host
        self.options = options
        self.state = AgentServer(options)  # its recognition processes start now
        _warm_speech(self.state.vads)
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="voicekit-local-agent", daemon=True
        )
        self._thread.start()
        try:
            fut = asyncio.run_coroutine_threadsafe(self._start(host, port), self._loop)
            self.port: int = fut.result(10.0)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            if self.state.asr_pool is not None:
                self.state.asr_pool.close()
            raise
        self.url = f"ws://{host}:{self.port}{WS_PATH}"
        self.token_url = f"http://{host}:{self.port}{TOKEN_PATH}"
        self.agents_url = f"http://{host}:{self.port}{rest.AGENTS_PATH}"

    async def _start(self, host: str, port: int) -> int:
        try:
            self._server = await ws_serve(
                self.state.handler,
                host,
                port,
                process_request=self.state.process_request,
                process_response=rest.json_rejection,  # every non-WebSocket answer is JSON
                create_connection=rest.HttpConnection,  # REST requests with bodies
                max_size=MAX_FRAME_BYTES,
                ping_interval=20,
                ping_timeout=20,
                close_timeout=2,
                server_header="voicekit-local",
                logger=MaskedLogger("websockets.server", self._secrets),
                # no permessage-deflate: compressing every message (a 10 ms audio chunk
                # shrinks by ~1/4) took the largest share of the loop's time under load
                compression=None,
            )
        except OSError as exc:
            raise VoiceKitError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another port, or "
                "port=0 for a free one"
            ) from None
        self._janitor = asyncio.get_running_loop().create_task(self._expire_loop())
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    def _secrets(self) -> list[str]:
        return [self.options.api_key] if self.options.api_key else []

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.state.expire_sessions()

    async def _stop(self) -> None:
        self._janitor.cancel()
        for conn in list(self.state.connections):
            with contextlib.suppress(Exception):
                await conn.shutdown()
        for sess in list(self.state.sessions.values()):
            sess.close_pipeline()
        self.state.sessions.clear()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 3.0)
        with contextlib.suppress(asyncio.CancelledError):
            await self._janitor
        await cancel_other_tasks(3.0)  # nothing may outlive the loop

    def stop(self) -> None:
        """Close every session and the listening socket; stop the thread and the
        recognition processes. Idempotent."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self._loop.close()
        if self.state.asr_pool is not None:
            self.state.asr_pool.close()

    # -- public hooks for tests and tools (any thread) ----------------------------------------
    @property
    def is_running(self) -> bool:
        """True from :func:`serve` until :meth:`stop`: the agent's thread and loop are alive."""
        return self._thread.is_alive() and self._loop.is_running()

    def _on_loop(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the agent's loop and return its result (at once on that loop)."""
        if threading.current_thread() is self._thread:
            return fn()

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def drop_connections(self, session_id: str | None = None) -> int:
        """Abort the TCP connection of clients, as a network failure would.

        No close frame is sent: the client sees its socket go (WebSocket close code 1006),
        and the session stays held for resume (§5.3) as after any drop. Thread-safe: the
        abort runs on the agent's loop, and this returns once it has.

        Parameters
        ----------
        session_id : str or None
            Only the connection that carries this session (``vk.Session.session_id``);
            ``None`` drops every open connection, handshaken or not.

        Returns
        -------
        int
            How many connections were aborted (0 when none matched or the agent is stopped).
        """
        if not self.is_running:
            return 0

        def drop() -> int:
            dropped = 0
            for conn in list(self.state.connections):
                ws = conn.ws
                held = conn.delegate or conn  # after a resume: the session held for it
                if ws is None or (session_id is not None and held.session_id != session_id):
                    continue
                ws.transport.abort()
                dropped += 1
            return dropped

        return int(self._on_loop(drop))

    def task_count(self) -> int:
        """How many asyncio tasks run on the agent's loop now (0 once stopped).

        Its listener, its resume janitor and a few per open connection: a leak test takes
        it before and after a run (connections end a moment after their clients close).
        """
        if not self.is_running:
            return 0
        if threading.current_thread() is self._thread:
            return len(asyncio.all_tasks(self._loop))

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(5.0)

    def __enter__(self) -> LocalAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<voicekit.local.LocalAgent {self.url} {state}>"


def serve(host: str = "127.0.0.1", port: int = 0, **options: Any) -> LocalAgent:
    """Start a stand-in agent in a background thread.

    Parameters
    ----------
    host : str
        Interface to listen on (default: loopback only).
    port : int
        TCP port; 0 picks a free one (see ``.url``).
    **options
        Fields of :class:`AgentOptions` (``api_key``, ``profile``, ``brain``, ...).

    Returns
    -------
    LocalAgent
        Also a context manager: ``with vk.local.serve() as agent: ...``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port ({port!r}) must be 0-65535; 0 picks a free port", field="port")
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(AgentOptions)})
    if unknown:
        names = ", ".join(f.name for f in dataclasses.fields(AgentOptions))
        raise ConfigError(f"serve() got unknown option(s) {unknown}; options are: {names}")
    return LocalAgent(host, port, AgentOptions(**options))


_embedded: LocalAgent | None = None
_embedded_lock = threading.Lock()


def embedded_agent() -> LocalAgent:
    """The process-wide stand-in agent used by ``backend="local"``, started on first use."""
    global _embedded
    with _embedded_lock:
        if _embedded is None or not _embedded.is_running:
            _embedded = serve()
            import atexit

            atexit.register(_embedded.stop)
        return _embedded
