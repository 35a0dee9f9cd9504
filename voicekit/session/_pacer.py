"""The pacer: one tick every 50 ms on absolute deadlines of the session clock.

Runtime layer, private. Each tick it asks a paced source (a scripted user, a WAV file, an
array) for the blocks due by now and sends them, then has the playback record what the sink
played. Deadlines are absolute (``t0 + k * 50 ms``), so a late tick does not shift the next
one. A tick that comes late sends the blocks it missed at once, up to
:data:`CATCH_UP_SAMPLES` (a paced source's audio is virtual and is never lost to a busy
machine); further behind — a stall — it skips to now and writes an ``input.gap`` line instead
of a burst. Push sources (microphone, browser) do not use the pacer: their callbacks hand audio
to the loop as it is captured.

Must not import websockets, analysis or widgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.sources import BLOCK, SAMPLE_RATE

if TYPE_CHECKING:
    from voicekit.audio.sources import Source
    from voicekit.session._bus import Bus

__all__ = ["BLOCK", "CATCH_UP_SAMPLES", "Pacer"]

CATCH_UP_SAMPLES = SAMPLE_RATE  # 1 s


class Pacer:
    """The session's clocked loop (a task on the session's loop).

    Parameters
    ----------
    source : Source
        The user's audio; only a ``paced`` one is asked for blocks.
    t0 : float
        The session clock's origin (``time.monotonic()``; ``loop.time()`` is the same clock).
    sending : callable
        Whether audio may be sent now (the session is ready).
    send : callable
        ``send(samples, offset)``: record and queue one block of user audio.
    flush : callable
        Awaited after a tick's blocks are queued: sends them.
    poll : callable
        Called every tick: record what the sink played.
    bus : Bus
        Where ``input.gap`` lines go.
    """

    def __init__(
        self,
        source: Source,
        t0: float,
        sending: Callable[[], bool],
        send: Callable[[NDArray[np.int16], int], None],
        flush: Callable[[], Awaitable[None]],
        poll: Callable[[], None],
        bus: Bus,
    ) -> None:
        self.source = source
        self.t0 = t0
        self._sending = sending
        self._send = send
        self._flush = flush
        self._poll = poll
        self._bus = bus

    async def run(self) -> None:
        """Tick until cancelled."""
        loop = asyncio.get_running_loop()  # loop.time() is time.monotonic()
        t0, rate = self.t0, SAMPLE_RATE
        offset = round((loop.time() - t0) * rate)
        paced = self.source.paced
        while True:
            await asyncio.sleep(max(0.0, t0 + (offset + BLOCK) / rate - loop.time()))
            # the blocks due by now: one, or those a late turn of the loop missed
            behind = round((loop.time() - t0) * rate) - offset
            if behind > CATCH_UP_SAMPLES + BLOCK:  # a stall: skip to now, say so
                self._bus.local("input.gap", duration=behind / rate, reason="input lagged")
                offset += behind - behind % BLOCK
                behind %= BLOCK
            due = max(1, behind // BLOCK)
            if paced and self._sending():
                for k in range(due):
                    start = offset + k * BLOCK
                    self._send(np.asarray(self.source.generate(start, BLOCK), np.int16), start)
                await self._flush()
            offset += due * BLOCK
            self._poll()
