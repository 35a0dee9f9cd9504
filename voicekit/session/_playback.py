"""Reply playback bookkeeping: what of each reply was received, played and flushed.

Runtime layer, private; no socket, no asyncio — testable with a sink and a bus alone.
:class:`Playback` owns the sink while a session runs. The session hands it agent audio as it
arrives, the reply lifecycle events and barge-ins; the pacer calls :meth:`Playback.poll` every
block. It writes ``playback.start`` / ``playback.stop`` lines and the agent track of the bundle
(each played sample at the session sample index the sink played it at).

A reply that stays silent is flagged: when its ``reply.done`` (``completed``) arrives and
none of its samples reached :data:`voicekit.audio.level.AUDIBLE` (or it carried no audio at
all), a ``reply.silent {reply_id, duration, samples, tool_call}`` line is written (live
observations: a reply of pure silence, ``completed``, is how a failing stored-agent LLM
shows, and a turn merged after a short pause got a silent reply whose text was never
spoken). ``tool_call`` says the reply carried a ``tool.call``: the service's tool pre-ambles
are often silent by design.

Must not import websockets, the protocol's state machines, analysis or widgets.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.level import AUDIBLE
from voicekit.audio.sources import SAMPLE_RATE

if TYPE_CHECKING:
    from voicekit.audio.sinks import Played, Sink
    from voicekit.session._bus import Bus

__all__ = ["Playback", "ReplyPlayback"]


@dataclasses.dataclass
class ReplyPlayback:
    """One reply's audio: samples received, played and dropped (flushed or late)."""

    reply_id: str
    received: int = 0
    played: int = 0
    dropped: int = 0
    end: int | None = None  # session sample index after the last played sample
    started: bool = False
    done_status: str | None = None
    stopped: bool = False
    peak: int = 0  # largest |sample| received

    @property
    def finished(self) -> bool:
        """Started, done on the server and every received sample played or dropped."""
        return (
            self.started
            and not self.stopped
            and self.done_status is not None
            and self.played + self.dropped >= self.received
        )


class Playback:
    """Agent audio from the socket to the sink, and its record (loop thread only).

    Parameters
    ----------
    sink : Sink
        Where replies are played.
    bus : Bus
        Where ``playback.*`` lines and the agent track go.
    """

    def __init__(self, sink: Sink, bus: Bus) -> None:
        self.sink = sink
        self.bus = bus
        self.replies: dict[str, ReplyPlayback] = {}
        self.playing: str | None = None
        self.attached = False
        # agent audio that arrived before the sink started (the greeting's first chunks can
        # come in the same read as session.ready); written once it starts
        self._early: list[tuple[str, NDArray[np.int16]]] = []

    def reply(self, reply_id: str) -> ReplyPlayback:
        """The record of ``reply_id`` (made on first mention)."""
        rec = self.replies.get(reply_id)
        if rec is None:
            rec = self.replies[reply_id] = ReplyPlayback(reply_id)
        return rec

    def attach(self) -> None:
        """The sink has started: play what came before."""
        self.attached = True
        early, self._early = self._early, []
        for reply_id, samples in early:
            self.sink.write(reply_id, samples)

    # -- events from the agent ------------------------------------------------------------
    def audio(self, reply_id: str, samples: NDArray[np.int16]) -> None:
        """A ``reply.audio`` chunk, decoded."""
        rec = self.reply(reply_id)
        if rec.done_status == "interrupted" or rec.stopped:
            rec.dropped += len(samples)  # late audio of an interrupted reply is not played
            return
        rec.received += len(samples)
        if rec.peak < AUDIBLE and len(samples):
            rec.peak = max(rec.peak, _peak(samples))
        if not self.attached:
            self._early.append((reply_id, samples))
            return
        self.sink.write(reply_id, samples)

    def done(self, reply_id: str, status: str, tool_call: bool = False) -> None:
        """``reply.done``: an interrupted reply is flushed; a finished one may stop now; a
        completed one that was all silence is a ``reply.silent`` line (``tool_call``: the
        reply carried a tool call)."""
        rec = self.reply(reply_id)
        rec.done_status = status
        if status == "completed" and rec.peak < AUDIBLE:
            self.bus.local(
                "reply.silent",
                reply_id=reply_id,
                duration=round(rec.received / SAMPLE_RATE, 3),
                samples=rec.received,
                tool_call=tool_call,
            )
        if status == "interrupted":
            self.barge_in("interrupted", only=reply_id)
        self._maybe_stop(rec)

    def barge_in(self, reason: str, only: str | None = None) -> None:
        """Flush playback (on ``input.speech.started``, and again on an interrupted reply).

        Flush first, then poll: a device callback may take a block between the two, and
        that block is heard, so it must count as played before ``playback.stop``.
        """
        dropped = self.sink.flush()
        for rid, samples in self._early:
            dropped[rid] = dropped.get(rid, 0) + len(samples)
        self._early = [(r, a) for r, a in self._early if only is not None and r != only]
        self.poll()
        for rid, n in dropped.items():
            if only is None or rid == only:
                self.reply(rid).dropped += n
        for rec in self.replies.values():
            if rec.started and not rec.stopped and (only is None or rec.reply_id == only):
                self._stop(rec, reason)

    # -- the sink's side ------------------------------------------------------------------
    def poll(self) -> None:
        """Record what the sink played since the last poll (pacer, every block)."""
        played: list[Played] = self.sink.poll()
        writer = self.bus.writer
        for p in played:
            rec = self.reply(p.reply_id)
            if not rec.started:
                rec.started = True
                self.playing = p.reply_id
                self.bus.local("playback.start", reply_id=p.reply_id, offset=p.offset)
            rec.played += len(p.samples)
            rec.end = p.offset + len(p.samples)
            if writer is not None:
                writer.write_agent_audio(p.offset, p.samples)
        for reply_id in {p.reply_id for p in played}:  # only they can have finished now
            self._maybe_stop(self.replies[reply_id])

    def stop_all(self, reason: str) -> None:
        """The session ends: every reply still playing stops with ``reason``."""
        for rec in self.replies.values():
            if rec.started and not rec.stopped:
                self._stop(rec, reason)

    def _maybe_stop(self, rec: ReplyPlayback) -> None:
        if rec.finished:
            self._stop(rec, "interrupted" if rec.dropped else "completed")

    def _stop(self, rec: ReplyPlayback, reason: str) -> None:
        rec.stopped = True
        if self.playing == rec.reply_id:
            self.playing = None
        self.bus.local(
            "playback.stop",
            reply_id=rec.reply_id,
            played=rec.played,
            dropped=rec.dropped,
            end=rec.end,
            reason=reason,
        )


def _peak(samples: NDArray[np.int16]) -> int:
    """Largest ``|sample|`` (int16 -32768 counts as 32768)."""
    return int(max(int(samples.max()), -int(samples.min())))
