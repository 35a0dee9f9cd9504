"""G.711 μ-law and A-law codecs in numpy, bit-exact with the ITU-T reference.

Audio layer, pure numpy: no I/O. int16 <-> uint8. Decoding is a 256-entry table;
encoding is vectorised segment arithmetic (the same algorithm as the ITU-T G.191 reference
implementation and CPython's ``audioop``), with the 65536-entry table built once on first
use for speed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_BIAS = 0x84
_CLIP = 8159
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)


def _ulaw_encode_exact(x: NDArray[np.int32]) -> NDArray[np.uint8]:
    pcm = x >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF).astype(np.int32)
    pcm = np.where(pcm < 0, -pcm, pcm)
    pcm = np.minimum(pcm, _CLIP) + (_BIAS >> 2)
    seg = np.searchsorted(_SEG_END, pcm, side="left").astype(np.int32)
    uval = (seg << 4) | ((pcm >> (seg + 1)) & 0xF)
    out = np.where(seg >= 8, 0x7F ^ mask, uval ^ mask)
    return out.astype(np.uint8)


def _alaw_encode_exact(x: NDArray[np.int32]) -> NDArray[np.uint8]:
    pcm = x >> 3  # 13-bit
    neg = pcm < 0
    mask = np.where(neg, 0x55, 0xD5).astype(np.int32)
    pcm = np.where(neg, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, pcm, side="left").astype(np.int32)
    shift = np.where(seg < 2, 1, seg)
    aval = (seg << 4) | ((pcm >> shift) & 0xF)
    out = np.where(seg >= 8, 0x7F ^ mask, aval ^ mask)
    return out.astype(np.uint8)


def _ulaw_decode_table() -> NDArray[np.int16]:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t <<= (u & 0x70) >> 4
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def _alaw_decode_table() -> NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(
        seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << np.maximum(seg - 1, 0))
    )
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_DEC = _ulaw_decode_table()
_ALAW_DEC = _alaw_decode_table()
_tables: dict[str, NDArray[np.uint8]] = {}


def _encode_table(kind: str) -> NDArray[np.uint8]:
    table = _tables.get(kind)
    if table is None:
        every = np.arange(-32768, 32768, dtype=np.int32)
        table = _ulaw_encode_exact(every) if kind == "u" else _alaw_encode_exact(every)
        _tables[kind] = table
    return table


def _as_int16(x: ArrayLike) -> NDArray[np.int16]:
    arr = np.asarray(x)
    if arr.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got {arr.dtype}")
    return arr


def _as_uint8(x: ArrayLike | bytes) -> NDArray[np.uint8]:
    if isinstance(x, (bytes, bytearray, memoryview)):
        return np.frombuffer(x, np.uint8)
    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        raise TypeError(f"G.711 decoding needs uint8 codes, got {arr.dtype}")
    return arr


def ulaw_encode(x: ArrayLike) -> NDArray[np.uint8]:
    """Encode int16 samples to G.711 μ-law bytes (silence -> 0xFF)."""
    return _encode_table("u")[_as_int16(x).astype(np.int32) + 32768]


def alaw_encode(x: ArrayLike) -> NDArray[np.uint8]:
    """Encode int16 samples to G.711 A-law bytes (silence -> 0xD5)."""
    return _encode_table("a")[_as_int16(x).astype(np.int32) + 32768]


def ulaw_decode(codes: ArrayLike | bytes) -> NDArray[np.int16]:
    """Decode G.711 μ-law bytes to int16 samples."""
    return _ULAW_DEC[_as_uint8(codes)]


def alaw_decode(codes: ArrayLike | bytes) -> NDArray[np.int16]:
    """Decode G.711 A-law bytes to int16 samples."""
    return _ALAW_DEC[_as_uint8(codes)]
