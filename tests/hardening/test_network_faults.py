"""Network faults between vk.Session and the stand-in agent: resume, or a clear error.

A fault-injecting TCP proxy (asyncio, in its own thread) sits between the session and
``voicekit.local.serve(port=0)``. The first connection of each session gets one fault, timed
from a protocol event the proxy sees pass (``at`` seconds after the agent's
``session.ready``, by default), never from the moment of connecting: how long a handshake
takes depends on the machine, and a fault meant for a running session must not land in it.
A fault at ``session.updated`` with ``at=0`` cuts the connection inside the handshake
(the client sees no ``session.ready``), which the session must retry.

- ``drop``: both sides of the connection are cut (TCP abort);
- ``stall``: nothing is forwarded for 5 s, either way, then traffic goes on;
- ``slow``: for 3 s every chunk is forwarded 128 bytes at a time, 10 ms apart (~13 kB/s, a
  fifth of the audio rate in each direction);
- ``half_close``: the write side of one direction is shut (``to_client`` or ``to_agent``);
- ``partition``: like ``drop``, and reconnects are refused for ``outage`` seconds;
- ``failover``: like ``drop``, and reconnects reach another agent, which does not know the
  session (``session_not_found``: the resume cannot work; the session restarts there, as
  ``on_resume_failure="restart"``, the default, says).

Every session must either resume within the 30 s resume window (§5.3, §11; the client's
backoff budget is 25 s, ``voicekit.protocol.backoff_delays``), ride the fault out without
reconnecting, or end with a typed :class:`voicekit.VoiceKitError` and an ``error`` line;
``stop()`` stays bounded (2 s for ``session.ended`` + 1 s for the close handshake); and the
log stays continuous and loadable. ``benchmarks/bench_faults.py`` runs 50 such sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

import voicekit as vk

from ._background import BackgroundLoop

pytestmark = pytest.mark.slow

RESUME_WINDOW_S = 30.0  # protocol §11; the client's backoff budget is 25 s of it
STOP_BOUND_S = 2.0 + 1.0 + 1.0  # session.ended wait + close handshake + teardown, with margin
STALL_S = 5.0
SLOW_S, SLOW_CHUNK, SLOW_DELAY_S = 3.0, 128, 0.01
KINDS = ("drop", "stall", "slow", "half_close", "partition", "failover")


@dataclasses.dataclass
class Fault:
    """One fault, armed for the next connection the proxy accepts."""

    kind: str
    at: float  # seconds after the first server frame of type ``after`` passed the proxy
    after: str = "session.ready"
    direction: str = "to_client"  # half_close: the direction whose write side is shut
    every: bool = False  # every connection gets it, not only the next one
    outage: float = 0.0  # partition: seconds during which reconnects are refused
    fired_at: float | None = None  # time.monotonic() when injected
    fired: threading.Event = dataclasses.field(default_factory=threading.Event)

    def describe(self) -> str:
        name = self.kind
        if self.kind == "half_close":
            name = f"half_close:{self.direction}"
        if self.kind == "partition":
            name = f"partition:{self.outage:.0f}s"
        return name if self.after == "session.ready" else f"{name}@{self.after}"

    @property
    def marker(self) -> bytes:
        """The bytes of a server frame of type ``after`` (the agent sends JSON text frames,
        uncompressed, unmasked)."""
        return json.dumps(self.after).encode()


class _Link:
    """One proxied connection: both stream pairs and the fault state."""

    def __init__(
        self, client: asyncio.StreamWriter, agent: asyncio.StreamWriter, fault: Fault | None
    ) -> None:
        self.writers = {"to_agent": agent, "to_client": client}
        self.stall_until = 0.0
        self.slow_until = 0.0
        self.shut: set[str] = set()
        self.fault = fault
        self.triggered = asyncio.Event()  # the fault's ``after`` frame went by
        self.tail = b""  # the end of what went to the client: a marker split across reads

    def abort(self) -> None:
        for w in self.writers.values():
            w.transport.abort()


class FaultProxy(BackgroundLoop):
    """A TCP proxy in front of an agent URL that injects one armed fault per session."""

    def __init__(self, upstream_url: str, failover_url: str | None = None) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._path = parts.path
        other = urlsplit(failover_url or upstream_url)
        self._failover = (other.hostname or "127.0.0.1", other.port or 80)
        self._failed_over = False
        self._pending: Fault | None = None
        self._refuse_until = 0.0
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        super().__init__()
        port = self.run(self._start(), 5)
        self.url = f"ws://127.0.0.1:{port}{self._path}"

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def arm(self, fault: Fault) -> None:
        """The next accepted connection gets ``fault``; a previous partition is healed."""

        def _arm() -> None:
            self._pending = fault
            self._refuse_until = 0.0
            self._failed_over = False

        self.loop.call_soon_threadsafe(_arm)

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        loop = asyncio.get_running_loop()
        try:
            if loop.time() < self._refuse_until:  # a partition: the connection is cut at once
                c_writer.transport.abort()
                return
            fault = self._pending
            if fault is not None and not fault.every:
                self._pending = None
            try:
                upstream = self._failover if self._failed_over else self._upstream
                a_reader, a_writer = await asyncio.open_connection(*upstream)
            except OSError:
                c_writer.transport.abort()
                return
            link = _Link(c_writer, a_writer, fault)
            self._links.add(link)
            pumps = [
                loop.create_task(self._pump(c_reader, link, "to_agent")),
                loop.create_task(self._pump(a_reader, link, "to_client")),
            ]
            injector = loop.create_task(self._inject(fault, link)) if fault else None
            try:
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                for t in (*pumps, injector):
                    if t is not None:
                        t.cancel()
                await asyncio.gather(
                    *pumps, *([injector] if injector else []), return_exceptions=True
                )
                self._links.discard(link)
                for w in link.writers.values():
                    w.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(w.wait_closed(), 1.0)
                link.abort()
        finally:
            self._handlers.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, link: _Link, direction: str) -> None:
        loop = asyncio.get_running_loop()
        writer = link.writers[direction]
        try:
            while data := await reader.read(65536):
                if direction in link.shut:
                    continue  # its write side was shut: what comes is lost
                if direction == "to_client" and self._trigger(link, data):
                    return  # cut at the trigger frame: it never reaches the client
                if (wait := link.stall_until - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if loop.time() < link.slow_until:
                    for k in range(0, len(data), SLOW_CHUNK):
                        writer.write(data[k : k + SLOW_CHUNK])
                        await writer.drain()
                        await asyncio.sleep(SLOW_DELAY_S)
                else:
                    writer.write(data)
                    await writer.drain()
            if direction not in link.shut and writer.can_write_eof():
                writer.write_eof()  # pass a half-close on, as TCP does
                link.shut.add(direction)
        except (OSError, RuntimeError):
            link.abort()

    def _trigger(self, link: _Link, data: bytes) -> bool:
        """Note the fault's trigger frame in data going to the client; True when the link
        was cut right there (a zero-delay drop)."""
        fault = link.fault
        if fault is None or link.triggered.is_set():
            return False
        seen, link.tail = link.tail + data, data[-64:]
        if fault.marker not in seen:
            return False
        link.triggered.set()
        if fault.at <= 0 and fault.kind in ("drop", "partition", "failover"):
            self._fire(fault, link)
            return True
        return False

    async def _inject(self, fault: Fault, link: _Link) -> None:
        await link.triggered.wait()
        if fault.fired.is_set():
            return
        await asyncio.sleep(fault.at)
        self._fire(fault, link)

    def _fire(self, fault: Fault, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        fault.fired_at = time.monotonic()
        if fault.kind in ("drop", "partition", "failover"):
            self._refuse_until = loop.time() + fault.outage
            self._failed_over = fault.kind == "failover"
            link.abort()
        elif fault.kind == "stall":
            link.stall_until = loop.time() + STALL_S
        elif fault.kind == "slow":
            link.slow_until = loop.time() + SLOW_S
        elif fault.kind == "half_close":
            writer = link.writers[fault.direction]
            link.shut.add(fault.direction)
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        fault.fired.set()

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=3.0)
        await self._server.wait_closed()

    def stop(self) -> None:
        """Close the listener and every proxied connection; stop the thread."""
        self.run(self._stop(), 10)
        self.close_loop()


def make_fault(kind: str, rng: random.Random) -> Fault:
    """A seeded fault of ``kind`` at a random moment of a short session (after ready)."""
    fault = Fault(kind, at=rng.uniform(0.3, 3.5))
    if kind == "half_close":
        fault.direction = rng.choice(["to_client", "to_agent"])
    if kind == "partition":
        fault.outage = rng.uniform(1.0, 40.0)
    return fault


@dataclasses.dataclass
class Outcome:
    """What one faulted session did, on the session clock (seconds after the fault)."""

    fault: str
    at: float
    result: str  # "resumed" | "restarted" | "rode_through" | "error"
    detect_s: float | None  # fault -> connection.closed
    settle_s: float | None  # fault -> resumed (input.gap "resumed") or -> the error line
    stop_s: float
    error: str | None
    log: Any

    def row(self) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:6.2f}"

        return (
            f"{self.fault:18} {self.at:5.2f} {self.result:13} {f(self.detect_s)} "
            f"{f(self.settle_s)} {self.stop_s:5.2f}  {self.error or ''}"
        )


def run_one(proxy: FaultProxy, fault: Fault, log_dir: Path) -> Outcome:
    """One short scripted session through ``proxy`` with ``fault``; checks every invariant."""
    proxy.arm(fault)
    user = vk.ScriptedUser([vk.Say("hello can you hear me")], gap=(0.3, 0.3), response_timeout=5)
    s = vk.Session(
        url=proxy.url,
        greeting="Hi.",
        audio_in=user,
        audio_out="null",
        log_dir=log_dir,
        connect_timeout=5,
    )
    closed, resumed, failed, answered = (threading.Event() for _ in range(4))
    s.on("connection.closed", lambda e: closed.set())
    # resumed, or restarted after a failed resume (on_resume_failure="restart", the default)
    s.on("input.gap", lambda e: e.get("reason") in ("resumed", "restarted") and resumed.set())
    s.on("error", lambda e: failed.set())
    s.on("reply.done", lambda e: e.get("status") == "completed" and answered.set())
    try:
        s.start()
    except vk.VoiceKitError as exc:  # the fault hit the handshake: no session, a clear error
        stop_start = time.monotonic()
        log = s.stop()
        stop_s = time.monotonic() - stop_start
        error = _describe(exc)
        return Outcome(fault.describe(), fault.at, "error", None, None, stop_s, error, log)
    t0 = time.monotonic() - s.now()  # the session clock's origin, on the monotonic clock
    try:
        s.wait(30)
        assert fault.fired.wait(fault.at + 10), f"{fault.describe()} never fired"
        assert fault.fired_at is not None
        if fault.kind in ("drop", "half_close", "partition", "failover"):
            # a dead connection must be noticed at once: TCP tells both ends
            assert closed.wait(10), f"{fault.describe()}: the session never saw the close"
        if closed.is_set():
            # resume (or restart) inside the window, or give up with an error: never hang
            limit = fault.fired_at + RESUME_WINDOW_S + 10.0
            while not (resumed.is_set() or s.status == "error") and time.monotonic() < limit:
                failed.wait(0.05)
            assert resumed.is_set() or s.status == "error", (fault.describe(), s.status)
        if s.status == "ready":  # usable after the fault: a reply asked now is answered
            answered.clear()
            s.say("Say: still here.")
            assert answered.wait(20), f"{fault.describe()}: no reply after the fault"
    finally:
        stop_start = time.monotonic()
        log = s.stop()
        stop_s = time.monotonic() - stop_start
    assert log is not None, "the log bundle did not load"
    log = vk.load_log(log.path)
    fault_t = fault.fired_at - t0
    closes = [e["t"] for e in log.of_type("connection.closed") if e["t"] >= fault_t - 0.05]
    gaps = [e for e in log.of_type("input.gap") if e.get("reason") in ("resumed", "restarted")]
    errors = log.of_type("error")
    final = log.of_type("session.stop")[-1]["status"]
    if final == "error":
        result = "error"
        assert isinstance(s.last_error, vk.VoiceKitError), repr(s.last_error)
        assert errors, "an error end without an error line"
        settle: float | None = errors[-1]["t"] - fault_t
    elif gaps:
        result = str(gaps[0]["reason"])  # "resumed", or "restarted" when the resume failed
        settle = gaps[0]["t"] - fault_t
        assert final == "ended" and settle <= RESUME_WINDOW_S, (final, settle)
    else:
        result = "rode_through"
        settle = None
        assert final == "ended" and not closes[:-1], (final, closes)
    check_continuous(log)
    return Outcome(
        fault=fault.describe(),
        at=fault.at,
        result=result,
        detect_s=closes[0] - fault_t if closes and result != "rode_through" else None,
        settle_s=settle,
        stop_s=stop_s,
        error=None if result != "error" else _describe(s.last_error),
        log=log,
    )


def _describe(err: BaseException | None) -> str:
    code = getattr(err, "code", None)
    return f"{type(err).__name__}{f'({code})' if code else ''}: {err}"[:90]


def check_continuous(log: Any) -> None:
    """One clock, no unexplained holes: every skip in the sent audio is an input.gap."""
    events = log.raw_events
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    offsets = np.array([e["offset"] for e in log.of_type("input.audio", direction="send")])
    assert len(offsets) >= 1, "the session was ready: audio went up"
    steps = np.diff(offsets)
    assert np.all(steps > 0) and np.all(steps % 1200 == 0), steps
    gaps = log.of_type("input.gap")
    for k in np.flatnonzero(steps != 1200):
        start, end = (offsets[k] + 1200) / 24000, offsets[k + 1] / 24000
        assert any(g["t"] - g["duration"] - 0.2 <= start and end <= g["t"] + 0.2 for g in gaps), (
            "audio not sent and no input.gap for it",
            start,
            end,
            gaps,
        )
    # the end: audio went up until the session stopped, or an input.gap says why not
    stop_t = log.of_type("session.stop")[-1]["t"]
    last = (offsets[-1] + 1200) / 24000
    assert stop_t - last < 0.3 or any(
        g["t"] - g["duration"] - 0.2 <= last and stop_t <= g["t"] + 0.2 for g in gaps
    ), ("no audio sent after", last, "until the stop at", stop_t, "and no input.gap", gaps)
    user_audio, rate = log.audio("user")
    agent_audio, _ = log.audio("agent")
    assert abs(len(user_audio) / rate - offsets[-1] / rate) < 0.2
    assert len(agent_audio) <= len(user_audio) + rate


@pytest.fixture(scope="module")
def proxy() -> Iterator[FaultProxy]:
    with (
        vk.local.serve(profile="fast", behaviour={"resume_fails": False}) as agent,
        vk.local.serve(profile="fast", behaviour={"resume_fails": False}) as other,
    ):
        p = FaultProxy(agent.url, failover_url=other.url)
        yield p
        p.stop()


@pytest.mark.parametrize(
    "fault",
    [
        Fault("drop", at=1.7),
        Fault("stall", at=1.2),
        Fault("slow", at=0.8),
        Fault("half_close", at=1.5, direction="to_client"),
        Fault("half_close", at=2.2, direction="to_agent"),
        Fault("partition", at=1.0, outage=2.0),
        Fault("failover", at=1.3),
    ],
    ids=lambda f: f.describe(),
)
def test_a_fault_is_resumed_or_ridden_out_and_the_log_stays_continuous(
    proxy: FaultProxy, tmp_path: Path, fault: Fault
) -> None:
    """Each fault: resumed inside 30 s, ridden out, or a clear error at once; stop() bounded."""
    out = run_one(proxy, fault, tmp_path)
    print("\n" + out.row())
    assert out.stop_s < STOP_BOUND_S
    if fault.kind == "failover":  # the resume cannot work: a fresh session, at once
        assert out.result == "restarted", out.row()
        restarted = out.log.of_type("session.restarted")
        assert len(restarted) == 1 and "session_not_found" in restarted[0]["reason"], restarted
        assert restarted[0]["new_session_id"] != restarted[0]["old_session_id"]
        assert out.detect_s is not None and out.detect_s < 1.0
        assert out.settle_s is not None and out.settle_s < 5.0
    elif fault.kind in ("drop", "half_close", "partition"):
        assert out.result == "resumed", out.row()
        assert out.detect_s is not None and out.detect_s < 1.0
        assert out.settle_s is not None and out.settle_s < 10.0
    else:
        assert out.result == "rode_through", out.row()


def _retries(log: Any) -> list[dict[str, Any]]:
    return [e for e in log.raw_events if e["type"] == "connection.retry"]


def test_a_connection_lost_in_the_handshake_is_retried(proxy: FaultProxy, tmp_path: Path) -> None:
    """The first connection is cut as the agent answers session.update: start() retries and
    the session works; the log shows the failed attempt."""
    proxy.arm(Fault("drop", at=0, after="session.updated"))
    # the answer is what is checked: wait for it (a busy machine's recogniser may take > 5 s)
    user = vk.ScriptedUser([vk.Say("hello can you hear me")], gap=(0.3, 0.3), response_timeout=25)
    with vk.Session(url=proxy.url, audio_in=user, audio_out="null", log_dir=tmp_path) as s:
        assert s.status == "ready"
        assert s.wait(60)
    log = vk.load_log(s.log_path)
    retries = _retries(log)
    assert [r["attempt"] for r in retries] == [1], retries
    assert "before session.ready" in retries[0]["error"] and retries[0]["delay"] > 0
    assert log.turns["a_on"].notna().any(), "the retried session was answered"


def test_the_handshake_gives_up_when_connect_timeout_is_spent(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every connection is cut in the handshake: start() raises once the budget is spent,
    saying how many attempts it made; each failed attempt but the last is a retry line.
    The budget runs out either at a cut (ConnectionClosed, 1006) or while the last attempt
    still waits for session.ready (a busy machine); both name the attempts."""
    proxy.arm(Fault("drop", at=0, after="session.updated", every=True))
    s = vk.Session(
        url=proxy.url, audio_in="null", audio_out="null", log_dir=tmp_path, connect_timeout=2
    )
    try:
        with pytest.raises(vk.ConnectionError, match=r"\b(\d+) attempts") as info:
            s.start()
    finally:
        s.stop()
        proxy.arm(Fault("stall", at=1e9))  # heal: the next connections pass
    attempts = int(re.search(r"\b(\d+) attempts", str(info.value)).group(1))  # type: ignore[union-attr]
    assert attempts >= 3
    if isinstance(info.value, vk.ConnectionClosed):
        assert info.value.code == 1006 and "gave up after" in str(info.value)
    else:
        assert "no session.ready" in str(info.value)
    log = vk.load_log(s.log_path)
    assert [r["attempt"] for r in _retries(log)] == list(range(1, attempts))
    assert log.of_type("error"), "the give-up is an error line"


