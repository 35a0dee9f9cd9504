"""Audio codec throughput as multiples of real time (24 kHz audio). Target >= 1000x.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from voicekit.audio import alaw_decode, alaw_encode, resample, ulaw_decode, ulaw_encode


def _rate(fn: Callable[[], Any], seconds_of_audio: float, repeats: int = 5) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return seconds_of_audio * repeats / (time.perf_counter() - t)


def main() -> dict[str, float]:
    rng = np.random.default_rng(0)
    seconds = 60.0
    x24 = (rng.standard_normal(int(24000 * seconds)) * 3000).astype(np.int16)
    x8 = resample(x24, 24000, 8000)
    codes = ulaw_encode(x8)
    x48 = resample(x24, 24000, 48000)
    results = {
        "ulaw_encode_8k": _rate(lambda: ulaw_encode(x8), seconds),
        "ulaw_decode_8k": _rate(lambda: ulaw_decode(codes), seconds),
        "alaw_encode_8k": _rate(lambda: alaw_encode(x8), seconds),
        "alaw_decode_8k": _rate(lambda: alaw_decode(codes), seconds),
        "resample_24k_to_16k": _rate(lambda: resample(x24, 24000, 16000), seconds),
        "resample_24k_to_8k": _rate(lambda: resample(x24, 24000, 8000), seconds),
        "resample_48k_to_24k": _rate(lambda: resample(x48, 48000, 24000), seconds),
    }
    for name, value in results.items():
        print(f"audio: {name:22s} {value:12,.0f}x real time (target >= 1000x)")
    return results


if __name__ == "__main__":
    main()
