"""Speech engines, offline and in-process: synthesis, voice activity detection, recognition.

- :mod:`~voicekit.speech.tts` — espeak-ng synthesis with word timings;
- :mod:`~voicekit.speech.vad` — Silero voice activity detection;
- :mod:`~voicekit.speech.asr` — pocketsphinx recognition with a conversation model;
- :mod:`~voicekit.speech.asr_pool` — recognisers in child processes.

Speech layer: engines only. Imports numpy, ``voicekit.errors``, ``voicekit.audio``'s
resampler and the voice catalogue (``voicekit.protocol.voices``, pure data); never the
protocol state machines, sockets, asyncio, the session, the stand-in agent or analysis.
Importing a module loads no engine: each engine is opened on first use. The stand-in agent,
the scripted user (synthesis) and analysis (VAD in ``echo_check``) call these from worker
threads. The agent's turn-taking policy lives with the agent, in :mod:`voicekit.local.turns`.
"""

from __future__ import annotations

from voicekit.speech.asr import Recognizer, build_arpa, language_model
from voicekit.speech.tts import USER_STYLE, Synthesis, VoiceStyle, style_for_voice, synthesize
from voicekit.speech.vad import SileroVad

__all__ = [
    "USER_STYLE",
    "Recognizer",
    "SileroVad",
    "Synthesis",
    "VoiceStyle",
    "build_arpa",
    "language_model",
    "style_for_voice",
    "synthesize",
]
