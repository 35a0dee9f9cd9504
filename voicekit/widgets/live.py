"""The live view of a running session: transcript, status, timeline and metrics.

:class:`LiveState` folds session events (the log lines observers receive) into what the
panel shows. It lives on the kernel's thread: the panel hands events over in batches. The
timeline drawn here is the live cousin of :func:`voicekit.plot_timeline` (same lanes and
colours) but built from events alone, so a redraw never reads the audio files.

Live metrics are estimates: with a scripted user the end of the user's speech is known
exactly; with a microphone it is the server's ``input.speech.stopped`` (which comes after the
end-of-turn silence, so the live ``fto`` reads low). The turn table of the saved log is exact.

Faces layer: imports matplotlib and the colours and label helpers of
:mod:`voicekit.analysis.plots` lazily; never the session itself (it receives its events).
"""

from __future__ import annotations

import collections
import html
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Line", "LiveState", "draw_timeline", "legend_items"]

PREMATURE_GAP_S = 0.3  # speech resuming this soon after the server ended the turn
BARGE_IN_REASONS = ("speech_started", "interrupted")


@dataclass
class Line:
    """One transcript line: ``kind`` is user, partial, agent, tool, epoch, error, warning
    or info."""

    kind: str
    text: str
    t: float
    reply_id: str | None = None
    interrupted: bool = False
    words: list[tuple[float, str]] = field(default_factory=list)  # (start_ms, word) deltas


@dataclass
class _Span:
    start: float
    end: float = math.nan
    text: str = ""
    reply_id: str | None = None
    cut: bool = False


