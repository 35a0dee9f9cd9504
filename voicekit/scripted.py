"""Scripted users: a reproducible human on the other end of the line.

A :class:`ScriptedUser` is a paced audio source (see :mod:`voicekit.audio.sources`) that
speaks a script of :class:`Say`, :class:`Pause`, :class:`BargeIn` and :class:`Backchannel`
steps with offline speech synthesis, in a different voice from the agent's, timing each
step against what the agent does: by default a ``Say`` waits until the agent's reply has
finished playing, plus a human-like gap. Every utterance is logged as a ``user.utterance``
line (start, end, text, kind, turn) — the ground truth the analysis prefers over VAD.

Runtime layer: imports numpy, asyncio, ``voicekit.audio.sources`` and ``voicekit.errors``;
the speech synthesis (``voicekit.speech.tts``) lazily, when the script is first spoken.
Never imports the session, the stand-in agent, analysis or widgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.sources import SAMPLE_RATE, AudioLink, Source
from voicekit.errors import ConfigError

__all__ = ["Backchannel", "BargeIn", "Pause", "Say", "ScriptedUser"]


@dataclasses.dataclass(frozen=True)
class Say:
    """Say ``text`` as a turn.

    Parameters
    ----------
    text : str
        What to say.
    wait : bool
        Wait until the agent's reply to the previous turn has finished playing (plus a
        human-like gap) before speaking. A ``Say`` right after a :class:`Pause` continues
        the same turn and never waits.
    """

    text: str
    wait: bool = True


@dataclasses.dataclass(frozen=True)
class Pause:
    """Stay silent for ``seconds``; a following ``Say`` continues the same turn (a hesitation)."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class BargeIn:
    """Interrupt the agent: speak ``text`` ``after`` seconds into the agent's played reply."""

    text: str
    after: float = 1.0


@dataclasses.dataclass(frozen=True)
class Backchannel:
    """A short acknowledgement ("uh-huh") ``after`` seconds into the agent's played reply."""

    text: str = "uh-huh"
    after: float = 0.5


Step = Say | Pause | BargeIn | Backchannel


