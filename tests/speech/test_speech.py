"""The stand-in agent's speech engines: synthesis, VAD, recognition accuracy, turn ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicekit.audio import resample
from voicekit.local.turns import TurnDetector, is_backchannel
from voicekit.protocol import voice_ids
from voicekit.speech import (
    USER_STYLE,
    Recognizer,
    SileroVad,
    build_arpa,
    style_for_voice,
    synthesize,
)
from voicekit.speech.asr import corpus_sentences, word_errors

EVAL = Path(__file__).parents[2] / "voicekit" / "speech" / "data" / "eval.txt"


def test_synthesis_duration_and_word_timings() -> None:
    s = synthesize("Hello there, what is the weather in Paris today?", style_for_voice("alba"))
    assert s.samples.dtype == np.int16 and 1.5 < s.duration < 5.0
    assert [w for w, _, _ in s.words][:2] == ["Hello", "there"] and len(s.words) == 9
    starts = [a for _, a, _ in s.words]
    assert starts == sorted(starts) and all(a <= b for _, a, b in s.words)
    assert s.words[-1][2] <= s.duration * 1000 + 1
    assert synthesize("   ").duration == 0


def _pitch_hz(x: np.ndarray) -> float:
    """Median fundamental over voiced 40 ms frames (autocorrelation, 70-400 Hz)."""
    x = x.astype(np.float64)
    estimates = []
    for start in range(0, len(x) - 960, 480):
        f = x[start : start + 960]
        if np.sqrt(np.mean(f * f)) < 0.1 * np.abs(x).max():
            continue
        f = f - f.mean()
        corr = np.correlate(f, f, "full")[959:]
        lo, hi = 24000 // 400, 24000 // 70
        lag = lo + int(np.argmax(corr[lo:hi]))
        if corr[lag] > 0.3 * corr[0]:
            estimates.append(24000 / lag)
    return float(np.median(estimates))


def test_voices_sound_different() -> None:
    styles = {v: style_for_voice(v) for v in voice_ids()}
    assert len(set(styles.values())) >= 0.9 * len(styles)  # (nearly) all distinct
    assert style_for_voice("zelda") == style_for_voice("zelda")  # unknown ids: stable
    text = "This is a test of my voice."
    deep, high = synthesize(text, styles["david"]), synthesize(text, styles["bella"])
    assert _pitch_hz(high.samples) > 1.2 * _pitch_hz(deep.samples)
    assert USER_STYLE not in {styles["alba"], styles["ivy"]}


def test_vad_separates_speech_from_silence() -> None:
    speech = resample(synthesize("hello can you hear me", USER_STYLE).samples, 24000, 16000)
    x = np.concatenate([np.zeros(16000, np.int16), speech, np.zeros(16000, np.int16)])
    vad = SileroVad()
    probs = np.concatenate([vad.process(x[i : i + 800]) for i in range(0, len(x), 800)])
    assert len(probs) == len(x) // 512
    assert probs[:25].max() < 0.2 and probs[-25:].max() < 0.2
    mid = probs[40 : 40 + len(speech) // 512 - 10]
    assert np.mean(mid > 0.5) > 0.8


def test_recogniser_accuracy_on_20_sentences() -> None:
    """Word accuracy, averaged over the clean audio and three copies with ±1 LSB of noise.

    One pass is too fragile a figure: a ±1 LSB change (another CPU's resampler) moved one
    pass's held-out accuracy by up to 0.2 before the decoder dithered, ~0.15 after. The mean
    of four passes varies less: 0.78-0.81 overall, 0.64-0.72 held out over eight noise seeds;
    the floors sit under the worst of those.
    """
    rows = [
        line.split("|")
        for line in EVAL.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(rows) == 20 and sum(k == "held" for k, _ in rows) == 6
    corpus = set(corpus_sentences())
    assert all(s not in corpus for k, s in rows if k == "held")
    rec = Recognizer()
    rng = np.random.default_rng(0)
    errors = {"in": [0, 0], "held": [0, 0]}
    for kind, sentence in rows:
        audio = resample(synthesize(sentence, USER_STYLE).samples, 24000, 16000)
        for noisy in range(4):
            x = audio.astype(np.int32) + (rng.integers(-1, 2, len(audio)) if noisy else 0)
            pcm = np.clip(x, -32768, 32767).astype(np.int16).tobytes()
            e, n = word_errors(sentence, rec.transcribe(pcm))
            errors[kind][0] += e
            errors[kind][1] += n
    overall = 1 - (errors["in"][0] + errors["held"][0]) / (errors["in"][1] + errors["held"][1])
    held = 1 - errors["held"][0] / errors["held"][1]
    print(f"word accuracy overall {overall:.2f}, held-out {held:.2f}")
    assert overall >= 0.70
    assert held >= 0.55


def test_keyterms_make_a_rare_word_recognisable() -> None:
    audio = resample(synthesize("i need saxophone please", USER_STYLE).samples, 24000, 16000)
    rec = Recognizer()
    assert "saxophone" not in rec.transcribe(audio.tobytes())
    rec.set_keyterms(["saxophone"])
    assert "saxophone" in rec.transcribe(audio.tobytes())


def test_streaming_partials_grow() -> None:
    audio = resample(synthesize("what is the weather in paris", USER_STYLE).samples, 24000, 16000)
    rec = Recognizer()
    rec.start()
    partials = [rec.feed(audio[i : i + 1600].tobytes()) for i in range(0, len(audio), 1600)]
    assert partials[0] is None or len(partials[0]) < 10
    assert any(p for p in partials)
    assert rec.finish() == "what is the weather in paris"
    assert rec.finish() == ""


def test_arpa_model_is_well_formed() -> None:
    arpa = build_arpa(["a b c", "a b d"], extra_words=["zed"])
    assert arpa.startswith("\\data\\\nngram 1=") and arpa.rstrip().endswith("\\end\\")
    unigrams = arpa.split("\\1-grams:")[1].split("\\2-grams:")[0]
    assert " zed" in unigrams and "<s>" in unigrams
    probs = [
        10 ** float(line.split()[0]) for line in unigrams.strip().splitlines() if "<s>" not in line
    ]
    assert sum(probs) == pytest.approx(1.0, abs=1e-3)


def frames(detector: TurnDetector, probs: list[float], partial: str = "") -> list[str | None]:
    return [detector.update(p, partial) for p in probs]


def test_turn_detector_onset_and_min_silence() -> None:
    d = TurnDetector(vad_threshold=0.5, min_silence_ms=320, max_silence_ms=960, frame_ms=32)
    out = frames(d, [0.1, 0.9, 0.9] + [0.9] * 10 + [0.0] * 10)
    assert out[2] == "onset" and d.onset_frame == 1
    assert out.index("end") == 13 + 9  # the 10th silent frame = 320 ms
    assert d.in_speech is False


def test_continuation_words_wait_for_max_silence() -> None:
    d = TurnDetector(vad_threshold=0.5, min_silence_ms=320, max_silence_ms=960, frame_ms=32)
    frames(d, [0.9] * 10)
    out = frames(d, [0.0] * 40, partial="i want to go to paris and")
    assert out.index("end") == 29  # 30 frames = 960 ms
    d.set_params(min_silence_ms=64)
    frames(d, [0.9] * 10)
    assert frames(d, [0.0] * 3, partial="done")[1] == "end"


def test_hysteresis_and_threshold() -> None:
    d = TurnDetector(vad_threshold=0.6, min_silence_ms=96, max_silence_ms=500, frame_ms=32)
    assert frames(d, [0.55] * 5) == [None] * 5  # below the threshold: no onset
    frames(d, [0.7, 0.7])
    assert frames(d, [0.5] * 5) == [None] * 5  # above threshold - 0.15 keeps speech going
    assert "end" in frames(d, [0.3] * 5)


def test_backchannels() -> None:
    assert is_backchannel("uh huh") and is_backchannel("Yeah, okay")
    assert not is_backchannel("stop thanks") and not is_backchannel("")


# Held-out sentences of benchmarks/bench_asr.py (never tuned on), in two voices that are not
# the scripted user's. Measured 0.49-0.53 over these 10 (0.47 before the background model and the
# espeak-ng pronunciations); the floor sits well under it, as a ±1 LSB difference in the
# audio (another CPU's resampler) moves a figure this small by up to 0.15.
HELD_OUT_SUBSET = [
    "what is your return policy",
    "i want to pay by credit card",
    "book a train from boston to new york",
    "can you recommend a good italian restaurant",
    "please send the receipt to my email",
]


def _streamed(rec: Recognizer, samples24: np.ndarray) -> str:
    """The agent's path: 24 kHz in 50 ms chunks, streaming resampler, 32 ms frames fed."""
    from voicekit.audio import Resampler

    pad = np.zeros(7200, np.int16)
    x = np.concatenate([pad, samples24, pad])
    rs = Resampler(24000, 16000)
    pcm = np.concatenate(
        [rs.process(x[i : i + 1200]) for i in range(0, len(x), 1200)]
        + [rs.process(np.zeros(0, np.int16), last=True)]
    ).astype(np.int16)
    rec.start()
    for i in range(0, len(pcm), 512):
        rec.feed(pcm[i : i + 512].tobytes())
    return rec.finish()


def test_words_do_not_depend_on_other_recognisers_or_chunking() -> None:
    """A fresh recogniser hears the same words in the same audio whether it decodes alone in
    32 ms frames or in 10 ms chunks while another recogniser of the process decodes other
    audio in between (pocketsphinx's own dither generator is process-wide: with it, one
    session's words changed with what the agent's other sessions were saying)."""
    pad = np.zeros(4800, np.int16)
    clips = [
        np.concatenate([pad, resample(synthesize(s, USER_STYLE).samples, 24000, 16000), pad])
        for s in HELD_OUT_SUBSET
    ]

    def decode(rec: Recognizer, x: np.ndarray, chunk: int, between: Any = None) -> str:
        rec.start()
        for i in range(0, len(x), chunk):
            rec.feed(x[i : i + chunk].tobytes())
            if between is not None:
                between()
        return rec.finish()

    alone = [decode(Recognizer(), x, 512) for x in clips]
    assert sum(len(t.split()) for t in alone) >= 15  # it hears words at all

    other, chatter = Recognizer(), np.concatenate(clips[::-1] * 4)
    at = [0]

    def other_decodes() -> None:
        other.feed(chatter[at[0] : at[0] + 160].tobytes())
        at[0] = (at[0] + 160) % (len(chatter) - 160)

    together = [decode(Recognizer(), x, 160, other_decodes) for x in clips]
    assert together == alone


_DECODE_IN_A_CHILD = """
import json, sys
import numpy as np
from voicekit.speech import Recognizer
sys.path.insert(0, sys.argv[2])
from test_speech import _streamed
rec = Recognizer()
clips = np.load(sys.argv[1])
print(json.dumps([_streamed(rec, clips[f"arr_{i}"]) for i in range(len(clips.files))]))
"""


def test_recognition_beyond_the_scripted_voice(tmp_path: Path) -> None:
    """Held-out sentences from two other espeak-ng voices reach a floor; the same audio gives
    the same words in two fresh processes (different hash seeds; each builds the model).

    A child process decodes with nothing of this one's state: no models or caches in memory,
    another order of its hash-seeded sets.
    """
    import json
    import os
    import subprocess
    import sys

    from voicekit.speech.tts import VoiceStyle

    errors = words = 0
    for voice in ("en-us", "en-gb-x-rp"):
        rec = Recognizer()
        audio = [synthesize(s, VoiceStyle(voice, 175, 50)).samples for s in HELD_OUT_SUBSET]
        heard = [_streamed(rec, a) for a in audio]
        for sentence, text in zip(HELD_OUT_SUBSET, heard, strict=True):
            e, n = word_errors(sentence, text)
            errors, words = errors + e, words + n
        if voice == "en-us":
            path = tmp_path / "audio.npz"
            np.savez(path, *audio)
            runs = [
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        _DECODE_IN_A_CHILD,
                        str(path),
                        str(Path(__file__).parent),
                    ],
                    env=dict(os.environ, PYTHONHASHSEED=seed),
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=True,
                ).stdout
                for seed in ("1", "2")
            ]
            assert json.loads(runs[0]) == json.loads(runs[1])
            assert len(json.loads(runs[0])) == len(audio)
    accuracy = 1 - errors / words
    print(f"held-out word accuracy, two other voices: {accuracy:.2f}")
    assert accuracy >= 0.35


