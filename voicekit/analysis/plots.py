"""Matplotlib plots of turn timing and barge-ins; all times in seconds on the session clock.

Every function takes ``ax=None`` (a new Figure is made and returned) or an Axes to draw on
(its Figure is returned). User is always blue, agent always orange.

Analysis layer: matplotlib (imported when a plot is made), the tables of
:mod:`voicekit.analysis.metrics` and :mod:`voicekit.logformat`; never the session or
widgets. :func:`patch_text` and :func:`draw_texts` are shared with the panel's live timeline.
"""

from __future__ import annotations

import math
import os
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from voicekit.logformat import SessionLog

__all__ = [
    "draw_texts",
    "patch_text",
    "plot_barge_ins",
    "plot_fto",
    "plot_latency",
    "plot_sweep",
    "plot_timeline",
]

USER, AGENT, TOOL, EPOCH = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"
YLIM = (-0.8, 1.9)  # the timeline's y range: lanes at 0 (agent) and 1 (user), labels above
MAX_LABELS = 100  # tool names drawn while the window holds at most this many
HUMAN_BAND = (0.0, 0.2)  # modal gap between turns in human conversation (Stivers 2009)


def _axes(ax: Axes | None, size: tuple[float, float] = (10, 3.2)) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, new = plt.subplots(figsize=size, layout="constrained")
    plt.close(fig)  # shown by returning it; no duplicate in notebooks
    return fig, new


def _pd() -> Any:
    import pandas

    return pandas


def _table(data: Any, field: str = "df") -> Any:
    """A turn table: a DataFrame as it is; a SessionLog or a bundle path gives its ``turns``."""
    if isinstance(data, _pd().DataFrame):
        return data
    from voicekit.logformat.reader import as_log

    return as_log(data, field).turns


def _label(text: str, width: int = 28) -> str:
    return textwrap.shorten(text, width, placeholder="…") if text else ""


