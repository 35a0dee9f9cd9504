"""Turn table, barge-in table and summary of one log bundle, on the session clock.

Analysis layer: reads a :class:`voicekit.SessionLog`; never touches a socket. The metric
names and definitions are those of docs/architecture.md ("One clock"); the choices the
definitions leave open are written here:

- **User speech** comes from the scripted user's ``user.utterance`` lines when there are
  any (``source="script"``): utterances of kind ``turn`` with the same ``turn`` number form
  one user turn; an utterance without ``turn`` (a bundle written by another program) is a
  turn of its own; a ``barge_in`` utterance starts a new turn. Otherwise Silero VAD runs over
  ``user.wav`` (``source="vad"``): speech segments closer than 300 ms are merged; a segment
  that starts while agent audio is playing is a barge-in candidate, the others are turns.
- **Replies** belong to the last user turn of their server session that began before the
  reply started (``reply.started``); the first reply after a ``session.ready`` is that
  session's greeting and belongs to no turn, nor do replies asked for with ``reply.create``
  (``Session.say``) after a turn ended. A reply answering a ``tool.result`` belongs to the
  turn of that tool's call, and a ``tool.call`` (which names no reply) to the turn of the
  reply in progress when it arrived.
- **Sessions**: a bundle restarted after a failed resume holds several server sessions;
  each ``session.restarted`` line starts the next (``session`` 0, 1, ...). A log with no
  reply events at all (a call recording) has its replies found on the agent track by level
  (:mod:`voicekit.analysis.acoustic`); a VAD segment that interrupted such a reply (its
  ``cut_by``) is a user turn too.
- ``overlap``: seconds of the turn's user speech during which agent audio was audible
  (a reply's ``a_on``-``a_off``): the agent starting early, or the user barging in.
- **Audible** means ``|sample| >= 100`` (about -50 dBFS) in ``agent.wav``, read by memory
  map for just the played span of each reply (audio is never loaded whole).
- ``heard_fraction`` = played samples / samples received for that reply (an interrupted
  reply is never sent whole, so what was received is its known length).
- ``premature``: a scripted turn during which ``input.speech.stopped`` arrived before the
  user's last word (in a pause inside the turn, or in the words after it, before the agent's
  voice activity detection heard them resume); a VAD turn whose speech resumed within 300 ms of an
  ``input.speech.stopped``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.level import AUDIBLE  # the one threshold of audible agent audio

if TYPE_CHECKING:
    import pandas as pd

    from voicekit.logformat import SessionLog

__all__ = [
    "AUDIBLE",
    "CONFIG_COLUMNS",
    "REPLY_COLUMNS",
    "TRIGGERS",
    "TURN_COLUMNS",
    "agent_replies",
    "barge_in_table",
    "echo_check",
    "greeting_latency",
    "reply_table",
    "summarize",
    "turn_columns",
    "turn_table",
    "user_segments",
]

RATE = 24000
MERGE_GAP_S = 0.3
MERGED_PAUSE_S = 1.0  # the longest pause inside a turn the server joined after ending it
NO_RESPONSE_S = 5.0
MIN_TURN_SPEECH_S = 0.3

CONFIG_COLUMNS = ("voice", "vad_threshold", "min_silence", "max_silence", "interrupt_response")
TURN_COLUMNS = (
    "turn",
    "session",
    "epoch",
    *CONFIG_COLUMNS,
    "u_on",
    "u_off",
    "source",
    "text",
    "reply_id",
    "reply_text",
    "a_on",
    "a_off",
    "fto",
    "overlap",
    "endpoint_delay",
    "server_first_audio",
    "lead_silence",
    "playout_delay",
    "premature",
    "no_response",
    "interrupted",
    "tool",
    "tool_server",
    "tool_exec",
    "tool_result_to_audio",
    "tool_dead_air",
    "silent",
    "unspoken_text",
    "merged",
)
REPLY_COLUMNS = (
    "reply_id",
    "session",
    "turn",
    "trigger",
    "started",
    "first_audio",
    "audible_at",
    "ended",
    "status",
    "played",
    "text",
    "interrupted",
    "silent",
    "unspoken_text",
)
TRIGGERS = ("greeting", "user_speech", "tool_result", "reply_create")
BARGE_IN_COLUMNS = (
    "onset",
    "session",
    "source",
    "text",
    "reply_id",
    "kind",
    "detect_latency",
    "stop_latency",
    "residual",
    "heard_fraction",
    "played",
    "received",
)


# -- helpers --------------------------------------------------------------------------------
def _first(times: Iterable[float], after: float, before: float = math.inf) -> float:
    for t in times:
        if after <= t < before:
            return t
    return math.nan


def _epoch_config(config: dict[str, Any]) -> dict[str, Any]:
    """The tunable values of a wire-form config, flat (None: the server's default)."""
    td = (config.get("input") or {}).get("turn_detection") or {}
    return {
        "voice": (config.get("output") or {}).get("voice"),
        "vad_threshold": td.get("vad_threshold"),
        "min_silence": td.get("min_silence"),
        "max_silence": td.get("max_silence"),
        "interrupt_response": td.get("interrupt_response"),
    }


_QUIET_SHIFT = np.uint16(AUDIBLE - 1)
_QUIET_TOP = np.uint16(2 * AUDIBLE - 2)


def _agent_track(log: SessionLog) -> _AgentTrack:
    """The log's :class:`_AgentTrack`, made once (``log.memo``)."""
    track: _AgentTrack = log.memo("agent_track", lambda: _AgentTrack(log))
    return track


class _AgentTrack:
    """The agent's track as played (``log.agent_samples()``: a memory map for a bundle):
    audible spans without loading the audio."""

    def __init__(self, log: SessionLog) -> None:
        # a plain view of the memory map: numpy's memmap subclass costs more per slice
        # than reading the few thousand samples each search looks at
        self.samples: NDArray[np.int16] = np.asarray(log.agent_samples(), np.int16)

    def audible(self, start: int, stop: int) -> tuple[int, int] | None:
        """First and last audible sample index in ``[start, stop)``, or None.

        Searched from each end in growing blocks: speech is audible near both ends of a
        reply, so a few thousand samples are read, not the whole span."""
        start, stop = max(start, 0), min(max(stop, 0), len(self.samples))
        first = self._search(start, stop, forward=True)
        if first is None:
            return None
        last = self._search(first, stop, forward=False)
        return first, first if last is None else last

    def _search(self, start: int, stop: int, *, forward: bool) -> int | None:
        block = 4096
        lo, hi = start, stop
        while lo < hi:
            a, b = (lo, min(lo + block, hi)) if forward else (max(hi - block, lo), hi)
            span = self.samples[a:b] if forward else self.samples[a:b][::-1]
            # |x| >= AUDIBLE in two passes, no int32 copy: as uint16, x + AUDIBLE - 1 wraps
            # into [0, 2 * AUDIBLE - 2] exactly for the quiet samples
            loud = (span.view(np.uint16) + _QUIET_SHIFT) > _QUIET_TOP
            k = int(loud.argmax())  # the first True, or 0 when there is none
            if loud[k]:
                return a + k if forward else b - 1 - k
            lo, hi = (b, hi) if forward else (lo, a)
            block *= 2
        return None


# -- user speech ----------------------------------------------------------------------------
def user_segments(log: SessionLog) -> list[dict[str, Any]]:
    """User speech as segments ``{start, end, text, kind, turn, source}``.

    Scripted ground truth when the log has ``user.utterance`` lines, else Silero VAD over
    ``user.wav`` (kind ``speech``; the analysis decides turn or barge-in). Worked out once
    per log (``log.memo``): the turn table, barge-ins, replies and plots all read them.
    """
    segments: list[dict[str, Any]] = log.memo("user_segments", lambda: _user_segments(log))
    return segments


def _user_segments(log: SessionLog) -> list[dict[str, Any]]:
    scripted = log.of_type("user.utterance")
    if scripted:
        # ``turn`` is optional: an utterance without one is a turn of its own (the utterances
        # of one turn, split by a pause, share a number when the writer gives them one)
        given = [int(u["turn"]) for u in scripted if u.get("turn") is not None]
        fresh = itertools.count(max(given, default=-1) + 1)
        return [
            {
                "start": float(u["start"]),
                "end": float(u["end"]),
                "text": str(u.get("text", "")),
                "kind": str(u.get("kind", "turn")),
                "turn": int(u["turn"]) if u.get("turn") is not None else next(fresh),
                "source": "script",
            }
            for u in scripted
        ]
    return _vad_segments(log)


def _vad_segments(log: SessionLog) -> list[dict[str, Any]]:
    from voicekit.audio.resample import resample
    from voicekit.speech.vad import FRAME, SileroVad
    from voicekit.speech.vad import RATE as VAD_RATE

    audio, rate = log.audio("user")
    if len(audio) < FRAME:
        return []
    probs = SileroVad().process(resample(audio, rate, VAD_RATE).astype(np.float32) / 32768.0)
    frame_s = FRAME / VAD_RATE
    voiced = probs >= 0.5
    segments: list[list[float]] = []
    for i in np.flatnonzero(voiced):
        start, end = i * frame_s, (i + 1) * frame_s
        if segments and start - segments[-1][1] <= MERGE_GAP_S:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    from voicekit.analysis.acoustic import refine_segments  # edges by level; echo marked

    return refine_segments(
        [
            {"start": s, "end": e, "text": "", "kind": "speech", "turn": -1, "source": "vad"}
            for s, e in segments
            if e - s >= 0.1
        ],
        log,
    )


# -- sessions -------------------------------------------------------------------------------
def _session_starts(log: SessionLog) -> list[float]:
    """Session-clock times at which the bundle's second, third, ... server session began
    (its ``session.restarted`` lines): ``bisect_right(starts, t)`` is the session of ``t``."""
    return [float(e["t"]) for e in log.of_type("session.restarted")]


# -- replies --------------------------------------------------------------------------------
def _replies(log: SessionLog, track: _AgentTrack) -> list[dict[str, Any]]:
    """One dict per reply: receive times, playback span, audible span, status, text, and
    what the reply table derives from them (session, trigger, flags). Worked out once per
    log (``log.memo``); callers read the records and never change them."""
    replies: list[dict[str, Any]] = log.memo("replies", lambda: _find_replies(log, track))
    return replies


def _find_replies(log: SessionLog, track: _AgentTrack) -> list[dict[str, Any]]:

    replies: dict[str, dict[str, Any]] = {}

    def rec(rid: str) -> dict[str, Any]:
        return replies.setdefault(
            rid,
            {
                "reply_id": rid,
                "started": math.nan,
                "first_audio": math.nan,
                "ended": math.nan,
                "received": 0,
                "offset": None,
                "played": 0,
                "dropped": 0,
                "end": None,
                "stop_t": math.nan,
                "reason": None,
                "status": None,
                "text": None,
                "said_interrupted": None,
                "words": [],
                "flagged_silent": False,
                "a_on": math.nan,
                "a_off": math.nan,
                "lead_silence": math.nan,
            },
        )

    # the chunks, one line each: per reply the first one's time and their samples, by numpy
    codes, ids = log.event_table.codes("reply.audio", "reply_id")  # None -> -1
    named = np.flatnonzero(codes >= 0)
    if len(named):
        audio = log.columns("reply.audio")
        # each reply's first chunk (np.unique: the first index of each code), in chunk order
        present, first = np.unique(codes[named], return_index=True)
        received = np.bincount(codes[named], weights=audio["samples"][named], minlength=len(ids))
        t = audio["t"]
        for k in np.argsort(first, kind="stable").tolist():
            r = rec(ids[present[k]])
            r["first_audio"] = float(t[named[first[k]]])
            r["received"] = int(received[present[k]])
    kinds = (
        "reply.started",
        "playback.start",
        "playback.stop",
        "reply.done",
        "transcript.agent",
        "transcript.agent.delta",
        "reply.silent",
    )
    for e in log.of_type(*kinds):
        kind, rid = e["type"], e.get("reply_id")
        if rid is None:
            continue
        r = replies.get(rid) or rec(str(rid))  # one record made per reply, not per line
        if kind == "reply.started" and math.isnan(r["started"]):
            r["started"] = e["t"]
        elif kind == "transcript.agent.delta":
            r["words"].append((str(e.get("delta", "")), e.get("start_ms"), e.get("end_ms")))
        elif kind == "playback.start":
            r["offset"] = int(e["offset"])
        elif kind == "playback.stop":
            r["played"], r["dropped"] = int(e.get("played", 0)), int(e.get("dropped", 0))
            if e.get("end") is not None:  # older logs have no "end"
                r["end"] = int(e["end"])
            r["reason"], r["stop_t"] = e.get("reason"), e["t"]
        elif kind == "reply.done":
            r["status"], r["ended"] = e.get("status"), e["t"]
        elif kind == "transcript.agent":
            r["text"] = str(e.get("text", ""))
            r["said_interrupted"] = e.get("interrupted")
        elif kind == "reply.silent":
            r["flagged_silent"] = True
    if not replies:  # no reply events: a recording; the agent's track is all there is
        from voicekit.analysis.acoustic import acoustic_replies

        return [{**ACOUSTIC_DEFAULTS, **r} for r in acoustic_replies(log)]
    out = []
    for r in replies.values():
        if math.isnan(r["started"]):
            r["started"] = r["first_audio"]
        if r["offset"] is not None:
            # "end" is later than offset + played when the device ran dry mid-reply
            if r["end"] is None:
                r["end"] = r["offset"] + (r["played"] or r["received"])
            span = track.audible(r["offset"], r["end"])
            if span is not None:
                r["a_on"], r["a_off"] = span[0] / RATE, (span[1] + 1) / RATE
                r["lead_silence"] = (span[0] - r["offset"]) / RATE
        if r["text"] is None:  # no final transcript: the word deltas, joined
            r["text"] = " ".join(w for w, _, _ in r["words"] if w.strip())
        if not math.isnan(r["started"]):
            out.append(r)
    out.sort(key=lambda r: r["started"])
    _reply_context(log, out)
    for r in out:
        r["silent"] = _is_silent(r)
        r["unspoken_text"] = _has_unspoken_text(r, track)
    return out


# what a reply found on the agent track by level (a recording) cannot know
ACOUSTIC_DEFAULTS: dict[str, Any] = {
    "ended": math.nan,
    "said_interrupted": None,
    "words": [],
    "flagged_silent": False,
    "session": 0,
    "trigger": None,
    "tool_call": False,
    "silent": False,
    "unspoken_text": False,
}


def _reply_context(log: SessionLog, replies: list[dict[str, Any]]) -> None:
    """Each reply's ``session``, ``trigger`` and whether it carried a ``tool.call``.

    The trigger is the kind of the last event before ``reply.started`` (in the same
    session) that asks for a reply: ``session.ready`` (``greeting``: the first reply after
    it only), the commit
    ``input.speech.stopped`` (``user_speech``), a sent ``tool.result`` (``tool_result``) or
    ``reply.create`` (``reply_create``); None when nothing did. A ``tool.call`` (which names
    no reply) belongs to the reply in progress when it arrived: started, not yet done.
    """
    starts = _session_starts(log)
    causes: list[tuple[float, str | None]] = [(t, None) for t in starts]
    causes += [(e["t"], "greeting") for e in log.of_type("session.ready")]
    causes += [(e["t"], "user_speech") for e in log.of_type("input.speech.stopped")]
    causes += [(e["t"], "tool_result") for e in log.of_type("tool.result", direction="send")]
    causes += [(e["t"], "reply_create") for e in log.of_type("reply.create", direction="send")]
    causes.sort(key=lambda c: c[0])  # stable: a restart sorts before its session.ready
    times = [t for t, _ in causes]
    greeted: set[int] = set()  # a session.ready asks for one reply, the first after it
    for r in replies:
        started = r["started"]
        r["session"] = bisect.bisect_right(starts, started)
        k = bisect.bisect_right(times, started)
        r["trigger"] = causes[k - 1][1] if k else None
        if r["trigger"] == "greeting":
            if k in greeted:
                r["trigger"] = None
            greeted.add(k)
        r["tool_call"] = False
    for e in log.of_type("tool.call"):
        carrier = _carrier(replies, e["t"])
        if carrier is not None:
            carrier["tool_call"] = True


def _ended(r: dict[str, Any]) -> float:
    return r["ended"] if not math.isnan(r["ended"]) else math.inf


def _carrier(replies: list[dict[str, Any]], t: float) -> dict[str, Any] | None:
    """The reply in progress at ``t`` (started, not yet done; the latest started)."""
    open_ = [r for r in replies if r["started"] <= t <= _ended(r)]
    return open_[-1] if open_ else None


def _cut(r: dict[str, Any]) -> bool:
    return r["status"] in ("interrupted", "cancelled") or r["reason"] not in (None, "completed")


def _is_silent(r: dict[str, Any]) -> bool:
    """Audio sent or played, none of it audible; not cut by the server; no tool pre-amble."""
    if r["status"] in ("interrupted", "cancelled") or r.get("tool_call"):
        return False
    if r["flagged_silent"]:  # the session checked every sample it received
        return True
    # played here in full (the client did not stop it early): the agent track tells
    played_whole = r["reason"] in (None, "completed")
    return (
        r["offset"] is not None
        and played_whole
        and bool(r["played"] or r["received"])
        and (math.isnan(r["a_on"]))
    )


def _has_unspoken_text(r: dict[str, Any], track: _AgentTrack) -> bool:
    """Does the reply's text hold a word the listener never heard?"""
    said = r["text"].split()
    if not said:
        return False
    if r["offset"] is None:  # never played here: only a silent reply is known unheard
        return bool(r["flagged_silent"])
    timed = [(a, b) for _, a, b in r["words"] if a is not None and b is not None]
    if not timed:
        return math.isnan(r["a_on"])
    # the transcript's words are the first of the deltas (an interrupted reply's transcript
    # is trimmed; its deltas came whole, in one burst)
    for a, b in timed[: len(said)]:
        start = r["offset"] + round(float(a) * RATE / 1000)
        stop = min(r["offset"] + round(float(b) * RATE / 1000), r["end"])
        if stop <= start or track.audible(start, stop) is None:
            return True
    return False


def agent_replies(log: SessionLog) -> list[dict[str, Any]]:
    """One dict per reply of a session, in start order (what the timeline draws).

    Parameters
    ----------
    log : SessionLog
        A session's log.

    Returns
    -------
    list of dict
        ``reply_id``, ``started`` / ``first_audio`` / ``ended`` (receive times of
        ``reply.started``, the first ``reply.audio`` and ``reply.done``, s), ``offset`` /
        ``end`` (playback span, samples), ``received`` / ``played`` / ``dropped`` (samples),
        ``a_on`` / ``a_off`` (audible span in ``agent.wav``, s; NaN if silent),
        ``lead_silence``, ``status``, ``reason``, ``stop_t``, ``text``, ``words`` (the
        deltas: ``(text, start_ms, end_ms)``), ``session``, ``trigger``, ``tool_call``,
        ``silent`` and ``unspoken_text`` (see :func:`reply_table`). The records are shared
        by the analyses of one log: read them, do not change them.
    """
    return _replies(log, _AgentTrack(log))


# -- the turn table -------------------------------------------------------------------------
def _merges(log: SessionLog) -> list[tuple[float, float]]:
    """Turns the server joined after ending them early: ``(t1, t2)``, the receive times of
    a ``transcript.user`` and of the next one, which is the same turn again with more
    words: the same ``item_id``, or (without item ids) every word of the first in the
    second and more."""
    finals = log.of_type("transcript.user")
    out = []
    for a, b in itertools.pairwise(finals):
        ia, ib = a.get("item_id"), b.get("item_id")
        if ia is not None or ib is not None:
            joined = ia == ib
        else:
            wa, wb = _words(a.get("text")), _words(b.get("text"))
            joined = bool(wa) and len(wb) > len(wa) and set(wa) <= set(wb)
        if joined:
            out.append((float(a["t"]), float(b["t"])))
    return out


def _words(text: Any) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in str(text or "").split() if w.strip(".,!?;:")]


