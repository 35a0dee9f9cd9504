"""End-of-turn detection from VAD probabilities and the partial transcript (pure).

Stand-in agent (``voicekit.local``): the agent's turn-taking policy, not an engine; it
reads the protocol's turn-detection defaults (``voicekit.protocol.config``). No I/O, no numpy.

Rules (protocol reference §9, as the stand-in agent implements them):

- **onset**: :data:`ONSET_FRAMES` consecutive frames at or above ``vad_threshold``
  (64 ms at 32 ms frames) start speech; the onset is dated to the first of them;
- **end of turn**: after ``min_silence`` ms of trailing silence the turn ends, unless the
  words so far end in a continuation ("and", "but", "so", "because", "um", "the", "to",
  "a", ...), in which case it waits up to ``max_silence`` ms; ``max_silence`` always ends it;
- a frame counts as silence below ``vad_threshold - HYSTERESIS`` once speech has started,
  so a probability wobbling around the threshold does not chop words;
- **adaptive** (the hosted profile, when the session leaves both silences unset): an
  ``end_silence_ms(voiced_ms)`` callable gives each pause its own trailing silence, after
  which the turn ends whatever the last word (the hosted service's measured commit delays,
  :mod:`voicekit.local.timing`); ``"end"`` comes up to one frame early, ``end_rest_ms``
  before the end itself, so the caller can time the end to the millisecond;
- **pause reports** (``report_pauses``, the hosted profile): ``"quiet"`` once per pause,
  ``QUIET_LEAD_MS`` before the end would fire (the agent finishes recognition then, so the
  final transcript is ready at the commit), and ``"resume"`` when speech comes back after a
  pause of at least ``RESUME_REPORT_MS`` (or after a ``"quiet"``), with its length in
  ``pause_ms`` (which also holds the trailing silence after an ``"end"``). Without them
  (the fast profile) the detector behaves exactly as before.

Defaults (the §9 conflict): ``min_silence`` 600 ms, ``max_silence`` 1500 ms, ``vad_threshold``
0.5 — the ivy-era documented values that the quickstart people copy and the README uses.
The SDK's 1000/3000 ms make every turn take a second longer, which hides the effect of the
sliders in a tuning session. These defaults are the fast profile's; the hosted profile,
when the session sets neither silence, ends turns adaptively instead, as the Sept-2026
service was measured doing (``end_silence_ms``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from voicekit.protocol.config import (
    DEFAULT_MAX_SILENCE_MS,
    DEFAULT_MIN_SILENCE_MS,
    DEFAULT_VAD_THRESHOLD,
)

__all__ = [
    "BACKCHANNELS",
    "CONTINUATIONS",
    "DEFAULT_MAX_SILENCE_MS",
    "DEFAULT_MIN_SILENCE_MS",
    "DEFAULT_VAD_THRESHOLD",
    "TurnDetector",
    "is_backchannel",
]

FRAME_MS = 32.0
ONSET_FRAMES = 2
HYSTERESIS = 0.15
QUIET_LEAD_MS = 400.0  # "quiet" this long before the end would fire (report_pauses)
RESUME_REPORT_MS = 160.0  # speech back after a pause this long is reported (report_pauses)
CONTINUATIONS = frozenset(
    [
        "and",
        "but",
        "so",
        "because",
        "um",
        "uh",
        "er",
        "erm",
        "the",
        "to",
        "a",
        "an",
        "or",
        "of",
        "with",
        "like",
        "if",
        "then",
        "that",
        "my",
        "your",
        "for",
        "in",
        "on",
        "at",
        "from",
        "is",
        "was",
    ]
)
BACKCHANNELS = frozenset(
    [
        "uh-huh",
        "uhhuh",
        "uh",
        "huh",
        "mm",
        "mhm",
        "mm-hmm",
        "hmm",
        "yeah",
        "yes",
        "yep",
        "ok",
        "okay",
        "right",
        "sure",
        "aha",
        "ah",
        "oh",
        "i",
        "see",
        "got",
        "it",
    ]
)


def is_backchannel(text: str) -> bool:
    """Whether a transcript is only acknowledgement words ("uh huh", "yeah", "okay")."""
    words = text.lower().replace(",", " ").split()
    return bool(words) and all(w in BACKCHANNELS for w in words)


@dataclasses.dataclass
class TurnDetector:
    """Stateful end-of-turn detector; feed it one VAD probability per frame.

    Parameters
    ----------
    vad_threshold : float
        Speech probability threshold in [0, 1].
    min_silence_ms, max_silence_ms : float
        Trailing silence before a confident / a forced end of turn.
    frame_ms : float
        Duration of one frame.
    end_silence_ms : callable, optional
        ``end_silence_ms(voiced_ms) -> ms``: the adaptive end of turn. Called once per
        pause (at its first silent frame); the turn ends after that much trailing silence,
        whatever the last word, and ``min_silence_ms``/``max_silence_ms`` are not used.
    report_pauses : bool
        Also return ``"quiet"`` and ``"resume"`` (see the module docstring).
    """

    vad_threshold: float = DEFAULT_VAD_THRESHOLD
    min_silence_ms: float = DEFAULT_MIN_SILENCE_MS
    max_silence_ms: float = DEFAULT_MAX_SILENCE_MS
    frame_ms: float = FRAME_MS
    end_silence_ms: Callable[[float], float] | None = None
    report_pauses: bool = False
    in_speech: bool = False
    frame: int = 0
    onset_frame: int = 0
    voiced_frames: int = 0
    silence_frames: int = 0
    pause_ms: float = 0.0  # the silence before the last "resume", or "end"
    end_rest_ms: float = 0.0  # adaptive: how much sooner than its end the last "end" came
    _run: int = 0
    _target_ms: float | None = None  # the adaptive end of the current pause
    _quiet: bool = False  # "quiet" reported in the current pause

    def set_params(
        self,
        vad_threshold: float | None = None,
        min_silence_ms: float | None = None,
        max_silence_ms: float | None = None,
    ) -> None:
        """Change thresholds mid-stream (``None`` keeps a value)."""
        if vad_threshold is not None:
            self.vad_threshold = vad_threshold
        if min_silence_ms is not None:
            self.min_silence_ms = min_silence_ms
        if max_silence_ms is not None:
            self.max_silence_ms = max_silence_ms

    @property
    def speech_ms(self) -> float:
        """Voiced milliseconds since the onset of the current turn."""
        return self.voiced_frames * self.frame_ms

    @property
    def silence_ms(self) -> float:
        """Trailing silence of the current turn in ms."""
        return self.silence_frames * self.frame_ms

    def update(self, prob: float, partial: str = "") -> str | None:
        """Feed one frame's probability; returns ``"onset"``, ``"end"`` or None (and
        ``"quiet"``/``"resume"`` with ``report_pauses``).

        Parameters
        ----------
        prob : float
            VAD speech probability of the frame.
        partial : str
            The transcript of the turn so far (for continuation words).
        """
        self.frame += 1
        if not self.in_speech:
            self._run = self._run + 1 if prob >= self.vad_threshold else 0
            if self._run >= ONSET_FRAMES:
                self.in_speech = True
                self.onset_frame = self.frame - ONSET_FRAMES
                self.voiced_frames = ONSET_FRAMES
                self.silence_frames = 0
                self._run = 0
                return "onset"
            return None
        if prob >= max(0.0, self.vad_threshold - HYSTERESIS):
            paused = self.silence_frames
            self.voiced_frames += 1 + self.silence_frames if self.silence_frames <= 3 else 1
            self.silence_frames = 0
            quiet, self._quiet, self._target_ms = self._quiet, False, None
            if self.report_pauses and (quiet or paused * self.frame_ms >= RESUME_REPORT_MS):
                self.pause_ms = paused * self.frame_ms
                return "resume"
            return None
        self.silence_frames += 1
        silence = self.silence_ms
        if self.end_silence_ms is not None:
            if self._target_ms is None:
                self._target_ms = float(self.end_silence_ms(self.speech_ms))
            target = self._target_ms
            # a frame early: the caller waits the rest (``end_rest_ms``), so the end is not
            # rounded up to whole frames
            ended = silence > target - self.frame_ms
        else:
            target = self.min_silence_ms
            ended = silence >= self.max_silence_ms or (
                silence >= self.min_silence_ms and not self._continues(partial)
            )
        if ended:
            self.in_speech = False
            self.pause_ms = silence
            self.end_rest_ms = max(0.0, target - silence) if self.end_silence_ms else 0.0
            self.silence_frames = 0
            self._quiet, self._target_ms = False, None
            return "end"
        if self.report_pauses and not self._quiet and silence >= target - QUIET_LEAD_MS:
            self._quiet = True
            return "quiet"
        return None

    @staticmethod
    def _continues(partial: str) -> bool:
        words = partial.lower().split()
        return bool(words) and words[-1] in CONTINUATIONS

    def reset(self) -> None:
        """Back to silence (e.g. after a session resume)."""
        self.in_speech = False
        self.voiced_frames = self.silence_frames = self._run = 0
        self._quiet, self._target_ms = False, None
