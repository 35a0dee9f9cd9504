"""Speech synthesis with espeak-ng, in-process (the library shipped in espeakng-loader).

Speech layer: ctypes, numpy and soxr; no subprocess, no asyncio.

espeak-ng has one global engine per process, so every call holds a module lock; synthesis
costs about 1 ms of CPU per second of speech. Output is int16 mono at 24 kHz (resampled
from espeak's 22050 Hz) with word timings from espeak's word events.

Voice styles: :func:`style_for_voice` maps every catalogue voice id to a distinct
espeak voice, variant, pitch and rate following its accent and description, so a voice
picker audibly changes the voice. Always ``<lang>+<variant>``: a bare variant name makes
the next synthesis crash (seen with espeak-ng 1.51 on Linux).
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicekit.errors import AudioError

__all__ = [
    "USER_STYLE",
    "Synthesis",
    "VoiceStyle",
    "phonemize",
    "style_for_voice",
    "synthesize",
]

OUT_RATE = 24000
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EVENT_WORD = 1
_EVENT_END = 2  # sentence end
_EVENT_MSG_TERMINATED = 6
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: IPA (UTF-8) rather than espeak's mnemonics


@dataclasses.dataclass(frozen=True)
class VoiceStyle:
    """How espeak-ng speaks: voice name (``<lang>+<variant>``), rate and pitch.

    Attributes
    ----------
    espeak_voice : str
        E.g. ``"en-us+f3"`` or ``"en-gb-x-rp+m3"``.
    rate_wpm : int
        Words per minute (espeak's default is 175).
    pitch : int
        0-100 (espeak's default is 50).
    """

    espeak_voice: str = "en-us"
    rate_wpm: int = 165
    pitch: int = 50


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """Synthesized speech.

    Attributes
    ----------
    samples : ndarray of int16
        24 kHz mono.
    words : list of (str, int, int)
        Each word with its start and end in ms from the start of ``samples``.
    """

    samples: NDArray[np.int16]
    words: list[tuple[str, int, int]]

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / OUT_RATE


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Engine:
    """The process-wide espeak-ng engine (use under ``_LOCK``)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path()
        except (ImportError, OSError) as exc:
            raise AudioError(
                f"cannot load espeak-ng from the espeakng-loader wheel ({exc}); reinstall it "
                "with 'pip install --force-reinstall espeakng-loader'"
            ) from None
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
        if rate <= 0:
            raise AudioError("espeak-ng failed to initialise; reinstall espeakng-loader")
        self.rate = rate
        self.lib = lib
        self._chunks: list[NDArray[np.int16]] = []
        self._marks: list[tuple[int, int, int]] = []  # (text position, length, audio ms)
        self._callback = _CALLBACK(self._on_audio)  # keep a reference alive
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._voice: str | None = None

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._marks.append((ev.text_position, ev.length, ev.audio_position))
            i += 1
        return 0

    def synth(self, text: str, style: VoiceStyle) -> tuple[NDArray[np.int16], list[Any]]:
        if self._voice != style.espeak_voice:
            if self.lib.espeak_SetVoiceByName(style.espeak_voice.encode()) != 0:
                raise AudioError(f"espeak-ng has no voice {style.espeak_voice!r}")
            self._voice = style.espeak_voice
        self.lib.espeak_SetParameter(1, int(style.rate_wpm), 0)
        self.lib.espeak_SetParameter(3, int(style.pitch), 0)
        self._chunks, self._marks = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.int16), list(self._marks)

    def phonemes(self, word: str, voice: str) -> str:
        """IPA phonemes of one word as ``voice`` says it (espeak_TextToPhonemes)."""
        if self._voice != voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise AudioError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice
        fn = self.lib.espeak_TextToPhonemes
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        buf = ctypes.create_string_buffer(word.encode("utf-8") + b"\0")
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = fn(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
        return out.decode("utf-8", "replace") if out else ""


_LOCK = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def _word_spans(
    text: str, marks: list[tuple[int, int, int]], total_ms: int
) -> list[tuple[str, int, int]]:
    data = text.encode("utf-8")
    words: list[tuple[str, int, int]] = []
    for i, (pos, length, ms) in enumerate(marks):
        start = max(pos - 1, 0)  # espeak positions are 1-based
        word = data[start : start + max(length, 1)].decode("utf-8", "ignore").strip()
        end_ms = marks[i + 1][2] if i + 1 < len(marks) else total_ms
        if word:
            words.append((word, int(ms), int(max(ms, end_ms))))
    return words


def synthesize(text: str, style: VoiceStyle | None = None) -> Synthesis:
    """Speak ``text`` (thread-safe; one engine per process).

    Parameters
    ----------
    text : str
        Plain text.
    style : VoiceStyle, optional
        Voice, rate and pitch (default: a neutral US English voice).

    Returns
    -------
    Synthesis
        24 kHz int16 samples and word timings in ms.
    """
    from voicekit.audio.resample import resample

    style = style or VoiceStyle()
    if not text.strip():
        return Synthesis(np.zeros(0, np.int16), [])
    with _LOCK:
        engine = _get_engine()
        raw, marks = engine.synth(text, style)
        rate = engine.rate
    samples = np.asarray(resample(raw, rate, OUT_RATE), np.int16) if len(raw) else raw
    total_ms = int(len(samples) * 1000 / OUT_RATE)
    return Synthesis(samples, _word_spans(text, marks, total_ms))


def phonemize(words: list[str], voice: str = "en-us") -> dict[str, str]:
    """How espeak-ng pronounces each word, in IPA (thread-safe; one engine per process).

    Parameters
    ----------
    words : list of str
        Single words (letters and apostrophes).
    voice : str
        An espeak-ng voice, e.g. ``"en-us"`` or ``"en"`` (British): accents differ.

    Returns
    -------
    dict of str to str
        Each word and its IPA string (stress marks included; "" if espeak gave none).
    """
    with _LOCK:
        engine = _get_engine()
        return {w: engine.phonemes(w, voice) for w in words}


# -- voices -------------------------------------------------------------------------------
_BY_ACCENT = {
    "US English": "en-us",
    "British English": "en-gb-x-rp",
    "Latin American Spanish": "en-us",
    "unknown": "en-us",
}
_FEMALE = set(
    "dawn claire summer zoe alexis diana grace audrey melissa lily anna jennie yuki nova sofia "  # noqa: SIM905
    "ivy winter mia bella helen martha emma eleanor sophie mei lena mina hana giulia lucia alba "
    "eve jane jean mary vera iris lola estelle river kai".split()
)


def style_for_voice(voice_id: str) -> VoiceStyle:
    """A distinct espeak-ng style for a catalogue voice id (deterministic).

    Accent picks the espeak voice (US, British RP, or an English voice with the accent of
    the voice's language for multilingual voices, so the agent still speaks English words);
    the description sets pitch and rate ("deep" lower, "high-pitched" higher, "fast-paced"
    faster, "slow" slower); female-named voices use female variants. Unknown ids get a
    stable hashed style.
    """
    from voicekit.protocol.voices import get_voice

    h = int(hashlib.sha256(voice_id.encode()).hexdigest()[:8], 16)
    voice = get_voice(voice_id)
    female = voice_id in _FEMALE
    variant = f"f{1 + h % 4}" if female else f"m{1 + h % 7}"
    pitch = (58 if female else 42) + (h >> 4) % 12 - 6
    rate = 160 + (h >> 8) % 20
    base = "en-us"
    if voice is not None:
        desc = voice.description.lower()
        if voice.accent in _BY_ACCENT:
            base = _BY_ACCENT[voice.accent]
        elif voice.language in ("es", "fr", "de", "it", "pt", "hi", "ru"):
            base = {"hi": "en-029", "ru": "en-us-nyc"}.get(voice.language, "en")
        if "deep" in desc:
            pitch -= 14
        if "older" in desc:
            pitch -= 6
            rate -= 10
        if "high-pitched" in desc or "young" in desc:
            pitch += 12
        if "fast" in desc or "energetic" in desc or "chatty" in desc:
            rate += 25
        if "slow" in desc or "calming" in desc:
            rate -= 25
        if "deliberate" in desc or "instructive" in desc:
            rate -= 10
    return VoiceStyle(f"{base}+{variant}", max(110, min(240, rate)), max(5, min(95, pitch)))


USER_STYLE = VoiceStyle("en-us+m1", 150, 45)
"""The scripted user's voice: unlike every agent default, and recognisable by pocketsphinx."""
