"""Audio basics: G.711 bit-exact with the reference, resampling, PCM framing, WAV, levels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from voicekit.audio import (
    LevelMeter,
    Resampler,
    WavAppender,
    alaw_decode,
    alaw_encode,
    check_pcm16,
    chunk,
    decode_from_wire,
    encode_for_wire,
    float32_to_pcm16,
    level_dbfs,
    pcm16_to_float32,
    read_wav,
    repair_wav_header,
    resample,
    ulaw_decode,
    ulaw_encode,
    write_wav,
)
from voicekit.errors import AudioError, ConfigError, ProtocolError

ALL = np.arange(-32768, 32768, dtype=np.int16)

# ITU-T G.711 table values (independent of any implementation): code <-> linear
REFERENCE = {
    "ulaw_decode": {0x00: -32124, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0x70: -120, 0x0F: -16764},
    "alaw_decode": {0xD5: 8, 0x55: -8, 0xAA: 32256, 0x2A: -32256, 0x80: 5504},
    "ulaw_encode": {0: 0xFF, -1: 0x7E, 32767: 0x80, -32768: 0x00},
    "alaw_encode": {0: 0xD5, -1: 0x55, 32767: 0xAA, -32768: 0x2A},
}


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:  # Python 3.13+: the reference vectors below still run
            return None
    return audioop


def test_reference_vectors() -> None:
    for code, value in REFERENCE["ulaw_decode"].items():
        assert ulaw_decode(np.array([code], np.uint8))[0] == value
    for code, value in REFERENCE["alaw_decode"].items():
        assert alaw_decode(np.array([code], np.uint8))[0] == value
    for value, code in REFERENCE["ulaw_encode"].items():
        assert ulaw_encode(np.array([value], np.int16))[0] == code
    for value, code in REFERENCE["alaw_encode"].items():
        assert alaw_encode(np.array([value], np.int16))[0] == code


def test_every_code_matches_audioop() -> None:
    audioop = _audioop()
    if audioop is None:
        pytest.skip("audioop is gone (Python 3.13+); reference vectors still checked")
    raw = ALL.tobytes()
    assert np.array_equal(ulaw_encode(ALL), np.frombuffer(audioop.lin2ulaw(raw, 2), np.uint8))
    assert np.array_equal(alaw_encode(ALL), np.frombuffer(audioop.lin2alaw(raw, 2), np.uint8))
    codes = np.arange(256, dtype=np.uint8).tobytes()
    assert np.array_equal(ulaw_decode(codes), np.frombuffer(audioop.ulaw2lin(codes, 2), np.int16))
    assert np.array_equal(alaw_decode(codes), np.frombuffer(audioop.alaw2lin(codes, 2), np.int16))


@settings(max_examples=100, deadline=None)
@given(arrays(np.int16, st.integers(0, 500)))
def test_g711_round_trip_error_is_bounded(x: np.ndarray) -> None:
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = dec(enc(x)).astype(np.int32)
        err = np.abs(y - x.astype(np.int32))
        # logarithmic quantisation: error grows with magnitude, within 1/16 of it (+ a step)
        assert np.all(err <= np.abs(x.astype(np.int32)) // 16 + 130)
        assert np.array_equal(enc(y.astype(np.int16)), enc(x))  # decode is a fixed point


def test_g711_type_errors() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="uint8"):
        alaw_decode(np.zeros(3, np.int16))


@settings(max_examples=100, deadline=None)
@given(arrays(np.int16, st.integers(0, 300)))
def test_pcm_float_round_trip(x: np.ndarray) -> None:
    assert np.array_equal(float32_to_pcm16(pcm16_to_float32(x)), x)
    assert np.array_equal(float32_to_pcm16(pcm16_to_float32(x.tobytes())), x)


def test_framing() -> None:
    with pytest.raises(ProtocolError, match="even number"):
        check_pcm16(b"abc")
    assert check_pcm16(b"abc", strict=False) == b"ab"
    blocks = list(chunk(np.arange(2500, dtype=np.int16)))
    assert [len(b) for b in blocks] == [1200, 1200, 100]
    assert [len(b) for b in chunk(np.zeros(2500, np.int16), pad=True)] == [1200] * 3
    with pytest.raises(ConfigError, match="ms"):
        list(chunk(np.zeros(10, np.int16), ms=0))


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


@pytest.mark.parametrize(
    ("a", "b"),
    [(24000, 16000), (24000, 8000), (48000, 24000), (44100, 24000), (8000, 24000), (16000, 24000)],
)
def test_resampling_keeps_length_ratio_and_pitch(a: int, b: int) -> None:
    y = resample(_tone(1000, a), a, b)
    assert y.dtype == np.int16 and abs(len(y) - b) <= 2
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64)))
    assert abs(np.argmax(spectrum) * b / len(y) - 1000) < 5


def test_streaming_resampler_matches_one_shot() -> None:
    x = _tone(440, 24000)
    stream = Resampler(24000, 16000)
    parts = [stream.process(x[i : i + 1200]) for i in range(0, len(x), 1200)]
    parts.append(stream.process(np.zeros(0, np.int16), last=True))
    y = np.concatenate(parts)
    ref = resample(x, 24000, 16000)
    assert abs(len(y) - len(ref)) <= 2
    n = min(len(y), len(ref))
    assert np.corrcoef(y[:n].astype(float), ref[:n].astype(float))[0, 1] > 0.999
    with pytest.raises(ConfigError, match="from_rate"):
        resample(x, 0, 16000)


@pytest.mark.parametrize("encoding", ["audio/pcm", "audio/pcmu", "audio/pcma"])
def test_wire_encodings_round_trip(encoding: str) -> None:
    x = _tone(300, 24000, 0.5)
    wire = encode_for_wire(x, encoding)
    assert len(wire) == (24000 if encoding == "audio/pcm" else 4000)
    y = decode_from_wire(wire, encoding)
    assert abs(len(y) - len(x)) <= 2
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n].astype(float), y[:n].astype(float))[0, 1] > 0.98
    with pytest.raises(ConfigError, match="encoding"):
        encode_for_wire(x, "audio/opus")


def test_wav_append_fills_gaps_and_survives_a_crash(tmp_path) -> None:
    w = WavAppender(tmp_path / "a.wav")
    w.write_at(100, np.ones(10, np.int16))
    w.append(np.full(5, 2, np.int16))
    w.write_at(200, np.full(3, 7, np.int16))
    w.flush()
    with open(tmp_path / "a.wav", "r+b") as f:  # a crash leaves a stale header
        f.seek(40)
        f.write((20).to_bytes(4, "little"))
    samples, rate = read_wav(tmp_path / "a.wav")  # sizes come from the file size
    assert rate == 24000 and len(samples) == 203
    assert samples[:100].sum() == 0 and samples[100:110].tolist() == [1] * 10
    assert samples[110:115].tolist() == [2] * 5 and samples[200:].tolist() == [7, 7, 7]
    assert repair_wav_header(tmp_path / "a.wav")
    assert not repair_wav_header(tmp_path / "a.wav")
    w.close()
    w.close()


def test_read_wav_formats_and_errors(tmp_path) -> None:
    x = _tone(500, 48000, 0.1)
    write_wav(tmp_path / "f.wav", x.astype(np.float32) / 32768.0, 48000)
    y, rate = read_wav(tmp_path / "f.wav")
    assert rate == 48000 and np.max(np.abs(y.astype(int) - x)) <= 1
    (tmp_path / "bad.wav").write_bytes(b"RIFX1234")
    with pytest.raises(AudioError, match=r"bad\.wav"):
        read_wav(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match="cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_levels() -> None:
    rms, peak = level_dbfs(_tone(1000, 24000) * 2)
    assert math.isclose(rms, -3.01, abs_tol=0.05) and math.isclose(peak, 0.0, abs_tol=0.01)
    assert level_dbfs(np.zeros(100, np.int16)) == (-120.0, -120.0)
    meter = LevelMeter()
    loud = meter.update(_tone(1000, 24000, 0.05) * 2)
    assert loud > -10
    quiet = meter.update(np.zeros(1200, np.int16))
    assert loud - 2 < quiet < loud  # slow release: 30 dB/s over 50 ms
