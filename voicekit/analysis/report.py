"""A self-contained HTML report of one log or many: summary, plots, transcript.

Analysis layer: built from the other analysis modules and :mod:`voicekit.logformat`; never
imports the session, the stand-in agent or widgets.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["report"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


def report(
    logs: Any | str | os.PathLike[str] | Iterable[Any],
    path: str | os.PathLike[str] = "voicekit-report.html",
    progress: bool = False,
) -> Path:
    """Write an HTML report (summary table, plots as embedded images, transcripts).

    Parameters
    ----------
    logs : SessionLog, path, glob, or a list of them
        One session gets its timeline and transcript; many get the combined tables.
    path : str or path
        The HTML file to write (self-contained: images are embedded).

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib

    from voicekit.analysis.many import find_logs, open_log
    from voicekit.analysis.metrics import summarize
    from voicekit.analysis.plots import plot_barge_ins, plot_fto, plot_latency, plot_timeline
    from voicekit.logformat import SessionLog

    items = list(logs) if isinstance(logs, (list, tuple)) else [logs]
    sessions: list[SessionLog] = []
    for item in items:
        if isinstance(item, SessionLog):
            sessions.append(item)
        elif not isinstance(item, (str, os.PathLike)):
            from voicekit.errors import ConfigError

            raise ConfigError(
                f"logs must be a vk.SessionLog, a bundle path, a glob or a list of them, "
                f"got {type(item).__name__}",
                field="logs",
            )
        else:
            sessions += [open_log(p)[0] for p in find_logs(item)]
    if not sessions:
        from voicekit.errors import LogFormatError

        raise LogFormatError("no log bundles found; pass bundle directories or a glob")
    import pandas as pd

    turns = pd.concat(
        [s.turns.assign(session_id=s.session_id) for s in sessions], ignore_index=True
    )
    bis = pd.concat(
        [s.barge_ins.assign(session_id=s.session_id) for s in sessions], ignore_index=True
    )
    summary = summarize(turns, bis)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>voicekit report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}img{max-width:100%}.u{color:#1f77b4}"
        ".a{color:#ff7f0e}</style>",
        f"<h1>voicekit report: {len(sessions)} session(s), {len(turns)} turns</h1>",
        "<h2>Summary</h2>",
        pd.DataFrame([summary])
        .T.rename(columns={0: "value"})
        .to_html(float_format=lambda x: f"{x:.3f}"),
    ]
    with matplotlib.rc_context({"backend": "Agg"}):
        figs = [
            ("Floor-transfer offset", plot_fto(turns)),
            ("Latency by epoch", plot_latency(turns)),
        ]
        if len(bis):
            figs.append(("Barge-ins", plot_barge_ins(bis)))
        if len(sessions) == 1:
            figs.insert(0, ("Timeline", plot_timeline(sessions[0])))
        for title, fig in figs:
            parts.append(
                f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{_png(fig)}'>"
            )
    cols = [
        "turn",
        "u_on",
        "u_off",
        "text",
        "reply_text",
        "fto",
        "overlap",
        "endpoint_delay",
        "premature",
        "interrupted",
    ]
    parts += [
        "<h2>Turns</h2>",
        turns[[c for c in cols if c in turns]].to_html(float_format=lambda x: f"{x:.3f}"),
    ]
    if len(sessions) == 1:
        parts.append("<h2>Transcript</h2>")
        for e in sessions[0].of_type("transcript.user", "transcript.agent", direction="recv"):
            who = "u" if e["type"] == "transcript.user" else "a"
            name = "user" if who == "u" else "agent"
            text = html.escape(str(e.get("text", "")))
            parts.append(f"<p class='{who}'><b>{e['t']:.2f} s {name}:</b> {text}</p>")
    out = Path(path)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
