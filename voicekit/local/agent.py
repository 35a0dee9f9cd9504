"""One stand-in agent session: the protocol on a socket, a speech pipeline, replies.

``voicekit.local`` layer. An :class:`AgentSession` is one logical session: it outlives its
socket for the 30 s resume window. Each socket is driven by a ``ServerProtocol`` (the
sans-I/O state machine of :mod:`voicekit.protocol`): frames in, events and messages out,
close codes decided there. This module adds what the protocol cannot know: speech.

Pipeline, per session::

    input.audio -> 24 kHz int16 -> 16 kHz -> Silero VAD (512-sample frames)
        -> turn detector (vad_threshold, min/max silence, continuation words)
        -> pocketsphinx (streamed while the user speaks; partials -> transcript.user.delta;
           in the server's recognition processes, see ``speech.asr_pool``)
        -> brain (text or a tool call) -> espeak-ng -> 24 kHz (or G.711) reply.audio,
           10 ms chunks paced in real time on absolute deadlines

Threading: everything here runs on the server's loop, except the recogniser and synthesis,
which run in the session's own single worker thread (order preserved, never blocking the
loop). Recognition itself runs in a child process (pocketsphinx holds the interpreter lock
while it decodes), so one session's recognition never delays another session's audio pacing.
Input audio is read at most ``AUDIO_AHEAD_S`` ahead of real time and fed to the VAD in
``AUDIO_SLICE_S`` slices, so a client flooding audio slows only itself.

Profiles: ``fast`` answers as soon as it can (the reply after recognition, 250 ms lead-in, a
spoken tool pre-amble). ``hosted`` times everything as the hosted service was measured
doing (live observations), every delay drawn from the session's
:class:`voicekit.local.timing.HostedTiming`:

- ``input.speech.started`` ~0.6 s after the onset; the commit (``input.speech.stopped``)
  after the adaptive, ``transcription_mode``-dependent delay when the session sets neither
  silence (recognition finishes during it), with ``transcript.user``, ``reply.started`` and
  the reply's first (silent) audio chunk in the same flush; the reply streams its lead-in
  while synthesis runs;
- a barge-in is decided 1.07-2.17 s after the user began; a short one ("wait, sorry,
  stop") gets no reply of its own, and the next reply has the 1.76 s lead-in;
- a tool turn is a silent pre-amble (no transcript) carrying ``tool.call``, done ~2.3 s
  after it unless ``tool.result`` comes first; the answer has a 0.69 s lead-in;
- ``Behaviour.merge_early_turns``: speech resumed after a 0.3-0.6 s pause following a
  complete-looking phrase commits the first part at pause start + 0.8 s, with a held,
  silent reply; the continuation is merged into the same turn (same ``item_id``; its
  ``transcript.user`` carries the joined text), the held reply then ends with its unspoken
  text (``interrupted: false``) and the merged turn is answered;
- ``session.updated`` ~0.44 s after the first ``session.update``, ``session.ready`` ~17 ms
  later, ``expires_at`` now + 3595 s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from voicekit._aio import TaskSet
from voicekit.local.brain import ToolRequest, default_brain
from voicekit.local.timing import (
    MERGE_PAUSE_S,
    SESSION_TTL_S,
    HostedTiming,
    is_short_barge_in,
    looks_complete,
)
from voicekit.local.turns import BACKCHANNELS, CONTINUATIONS, ONSET_FRAMES
from voicekit.protocol.config import (
    DEFAULT_MAX_SILENCE_MS,
    DEFAULT_MIN_SILENCE_MS,
    DEFAULT_VAD_THRESHOLD,
)
from voicekit.protocol.server import (
    Action,
    AudioReceived,
    ConfigUpdated,
    MessageAdded,
    ReplyCancelRequested,
    ReplyRequested,
    ServerProtocol,
    SessionEndRequested,
    SessionResumed,
    SessionStarted,
    ToolResultReceived,
)

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from voicekit.local.server import AgentServer
    from voicekit.speech import Recognizer
    from voicekit.speech.asr_pool import AsrPool, RemoteRecognizer

__all__ = ["AgentSession"]

log = logging.getLogger("voicekit.local")

SAMPLE_RATE = 24000
ASR_RATE = 16000
VAD_FRAME = 512  # samples at 16 kHz = 32 ms
PREROLL_S = 0.4  # audio before the detected onset handed to the recogniser
BACKCHANNEL_MAX_S = 0.6  # voiced speech shorter than this never interrupts (uh-huh, yeah)
BACKCHANNEL_LONG_S = 1.0  # speech this long interrupts even before its words are known
BACKCHANNEL_WORDS = BACKCHANNELS  # words that never make speech an interruption
DEFAULT_TOOL_TIMEOUT_S = 120.0
# Input audio may run this far ahead of real time (a client catching up after a network
# stall sends seconds at once); beyond it the socket is read at real-time pace (TCP pushes
# back on the client): nothing is dropped, and a client sending faster than real time costs
# the agent no more than a real-time one.
AUDIO_AHEAD_S = 10.0
AUDIO_SLICE_S = 0.1  # the loop runs other sessions between slices of one big input.audio
FLUSH_BATCH = 32  # messages sent per turn of the loop
# A reply speaks at most this much text (~90 s of speech), cut at a word: synthesis holds a
# process-wide lock (~0.15 s and ~50 s of audio per 1000 characters), so a client asking
# for a 1 MB greeting would otherwise stall every session's replies and take gigabytes.
MAX_REPLY_CHARS = 2000
FAST_LEAD_S = 0.25  # the fast profile's lead-in silence of every reply
# hosted profile: the VAD's probability stays high this long after the acoustic end, so the
# detector's trailing silence starts late by it (subtracted from the commit delays)
VAD_TAIL_S = 0.065
# ... and rises above the threshold this long after the acoustic onset
VAD_ONSET_LAG_S = 0.05
SILENT_REPLY_MAX_S = 120.0  # a silent (held, pre-amble) reply ends by itself after this


@dataclasses.dataclass
class _Reply:
    """A reply being spoken."""

    reply_id: str
    item_id: str
    text: str
    task: asyncio.Task[None] | None = None
    audio_start: float | None = None  # loop time of sample 0 of the reply audio
    duration_s: float = 0.0
    words: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
    done: bool = False  # reply.done sent (or the reply was abandoned)
    is_greeting: bool = False
    lead_s: float = FAST_LEAD_S  # hosted: the lead-in silence
    silent: bool = False  # hosted: silence until ended by the agent (tool pre-amble, held)
    held: bool = False  # hosted: the silent reply of an early-ended, merged turn

    def playing(self, now: float) -> bool:
        """Whether the client is still hearing this reply (real-time pacing estimate).

        A reply may be done on the wire (all audio sent) while its last chunks still play.
        """
        if self.audio_start is None:
            return not self.done
        return now < self.audio_start + self.duration_s + 0.05

    def heard_ms(self, now: float) -> int:
        """Milliseconds of this reply the client has heard (real-time pacing estimate)."""
        if self.audio_start is None:
            return 0
        return int(max(0.0, min(now - self.audio_start, self.duration_s)) * 1000)

    def trimmed_text(self, now: float) -> str:
        """The words the client has heard: those that began before the cut."""
        cut = self.heard_ms(now)
        return " ".join(w for w, start, _ in self.words if start < cut)


class AgentSession:
    """One logical session of the stand-in agent (survives its socket for resume).

    Parameters
    ----------
    server : AgentServer
        Shared server state (options, tokens, the sessions held for resume).
    ws : ServerConnection
        The socket that opened the session.
    authorized : bool
        Whether the socket's credential was accepted.
    """

    def __init__(self, server: AgentServer, ws: ServerConnection, authorized: bool) -> None:
        self.server = server
        self.options = server.options
        self.ws: ServerConnection | None = ws
        self.authorized = authorized
        hosted = self.options.profile == "hosted"
        self.proto = ServerProtocol(
            voices=_accepted_voices(self.options.voices),
            resume=self._resume_lookup,
            agents=server.agents.session_for,  # session.update {"agent_id"} (stored agents)
            enforce_audio_rate=bool(self.options.enforce_audio_rate),
            session_ttl_s=SESSION_TTL_S if hosted else 3600,
        )
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.detached_at: float | None = None
        self.config: Any = None
        self.history: list[dict[str, Any]] = []
        self.rng = random.Random(self.options.seed)
        # hosted profile: every delay drawn from the session's seeded generator
        self.timing: HostedTiming | None = HostedTiming(self.rng) if hosted else None
        self._onset_at = 0.0  # loop time of the current utterance's onset
        self._barge_at: float | None = None  # hosted: when a barge-in may be decided
        self._barge_turn = False  # hosted: the current user turn interrupted the agent
        self._barge_lead = False  # hosted: the next reply to a user turn follows a barge-in
        self._announce: asyncio.TimerHandle | None = None  # hosted: speech.started due
        # hosted: an early commit due, or being judged (the recogniser catching up)
        self._early: asyncio.TimerHandle | _Pending | None = None
        self._held: _Reply | None = None  # hosted: the held reply of an early-ended turn
        self._turn_end_at: float | None = None  # loop time of the last turn's acoustic end
        self.brain: Callable[..., Any] = self.options.brain or default_brain
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.pipeline: Any = None
        self.reply: _Reply | None = None
        self.replies: list[_Reply] = []
        self.tool_waiters: dict[str, asyncio.Future[tuple[str, bool]]] = {}
        self.tasks = TaskSet(logger=log)  # spawned tasks, failures logged once
        self.started_at = time.monotonic()
        self.audio_seconds = 0.0
        self._audio_due = 0.0  # loop time at which the audio received so far would end
        self.closed = False
        self._send_lock = asyncio.Lock()
        self._held_audio: list[NDArray[np.int16]] = []  # audio before the pipeline was built
        self.delegate: AgentSession | None = None
        self.recorder: Any = None  # voicekit.local.history.Recorder, from session.ready

    # -- socket loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Serve frames from the socket until it closes."""
        from websockets.exceptions import ConnectionClosed

        ws = self.ws
        assert ws is not None
        if not self.authorized:
            self.proto.reject_unauthorized()
            await self._flush()
            await ws.close(1008, "unauthorized")
            return
        target: AgentSession = self
        try:
            async for frame in ws:
                await target._on_frame(frame)
                target = self.delegate or self  # a resume hands the socket to the held session
                if target.proto.close_code is not None:
                    break
                # one frame per turn of the loop: frames a client queued up are otherwise
                # handled in one go, and other sessions' audio waits behind them
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        finally:
            await target._after_socket(ws)

    async def _on_frame(self, frame: str | bytes) -> None:
        try:
            actions = self.proto.receive(frame)
        except Exception:  # the protocol reports bad input as session.error itself
            log.exception("voicekit.local: protocol failure")
            actions = []
        # what the protocol answered goes out before the events are handled: session.ready
        # never waits for the speech pipeline (the first session of a cold agent builds it
        # for ~1 s while its recognition processes start)
        if self.timing is not None and any(isinstance(a, SessionStarted) for a in actions):
            await self._send_ready_late()
        else:
            await self._flush()
        for action in actions:
            try:
                await self._on_action(action)
            except Exception:
                log.exception("voicekit.local: failed to handle %r", action)
        await self._flush()
        if self.proto.close_code is not None and self.ws is not None:
            await self.ws.close(self.proto.close_code, self.proto.close_reason or "")

    async def _flush(self) -> None:
        """Send what the protocol has queued, in order."""
        ws = self.ws
        messages = self.proto.data_to_send()
        if ws is None or not messages:
            return
        async with self._send_lock:
            for i, msg in enumerate(messages):
                if i and not i % FLUSH_BATCH:
                    await asyncio.sleep(0)  # a long reply's word burst: let others send
                with contextlib.suppress(Exception):
                    await ws.send(json.dumps(msg))

    async def _send_ready_late(self) -> None:
        """Hosted: ``session.updated`` ~0.44 s after the first ``session.update``, then
        ``session.ready`` ~17 ms later (timestamps taken when they go out)."""
        ws = self.ws
        messages = self.proto.data_to_send()
        updated_s, gap_s = self.timing.session_ready_delays() if self.timing else (0.0, 0.0)
        loop = asyncio.get_running_loop()
        due = loop.time() + updated_s
        async with self._send_lock:
            for msg in messages:
                if msg.get("type") == "session.ready":
                    due += gap_s
                await asyncio.sleep(max(0.0, due - loop.time()))
                msg["timestamp"] = time.time()
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.send(json.dumps(msg))

    async def _after_socket(self, ws: ServerConnection) -> None:
        """The socket is gone: end the session, or hold it 30 s for resume."""
        if self.ws is not ws:
            return  # already resumed on another socket
        self.ws = None
        if self.session_id is None or self.proto.ended:
            self.close_pipeline()
            if self.session_id is not None:
                self.server.sessions.pop(self.session_id, None)
            return
        # a drop: stop speaking, keep the conversation for the resume window
        self._cancel_reply("interrupted", notify=False)
        self.detached_at = time.monotonic()
        self.server.history.detached(self.recorder)  # a drop ends the recording here

    def _resume_lookup(self, session_id: str) -> dict[str, Any] | str:
        """ServerProtocol's resume hook: the held session's state, or an error code."""
        if self.options.behaviour.resume_fails:
            return "session_not_found"  # as every resume attempt on the live service did
        held = self.server.sessions.get(session_id)
        if held is None or held is self:
            return "session_not_found"
        if held.detached_at is None:
            return "session_forbidden"  # still attached to another socket
        return {"session_id": held.session_id, "config": held.config}

    async def shutdown(self) -> None:
        """Server stop: close the socket and the pipeline."""
        self._cancel_reply("interrupted", notify=False)
        ws = self.ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(1001, "server shutting down"), 1.0)
            except Exception:  # a peer that does not answer the close: drop it
                ws.transport.abort()
        self.close_pipeline()

    def close_pipeline(self) -> None:
        """Release the recogniser and worker thread; end the recording. Idempotent."""
        self.closed = True
        if self.recorder is not None:
            self.server.history.finish(self.recorder)
        for task in self.tasks:
            task.cancel()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = None

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.executor is None:
            raise RuntimeError("session closed")
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- protocol events -----------------------------------------------------------------
    async def _on_action(self, action: Action) -> None:
        match action:
            case AudioReceived(pcm=pcm):  # first: nearly every frame is audio
                await self._on_audio(pcm)
            case SessionStarted(config=config, session_id=session_id, resume_token=token):
                await self._on_started(config, session_id, token)
            case SessionResumed(session_id=session_id):
                await self._on_resumed(session_id)
            case ConfigUpdated(config=config):
                self._apply_config(config)
            case ToolResultReceived(call_id=call_id, result=result, is_error=is_error):
                self._on_tool_result(call_id, result, is_error)
            case ReplyRequested(instructions=instructions):
                self._start_reply_from_brain(instructions=instructions)
            case ReplyCancelRequested(reply_id=rid):
                if self.reply is not None and (rid is None or rid == self.reply.reply_id):
                    self._cancel_reply(self.options.cancel_status)
            case MessageAdded(role=role, content=content):
                self.history.append({"role": role, "content": content})
            case SessionEndRequested():
                self._cancel_reply("interrupted", notify=False)
                self.close_pipeline()
                if self.session_id is not None:
                    self.server.sessions.pop(self.session_id, None)

    async def _on_started(self, config: Any, session_id: str, resume_token: str | None) -> None:
        self.session_id = session_id
        self.resume_token = resume_token
        self.server.sessions[session_id] = self
        self.recorder = self.server.history.record(self.proto, session_id, config)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"voicekit-agent-{session_id[-6:]}"
        )
        self._apply_config(config)
        if config.greeting:
            self._start_reply(config.greeting, is_greeting=True, lead="greeting")
        self.tasks.spawn(self._build_pipeline(), "voicekit-pipeline")

    async def _build_pipeline(self) -> None:
        """Build the speech pipeline while frames keep flowing; then feed it the held audio.

        In the session's worker (the VAD model loads in ~0.2 s, a recogniser ~0.3 s when no
        spare one is ready); ``session.ready`` has gone out already.
        """
        assert self.executor is not None
        built = asyncio.get_running_loop().run_in_executor(
            self.executor, _Pipeline, self, self._on_partial_text
        )
        try:
            pipeline = await asyncio.shield(built)
        except asyncio.CancelledError:  # the session ended meanwhile: free what gets built
            built.add_done_callback(_close_built)
            raise
        if self.closed:  # the socket closed while the pipeline was built
            pipeline.close()
            return
        pipeline.configure(self.config)  # an update may have come while it was built
        self.pipeline = pipeline
        while self._held_audio and self.pipeline is not None:  # audio coming meanwhile queues
            await self._push_audio(self._held_audio[0])
            del self._held_audio[0]
            await self._flush()

    async def _on_resumed(self, session_id: str) -> None:
        held: AgentSession | None = self.server.sessions.get(session_id)
        if held is None:
            return
        self.proto.observer = held.proto.observer  # the held session's recorder
        held.ws, held.proto, held.detached_at = self.ws, self.proto, None
        self.delegate = held

    def _apply_config(self, config: Any) -> None:
        self.config = config
        prompt = getattr(config, "system_prompt", None)
        self.history = [m for m in self.history if m.get("role") != "system"]
        if prompt:
            self.history.insert(0, {"role": "system", "content": prompt})
        if self.pipeline is not None:
            self.pipeline.configure(config)

    # -- user audio ------------------------------------------------------------------------
    def _on_partial_text(self, item_id: str, text: str) -> None:
        """The recogniser's text so far of the user turn ``item_id``: send it now."""
        self.proto.user_delta(item_id, text)
        self.tasks.spawn(self._flush(), "voicekit-flush")

    async def _on_audio(self, wire: bytes) -> None:
        if self.closed or self.config is None:
            return
        from voicekit.audio import decode_from_wire

        pcm = np.asarray(decode_from_wire(wire, self.config.input_format.encoding), np.int16)
        seconds = len(pcm) / SAMPLE_RATE
        self.audio_seconds += seconds
        now = asyncio.get_running_loop().time()
        self._audio_due = max(self._audio_due, now - AUDIO_AHEAD_S) + seconds
        if self._audio_due > now:  # faster than real time, beyond the allowance: wait
            await asyncio.sleep(self._audio_due - now)
        if self.pipeline is None or self._held_audio:  # still being built: hold the audio
            self._held_audio.append(pcm)
            return
        await self._push_audio(pcm)

    async def _push_audio(self, pcm: NDArray[np.int16]) -> None:
        """Feed user audio to the pipeline in ``AUDIO_SLICE_S`` slices."""
        step = int(AUDIO_SLICE_S * SAMPLE_RATE)
        for pos in range(0, len(pcm), step):
            if pos:
                await asyncio.sleep(0)
            if self.pipeline is None:
                return
            self._on_pipeline(self.pipeline.push(pcm[pos : pos + step]))

    def _on_pipeline(self, events: list[tuple[str, Any]]) -> None:
        for kind, value in events:  # partials arrive by _Pipeline._on_partial instead
            if kind == "onset":
                self._on_speech_onset()
            elif kind == "speaking":
                self._maybe_barge_in(value)
            elif kind == "resume":
                self._maybe_end_early(value)
            elif kind == "end":
                announced = self.pipeline.announced
                if self._early is not None:
                    self._early.cancel()
                    self._early = None
                if announced and self.timing is None:
                    # fast: the acoustic end is said at once, not after recognition
                    self.proto.speech_stopped()
                rest_s = 0.0
                voiced_s = self.pipeline.detector.speech_ms / 1000.0
                if self.timing is not None:
                    silence_s = self.pipeline.detector.pause_ms / 1000.0
                    rest_s = self.pipeline.detector.end_rest_ms / 1000.0
                    now = asyncio.get_running_loop().time()
                    self._turn_end_at = now - silence_s - VAD_TAIL_S
                turn = self._end_of_turn(announced, value, rest_s, voiced_s)
                self.tasks.spawn(turn, "voicekit-end-of-turn")

    def _agent_playing(self) -> bool:
        now = asyncio.get_running_loop().time()
        reply = self.reply
        return reply is not None and not reply.held and reply.playing(now)

    def _on_speech_onset(self) -> None:
        if self.timing is not None:
            self._on_speech_onset_hosted()
            return
        if not self._agent_playing():
            self.proto.speech_started()
            self.pipeline.announced = True

    # -- hosted turn-taking ------------------------------------------------------------------
    def _on_speech_onset_hosted(self) -> None:
        """Hosted: ``input.speech.started`` ~0.6 s after the onset, or, under the agent's
        reply, the time from which a barge-in may be decided."""
        assert self.timing is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        detected = ONSET_FRAMES * self.pipeline.detector.frame_ms / 1000.0
        self._onset_at = now - detected - VAD_ONSET_LAG_S
        self._barge_at = None
        self._barge_turn = False
        if self._agent_playing():
            self._barge_at = self._onset_at + self.timing.barge_in_delay()
            return
        self.pipeline.announced = True
        self._announce_at(self._onset_at + self.timing.speech_started_delay())

    def _announce_at(self, when: float) -> None:
        """Hosted: send ``input.speech.started`` at loop time ``when``."""
        loop = asyncio.get_running_loop()
        if self._announce is not None:
            self._announce.cancel()
        self._announce = loop.call_at(max(when, loop.time()), self._announce_now)

    def _announce_now(self) -> None:
        """Send a due ``input.speech.started`` now (before anything that must follow it)."""
        if self._announce is None:
            return
        self._announce.cancel()
        self._announce = None
        self.proto.speech_started()
        self.tasks.spawn(self._flush(), "voicekit-flush")

    def _maybe_barge_in_hosted(self, speech_s: float) -> None:
        """Hosted: interrupt from the drawn decision time on, unless it is a backchannel."""
        td = self.pipeline.turn
        if not td.interrupt_response or self._barge_at is None:
            return
        if asyncio.get_running_loop().time() < self._barge_at:
            return
        if speech_s < td.interruption_delay / 1000.0:
            return
        if not self.options.backchannels_interrupt:
            words = self.pipeline.partial.lower().split()
            unclear = not words or all(w in BACKCHANNEL_WORDS for w in words)
            if speech_s < BACKCHANNEL_MAX_S or (unclear and speech_s < BACKCHANNEL_LONG_S):
                return
        # input.speech.started, transcript.agent{interrupted} and reply.done: one flush
        self.proto.speech_started()
        self.pipeline.announced = True
        self._barge_turn = self._barge_lead = True
        self._barge_at = None
        self._cancel_reply("interrupted")

    def _maybe_end_early(self, pause_s: float) -> None:
        """Hosted, ``merge_early_turns``: speech resumed after a short pause that followed a
        complete-looking phrase: the first part is committed at pause start + ~0.8 s."""
        timing, pipeline = self.timing, self.pipeline
        if timing is None or not self.options.behaviour.merge_early_turns:
            return
        low, high = MERGE_PAUSE_S
        if not (low <= pause_s <= high) or not pipeline.announced or self._held is not None:
            return
        if self._early is not None or self._agent_playing():
            return
        loop = asyncio.get_running_loop()
        resumed_at = loop.time() - pipeline.detector.frame_ms / 1000.0
        commit_at = resumed_at - pause_s + timing.early_commit_delay()
        item_id = pipeline.item_id
        # judge the words before the pause once the recogniser has heard all of them, not
        # however far it got by now (that depends on the machine's load): a barrier job in
        # the session's worker, behind every frame fed so far, whose partials land first
        pending = _Pending()
        try:
            barrier = pipeline._to_worker(_nothing)
        except RuntimeError:  # the session is closing
            return
        self._early = pending

        def heard(_: concurrent.futures.Future[Any]) -> None:
            loop.call_soon_threadsafe(self._decide_early, pending, item_id, commit_at, resumed_at)

        barrier.add_done_callback(heard)

    def _decide_early(
        self, pending: _Pending, item_id: str, commit_at: float, resumed_at: float
    ) -> None:
        """Hosted: the recogniser has the words before the pause: commit them early (at
        ``commit_at``) when they look like a complete phrase."""
        if self._early is not pending:
            return  # cancelled meanwhile (the turn ended)
        self._early = None
        pipeline = self.pipeline
        if pipeline is None or pipeline.item_id != item_id or not pipeline.detector.in_speech:
            return
        text = pipeline.partial
        if not looks_complete(text, CONTINUATIONS):
            return
        loop = asyncio.get_running_loop()
        self._early = loop.call_at(
            max(commit_at, loop.time()), self._end_early, item_id, text, resumed_at
        )

    def _end_early(self, item_id: str, text: str, resumed_at: float) -> None:
        """Hosted: commit the first part of a turn the user is still speaking; its reply is
        held silent until the merged turn ends."""
        self._early = None
        pipeline = self.pipeline
        if (
            self.timing is None
            or pipeline is None
            or pipeline.item_id != item_id
            or not pipeline.detector.in_speech
        ):
            return
        self._announce_now()
        self.proto.speech_stopped()
        self.proto.user_final(item_id, text)
        self.history.append({"role": "user", "content": text})
        try:
            decision = self.brain(list(self.history), self._tools())
        except Exception as exc:
            log.exception("voicekit.local: brain failed")
            decision = f"Sorry, something went wrong: {exc}"
        said = decision.preamble if isinstance(decision, ToolRequest) else str(decision)
        self._held = self._start_reply(said, lead="plain", silent=True, held=True)
        # the continuation is a new stretch of speech: announced as usual
        self._announce_at(resumed_at + self.timing.speech_started_delay())
        self.tasks.spawn(self._flush(), "voicekit-flush")

    def _end_silent(self, reply: _Reply, text: str | None = None) -> None:
        """Hosted: end a silent reply as completed (a held reply with its unspoken text and
        ``interrupted: false``; a tool pre-amble with no transcript)."""
        if reply.done:
            return
        reply.done = True
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
        if text is not None:
            self.proto.agent_final(reply.reply_id, reply.item_id, text, interrupted=False)
            if text:
                self.history.append({"role": "assistant", "content": text})
        self.proto.reply_done(reply.reply_id, "completed")

    def _maybe_barge_in(self, speech_s: float) -> None:
        """User speech while the agent speaks: interrupt once it is clearly not a backchannel."""
        if self.timing is not None and not self.pipeline.announced and self._agent_playing():
            self._maybe_barge_in_hosted(speech_s)
            return
        if self.pipeline.announced or not self._agent_playing():
            if not self.pipeline.announced and speech_s >= 0.1:
                self.proto.speech_started()
                self.pipeline.announced = True
            return
        td = self.pipeline.turn
        if not td.interrupt_response:
            return
        threshold = td.interruption_delay / 1000.0
        if not self.options.backchannels_interrupt:
            # an acknowledgement ("uh-huh", "yeah") is not an interruption: until the words
            # say otherwise, only speech longer than a backchannel cuts the agent off
            threshold = max(threshold, BACKCHANNEL_MAX_S)
            words = self.pipeline.partial.lower().split()
            unclear = not words or all(w in BACKCHANNEL_WORDS for w in words)
            if unclear and speech_s < BACKCHANNEL_LONG_S:
                return
        if speech_s >= threshold:
            self.proto.speech_started()
            self.pipeline.announced = True
            self._cancel_reply("interrupted")

    async def _end_of_turn(
        self,
        announced: bool,
        parts: list[concurrent.futures.Future[str]],
        rest_s: float = 0.0,
        voiced_s: float = 0.0,
    ) -> None:
        """The final transcript of the turn that just ended, then the reply.

        ``announced``: ``input.speech.started`` (and so ``input.speech.stopped``) went out
        already; otherwise the words decide whether this was a turn at all. ``parts``: the
        recognition of its segments (``_Pipeline.take_parts``); ``rest_s``: how long
        after now the (hosted) commit is due; ``voiced_s``: the turn's voiced seconds.
        """
        pipeline = self.pipeline
        due = asyncio.get_running_loop().time() + rest_s
        text, duration = await self._in_worker(pipeline.finish, parts)
        if rest_s:
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
        words = text.lower().split()
        if announced and self.timing is not None:
            self._commit_hosted(text, voiced_s)
            await self._flush()
            return
        if not announced:
            backchannel = duration < 1.0 and all(w in BACKCHANNEL_WORDS for w in words)
            if not words or backchannel:
                return  # noise or a backchannel under the agent's reply: not a turn
            self.proto.speech_started()
            self.proto.speech_stopped()
        self.proto.user_final(pipeline.item_id, text)
        pipeline.next_item()
        self.history.append({"role": "user", "content": text})
        if self.reply is not None and not self.reply.done:
            # the agent is still talking and may not be interrupted: answer afterwards
            pending = self.reply.task
            if pending is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(pending)
        self._start_reply_from_brain()
        await self._flush()

    def _commit_hosted(self, text: str, voiced_s: float) -> None:
        """Hosted commit: ``input.speech.stopped``, ``transcript.user``, then (unless this
        was a short barge-in) ``reply.started`` with its first audio chunk, one flush."""
        pipeline = self.pipeline
        self._announce_now()
        self.proto.speech_stopped()
        self.proto.user_final(pipeline.item_id, text)
        pipeline.next_item()
        held, self._held = self._held, None
        if held is not None:  # the merged turn ends: the held reply with its unspoken text
            self._end_silent(held, held.text)
        self.history.append({"role": "user", "content": text})
        barge, self._barge_turn = self._barge_turn, False
        if barge and is_short_barge_in(text, voiced_s):
            return  # "wait, sorry, stop": no reply of its own
        if self.reply is not None and not self.reply.done and not self.reply.silent:
            # the agent still talks and may not be interrupted: answer afterwards
            self.tasks.spawn(self._answer_after(self.reply), "voicekit-answer-after")
            return
        lead, self._barge_lead = ("barge_in" if self._barge_lead else "plain"), False
        self._start_reply_from_brain(lead=lead)

    async def _answer_after(self, reply: _Reply) -> None:
        if reply.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(reply.task)
        self._start_reply_from_brain()
        await self._flush()

    # -- replies ---------------------------------------------------------------------------
    def _think_time(self) -> float:
        return 0.0  # fast: the reply at once (hosted replies: _speak_hosted)

    def _lead_silence(self) -> float:
        return FAST_LEAD_S

    def _tools(self) -> list[dict[str, Any]]:
        tools = getattr(self.config, "tools", None) or []
        return [t if isinstance(t, dict) else t.to_dict() for t in tools]

    def _start_reply_from_brain(self, instructions: str | None = None, lead: str = "plain") -> None:
        history = list(self.history)
        if instructions:
            history.append({"role": "instructions", "content": instructions})
        elif not history or history[-1].get("role") == "assistant":
            history.append({"role": "instructions", "content": "Yes? How can I help?"})
        try:
            decision = self.brain(history, self._tools())
        except Exception as exc:  # a user's brain failing must not kill the session
            log.exception("voicekit.local: brain failed")
            decision = f"Sorry, something went wrong: {exc}"
        if isinstance(decision, ToolRequest):
            self.tasks.spawn(self._tool_round_trip(decision), "voicekit-tool-round-trip")
        else:
            self._start_reply(str(decision), lead=lead)

    def _start_reply(
        self,
        text: str,
        is_greeting: bool = False,
        preamble_of: Any = None,
        lead: str = "plain",
        silent: bool = False,
        held: bool = False,
    ) -> _Reply:
        if self.reply is not None and not self.reply.done:
            # reply.create while the greeting plays replaces it; otherwise cut the old one
            self._cancel_reply("interrupted")
        reply_id, item_id = self.proto.reply_started()
        reply = _Reply(reply_id, item_id, _clip(text), is_greeting=is_greeting)
        self.reply = reply
        if self.timing is not None:
            # hosted: the first (silent) chunk goes out with reply.started; synthesis runs
            # while the lead-in plays
            reply.lead_s, reply.silent, reply.held = self.timing.lead_in(lead), silent, held
            reply.audio_start = asyncio.get_running_loop().time()
            self.proto.reply_audio(reply_id, _silence_chunk(self.config.output_format.encoding))
            speak = self._speak_hosted(reply)
            reply.task = self.tasks.spawn(speak, f"voicekit-reply-{reply_id}")
            return reply
        reply.task = self.tasks.spawn(self._speak(reply, preamble_of), f"voicekit-reply-{reply_id}")
        return reply

    async def _speak_hosted(self, reply: _Reply) -> None:
        """Hosted: stream the lead-in silence from the first chunk on while synthesis runs,
        then the speech (word deltas in one burst once known, times from the first chunk);
        a silent reply streams silence until the agent ends it."""
        loop = asyncio.get_running_loop()
        encoding = self.config.output_format.encoding
        per_chunk_s = 0.01 if encoding == "audio/pcm" else 0.0375
        quiet = _silence_chunk(encoding)
        start = reply.audio_start if reply.audio_start is not None else loop.time()
        k = 1  # chunk 0 went out with reply.started

        async def pace() -> None:
            delay = start + k * per_chunk_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

        if reply.silent:
            while k * per_chunk_s < SILENT_REPLY_MAX_S:
                reply.duration_s = (k + 1) * per_chunk_s
                await pace()
                self.proto.reply_audio(reply.reply_id, quiet)
                await self._flush()
                k += 1
            # nobody ended it: end it now
            self._end_silent(reply, reply.text if reply.held else None)
            await self._flush()
            return
        if not reply.text:
            reply.duration_s = reply.lead_s
            while k * per_chunk_s < reply.lead_s:
                await pace()
                self.proto.reply_audio(reply.reply_id, quiet)
                await self._flush()
                k += 1
        else:
            voice = getattr(self.config, "voice", None)
            synth = asyncio.ensure_future(
                self._in_worker(_synthesize, reply.text, voice, 0.0, encoding)
            )
            try:
                lead_chunks = max(1, round(reply.lead_s / per_chunk_s))
                reply.duration_s = reply.lead_s + 1.0  # "playing" while it is synthesized
                known = False
                while k < lead_chunks or not synth.done():
                    if synth.done() and not known:  # the words, as soon as they are known
                        known = True
                        self._reply_words(reply, synth.result(), lead_chunks * per_chunk_s)
                    await pace()
                    self.proto.reply_audio(reply.reply_id, quiet)
                    await self._flush()
                    k += 1
            except asyncio.CancelledError:
                synth.cancel()
                raise
            if not known:  # synthesis outlasted the lead-in: the speech starts now
                self._reply_words(reply, synth.result(), k * per_chunk_s)
            wire = synth.result()[0]
            size = len(quiet)
            for pos in range(0, len(wire), size):
                await pace()
                self.proto.reply_audio(reply.reply_id, wire[pos : pos + size])
                await self._flush()
                k += 1
        await self._complete(reply)

    async def _complete(self, reply: _Reply) -> None:
        """A reply spoken to its end: its full text, ``reply.done`` completed."""
        self.proto.agent_final(reply.reply_id, reply.item_id, reply.text, interrupted=False)
        self.proto.reply_done(reply.reply_id, "completed")
        reply.done = True
        if reply.text:
            self.history.append({"role": "assistant", "content": reply.text})
        await self._flush()

    async def _speak(self, reply: _Reply, tool_call: Any = None) -> None:
        """Synthesize and stream one reply at real-time pace, then close it."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._think_time())
        voice = getattr(self.config, "voice", None)
        fmt = self.config.output_format
        lead = self._lead_silence()
        wire, reply.words, reply.duration_s = await self._in_worker(
            _synthesize, reply.text, voice, lead, fmt.encoding
        )
        per_chunk_s = 0.01 if fmt.encoding == "audio/pcm" else 0.0375
        chunk = int(len(wire) / reply.duration_s * per_chunk_s) if len(wire) else 1
        chunk += chunk % 2 if fmt.encoding == "audio/pcm" else 0
        start = loop.time()
        reply.audio_start = start
        sent_deltas = False
        for k, pos in enumerate(range(0, len(wire), chunk)):
            delay = start + k * per_chunk_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.proto.reply_audio(reply.reply_id, wire[pos : pos + chunk])
            if not sent_deltas:
                sent_deltas = True
                for w, a, b in reply.words:
                    self.proto.agent_delta(reply.reply_id, reply.item_id, w, a, b)
            await self._flush()
        if tool_call is not None:
            self.proto.tool_call_event(tool_call)
        await self._complete(reply)

    def _reply_words(
        self,
        reply: _Reply,
        synthesized: tuple[bytes, list[tuple[str, int, int]], float],
        offset_s: float,
    ) -> None:
        """Hosted: a reply's word timings (from its first chunk; the speech starts at
        ``offset_s``) and its ``transcript.agent.delta`` burst."""
        _, words, speech_s = synthesized
        shift = round(offset_s * 1000)
        reply.words = [(w, a + shift, b + shift) for w, a, b in words]
        reply.duration_s = offset_s + speech_s
        for w, a, b in reply.words:  # one burst, as live
            self.proto.agent_delta(reply.reply_id, reply.item_id, w, a, b)

    def _cancel_reply(self, status: str, notify: bool = True) -> None:
        """Stop the current reply (barge-in, reply.cancel, replacement, drop)."""
        reply = self.reply
        if reply is None or reply.done:
            if reply is not None:
                reply.duration_s = 0.0  # already done on the wire: just stop "playing"
            return
        reply.done = True
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
        if not notify:
            return
        now = asyncio.get_running_loop().time()
        trimmed = reply.trimmed_text(now)
        self.proto.agent_final(reply.reply_id, reply.item_id, trimmed, interrupted=True)
        self.proto.reply_done(reply.reply_id, status)
        if trimmed:
            self.history.append({"role": "assistant", "content": trimmed})
        for waiter in self.tool_waiters.values():
            if not waiter.done():
                waiter.cancel()

    # -- tools -------------------------------------------------------------------------------
    def _tool_def(self, name: str) -> dict[str, Any]:
        return next((t for t in self._tools() if t.get("name") == name), {})

    async def _tool_round_trip(self, request: ToolRequest) -> None:
        """Pre-amble + tool.call + reply.done, wait for tool.result, then the answer."""
        if self.timing is not None:
            await self._tool_round_trip_hosted(request)
            return
        call, hold, waiter = self._open_call(request)
        call_id = call["call_id"]
        if hold:
            self.proto.tool_call_event(call)
            await self._flush()
        else:
            reply = self._start_reply(request.preamble, preamble_of=call)
            assert reply.task is not None
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(reply.task)
            if reply.task.cancelled():
                self.tool_waiters.pop(call_id, None)
                return  # the pre-amble was interrupted: results are dropped (§8.4)
        if await self._tool_result(request, call, waiter):
            self._start_reply_from_brain()
            await self._flush()

    def _open_call(
        self, request: ToolRequest
    ) -> tuple[dict[str, Any], bool, asyncio.Future[tuple[str, bool]]]:
        """A new call of ``request``: ``(call, hold, waiter)``; the waiter completes with the
        client's ``tool.result``, or with the agent's own HTTP call for a stored agent's
        HTTP tool (the client still gets the informational ``tool.call``)."""
        definition = self._tool_def(request.name)
        call_id = self.proto.new_call_id()
        call: dict[str, Any] = {
            "call_id": call_id,
            "name": request.name,
            "arguments": request.arguments,
            "timeout": float(definition.get("timeout_seconds") or DEFAULT_TOOL_TIMEOUT_S),
        }
        waiter: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()
        self.tool_waiters[call_id] = waiter
        if definition.get("http"):
            from voicekit.local import http_tools

            http_tools.start(self, definition, call, waiter)
        return call, definition.get("execution_mode") == "hold", waiter

    async def _tool_result(
        self, request: ToolRequest, call: dict[str, Any], waiter: asyncio.Future[tuple[str, bool]]
    ) -> bool:
        """Wait for a call's result and add it to the history; False when there is none to
        answer (timed out: an apology is spoken; or the call was abandoned)."""
        try:
            result, is_error = await asyncio.wait_for(asyncio.shield(waiter), call["timeout"])
        except TimeoutError:
            self._start_reply("Sorry, that is taking too long. Let's try something else.")
            return False
        except asyncio.CancelledError:
            return False
        finally:
            self.tool_waiters.pop(call["call_id"], None)
        self.history.append(
            {"role": "tool", "name": request.name, "content": result, "is_error": is_error}
        )
        return True

    async def _tool_round_trip_hosted(self, request: ToolRequest) -> None:
        """Hosted: a silent pre-amble from the commit on; ``tool.call`` 1.7-2.7 s after the
        end of speech; the pre-amble done ~2.3 s later or at once when ``tool.result``
        comes first; the answer (0.69 s lead-in) no sooner than ~1.3 s after the call."""
        assert self.timing is not None
        timing = self.timing
        call, hold, waiter = self._open_call(request)
        call_id = call["call_id"]
        loop = asyncio.get_running_loop()
        now = loop.time()
        end_at, self._turn_end_at = self._turn_end_at or now, None
        preamble = None if hold else self._start_reply("", silent=True)
        await self._flush()
        call_at = end_at + timing.tool_call_delay(now - end_at)
        await asyncio.sleep(max(0.0, call_at - loop.time()))
        if preamble is not None and preamble.done:  # interrupted: results are dropped (§8.4)
            self.tool_waiters.pop(call_id, None)
            return
        self.proto.tool_call_event(call)
        await self._flush()
        called_at = loop.time()
        answer_at = called_at + timing.answer_after_call()
        if preamble is not None:
            # reply.done held ~2.3 s unless the result comes first (an early result is fine)
            await asyncio.wait([waiter], timeout=timing.preamble_hold())
            if preamble.done:  # interrupted meanwhile
                self.tool_waiters.pop(call_id, None)
                return
            self._end_silent(preamble)
            await self._flush()
        if not await self._tool_result(request, call, waiter):
            return
        await asyncio.sleep(max(0.0, answer_at - loop.time()))
        self._start_reply_from_brain(lead="tool")
        await self._flush()

    def _on_tool_result(self, call_id: str, result: str, is_error: bool) -> None:
        waiter = self.tool_waiters.get(call_id)
        if waiter is None:
            # unknown, late (after an interruption) or duplicate: dropped, as §8.4 implies
            log.info("voicekit.local: tool.result for unknown call %s ignored", call_id)
        elif not waiter.done():
            waiter.set_result((result, is_error))


class _Pending:
    """An early commit being judged (cancel: the turn ended before the judgement)."""

    def cancel(self) -> None:
        """Nothing to stop: :meth:`AgentSession._decide_early` sees it was replaced."""


def _nothing() -> None:
    """A barrier job for the session's worker."""


