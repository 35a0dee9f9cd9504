"""Draw ``docs/architecture.png``: voicekit's layers, each a box, imports pointing down.

The picture of ``docs/architecture.md`` (which has the same diagram in ASCII). Run from the
repository root after a change to the layers::

    .venv/bin/python docs/make_architecture.py

Uses matplotlib only (the Agg backend: no display needed).
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).with_name("architecture.png")

# (layer, modules, what it owns), top to bottom; a layer imports only the rows below it
STACK = [
    ("faces", "widgets/  cli.py", "thin views over the layers below"),
    ("analysis", "analysis/", "pure functions over logs: DataFrames, numbers, figures"),
    (
        "runtime",
        "session/  scripted.py  sweep.py  tools.py  agents.py",
        "the background client; scripted users; sweeps; stored agents",
    ),
    ("speech", "speech/", "VAD, recogniser, synthesis (engines, no protocol)"),
    ("format", "logformat/", "the voicekit-log/1 writer and reader"),
]
# the bottom row: two independent layers side by side
BASE = [
    ("audio", "audio/", "codecs, resampling, WAV,\ndevices, sources, sinks"),
    ("protocol", "protocol/", "pure: events, config, voices,\nsans-I/O state machines"),
]
# beside the stack
SIDE = [
    ("local/", "the stand-in agent:\nprotocol/ + speech/ + audio/"),
    ("testing/", "fixtures for users' tests:\na served agent, faults, factories"),
]
CROSS = "errors.py  _secrets.py  _aio.py   (used by every layer)"

LAYER_COLOUR = {
    "faces": "#dbe9f6",
    "analysis": "#e3f1dc",
    "runtime": "#fde8cf",
    "speech": "#efe1f5",
    "format": "#f6f0c8",
    "audio": "#e0e0e0",
    "protocol": "#e0e0e0",
}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    width, box_h, gap = 7.0, 0.78, 0.42
    rows = len(STACK) + 1
    top = rows * (box_h + gap)
    fig, ax = plt.subplots(figsize=(11, 7.6), layout="constrained")
    ax.set_xlim(-0.2, 10.6)
    ax.set_ylim(-0.45, top + 0.2)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, colour: str, title: str, sub: str) -> None:
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                w,
                h,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                facecolor=colour,
                edgecolor="#555555",
                linewidth=1.0,
            )
        )
        ax.text(x + 0.12, y + h - 0.2, title, fontsize=11, fontweight="bold", va="center")
        ax.text(x + 0.12, y + h / 2 - 0.12, sub, fontsize=8.5, va="center", color="#333333")

    def arrow(x: float, y0: float, y1: float) -> None:
        ax.add_patch(
            FancyArrowPatch(
                (x, y0), (x, y1), arrowstyle="-|>", mutation_scale=14, color="#444444", lw=1.2
            )
        )

    y = top - box_h
    for name, modules, owns in STACK:
        box(0.0, y, width, box_h, LAYER_COLOUR[name], f"{name}   {modules}", owns)
        arrow(width / 2, y, y - gap)
        y -= box_h + gap
    half = (width - 0.2) / 2
    for i, (name, modules, owns) in enumerate(BASE):
        box(i * (half + 0.2), y, half, box_h, LAYER_COLOUR[name], f"{name}   {modules}", owns)
    # the cross-cutting modules under everything
    ax.add_patch(
        FancyBboxPatch(
            (0.0, -0.3),
            width,
            0.45,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor="white",
            edgecolor="#888888",
            linestyle="--",
        )
    )
    ax.text(0.12, -0.07, CROSS, fontsize=9, va="center", color="#333333")

    side_y = top - 3 * (box_h + gap)
    for name, owns in SIDE:
        box(width + 0.5, side_y, 3.0, box_h + 0.25, "#f4f4f4", name, owns)
        side_y -= box_h + gap + 0.6
    ax.text(
        width + 0.5,
        top - 0.35,
        "imports point down only;\nan upper layer is imported\nlazily, inside a function\n"
        "(log.turns, log.plot_timeline())",
        fontsize=8.5,
        va="top",
        color="#333333",
    )
    fig.savefig(OUT, dpi=110)
    plt.close(fig)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
