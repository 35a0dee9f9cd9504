"""A raw protocol client for testing the stand-in agent (deliberately not vk.Session)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Coroutine
from typing import Any, ClassVar

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from voicekit.speech import USER_STYLE, synthesize


def speech(text: str) -> np.ndarray:
    return synthesize(text, USER_STYLE).samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(24000 * seconds), np.int16)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, then close every RawClient the test opened (sockets the agent closed
    included: their TCP close must finish before the loop goes, or a ResourceWarning fires in
    whichever later test the garbage collector happens to run)."""

    async def main() -> Any:
        try:
            return await coro
        finally:
            await RawClient.close_all()

    return asyncio.run(main())


class RawClient:
    """Collects every server event with its arrival time; streams audio in real time."""

    _open: ClassVar[list[RawClient]] = []

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.changed = asyncio.Event()
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        RawClient._open.append(self)

    @classmethod
    async def open(cls, url: str, session: dict[str, Any] | None = None, **kw: Any) -> RawClient:
        client = cls(await connect(url, **kw))
        if session is not None:
            await client.send("session.update", session=session)
            await client.wait_for("session.ready")
        return client

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                event = json.loads(frame)
                event["_t"] = time.monotonic() - self.t0
                self.events.append(event)
                self.changed.set()
        except Exception:
            pass
        finally:
            self.closed.set()
            self.changed.set()

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, **fields}))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(
        self, kind: str, count: int = 1, timeout: float = 20.0, **match: Any
    ) -> dict[str, Any]:
        async def until() -> dict[str, Any]:
            while True:
                found = [e for e in self.of(kind) if all(e.get(k) == v for k, v in match.items())]
                if len(found) >= count:
                    return found[count - 1]
                if self.closed.is_set():
                    raise AssertionError(
                        f"socket closed before {kind}; got {[e['type'] for e in self.events][-8:]}"
                    )
                self.changed.clear()
                await self.changed.wait()

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            seen = [e["type"] for e in self.events if e["type"] != "reply.audio"][-12:]
            raise AssertionError(f"no {kind} within {timeout} s; last events {seen}") from None

    async def stream(self, audio: np.ndarray, chunk: int = 1200) -> float:
        """Send 24 kHz PCM in real time (50 ms chunks); returns the start time."""
        start = time.monotonic()
        for k in range(0, len(audio), chunk):
            block = audio[k : k + chunk].astype("<i2").tobytes()
            await self.send("input.audio", audio=base64.b64encode(block).decode())
            await asyncio.sleep(max(0.0, start + (k + chunk) / 24000 - time.monotonic()))
        return start - self.t0

    def reply_samples(self, reply_id: str) -> int:
        return sum(
            len(base64.b64decode(e["data"])) // 2
            for e in self.of("reply.audio")
            if e["reply_id"] == reply_id
        )

    async def close(self) -> None:
        """Close (or finish closing) the socket; safe to call twice."""
        await self.ws.close()
        self._reader.cancel()
        if self in RawClient._open:
            RawClient._open.remove(self)

    @classmethod
    async def close_all(cls) -> None:
        while cls._open:
            await cls._open[-1].close()
