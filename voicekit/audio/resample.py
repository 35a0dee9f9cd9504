"""Sample-rate conversion with soxr (one-shot and streaming).

Audio layer: numpy and soxr (imported lazily, so importing voicekit.audio stays cheap).
int16 in gives int16 out; float in gives float32 out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from voicekit.errors import ConfigError

__all__ = ["RATES", "Resampler", "resample"]

RATES = (8000, 16000, 22050, 24000, 44100, 48000)


def _check_rate(rate: Any, field: str) -> int:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, (int, np.integer))
        or not (1000 <= int(rate) <= 384000)
    ):
        raise ConfigError(
            f"{field} ({rate!r}) must be a sample rate in Hz, e.g. 24000", field=field
        )
    return int(rate)


def resample(x: ArrayLike, from_rate: int, to_rate: int) -> NDArray[Any]:
    """Resample mono audio (soxr, high quality).

    Parameters
    ----------
    x : array_like
        int16 or float samples.
    from_rate, to_rate : int
        Rates in Hz (8, 16, 22.05, 24, 44.1, 48 kHz and others).
    """
    import soxr

    a, b = _check_rate(from_rate, "from_rate"), _check_rate(to_rate, "to_rate")
    arr = np.asarray(x)
    if arr.dtype != np.int16:
        arr = arr.astype(np.float32)
    if a == b or len(arr) == 0:
        return arr.copy() if len(arr) else arr[:0]
    out: NDArray[Any] = soxr.resample(arr, a, b, quality="HQ")
    return out


class Resampler:
    """Streaming resampler for chunked real-time audio (keeps filter state across chunks).

    Parameters
    ----------
    from_rate, to_rate : int
        Rates in Hz.
    dtype : {"int16", "float32"}
        Sample type in and out.
    """

    def __init__(self, from_rate: int, to_rate: int, dtype: str = "int16") -> None:
        import soxr

        self.from_rate = _check_rate(from_rate, "from_rate")
        self.to_rate = _check_rate(to_rate, "to_rate")
        if dtype not in ("int16", "float32"):
            raise ConfigError(f"dtype ({dtype!r}) must be 'int16' or 'float32'", field="dtype")
        self.dtype = np.dtype(dtype)
        self._stream = (
            None
            if self.from_rate == self.to_rate
            else soxr.ResampleStream(self.from_rate, self.to_rate, 1, dtype=dtype, quality="HQ")
        )

    def process(self, chunk: ArrayLike, last: bool = False) -> NDArray[Any]:
        """Resample the next chunk; ``last=True`` flushes the filter's tail."""
        arr = np.ascontiguousarray(chunk, dtype=self.dtype)
        if self._stream is None:
            return arr.copy()
        out: NDArray[Any] = self._stream.resample_chunk(arr, last=last)
        return out
