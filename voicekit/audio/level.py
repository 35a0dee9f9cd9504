"""Level metering: dBFS RMS and peak, and a smoothed meter for widgets.

Audio layer, numpy only. 0 dBFS is a full-scale square wave (RMS 1.0); a full-scale sine
reads -3.01 dBFS RMS. Silence reads :data:`FLOOR_DBFS`, not minus infinity.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["AUDIBLE", "FLOOR_DBFS", "LevelMeter", "level_dbfs"]

FLOOR_DBFS = -120.0
AUDIBLE = 100
"""An int16 sample with ``|x|`` at or above this is audible (about -50 dBFS): what the turn
table counts as agent speech and what makes a reply not silent."""


def _floats(x: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(x)
    if arr.dtype == np.int16:
        return arr.astype(np.float64) / 32768.0
    return arr.astype(np.float64)


def _db(v: float) -> float:
    return max(FLOOR_DBFS, 20 * math.log10(v)) if v > 0 else FLOOR_DBFS


def _rms(arr: NDArray[np.float64]) -> float:
    # np.add.reduce is what np.mean sums with (same result), without np.mean's Python layers
    return math.sqrt(float(np.add.reduce(arr * arr, axis=None)) / arr.size)


def level_dbfs(x: ArrayLike) -> tuple[float, float]:
    """(RMS, peak) of int16 or float samples in dBFS; silence gives -120 dBFS."""
    arr = _floats(x)
    if arr.size == 0:
        return FLOOR_DBFS, FLOOR_DBFS
    peak = float(np.maximum.reduce(np.abs(arr), axis=None))
    return _db(_rms(arr)), _db(peak)


class LevelMeter:
    """A level meter with fast attack and slow release (a VU-style bar).

    Parameters
    ----------
    attack : float
        Fraction of a rise taken per update (0-1]; 1 follows rises at once.
    release_db_per_s : float
        How fast the reading falls, in dB per second.
    """

    def __init__(self, attack: float = 1.0, release_db_per_s: float = 30.0) -> None:
        self.attack = attack
        self.release = release_db_per_s
        self.value = FLOOR_DBFS

    def update(self, chunk: ArrayLike, seconds: float | None = None) -> float:
        """Feed one chunk (24 kHz unless ``seconds`` says its length); returns the reading."""
        arr = _floats(chunk)  # the RMS of level_dbfs; the meter needs no peak
        rms = _db(_rms(arr)) if arr.size else FLOOR_DBFS
        dt = seconds if seconds is not None else arr.size / 24000
        if rms > self.value:
            self.value += self.attack * (rms - self.value)
        else:
            self.value = max(rms, self.value - self.release * dt)
        return self.value