def _user_turns(
    segments: list[dict[str, Any]],
    replies: list[dict[str, Any]],
    merges: Sequence[tuple[float, float]] = (),
) -> list[dict[str, Any]]:
    """Group segments into turns; VAD segments during agent playback are barge-ins; VAD
    turns the server merged (``merges``) are one turn."""
    turns: list[dict[str, Any]] = []
    if segments and segments[0]["source"] == "script":
        by_turn: dict[int, list[dict[str, Any]]] = {}
        for s in segments:
            if s["kind"] in ("turn", "barge_in"):
                by_turn.setdefault(s["turn"], []).append(s)
        for number, parts in sorted(by_turn.items()):
            turns.append({"turn": number, "parts": parts, "source": "script"})
        return turns
    playing = [
        (r["a_on"], r["a_off"], r.get("cut_by")) for r in replies if not math.isnan(r["a_on"])
    ]
    for s in segments:
        if s["kind"] == "echo":
            continue
        during = any(a <= s["start"] < b and s["start"] != cut for a, b, cut in playing)
        if during:
            continue
        if turns and _joined(turns[-1]["parts"][-1], s, merges):
            turns[-1]["parts"].append(s)
        else:
            turns.append({"turn": len(turns), "parts": [s], "source": "vad"})
    return turns


