"""The hosted service's measured timings, as seeded distributions (pure).

``voicekit.local`` layer, pure: no I/O, no asyncio, no numpy. The stand-in agent's
``profile="hosted"`` draws every delay of its turn-taking, replies, barge-ins and tools from
one :class:`HostedTiming`, so the same seed and the same scripted audio give the same
timings. Each constant carries the live range it reproduces (live observations, Sept 2026;
the sources are the public records named in :data:`LIVE_FIGURES`). The live figures include
the ~170 ms network round trip of the people who measured them; the twin reproduces the
figures as measured, on a loopback socket.

Examples
--------
>>> timing = HostedTiming(seed=0)
>>> 1.91 <= timing.commit_delay("balanced", voiced_s=1.5) <= 1.99
True
>>> [f.key for f in LIVE_FIGURES][:2]
['speech_started', 'commit_min_latency']
"""

from __future__ import annotations

import dataclasses
import random

__all__ = [
    "LIVE_FIGURES",
    "MODES",
    "HostedTiming",
    "LiveFigure",
    "is_short_barge_in",
    "looks_complete",
]

MODES = ("min_latency", "balanced", "max_accuracy")

# -- turn-taking --------------------------------------------------------------------------
# input.speech.started after the speech onset while the agent is silent: live 602, 611 ms
SPEECH_STARTED_S = (0.595, 0.615)
# end-of-turn commit after a short question, by input.transcription_mode (min/max silence
# unset): live min_latency 1.26-1.34 s, balanced 1.91-1.99 s, max_accuracy 3.16-3.27 s
COMMIT_S = {
    "min_latency": (1.26, 1.34),
    "balanced": (1.91, 1.99),
    "max_accuracy": (3.16, 3.27),
}
# ... and after a 7 s statement (balanced): live 0.90-0.93 s. The commit shrinks linearly
# with the voiced duration from SHORT_TURN_S to LONG_TURN_S (every mode by the same factor)
LONG_COMMIT_BALANCED_S = (0.90, 0.93)
SHORT_TURN_S = 1.5  # voiced length of a short question ("what's the weather in Paris")
LONG_TURN_S = 7.0
LONG_FACTOR = sum(LONG_COMMIT_BALANCED_S) / sum(COMMIT_S["balanced"])  # ~0.47

# -- replies ------------------------------------------------------------------------------
# silent lead-in at the start of every reply: live greeting 250 ms; plain replies
# 0.8-1.3 s (up to 2 s); reply after a tool 690 ms; reply after a barge-in 1760 ms
GREETING_LEAD_S = 0.25
PLAIN_LEAD_S = (0.8, 1.3)
PLAIN_LEAD_RARE_S = (1.3, 2.0)
PLAIN_LEAD_RARE_P = 0.05  # how often a plain lead-in is one of the rare long ones
TOOL_ANSWER_LEAD_S = 0.69
BARGE_IN_LEAD_S = 1.76

# -- barge-in -----------------------------------------------------------------------------
# decided (speech.started + transcript.agent{interrupted} + reply.done together) 1.07-2.17 s
# after the user began speaking under the agent's reply
BARGE_IN_S = (1.07, 2.17)
# a barge-in this short (voiced), of at most two words, or of stop words mostly, gets no reply
# of its own (live: "Wait, sorry, stop." got none; the next sentence did). A longer
# continuation ("for two people tonight" after a pause) is answered.
SHORT_BARGE_IN_S = 0.8
SHORT_BARGE_IN_WORDS = 2
STOP_WORDS = frozenset(
    [
        "wait",
        "sorry",
        "stop",
        "hold",
        "on",
        "hang",
        "just",
        "a",
        "sec",
        "second",
        "please",
        "no",
        "ok",
        "okay",
        "pardon",
        "excuse",
        "me",
    ]
)

# -- early-ended turns (Behaviour.merge_early_turns) ----------------------------------------
# live: a 380 ms pause inside a turn committed it 800 ms after the pause began
MERGE_PAUSE_S = (0.3, 0.6)  # a pause this long, then more speech, ends the turn early
EARLY_COMMIT_S = (0.78, 0.82)  # after the pause began
MERGE_MIN_WORDS = 3  # the words before the pause must look complete (and not continue)

# -- tools --------------------------------------------------------------------------------
# tool.call 1.7-2.7 s after the end of speech, inside the silent pre-amble; never before the
# commit (the pre-amble starts there): at least TOOL_CALL_AFTER_COMMIT_S after it
TOOL_CALL_S = (1.7, 2.7)
TOOL_CALL_AFTER_COMMIT_S = 0.05
# the pre-amble's reply.done is held ~2.3 s after tool.call unless tool.result comes first
PREAMBLE_HOLD_S = (2.2, 2.4)
# the answer never starts earlier than this after tool.call (live: a tool.result sent at
# once made the answer audible ~1.0 s sooner than one sent after reply.done, ~2.3 s later)
ANSWER_AFTER_CALL_S = (1.2, 1.4)

