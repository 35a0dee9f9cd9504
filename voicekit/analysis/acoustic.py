"""Turn-taking from audio alone: the agent's replies found on its own track, by level.

Analysis layer, numpy only (and :mod:`voicekit.analysis.metrics` for the user's speech and
the echo check). Used by the turn table when a log has no reply events, e.g. a call
recording (:func:`voicekit.load_recording`), where all there is of the agent is its channel.

The choices, made for telephony (line noise, hum, echo, 8 kHz codecs):

- **Level**: 20 ms Hann-windowed frames every 10 ms; the energy in the telephone band
  (200-3400 Hz, :data:`BAND_HZ`) in dBFS, so mains hum and hiss outside the band do not count.
- **Threshold** relative to the channel itself: the highest of the noise floor (the 10th
  percentile of frame levels) + 12 dB, the speech level (99th percentile) - 45 dB, and
  -65 dBFS. On a digitally silent channel the last two rule; on a noisy line the first.
- **Speech**: runs of frames above the threshold, grown over the frames next to them
  within 6 dB below it (hysteresis: the soft start and end of a word), less than 250 ms
  apart are one span (the gaps inside words and phrases); a span shorter than 50 ms is a
  click, not speech.
- **Replies**: spans joined over pauses shorter than :data:`REPLY_GAP_S` (1.0 s, longer
  than the pause between sentences) unless the user spoke during the pause: the user took
  the floor. A reply's ``a_on`` / ``a_off`` are its first and last speech frames (10 ms).
- **Interrupted**: a user segment that began while the reply was audible, lasted at least
  0.6 s (an interruption, not a backchannel; the barge-in table's rule) and is not the
  agent's echo, and the reply stopped no later than 2 s after the user did
  (:data:`STOP_AFTER_USER_S`: the hosted service, deciding 1.1-2.2 s after the onset, stops
  well after a short "stop please" ended) and within :data:`MAX_STOP_S` of the user's onset.
  The reply is marked ``reason="interrupted"`` and ``cut_by`` holds that onset: the
  segment becomes a user turn (not just a barge-in), and ``stop_latency`` is measured
  from it.
- **User speech** (:func:`refine_segments`, for every log without a scripted user): Silero
  VAD says where speech is, but its 32 ms frames lag it (offsets 40-80 ms late), and it
  hears the agent's echo as speech. Each VAD segment is cut to the level-detected runs of
  the user's own speech inside it (joined over 300 ms, the VAD's merge gap).
- **Echo** (:func:`echo_coupling`): where the agent speaks, the user track's level follows
  the agent's at the echo delay; the delay (0-500 ms) is where the levels correlate best
  (standing 0.15 above the median over all delays), the gain their median difference. A
  user frame is the user's own speech when at least 6 dB above the echo so predicted (a
  run of such frames then grows over neighbours at least 2 dB above it: the soft start
  of a word in double talk); a segment with none is ``kind="echo"``: a barge-in of kind
  ``echo``, never a turn. Working on levels, a hybrid's filtering and a codec's
  distortion do not hide the echo; the user's quietest syllables in double talk are lost.
- What only the protocol knows stays unknown: ``received`` is 0 (so ``heard_fraction`` is
  NaN), ``lead_silence`` is NaN; ``first_audio`` is ``a_on`` (a recording hears audio when
  it arrives), which leaves ``server_first_audio`` and ``playout_delay`` NaN.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from voicekit.logformat import SessionLog

__all__ = [
    "BAND_HZ",
    "MAX_STOP_S",
    "REPLY_GAP_S",
    "STOP_AFTER_USER_S",
    "acoustic_replies",
    "echo_coupling",
    "frame_levels",
    "refine_segments",
    "speech_spans",
    "speech_threshold",
]

RATE = 24000
HOP_S = 0.01
WINDOW_S = 0.02
BAND_HZ = (200.0, 3400.0)
FLOOR_PERCENTILE = 10
FLOOR_MARGIN_DB = 12.0
SPEECH_PERCENTILE = 99
SPEECH_RANGE_DB = 45.0
MIN_DBFS = -65.0
MIN_RUN_S = 0.05
JOIN_S = 0.25
REPLY_GAP_S = 1.0
INTERRUPTION_S = 0.6  # as long as a barge-in must be to be an interruption (metrics)
STOP_AFTER_USER_S = 2.0  # >= MAX_STOP_S - INTERRUPTION_S: a 0.6-s "stop" cut a reply at 2.5 s
START_SNAP_S = 0.064
JOIN_USER_S = 0.3  # the VAD's merge gap (metrics.MERGE_GAP_S)
MIN_SEGMENT_S = 0.1  # the VAD's shortest segment
ECHO_MAX_DELAY_S = 0.5
ECHO_PEAK = 0.15
ECHO_MARGIN_DB = 6.0
ECHO_EXTEND_DB = 2.0
HYSTERESIS_DB = 6.0
MAX_STOP_S = 2.5  # the hosted service stops 1.1-2.2 s after a barge-in's onset


def frame_levels(samples: NDArray[Any], rate: int = RATE) -> NDArray[np.float64]:
    """Band energy (dBFS) of 20 ms frames every 10 ms; frame ``i`` is centred on
    ``(i + 1) * 10 ms``."""
    hop, win = round(HOP_S * rate), round(WINDOW_S * rate)
    x = np.asarray(samples)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    n = (len(x) - win) // hop + 1
    if n <= 0:
        return np.zeros(0)
    freqs = np.fft.rfftfreq(win, 1 / rate)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    window = np.hanning(win).astype(np.float32)
    # a full-scale sine in the band reads about -3 dBFS: the Hann window's power gain
    # (sum of squares) and the one-sided spectrum's factor of 2 are divided out
    scale = 2.0 / (float(window @ window) * win)
    out = np.empty(n)
    step = 4096  # frames at a time: a long call never needs its whole spectrogram
    for a in range(0, n, step):
        b = min(n, a + step)
        idx = (np.arange(a, b) * hop)[:, None] + np.arange(win)[None, :]
        spec = np.fft.rfft(x[idx] * window, axis=1)
        power = (np.abs(spec[:, band]) ** 2).sum(axis=1) * scale
        out[a:b] = 10 * np.log10(power + 1e-14)
    return out


def speech_threshold(levels: NDArray[np.float64]) -> float:
    """The level (dBFS) above which a frame of this channel is speech (module docstring)."""
    if len(levels) == 0:
        return MIN_DBFS
    floor = float(np.percentile(levels, FLOOR_PERCENTILE))
    speech = float(np.percentile(levels, SPEECH_PERCENTILE))
    return max(floor + FLOOR_MARGIN_DB, speech - SPEECH_RANGE_DB, MIN_DBFS)


def speech_spans(samples: NDArray[Any], rate: int = RATE) -> list[tuple[float, float]]:
    """Where a channel holds speech, by level relative to its own noise floor.

    Parameters
    ----------
    samples : ndarray
        One channel, int16 or float in [-1, 1].
    rate : int
        Its sample rate in Hz.

    Returns
    -------
    list of (float, float)
        ``(start, end)`` in seconds, in order, at least 50 ms long and at least 250 ms apart.
    """
    levels = frame_levels(samples, rate)
    threshold = speech_threshold(levels)
    active, near = levels >= threshold, levels >= threshold - HYSTERESIS_DB
    runs = _runs(active, round(JOIN_S / HOP_S), round(MIN_RUN_S / HOP_S), near)
    # frame i is centred on (i + 1) * HOP_S and stands for the hop around its centre
    return [((a + 0.5) * HOP_S, (b + 0.5) * HOP_S) for a, b in runs]


def _runs(
    mask: NDArray[np.bool_], join: int, min_frames: int, grow: NDArray[np.bool_] | None = None
) -> list[tuple[int, int]]:
    """Runs of True frames, grown at both ends over the True frames of ``grow`` next to
    them, joined over gaps under ``join``, kept when ``min_frames`` long (so a click alone
    is dropped, a fragment of a word cut off after speech is kept)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    spans: list[list[int]] = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if grow is not None:
            while a > 0 and grow[a - 1]:
                a -= 1
            while b < len(grow) and grow[b]:
                b += 1
        if spans and a - spans[-1][1] < join:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    return [(a, b) for a, b in spans if b - a >= min_frames]