def _joined(
    before: dict[str, Any], after: dict[str, Any], merges: Sequence[tuple[float, float]]
) -> bool:
    """Two VAD segments the server took as one turn: a pause of at most
    ``MERGED_PAUSE_S``, an early commit after the first began (and before the second had
    ended ``MERGED_PAUSE_S`` ago), its turn joined again once the second had begun."""
    if after["start"] - before["end"] > MERGED_PAUSE_S:
        return False
    return any(
        before["start"] < t1 < after["end"] + MERGED_PAUSE_S and t2 >= after["start"]
        for t1, t2 in merges
    )


def _assign(
    turns: list[dict[str, Any]],
    replies: list[dict[str, Any]],
    creates: list[float],
    starts: list[float],
) -> list[list[dict[str, Any]]]:
    """The replies of each turn: started from its onset until the next turn's, in its
    session, no greeting, none asked for with ``reply.create`` after the turn ended."""
    begun = [r["started"] for r in replies]
    out = []
    for i, turn in enumerate(turns):
        parts = turn["parts"]
        u_on, u_off = parts[0]["start"], max(p["end"] for p in parts)
        next_on = turns[i + 1]["parts"][0]["start"] if i + 1 < len(turns) else math.inf
        session = bisect.bisect_right(starts, u_on)
        k = bisect.bisect_left(creates, u_off)
        create = creates[k] if k < len(creates) else math.inf  # first reply.create after
        out.append(
            [
                r
                for r in replies[
                    bisect.bisect_left(begun, u_on) : bisect.bisect_left(begun, next_on)
                ]
                if r["session"] == session and r["trigger"] != "greeting" and r["started"] < create
            ]
        )
    return out