def test_built_language_models_are_cached_per_user_and_reused(tmp_path) -> None:
    """A model is built once into the cache folder; another process reuses it as it is; an
    unwritable cache folder falls back to a temporary folder that is removed at exit."""
    import os
    import subprocess
    import sys

    code = (
        "from voicekit.speech.asr import language_model\n"
        "lm, d = language_model(['zorblax'])\n"
        "print(lm, lm.stat().st_mtime_ns, d.exists())\n"
    )

    def build(cache: str) -> list[str]:
        env = {**os.environ, "VOICEKIT_CACHE_DIR": cache}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    first = build(str(tmp_path / "cache"))
    assert first[0].startswith(str(tmp_path / "cache" / "lm")) and first[2] == "True"
    from pathlib import Path

    assert "zorblax" in Path(first[0]).read_text(encoding="utf-8")
    again = build(str(tmp_path / "cache"))
    assert again == first  # the same file, not rebuilt
    # a model another process pruned away is built again, not opened from a stale path
    pruned = (
        "import shutil\n"
        "from voicekit.speech.asr import language_model\n"
        "lm, _ = language_model(['zorblax'])\n"
        "shutil.rmtree(lm.parent)\n"
        "again, d = language_model(['zorblax'])\n"
        "print(again.exists() and d.exists())\n"
    )
    env = {**os.environ, "VOICEKIT_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", pruned], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["True"], out.stderr[-2000:]
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    fallback = build(str(blocked))
    assert "voicekit-lm-" in fallback[0] and fallback[2] == "True"
    assert not os.path.exists(fallback[0])  # removed when that process ended


def test_the_shipped_background_model_is_what_its_generator_writes(tmp_path: Path) -> None:
    """``python -m voicekit.speech.make_background_lm`` rebuilds the shipped background
    bigrams from pocketsphinx's stock model byte for byte; a hand edit or a corpus change
    without a regeneration fails here."""
    import subprocess
    import sys

    from voicekit.speech import make_background_lm

    out = tmp_path / "background.txt.gz"
    done = subprocess.run(
        [sys.executable, "-m", "voicekit.speech.make_background_lm", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == make_background_lm.OUTPUT.read_bytes()