def _close_built(built: asyncio.Future[Any]) -> None:
    if not built.cancelled() and built.exception() is None:
        built.result().close()


def _silence_chunk(encoding: str) -> bytes:
    """One reply chunk of digital silence: 10 ms of PCM, or 37.5 ms of G.711 (8 kHz)."""
    if encoding == "audio/pcm":
        return bytes(int(SAMPLE_RATE * 0.01) * 2)
    from voicekit.audio.g711 import alaw_encode, ulaw_encode

    coder = ulaw_encode if encoding == "audio/pcmu" else alaw_encode
    return bytes(coder(np.zeros(300, np.int16)).tobytes())


def _clip(text: str) -> str:
    """At most ``MAX_REPLY_CHARS`` of a reply's text, cut at a word boundary."""
    if len(text) <= MAX_REPLY_CHARS:
        return text
    cut = text.rfind(" ", 0, MAX_REPLY_CHARS + 1)
    return text[: cut if cut > 0 else MAX_REPLY_CHARS].rstrip()


def _accepted_voices(era: str) -> set[str]:
    from voicekit.protocol import voice_ids

    return set(voice_ids(None if era == "all" else era))


def _synthesize(
    text: str, voice: str | None, lead_s: float, encoding: str
) -> tuple[bytes, list[tuple[str, int, int]], float]:
    """A reply's wire audio (``lead_s`` of silence, then speech), word timings from the
    start of that audio in ms, and its duration (worker thread: a long reply takes ms to
    encode, which the loop spends pacing other sessions' audio)."""
    from voicekit.audio import encode_for_wire
    from voicekit.speech import style_for_voice, synthesize

    result = synthesize(text, style_for_voice(voice or "alba"))
    lead = int(lead_s * SAMPLE_RATE)
    audio = np.concatenate([np.zeros(lead, np.int16), result.samples])
    shift = lead * 1000 // SAMPLE_RATE
    words = [(w, a + shift, b + shift) for w, a, b in result.words]
    return bytes(encode_for_wire(audio, encoding)), words, len(audio) / SAMPLE_RATE


