"""Generate the example log bundles that ``analysing-logs.ipynb`` reads.

Runs a short scripted conversation (a question, a hesitation, a barge-in) against the
embedded stand-in agent under two turn-detection configs, and writes the bundles to
``notebooks/example-logs/`` (about 1.5 MB a session, mostly its two WAV tracks). Run it again after a change
of the log format or of the stand-in agent::

    python notebooks/make_example_logs.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import voicekit as vk

HERE = Path(__file__).parent
OUT = HERE / "example-logs"


def main() -> None:
    user = vk.ScriptedUser(
        [
            vk.Say("what is the weather in paris"),
            vk.Say("i would like a table"),
            vk.Pause(0.7),
            vk.Say("for two tonight"),
            vk.BargeIn("no wait stop", after=1.0),
        ],
        seed=7,
    )
    if OUT.exists():
        shutil.rmtree(OUT)
    df = vk.sweep(
        user,
        grid={"min_silence": [400, 900]},
        repeats=1,
        log_dir=OUT,
        greeting="Hi.",
        tools=[get_weather],
    )
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    sessions = len(list(OUT.glob("*/meta.json")))
    print(f"wrote {sessions} sessions, {len(df)} turns, {size / 1e6:.1f} MB to {OUT}")


def get_weather(city: str) -> dict[str, object]:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


if __name__ == "__main__":
    main()