class ScriptedUser(Source):
    """A scripted conversation partner (an audio source for ``vk.Session(audio_in=...)``).

    Parameters
    ----------
    steps : sequence of Say, Pause, BargeIn, Backchannel
        The script.
    gap : (float, float)
        Range in seconds of the human-like gap after the agent finishes, before a turn.
    response_timeout : float
        Seconds to wait for the agent's reply before going on with the script anyway.
    settle : float
        Seconds of agent silence required before the first turn (lets a greeting start).
    voice : str, optional
        espeak-ng voice of the user (default: the recogniser-friendly user voice, which
        differs from every agent voice).
    seed : int
        Seed of the gaps, so runs are reproducible.

    Examples
    --------
    >>> user = vk.ScriptedUser([vk.Say("what's the weather in Paris"), vk.Pause(0.8),
    ...                         vk.Say("and tomorrow"), vk.BargeIn("stop, thanks", after=1.0)])
    """

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        gap: tuple[float, float] = (0.3, 0.7),
        response_timeout: float = 10.0,
        settle: float = 1.0,
        voice: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        steps = list(steps)
        for i, step in enumerate(steps):
            if not isinstance(step, (Say, Pause, BargeIn, Backchannel)):
                raise ConfigError(
                    f"steps[{i}] is {type(step).__name__}; use vk.Say, vk.Pause, vk.BargeIn "
                    "or vk.Backchannel",
                    field=f"steps[{i}]",
                )
            text = getattr(step, "text", None)
            if text is not None and not str(text).strip():
                raise ConfigError(
                    f"steps[{i}].text is empty; give the words to say", field=f"steps[{i}].text"
                )
            if isinstance(step, Pause) and not step.seconds >= 0:
                raise ConfigError(
                    f"steps[{i}].seconds ({step.seconds}) must be >= 0, e.g. vk.Pause(0.8)",
                    field=f"steps[{i}].seconds",
                )
            if isinstance(step, (BargeIn, Backchannel)) and not step.after >= 0:
                raise ConfigError(
                    f"steps[{i}].after ({step.after}) must be >= 0 seconds into the reply",
                    field=f"steps[{i}].after",
                )
        if not 0 <= gap[0] <= gap[1]:
            raise ConfigError(
                f"gap {gap} must be (low, high) seconds with 0 <= low <= high, e.g. (0.2, 0.6)",
                field="gap",
            )
        self.steps: list[Step] = steps
        self.gap = gap
        self.response_timeout = response_timeout
        self.settle = settle
        self.voice = voice
        self.seed = seed
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._clips: list[tuple[int, NDArray[np.int16]]] = []
        self._next_offset = 0
        self._link: AudioLink | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        # what the agent is doing, from session events
        self._in_reply = False
        self._playing = False
        self._play_start = 0.0
        self._last_activity = 0.0
        self._outstanding_tools = 0
        self._reply_started: dict[str, float] = {}
        self._answered_at = -1.0  # start time of the latest reply that completed

    # -- Source ---------------------------------------------------------------------
    def start(self, link: AudioLink) -> None:
        """Start the script on the session's loop."""
        self._link = link
        self._changed = asyncio.Event()
        self.finished.clear()
        self._task = link.loop.create_task(self._run(), name="voicekit-scripted-user")

    def stop(self) -> None:
        """Cancel the script."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def generate(self, offset: int, n: int) -> NDArray[np.int16]:
        """Mix the scheduled utterances into the block ``[offset, offset + n)``."""
        self._next_offset = offset + n
        out = np.zeros(n, np.int16)
        keep = []
        for start, clip in self._clips:
            lo = offset - start
            a, b = max(lo, 0), min(lo + n, len(clip))
            if a < b:
                out[a - lo : b - lo] = clip[a:b]
            if start + len(clip) > offset + n:
                keep.append((start, clip))
        self._clips = keep
        return out

    def on_event(self, event: dict[str, Any]) -> None:
        """Follow the agent: replies, playback and tool calls."""
        kind, direction = event.get("type"), event.get("dir")
        now = float(event.get("t", 0.0))
        if direction == "recv":
            if kind == "reply.started":
                self._in_reply = True
                self._outstanding_tools = 0
                self._reply_started[str(event.get("reply_id"))] = now
            elif kind == "reply.done":
                self._in_reply = False
                started = self._reply_started.pop(str(event.get("reply_id")), now)
                self._answered_at = max(self._answered_at, started)
            elif kind == "tool.call":
                self._outstanding_tools += 1
        elif kind == "playback.start":
            self._playing = True
            self._play_start = now
        elif kind == "playback.stop":
            self._playing = False
        self._last_activity = now
        if self._changed is not None:
            self._changed.set()

    def copy(self) -> ScriptedUser:
        """A fresh user with the same script, gaps, timeouts, voice and seed (not yet run)."""
        return ScriptedUser(
            self.steps,
            gap=self.gap,
            response_timeout=self.response_timeout,
            settle=self.settle,
            voice=self.voice,
            seed=self.seed,
        )

    def describe(self) -> str:
        """``"scripted(<n> steps)"``."""
        return f"scripted({len(self.steps)} steps)"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the script has finished; returns False on timeout.

        Do not call this from the session's own thread (observers).
        """
        return self.finished.wait(timeout)

    # -- the script -----------------------------------------------------------------
    def _now(self) -> float:
        assert self._link is not None
        return self._link.now()

    async def _until(self, predicate: Any, timeout: float) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every event), or time out."""
        assert self._changed is not None
        deadline = self._now() + timeout
        while not predicate():
            remaining = deadline - self._now()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
        return True

    def _agent_quiet(self) -> bool:
        return not (self._in_reply or self._playing or self._outstanding_tools)

    async def _wait_for_agent(self, since: float) -> None:
        """Wait until a reply that started after ``since`` is done (or time out), then quiet.

        The quiet spell (0.3 s) matters for tools: the answer reply follows the pre-amble's
        ``reply.done`` once the tool result is in.
        """
        await self._until(lambda: self._answered_at >= since, self.response_timeout)
        deadline = self._now() + self.response_timeout
        while self._now() < deadline:
            await self._until(self._agent_quiet, deadline - self._now())
            await asyncio.sleep(0.3)
            if self._agent_quiet() and self._now() - self._last_activity >= 0.3:
                return

    async def _speak(self, clip: NDArray[np.int16], text: str, kind: str, turn: int) -> None:
        assert self._link is not None
        start = max(self._next_offset, round(self._now() * SAMPLE_RATE))
        self._clips.append((start, clip))
        t0, t1 = start / SAMPLE_RATE, (start + len(clip)) / SAMPLE_RATE
        self._link.emit("user.utterance", start=t0, end=t1, text=text, kind=kind, turn=turn)
        await asyncio.sleep(max(0.0, t1 - self._now()))

    def _synthesize(self) -> list[NDArray[np.int16] | None]:
        from voicekit.speech import tts

        style = tts.USER_STYLE if self.voice is None else tts.style_for_voice(self.voice)
        out: list[NDArray[np.int16] | None] = []
        for step in self.steps:
            text = getattr(step, "text", None)
            out.append(None if text is None else tts.synthesize(text, style).samples)
        return out

    async def _run(self) -> None:
        try:
            clips = await asyncio.to_thread(self._synthesize)
            rng = random.Random(self.seed)
            await self._until(lambda: False, self.settle)
            await self._until(self._agent_quiet, self.response_timeout)
            turn, after_pause, turn_start = -1, False, self._now()
            for step, clip in zip(self.steps, clips, strict=True):
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                    after_pause = True
                    continue
                assert clip is not None
                if isinstance(step, Say):
                    if not after_pause:
                        if step.wait and turn >= 0:
                            await self._wait_for_agent(turn_start)
                        await asyncio.sleep(rng.uniform(*self.gap) if turn >= 0 else 0.0)
                        turn += 1
                        turn_start = self._now()
                    await self._speak(clip, step.text, "turn", max(turn, 0))
                else:
                    kind = "barge_in" if isinstance(step, BargeIn) else "backchannel"
                    await self._until(lambda: self._playing, self.response_timeout)
                    await self._until(
                        lambda after=step.after: (
                            not self._playing or self._now() >= self._play_start + after
                        ),
                        self.response_timeout,
                    )
                    if kind == "barge_in":
                        turn += 1
                        turn_start = self._now()
                    await self._speak(clip, step.text, kind, max(turn, 0))
                after_pause = False
            await self._wait_for_agent(turn_start)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported through .error; the session keeps running
            self.error = exc
        finally:
            self.finished.set()
