"""The stand-in agent's speech engines, offline and in-process.

- :mod:`~voicekit.local.speech.tts` — espeak-ng synthesis with word timings;
- :mod:`~voicekit.local.speech.vad` — Silero voice activity detection;
- :mod:`~voicekit.local.speech.asr` — pocketsphinx recognition with a conversation model;
- :mod:`~voicekit.local.speech.turns` — end-of-turn detection.

No asyncio and no sockets here: the agent calls these from worker threads.
"""

from __future__ import annotations

from voicekit.local.speech.asr import Recognizer, build_arpa, language_model
from voicekit.local.speech.tts import USER_STYLE, Synthesis, VoiceStyle, style_for_voice, synthesize
from voicekit.local.speech.turns import TurnDetector, is_backchannel
from voicekit.local.speech.vad import SileroVad

__all__ = [
    "USER_STYLE",
    "Recognizer",
    "SileroVad",
    "Synthesis",
    "TurnDetector",
    "VoiceStyle",
    "build_arpa",
    "is_backchannel",
    "language_model",
    "style_for_voice",
    "synthesize",
]