def _turn_ends(
    turns: list[dict[str, Any]], owned: list[list[dict[str, Any]]], stopped: list[float]
) -> list[tuple[dict[str, Any] | None, list[dict[str, Any]], float, float]]:
    """Per turn: its first (audible) reply, its audible replies, the next turn's onset, and
    its end (the last commit before that first reply; NaN if none)."""
    info = []
    for i, (turn, mine) in enumerate(zip(turns, owned, strict=True)):
        u_on = turn["parts"][0]["start"]
        next_on = turns[i + 1]["parts"][0]["start"] if i + 1 < len(turns) else math.inf
        audible = [r for r in mine if not math.isnan(r["a_on"])]
        first = audible[0] if audible else (mine[0] if mine else None)
        reply_start = first["started"] if first else next_on
        lo, hi = bisect.bisect_left(stopped, u_on), bisect.bisect_right(stopped, reply_start + 1e-6)
        info.append((first, audible, next_on, stopped[hi - 1] if hi > lo else math.nan))
    return info


def _turn_replies(
    log: SessionLog, turns: list[dict[str, Any]], replies: list[dict[str, Any]]
) -> tuple[list[list[dict[str, Any]]], list[Events]]:
    """Each turn's replies and ``tool.call`` lines. A reply that answers a tool's result
    belongs to the turn of that tool's call, wherever it started."""
    owned = _assign(
        turns,
        replies,
        [e["t"] for e in log.of_type("reply.create", direction="send")],
        _session_starts(log),
    )
    stopped = [e["t"] for e in log.of_type("input.speech.stopped")]
    commits = [end for *_, end in _turn_ends(turns, owned, stopped)]
    calls = _tool_calls_by_turn(log, turns, owned, replies, commits)
    answers = [r for r in replies if r["trigger"] == "tool_result"]
    if not answers:
        return owned, calls
    turn_of_call = {c.get("call_id"): i for i, cs in enumerate(calls) for c in cs}
    results = log.of_type("tool.result", direction="send")
    sent = [e["t"] for e in results]
    for r in answers:
        k = bisect.bisect_right(sent, r["started"])
        j = turn_of_call.get(results[k - 1].get("call_id")) if k else None
        if j is None or any(x is r for x in owned[j]):
            continue
        for mine in owned:
            mine[:] = [x for x in mine if x is not r]
        owned[j] = sorted([*owned[j], r], key=lambda x: x["started"])
    return owned, calls