def plot_timeline(
    log: SessionLog | str | os.PathLike[str],
    start: float | None = None,
    end: float | None = None,
    waveforms: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Two lanes, user and agent, with speech, replies, barge-ins, tool calls and epochs.

    Parameters
    ----------
    log : SessionLog or path
        A session's log, or the path of its bundle.
    start, end : float, optional
        The window in seconds (default: the whole session).
    waveforms : bool
        Draw the audio envelopes in the lanes (read by memory map, decimated).
    """
    from voicekit.analysis.metrics import agent_replies, user_segments
    from voicekit.logformat.reader import as_log

    log = as_log(log)
    fig, ax = _axes(ax, (11, 3.4))
    t0 = 0.0 if start is None else start
    t1 = log.duration if end is None else end
    lanes = {"user": 1.0, "agent": 0.0}
    height = 0.7
    if waveforms:
        _envelope(ax, log, "user", lanes["user"], height, t0, t1, USER)
        _envelope(ax, log, "agent", lanes["agent"], height, t0, t1, AGENT)
    segments = [
        s
        for s in user_segments(log)
        if s["end"] >= t0 and s["start"] <= t1 and s["kind"] != "echo"  # echo: not the user
    ]
    # one collection a kind of span, however many there are: an hour draws as fast as a minute
    if segments:
        ax.broken_barh(
            [(s["start"], s["end"] - s["start"]) for s in segments],
            (lanes["user"] - height / 2, height),
            facecolors=USER,
            alpha=0.35,
            label="user speech",
        )
    replies = [r for r in agent_replies(log) if not math.isnan(r["a_on"])]
    heard = [
        (r["a_on"], r["a_off"] - r["a_on"]) for r in replies if r["a_off"] >= t0 and r["a_on"] <= t1
    ]
    if heard:
        ax.broken_barh(
            heard,
            (lanes["agent"] - height / 2, height),
            facecolors=AGENT,
            alpha=0.35,
            label="agent speech",
        )
    # markers: server's view of the user's speech, reply start
    ms = 6 if t1 - t0 <= 600 else 3  # smaller over more than ten minutes
    for kind, marker, y in (
        ("input.speech.started", "^", 1.42),
        ("input.speech.stopped", "v", 1.42),
    ):
        ts = [e["t"] for e in log.of_type(kind) if t0 <= e["t"] <= t1]
        ax.plot(
            ts, [y] * len(ts), marker, color=USER, ms=ms, ls="none", label=kind.split(".", 1)[1]
        )
    starts = [e["t"] for e in log.of_type("reply.started") if t0 <= e["t"] <= t1]
    ax.plot(
        starts, [0.42] * len(starts), "d", color=AGENT, ms=ms - 1, ls="none", label="reply.started"
    )
    # barge-ins: the residual playback after the onset, shaded
    residuals: dict[str, list[tuple[float, float]]] = {}
    for row in log.barge_ins.itertuples():
        if t0 <= row.onset <= t1 and row.residual > 0:
            residuals.setdefault(str(row.kind), []).append((row.onset, row.residual))
    for kind, spans in residuals.items():
        _shade(ax, spans, "red", f"barge-in residual ({kind})")
    # tools: dead air shaded, each named while few enough to read
    tools = [
        row
        for row in log.turns.itertuples()
        if isinstance(row.tool, str) and not math.isnan(row.tool_dead_air) and t0 <= row.u_off <= t1
    ]
    _shade(ax, [(row.u_off, row.tool_dead_air) for row in tools], TOOL, "tool dead air")
    if len(tools) <= MAX_LABELS:
        for row in tools:
            ax.text(row.u_off, -0.62, f"{row.tool}()", color=TOOL, fontsize=8, va="top")
    # config epochs: boundaries labelled with what changed
    for e in log.of_type("config.epoch"):
        if e.get("epoch", 0) and t0 <= e["t"] <= t1:
            ax.axvline(e["t"], color=EPOCH, ls="--", lw=1)
            ax.text(
                e["t"],
                1.62,
                _label(patch_text(e.get("patch") or {}), 40),
                fontsize=8,
                color=EPOCH,
                ha="left",
                va="bottom",
            )
    # transcripts: one label per segment, staggered so neighbours do not overlap
    draw_texts(
        ax, [(s["start"], s["text"]) for s in segments if s["text"]], lanes["user"] + 0.05, t1 - t0
    )
    draw_texts(
        ax,
        [(r["a_on"], r["text"]) for r in replies if r["text"] and t0 <= r["a_on"] <= t1],
        lanes["agent"] + 0.05,
        t1 - t0,
    )
    ax.set_yticks([lanes["agent"], lanes["user"]], ["agent", "user"])
    ax.set_ylim(*YLIM)
    ax.set_xlim(t0, t1)
    ax.set_xlabel("session time (s)")
    ax.set_title(f"Session {log.session_id or log.path.name}: timeline")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(
        unique.values(),
        unique.keys(),
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        frameon=False,
    )
    return fig


def patch_text(patch: dict[str, Any]) -> str:
    """A config patch as one line, ``key=value, ...`` (nested sections flattened)."""
    flat: list[str] = []

    def walk(d: dict[str, Any], prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, "")
            else:
                flat.append(f"{k}={v}")

    walk(patch)
    return ", ".join(flat)


def draw_texts(
    ax: Axes, items: list[tuple[float, str]], y: float, span: float, color: str = "black"
) -> None:
    """Draw transcript labels at height ``y``, each shortened to the room before the next.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    items : list of (float, str)
        ``(time in s, text)`` pairs, in any order.
    y : float
        The lane's height; labels sit just above it.
    span : float
        Seconds the axes show (sets how many characters fit a second).
    color : str
        Text colour.
    """
    items = sorted(items)
    chars_per_s = 150 / span if span > 0 else 10.0
    for i, (t, text) in enumerate(items):
        room = (items[i + 1][0] - t) if i + 1 < len(items) else span
        width = int(room * chars_per_s) - 1
        if width < 6:
            continue
        ax.text(
            t,
            y + 0.1,
            _label(text, min(width, 48)),
            fontsize=7,
            va="bottom",
            ha="left",
            color=color,
            clip_on=True,
        )


def _shade(ax: Axes, spans: list[tuple[float, float]], color: str, label: str) -> None:
    """Spans ``(start, width)`` shaded over the whole height, as one collection."""
    if spans:
        ax.broken_barh(
            spans, (YLIM[0], YLIM[1] - YLIM[0]), facecolors=color, alpha=0.15, label=label
        )


def _envelope(
    ax: Axes, log: SessionLog, track: str, y: float, h: float, t0: float, t1: float, color: str
) -> None:
    audio = log.track_samples(track)  # a bundle's by memory map, a recording's channel
    n = len(audio)
    if n < 2:
        return
    a, b = max(0, int(t0 * 24000)), min(n, int(t1 * 24000))
    if b <= a:
        return
    bins = 2000
    step = max(1, (b - a) // bins)
    usable = (b - a) // step * step
    # peak per bin from the int16 blocks' max and min (no int32 copy of an hour of audio)
    blocks = audio[a : a + usable].reshape(-1, step)
    high = blocks.max(axis=1).astype(np.int32)
    low = blocks.min(axis=1).astype(np.int32)
    peaks = np.maximum(high, -low) / 32768
    ts = a / 24000 + (np.arange(len(peaks)) + 0.5) * step / 24000
    ax.fill_between(ts, y - peaks * h / 2, y + peaks * h / 2, color=color, alpha=0.6, lw=0)


def plot_latency(df: pd.DataFrame, by: str = "epoch", ax: Axes | None = None) -> Figure:
    """Distributions of fto, endpoint_delay and server_first_audio per group (box plots)."""
    metrics = ["fto", "endpoint_delay", "server_first_audio"]
    df = _table(df)
    if by not in df.columns:
        from voicekit.errors import ConfigError

        raise ConfigError(
            f"by={by!r} is not a column of the turn table; try 'epoch' or 'min_silence'", field="by"
        )
    fig, ax = _axes(ax, (10, 3.6))
    groups = [g for g, _ in df.groupby(by, dropna=False)]
    width = 0.8 / len(metrics)
    colors = [USER, AGENT, TOOL]
    for m, (metric, color) in enumerate(zip(metrics, colors, strict=True)):
        data = [sub[metric].dropna().to_numpy() for _, sub in df.groupby(by, dropna=False)]
        pos = np.arange(len(groups)) + (m - 1) * width
        keep = [i for i, d in enumerate(data) if len(d)]
        if keep:
            bp = ax.boxplot(
                [data[i] for i in keep],
                positions=pos[keep],
                widths=width * 0.9,
                patch_artist=True,
                manage_ticks=False,
            )
            for box in bp["boxes"]:
                box.set_facecolor(color)
                box.set_alpha(0.5)
        ax.plot([], [], "s", color=color, alpha=0.5, label=metric)
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups])
    ax.set_xlabel(by)
    ax.set_ylabel("seconds")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title(f"Turn latencies by {by}")
    return fig


def plot_fto(df: pd.DataFrame, ax: Axes | None = None, bins: int = 30) -> Figure:
    """Histogram of the floor-transfer offset with the human reference band (0-200 ms)."""
    df = _table(df)
    fig, ax = _axes(ax, (8, 3.2))
    values = df["fto"].dropna().to_numpy() if "fto" in df else np.zeros(0)
    ax.axvspan(*HUMAN_BAND, color="green", alpha=0.15, label="human modal gap 0-200 ms")
    if len(values):
        ax.hist(values, bins=bins, color=AGENT, alpha=0.8, label=f"{len(values)} turns")
        ax.axvline(
            float(np.median(values)),
            color="black",
            ls="--",
            lw=1,
            label=f"median {np.median(values):.2f} s",
        )
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("floor-transfer offset a_on - u_off (s); negative = overlap")
    ax.set_ylabel("turns")
    ax.set_title("Floor-transfer offset (Stivers et al. 2009; Heldner & Edlund 2010)")
    ax.legend(fontsize=8, frameon=False)
    return fig


def plot_barge_ins(data: SessionLog | pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Detection latency, stop latency and residual (s) by kind, and the heard fraction."""
    if isinstance(data, _pd().DataFrame):
        df: Any = data
    else:
        from voicekit.logformat.reader import as_log

        df = as_log(data, "data").barge_ins
    fig, ax = _axes(ax, (9, 3.2))
    cols = ["detect_latency", "stop_latency", "residual"]
    kinds = sorted(df["kind"].dropna().unique()) if len(df) else []
    width = 0.8 / max(1, len(kinds))
    palette = {"interruption": "#d62728", "backchannel": TOOL, "echo": EPOCH}
    for k, kind in enumerate(kinds):
        sub = df[df["kind"] == kind]
        means = [sub[c].mean() for c in cols]
        x = np.arange(len(cols)) + (k - (len(kinds) - 1) / 2) * width
        ax.bar(
            x,
            means,
            width * 0.9,
            color=palette.get(kind, USER),
            alpha=0.7,
            label=f"{kind} (n={len(sub)}, heard {sub['heard_fraction'].mean():.0%})",
        )
        for c, col in enumerate(cols):
            ax.plot([x[c]] * len(sub), sub[col], "o", color="black", ms=3)
    ax.axhline(0.5, color="black", ls=":", lw=1, label="good stop latency ≤ 0.5 s")
    ax.set_xticks(np.arange(len(cols)), cols)
    ax.set_ylabel("seconds")
    ax.set_title("Barge-ins" if kinds else "Barge-ins: none in this data")
    ax.legend(fontsize=8, frameon=False)
    return fig


def plot_sweep(
    df: pd.DataFrame,
    x: str = "min_silence",
    y: tuple[str, str] = ("fto", "premature"),
    ax: Axes | None = None,
) -> Figure:
    """The trade-off of a sweep: median latency (left) against premature rate (right) over ``x``.

    Error bars show the spread across repeats (interquartile range of per-run medians).
    """
    df = _table(df)
    for name in (x, *y):
        if name not in df:
            from voicekit.errors import ConfigError

            raise ConfigError(
                f"{name!r} is not a column of the sweep table; pass x= and y= columns of it, "
                "e.g. x='min_silence', y=('fto', 'premature')",
                field="x" if name == x else "y",
            )
    fig, ax = _axes(ax, (8, 3.4))
    latency, rate = y
    runs = df.groupby([x, "run"] if "run" in df else [x])
    per_run = runs.agg(lat=(latency, "median"), rate=(rate, "mean")).reset_index()
    summary = per_run.groupby(x).agg(
        lat=("lat", "median"),
        lo=("lat", lambda s: s.quantile(0.25)),
        hi=("lat", lambda s: s.quantile(0.75)),
        rate=("rate", "mean"),
    )
    xs = summary.index.to_numpy()
    ax.errorbar(
        xs,
        summary["lat"],
        yerr=[summary["lat"] - summary["lo"], summary["hi"] - summary["lat"]],
        color=AGENT,
        marker="o",
        capsize=3,
        label=f"median {latency}",
    )
    ax.set_xlabel(x)
    ax.set_ylabel(f"{latency} (s)", color=AGENT)
    right = ax.twinx()
    right.plot(xs, summary["rate"] * 100, color=USER, marker="s", label=f"{rate} rate")
    right.set_ylabel(f"{rate} turns (%)", color=USER)
    right.set_ylim(bottom=0)
    ax.set_title(f"Sweep of {x}: {latency} against {rate}")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, frameon=False, loc="upper center")
    return fig