# -- session start ------------------------------------------------------------------------
# session.updated 400-500 ms after the first session.update (live, with the round trip),
# session.ready ~17 ms after it
SESSION_UPDATED_S = (0.40, 0.48)
SESSION_READY_GAP_S = (0.015, 0.019)
SESSION_TTL_S = 3595  # session.ready expires_at = now + 3595 s, whatever the token asked


@dataclasses.dataclass(frozen=True)
class LiveFigure:
    """One figure measured on the hosted service.

    Attributes
    ----------
    key : str
        Short name (``"commit_balanced"``).
    what : str
        What was measured, in words.
    low_s, high_s : float
        The measured range in seconds (equal for a single value).
    source : str
        The public record and its section (``"BATON §5"``).
    """

    key: str
    what: str
    low_s: float
    high_s: float
    source: str


LIVE_FIGURES: tuple[LiveFigure, ...] = (
    LiveFigure(
        "speech_started", "input.speech.started after speech onset", 0.602, 0.611, "BATON §4.2"
    ),
    LiveFigure(
        "commit_min_latency", "commit after a short question, min_latency", 1.26, 1.34, "BATON §5"
    ),
    LiveFigure(
        "commit_balanced", "commit after a short question, balanced", 1.91, 1.99, "BATON §5"
    ),
    LiveFigure(
        "commit_max_accuracy", "commit after a short question, max_accuracy", 3.16, 3.27, "BATON §5"
    ),
    LiveFigure(
        "commit_long_balanced",
        "commit after a 7 s statement, balanced",
        0.90,
        0.93,
        "BATON §4.2, §9",
    ),
    LiveFigure(
        "reply_with_commit",
        "reply.started/first reply.audio after the commit",
        0.0,
        0.010,
        "BATON §4.2, §5",
    ),
    LiveFigure("lead_greeting", "silent lead-in of the greeting", 0.25, 0.25, "BATON §4.2"),
    LiveFigure("lead_plain", "silent lead-in of a plain reply", 0.8, 1.3, "BATON §4.2, §5"),
    LiveFigure("lead_tool", "silent lead-in of the answer after a tool", 0.69, 0.69, "BATON §4.2"),
    LiveFigure(
        "lead_barge_in", "silent lead-in of a reply after a barge-in", 1.76, 1.76, "BATON §4.3"
    ),
    LiveFigure(
        "audible_min_latency",
        "first audible reply after end of speech, min_latency",
        2.1,
        2.6,
        "BATON §5",
    ),
    LiveFigure(
        "audible_balanced",
        "first audible reply after end of speech, balanced",
        2.9,
        3.2,
        "BATON §5",
    ),
    LiveFigure(
        "audible_max_accuracy",
        "first audible reply after end of speech, max_accuracy",
        4.2,
        4.5,
        "BATON §5",
    ),
    LiveFigure(
        "time_to_first_audio",
        "commit to first audible (the service's time_to_first_audio_ms)",
        0.807,
        1.208,
        "BATON §5",
    ),
    LiveFigure("barge_in", "barge-in decided after the user began", 1.07, 2.17, "BATON §4.3"),
    LiveFigure(
        "barge_in_together",
        "speech.started, transcript.agent, reply.done spread",
        0.0,
        0.002,
        "BATON §4.3",
    ),
    LiveFigure(
        "early_commit", "commit after a within-turn pause began", 0.80, 0.80, "BATON §4.2 run 1"
    ),
    LiveFigure("tool_call", "tool.call after end of speech", 1.7, 2.7, "BATON §4.2, §9, §10"),
    LiveFigure("preamble_hold", "pre-amble reply.done after tool.call", 2.3, 2.3, "BATON §7"),
    LiveFigure(
        "early_result_gain", "answer audible sooner with an early tool.result", 1.0, 1.0, "BATON §7"
    ),
    LiveFigure(
        "session_ready", "session.ready after the first session.update", 0.40, 0.50, "BATON §1"
    ),
    LiveFigure(
        "ready_after_updated", "session.ready after session.updated", 0.017, 0.017, "BATON §1"
    ),
)