def echo_coupling(
    user_levels: NDArray[np.float64], agent_levels: NDArray[np.float64]
) -> tuple[int, float] | None:
    """How the agent's echo reaches the user's track: (delay in frames, gain in dB), or None.

    Over the frames where the agent speaks, the user's level follows the agent's at the
    echo's delay: the delay (0-500 ms) is where the two levels correlate best, the gain the
    median level difference there (over the agent's louder half, where the echo is above
    the line's noise). No echo unless that correlation stands :data:`ECHO_PEAK` above its
    median over all delays (turn-taking alone correlates the levels at every delay alike).
    """
    n = min(len(user_levels), len(agent_levels))
    if n == 0:
        return None
    talking = np.flatnonzero(agent_levels[:n] >= speech_threshold(agent_levels))
    scores: list[float] = []
    for d in range(round(ECHO_MAX_DELAY_S / HOP_S) + 1):
        idx = talking[talking + d < n]
        a, u = agent_levels[idx], user_levels[idx + d]
        ok = len(idx) >= 50 and float(np.std(a)) > 0 and float(np.std(u)) > 0
        scores.append(float(np.corrcoef(a, u)[0, 1]) if ok else 0.0)
    d = int(np.argmax(scores))
    if scores[d] - float(np.median(scores)) < ECHO_PEAK:
        return None
    idx = talking[talking + d < n]
    loud = idx[agent_levels[idx] >= np.median(agent_levels[idx])]  # echo above the floor
    return d, float(np.median(user_levels[loud + d] - agent_levels[loud]))