class _LazyRecognizer:
    """A recogniser opened on first use, in the session's worker: a session that never
    speaks costs no decoder, and its pipeline is built without waiting for one (~0.3 s when
    the recognition process has no spare ready). Same methods as ``Recognizer``."""

    def __init__(self, pool: AsrPool | None, keyterms: Sequence[str]) -> None:
        self._pool = pool
        self._keyterms = tuple(keyterms)
        self._rec: Recognizer | RemoteRecognizer | None = None
        self._closed = False
        self._lock = threading.Lock()  # guards _rec and _closed, never held while opening

    @property
    def keyterms(self) -> tuple[str, ...]:
        rec = self._rec
        return tuple(rec.keyterms) if rec is not None else self._keyterms

    def _get(self) -> Recognizer | RemoteRecognizer:
        rec = self._rec
        if rec is None:
            from voicekit.speech import Recognizer

            pool, keyterms = self._pool, self._keyterms
            rec = pool.recognizer(keyterms) if pool is not None else Recognizer(keyterms)
            with self._lock:
                closed = self._closed
                if not closed:
                    self._rec = rec
            if closed:  # the session ended while it opened
                rec.close()
                raise RuntimeError("the session's pipeline is closed")
        return rec

    def set_keyterms(self, keyterms: Sequence[str]) -> None:
        self._keyterms = tuple(keyterms)
        if self._rec is not None:
            self._rec.set_keyterms(keyterms)

    def start(self) -> None:
        self._get().start()

    def feed(self, pcm16: bytes) -> str | None:
        return self._get().feed(pcm16)

    def finish(self) -> str:
        return self._get().finish()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            rec = self._rec
        if rec is not None:
            rec.close()