class HostedTiming:
    """Every delay of the hosted profile, drawn from seeded generators, one per kind of
    delay.

    Each kind (lead-ins, commits, barge-in decisions, ...) has its own stream, so the n-th
    lead-in of a session is the same for the same seed however many pauses, resumes or
    barge-ins the machine's timing made the session draw for in between.

    Parameters
    ----------
    seed : int or random.Random
        Seed of the draws (or a generator whose next 64 bits seed them). One instance per
        session.
    """

    def __init__(self, seed: int | random.Random = 0) -> None:
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        self._base = rng.getrandbits(64)
        self._streams: dict[str, random.Random] = {}

    def _stream(self, kind: str) -> random.Random:
        stream = self._streams.get(kind)
        if stream is None:
            stream = self._streams[kind] = random.Random(f"{self._base}:{kind}")
        return stream

    def _uniform(self, bounds: tuple[float, float], kind: str) -> float:
        return self._stream(kind).uniform(*bounds)

    # -- turn-taking ----------------------------------------------------------------------
    def speech_started_delay(self) -> float:
        """Seconds from the speech onset to ``input.speech.started`` (agent silent)."""
        return self._uniform(SPEECH_STARTED_S, "speech_started")

    def commit_delay(self, mode: str | None, voiced_s: float) -> float:
        """Seconds from the acoustic end of a turn to its commit (``input.speech.stopped``)
        when the session leaves ``min_silence``/``max_silence`` unset.

        Parameters
        ----------
        mode : {"min_latency", "balanced", "max_accuracy"} or None
            ``input.transcription_mode`` (None: ``"balanced"``, the service's default).
        voiced_s : float
            Voiced seconds of the turn: up to ``SHORT_TURN_S`` the short-question figure,
            shrinking linearly to the 7 s statement figure at ``LONG_TURN_S`` and beyond.

        Raises
        ------
        ValueError
            For an unknown mode (name one of ``MODES``).
        """
        key = mode or "balanced"
        if key not in COMMIT_S:
            raise ValueError(f"mode ({mode!r}) must be one of {', '.join(MODES)} or None")
        frac = min(1.0, max(0.0, (voiced_s - SHORT_TURN_S) / (LONG_TURN_S - SHORT_TURN_S)))
        factor = 1.0 - frac * (1.0 - LONG_FACTOR)
        return self._uniform(COMMIT_S[key], "commit") * factor

    def barge_in_delay(self) -> float:
        """Seconds from the user's onset under the agent's reply to the barge-in decision."""
        return self._uniform(BARGE_IN_S, "barge_in")

    def early_commit_delay(self) -> float:
        """Seconds from the start of a within-turn pause to its early commit."""
        return self._uniform(EARLY_COMMIT_S, "early_commit")

    # -- replies --------------------------------------------------------------------------
    def lead_in(self, kind: str) -> float:
        """Seconds of silence at the start of a reply.

        Parameters
        ----------
        kind : {"greeting", "plain", "tool", "barge_in"}
            The greeting, a plain reply, the answer after a tool, the reply after a
            barge-in.

        Raises
        ------
        ValueError
            For another kind.
        """
        if kind == "greeting":
            return GREETING_LEAD_S
        if kind == "tool":
            return TOOL_ANSWER_LEAD_S
        if kind == "barge_in":
            return BARGE_IN_LEAD_S
        if kind == "plain":
            rare = self._stream("lead_in").random() < PLAIN_LEAD_RARE_P
            return self._uniform(PLAIN_LEAD_RARE_S if rare else PLAIN_LEAD_S, "lead_in")
        raise ValueError(f"kind ({kind!r}) must be 'greeting', 'plain', 'tool' or 'barge_in'")

    # -- tools ----------------------------------------------------------------------------
    def tool_call_delay(self, commit_delay_s: float) -> float:
        """Seconds from the end of speech to ``tool.call``; never sooner than
        ``TOOL_CALL_AFTER_COMMIT_S`` after the commit (``commit_delay_s`` after the end)."""
        earliest = commit_delay_s + TOOL_CALL_AFTER_COMMIT_S
        return max(self._uniform(TOOL_CALL_S, "tool_call"), earliest)

    def preamble_hold(self) -> float:
        """Seconds from ``tool.call`` to the silent pre-amble's ``reply.done`` (unless the
        ``tool.result`` arrives first)."""
        return self._uniform(PREAMBLE_HOLD_S, "preamble_hold")

    def answer_after_call(self) -> float:
        """The least seconds from ``tool.call`` to the start of the answer reply."""
        return self._uniform(ANSWER_AFTER_CALL_S, "answer_after_call")

    # -- session --------------------------------------------------------------------------
    def session_ready_delays(self) -> tuple[float, float]:
        """Seconds from the first ``session.update`` to ``session.updated``, and from that
        to ``session.ready``."""
        updated = self._uniform(SESSION_UPDATED_S, "session_updated")
        return updated, self._uniform(SESSION_READY_GAP_S, "session_ready_gap")


def is_short_barge_in(text: str, voiced_s: float) -> bool:
    """Whether a barge-in utterance gets no reply of its own: voiced less than
    ``SHORT_BARGE_IN_S``, at most ``SHORT_BARGE_IN_WORDS`` words, or at least half stop
    words ("wait, sorry, stop", also when one of them is misheard)."""
    words = [w.strip(".,!?;:") for w in text.lower().split()]
    words = [w for w in words if w]
    return (
        voiced_s < SHORT_BARGE_IN_S
        or len(words) <= SHORT_BARGE_IN_WORDS
        or 2 * sum(w in STOP_WORDS for w in words) >= len(words)  # "where sorry stop" too
    )


def looks_complete(text: str, continuations: frozenset[str]) -> bool:
    """Whether the words before a pause look like a complete phrase: at least
    ``MERGE_MIN_WORDS`` words, the last not a continuation word ("and", "the", ...)."""
    words = text.lower().split()
    return len(words) >= MERGE_MIN_WORDS and words[-1] not in continuations