def turn_table(log: SessionLog) -> pd.DataFrame:
    """One row a user turn; columns :data:`TURN_COLUMNS` (times in seconds, session clock).

    Columns: ``turn``; ``session`` (0, then 1, 2, ... after each ``session.restarted``: a
    bundle that restarted after a failed resume holds several server sessions); ``epoch``
    and the tunable config values (:data:`CONFIG_COLUMNS`); ``u_on``, ``u_off``,
    ``source``, ``text``; ``reply_id`` (the first audible reply), ``reply_text`` (all its
    replies); ``a_on``, ``a_off``, ``fto``, ``overlap``, ``endpoint_delay``,
    ``server_first_audio``, ``lead_silence``, ``playout_delay``, ``premature``,
    ``no_response``, ``interrupted`` (see the module docstring); ``tool``,
    ``tool_server``, ``tool_exec``, ``tool_result_to_audio``, ``tool_dead_air`` (the
    turn's first tool call: the one arriving while one of the turn's replies was in
    progress, else after the turn's commit); and the flags:

    - ``silent``: one of the turn's replies was silent (:func:`reply_table`);
    - ``unspoken_text``: one of its replies has text the listener never heard;
    - ``merged``: the server ended the turn early, then joined the rest to it: a
      ``transcript.user`` arrived while the turn was still going on (scripted: between
      its first word and its last; VAD: its segments are joined into one turn when the
      pause between them was at most 1 s), and the next ``transcript.user`` was the same
      turn again (same ``item_id``; without ids, all of the first's words and more).
    """
    import pandas as pd

    return pd.DataFrame(turn_columns(log), columns=list(TURN_COLUMNS))


def turn_columns(log: SessionLog) -> dict[str, list[Any]]:
    """The turn table (:func:`turn_table`) as plain lists, one a column of
    :data:`TURN_COLUMNS`: what the tables of many logs are joined from (cheaper to send
    between processes and to join than data frames). Worked out once per log
    (``log.memo``); callers read the lists and never change them."""
    columns: dict[str, list[Any]] = log.memo("turn_columns", lambda: _turn_columns(log))
    return columns