@dataclass
class LiveState:
    """What the panel shows, folded from a session's events (kernel thread only)."""

    max_lines: int = 300
    keep_s: float = 600.0
    lines: collections.deque[Line] = field(default_factory=collections.deque)
    user_spans: list[_Span] = field(default_factory=list)  # the server's VAD view
    script_spans: list[_Span] = field(default_factory=list)  # a scripted user's truth
    agent_spans: list[_Span] = field(default_factory=list)  # playback, as heard
    reply_starts: list[float] = field(default_factory=list)
    barge_ins: list[float] = field(default_factory=list)
    epochs: list[tuple[float, str]] = field(default_factory=list)
    tools: list[tuple[float, str]] = field(default_factory=list)
    fto: list[float] = field(default_factory=list)
    premature: int = 0
    silent: list[str] = field(default_factory=list)  # replies that stayed silent (no tool)
    restarts: list[str] = field(default_factory=list)  # why each restart happened
    user_speaking: bool = False
    agent_speaking: bool = False
    last_error: str | None = None
    last_t: float = 0.0
    version: int = 0  # bumps whenever something visible changed

    # -- folding events -------------------------------------------------------------------
    def feed(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Fold a batch of events (in arrival order)."""
        for e in events:
            handler = _HANDLERS.get(e.get("type", ""))
            t = e.get("t")
            if isinstance(t, (int, float)):
                self.last_t = max(self.last_t, float(t))
            if handler is not None:
                handler(self, e)
                self.version += 1
        self._trim()

    def _trim(self) -> None:
        while len(self.lines) > self.max_lines:
            self.lines.popleft()
        horizon = self.last_t - self.keep_s
        for spans in (self.user_spans, self.script_spans, self.agent_spans):
            while len(spans) > 1 and spans[0].end < horizon:
                spans.pop(0)
        for marks in (self.reply_starts, self.barge_ins):
            while marks and marks[0] < horizon:
                marks.pop(0)

    def _line(self, kind: str, text: str, t: float, **kw: Any) -> Line:
        line = Line(kind, text, t, **kw)
        self.lines.append(line)
        return line

    def _agent_line(self, reply_id: str | None, t: float) -> Line:
        for line in reversed(self.lines):
            if line.kind == "agent" and line.reply_id == reply_id:
                return line
        return self._line("agent", "", t, reply_id=reply_id)

    def _speech_started(self, e: dict[str, Any]) -> None:
        t = float(e["t"])
        stopped = [s.end for s in self.user_spans if not math.isnan(s.end)]
        if not self.script_spans and stopped and 0 <= t - stopped[-1] <= PREMATURE_GAP_S:
            self.premature += 1
        self.user_spans.append(_Span(t))
        self.user_speaking = True
        if self.agent_speaking and self.agent_spans:
            self.agent_spans[-1].cut = True  # a barge-in candidate; playback.stop decides

    def _speech_stopped(self, e: dict[str, Any]) -> None:
        if self.user_spans and math.isnan(self.user_spans[-1].end):
            self.user_spans[-1].end = float(e["t"])
        self.user_speaking = False

    def _utterance(self, e: dict[str, Any]) -> None:
        start, end = float(e.get("start", e["t"])), float(e.get("end", e["t"]))
        self.script_spans.append(_Span(start, end, str(e.get("text", ""))))
        if any(start < s.end < end - 0.05 for s in self.user_spans):
            self.premature += 1

    def _user_delta(self, e: dict[str, Any]) -> None:
        last = self.lines[-1] if self.lines else None
        if last is not None and last.kind == "partial":
            last.text, last.t = str(e.get("text", "")), float(e["t"])
        else:
            self._line("partial", str(e.get("text", "")), float(e["t"]))

    def _user_final(self, e: dict[str, Any]) -> None:
        text = str(e.get("text", ""))
        for line in reversed(self.lines):
            if line.kind == "partial":
                line.kind, line.text = "user", text
                break
        else:
            self._line("user", text, float(e["t"]))
        closed = [s for s in self.user_spans if not math.isnan(s.end) and not s.text]
        if closed:
            closed[-1].text = text

    def _reply_started(self, e: dict[str, Any]) -> None:
        self.reply_starts.append(float(e["t"]))
        self._agent_line(e.get("reply_id"), float(e["t"]))

    def _agent_delta(self, e: dict[str, Any]) -> None:
        line = self._agent_line(e.get("reply_id"), float(e["t"]))
        delta = str(e.get("delta", ""))
        if line.text and not line.text.endswith(" ") and not delta.startswith(" "):
            delta = " " + delta  # word-level deltas carry no spaces
        line.text += delta
        start_ms = e.get("start_ms")
        if isinstance(start_ms, (int, float)):
            line.words.append((float(start_ms), delta))

    def _agent_final(self, e: dict[str, Any]) -> None:
        line = self._agent_line(e.get("reply_id"), float(e["t"]))
        line.text = str(e.get("text", ""))
        line.words = []
        line.interrupted = line.interrupted or bool(e.get("interrupted"))
        for span in self.agent_spans:
            if span.reply_id == e.get("reply_id"):
                span.text = line.text

    def _reply_done(self, e: dict[str, Any]) -> None:
        if e.get("status") == "interrupted":
            self._agent_line(e.get("reply_id"), float(e["t"])).interrupted = True

    def _playback_start(self, e: dict[str, Any]) -> None:
        t = float(e["t"])
        ends = [s.end for s in (self.script_spans or self.user_spans) if s.end <= t]
        previous = self.agent_spans[-1].start if self.agent_spans else -math.inf
        if ends and ends[-1] > previous:
            self.fto.append(t - ends[-1])
        self.agent_spans.append(_Span(t, reply_id=e.get("reply_id")))
        self.agent_speaking = True

    def _playback_stop(self, e: dict[str, Any]) -> None:
        t = float(e["t"])
        for span in reversed(self.agent_spans):
            if span.reply_id == e.get("reply_id") and math.isnan(span.end):
                span.end = t
                if e.get("reason") in BARGE_IN_REASONS:
                    onsets = [s.start for s in self.user_spans if span.start <= s.start <= t]
                    self.barge_ins.append(onsets[-1] if onsets else t)
                    span.cut = True
                else:
                    span.cut = False
                break
        self.agent_speaking = any(math.isnan(s.end) for s in self.agent_spans[-3:])

    def _tool_call(self, e: dict[str, Any]) -> None:
        name = str(e.get("name", "?"))
        self.tools.append((float(e["t"]), name))
        self._line("tool", f"{name}({_short(e.get('arguments'))})", float(e["t"]))

    def _epoch(self, e: dict[str, Any]) -> None:
        if not e.get("epoch"):
            return
        from voicekit.analysis.plots import patch_text

        if e.get("restarted"):  # a fresh session; its prompt holds the whole conversation
            text = "restarted, the conversation carried in the system prompt"
        else:
            text = patch_text(e.get("patch") or {})
        self.epochs.append((float(e["t"]), text))
        self._line("epoch", f"epoch {e['epoch']}: {text}", float(e["t"]))

    def _silent(self, e: dict[str, Any]) -> None:
        reply_id = str(e.get("reply_id") or "?")
        duration = float(e.get("duration") or 0.0)
        t = float(e["t"])
        if e.get("tool_call"):  # tool pre-ambles are often silent by design: a note only
            self._line("info", f"tool pre-amble {reply_id} was silent", t)
            return
        self.silent.append(reply_id)
        heard = f"{duration:.1f} s of audio, none audible" if duration else "no audio at all"
        self._line("warning", f"reply {reply_id} was silent ({heard})", t, reply_id=reply_id)

    def _restarted(self, e: dict[str, Any]) -> None:
        reason = str(e.get("reason") or "resume failed")
        short = "resume failed" if reason.startswith("resume failed") else reason
        self.restarts.append(short)
        self._line(
            "warning",
            f"restarted: {short}; new session {e.get('new_session_id')} carries the "
            "conversation in its system prompt",
            float(e["t"]),
        )

    def _error(self, e: dict[str, Any]) -> None:
        message = str(e.get("message") or e.get("code") or "error")
        self.last_error = message
        self._line("error", message, float(e["t"]))

    # -- views ----------------------------------------------------------------------------
    def _played_text(self, line: Line, now: float) -> str:
        """An agent line as heard so far: words not yet played are greyed."""
        span = next((s for s in self.agent_spans if s.reply_id == line.reply_id), None)
        if not line.words or span is None or not math.isnan(span.end):
            return html.escape(line.text) or "…"
        heard_ms = (now - span.start) * 1000.0
        played = "".join(w for ms, w in line.words if ms <= heard_ms)
        rest = "".join(w for ms, w in line.words if ms > heard_ms)
        return f'{html.escape(played)}<span style="color:#ccc">{html.escape(rest)}</span>'

    def transcript_html(self, now: float | None = None, height_px: int = 220) -> str:
        """The transcript as HTML, newest at the bottom (kept scrolled there).

        ``now`` (session seconds) greys the words of the playing reply not yet heard.
        """
        rows = []
        for line in self.lines:
            text = html.escape(line.text) or "…"
            if line.kind == "agent" and now is not None:
                text = self._played_text(line, now)
            if line.kind == "partial":
                rows.append(f'<div class="vk-partial" style="color:#999"><b>you</b> {text}</div>')
            elif line.kind == "user":
                rows.append(f'<div class="vk-user" style="color:#1f77b4"><b>you</b> {text}</div>')
            elif line.kind == "agent":
                mark = (
                    ' <span style="color:#d62728">[interrupted]</span>' if line.interrupted else ""
                )
                rows.append(
                    f'<div class="vk-agent" style="color:#c25a00"><b>agent</b> {text}{mark}</div>'
                )
            elif line.kind == "tool":
                rows.append(f'<div class="vk-tool" style="color:#2ca02c">⚙ {text}</div>')
            elif line.kind == "error":
                rows.append(f'<div class="vk-error" style="color:#d62728">⚠ {text}</div>')
            elif line.kind == "warning":
                rows.append(f'<div class="vk-warning" style="color:#b36b00">⚠ {text}</div>')
            else:
                rows.append(
                    f'<div class="vk-note" style="color:#7f7f7f;font-style:italic">{text}</div>'
                )
        body = "".join(reversed(rows)) or '<div style="color:#999">(no conversation yet)</div>'
        return (
            f'<div class="vk-transcript" style="height:{height_px}px;overflow-y:auto;'
            "display:flex;flex-direction:column-reverse;font-family:sans-serif;"
            f'font-size:13px;line-height:1.45">{body}</div>'
        )

    def metrics(self) -> dict[str, Any]:
        """Last and median live fto, barge-ins and premature cut-offs."""
        return {
            "fto_last": self.fto[-1] if self.fto else math.nan,
            "fto_median": statistics.median(self.fto) if self.fto else math.nan,
            "turns": len(self.fto),
            "barge_ins": len(self.barge_ins),
            "premature": self.premature,
            "silent_replies": len(self.silent),
        }

    def metrics_html(self) -> str:
        """The metrics strip."""
        m = self.metrics()

        def ms(v: float) -> str:
            return "n/a" if math.isnan(v) else f"{v * 1000:.0f} ms"

        cells = [
            ("fto last", ms(m["fto_last"])),
            ("fto median", ms(m["fto_median"])),
            ("answered turns", str(m["turns"])),
            ("barge-ins", str(m["barge_ins"])),
            ("premature cut-offs", str(m["premature"])),
            ("silent replies", str(m["silent_replies"])),
        ]
        inner = "".join(
            f'<div style="margin-right:22px"><div style="font-size:11px;color:#777">{k}</div>'
            f'<div style="font-size:16px"><b>{v}</b></div></div>'
            for k, v in cells
        )
        return f'<div class="vk-metrics" style="display:flex;font-family:sans-serif">{inner}</div>'


_HANDLERS: dict[str, Any] = {
    "input.speech.started": LiveState._speech_started,
    "input.speech.stopped": LiveState._speech_stopped,
    "user.utterance": LiveState._utterance,
    "transcript.user.delta": LiveState._user_delta,
    "transcript.user": LiveState._user_final,
    "reply.started": LiveState._reply_started,
    "transcript.agent.delta": LiveState._agent_delta,
    "transcript.agent": LiveState._agent_final,
    "reply.done": LiveState._reply_done,
    "playback.start": LiveState._playback_start,
    "playback.stop": LiveState._playback_stop,
    "tool.call": LiveState._tool_call,
    "config.epoch": LiveState._epoch,
    "reply.silent": LiveState._silent,
    "session.restarted": LiveState._restarted,
    "error": LiveState._error,
}


def _short(value: Any, width: int = 40) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value or {}, separators=(",", ":"))
    text = text.strip("{}")
    return text if len(text) <= width else text[: width - 1] + "…"


def legend_items(state: LiveState) -> list[tuple[str, str, str]]:
    """The timeline's legend as (color, line style, label): "bar", "solid" or "dashed"."""
    from voicekit.analysis.plots import AGENT, EPOCH, USER

    user = "user speech" + (" (script)" if state.script_spans else " (server VAD)")
    return [
        (USER, "bar", user),
        (AGENT, "bar", "agent speech (played)"),
        (AGENT, "diamond", "reply started"),
        ("#d62728", "solid", "barge-in"),
        (EPOCH, "dashed", "config epoch"),
    ]


def draw_timeline(
    ax: Axes, state: LiveState, now: float, window: float = 30.0, legend: bool = True
) -> None:
    """Draw the last ``window`` seconds of ``state`` on ``ax``.

    Made for redrawing many times a second: the first call sets up the axes (ticks, labels,
    legend); later calls on the same axes only replace the data artists and move the x
    limits (clearing the axes would rebuild every tick). Text is what costs most in a
    frame, so a caller that shows :func:`legend_items` itself passes ``legend=False`` and
    the axis label and legend are left out.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from voicekit.analysis.plots import AGENT, EPOCH, TOOL, USER, draw_texts

    t0, t1 = max(0.0, now - window), max(window, now)
    items = legend_items(state)
    if getattr(ax, "_vk_legend", None) != (items, legend):
        ax.cla()
        ax.set_yticks([0.0, 1.0], ["agent", "user"])
        ax.set_ylim(-0.7, 1.7)
        ax.xaxis.set_major_locator(MaxNLocator(7))
        ax.tick_params(labelsize=8)
        if legend:
            ax.set_xlabel("session time (s)", fontsize=8)
            styles: dict[str, dict[str, Any]] = {"bar": {"lw": 6, "alpha": 0.45}}
            styles["solid"] = {"lw": 1.5}
            styles |= {"dashed": {"lw": 1, "ls": "--"}, "diamond": {"marker": "d", "ls": "none"}}
            handles = [Line2D([], [], color=c, label=t, **styles[k]) for c, k, t in items]
            ax.legend(
                handles=handles,
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                fontsize=7,
                frameon=False,
            )
        ax._vk_legend = (items, legend)  # type: ignore[attr-defined]
    else:
        for artist in [*ax.lines, *ax.collections, *ax.texts]:
            artist.remove()
    height = 0.6
    user = state.script_spans or state.user_spans

    def bars(spans: list[_Span], y: float, color: str) -> None:
        shown = [(s.start, (now if math.isnan(s.end) else s.end) - s.start) for s in spans]
        shown = [(a, w) for a, w in shown if a + w >= t0 and a <= t1]
        if shown:
            ax.broken_barh(shown, (y - height / 2, height), facecolors=color, alpha=0.45)
        labels = [(s.start, s.text) for s in spans if s.text and t0 <= s.start <= t1]
        draw_texts(ax, labels, y + 0.22, t1 - t0, color)

    bars(user, 1.0, USER)
    bars(state.agent_spans, 0.0, AGENT)
    if state.script_spans:  # the server's view too, as thin ticks
        for s in state.user_spans:
            end = now if math.isnan(s.end) else s.end
            if end >= t0 and s.start <= t1:
                ax.plot([s.start, end], [0.62, 0.62], color=USER, lw=2)
    starts = [t for t in state.reply_starts if t0 <= t <= t1]
    if starts:
        ax.plot(starts, [0.42] * len(starts), "d", color=AGENT, ms=5, ls="none")
    for t in state.barge_ins:
        if t0 <= t <= t1:
            ax.axvline(t, color="#d62728", lw=1.5)
    for t, name in state.tools:
        if t0 <= t <= t1:
            ax.axvline(t, color=TOOL, lw=1, ls=":")
            ax.text(t, -0.55, f"{name}()", fontsize=7, color=TOOL, clip_on=True)
    epochs = [(t, text) for t, text in state.epochs if t0 <= t <= t1]
    for t, _ in epochs:
        ax.axvline(t, color=EPOCH, ls="--", lw=1)
    draw_texts(ax, epochs, 1.35, t1 - t0, EPOCH)
    ax.set_xlim(t0, t1)
