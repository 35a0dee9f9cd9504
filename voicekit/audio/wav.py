"""WAV files: read any PCM WAV, write mono PCM16, and append on a session clock.

Audio layer: the standard library's ``wave`` and ``struct``, and numpy.

:class:`WavAppender` writes a track while a session runs: sample ``k`` sits at
``t = k / rate``; writing past the end fills the gap with zeros. Its header is rewritten on
:meth:`~WavAppender.flush` (at least once a second by the session), so a process killed
mid-session leaves a file whose header is at most a second stale, and
:func:`read_wav` repairs headers from the file size anyway.
"""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import ArrayLike, NDArray

from voicekit.errors import AudioError

__all__ = [
    "HEADER_BYTES",
    "WavAppender",
    "read_wav",
    "repair_wav_header",
    "riff_header",
    "write_wav",
]

HEADER_BYTES = 44


def riff_header(rate: int, data_bytes: int, channels: int = 1, width: int = 2) -> bytes:
    """The 44-byte RIFF/WAVE header of a PCM file with ``data_bytes`` of samples."""
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", 36 + data_bytes),
            b"WAVE",
            b"fmt ",
            struct.pack(
                "<IHHIIHH",
                16,
                1,
                channels,
                rate,
                rate * channels * width,
                channels * width,
                8 * width,
            ),
            b"data",
            struct.pack("<I", data_bytes),
        ]
    )


def _find_data(raw: bytes) -> tuple[int, int, int, int, int]:
    """(format tag, channels, rate, bits, data offset) from a RIFF header, tolerant of sizes."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AudioError("not a WAV file (no RIFF/WAVE header)")
    pos, fmt = 12, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", raw[pos + 8 : pos + 24])
        elif cid == b"data":
            if fmt is None:
                raise AudioError("WAV data chunk before its fmt chunk")
            return fmt[0], fmt[1], fmt[2], fmt[5], pos + 8
        pos += 8 + size + (size & 1)
    raise AudioError("WAV file has no data chunk")


def read_wav(path: str | os.PathLike[str]) -> tuple[NDArray[np.int16], int]:
    """Read a PCM WAV (8/16/24/32-bit, any channels) as int16 mono, and its rate.

    The data size is taken from the file size, so a file cut off by a crash (or with a
    stale header) reads in full.

    Raises
    ------
    AudioError
        If the file is missing or not PCM WAV, naming the file.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot read WAV {str(p)!r}: {exc.strerror}") from None
    try:
        tag, channels, rate, bits, offset = _find_data(raw[:4096] if len(raw) > 4096 else raw)
    except AudioError as exc:
        raise AudioError(f"{p}: {exc}") from None
    if tag not in (1, 0xFFFE) or bits not in (8, 16, 24, 32):
        raise AudioError(
            f"{p}: only PCM WAV is supported (format {tag}, {bits} bits); convert it to 16-bit PCM"
        )
    width = bits // 8
    data = raw[offset:]
    data = data[: len(data) - len(data) % (width * channels)]
    if width == 1:
        samples = (np.frombuffer(data, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(data, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16
    else:
        samples = np.frombuffer(data, "<i4").astype(np.int64) >> 16
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return np.clip(samples, -32768, 32767).astype(np.int16), int(rate)


def write_wav(path: str | os.PathLike[str], samples: ArrayLike, rate: int = 24000) -> None:
    """Write mono PCM16 (int16, or float in [-1, 1])."""
    arr = np.asarray(samples)
    if arr.dtype.kind == "f":
        arr = np.clip(np.rint(arr * 32768.0), -32768, 32767)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(arr, "<i2").tobytes())


def repair_wav_header(path: str | os.PathLike[str]) -> bool:
    """Rewrite a 44-byte mono PCM16 header's sizes from the file size; True if changed."""
    p = Path(path)
    with p.open("r+b") as f:
        head = f.read(HEADER_BYTES)
        tag, channels, rate, bits, offset = _find_data(head)
        size = p.stat().st_size - offset
        size -= size % max(1, channels * bits // 8)
        riff, data = 36 + size if offset == HEADER_BYTES else None, size
        changed = False
        if riff is not None and struct.unpack("<I", head[4:8])[0] != riff:
            f.seek(4)
            f.write(struct.pack("<I", riff))
            changed = True
        if struct.unpack("<I", head[offset - 4 : offset])[0] != data:
            f.seek(offset - 4)
            f.write(struct.pack("<I", data))
            changed = True
        del tag, rate
    return changed


_I16 = np.dtype("<i2")


class WavAppender:
    """A mono PCM16 WAV written incrementally, addressed by sample offset.

    Parameters
    ----------
    path : str or os.PathLike
        The file (created or truncated).
    rate : int
        Sample rate (24000 for voicekit's tracks).

    Notes
    -----
    Not thread-safe: use it from one thread (the session's loop).
    """

    def __init__(self, path: str | os.PathLike[str], rate: int = 24000) -> None:
        self.path = Path(path)
        self.rate = rate
        self._f: BinaryIO | None = self.path.open("w+b")
        self._f.write(riff_header(rate, 0))
        self.samples = 0  # samples in the file (its end)
        self._pos = 0  # the file position, in samples (seeking flushes the write buffer)

    def write_at(self, offset: int, samples: ArrayLike) -> None:
        """Write ``samples`` starting at sample ``offset`` (zeros fill any gap).

        Writing before the end overwrites (overlapping writes are mixed by the caller).
        """
        f = self._f
        if f is None:
            raise AudioError(f"{self.path} is closed")
        # the samples' own buffer is written (no bytes copy); "<i2" is a no-op on x86/ARM
        if type(samples) is np.ndarray and samples.dtype == _I16 and samples.flags.c_contiguous:
            data = samples.reshape(-1)  # the common case, without three conversions' calls
        else:
            data = np.ascontiguousarray(np.asarray(samples, np.int16), "<i2").reshape(-1)
        if offset < 0:
            data = data[-offset:]
            offset = 0
        if offset > self.samples:
            self._seek(self.samples)
            f.write(bytes(2 * (offset - self.samples)))
            self._pos = offset
        self._seek(offset)
        f.write(data.data)
        self._pos = offset + data.size
        if self._pos > self.samples:
            self.samples = self._pos

    def _seek(self, sample: int) -> None:
        if sample != self._pos:
            assert self._f is not None
            self._f.seek(HEADER_BYTES + 2 * sample)
            self._pos = sample

    def append(self, samples: ArrayLike) -> None:
        """Write ``samples`` at the end."""
        self.write_at(self.samples, samples)

    def flush(self) -> None:
        """Update the header's sizes and flush to the OS."""
        f = self._f
        if f is None:
            return
        end = f.tell()
        f.seek(0)
        f.write(riff_header(self.rate, 2 * self.samples))
        f.seek(end)
        f.flush()

    def close(self) -> None:
        """Finalise the header and close. Idempotent."""
        if self._f is None:
            return
        self.flush()
        self._f.close()
        self._f = None