def _turn_columns(log: SessionLog) -> dict[str, list[Any]]:
    track = _agent_track(log)
    replies = _replies(log, track)
    merges = _merges(log)
    turns = _user_turns(user_segments(log), replies, merges)
    starts = _session_starts(log)
    stopped = [e["t"] for e in log.of_type("input.speech.stopped")]
    epochs = [
        (e["t"], int(e.get("epoch", 0)), e.get("config") or {}) for e in log.of_type("config.epoch")
    ]
    owned, calls = _turn_replies(log, turns, replies)
    info = _turn_ends(turns, owned, stopped)
    heard = sorted((r for r in replies if not math.isnan(r["a_on"])), key=lambda r: r["a_on"])
    heard_on = [r["a_on"] for r in heard]
    tool_execs = log.of_type("tool.exec")
    tool_results = log.of_type("tool.result", direction="send")

    rows = []
    for i, turn in enumerate(turns):
        parts, mine = turn["parts"], owned[i]
        first, audible, next_on, end_t = info[i]
        u_on, u_off = parts[0]["start"], max(p["end"] for p in parts)
        epoch, config = 0, dict[str, Any]()
        for t, n, cfg in epochs:
            if t <= u_on + 1e-9:
                epoch, config = n, cfg
        a_on = first["a_on"] if first else math.nan
        if turn["source"] == "script":
            premature = _any_between(stopped, u_on, u_off)
        else:  # a commit after the end, at most MERGE_GAP_S before the next speech
            lo = max(u_off, next_on - MERGE_GAP_S)
            premature = _any_between(stopped, lo, next_on, closed=True)
        speech_s = sum(p["end"] - p["start"] for p in parts)
        answered = [r for r in mine if r["first_audio"] <= u_off + NO_RESPONSE_S]
        if turn["source"] == "script":
            merged = any(u_on < t1 < u_off for t1, _ in merges)
        else:
            merged = len(parts) > 1
        row: dict[str, Any] = {
            "turn": turn["turn"],
            "session": bisect.bisect_right(starts, u_on),
            "epoch": epoch,
            **_epoch_config(config),
            "u_on": u_on,
            "u_off": u_off,
            "source": turn["source"],
            "text": " ".join(p["text"] for p in parts).strip(),
            "reply_id": first["reply_id"] if first else None,
            "reply_text": " ".join(r["text"] for r in mine).strip(),
            "a_on": a_on,
            "a_off": max((r["a_off"] for r in audible), default=math.nan),
            "fto": a_on - u_off,
            "overlap": _overlap(parts, heard, heard_on),
            "endpoint_delay": end_t - u_off,
            "server_first_audio": (first["first_audio"] if first else math.nan) - end_t,
            "lead_silence": first["lead_silence"] if first else math.nan,
            "playout_delay": (
                a_on - first["first_audio"] - first["lead_silence"] if first else math.nan
            ),
            "premature": bool(premature),
            "no_response": bool(speech_s >= MIN_TURN_SPEECH_S and not answered),
            "interrupted": any(
                r["status"] == "interrupted" or r["reason"] not in (None, "completed") for r in mine
            ),
            "silent": any(r["silent"] for r in mine),
            "unspoken_text": any(r["unspoken_text"] for r in mine),
            "merged": bool(merged),
        }
        row.update(_tool_columns(u_off, mine, calls[i], tool_execs, tool_results))
        rows.append(row)
    return {name: [row[name] for row in rows] for name in TURN_COLUMNS}


Events = list[dict[str, Any]]


def _overlap(parts: Events, heard: Events, heard_on: list[float]) -> float:
    """Seconds of the turn's speech while agent audio was audible (``heard``: replies with
    an audible span, by ``a_on``; only those begun before the speech ended can overlap)."""
    u_off = max(p["end"] for p in parts)
    total = 0.0
    for r in heard[: bisect.bisect_left(heard_on, u_off)]:
        if r["a_off"] <= parts[0]["start"]:
            continue
        for p in parts:
            total += max(0.0, min(p["end"], r["a_off"]) - max(p["start"], r["a_on"]))
    return total


def _tool_calls_by_turn(
    log: SessionLog,
    turns: list[dict[str, Any]],
    owned: list[list[dict[str, Any]]],
    replies: list[dict[str, Any]],
    commits: list[float],
) -> list[Events]:
    """Each turn's ``tool.call`` lines. A call names no reply: it belongs to the turn of
    the reply in progress when it arrived (started, not yet done); failing that, to the
    turn that ended last before it (its commit, or its last word when no commit was
    logged); failing that, to the turn it came in."""
    out: list[Events] = [[] for _ in turns]
    calls = log.of_type("tool.call")
    if not calls or not turns:
        return out
    turn_of = {id(r): i for i, mine in enumerate(owned) for r in mine}
    ended = sorted(
        (c if not math.isnan(c) else max(p["end"] for p in turn["parts"]), i)
        for i, (turn, c) in enumerate(zip(turns, commits, strict=True))
    )
    ends = [t for t, _ in ended]
    ons = [turn["parts"][0]["start"] for turn in turns]
    for call in calls:
        t = call["t"]
        carrier = _carrier(replies, t)
        if carrier is not None and id(carrier) in turn_of:
            out[turn_of[id(carrier)]].append(call)
            continue
        if carrier is not None and carrier["trigger"] in ("greeting", "reply_create"):
            continue  # carried by a reply of no turn
        k = bisect.bisect_right(ends, t)
        if k:
            out[ended[k - 1][1]].append(call)
        elif (j := bisect.bisect_right(ons, t)) > 0:
            out[j - 1].append(call)
    return out


def _tool_columns(
    u_off: float, mine: Events, calls: Events, execs: Events, results: Events
) -> dict[str, Any]:
    empty = {
        "tool": None,
        "tool_server": math.nan,
        "tool_exec": math.nan,
        "tool_result_to_audio": math.nan,
        "tool_dead_air": math.nan,
    }
    if not calls:
        return empty
    call = calls[0]
    call_id = call.get("call_id")
    ex = next((x for x in execs if x.get("call_id") == call_id), None)
    res = next((x for x in results if x.get("call_id") == call_id), None)
    res_t = res["t"] if res else math.nan
    after = [r for r in mine if r["a_on"] >= res_t] if res else []
    audio_on = after[0]["a_on"] if after else math.nan
    return {
        "tool": call.get("name"),
        "tool_server": call["t"] - u_off,
        "tool_exec": (ex["end"] - ex["start"]) if ex else math.nan,
        "tool_result_to_audio": audio_on - res_t,
        "tool_dead_air": audio_on - u_off,
    }


