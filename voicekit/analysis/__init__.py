"""Analysis: turn tables, barge-ins, summaries, plots, sweeps and reports of log bundles.

Analysis layer: reads log bundles (:mod:`voicekit.logformat`); pandas and matplotlib are
imported when first needed.
"""

from voicekit.analysis.many import find_logs, load_logs, sweep
from voicekit.analysis.metrics import (
    CONFIG_COLUMNS,
    TURN_COLUMNS,
    barge_in_table,
    echo_check,
    greeting_latency,
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
    "TURN_COLUMNS",
    "barge_in_table",
    "echo_check",
    "find_logs",
    "greeting_latency",
    "load_logs",
    "plot_barge_ins",
    "plot_fto",
    "plot_latency",
    "plot_sweep",
    "plot_timeline",
    "report",
    "summarize",
    "sweep",
    "turn_table",
    "user_segments",
]
