"""PCM16 basics: conversions, chunking, wire encodings.

Audio layer: numpy only (the G.711 codecs and soxr resampling are imported from siblings).
The base64 text the wire carries is the protocol's business (``encode_audio`` /
``decode_audio`` and ``ReplyAudio.audio_bytes()`` in :mod:`voicekit.protocol.events`): audio
and protocol are the bottom row of the layers and neither imports the other.
Inside voicekit audio is always 24 kHz int16 mono; the wire may carry PCM16 at 24 kHz or
G.711 μ-law / A-law at 8 kHz (protocol reference §10).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike, NDArray

from voicekit.errors import ConfigError, ProtocolError

__all__ = [
    "CHUNK_MS",
    "SAMPLE_RATE",
    "check_pcm16",
    "chunk",
    "decode_from_wire",
    "encode_for_wire",
    "float32_to_pcm16",
    "pcm16_bytes",
    "pcm16_to_float32",
]

SAMPLE_RATE = 24000
CHUNK_MS = 50
_I16 = np.dtype("<i2")


def pcm16_to_float32(x: bytes | ArrayLike) -> NDArray[np.float32]:
    """PCM16 (bytes or int16 array) to float32 in [-1, 1) (scale 1/32768)."""
    arr = (
        np.frombuffer(x, np.int16)
        if isinstance(x, (bytes, bytearray, memoryview))
        else (np.asarray(x, np.int16))
    )
    return arr.astype(np.float32) / np.float32(32768.0)


def float32_to_pcm16(x: ArrayLike) -> NDArray[np.int16]:
    """Float samples in [-1, 1] to int16 (rounded, clipped)."""
    arr = np.asarray(x, np.float64) * 32768.0
    return np.clip(np.rint(arr), -32768, 32767).astype(np.int16)


def pcm16_bytes(x: ArrayLike) -> bytes:
    """Little-endian PCM16 bytes of int16 (or float) samples."""
    if type(x) is np.ndarray and x.dtype == _I16:
        return x.tobytes()  # tobytes() is C order whatever the strides
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        arr = float32_to_pcm16(arr)
    return np.ascontiguousarray(arr, dtype="<i2").tobytes()


def check_pcm16(data: bytes, strict: bool = True) -> bytes:
    """Validate PCM16 bytes: an odd length is an error (``strict``) or trimmed."""
    if len(data) % 2:
        if strict:
            raise ProtocolError(
                f"PCM16 audio must have an even number of bytes, got {len(data)}; "
                "send whole 16-bit samples"
            )
        return data[:-1]
    return data


def chunk(
    samples: ArrayLike | bytes,
    sample_rate: int = SAMPLE_RATE,
    ms: int = CHUNK_MS,
    pad: bool = False,
) -> Iterator[NDArray[np.int16]]:
    """Split int16 samples (or PCM16 bytes) into ``ms``-millisecond chunks.

    The last chunk is shorter, or zero-padded to full length with ``pad=True``.
    """
    arr = (
        np.frombuffer(check_pcm16(bytes(samples)), np.int16)
        if isinstance(samples, (bytes, bytearray, memoryview))
        else np.asarray(samples)
    )
    size = sample_rate * ms // 1000
    if size <= 0:
        raise ConfigError(f"ms ({ms}) must give at least one sample at {sample_rate} Hz")
    for start in range(0, len(arr), size):
        block = arr[start : start + size]
        if pad and len(block) < size:
            block = np.concatenate([block, np.zeros(size - len(block), block.dtype)])
        yield block


def encode_for_wire(samples: ArrayLike, encoding: str) -> bytes:
    """24 kHz int16 samples as bytes in a wire encoding (``audio/pcm|pcmu|pcma``)."""
    arr = np.asarray(samples, np.int16)
    if encoding == "audio/pcm":
        return pcm16_bytes(arr)
    if encoding in ("audio/pcmu", "audio/pcma"):
        from voicekit.audio.g711 import alaw_encode, ulaw_encode
        from voicekit.audio.resample import resample

        narrow = resample(arr, SAMPLE_RATE, 8000)
        coder = ulaw_encode if encoding == "audio/pcmu" else alaw_encode
        return coder(narrow).tobytes()
    raise ConfigError(f"encoding ({encoding!r}) must be audio/pcm, audio/pcmu or audio/pcma")


def decode_from_wire(data: bytes, encoding: str) -> NDArray[np.int16]:
    """Wire bytes to 24 kHz int16 samples (an odd PCM byte is dropped)."""
    if encoding == "audio/pcm":
        # a read-only view of the bytes, no copy; an odd last byte is dropped
        return np.frombuffer(data[:-1] if len(data) % 2 else data, _I16)
    if encoding in ("audio/pcmu", "audio/pcma"):
        from voicekit.audio.g711 import alaw_decode, ulaw_decode
        from voicekit.audio.resample import resample

        narrow = (ulaw_decode if encoding == "audio/pcmu" else alaw_decode)(data)
        return resample(narrow, 8000, SAMPLE_RATE)
    raise ConfigError(f"encoding ({encoding!r}) must be audio/pcm, audio/pcmu or audio/pcma")