# -- the reply table ------------------------------------------------------------------------
def reply_table(log: SessionLog | str | os.PathLike[str]) -> pd.DataFrame:
    """One row an agent reply, in start order; columns :data:`REPLY_COLUMNS`.

    Parameters
    ----------
    log : SessionLog or path
        A session's log.

    Returns
    -------
    pandas.DataFrame
        - ``reply_id``; ``session`` (0, 1, ... as in the turn table);
        - ``turn``: the user turn it answers (as in the turn table), NaN for a greeting, a
          reply asked for with ``reply.create`` after the turn, or one before any turn;
        - ``trigger``: what asked for it, the last of these before its ``reply.started``
          in its session: ``session.ready`` (``"greeting"``), the commit
          ``input.speech.stopped`` (``"user_speech"``), a sent ``tool.result``
          (``"tool_result"``), a sent ``reply.create`` (``"reply_create"``); None if none;
        - ``started``, ``first_audio``, ``ended``: receive times of ``reply.started``, the
          first ``reply.audio`` and ``reply.done``; ``audible_at``: the first audible
          sample of the reply as played (``a_on``); ``status``: of ``reply.done``;
        - ``played``: seconds played (NaN without ``playback`` lines); ``text``: its
          ``transcript.agent``, or its word deltas joined; ``interrupted``: cut by a
          barge-in (``reply.done`` interrupted or cancelled, or playback stopped early);
        - ``silent``: the reply sent or played audio and none of it is audible, yet the
          server did not cut it (``reply.done`` not interrupted or cancelled) and it was
          no tool's pre-amble (it carried no ``tool.call``): how a failing LLM behind the
          service looks live (``reply.started``, pure silence, ``reply.done`` completed, no
          ``transcript.agent``), and a reply held for a turn the server then merged. The
          evidence: the session's ``reply.silent`` line (every received sample checked),
          or, without one, a reply played to its end with no audible sample in
          ``agent.wav``;
        - ``unspoken_text``: its text holds a word the listener never heard. With word
          timings (``transcript.agent.delta`` ``start_ms``/``end_ms``, from the reply's
          first audio chunk, i.e. from its ``playback.start`` offset on the agent track),
          the text's words are the first deltas (an interrupted reply's transcript is
          trimmed), and a word is unheard when no audible sample lies in its span within
          what played; without timings, a reply with text and no audible sample. A reply
          that was not played here counts when the session flagged it silent.
    """
    import pandas as pd

    from voicekit.logformat.reader import as_log

    log = as_log(log)
    track = _agent_track(log)
    replies = _replies(log, track)
    turns = _user_turns(user_segments(log), replies, _merges(log))
    owned, _ = _turn_replies(log, turns, replies)
    turn_of = {id(r): turn["turn"] for turn, mine in zip(turns, owned, strict=True) for r in mine}
    rows = [
        {
            "reply_id": r["reply_id"],
            "session": r["session"],
            "turn": turn_of.get(id(r), math.nan),
            "trigger": r["trigger"],
            "started": r["started"],
            "first_audio": r["first_audio"],
            "audible_at": r["a_on"],
            "ended": r["ended"],
            "status": r["status"],
            "played": r["played"] / RATE if r["offset"] is not None else math.nan,
            "text": r["text"],
            "interrupted": _cut(r),
            "silent": r["silent"],
            "unspoken_text": r["unspoken_text"],
        }
        for r in replies
    ]
    return pd.DataFrame(rows, columns=list(REPLY_COLUMNS))


def _any_between(times: list[float], lo: float, hi: float, closed: bool = False) -> bool:
    """Is some time of the sorted ``times`` in ``(lo, hi)`` (``[lo, hi]`` if closed)?"""
    i = (bisect.bisect_left if closed else bisect.bisect_right)(times, lo)
    return i < len(times) and (times[i] <= hi if closed else times[i] < hi)


# -- barge-ins ------------------------------------------------------------------------------
def barge_in_table(log: SessionLog) -> pd.DataFrame:
    """One row a barge-in attempt (user speech while agent audio was playing); ``session``
    as in the turn table."""
    import pandas as pd

    track = _agent_track(log)
    replies = [r for r in _replies(log, track) if r["offset"] is not None]
    segments = user_segments(log)
    started = [e["t"] for e in log.of_type("input.speech.started")]
    starts = _session_starts(log)
    echo: dict[str, Any] = {}
    rows = []
    for s in segments:
        if s["source"] == "script" and s["kind"] not in ("barge_in", "backchannel"):
            continue
        onset = s["start"]
        r = next(
            (r for r in replies if r["offset"] / RATE <= onset < r["end"] / RATE + 0.05),
            None,
        )
        if r is None:
            continue
        stop = r["end"] / RATE
        cut = r["reason"] not in (None, "completed") or r["status"] == "interrupted"
        if "spans" in r:  # a reply found on a recording: cut by the segment the audio says
            cut = cut and r["cut_by"] == onset
        elif cut:  # else by the last speech to start under it
            cut = not any(onset < o["start"] < stop and o["kind"] != "echo" for o in segments)
        if s["source"] == "script":
            # the writer's label, unless the agent yielded to it (a "backchannel" that cut)
            kind = "interruption" if s["kind"] == "barge_in" or cut else "backchannel"
        elif s["kind"] == "echo" or _is_echo(log, s, echo):
            kind = "echo"
        else:  # long enough to mean it, or short and the agent yielded ("stop")
            kind = "interruption" if cut or s["end"] - s["start"] >= 0.6 else "backchannel"
        rows.append(
            {
                "onset": onset,
                "session": bisect.bisect_right(starts, onset),
                "source": s["source"],
                "text": s["text"],
                "reply_id": r["reply_id"],
                "kind": kind,
                "detect_latency": _first(started, onset - 0.05, onset + 3.0) - onset,
                "stop_latency": stop - onset if cut else math.nan,
                "residual": max(0.0, stop - onset),
                "heard_fraction": r["played"] / r["received"] if r["received"] else math.nan,
                "played": r["played"],
                "received": r["received"],
            }
        )
    return pd.DataFrame(rows, columns=list(BARGE_IN_COLUMNS))


