"""Analysis: turn tables, barge-ins, summaries, plots and reports of log bundles.

Analysis layer: pure functions over logs (:mod:`voicekit.logformat`) returning DataFrames,
numbers and figures; pandas and matplotlib are imported when first needed. It may use the
speech engines (VAD for logs without scripted-user ground truth) and the audio helpers; it
never imports the session, the stand-in agent or widgets, and never starts a session.
"""

from typing import Any

from voicekit.analysis.compare import clock_offset, compare
from voicekit.analysis.dataset import export_dataset
from voicekit.analysis.many import find_logs, load_logs
from voicekit.analysis.metrics import (
    CONFIG_COLUMNS,
    REPLY_COLUMNS,
    TURN_COLUMNS,
    barge_in_table,
    echo_check,
    greeting_latency,
    reply_table,
    summarize,
    turn_table,
    user_segments,
)
from voicekit.analysis.plots import (
    plot_barge_ins,
    plot_fto,
    plot_latency,
    plot_sweep,
    plot_timeline,
)
from voicekit.analysis.report import report

__all__ = [
    "CONFIG_COLUMNS",
    "REPLY_COLUMNS",
    "TURN_COLUMNS",
    "barge_in_table",
    "clock_offset",
    "compare",
    "echo_check",
    "export_dataset",
    "find_logs",
    "greeting_latency",
    "load_logs",
    "plot_barge_ins",
    "plot_fto",
    "plot_latency",
    "plot_sweep",
    "plot_timeline",
    "reply_table",
    "report",
    "summarize",
    "turn_table",
    "user_segments",
]


def __getattr__(name: str) -> Any:
    # voicekit.analysis.sweep: moved to the runtime (voicekit.sweep), kept as an alias
    if name == "sweep":
        from voicekit.sweep import sweep

        return sweep
    raise AttributeError(f"module 'voicekit.analysis' has no attribute {name!r}")