def refine_segments(segments: list[dict[str, Any]], log: SessionLog) -> list[dict[str, Any]]:
    """VAD segments of the user's track, their edges set by level and the agent's echo
    marked.

    Each segment becomes the level-detected runs of the user's own speech inside it (the
    user's level above its threshold and, when the track holds the agent's echo, at least
    :data:`ECHO_MARGIN_DB` above the echo predicted from the agent's level), its start
    allowed up to 64 ms before the VAD's. A segment with no own speech where there is
    echo is kept with ``kind="echo"``; one with no level-detected speech at all is kept as
    it is.

    Parameters
    ----------
    segments : list of dict
        ``start`` / ``end`` in seconds, from :func:`voicekit.analysis.metrics.user_segments`.
    log : SessionLog
        Its user track (``log.audio("user")``) and agent track (``log.agent_samples()``).
    """
    if not segments:
        return segments
    user, rate = log.audio("user")
    levels = frame_levels(user, rate)
    threshold = speech_threshold(levels)
    own, near = levels >= threshold, levels >= threshold - HYSTERESIS_DB
    agent = frame_levels(log.agent_samples())
    coupling = echo_coupling(levels, agent)
    if coupling is not None:
        delay, gain = coupling
        echo = np.full(len(levels), -np.inf)
        m = min(len(levels) - delay, len(agent))
        echo[delay : delay + m] = agent[:m] + gain
        own &= levels >= echo + ECHO_MARGIN_DB
        near &= levels >= echo + ECHO_EXTEND_DB
    runs_f = _runs(own, round(JOIN_USER_S / HOP_S), round(MIN_RUN_S / HOP_S), near)
    runs = [((a + 0.5) * HOP_S, (b + 0.5) * HOP_S) for a, b in runs_f]
    out: list[dict[str, Any]] = []
    for s in segments:
        pieces = [
            (max(a, s["start"] - START_SNAP_S), min(b, s["end"]))
            for a, b in runs
            if a < s["end"] and b > s["start"] - START_SNAP_S
        ]
        pieces = [(a, b) for a, b in pieces if b - a >= MIN_SEGMENT_S]
        if pieces:
            out += [{**s, "start": a, "end": b} for a, b in pieces]
        elif coupling is not None:
            out.append({**s, "kind": "echo"})
        else:
            out.append(s)
    return out


def acoustic_replies(log: SessionLog) -> list[dict[str, Any]]:
    """The agent's replies found on its track alone, as the turn table's reply records.

    Parameters
    ----------
    log : SessionLog
        A log without reply events (a call recording); its agent track is read through
        ``log.agent_samples()``, the user's speech through :func:`user_segments`.

    Returns
    -------
    list of dict
        The fields of :func:`voicekit.analysis.metrics.agent_replies`, plus ``cut_by``
        (onset of the user segment that interrupted the reply, or None) and ``spans``
        (the speech spans inside the reply, s).
    """
    replies: list[dict[str, Any]] = log.memo("acoustic_replies", lambda: _find_replies(log))
    return replies


def _find_replies(log: SessionLog) -> list[dict[str, Any]]:
    from voicekit.analysis.metrics import _is_echo, user_segments

    spans = speech_spans(log.agent_samples())
    if not spans:
        return []
    echo: dict[str, Any] = {}
    users = [s for s in user_segments(log) if s["kind"] != "echo" and not _is_echo(log, s, echo)]
    groups: list[list[tuple[float, float]]] = []
    for span in spans:
        if groups:
            end = groups[-1][-1][1]
            took_floor = any(s["start"] < span[0] and s["end"] > end for s in users)
            if span[0] - end < REPLY_GAP_S and not took_floor:
                groups[-1].append(span)
                continue
        groups.append([span])
    return [_record(i, group, users) for i, group in enumerate(groups)]


def _record(
    i: int, group: list[tuple[float, float]], users: list[dict[str, Any]]
) -> dict[str, Any]:
    a_on, a_off = group[0][0], group[-1][1]
    cut = next(
        (
            s["start"]
            for s in users
            if a_on <= s["start"] < a_off
            and s["end"] - s["start"] >= INTERRUPTION_S
            and a_off <= s["end"] + STOP_AFTER_USER_S
            and a_off - s["start"] <= MAX_STOP_S
        ),
        None,
    )
    offset, end = round(a_on * RATE), round(a_off * RATE)
    return {
        "reply_id": f"audio-{i}",
        "started": a_on,
        "first_audio": a_on,
        "received": 0,
        "offset": offset,
        "played": end - offset,
        "dropped": 0,
        "end": end,
        "stop_t": a_off,
        "reason": "completed" if cut is None else "interrupted",
        "status": None,
        "text": "",
        "a_on": a_on,
        "a_off": a_off,
        "lead_silence": math.nan,
        "cut_by": cut,
        "spans": group,
    }