def test_each_attempt_gets_a_fresh_temporary_token(tmp_path: Path) -> None:
    """With token= a function, every attempt mints a new single-use token: the retry after a
    lost handshake is let in; with one fixed token it would be refused (used up)."""
    import urllib.request

    with vk.local.serve(
        profile="fast",
        api_key="test-key-not-secret",
        behaviour={"resume_fails": False, "reusable_tokens": False},
    ) as agent:
        proxy = FaultProxy(agent.url)
        minted: list[str] = []

        def mint() -> str:
            req = urllib.request.Request(
                agent.token_url + "?expires_in_seconds=60",
                headers={"Authorization": "Bearer test-key-not-secret"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                minted.append(json.load(resp)["token"])
            return minted[-1]

        try:
            proxy.arm(Fault("drop", at=0, after="session.updated"))
            with vk.Session(
                url=proxy.url, token=mint, audio_in="null", audio_out="null", log_dir=tmp_path
            ) as s:
                assert s.status == "ready"
            assert len(minted) == 2 and minted[0] != minted[1]
            text = (Path(s.log_path) / "events.jsonl").read_text()
            assert _retries(vk.load_log(s.log_path)) and not any(t in text for t in minted)

            proxy.arm(Fault("drop", at=0, after="session.updated"))
            fixed = vk.Session(
                url=proxy.url, token=mint(), audio_in="null", audio_out="null", log_dir=None
            )
            with pytest.raises(vk.AuthError):  # the retry reuses the spent token
                fixed.start()
            fixed.stop()
        finally:
            proxy.stop()
