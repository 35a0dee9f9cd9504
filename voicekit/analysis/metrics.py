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
- **Replies** belong to the last user turn that began before the reply started
  (``reply.started``); replies before the first turn are the greeting. Replies asked for with
  ``reply.create`` (``Session.say``) after a turn ended belong to no turn. A log with no
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

import itertools
import math
import os
from collections.abc import Iterable
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
    "TURN_COLUMNS",
    "agent_replies",
    "barge_in_table",
    "echo_check",
    "summarize",
    "turn_table",
    "user_segments",
]

RATE = 24000
MERGE_GAP_S = 0.3
NO_RESPONSE_S = 5.0
MIN_TURN_SPEECH_S = 0.3

CONFIG_COLUMNS = ("voice", "vad_threshold", "min_silence", "max_silence", "interrupt_response")
TURN_COLUMNS = (
    "turn",
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
)
BARGE_IN_COLUMNS = (
    "onset",
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


class _AgentTrack:
    """The agent's track as played (``log.agent_samples()``: a memory map for a bundle):
    audible spans without loading the audio."""

    def __init__(self, log: SessionLog) -> None:
        self.samples: NDArray[np.int16] = log.agent_samples()

    def audible(self, start: int, stop: int) -> tuple[int, int] | None:
        """First and last audible sample index in ``[start, stop)``, or None."""
        span = self.samples[max(start, 0) : max(stop, 0)]
        loud = np.flatnonzero(np.abs(span.astype(np.int32)) >= AUDIBLE)
        if len(loud) == 0:
            return None
        return start + int(loud[0]), start + int(loud[-1])


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


# -- replies --------------------------------------------------------------------------------
def _replies(log: SessionLog, track: _AgentTrack) -> list[dict[str, Any]]:
    """One dict per reply: receive times, playback span, audible span, status, text."""
    replies: dict[str, dict[str, Any]] = {}

    def rec(rid: str) -> dict[str, Any]:
        return replies.setdefault(
            rid,
            {
                "reply_id": rid,
                "started": math.nan,
                "first_audio": math.nan,
                "received": 0,
                "offset": None,
                "played": 0,
                "dropped": 0,
                "end": None,
                "stop_t": math.nan,
                "reason": None,
                "status": None,
                "text": "",
                "a_on": math.nan,
                "a_off": math.nan,
                "lead_silence": math.nan,
            },
        )

    kinds = (
        "reply.started",
        "reply.audio",
        "playback.start",
        "playback.stop",
        "reply.done",
        "transcript.agent",
    )
    for e in log.of_type(*kinds):
        kind, rid = e["type"], e.get("reply_id")
        if rid is None:
            continue
        r = rec(str(rid))
        if kind == "reply.started" and math.isnan(r["started"]):
            r["started"] = e["t"]
        elif kind == "reply.audio":
            if math.isnan(r["first_audio"]):
                r["first_audio"] = e["t"]
            r["received"] += int(e.get("samples", 0))
        elif kind == "playback.start":
            r["offset"] = int(e["offset"])
        elif kind == "playback.stop":
            r["played"], r["dropped"] = int(e.get("played", 0)), int(e.get("dropped", 0))
            if e.get("end") is not None:  # older logs have no "end"
                r["end"] = int(e["end"])
            r["reason"], r["stop_t"] = e.get("reason"), e["t"]
        elif kind == "reply.done":
            r["status"] = e.get("status")
        elif kind == "transcript.agent":
            r["text"] = str(e.get("text", ""))
    if not replies:  # no reply events: a recording; the agent's track is all there is
        from voicekit.analysis.acoustic import acoustic_replies

        return acoustic_replies(log)
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
        if not math.isnan(r["started"]):
            out.append(r)
    return sorted(out, key=lambda r: r["started"])


def agent_replies(log: SessionLog) -> list[dict[str, Any]]:
    """One dict per reply of a session, in start order (what the timeline draws).

    Parameters
    ----------
    log : SessionLog
        A session's log.

    Returns
    -------
    list of dict
        ``reply_id``, ``started`` / ``first_audio`` (receive times, s), ``offset`` / ``end``
        (playback span, samples), ``received`` / ``played`` / ``dropped`` (samples),
        ``a_on`` / ``a_off`` (audible span in ``agent.wav``, s; NaN if silent),
        ``lead_silence``, ``status``, ``reason``, ``stop_t`` and ``text``.
    """
    return _replies(log, _AgentTrack(log))


# -- the turn table -------------------------------------------------------------------------
def _user_turns(
    segments: list[dict[str, Any]], replies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Group segments into turns; VAD segments during agent playback are barge-ins."""
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
        if not during:
            turns.append({"turn": len(turns), "parts": [s], "source": "vad"})
    return turns


def turn_table(log: SessionLog) -> pd.DataFrame:
    """One row a user turn; columns :data:`TURN_COLUMNS` (times in seconds, session clock)."""
    import pandas as pd

    track = _AgentTrack(log)
    replies = _replies(log, track)
    segments = user_segments(log)
    turns = _user_turns(segments, replies)
    stopped = [e["t"] for e in log.of_type("input.speech.stopped")]
    creates = [e["t"] for e in log.of_type("reply.create", direction="send")]
    epochs = [
        (e["t"], int(e.get("epoch", 0)), e.get("config") or {}) for e in log.of_type("config.epoch")
    ]
    tool_calls = log.of_type("tool.call")
    tool_execs = log.of_type("tool.exec")
    tool_results = log.of_type("tool.result", direction="send")

    rows = []
    for i, turn in enumerate(turns):
        parts = turn["parts"]
        u_on, u_off = parts[0]["start"], max(p["end"] for p in parts)
        next_on = turns[i + 1]["parts"][0]["start"] if i + 1 < len(turns) else math.inf
        epoch, config = 0, dict[str, Any]()
        for t, n, cfg in epochs:
            if t <= u_on + 1e-9:
                epoch, config = n, cfg
        mine = [
            r
            for r in replies
            if u_on <= r["started"] < next_on
            and not any(u_off <= c <= r["started"] for c in creates)
        ]
        audible = [r for r in mine if not math.isnan(r["a_on"])]
        first = audible[0] if audible else (mine[0] if mine else None)
        reply_start = first["started"] if first else next_on
        ends = [t for t in stopped if u_on <= t <= reply_start + 1e-6]
        end_t = ends[-1] if ends else math.nan
        a_on = first["a_on"] if first else math.nan
        if turn["source"] == "script":
            premature = any(u_on < t < u_off for t in stopped)
        else:
            premature = any(0 <= next_on - t <= MERGE_GAP_S for t in stopped if t >= u_off)
        speech_s = sum(p["end"] - p["start"] for p in parts)
        answered = [r for r in mine if r["first_audio"] <= u_off + NO_RESPONSE_S]
        row: dict[str, Any] = {
            "turn": turn["turn"],
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
            "overlap": sum(
                max(0.0, min(p["end"], r["a_off"]) - max(p["start"], r["a_on"]))
                for p in parts
                for r in replies
                if not math.isnan(r["a_on"])
            ),
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
        }
        row.update(_tool_columns(u_off, next_on, mine, tool_calls, tool_execs, tool_results))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TURN_COLUMNS))


Events = list[dict[str, Any]]


def _tool_columns(
    u_off: float, next_on: float, mine: Events, calls: Events, execs: Events, results: Events
) -> dict[str, Any]:
    empty = {
        "tool": None,
        "tool_server": math.nan,
        "tool_exec": math.nan,
        "tool_result_to_audio": math.nan,
        "tool_dead_air": math.nan,
    }
    call = next((c for c in calls if u_off - 1.0 <= c["t"] < next_on), None)
    if call is None:
        return empty
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


# -- barge-ins ------------------------------------------------------------------------------
def barge_in_table(log: SessionLog) -> pd.DataFrame:
    """One row a barge-in attempt (user speech while agent audio was playing)."""
    import pandas as pd

    track = _AgentTrack(log)
    replies = [r for r in _replies(log, track) if r["offset"] is not None]
    segments = user_segments(log)
    started = [e["t"] for e in log.of_type("input.speech.started")]
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
        cut = cut and r.get("cut_by", onset) == onset  # a recording's reply: this segment
        if s["source"] == "script":
            kind = "interruption" if s["kind"] == "barge_in" else "backchannel"
        elif s["kind"] == "echo" or _is_echo(log, s, echo):
            kind = "echo"
        else:
            kind = "interruption" if s["end"] - s["start"] >= 0.6 else "backchannel"
        rows.append(
            {
                "onset": onset,
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
def greeting_latency(log: SessionLog) -> float:
    """``a_on`` of the greeting - receive time of ``session.ready`` (NaN without one)."""
    ready = log.of_type("session.ready")
    if not ready:
        return math.nan
    replies = _replies(log, _AgentTrack(log))
    first_user = min((s["start"] for s in log.of_type("user.utterance")), default=math.inf)
    greet = next((r for r in replies if r["started"] < first_user), None)
    if greet is None or math.isnan(greet["a_on"]):
        return math.nan
    return float(greet["a_on"] - ready[0]["t"])


def summarize(turns: pd.DataFrame, barge_ins: pd.DataFrame | None = None) -> dict[str, Any]:
    """Medians and p90s of the latencies, and counts, of a turn table (one log or many)."""
    out: dict[str, Any] = {"turns": len(turns)}
    for col in ("fto", "endpoint_delay", "server_first_audio", "playout_delay"):
        values: Any = turns[col].dropna() if col in turns else []
        out[f"{col}_median"] = float(np.median(values)) if len(values) else math.nan
        out[f"{col}_p90"] = float(np.percentile(values, 90)) if len(values) else math.nan
    for col in ("premature", "no_response", "interrupted"):
        out[col] = int(turns[col].sum()) if col in turns else 0
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