def _is_echo(log: SessionLog, seg: dict[str, Any], cache: dict[str, Any]) -> bool:
    """Does this stretch of the user track match the agent's playback at the echo delay?"""
    if "check" not in cache:
        cache["check"] = echo_check(log)
        cache["user"], _ = log.audio("user")
        cache["agent"], _ = log.audio("agent")
    check = cache["check"]
    if not check["echo"]:
        return False
    lag = round(check["delay"] * RATE)
    a, b = round(seg["start"] * RATE), round(seg["end"] * RATE)
    u = cache["user"][a:b].astype(np.float64)
    g = cache["agent"][max(0, a - lag) : max(0, b - lag)].astype(np.float64)
    m = min(len(u), len(g))
    if m < 1200:
        return False
    denom = math.sqrt(float(u[:m] @ u[:m]) * float(g[:m] @ g[:m])) or 1.0
    return float(u[:m] @ g[:m]) / denom >= ECHO_CORRELATION


# -- summary --------------------------------------------------------------------------------
def greeting_latency(log: SessionLog, session: int = 0) -> float:
    """``a_on`` of a session's greeting - receive time of its ``session.ready``.

    Parameters
    ----------
    log : SessionLog
        A session's log.
    session : int
        Which server session of the bundle (0: the first; 1, 2, ...: after each
        ``session.restarted``).

    Returns
    -------
    float
        Seconds; NaN without a ``session.ready`` or an audible greeting in that session.
    """
    starts = _session_starts(log)
    ready = [
        e for e in log.of_type("session.ready") if bisect.bisect_right(starts, e["t"]) == session
    ]
    if not ready:
        return math.nan
    replies = _replies(log, _AgentTrack(log))
    greet = next(
        (r for r in replies if r["session"] == session and r["trigger"] == "greeting"), None
    )
    if greet is None or math.isnan(greet["a_on"]):
        return math.nan
    return float(greet["a_on"] - ready[0]["t"])


def summarize(
    turns: pd.DataFrame,
    barge_ins: pd.DataFrame | None = None,
    replies: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Medians and p90s of the latencies, and counts, of a turn table (one log or many).

    Counts: ``premature``, ``no_response``, ``interrupted`` and ``merged`` turns;
    ``silent_replies`` and ``unspoken_text_replies`` from ``replies`` (a reply table) when
    given, else the turns with such a reply (a greeting's is then not counted).
    """
    out: dict[str, Any] = {"turns": len(turns)}
    for col in ("fto", "endpoint_delay", "server_first_audio", "playout_delay"):
        values: Any = turns[col].dropna() if col in turns else []
        out[f"{col}_median"] = float(np.median(values)) if len(values) else math.nan
        out[f"{col}_p90"] = float(np.percentile(values, 90)) if len(values) else math.nan
    for col in ("premature", "no_response", "interrupted", "merged"):
        out[col] = int(turns[col].sum()) if col in turns else 0
    flagged = replies if replies is not None else turns
    for col in ("silent", "unspoken_text"):
        out[f"{col}_replies"] = int(flagged[col].sum()) if col in flagged else 0
    out["overlap_total"] = float(turns["overlap"].sum()) if "overlap" in turns else 0.0
    if barge_ins is not None:
        out["barge_ins"] = len(barge_ins)
        out["stop_latency_median"] = (
            float(barge_ins["stop_latency"].median()) if len(barge_ins) else math.nan
        )
    return out


# -- echo ------------------------------------------------------------------------------------
ECHO_MAX_DELAY_S = 0.5
ECHO_CORRELATION = 0.5  # normalised correlation above which the user track holds the agent


def echo_check(log: SessionLog | str | os.PathLike[str]) -> dict[str, Any]:
    """Does the user track hold the agent's own playback (speaker into microphone)?

    Cross-correlates ``user.wav`` with ``agent.wav`` (8 kHz envelopes of the whole session)
    for delays of 0-500 ms.

    Returns
    -------
    dict
        ``echo`` (bool: correlation >= 0.5), ``delay`` (s, user lags agent), ``correlation``
        (normalised, 0-1) and ``level_db`` (echo level relative to the agent's playback).
    """
    from voicekit.audio.resample import resample
    from voicekit.logformat.reader import as_log

    log = as_log(log)
    user, _ = log.audio("user")
    agent, _ = log.audio("agent")
    n = min(len(user), len(agent))
    none = {"echo": False, "delay": math.nan, "correlation": 0.0, "level_db": -math.inf}
    if n < 2400 or not np.any(agent[:n]):
        return none
    u = resample(user[:n], RATE, 8000).astype(np.float64)
    a = resample(agent[:n], RATE, 8000).astype(np.float64)
    max_lag = int(ECHO_MAX_DELAY_S * 8000)
    size = 1 << int(np.ceil(np.log2(len(u) + max_lag + 1)))
    xc = np.fft.irfft(np.fft.rfft(u, size) * np.conj(np.fft.rfft(a, size)), size)[: max_lag + 1]
    lag = int(np.argmax(xc))
    shifted_a = a[: len(a) - lag] if lag else a
    shifted_u = u[lag : lag + len(shifted_a)]
    denom = math.sqrt(float(shifted_u @ shifted_u) * float(shifted_a @ shifted_a)) or 1.0
    corr = float(xc[lag] / denom)
    gain = float(xc[lag] / (float(shifted_a @ shifted_a) or 1.0))
    return {
        "echo": corr >= ECHO_CORRELATION,
        "delay": lag / 8000,
        "correlation": corr,
        "level_db": 20 * math.log10(abs(gain)) if gain else -math.inf,
    }
