"""Speech engine cost on one core: VAD + recognition and synthesis real-time factors.

Targets: VAD + recognition RTF <= 0.25; synthesis RTF <= 0.1. Prints; asserts nothing.
"""

from __future__ import annotations

import time

from voicekit.audio import resample
from voicekit.speech import USER_STYLE, Recognizer, SileroVad, style_for_voice, synthesize

SENTENCES = [
    "what is the weather in paris",
    "i would like to book a table for two",
    "where is my order",
    "can you check the status of my package",
    "i need to change my appointment to friday",
    "thank you very much",
]


def main() -> dict[str, float]:
    style = style_for_voice("alba")
    synthesize("warm up", style)
    t = time.process_time()
    audio = [synthesize(s, USER_STYLE).samples for s in SENTENCES * 3]
    synth_cpu = time.process_time() - t
    seconds = sum(len(a) for a in audio) / 24000
    pcm16 = [resample(a, 24000, 16000) for a in audio]
    vad, rec = SileroVad(), Recognizer()
    t = time.process_time()
    for x in pcm16:
        rec.start()
        for i in range(0, len(x), 800):  # 50 ms chunks, as the agent streams them
            vad.process(x[i : i + 800])
            rec.feed(x[i : i + 800].tobytes())
        rec.finish()
    asr_cpu = time.process_time() - t
    t = time.process_time()
    for x in pcm16:
        vad.process(x)
    vad_cpu = time.process_time() - t
    result = {
        "synthesis_rtf": synth_cpu / seconds,
        "vad_asr_rtf": asr_cpu / seconds,
        "vad_rtf": vad_cpu / seconds,
        "audio_seconds": seconds,
    }
    print(
        f"speech: VAD + recognition RTF {result['vad_asr_rtf']:.3f} (target <= 0.25; "
        f"VAD alone {result['vad_rtf']:.4f}) over {seconds:.0f} s of speech"
    )
    print(f"speech: synthesis RTF {result['synthesis_rtf']:.4f} (target <= 0.1)")
    return result


if __name__ == "__main__":
    main()
