"""Audio: PCM16 and G.711 codecs, resampling, WAV files, level meters, sources and sinks.

Inside voicekit audio is 24 kHz int16 mono. Codecs here are pure numpy (soxr for
resampling, imported lazily); sources and sinks (``sources``, ``sinks``, ``devices``) are
the runtime side and import PortAudio only when a device is used.
"""

from __future__ import annotations

from voicekit.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voicekit.audio.level import FLOOR_DBFS, LevelMeter, level_dbfs
from voicekit.audio.pcm import (
    CHUNK_MS,
    SAMPLE_RATE,
    check_pcm16,
    chunk,
    decode_from_wire,
    encode_for_wire,
    float32_to_pcm16,
    pcm16_bytes,
    pcm16_to_float32,
)
from voicekit.audio.resample import Resampler, resample
from voicekit.audio.wav import WavAppender, read_wav, repair_wav_header, write_wav

__all__ = [
    "CHUNK_MS",
    "FLOOR_DBFS",
    "SAMPLE_RATE",
    "LevelMeter",
    "Resampler",
    "WavAppender",
    "alaw_decode",
    "alaw_encode",
    "check_pcm16",
    "chunk",
    "decode_from_wire",
    "encode_for_wire",
    "float32_to_pcm16",
    "level_dbfs",
    "pcm16_bytes",
    "pcm16_to_float32",
    "read_wav",
    "repair_wav_header",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
