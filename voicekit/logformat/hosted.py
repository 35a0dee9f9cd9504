"""Downloaded hosted sessions read as logs: :class:`HostedSession` and :func:`read_hosted`.

Format layer: standard library, numpy and soundfile (the recording, on first use); the
turn table comes from :mod:`voicekit.analysis` through the accessors, imported when first
asked for, as :class:`SessionLog` does. Placing the user's speech on the recording uses the
analysis' voice activity detection, imported lazily when the events are first read.

A downloaded session is a directory (``vk.hosted.download(session_id, dir)`` writes
``dir/<session_id>/``) holding ``session.json`` (the record of ``GET /v1/sessions/{id}``
without its artifact URLs), ``timeline.json``, ``metadata.json``, ``recording.ogg`` (stereo
Ogg/Opus, left = user, right = agent, time 0 = ``session.ready``) and ``config.json``.
Only ``timeline.json`` is required.

The hosted service keeps no event log, so the events are made from the timeline on the
recording's clock (``t`` = ``*_at_ms`` / 1000), each line marked ``"origin": "timeline"``
(or ``"recording"`` when the recording placed it):

- ``session.ready`` at 0, ``config.epoch`` at 0 and at each ``config_changes`` entry,
  ``session.ended`` at the end (``ended.duration_seconds``, or the recording's length);
- per user turn: ``input.speech.started`` (``user_speech_started_at_ms``),
  ``input.speech.stopped`` and ``transcript.user`` at the commit (``user_speech_ended_at_ms``,
  the end-of-turn commit, not the acoustic end);
- per reply (``turn_id`` is its ``reply_id``): ``reply.create`` (sent) before it when its
  trigger is ``reply_create``; ``reply.started`` and one ``reply.audio`` (no samples: the
  timeline does not say how much was sent) at ``agent_reply_started_at_ms``;
  ``playback.start`` / ``playback.stop`` spanning the reply on the agent channel (from its
  start to its last audible sample before the next reply, or to ``agent_reply_ended_at_ms``
  when it is silent there); ``transcript.agent`` (``agent_text``, ``interrupted``) and
  ``reply.done`` (``status``) at ``agent_reply_ended_at_ms``;
- per tool call: ``tool.call`` at ``dispatched_at_ms``, ``tool.exec`` spanning it and
  ``tool.result`` (sent) at ``result_received_at_ms``;
- ``user.utterance`` lines: the user's speech found on the left channel (Silero VAD, edges
  by level, as for a call recording), grouped into the timeline's user turns: a segment
  belongs to the turn whose window, from ``SPEECH_LEAD_S`` before the server heard the
  speech start (not before the previous commit) to the commit, it overlaps. A turn whose
  speech is not on the channel (no recording, or silence there) gets the timeline's
  ``[started, commit]`` (``"origin": "timeline"``). Speech the server never took as a
  turn is a turn of its own, or a backchannel when the agent was audible.

Oddities of the hosted timeline handled here: a reply labelled ``trigger: "greeting"``
that is not the session's first reply is the answer to a tool (an HTTP tool's answer was
labelled so live); its ``reply.started`` line says ``trigger: "tool_result"`` and
``trigger_fixed: true``.

The tracks are the recording's two channels decoded once, on first use, into memory as
24 kHz int16 (resampled if the file has another rate): 2.9 MB a minute per channel.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

from voicekit.audio.level import AUDIBLE
from voicekit.errors import LogFormatError
from voicekit.logformat.columnar import EventTable
from voicekit.logformat.reader import LogFormatWarning, SessionLog

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FILES", "HostedSession", "is_hosted", "read_hosted"]

RATE = 24000
FILES = ("session.json", "timeline.json", "metadata.json", "recording.ogg", "config.json")
GAP_S = 0.1  # silence that ends a reply's audio (replies start with a longer lead-in)
MAX_TAIL_S = 60  # how far past the next reply's start its audio is followed
SPEECH_LEAD_S = 1.5  # the server hears speech start up to this late (barge-ins: ~0.7 s)
_DOWNLOAD_HINT = "download the session with vk.hosted.download(session_id, dir)"

# the columns added to the turn table, and where each of its metrics comes from
RECORDING_COLUMNS = ("u_on", "u_off", "a_on", "a_off", "fto", "overlap", "lead_silence")
TIMELINE_COLUMNS = (
    "text",
    "reply_text",
    "commit",
    "server_ttfa",
    "server_first_audio",
    "interrupted",
    "tool",
    "tool_server",
    "tool_exec",
    "tool_duration",
    "tool_timed_out",
    "tool_is_error",
    "trigger_fixed",
)


def is_hosted(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a downloaded hosted session (``timeline.json`` and ``session.json``)."""
    p = Path(path)
    return (p / "timeline.json").is_file() and (p / "session.json").is_file()


