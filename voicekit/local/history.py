"""The stand-in agent's session history: every served session recorded, listed and fetched.

``voicekit.local`` layer: built on :mod:`voicekit.protocol` (typed events and actions, seen
through ``ServerProtocol``'s observer hook) and :mod:`voicekit.audio` codecs; soundfile
writes the recording. Never imports the session, analysis or widgets.

What the hosted service was seen to keep (live observations, session history) and how the
twin reproduces it:

- **Recording**: one Ogg/Opus file per session, 24 kHz stereo, left = user, right = agent,
  time 0 = ``session.ready``. User audio is placed by the ``input.audio`` samples received:
  the first where it arrived (less its duration), the rest contiguously after it, except
  that a pause in the client's stream longer than ``USER_GAP_S`` is kept as silence. Agent
  audio goes where each ``reply.audio`` chunk is sent (the agent paces its replies in real
  time, so send time is play time). Silence fills the gaps. Blocks are encoded in a writer
  thread, into a temporary directory of the agent removed at ``stop()``: the recording is
  never held whole in memory.
- **Timeline**: built from the protocol events alone. Every ``*_at_ms`` is milliseconds
  since the session started (``started_at_unix_ms``, the ``session.ready`` moment) on the
  recording's clock, so an analyst indexes the audio with it. One turn per agent reply
  (``turn_id`` is its ``reply_id``, ``item_id`` its ``item_id``), plus a turn for user
  speech that got no reply (a hold-mode tool call, or the session ending first).
  ``status`` is the reply's ``reply.done`` status (``completed``, ``interrupted``,
  ``cancelled``), ``incomplete`` when the session ended before it. The observed oddities
  are kept: ``user_speech_ended_at_ms`` is the end-of-turn commit (``input.speech.stopped``),
  not the acoustic end; ``time_to_first_audio_ms`` (commit to the first audible agent
  sample, after the reply's lead-in silence) is null on tool turns (a turn that made tool
  calls, or answers a ``tool.result``) and on turns with no user commit; ``agent_text`` is
  the reply's whole text (its transcript, or when that was trimmed at a barge-in, every
  word it sent as a delta), spoken or not; a reply with no client-side cause is labelled
  ``trigger: "greeting"``, as the hosted service labelled an HTTP tool's answer.
  ``user_confidence`` is null (the recogniser reports none). A tool call's ``timed_out``
  says no ``tool.result`` came within the tool's ``timeout_seconds``; ``parallel_call_id``
  is the first call's id when one turn made several calls, else null.
- **Store** (:class:`HistoryStore`): the finished sessions of one agent (the newest
  ``MAX_SESSIONS``), in memory, newest first; sessions still running are listed with
  ``status: "active"``, no artifacts and ``ended_at`` null. A dropped session stays active
  until its resume window closes, then ends with ``reason: "participant_disconnected"``,
  its recording and duration cut at the drop. Artifacts are ready
  ``ARTIFACT_DELAY_S[profile]`` after the end (hosted ~6.7 s, as observed; fast at once).
- **REST** (:func:`respond`): ``GET /v1/sessions?limit=N[&cursor=C]`` pages newest first;
  ``response_metadata.next_cursor`` is an opaque string to pass back as ``cursor=`` (or
  ``after=``), null on the last page. ``GET /v1/sessions/{id}`` gives the record with its
  artifacts as pre-signed URLs, ``/v1/artifacts/<session>/<type>?expires=<epoch>&
  signature=<hex HMAC-SHA256>``, valid ``URL_TTL_S`` (3600 s), signed with a per-agent
  random secret: no credential needed, but an expired or altered URL gets 403 with an
  S3-like JSON error (``access_denied`` "Request has expired", or
  ``signature_does_not_match``). The ``/v1/sessions`` routes take the same credentials as
  the WebSocket: anything when the agent has no ``api_key``, else the key (raw or Bearer);
  a missing one gets 422 and a wrong one 404 ``Invalid API key``, as ``/v1/token`` answers.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import http
import json
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from websockets.datastructures import Headers
from websockets.http11 import Response

from voicekit.audio.pcm import decode_from_wire
from voicekit.protocol.config import SessionConfig, diff
from voicekit.protocol.events import (
    Event,
    InputSpeechStarted,
    InputSpeechStopped,
    ReplyAudio,
    ReplyDone,
    ReplyStarted,
    SessionEnded,
    SessionUpdated,
    ToolCall,
    TranscriptAgent,
    TranscriptAgentDelta,
    TranscriptUser,
    decode_audio,
)
from voicekit.protocol.server import (
    Action,
    AudioReceived,
    ConfigUpdated,
    ReplyRequested,
    SessionEndRequested,
    ToolResultReceived,
    config_echo,
)

__all__ = ["ARTIFACT_DELAY_S", "HistoryStore", "Recorder", "respond"]

log = logging.getLogger("voicekit.local")

RATE = 24000
URL_TTL_S = 3600  # pre-signed URLs, as observed
ARTIFACT_DELAY_S = {"hosted": 6.7, "fast": 0.0}  # live: present ~6.7 s after session.end
USER_GAP_S = 0.5  # input arriving this much later than its place is placed at its arrival
HOLD_S = 2.0  # the recording is final this long behind now (later input may still land)
BLOCK_S = 0.5  # encode at least this much at a time
SEGMENT_S = 8.0  # metadata.uploaded_chunks counts segments of this length (live: 5 for 35 s)
AUDIBLE = 104  # -50 dBFS: the first sample above it is the reply's first audible one
DEFAULT_TOOL_TIMEOUT_S = 120.0
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_SESSIONS = 1000  # finished sessions kept per agent; older ones are forgotten
SESSIONS_PATH = "/v1/sessions"
ARTIFACTS_PATH = "/v1/artifacts/"
ARTIFACT_TYPES = {
    "audio": "audio/ogg",
    "timeline": "application/json",
    "metadata": "application/json",
}


def _iso(unix: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-09-24T10:11:12.345Z``)."""
    moment = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Writer:
    """The Ogg/Opus file of one recording, written block by block in the store's writer
    thread (libsndfile encodes ~20 ms per second of stereo speech, which the agent's loop
    must not spend). Methods are called on the loop; the file is touched only in the thread."""

    def __init__(self, executor: concurrent.futures.ThreadPoolExecutor, path: str) -> None:
        self._executor = executor
        self.path = path
        self._file: Any = None
        self.frames = 0
        self.dropped = 0
        self._failed = False

    def write(self, block: NDArray[np.int16]) -> None:
        """Queue stereo int16 frames (an (n, 2) array the caller no longer changes)."""
        self.frames += len(block)
        self._executor.submit(self._write, block)

    def silence(self, frames: int) -> None:
        """Queue ``frames`` of silence (written in 1 s blocks)."""
        self.frames += frames
        self._executor.submit(self._silence, frames)

    def close(self) -> concurrent.futures.Future[None]:
        """Queue the close; the future is done once the file is complete on disk."""
        return self._executor.submit(self._close)

    # -- writer thread ---------------------------------------------------------------------
    def _open(self) -> Any:
        if self._file is None and not self._failed:
            import soundfile

            try:
                self._file = soundfile.SoundFile(
                    self.path, "w", RATE, 2, format="OGG", subtype="OPUS"
                )
            except Exception:
                self._failed = True
                log.exception("voicekit.local: cannot write the recording %s", self.path)
        return self._file

    def _write(self, block: NDArray[np.int16]) -> None:
        file = self._open()
        if file is None:
            self.dropped += 1
            return
        try:
            file.write(block)
        except Exception:
            self.dropped += 1
            log.exception("voicekit.local: recording block dropped")

    def _silence(self, frames: int) -> None:
        zeros = np.zeros((min(frames, RATE), 2), np.int16)
        while frames > 0:
            self._write(zeros[: min(frames, RATE)])
            frames -= RATE

    def _close(self) -> None:
        if self.frames == 0:
            self._write(np.zeros((RATE // 100, 2), np.int16))  # a valid file, 10 ms
        if self._file is not None:
            try:
                self._file.close()
            except Exception:
                log.exception("voicekit.local: cannot finish the recording %s", self.path)
            self._file = None


class _Stereo:
    """Places user and agent audio on one clock and hands finished blocks to the writer.

    Sample index = seconds since the session started x 24000. Samples before ``base`` are
    written; ``buf`` holds ``[base, base + len(buf))``; ``cursor`` is each channel's next
    free sample.
    """

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.base = 0
        self.buf = np.zeros((0, 2), np.int16)
        self.cursor = [0, 0]
        self._user_started = False

    def _place(self, channel: int, samples: NDArray[np.int16], pos: int) -> int:
        pos = max(pos, self.base)
        end = pos + len(samples)
        need = end - self.base
        if need > len(self.buf):
            grown = np.zeros((max(need, len(self.buf) * 2, RATE), 2), np.int16)
            grown[: len(self.buf)] = self.buf
            self.buf = grown
        self.buf[pos - self.base : end - self.base, channel] = samples
        self.cursor[channel] = end
        return pos

    def user(self, samples: NDArray[np.int16], now: float) -> int:
        """Place received user audio (arrived at ``now`` s); returns its first sample."""
        arrived = round(now * RATE) - len(samples)  # where it would start, sent in real time
        cursor = self.cursor[0]
        if self._user_started and arrived <= cursor + USER_GAP_S * RATE:
            return self._place(0, samples, cursor)  # the stream goes on: contiguous
        self._user_started = True  # the first audio, or audio after a pause in the stream
        return self._place(0, samples, max(0, arrived))

    def agent(self, samples: NDArray[np.int16], now: float) -> int:
        """Place agent audio sent at ``now`` s; returns its first sample."""
        return self._place(1, samples, max(self.cursor[1], round(now * RATE)))

    def used(self) -> int:
        """Samples from ``base`` that hold audio."""
        return max(self.cursor[0], self.cursor[1], self.base) - self.base

    def flush(self, upto: int) -> None:
        """Write everything before sample ``upto`` (silence where nothing was placed)."""
        n = upto - self.base
        if n <= 0:
            return
        have = min(n, self.used())
        if have > 0:
            self.writer.write(self.buf[:have].copy())
        if n > have:
            self.writer.silence(n - have)
        self.buf = self.buf[n:].copy() if n < len(self.buf) else np.zeros((0, 2), np.int16)
        self.base = upto

    def tick(self, now: float) -> None:
        """Write what can no longer change, a block at a time."""
        final = round((now - HOLD_S) * RATE)
        if final - self.base >= BLOCK_S * RATE:
            self.flush(final)


def _join_words(words: list[str]) -> str:
    text = ""
    for word in words:
        if text and not text[-1].isspace() and not word[:1].isspace():
            text += " "
        text += word
    return text.strip()


@dataclasses.dataclass
class _UserSpeech:
    started_ms: int | None = None
    ended_ms: int | None = None
    transcript: str | None = None
    item_id: str | None = None


class _Timeline:
    """The hosted timeline's turns, from the protocol's events and actions (loop thread)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.turns: list[dict[str, Any]] = []
        self.by_reply: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []
        self.user: _UserSpeech | None = None
        self.cause: tuple[str, str | None] | None = None
        self.current: dict[str, Any] | None = None  # the reply being spoken
        self.end_requested = False
        self.reported_duration: float | None = None

    def _turn(self, trigger: str, instructions: str | None, at_ms: int) -> dict[str, Any]:
        user = self.user if trigger == "user_speech" else None
        if user is not None:
            self.user = None
        turn: dict[str, Any] = {
            "turn_id": None,
            "item_id": None,
            "status": "incomplete",
            "trigger": trigger,
            "requested_instructions": instructions,
            "user_transcript": user.transcript if user else None,
            "user_speech_started_at_ms": user.started_ms if user else None,
            "user_speech_ended_at_ms": user.ended_ms if user else None,
            "user_confidence": None,
            "agent_text": None,
            "agent_reply_started_at_ms": None,
            "agent_reply_ended_at_ms": None,
            "interrupted_at_ms": None,
            "time_to_first_audio_ms": None,
            "tool_calls": [],
            "_words": [],
            "_final": None,
            "_cut": False,
            "_audible_ms": None,
            "_user_item": user.item_id if user else None,
        }
        self.turns.append(turn)
        return turn

    def _trigger(self) -> tuple[str, str | None]:
        cause, self.cause = self.cause, None
        if cause is not None:
            return cause
        return ("greeting", None)  # the greeting, or a reply nothing on the wire asked for

    def on(self, item: Event | Action, ms: int) -> None:
        match item:
            case InputSpeechStarted():
                if self.user is None or self.user.ended_ms is not None:
                    self.user = _UserSpeech(started_ms=ms)
            case InputSpeechStopped():
                self.user = self.user or _UserSpeech(started_ms=ms)
                self.user.ended_ms = ms
            case TranscriptUser(item_id=item_id, text=text):
                self.user = self.user or _UserSpeech(started_ms=ms, ended_ms=ms)
                self.user.transcript, self.user.item_id = text, item_id
                self.cause = ("user_speech", None)
            case ReplyStarted(reply_id=reply_id, item_id=item_id):
                trigger, instructions = self._trigger()
                new = self._turn(trigger, instructions, ms)
                new["turn_id"], new["item_id"] = reply_id, item_id
                new["agent_reply_started_at_ms"] = ms
                self.by_reply[reply_id] = new
                self.current = new
            case TranscriptAgentDelta(reply_id=reply_id, delta=delta):
                turn = self.by_reply.get(reply_id or "")
                if turn is not None:
                    turn["_words"].append(delta)
            case TranscriptAgent(reply_id=reply_id, text=text, interrupted=interrupted):
                turn = self.by_reply.get(reply_id or "")
                if turn is not None:
                    turn["_final"] = text
                    turn["_cut"] = bool(interrupted)
            case ReplyDone(reply_id=reply_id, status=status):
                turn = self.by_reply.get(reply_id or "")
                if turn is not None:
                    turn["status"] = status or "completed"
                    turn["agent_reply_ended_at_ms"] = ms
                    if status in ("interrupted", "cancelled"):
                        turn["interrupted_at_ms"] = ms
                    if turn is self.current:
                        self.current = None
            case ToolCall(call_id=call_id, name=name, arguments=arguments):
                self._tool_call(call_id, name, arguments, ms)
            case ToolResultReceived(call_id=call_id, result=result, is_error=is_error):
                call = self.calls.get(call_id)
                if call is not None and call["result_received_at_ms"] is None:
                    call["result"], call["is_error"] = result, is_error
                    call["result_received_at_ms"] = ms
                    call["duration_ms"] = ms - call["dispatched_at_ms"]
                    call["timed_out"] = call["duration_ms"] > call.pop("_timeout_ms")
                self.cause = ("tool_result", None)
            case ReplyRequested(instructions=instructions):
                self.cause = ("reply_create", instructions)
            case ConfigUpdated(config=config):
                try:
                    changes = diff(self.config, config)
                except Exception:  # an immutable field cannot change: nothing to record
                    changes = {}
                self.config = config
                self.changes.append({"at_ms": ms, "changes": changes})
            case SessionEndRequested():
                self.end_requested = True
            case SessionEnded(session_duration_seconds=seconds):
                self.reported_duration = seconds
            case _:
                pass

    def _tool_call(self, call_id: str, name: str, arguments: Any, ms: int) -> None:
        turn = self.current
        if turn is None and self.user is not None and self.user.transcript is not None:
            turn = self._turn("user_speech", None, ms)  # a hold-mode call: no reply first
            self.cause = None
        if turn is None:
            turn = self.turns[-1] if self.turns else self._turn(self._trigger()[0], None, ms)
        tools = [t if isinstance(t, dict) else t.to_dict() for t in self.config.tools or []]
        definition = next((t for t in tools if t.get("name") == name), {})
        timeout_s = float(definition.get("timeout_seconds") or DEFAULT_TOOL_TIMEOUT_S)
        call: dict[str, Any] = {
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "result": None,
            "dispatched_at_ms": ms,
            "result_received_at_ms": None,
            "duration_ms": None,
            "is_error": False,
            "timed_out": False,
            "parallel_call_id": None,
            "_timeout_ms": timeout_s * 1000,
        }
        calls = turn["tool_calls"]
        if calls:
            first = calls[0]["call_id"]
            calls[0]["parallel_call_id"] = first
            call["parallel_call_id"] = first
        calls.append(call)
        self.calls[call_id] = call

    def audible(self, reply_id: str | None, ms: int) -> None:
        """The reply's first audible sample is at ``ms`` (first call wins)."""
        turn = self.by_reply.get(reply_id or "")
        if turn is not None and turn["_audible_ms"] is None:
            turn["_audible_ms"] = ms

    def finish(self, end_ms: int) -> list[dict[str, Any]]:
        """The turns as JSON-ready dicts (the session ended at ``end_ms``)."""
        if self.user is not None and self.user.transcript is not None:
            self._turn("user_speech", None, end_ms)  # user speech the session ended on
        out = []
        for turn in self.turns:
            words, final, cut = turn.pop("_words"), turn.pop("_final"), turn.pop("_cut")
            audible, _ = turn.pop("_audible_ms"), turn.pop("_user_item")
            if turn["turn_id"] is not None:
                # the whole reply: its transcript, or when that was trimmed at a barge-in
                # (or never came) every word it was going to say, heard or not
                whole = _join_words(words)
                spoken = final or ""
                turn["agent_text"] = whole if (cut or final is None) and whole else spoken
            if turn["status"] == "incomplete" and turn["agent_reply_started_at_ms"] is not None:
                turn["interrupted_at_ms"] = end_ms
            commit = turn["user_speech_ended_at_ms"]
            tool_turn = bool(turn["tool_calls"]) or turn["trigger"] == "tool_result"
            if commit is not None and audible is not None and not tool_turn:
                turn["time_to_first_audio_ms"] = audible - commit
            for call in turn["tool_calls"]:
                timeout_ms = call.pop("_timeout_ms", None)
                if timeout_ms is not None and call["result_received_at_ms"] is None:
                    call["timed_out"] = end_ms - call["dispatched_at_ms"] > timeout_ms
            out.append(turn)
        return out


class Recorder:
    """Records one session: the protocol observer of its ``ServerProtocol`` (loop thread).

    Made by :meth:`HistoryStore.record` when the session is ready; called with every
    server event sent and every action received; :meth:`HistoryStore.finish` ends it.

    Parameters
    ----------
    store : HistoryStore
        Where the finished session goes.
    session_id : str
        The session's id (``sess_...``).
    config : SessionConfig
        The configuration it started with.
    """

    def __init__(self, store: HistoryStore, session_id: str, config: SessionConfig) -> None:
        self.store = store
        self.session_id = session_id
        # the stored agent it is bound to (HistoryStore.record also reads proto.agent_id)
        self.agent_id: str | None = getattr(config, "agent_id", None)
        self.config_echo = config_echo(config, session_id)
        self.input_encoding = config.input_format.encoding
        self.output_encoding = config.output_format.encoding
        self.started_unix = store.clock()
        self._t0 = store.monotonic()
        self.path = os.path.join(store.directory, f"{session_id}.ogg")
        self.writer = _Writer(store.executor(), self.path)
        self.audio = _Stereo(self.writer)
        self.timeline = _Timeline(config)
        self.seq = 0
        self._failed = False
        self.detached_at: float | None = None  # elapsed() of a drop, until the next event

    def elapsed(self) -> float:
        """Seconds since the session started."""
        return self.store.monotonic() - self._t0

    def __call__(self, item: Event | Action) -> None:
        """The observer: never raises (a recorder failure must not touch the session)."""
        self.detached_at = None  # a resumed session goes on
        if self._failed:
            return
        try:
            self._observe(item)
        except Exception:
            self._failed = True
            log.exception("voicekit.local: session recorder failed; recording stops")

    def _observe(self, item: Event | Action) -> None:
        now = self.elapsed()
        match item:
            case AudioReceived(pcm=wire):
                samples = np.asarray(decode_from_wire(wire, self.input_encoding), np.int16)
                self.audio.user(samples, now)
            case ReplyAudio(reply_id=reply_id, data=data):
                wire = decode_audio(data)
                samples = np.asarray(decode_from_wire(wire, self.output_encoding), np.int16)
                pos = self.audio.agent(samples, now)
                loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= AUDIBLE)
                if len(loud):
                    self.timeline.audible(reply_id, (pos + int(loud[0])) * 1000 // RATE)
            case SessionUpdated(config=config) if config is not None:
                self.config_echo = config
            case _:
                self.timeline.on(item, round(now * 1000))
        self.audio.tick(now)

    def close(self) -> SessionRecord:
        """End the recording now (or at the drop that ended it): the record, whose audio is
        complete once ``closed`` is."""
        now = self.elapsed() if self.detached_at is None else self.detached_at
        self.audio.flush(self.audio.base + self.audio.used())
        end = max(self.audio.base, round(now * RATE))
        self.audio.flush(end)
        closed = self.writer.close()
        ended_unix = self.started_unix + now
        tl = self.timeline
        duration = tl.reported_duration if tl.reported_duration is not None else round(now, 6)
        timeline = {
            "session_id": self.session_id,
            "started_at_unix_ms": round(self.started_unix * 1000),
            "turns": tl.finish(round(now * 1000)),
            "config_changes": tl.changes,
            "ended": {
                "reason": "user_initiated" if tl.end_requested else "participant_disconnected",
                "public_reason": "client_end",
                "duration_seconds": duration,
            },
        }
        metadata = {
            "session_id": self.session_id,
            "started_at": _iso(self.started_unix),
            "ended_at": _iso(ended_unix),
            "format": "ogg/opus",
            "channels": 2,
            "channel_layout": "stereo (left=user, right=agent)",
            "sample_rate": RATE,
            "file": f"{self.session_id}/recording/audio.ogg",
            "uploaded_chunks": math.ceil(self.writer.frames / (SEGMENT_S * RATE)),
            "dropped_chunks": 0,  # filled in once the writer is done
        }
        return SessionRecord(
            session_id=self.session_id,
            agent_id=self.agent_id,
            seq=self.seq,
            created_unix=self.started_unix,
            ended_unix=ended_unix,
            duration_seconds=duration,
            config=self.config_echo,
            timeline=timeline,
            metadata=metadata,
            path=self.path,
            ready_at=self.store.monotonic() + self.store.delay_s,
            closed=closed,
            writer=self.writer,
        )


@dataclasses.dataclass
class SessionRecord:
    """A finished session: what ``GET /v1/sessions/{id}`` and its artifacts serve."""

    session_id: str
    agent_id: str | None
    seq: int
    created_unix: float
    ended_unix: float
    duration_seconds: float
    config: dict[str, Any]
    timeline: dict[str, Any]
    metadata: dict[str, Any]
    path: str
    ready_at: float  # store.monotonic() time from which the artifacts are listed
    closed: concurrent.futures.Future[None]
    writer: _Writer


class HistoryStore:
    """The session history of one stand-in agent (loop thread, except where noted).

    Parameters
    ----------
    profile : {"hosted", "fast"}
        Sets when artifacts appear after a session ends (``ARTIFACT_DELAY_S``).
    clock : callable
        Epoch seconds: session times and URL expiry (injectable for tests).
    monotonic : callable
        Seconds for the recording's clock and the artifact delay.

    Attributes
    ----------
    directory : str
        The temporary directory holding the recordings, removed by :meth:`close`.
    """

    def __init__(
        self,
        profile: str = "hosted",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay_s = ARTIFACT_DELAY_S.get(profile, ARTIFACT_DELAY_S["hosted"])
        self.clock = clock
        self.monotonic = monotonic
        self.directory = tempfile.mkdtemp(prefix="voicekit-history-")
        self._secret = secrets.token_bytes(32)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.active: dict[str, Recorder] = {}
        self.finished: dict[str, SessionRecord] = {}
        self._seq = 0

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The writer thread (started with the first recording)."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="voicekit-history"
            )
        return self._executor

    # -- recording -------------------------------------------------------------------------
    def record(self, proto: Any, session_id: str, config: SessionConfig) -> Recorder:
        """Start recording a session that is ready: ``proto.observer`` becomes its recorder."""
        recorder = Recorder(self, session_id, config)
        recorder.agent_id = getattr(proto, "agent_id", None) or recorder.agent_id
        self._seq += 1
        recorder.seq = self._seq
        self.active[session_id] = recorder
        proto.observer = recorder
        return recorder

    def finish(self, recorder: Recorder) -> None:
        """The session ended: close its recording and keep its record. Idempotent."""
        if self.active.get(recorder.session_id) is not recorder:
            return
        del self.active[recorder.session_id]
        try:
            record = recorder.close()
        except Exception:
            log.exception("voicekit.local: session %s not recorded", recorder.session_id)
            return
        self.finished[record.session_id] = record
        while len(self.finished) > MAX_SESSIONS:  # the oldest go, recordings included
            oldest = min(self.finished.values(), key=lambda r: r.seq)
            del self.finished[oldest.session_id]
            oldest.closed.add_done_callback(_remover(oldest.path))

    def detached(self, recorder: Recorder | None) -> None:
        """The session's socket dropped: unless it resumes, its recording ends here."""
        if recorder is not None:
            recorder.detached_at = recorder.elapsed()

    def close(self) -> None:
        """Stop the writer thread and remove the recordings (agent stop; any thread)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
            self._executor = None
        shutil.rmtree(self.directory, ignore_errors=True)
        self.active.clear()
        self.finished.clear()

    # -- reading ---------------------------------------------------------------------------
    def _ready(self, record: SessionRecord) -> bool:
        if self.monotonic() < record.ready_at:
            return False
        if not record.closed.done():  # the last block is being encoded: a few ms
            concurrent.futures.wait([record.closed], timeout=2.0)
        if record.closed.done():
            record.metadata["dropped_chunks"] = record.writer.dropped
            return True
        return False

    def _summary(self, session_id: str) -> dict[str, Any] | None:
        record = self.finished.get(session_id)
        if record is not None:
            return {
                "id": record.session_id,
                "agent_id": record.agent_id,
                "status": "completed",
                "public_close_reason": "client_end",
                "duration_seconds": record.duration_seconds,
                "created_at": _iso(record.created_unix),
                "ended_at": _iso(record.ended_unix),
            }
        recorder = self.active.get(session_id)
        if recorder is None:
            return None
        return {
            "id": recorder.session_id,
            "agent_id": recorder.agent_id,
            "status": "active",
            "public_close_reason": None,
            "duration_seconds": round(recorder.elapsed(), 6),
            "created_at": _iso(recorder.started_unix),
            "ended_at": None,
        }

    def _ordered(self) -> list[tuple[int, str]]:
        seqs = [(r.seq, sid) for sid, r in self.finished.items()]
        seqs += [(r.seq, sid) for sid, r in self.active.items()]
        return sorted(seqs, reverse=True)

    def page(self, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
        """``GET /v1/sessions``: sessions newest first, ``limit`` a page, after ``cursor``.

        Raises
        ------
        ValueError
            If ``cursor`` is not one this store handed out.
        """
        ordered = self._ordered()
        if cursor:
            before = _decode_cursor(cursor)
            ordered = [(seq, sid) for seq, sid in ordered if seq < before]
        page, rest = ordered[:limit], ordered[limit:]
        sessions = [s for _, sid in page if (s := self._summary(sid)) is not None]
        next_cursor = _encode_cursor(page[-1][0]) if rest and page else None
        return {
            "sessions": sessions,
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def detail(self, session_id: str, base_url: str) -> dict[str, Any] | None:
        """``GET /v1/sessions/{id}``: the record, artifacts as pre-signed URLs once ready."""
        summary = self._summary(session_id)
        if summary is None:
            return None
        record = self.finished.get(session_id)
        recorder = self.active.get(session_id)
        config = record.config if record is not None else recorder.config_echo if recorder else {}
        artifacts = []
        if record is not None and self._ready(record):
            expires = int(self.clock()) + URL_TTL_S
            artifacts = [
                {
                    "type": kind,
                    "url": self.sign_url(base_url, session_id, kind, expires),
                    "content_type": content_type,
                }
                for kind, content_type in ARTIFACT_TYPES.items()
            ]
        return {**summary, "config": config, "artifacts": artifacts}

    def sign_url(self, base_url: str, session_id: str, kind: str, expires: int) -> str:
        """A pre-signed artifact URL valid until epoch second ``expires`` (any thread).

        Parameters
        ----------
        base_url : str
            ``http://HOST:PORT`` of the agent.
        session_id, kind : str
            The session and the artifact type (``audio``, ``timeline``, ``metadata``).
        expires : int
            Epoch seconds after which the URL is refused (403); a past value mints an
            expired URL, for tests.
        """
        query = urllib.parse.urlencode(
            {"expires": expires, "signature": self._signature(session_id, kind, expires)}
        )
        quoted = urllib.parse.quote(session_id, safe="")
        return f"{base_url}{ARTIFACTS_PATH}{quoted}/{kind}?{query}"

    def _signature(self, session_id: str, kind: str, expires: int) -> str:
        message = f"{session_id}\n{kind}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def artifact(
        self, session_id: str, kind: str, expires: str | None, signature: str | None
    ) -> tuple[int, str, bytes]:
        """Check a pre-signed URL's parts; ``(status, content_type, body)`` to answer."""
        if not expires or not signature:
            return _error(
                403,
                "access_denied",
                "Query-string authentication requires the expires and signature parameters",
            )
        try:
            expiry = int(expires)
        except ValueError:
            return _error(403, "access_denied", "Invalid date (should be seconds since epoch)")
        wanted = self._signature(session_id, kind, expiry)
        if not hmac.compare_digest(wanted, signature):
            return _error(
                403,
                "signature_does_not_match",
                "The request signature we calculated does not match the signature you "
                "provided; use the URL exactly as GET /v1/sessions/{id} gave it",
            )
        if self.clock() > expiry:
            return _error(
                403, "access_denied", "Request has expired; get fresh URLs from /v1/sessions/{id}"
            )
        record = self.finished.get(session_id)
        if record is None or kind not in ARTIFACT_TYPES or not self._ready(record):
            return _error(404, "no_such_key", "The specified key does not exist")
        if kind == "audio":
            try:
                with open(record.path, "rb") as f:
                    return 200, "audio/ogg", f.read()
            except OSError:
                return _error(404, "no_such_key", "The specified key does not exist")
        body = record.timeline if kind == "timeline" else record.metadata
        return 200, "application/json", json.dumps(body).encode()


def _remover(path: str) -> Callable[[Any], None]:
    def remove(_: Any) -> None:
        with contextlib.suppress(OSError):
            os.remove(path)

    return remove


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "seq":
            raise ValueError(cursor)
        return int(value)
    except Exception:
        raise ValueError(f"cursor ({cursor!r}) is not a next_cursor this agent gave") from None


def _error(status: int, code: str, message: str) -> tuple[int, str, bytes]:
    body = {"code": code, "message": message}
    return status, "application/json", json.dumps(body).encode()


def _response(status: int, content_type: str, body: bytes, extra: Any = ()) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _json(status: int, body: dict[str, Any]) -> Response:
    return _response(status, "application/json", json.dumps(body).encode())


def _rest_auth_error(headers: Headers, api_key: str | None) -> Response | None:
    """None when the request may read the history (the WebSocket's rule, keys only; the
    token endpoint's 422/404 answers otherwise)."""
    from voicekit.local import rest

    return rest.key_refusal(rest.bearer(headers), api_key)


def _ranged(headers: Headers, status: int, body: bytes) -> tuple[int, bytes, list[Any]]:
    """Honour a single ``Range: bytes=a-b`` (as the hosted URLs answered 206)."""
    values = headers.get_all("Range")
    if status != 200 or not values or not values[0].startswith("bytes="):
        return status, body, []
    first, _, last = values[0][6:].partition("-")
    try:
        if first:
            start, end = int(first), int(last) if last else len(body) - 1
        else:
            start, end = max(0, len(body) - int(last)), len(body) - 1
    except ValueError:
        return status, body, []
    end = min(end, len(body) - 1)
    if start > end:
        return 416, b"", [("Content-Range", f"bytes */{len(body)}")]
    return 206, body[start : end + 1], [("Content-Range", f"bytes {start}-{end}/{len(body)}")]


def handles(path: str) -> bool:
    """Whether a request path is one of the history's routes."""
    return path == SESSIONS_PATH or path.startswith((SESSIONS_PATH + "/", ARTIFACTS_PATH))


def respond(
    store: HistoryStore,
    path: str,
    query: Mapping[str, list[str]],
    headers: Headers,
    api_key: str | None,
    local: Any = None,
    method: str = "GET",
) -> Response:
    """Answer a history request (a path :func:`handles`): list, detail or artifact.

    Parameters
    ----------
    store : HistoryStore
        The agent's history.
    path : str
        The request path, without its query.
    query : mapping of str to list of str
        The parsed query (``urllib.parse.parse_qs``).
    headers : Headers
        The request headers (``Authorization``, ``Host``, ``Range``).
    api_key : str or None
        The agent's key (``AgentOptions.api_key``): the ``/v1/sessions`` routes need it.
    local : tuple, optional
        The socket's local address, for artifact URLs when the request has no Host header.
    method : str
        The request method: only ``GET`` is served (405 otherwise).
    """
    if method.upper() != "GET":
        return _json(405, {"error": f"{method} is not allowed; the session history is read-only"})
    if path.startswith(ARTIFACTS_PATH):
        parts = [urllib.parse.unquote(p) for p in path[len(ARTIFACTS_PATH) :].split("/")]
        if len(parts) != 2:
            return _json(
                404, {"code": "no_such_key", "message": "The specified key does not exist"}
            )
        status, content_type, body = store.artifact(
            parts[0], parts[1], query.get("expires", [None])[0], query.get("signature", [None])[0]
        )
        status, body, extra = _ranged(headers, status, body)
        return _response(status, content_type, body, [("Accept-Ranges", "bytes"), *extra])
    denied = _rest_auth_error(headers, api_key)
    if denied is not None:
        return denied
    if path.rstrip("/") == SESSIONS_PATH:
        raw = query.get("limit", [str(DEFAULT_LIMIT)])[0]
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            return _json(
                422,
                {
                    "detail": [
                        {
                            "type": "value_error",
                            "loc": ["query", "limit"],
                            "msg": f"limit must be an integer from 1 to {MAX_LIMIT}",
                        }
                    ]
                },
            )
        cursor = query.get("cursor", query.get("after", [None]))[0]
        try:
            return _json(200, store.page(limit, cursor))
        except ValueError as exc:
            return _json(400, {"code": "invalid_cursor", "message": str(exc)})
    session_id = urllib.parse.unquote(path[len(SESSIONS_PATH) + 1 :].rstrip("/"))
    host = headers.get_all("Host")
    if host:
        base = f"http://{host[0]}"
    elif local:
        base = f"http://{local[0]}:{local[1]}"
    else:
        base = "http://127.0.0.1"
    detail = store.detail(session_id, base)
    if detail is None:
        return _json(
            404,
            {
                "code": "session_not_found",
                "message": f"Session {session_id[:100]!r} not found; list sessions with "
                "GET /v1/sessions",
            },
        )
    return _json(200, detail)
