"""A hostile agent: 10,000 fuzzed and malformed server events against one vk.Session.

The agent here is a small websockets server written for this test (not the stand-in agent):
it answers the handshake (``session.updated`` + ``session.ready``), then on demand sends a
seeded storm of frames — wrong field types, missing fields, 1 MB strings, broken base64,
odd-length PCM, unknown types, out-of-order but well-formed events, non-JSON text, JSON that
is not an object, binary frames, deeply nested JSON — and afterwards behaves well again, so
the test can check that the session is still usable.

Accounting (a silently swallowed event fails): every frame has an expected outcome in the
log — an ``error`` line (malformed), a ``recv`` line (well-formed, however odd; §15 says
clients accept unknown types and out-of-order events), or both (odd-length PCM is played
minus its last byte and reported). Every JSON object carries a ``fuzz`` id, kept in ``recv``
lines as an unknown field and visible in the frame preview of ``error`` lines; the sequence
of ``recv``-with-id and ``error`` lines in ``events.jsonl`` must equal the expected sequence
exactly. voicekit does not rate-limit ``error`` lines: each is ~300 bytes (frame preview cut
at 200 characters), so 10,000 of them cost ~3 MB, and the exact count is kept.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import voicekit as vk
from voicekit.audio.sinks import NullSink

from ._background import BackgroundLoop

pytestmark = pytest.mark.slow

N_EVENTS = 10_000
SEED = 20260915
MB = 1 << 20
SESSION_ID = "sess_hostile0000000000000000000000"

Frame = str | bytes
Expect = list[tuple[str, int | None]]  # ("error" | "recv", fuzz id or None), in log order


def _tone(seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(24000 * seconds)) / 24000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


REPLY_TONE = _tone(0.3)  # the agent's replies: 0.3 s, sent in 10 ms frames


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _obj(fid: int, kind: Any, **fields: Any) -> str:
    """A JSON object frame whose first key is the fuzz id (so error previews show it)."""
    head: dict[str, Any] = {"fuzz": fid}
    if kind is not ...:
        head["type"] = kind
    return json.dumps({**head, **fields})


def _deep(depth: int, opener: str = "[") -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + "0" + closer * depth


class Storm:
    """Seeded fuzz frames and the log outcome each one must leave."""

    def __init__(self, seed: int, n: int) -> None:
        self.rng = random.Random(seed)
        self.frames: list[Frame] = []
        self.expect: Expect = []
        self.by_category: dict[str, int] = {}
        self.huge = 0
        makers = [
            (self.wrong_type, 14),
            (self.missing_field, 10),
            (self.bad_type_field, 4),
            (self.bad_base64, 8),
            (self.odd_audio, 6),
            (self.bad_timestamp, 4),
            (self.unknown_type, 10),
            (self.out_of_order, 14),
            (self.non_json, 8),
            (self.not_object, 8),
            (self.binary, 8),
            (self.deep, 4),
            (self.huge_string, 0),  # placed by hand below: 1 MB frames are costly
        ]
        funcs = [m for m, _ in makers]
        weights = [w for _, w in makers]
        huge_at = set(self.rng.sample(range(n), 12))
        for i in range(n):
            make = self.huge_string if i in huge_at else self.rng.choices(funcs, weights)[0]
            self.by_category[make.__name__] = self.by_category.get(make.__name__, 0) + 1
            make(i)

    # -- helpers -----------------------------------------------------------------------------
    def _bad(self, frame: Frame, fid: int | None) -> None:
        self.frames.append(frame)
        self.expect.append(("error", fid))

    def _ok(self, frame: str, fid: int) -> None:
        self.frames.append(frame)
        self.expect.append(("recv", fid))

    def _junk_value(self) -> Any:
        return self.rng.choice([123, 4.5, True, None, [], [1, "a"], {"x": 1}, "s"])

    # -- malformed: one error line each ------------------------------------------------------
    def wrong_type(self, i: int) -> None:
        # (type, field, values that field must not accept)
        cases: list[tuple[str, str, list[Any], dict[str, Any]]] = [
            ("transcript.user", "text", [1, None, [], {}, True], {}),
            ("transcript.user.delta", "text", [2.5, ["a"], {}], {}),
            ("reply.started", "reply_id", [7, ["r"], {"id": 1}, False], {}),
            ("reply.done", "status", [5, [], {"s": 1}], {"reply_id": "r"}),
            ("reply.audio", "data", [123, None, ["AAAA"], {}], {"reply_id": "r"}),
            ("tool.call", "arguments", [[1, 2], 3, "not json {", "[1]"], {"call_id": "c"}),
            ("tool.call", "name", [1, None, []], {"call_id": "c"}),
            ("session.error", "code", [7, [], {}], {}),
            ("transcript.agent", "interrupted", ["yes", 1, []], {"text": "t"}),
            ("transcript.agent.delta", "start_ms", ["0", [], {}], {"delta": "w"}),
            ("session.ready", "session_id", [1, None, []], {}),
            ("session.updated", "config", ["cfg", 3, []], {}),
            ("reply.error", "retryable", ["no", 0], {}),
        ]
        kind, field, values, base = self.rng.choice(cases)
        fields = dict(base)
        if kind == "tool.call" and field != "name":
            fields["name"] = "get_weather"
        elif kind == "tool.call":
            fields["arguments"] = {}
        fields[field] = self.rng.choice(values)
        if kind in ("transcript.user", "transcript.user.delta") and field != "text":
            fields["text"] = "x"
        self._bad(_obj(i, kind, **fields), i)

    def missing_field(self, i: int) -> None:
        cases: list[tuple[str, dict[str, Any]]] = [
            ("transcript.user", {"item_id": "m"}),
            ("transcript.user.delta", {}),
            ("reply.audio", {"reply_id": "r"}),
            ("reply.started", {"item_id": "m"}),
            ("tool.call", {"name": "get_weather", "arguments": {}}),
            ("tool.call", {"call_id": "c"}),
            ("session.ready", {"resume_token": "t"}),
            ("transcript.agent", {"reply_id": "r"}),
            ("transcript.agent.delta", {"reply_id": "r"}),
        ]
        kind, fields = self.rng.choice(cases)
        self._bad(_obj(i, kind, **fields), i)

    def bad_type_field(self, i: int) -> None:
        kind = self.rng.choice([..., 5, None, ["reply.done"], {"t": 1}, True])
        self._bad(_obj(i, kind, reply_id="r"), i)

    def bad_base64(self, i: int) -> None:
        data = self.rng.choice(["!!!not base64!!!", "AAA", "A", "===", "AAAA=AAA", "äöü", "AA A"])
        self._bad(_obj(i, "reply.audio", reply_id=f"rb{i}", data=data), None)

    def odd_audio(self, i: int) -> None:
        n = 2 * self.rng.randrange(0, 240) + 1
        data = bytes(self.rng.randrange(256) for _ in range(n))
        self.frames.append(_obj(i, "reply.audio", reply_id=f"ro{i}", data=_b64(data)))
        self.expect += [("error", None), ("recv", i)]

    def bad_timestamp(self, i: int) -> None:
        ts = self.rng.choice(["yesterday", [], {"s": 1}, True, 10**400, "2025-13-45T99:00:00"])
        kind = self.rng.choice(["input.speech.stopped", "transcript.user"])
        self._bad(_obj(i, kind, text="x", timestamp=ts), i)

    def non_json(self, i: int) -> None:
        body = "".join(self.rng.choice("{}[]:,\"'abc \\\n0123") for _ in range(40))
        text = self.rng.choice(
            [f"fuzz {i} {body}", f'{{"fuzz": {i}, "type": "reply.done"', f"fuzz {i} NaN}}"]
        )
        self._bad(text, i)

    def not_object(self, i: int) -> None:
        frame, fid = self.rng.choice(
            [
                (json.dumps([{"fuzz": i, "type": "reply.done"}]), i),
                (json.dumps(f"fuzz {i} a string"), i),
                (json.dumps(self.rng.randrange(10**6)), None),
                ("null", None),
                ("true", None),
                (json.dumps(self.rng.random()), None),
            ]
        )
        self._bad(frame, fid)

    def binary(self, i: int) -> None:
        n = self.rng.randrange(1, 600)
        self._bad(b"\x80" + bytes(self.rng.randrange(256) for _ in range(n)), None)

    def deep(self, i: int) -> None:
        depth = self.rng.choice([5_000, 100_000])
        if self.rng.random() < 0.3:  # inside a string that is itself parsed (tool.call)
            args = _deep(depth)
            frame = _obj(i, "tool.call", call_id=f"c{i}", name="get_weather", arguments=args)
        else:
            opener = self.rng.choice(["[", '{"a":'])
            nested = _deep(depth, opener)
            frame = f'{{"fuzz": {i}, "type": "transcript.user", "text": "x", "n": {nested}}}'
        self._bad(frame, i)

    def huge_string(self, i: int) -> None:
        self.huge += 1
        big = "x" * MB
        choice = self.huge % 4
        if choice == 0:  # 1 MB of text that is not JSON
            self._bad(f"fuzz {i} " + big, i)
        elif choice == 1:  # 1 MB that is not base64
            self._bad(_obj(i, "reply.audio", reply_id=f"rh{i}", data="!" + big), None)
        elif choice == 2:  # a 1 MB string where a bool belongs
            self._bad(_obj(i, "transcript.agent", text="t", interrupted=big), i)
        else:  # well-formed, just huge: a 1 MB unknown event is kept whole
            self._ok(_obj(i, "fuzz.huge", blob=big), i)

    # -- well-formed, however odd: one recv line each ----------------------------------------
    def unknown_type(self, i: int) -> None:
        kind = self.rng.choice(["reply.audio.v2", "fuzz.unknown", "input.speech.maybe", "x"])
        self._ok(_obj(i, kind, payload=self._junk_value(), nested=json.loads(_deep(40))), i)

    def out_of_order(self, i: int) -> None:
        rid = f"resp_fuzz{self.rng.randrange(50)}"
        cases: list[tuple[str, dict[str, Any]]] = [
            ("reply.done", {"reply_id": rid, "status": "completed"}),  # before its start
            ("reply.done", {"reply_id": rid, "status": "exploded"}),  # unknown status
            ("reply.done", {}),  # no id, no status
            ("reply.started", {"reply_id": rid}),  # twice, never done
            ("reply.audio", {"reply_id": rid, "data": _b64(_tone(0.01))}),  # unknown reply
            ("tool.call", {"call_id": f"call_{i}", "name": "no_such_tool", "arguments": {}}),
            ("tool.call", {"call_id": f"call_{i}", "name": "launch", "args": '{"x": 1}'}),
            ("input.speech.stopped", {}),  # without a start
            ("input.speech.started", {}),
            ("transcript.agent.delta", {"reply_id": rid, "delta": "late"}),  # after the end
            ("transcript.agent", {"reply_id": rid, "text": "never said", "interrupted": True}),
            ("transcript.user", {"text": "", "item_id": None}),
            ("session.ready", {"session_id": SESSION_ID, "resume_token": "tok2"}),  # again
            ("session.updated", {"config": {"voice": 12}}),
            ("session.error", {"code": "INVALID_FORMAT", "message": "you did it wrong"}),
            ("error", {"code": "invalid_value", "message": "alias of session.error"}),
            ("reply.error", {"reply_id": rid, "code": "llm_failed", "retryable": True}),
            ("input.speech.stopped", {"extra": [1, 2]}),
            # a second ready with another id; the bundle is named after it, never outside
            ("session.ready", {"session_id": f"{SESSION_ID}/../../escaped"}),
            ("session.ready", {"session_id": "../escaped"}),
        ]
        kind, fields = self.rng.choice(cases)
        stamp = self.rng.choice([None, 1.5e9, "2025-01-01T00:00:00Z"])
        self._ok(_obj(i, kind, timestamp=stamp, **fields), i)


class HostileAgent(BackgroundLoop):
    """A websockets server in a thread: a valid handshake, a storm on demand, then sane."""

    def __init__(self, greet: bool = False) -> None:
        super().__init__()
        self.greet = greet  # a reply straight after session.ready, in the same burst
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.ws: ServerConnection | None = None
        self.storm_done_at: float | None = None
        self._server: Server | None = None
        self._connected = threading.Event()
        self.url = self.run(self._start(), 5)

    async def _start(self) -> str:
        self._server = await serve(self._handler, "127.0.0.1", 0, max_size=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/ws"

    async def _send(self, kind: str, **fields: Any) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps({"type": kind, "timestamp": time.time(), **fields}))

    async def _handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        try:
            async for frame in ws:
                msg = json.loads(frame)
                self.received.append((time.monotonic(), msg))
                kind = msg.get("type")
                if kind == "session.update" and len(self.received) == 1:
                    await self._send("session.updated", config=msg["session"])
                    await self._send(
                        "session.ready",
                        session_id=SESSION_ID,
                        resume_token="tok_secret",
                        expires_at=time.time() + 3600,
                        config=msg["session"],
                    )
                    self._connected.set()
                    if self.greet:
                        await self._reply("resp_greeting")
                elif kind == "session.update":
                    await self._send("session.updated", config=msg["session"])
                elif kind == "reply.create":
                    await self._reply("resp_after_storm")
                elif kind == "session.end":
                    await self._send("session.ended", session_duration_seconds=1.0)
                    await ws.close(1000)
        except ConnectionClosed:
            pass

    async def _reply(self, rid: str) -> None:
        await self._send("reply.started", reply_id=rid, item_id="msg_1")
        for k in range(0, len(REPLY_TONE), 480):
            await self._send("reply.audio", reply_id=rid, data=_b64(REPLY_TONE[k : k + 480]))
        await self._send("transcript.agent", reply_id=rid, item_id="msg_1", text="still here")
        await self._send("reply.done", reply_id=rid, status="completed")

    async def _storm(self, frames: list[Frame]) -> None:
        assert self.ws is not None
        for frame in frames:
            await self.ws.send(frame)
        self.storm_done_at = time.monotonic()
        await self._send("transcript.user", item_id="msg_end", text="storm over")

    def storm(self, frames: list[Frame]) -> None:
        """Send every frame as fast as the socket takes them, then a sentinel."""
        assert self._connected.wait(5)
        self.run(self._storm(frames), 60)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def stop(self) -> None:
        self.run(self._stop(), 5)
        self.close_loop()


class OrderSink(NullSink):
    """A null sink that records the order of ``start`` and ``write`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def start(self, link: Any) -> None:
        self.calls.append("start")
        super().start(link)

    def write(self, reply_id: str, samples: Any) -> None:
        self.calls.append("write")
        super().write(reply_id, samples)


def test_audio_in_the_same_burst_as_session_ready_is_played(tmp_path: Path) -> None:
    """A greeting whose audio follows session.ready at once is read before start() has wired
    the sink; it is held and written after the sink starts (not lost, nor written first)."""
    agent = HostileAgent(greet=True)
    sink = OrderSink()
    try:
        played = threading.Event()
        s = vk.Session(url=agent.url, audio_in="null", audio_out=sink, log_dir=tmp_path)
        s.on("playback.stop", lambda e: played.set())
        with s:
            played.wait(5)  # 0.3 s of audio; before the fix it never played
            log_path = s.log_path
    finally:
        agent.stop()
    assert sink.calls[0] == "start" and "write" in sink.calls
    stop = vk.load_log(log_path).of_type("playback.stop")[0]
    assert (stop["reason"], stop["played"]) == ("completed", len(REPLY_TONE) // 2)


@pytest.fixture
def hostile() -> Iterator[HostileAgent]:
    agent = HostileAgent()
    yield agent
    agent.stop()


def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


_FID = re.compile(r'^(?:\[?\{"fuzz": |"?fuzz )(\d+)')


def _outcomes(lines: list[dict[str, Any]]) -> Expect:
    """The ``error`` lines and ``recv`` lines of fuzz frames, in log order."""
    out: Expect = []
    for e in lines:
        if e["type"] == "error":
            m = _FID.match(str(e.get("frame", "")))
            out.append(("error", int(m.group(1)) if m else None))
        elif e["dir"] == "recv" and "fuzz" in e:
            out.append(("recv", int(e["fuzz"])))
    return out


def test_ten_thousand_hostile_events_leave_the_session_running_and_every_one_logged(
    hostile: HostileAgent, tmp_path: Path
) -> None:
    """No malformed server event crashes or silently vanishes; the session works after."""
    storm = Storm(SEED, N_EVENTS)
    assert len(storm.frames) == N_EVENTS and storm.huge == 12
    assert min(storm.by_category.values()) >= 12, storm.by_category
    log_dir = tmp_path / "logs"
    s = vk.Session(
        url=hostile.url,
        tools=[get_weather],
        audio_in="null",
        audio_out="null",
        log_dir=log_dir,
        connect_timeout=5,
    )
    over = threading.Event()
    done = threading.Event()
    s.on("transcript.user", lambda e: e.get("text") == "storm over" and over.set())
    s.on("reply.done", lambda e: e.get("reply_id") == "resp_after_storm" and done.set())
    t0 = time.monotonic()
    s.start()
    try:
        hostile.storm(storm.frames)
        assert over.wait(60), "the session never read the frame after the storm"
        storm_s = time.monotonic() - t0
        # 0 crashes: the session thread and loop live, the session is still ready
        assert [t for t in threading.enumerate() if t.name == "voicekit-session"]
        assert s.status == "ready", (s.status, s.last_error)
        # (the loop runs: update() and say() below each wait for a coroutine on it)
        # still usable: a config update and a reply round trip, and audio still goes up
        s.update(system_prompt="after the storm")
        s.say("are you still there?")
        assert done.wait(10), "no reply.done for the reply asked after the storm"
        time.sleep(0.3)  # a few more 50 ms audio blocks
    finally:
        log = s.stop()
    assert s.status == "ended"
    assert hostile.storm_done_at is not None
    after = [m["type"] for t, m in hostile.received if t > hostile.storm_done_at]
    assert "session.update" in after and "reply.create" in after and "session.end" in after
    assert after.count("input.audio") >= 5

    # the bundle loads, stayed inside log_dir (hostile session ids are not paths)
    assert log is not None
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]
    assert len(list(log_dir.iterdir())) == 1 and log.path.parent == log_dir
    loaded = vk.load_log(log.path)
    lines = loaded.raw_events
    assert len(lines) >= N_EVENTS
    assert not any("tok_secret" in json.dumps(e) or "tok2" in json.dumps(e) for e in lines)

    # exact accounting: every frame left the outcome it must, in order; nothing else errored
    got = _outcomes(lines)
    expected_errors = sum(1 for kind, _ in storm.expect if kind == "error")
    assert sum(1 for kind, _ in got if kind == "error") == expected_errors
    for k, (want, have) in enumerate(zip(storm.expect, got, strict=False)):
        assert want == have, (k, want, have, storm.frames[min(k, N_EVENTS - 1)][:120])
    assert len(got) == len(storm.expect)

    # after the storm the conversation is normal again, and played
    played = loaded.of_type("playback.start")
    assert any(e["reply_id"] == "resp_after_storm" for e in played)
    assert loaded.of_type("session.updated", direction="recv")
    assert loaded.of_type("session.ended", direction="recv")
    print(
        f"\nhostile storm: {N_EVENTS} frames, {expected_errors} error lines, "
        f"{storm_s:.1f} s to process, categories {storm.by_category}"
    )


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "transcript.user", "text": "x", "n": ' + _deep(100_000) + "}",
        '{"type": "transcript.user", "text": "x", "timestamp": ' + "9" * 400 + "}",
        json.dumps({"type": "tool.call", "call_id": "c", "name": "n", "arguments": _deep(5000)}),
    ],
    ids=["deep-json", "huge-int-timestamp", "deep-tool-arguments"],
)
def test_the_parser_raises_protocol_error_and_nothing_else(frame: str) -> None:
    """Frames that once escaped as RecursionError / OverflowError (and killed the reader)."""
    with pytest.raises(vk.ProtocolError):
        vk.protocol.parse_server_event(frame)