@dataclasses.dataclass
class _TurnParams:
    vad_threshold: float
    min_silence: int
    max_silence: int
    interrupt_response: bool
    interruption_delay: int


class _Pipeline:
    """VAD + turn detection + streaming recognition for one session.

    Built in the session's worker thread (a VAD from the agent's pool, or ~0.2 s to load
    one; the recogniser opens at the first speech). ``push`` runs on the loop (VAD costs
    ~0.2 ms per 50 ms chunk); recogniser calls go to the worker.
    """

    def __init__(self, session: AgentSession, on_partial: Callable[[str, str], None]) -> None:
        from voicekit.audio import Resampler
        from voicekit.local.turns import TurnDetector

        self.session = session
        self.on_partial = on_partial  # (item_id, text): a new partial transcript (loop thread)
        self.resampler = Resampler(SAMPLE_RATE, ASR_RATE)
        self.vad = session.server.vads.take()
        self.detector = TurnDetector()
        keyterms = getattr(session.config, "keyterms", None) or ()
        self.recognizer = _LazyRecognizer(session.server.asr_pool, keyterms)
        self.turn = _TurnParams(
            DEFAULT_VAD_THRESHOLD, DEFAULT_MIN_SILENCE_MS, DEFAULT_MAX_SILENCE_MS, True, 0
        )
        self.preroll: list[NDArray[np.int16]] = []
        self.pending = np.zeros(0, np.int16)
        self.partial = ""
        self.announced = False
        self.item_id = session.proto.new_item_id()
        self.utterance_frames = 0
        # hosted: recognition finished at a "quiet" (so the transcript is ready at the
        # commit); speech resumed after one starts a new segment, joined at the end
        self.finished: list[concurrent.futures.Future[str]] = []
        self.recognizing = False
        self.configure(session.config)

    def configure(self, config: Any) -> None:
        """Apply turn detection and key terms (thread-safe enough: plain attribute writes)."""
        td = getattr(config, "turn_detection", None)

        def pick(name: str, default: Any) -> Any:
            value = getattr(td, name, None) if td is not None else None
            return default if value is None else value

        self.turn = _TurnParams(
            pick("vad_threshold", DEFAULT_VAD_THRESHOLD),
            pick("min_silence", DEFAULT_MIN_SILENCE_MS),
            pick("max_silence", DEFAULT_MAX_SILENCE_MS),
            pick("interrupt_response", True),
            pick("interruption_delay", 0),
        )
        self.detector.set_params(
            self.turn.vad_threshold, self.turn.min_silence, self.turn.max_silence
        )
        timing = self.session.timing
        if timing is not None:
            self.detector.report_pauses = True
            unset = td is None or (td.min_silence is None and td.max_silence is None)
            if unset:  # the service's adaptive end of turn, by transcription mode
                mode = getattr(config, "transcription_mode", None)

                def end_ms(voiced_ms: float) -> float:
                    delay = timing.commit_delay(mode, voiced_ms / 1000.0) - VAD_TAIL_S
                    return 1000.0 * max(0.1, delay)

                self.detector.end_silence_ms = end_ms
            else:  # documented meaning; the one left unset keeps max >= min
                self.detector.end_silence_ms = None
                low, high = self.turn.min_silence, self.turn.max_silence
                self.detector.set_params(min_silence_ms=low, max_silence_ms=max(low, high))
        keyterms = tuple(getattr(config, "keyterms", None) or ())
        if keyterms != self.recognizer.keyterms and self.session.executor is not None:
            self.session.executor.submit(self.recognizer.set_keyterms, keyterms)

    def push(self, pcm24: NDArray[np.int16]) -> list[tuple[str, Any]]:
        """Feed 24 kHz user audio; returns pipeline events (loop thread)."""
        from voicekit.speech.vad import FRAME

        out: list[tuple[str, Any]] = []
        pcm16 = np.asarray(self.resampler.process(pcm24), np.int16)
        probs = self.vad.process(pcm16)
        frames = np.concatenate([self.pending, pcm16]) if len(self.pending) else pcm16
        usable = len(probs) * FRAME
        self.pending = frames[usable:].copy()
        for i, prob in enumerate(probs):
            frame = frames[i * FRAME : (i + 1) * FRAME]
            event = self.detector.update(float(prob), self.partial)
            if event == "quiet" and self.recognizing:  # hosted: recognise now
                self.finished.append(self._to_worker(self.recognizer.finish))
                self.recognizing = False
            elif event == "resume":
                if not self.recognizing:  # after a "quiet": a new segment
                    self._to_worker(self.recognizer.start)
                    self.recognizing = True
                out.append(("resume", self.detector.pause_ms / 1000.0))
            if event == "onset":
                self.announced = False
                self.partial = ""
                self.utterance_frames = 0
                self.finished = []
                self.recognizing = True
                self._to_worker(self.recognizer.start)
                for block in self.preroll:
                    self._feed(block)
                self.preroll = []
                out.append(("onset", None))
            if self.detector.in_speech or event == "end":
                if self.recognizing:
                    self._feed(frame)
                self.utterance_frames += 1
                out.append(("speaking", self.detector.speech_ms / 1000.0))
            else:
                self.preroll.append(frame)
                max_blocks = int(PREROLL_S * ASR_RATE / FRAME)
                if len(self.preroll) > max_blocks:
                    self.preroll = self.preroll[-max_blocks:]
            if event == "end":
                out.append(("end", self.take_parts()))
        return out

    def _to_worker(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        executor = self.session.executor
        if executor is None:
            raise RuntimeError("session closed")
        return executor.submit(fn, *args)

    def _feed(self, frame: NDArray[np.int16]) -> None:
        future = self._to_worker(self.recognizer.feed, frame.tobytes())
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._on_partial, f))

    def _on_partial(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        text = future.result()
        if text and text != self.partial and self.detector.in_speech:
            self.partial = text
            self.on_partial(self.item_id, text)

    def take_parts(self) -> list[concurrent.futures.Future[str]]:
        """The segments recognised already of the turn that just ended (loop thread)."""
        parts, self.finished = self.finished, []
        if self.recognizing:
            self.recognizing = False
            parts.append(self._to_worker(self.recognizer.finish))
        return parts

    def finish(self, parts: list[concurrent.futures.Future[str]]) -> tuple[str, float]:
        """The final text of a turn from its segments (worker thread, after them):
        (final text, voiced seconds)."""
        texts = [f.result() for f in parts]
        return " ".join(t for t in texts if t), self.utterance_frames * 0.032

    def close(self) -> None:
        """Release the recogniser (its decoder, when it lives in a recognition process) and
        give the VAD back to the agent's pool."""
        self.recognizer.close()
        self.session.server.vads.give(self.vad)

    def next_item(self) -> None:
        """A new item id for the next user turn."""
        self.partial = ""
        self.item_id = self.session.proto.new_item_id()