def _json(path: Path, required: bool) -> Any:
    if not path.exists():
        if required:
            raise LogFormatError(f"missing; {_DOWNLOAD_HINT}", str(path))
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LogFormatError(f"not valid JSON ({exc}); {_DOWNLOAD_HINT} again", str(path)) from None


def _ms(value: Any) -> float:
    """A timeline ``*_ms`` field as seconds (NaN when null)."""
    return float(value) / 1000 if isinstance(value, (int, float)) else math.nan


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class HostedSession(SessionLog):
    """A hosted session, downloaded, read as a log: ``turns``, ``barge_ins``,
    ``summary()`` and ``vk.plot_timeline(h)`` work on it as on a voicekit bundle.

    Made by :func:`read_hosted` (``vk.load_hosted(dir)``), not directly. Its events are
    made from the timeline (see the module notes); its tracks are the recording's channels.

    Attributes
    ----------
    path : Path
        The session's directory.
    meta : dict
        ``session_id``, ``started_at`` (ISO 8601 UTC), ``backend`` (``"hosted"``),
        ``sample_rate`` (24000), ``config`` (the session's config as the service echoed
        it), ``agent_id``, ``status``, ``close_reason``, ``duration_seconds``,
        ``recording`` (its path, or None when not downloaded), ``original_rate`` and
        ``channels`` of the recording.
    timeline : dict
        ``timeline.json`` as downloaded.
    metadata : dict
        ``metadata.json`` (empty when not downloaded).
    """

    def __init__(
        self,
        path: Path,
        timeline: dict[str, Any],
        meta: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        self.path = path
        self.timeline = timeline
        self.meta = meta
        self.metadata = metadata
        self._raw: list[dict[str, Any]] | None = None
        self._frames: dict[str, Any] = {}
        self._tracks: dict[str, NDArray[np.int16]] | None = None

    def __repr__(self) -> str:
        recording = "recording.ogg" if self.meta["recording"] else "no recording"
        return (
            f"<HostedSession {self.session_id} turns={len(self.timeline.get('turns') or [])} "
            f"duration={self.duration:.1f}s {recording}>"
        )

    # -- audio -----------------------------------------------------------------------------
    def _decoded(self) -> dict[str, NDArray[np.int16]]:
        if self._tracks is None:
            empty = np.zeros(0, np.int16)
            self._tracks = {"user": empty, "agent": empty}
            if self.meta["recording"]:
                user, agent = _decode(Path(self.meta["recording"]))
                self._tracks = {"user": user, "agent": agent}
        return self._tracks

    def audio(self, track: str = "user") -> tuple[NDArray[np.int16], int]:
        """One party's channel of the recording, ``"user"`` (left) or ``"agent"`` (right),
        as (24 kHz int16 samples, 24000); empty without a recording."""
        if track not in ("user", "agent"):
            raise LogFormatError(f"track ({track!r}) must be 'user' or 'agent'")
        return self._decoded()[track], RATE

    def track_samples(self, track: str) -> NDArray[np.int16]:
        """One party's channel (24 kHz int16): what the analysis and plots read."""
        return self.audio(track)[0]

    # -- events ----------------------------------------------------------------------------
    @property
    def raw_events(self) -> list[dict[str, Any]]:
        """Events made from the timeline (and the recording's user speech), in time order;
        every line has ``origin`` ``"timeline"`` or ``"recording"``."""
        if self._raw is None:
            self._raw = _events(self)
        return self._raw

    def _read_table(self) -> EventTable:
        return EventTable.from_dicts(self.raw_events)

    @property
    def duration(self) -> float:
        """Seconds from ``session.ready`` to the end (the longer of the service's
        ``duration_seconds`` and the recording)."""
        ended = (self.timeline.get("ended") or {}).get("duration_seconds")
        seconds = float(ended) if isinstance(ended, (int, float)) else 0.0
        if self.meta["recording"]:
            seconds = max(seconds, len(self.track_samples("user")) / RATE)
        return seconds

    # -- tables ----------------------------------------------------------------------------
    @property
    def turns(self) -> pd.DataFrame:
        """The turn table (:func:`voicekit.analysis.turn_table`) with the server's view
        beside the recording's: see :func:`hosted_turns`."""
        table: pd.DataFrame = self.memo("hosted_turns", lambda: _hosted_turns(self))
        return table

    @property
    def barge_ins(self) -> pd.DataFrame:
        """The barge-in table, measured on the recording, with ``interrupted_at`` (the
        server's stop, timeline) and ``server_stop_latency`` (that - the onset)."""
        table: pd.DataFrame = self.memo("hosted_barge_ins", lambda: _hosted_barge_ins(self))
        return table

    def summary(self) -> dict[str, Any]:
        """:meth:`SessionLog.summary` plus ``server_ttfa_median`` / ``_p90`` (timeline),
        ``tool_duration_median`` and ``measured_from`` (``recording`` or ``timeline``)."""
        out = super().summary()
        turns = self.turns
        for col in ("server_ttfa", "tool_duration"):
            values = turns[col].dropna()
            out[f"{col}_median"] = float(np.median(values)) if len(values) else math.nan
            if col == "server_ttfa":
                out[f"{col}_p90"] = float(np.percentile(values, 90)) if len(values) else math.nan
        froms = set(turns["measured_from"])
        out["measured_from"] = froms.pop() if len(froms) == 1 else "mixed" if froms else None
        return out


def _decode(path: Path) -> tuple[NDArray[np.int16], NDArray[np.int16]]:
    import soundfile

    from voicekit.logformat.recording import _read

    try:
        user, agent = _read(path, [0, 1])
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise LogFormatError(
            f"cannot decode the recording ({exc}); {_DOWNLOAD_HINT} again", str(path)
        ) from None
    return user, agent


# -- the events -----------------------------------------------------------------------------
def _fixed_triggers(turns: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(trigger, fixed) per timeline turn: a ``greeting`` after the first reply is the
    answer to a tool (the hosted service labelled an HTTP tool's answer so)."""
    out: list[tuple[str, bool]] = []
    seen_reply = False
    for turn in turns:
        trigger = str(turn.get("trigger") or "")
        fixed = trigger == "greeting" and seen_reply
        out.append(("tool_result" if fixed else trigger, fixed))
        seen_reply = seen_reply or turn.get("turn_id") is not None
    return out


def _reply_spans(h: HostedSession, turns: list[dict[str, Any]], end_s: float) -> dict[int, Any]:
    """Per timeline turn index with a reply: (begin, end, a_on, a_off) in samples, the
    span of the channel that is its audio (a_on None when silent there).

    A reply's audio is looked for from its start (or where the previous reply's audio
    ended, if later) to the next reply's start; audio still sounding there (the codec's
    decay after a cut, or audio sent ahead) belongs to it up to the first ``GAP_S`` of
    silence: every reply begins with a silent lead-in at least that long."""
    agent = h.track_samples("agent")
    gap = round(GAP_S * RATE)
    starts = [
        (i, round(_ms(t.get("agent_reply_started_at_ms")) * RATE))
        for i, t in enumerate(turns)
        if t.get("turn_id") is not None and not math.isnan(_ms(t.get("agent_reply_started_at_ms")))
    ]
    starts.sort(key=lambda x: x[1])
    spans: dict[int, Any] = {}
    free = 0  # where the previous reply's audio ended
    for k, (i, start) in enumerate(starts):
        begin = max(start, free)
        limit = starts[k + 1][1] if k + 1 < len(starts) else round(end_s * RATE)
        loud = begin + np.flatnonzero(np.abs(agent[begin:limit].astype(np.int32)) >= AUDIBLE)
        if len(loud) and loud[-1] >= limit - gap and k + 1 < len(starts):
            ahead = agent[limit : limit + MAX_TAIL_S * RATE].astype(np.int32)
            tail = limit + np.flatnonzero(np.abs(ahead) >= AUDIBLE)
            breaks = np.flatnonzero(np.diff(np.concatenate([loud[-1:], tail])) > gap)
            loud = np.concatenate([loud, tail[: breaks[0]] if len(breaks) else tail])
        ended = _ms(turns[i].get("agent_reply_ended_at_ms"))
        if len(loud):
            a_on, a_off = int(loud[0]), int(loud[-1]) + 1
            spans[i] = (begin, a_off, a_on, a_off)
            free = a_off
        else:
            stop = round(ended * RATE) if not math.isnan(ended) else begin
            spans[i] = (begin, max(begin, stop), None, None)
    return spans


def _user_speech(h: HostedSession) -> list[dict[str, Any]]:
    """Speech segments on the user channel (VAD + level edges, echo marked), as for a
    call recording."""
    if not len(h.track_samples("user")):
        return []
    from voicekit.analysis.metrics import user_segments
    from voicekit.logformat.recording import Recording

    user, agent = h.track_samples("user"), h.track_samples("agent")
    plain = Recording(h.path, user, agent, {"channels": 2, "original_rate": RATE})
    return [s for s in user_segments(plain) if s["kind"] != "echo"]


def _events(h: HostedSession) -> list[dict[str, Any]]:
    tl = h.timeline
    turns: list[dict[str, Any]] = [t for t in tl.get("turns") or [] if isinstance(t, dict)]
    end_s = h.duration
    triggers = _fixed_triggers(turns)
    spans = _reply_spans(h, turns, end_s)
    ev: list[dict[str, Any]] = []

    def add(
        t: float, kind: str, direction: str = "recv", origin: str = "timeline", **f: Any
    ) -> None:
        ev.append({"t": t, "dir": direction, "type": kind, "origin": origin, **f})

    add(0.0, "session.ready", session_id=h.session_id)
    config = h.config
    add(0.0, "config.epoch", "local", epoch=0, config=config)
    for n, change in enumerate(tl.get("config_changes") or [], 1):
        patch = change.get("changes") or {}
        config = _merge(config, patch)
        add(_ms(change.get("at_ms")), "config.epoch", "local", epoch=n, config=config, patch=patch)

    audible = [(s[2] / RATE, s[3] / RATE) for s in spans.values() if s[2] is not None]
    for i, turn in enumerate(turns):
        started, commit = (
            _ms(turn.get("user_speech_started_at_ms")),
            _ms(turn.get("user_speech_ended_at_ms")),
        )
        if not math.isnan(started):
            add(started, "input.speech.started")
        if not math.isnan(commit):
            add(commit, "input.speech.stopped")
            if turn.get("user_transcript") is not None:
                add(commit, "transcript.user", text=str(turn["user_transcript"]))
        if i in spans:
            rid = str(turn["turn_id"])
            start, stop, _, _ = spans[i]
            t0 = _ms(turn.get("agent_reply_started_at_ms"))
            trigger, fixed = triggers[i]
            if trigger == "reply_create":
                add(t0, "reply.create", "send", instructions=turn.get("requested_instructions"))
            add(
                t0,
                "reply.started",
                reply_id=rid,
                item_id=turn.get("item_id"),
                trigger=trigger,
                trigger_fixed=fixed,
                trigger_label=turn.get("trigger"),
            )
            add(t0, "reply.audio", reply_id=rid, samples=0)
            origin = "recording" if spans[i][2] is not None else "timeline"
            add(t0, "playback.start", "local", origin, reply_id=rid, offset=start)
            status = str(turn.get("status") or "completed")
            add(
                stop / RATE,
                "playback.stop",
                "local",
                origin,
                reply_id=rid,
                played=stop - start,
                dropped=0,
                end=stop,
                reason="completed" if status == "completed" else status,
            )
            ended = _ms(turn.get("agent_reply_ended_at_ms"))
            ended = ended if not math.isnan(ended) else stop / RATE
            cut = status in ("interrupted", "cancelled")
            add(
                ended,
                "transcript.agent",
                reply_id=rid,
                item_id=turn.get("item_id"),
                text=str(turn.get("agent_text") or ""),
                interrupted=cut,
            )
            add(ended, "reply.done", reply_id=rid, status=status)
        for call in turn.get("tool_calls") or []:
            sent, got = _ms(call.get("dispatched_at_ms")), _ms(call.get("result_received_at_ms"))
            cid = call.get("call_id")
            add(
                sent,
                "tool.call",
                call_id=cid,
                name=call.get("name"),
                arguments=call.get("arguments"),
            )
            if not math.isnan(got):
                add(
                    got,
                    "tool.exec",
                    "local",
                    call_id=cid,
                    name=call.get("name"),
                    start=sent,
                    end=got,
                    ok=not call.get("is_error"),
                )
                add(
                    got,
                    "tool.result",
                    "send",
                    call_id=cid,
                    result=call.get("result"),
                    is_error=bool(call.get("is_error")),
                )
    ev += _utterances(h, turns, audible)
    add(
        end_s,
        "session.ended",
        session_duration_seconds=(tl.get("ended") or {}).get("duration_seconds"),
    )
    ev = [e for e in ev if not math.isnan(e["t"])]
    ev.sort(key=lambda e: e["t"])  # stable: the order above within one moment
    return ev


def _utterances(
    h: HostedSession, turns: list[dict[str, Any]], audible: list[tuple[float, float]]
) -> list[dict[str, Any]]:
    """``user.utterance`` lines: the channel's speech grouped into the timeline's turns."""
    segments = sorted(_user_speech(h), key=lambda s: s["start"])
    users = [
        t
        for t in turns
        if not math.isnan(_ms(t.get("user_speech_started_at_ms")))
        and not math.isnan(_ms(t.get("user_speech_ended_at_ms")))
    ]
    taken: set[int] = set()
    groups: list[tuple[float, list[dict[str, Any]], dict[str, Any] | None]] = []
    previous_commit = -math.inf
    for turn in users:
        started = _ms(turn["user_speech_started_at_ms"])
        commit = _ms(turn["user_speech_ended_at_ms"])
        lo = max(previous_commit, started - SPEECH_LEAD_S)
        mine = [
            k
            for k, s in enumerate(segments)
            if k not in taken and s["end"] > lo and s["start"] < commit
        ]
        taken.update(mine)
        parts = [
            {"start": segments[k]["start"], "end": segments[k]["end"], "origin": "recording"}
            for k in mine
        ] or [{"start": started, "end": commit, "origin": "timeline"}]
        groups.append((parts[0]["start"], parts, turn))
        previous_commit = commit
    for k, s in enumerate(segments):  # speech the server never took as a turn
        if k not in taken:
            groups.append(
                (s["start"], [{"start": s["start"], "end": s["end"], "origin": "recording"}], None)
            )
    groups.sort(key=lambda g: g[0])
    out: list[dict[str, Any]] = []
    for number, (onset, parts, owner) in enumerate(groups):
        during = any(a <= onset < b for a, b in audible)
        if owner is None:
            kind = "backchannel" if during else "turn"
        else:
            kind = "barge_in" if during else "turn"
        text = str((owner or {}).get("user_transcript") or "")
        for j, p in enumerate(parts):
            out.append(
                {
                    "t": p["end"],
                    "dir": "local",
                    "type": "user.utterance",
                    "origin": p["origin"],
                    "start": p["start"],
                    "end": p["end"],
                    "text": text if j == 0 else "",
                    "kind": kind,
                    "turn": number,
                    "turn_id": (owner or {}).get("turn_id"),
                    "commit": _ms((owner or {}).get("user_speech_ended_at_ms")),
                }
            )
    return out


# -- the tables -----------------------------------------------------------------------------
def _hosted_turns(h: HostedSession) -> pd.DataFrame:
    import pandas as pd

    from voicekit.analysis.metrics import turn_table

    df = turn_table(h).copy()
    tl_turns = [t for t in h.timeline.get("turns") or [] if isinstance(t, dict)]
    by_reply = {str(t["turn_id"]): t for t in tl_turns if t.get("turn_id") is not None}
    utter: dict[int, list[dict[str, Any]]] = {}
    for u in h.of_type("user.utterance"):
        utter.setdefault(int(u["turn"]), []).append(u)
    replies = h.of_type("reply.started")
    stops = {e["reply_id"]: e for e in h.of_type("playback.stop")}
    starts_u = [float(r) for r in df["u_on"]]

    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "commit",
            "server_ttfa",
            "tool_duration",
            "tool_timed_out",
            "tool_is_error",
            "unspoken_text",
            "trigger_fixed",
            "measured_from",
        )
    }
    sources: list[str] = []
    a_ons: list[float] = []
    a_offs: list[float] = []
    ftos: list[float] = []
    endpoints: list[float] = []
    rows = cast("list[dict[str, Any]]", df.to_dict("records"))
    for i, row in enumerate(rows):
        parts = utter.get(int(row["turn"]), [])
        user_from = (
            "recording" if parts and all(p["origin"] == "recording" for p in parts) else "timeline"
        )
        user_turn: dict[str, Any] | None = next(
            (by_reply[str(p["turn_id"])] for p in parts if str(p.get("turn_id")) in by_reply),
            None,
        )
        if user_turn is None:
            # a user turn that got no reply: find it by its commit
            commit_t = next(
                (p["commit"] for p in parts if not math.isnan(p.get("commit", math.nan))), math.nan
            )
            user_turn = next(
                (t for t in tl_turns if _ms(t.get("user_speech_ended_at_ms")) == commit_t), None
            )
        commit = _ms((user_turn or {}).get("user_speech_ended_at_ms"))
        ttfa = _ms((user_turn or {}).get("time_to_first_audio_ms"))
        next_on = starts_u[i + 1] if i + 1 < len(starts_u) else math.inf
        mine = [
            r for r in replies if row["u_on"] <= r["t"] < next_on and r["trigger"] != "reply_create"
        ]
        mine_tl = [by_reply[r["reply_id"]] for r in mine if r["reply_id"] in by_reply]
        calls = [c for t in mine_tl for c in t.get("tool_calls") or []]
        first_call = calls[0] if calls else None
        a_on, a_off = float(row["a_on"]), float(row["a_off"])
        agent_from = "recording"
        if math.isnan(a_on):
            agent_from = "timeline"
            if not math.isnan(commit) and not math.isnan(ttfa):
                a_on = commit + ttfa  # the service's first audible sample
            ends = [_ms(t.get("agent_reply_ended_at_ms")) for t in mine_tl]
            a_off = max((e for e in ends if not math.isnan(e)), default=math.nan)
        u_off = float(row["u_off"])
        unspoken = False
        for r in mine:
            t = by_reply.get(r["reply_id"], {})
            stop = stops.get(r["reply_id"], {})
            silent = stop.get("origin") == "timeline" and h.meta["recording"] is not None
            cut = str(t.get("status")) in ("interrupted", "cancelled")
            unspoken = unspoken or (bool(t.get("agent_text")) and (silent or cut))
        if "unspoken_text" in df.columns:  # the generic table's own flag, where it has one
            unspoken = unspoken or bool(row["unspoken_text"])
        sources.append(user_from)
        a_ons.append(a_on)
        a_offs.append(a_off)
        ftos.append(a_on - u_off)
        endpoints.append(commit - u_off if user_from == "recording" else math.nan)
        cols["commit"].append(commit)
        cols["server_ttfa"].append(ttfa)
        cols["tool_duration"].append(_ms(first_call.get("duration_ms")) if first_call else math.nan)
        cols["tool_timed_out"].append(bool(first_call.get("timed_out")) if first_call else None)
        cols["tool_is_error"].append(bool(first_call.get("is_error")) if first_call else None)
        cols["unspoken_text"].append(unspoken)
        cols["trigger_fixed"].append(any(r.get("trigger_fixed") for r in mine))
        froms = {user_from, agent_from}
        cols["measured_from"].append(froms.pop() if len(froms) == 1 else "mixed")
    df["source"] = pd.Series(sources, index=df.index, dtype=object)
    df["a_on"], df["a_off"], df["fto"] = a_ons, a_offs, ftos
    df["endpoint_delay"] = endpoints
    df["playout_delay"] = math.nan  # the recording is what the service sent: no playout
    for name, values in cols.items():
        df[name] = pd.Series(
            values,
            index=df.index,
            dtype=float if name in ("commit", "server_ttfa", "tool_duration") else object,
        )
    df.attrs["measured_from"] = {
        **{c: "recording" for c in RECORDING_COLUMNS},
        "endpoint_delay": "timeline commit - recording u_off",
        **{c: "timeline" for c in TIMELINE_COLUMNS},
        "unspoken_text": "timeline text, recording silence",
    }
    return df


def _hosted_barge_ins(h: HostedSession) -> pd.DataFrame:
    import pandas as pd

    from voicekit.analysis.metrics import barge_in_table

    df = barge_in_table(h).copy()
    by_reply = {
        str(t["turn_id"]): t
        for t in h.timeline.get("turns") or []
        if isinstance(t, dict) and t.get("turn_id") is not None
    }
    origins = {round(u["start"], 6): u["origin"] for u in h.of_type("user.utterance")}
    cut = [_ms(by_reply.get(str(r), {}).get("interrupted_at_ms")) for r in df["reply_id"]]
    df["source"] = pd.Series(
        [origins.get(round(float(t), 6), "timeline") for t in df["onset"]],
        index=df.index,
        dtype=object,
    )
    df["interrupted_at"] = cut
    df["server_stop_latency"] = df["interrupted_at"] - df["onset"]
    return df


# -- reading --------------------------------------------------------------------------------
def _session_dir(path: Path) -> Path:
    if not path.is_dir():
        what = "no such directory" if not path.exists() else "not a directory"
        raise LogFormatError(
            f"{what}; pass the directory of a downloaded hosted session (it holds "
            f"timeline.json); {_DOWNLOAD_HINT}",
            str(path),
        )
    if (path / "timeline.json").exists() or (path / "session.json").exists():
        return path
    inside = sorted(p.parent for p in path.glob("*/timeline.json"))
    if len(inside) == 1:
        return inside[0]  # dir/ of vk.hosted.download(session_id, dir)
    if len(inside) > 1:
        raise LogFormatError(
            f"holds {len(inside)} downloaded sessions; pass one of them "
            f"({', '.join(p.name for p in inside[:3])}, ...) or read them all with "
            "vk.load_logs(dir)",
            str(path),
        )
    if (path / "meta.json").exists():
        raise LogFormatError(
            "is a voicekit log bundle, not a hosted session: use vk.load_log", str(path)
        )
    raise LogFormatError(f"missing; {_DOWNLOAD_HINT}", str(path / "timeline.json"))


def _iso(unix_ms: Any) -> str | None:
    if not isinstance(unix_ms, (int, float)):
        return None
    moment = datetime.datetime.fromtimestamp(unix_ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_hosted(path: str | os.PathLike[str]) -> HostedSession:
    """Read a downloaded hosted session (see :class:`HostedSession`).

    Parameters
    ----------
    path : str or path
        The session's directory (``dir/<session_id>`` of ``vk.hosted.download``), or
        ``dir`` itself when it holds one session.

    Returns
    -------
    HostedSession

    Raises
    ------
    LogFormatError
        If ``timeline.json`` is missing or a file is not valid JSON, or the recording is
        not a stereo file (left = user, right = agent).

    Warns
    -----
    LogFormatWarning
        If ``recording.ogg`` is missing: the metrics come from the timeline alone
        (``measured_from == "timeline"``).
    """
    directory = _session_dir(Path(path))
    timeline = _json(directory / "timeline.json", required=True)
    if not isinstance(timeline, dict) or not isinstance(timeline.get("turns"), list):
        raise LogFormatError(
            f"must hold the hosted timeline, an object with a 'turns' list; {_DOWNLOAD_HINT} again",
            str(directory / "timeline.json"),
        )
    record = _json(directory / "session.json", required=False) or {}
    metadata = _json(directory / "metadata.json", required=False) or {}
    config = record.get("config")
    if not isinstance(config, dict):
        config = _json(directory / "config.json", required=False)
    recording: Path | None = directory / "recording.ogg"
    info: Any = None
    assert recording is not None
    if recording.exists():
        import soundfile

        try:
            info = soundfile.info(str(recording))
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise LogFormatError(
                f"not an audio file libsndfile can read ({exc}); {_DOWNLOAD_HINT} again",
                str(recording),
            ) from None
        if info.channels != 2:
            raise LogFormatError(
                f"has {info.channels} channel{'s' if info.channels != 1 else ''}; a hosted "
                "recording is stereo, the user on the left and the agent on the right, and a "
                "mix of both cannot be split into turns; "
                f"{_DOWNLOAD_HINT} again, or read a mixed file with vk.load_recording",
                str(recording),
            )
    else:
        warnings.warn(
            f"{recording}: missing; the metrics come from the timeline alone "
            "(measured_from='timeline'); to measure them on the audio, "
            f"{_DOWNLOAD_HINT}",
            LogFormatWarning,
            stacklevel=2,
        )
        recording = None
    session_id = record.get("id") or timeline.get("session_id") or directory.name
    meta: dict[str, Any] = {
        "format": "hosted",
        "session_id": str(session_id),
        "started_at": metadata.get("started_at")
        or record.get("created_at")
        or _iso(timeline.get("started_at_unix_ms")),
        "backend": "hosted",
        "sample_rate": RATE,
        "config": config if isinstance(config, dict) else {},
        "agent_id": record.get("agent_id"),
        "status": record.get("status"),
        "close_reason": record.get("public_close_reason"),
        "duration_seconds": record.get("duration_seconds"),
        "recording": str(recording) if recording else None,
        "original_rate": info.samplerate if info is not None else None,
        "channels": info.channels if info is not None else None,
    }
    return HostedSession(directory, timeline, meta, metadata)
