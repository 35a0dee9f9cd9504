"""``vk.AgentPanel``: start, stop and tune a voice agent from a notebook.

Faces layer: builds ipywidgets views over :class:`voicekit.Session`. Threading follows
docs/architecture.md: session observers only append events to a deque; a tick on the
kernel's event loop (10 Hz, captured when the panel is created) folds them into
:class:`LiveState` and sets traits, and redraws the timeline at most ``timeline_fps`` times
a second. Without a
kernel loop (plain Python, tests) nothing ticks: call :meth:`AgentPanel.refresh`.

Stored agents: the agent tab offers the backend's stored agents (``vk.agents``) in a
dropdown when it has any, beside "inline config"; choosing one starts the next session with
``agent_id=`` (the agent's voice and greeting then apply). The list is read when the panel
is built and when the backend changes, from the stand-in agent (only if it is running: a
stand-in agent that was never started has none) or a URL; the hosted service's list is read
when "↻ agents" is pressed, so that displaying a panel never waits on the network.

Flags: a reply that stays silent (its ``reply.done`` came and none of its audio was audible,
the session's ``reply.silent`` line) is a warning line of the transcript and a count in the
metrics strip; a session restarted after a failed resume says so in its status line.

Secrets: an API key typed into the panel is moved out of the widget at once (the field is
cleared, so widget state and saved notebooks never hold it); a key from
``ASSEMBLYAI_API_KEY`` is never put into a widget at all.
"""

from __future__ import annotations

import collections
import contextlib
import html
import inspect
import io
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voicekit.errors import ConfigError, VoiceKitError
from voicekit.protocol.config import (
    DEFAULT_MAX_SILENCE_MS,
    DEFAULT_MIN_SILENCE_MS,
    DEFAULT_VAD_THRESHOLD,
)
from voicekit.widgets._kernel import KernelLoop
from voicekit.widgets.live import LiveState, draw_timeline, legend_items

__all__ = ["AgentPanel"]

TICK_S = 0.1  # UI refresh (status, transcript, meter): 10 Hz
DEBOUNCE_S = 0.3  # slider changes are sent this long after the last move
SILENCE_RANGE_MS = (100, 6000)
# the sliders start at what an agent does with the fields unset
DEFAULTS = {
    "vad_threshold": DEFAULT_VAD_THRESHOLD,
    "min_silence": DEFAULT_MIN_SILENCE_MS,
    "max_silence": DEFAULT_MAX_SILENCE_MS,
}
METER_FLOOR_DB = -60.0
AGENTS_TIMEOUT_S = 3.0  # listing stored agents: a panel never waits longer than this
INLINE = ""  # the agent dropdown's value for "inline config"
TRANSCRIPTION_MODES = [
    ("agent default", ""),
    ("balanced", "balanced"),
    ("min_latency (faster turn ends)", "min_latency"),
    ("max_accuracy (more patient)", "max_accuracy"),
]

# panel-managed Session arguments; the rest pass through to vk.Session unchanged
_MANAGED = (
    "backend",
    "url",
    "api_key",
    "voice",
    "system_prompt",
    "greeting",
    "keyterms",
    "turn_detection",
    "transcription_mode",
    "agent_id",
    "audio_in",
    "audio_out",
    "input_device",
    "output_device",
)

_STATUS = {
    "idle": ("#9e9e9e", "idle"),
    "connecting": ("#f0ad4e", "connecting…"),
    "listening": ("#2ca02c", "listening"),
    "user": ("#1f77b4", "user speaking"),
    "agent": ("#ff7f0e", "agent speaking"),
    "ended": ("#9e9e9e", "ended"),
    "error": ("#d62728", "error"),
}


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - a runtime dependency
        raise VoiceKitError("vk.AgentPanel needs ipywidgets: pip install 'ipywidgets>=8'") from None
    return ipywidgets


class AgentPanel:
    """A notebook panel for a live conversation with a voice agent.

    Parameters
    ----------
    **session_kwargs
        Anything :class:`voicekit.Session` takes; they set the panel's initial choices
        (backend, voice, prompt, turn detection, audio) and the rest (``tools``,
        ``log_dir``, ...) pass through to every session the panel starts.
    timeline_window : float
        Seconds of conversation the live timeline shows (default 30).
    timeline_fps : float
        Most timeline redraws per second (default 2, at most 10); 0 turns the timeline off.

    Attributes
    ----------
    session : vk.Session or None
        The running (or last) session.
    widget : ipywidgets.VBox
        The panel itself (displayed when the panel is the last value of a cell).
    state : LiveState
        Transcript, timeline data and live metrics of the current session.

    Examples
    --------
    >>> panel = vk.AgentPanel(voice="alba")
    >>> panel                       # Start, talk, move the sliders, Stop
    >>> panel.vad_threshold.value = 0.7   # from code: applied live
    >>> log = panel.stop()
    """

    def __init__(
        self, *, timeline_window: float = 30.0, timeline_fps: float = 2.0, **session_kwargs: Any
    ) -> None:
        from voicekit.session import Session

        accepted = set(inspect.signature(Session.__init__).parameters) - {"self"}
        unknown = sorted(set(session_kwargs) - accepted)
        if unknown:
            raise ConfigError(
                f"AgentPanel got unknown argument(s) {unknown}; it takes vk.Session's "
                f"arguments: {sorted(accepted)}",
                field=unknown[0],
            )
        if not 0 <= timeline_fps <= 10:
            raise ConfigError(
                f"timeline_fps ({timeline_fps!r}) must be between 0 (off) and 10",
                field="timeline_fps",
            )
        if not timeline_window > 0:
            raise ConfigError(
                f"timeline_window ({timeline_window!r}) must be a positive number of seconds, "
                "e.g. 30",
                field="timeline_window",
            )
        self._kwargs = {k: v for k, v in session_kwargs.items() if k not in _MANAGED}
        self._audio_in = session_kwargs.get("audio_in", "mic")
        self._browser: Any = None
        self._audio_out = session_kwargs.get("audio_out", "speaker")
        self._api_key: str | None = session_kwargs.get("api_key")
        self.timeline_window = float(timeline_window)
        self.timeline_fps = float(timeline_fps)
        self.session: Any = None
        self.last_error: BaseException | None = None
        self.state = LiveState()
        self._pending: collections.deque[Mapping[str, Any]] = collections.deque()
        self._kernel = KernelLoop()
        self._drawn_at = 0.0
        self._drawn_version = -1
        self._figure: Any = None
        self._touched: set[str] = set()
        self._applied: dict[str, Any] = {}
        self._build(session_kwargs)

    # -- display ------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        status = self._status_key()
        sid = getattr(self.session, "session_id", None)
        return f"<voicekit.AgentPanel status={status!r} session_id={sid!r}>"

    # -- building ----------------------------------------------------------------------------
    def _build(self, kw: dict[str, Any]) -> None:
        from voicekit.protocol import TurnDetection
        from voicekit.protocol.voices import CATALOGUE, DEFAULT_VOICE, get_voice

        w = _widgets()

        def wide() -> Any:  # one Layout per widget: hiding one must not hide others
            return w.Layout(width="100%")

        style = {"description_width": "110px"}

        self.start_button = w.Button(description="Start", icon="play", button_style="success")
        self.start_button.on_click(lambda _b: self._toggle())
        self.status = w.HTML()
        self.message = w.HTML()

        # backend
        from voicekit.session import resolve_backend

        backend, _ = resolve_backend(
            kw.get("backend", "auto"), kw.get("url") or None, self._api_key
        )
        env_key = resolve_backend("assemblyai")[1]  # $ASSEMBLYAI_API_KEY, if set
        self.backend = w.ToggleButtons(
            options=[
                ("stand-in agent (offline)", "local"),
                ("hosted service", "assemblyai"),
                ("URL", "url"),
            ],
            value=backend,
            style={"button_width": "170px"},
        )
        self.api_key = w.Password(
            description="API key",
            placeholder=self._key_placeholder(env_key),
            continuous_update=False,
            style=style,
        )
        self.api_key.observe(self._on_key, names="value")
        self._url_token: str | None = None  # a ?token= of the URL: kept out of the widget
        self.url = w.Text(
            description="URL",
            value=self._take_token(kw.get("url") or ""),
            placeholder="ws://host:8765/v1/ws",
            style=style,
            layout=wide(),
        )
        self.url.observe(self._on_url, names="value")
        self.backend.observe(lambda _c: self._sync_visibility(), names="value")

        # voice
        options = []
        for group, title in (("english", "English"), ("multilingual", "Multilingual")):
            seen: set[str] = set()
            for v in reversed(CATALOGUE):  # newest era first, one entry per id
                if v.group == group and not v.removed and v.id not in seen:
                    seen.add(v.id)
                    options.append((f"{title} · {v.name} ({v.accent})", v.id))
        voice = kw.get("voice") or DEFAULT_VOICE
        if voice not in {v for _, v in options}:
            known = get_voice(voice)
            options.insert(0, (f"{known.name if known else voice} ({voice})", voice))
        self.voice = w.Dropdown(options=options, value=voice, description="voice", style=style)
        self.voice_info = w.HTML()
        self.restart_button = w.Button(
            description="Restart with this voice", icon="refresh", button_style="warning"
        )
        self.restart_button.layout.display = "none"
        self.restart_button.on_click(lambda _b: self.restart())
        self.voice.observe(self._on_voice, names="value")

        # stored agents (vk.agents) of the backend, when it has any
        self._agent_id: str | None = kw.get("agent_id")
        self.stored_agent = w.Dropdown(
            options=[("inline config", INLINE)],
            value=INLINE,
            description="stored agent",
            style=style,
            layout=wide(),
        )
        self.agents_button = w.Button(description="↻ agents", tooltip="list stored agents")
        self.agents_button.on_click(lambda _b: self.refresh_agents(start=True))
        self.agents_note = w.HTML()
        self.stored_agent.observe(self._on_stored_agent, names="value")
        self.backend.observe(lambda _c: self.refresh_agents(), names="value")

        # turn detection
        td = kw.get("turn_detection")
        if isinstance(td, dict):
            td = TurnDetection(**td)
        td = td or TurnDetection()
        for name in ("vad_threshold", "min_silence", "max_silence", "interrupt_response"):
            if getattr(td, name) is not None:
                self._touched.add(name)
        self._turn_extra = {
            "interruption_delay": td.interruption_delay,
        }
        lo, hi = SILENCE_RANGE_MS
        self.vad_threshold = w.FloatSlider(
            value=td.vad_threshold if td.vad_threshold is not None else DEFAULTS["vad_threshold"],
            min=0.0,
            max=1.0,
            step=0.05,
            description="vad_threshold",
            readout_format=".2f",
            continuous_update=True,
            style=style,
            layout=wide(),
        )

        def silence(name: str) -> Any:
            value = getattr(td, name)
            return w.IntSlider(
                value=DEFAULTS[name] if value is None else value,
                min=lo,
                max=hi,
                step=50,
                description=f"{name} ms",
                style=style,
                layout=wide(),
            )

        self.min_silence = silence("min_silence")
        self.max_silence = silence("max_silence")
        self.interrupt_response = w.Checkbox(
            value=True if td.interrupt_response is None else td.interrupt_response,
            description="interrupt_response (user may barge in)",
            indent=False,
        )
        self.turn_note = w.HTML()
        mode = kw.get("transcription_mode") or ""
        if mode not in {v for _, v in TRANSCRIPTION_MODES}:
            raise ConfigError(
                f"transcription_mode ({mode!r}) must be one of balanced, min_latency, "
                "max_accuracy (or unset for the agent's default)",
                field="transcription_mode",
            )
        self.transcription_mode = w.Dropdown(
            options=TRANSCRIPTION_MODES,
            value=mode,
            description="transcription",
            style=style,
            layout=w.Layout(width="100%", max_width="460px"),  # four short choices
        )
        self.transcription_mode.observe(lambda _c: self._schedule_apply(), names="value")
        for name in ("vad_threshold", "min_silence", "max_silence", "interrupt_response"):
            getattr(self, name).observe(self._on_turn_widget(name), names="value")

        # prompt
        self.keyterms = w.TagsInput(value=list(kw.get("keyterms") or []), allow_duplicates=False)
        self.system_prompt = w.Textarea(
            value=kw.get("system_prompt") or "",
            placeholder="system prompt (empty: the agent's default)",
            continuous_update=False,
            layout=w.Layout(width="100%", height="70px"),
        )
        self.greeting = w.Textarea(
            value=kw.get("greeting") or "",
            placeholder="greeting (empty: the agent's default; fixed once started)",
            continuous_update=False,
            layout=w.Layout(width="100%", height="44px"),
        )
        self.keyterms.observe(lambda _c: self._schedule_apply(), names="value")
        self.system_prompt.observe(lambda _c: self._schedule_apply(), names="value")
        self.greeting.observe(self._on_greeting, names="value")

        # audio
        self.audio_input = w.Dropdown(description="input", style=style, layout=wide())
        self.audio_output = w.Dropdown(description="output", style=style, layout=wide())
        self.wav_path = w.Text(
            description="WAV file", placeholder="path/to/speech.wav", style=style, layout=wide()
        )
        self._fill_audio_choices(kw)
        self.audio_input.observe(lambda _c: self._sync_visibility(), names="value")
        self.level = w.FloatProgress(
            value=METER_FLOOR_DB,
            min=METER_FLOOR_DB,
            max=0.0,
            description="input level",
            style={"description_width": "110px", "bar_color": "#1f77b4"},
            layout=wide(),
        )

        # live views
        self.transcript = w.HTML(value=self.state.transcript_html())
        self.metrics = w.HTML(value=self.state.metrics_html())
        self.timeline = w.Image(format="png", layout=w.Layout(width="100%"))
        # what the timeline image shows, in words (for screen readers and tests)
        self.timeline_caption = w.HTML()
        self.save_button = w.Button(description="Save log", icon="save")
        self.report_button = w.Button(description="Report", icon="file")
        self.save_button.on_click(lambda _b: self._guard(self.save_log))
        self.report_button.on_click(lambda _b: self._guard(self.report))
        self.files = w.HTML()

        def section(title: str, *children: Any) -> Any:
            return w.VBox([w.HTML(f"<b>{title}</b>"), *children])

        settings = w.Tab(
            children=[
                w.VBox(
                    [
                        self.backend,
                        self.api_key,
                        self.url,
                        w.HBox([self.stored_agent, self.agents_button]),
                        self.agents_note,
                        w.HBox([self.voice, self.restart_button]),
                        self.voice_info,
                    ]
                ),
                w.VBox(
                    [
                        self.vad_threshold,
                        self.min_silence,
                        self.max_silence,
                        self.interrupt_response,
                        self.transcription_mode,
                        self.turn_note,
                    ]
                ),
                w.VBox(
                    [
                        section("keyterms", self.keyterms),
                        section("system prompt", self.system_prompt),
                        section("greeting", self.greeting),
                    ]
                ),
                w.VBox([self.audio_input, self.wav_path, self.audio_output, self.level]),
            ],
            titles=["agent", "turn detection", "prompt", "audio"],
        )
        settings.selected_index = 1
        self.browser_box = w.Box()  # holds vk.BrowserAudio when an audio choice is "browser"
        self.audio_output.observe(lambda _c: self._sync_visibility(), names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.start_button, self.status]),
                self.browser_box,
                self.message,
                settings,
                self.metrics,
                self.timeline,
                self.timeline_caption,
                section("transcript", self.transcript),
                w.HBox([self.save_button, self.report_button, self.files]),
            ],
            layout=w.Layout(border="1px solid #ddd", padding="8px"),
        )
        self.widget.add_class("vk-panel")
        for name in ("status", "message", "metrics", "timeline", "timeline_caption", "level"):
            getattr(self, name).add_class(f"vk-{name.replace('_', '-')}")
        self.transcript.add_class("vk-transcript-box")
        for name in ("vad_threshold", "min_silence", "max_silence", "interrupt_response"):
            getattr(self, name).add_class(f"vk-{name.replace('_', '-')}")
        self._describe_voice()
        self._describe_turn()
        self.refresh_agents()
        self._sync_visibility()
        self._render_status()
        if self.timeline_fps > 0:
            self._draw_timeline(force=True)
        else:
            self.timeline.layout.display = "none"
            self.timeline_caption.layout.display = "none"

    def _key_placeholder(self, env_key: str | None) -> str:
        if self._api_key:
            return "key set (hidden); type to replace"
        if env_key:
            return "using $ASSEMBLYAI_API_KEY; type to override"
        return "paste the key, then Enter (kept out of the notebook)"

    def _fill_audio_choices(self, kw: dict[str, Any]) -> None:
        from voicekit.audio.sinks import Sink
        from voicekit.audio.sources import Source
        from voicekit.scripted import ScriptedUser

        ins: list[tuple[str, str]] = []
        outs: list[tuple[str, str]] = []
        spec_in, spec_out = self._audio_in, self._audio_out
        for spec in (spec_in, spec_out):
            if callable(getattr(spec, "as_source", None)):  # a vk.BrowserAudio: the panel's own
                self._browser = spec
        if self._browser is not None:
            spec_in = "browser" if spec_in is self._browser else spec_in
            spec_out = "browser" if spec_out is self._browser else spec_out
        if isinstance(spec_in, ScriptedUser):
            ins.append(("scripted user (as given)", "given"))
        elif isinstance(spec_in, Source) or not isinstance(spec_in, str):
            ins.append((f"as given ({type(spec_in).__name__})", "given"))
        if isinstance(spec_out, Sink):
            outs.append((f"as given ({type(spec_out).__name__})", "given"))
        elif isinstance(spec_out, (str, os.PathLike)) and str(spec_out).lower().endswith(".wav"):
            outs.append((f"WAV file {os.fspath(spec_out)}", "given"))
        devices: list[dict[str, Any]] = []
        with contextlib.suppress(Exception):  # no PortAudio: no device choices
            from voicekit.audio.devices import list_devices

            devices = list_devices()
        for d in devices:
            if d["max_input_channels"] > 0:
                ins.append((f"microphone: {d['name']}", f"mic:{d['index']}"))
            if d["max_output_channels"] > 0:
                outs.append((f"speaker: {d['name']}", f"speaker:{d['index']}"))
        ins += [
            ("browser: this page's microphone (vk.BrowserAudio)", "browser"),
            ("WAV file…", "wav"),
            ("silence (no input)", "null"),
        ]
        outs += [("browser: this page's speaker", "browser"), ("none (timed as if played)", "null")]
        self.audio_input.options = ins
        self.audio_output.options = outs

        def pick(spec: Any, device: Any, kind: str, options: list[tuple[str, str]]) -> str:
            values = [v for _, v in options]
            if isinstance(spec, str) and spec == "browser":
                return "browser"
            if "given" in values:
                return "given"
            if isinstance(spec, str) and spec == kind:
                wanted = [v for v in values if v.startswith(f"{kind}:")]
                if device is not None:
                    wanted = [
                        v
                        for v, (label, _) in zip(values, options, strict=True)
                        if v.startswith(f"{kind}:")
                        and (v == f"{kind}:{device}" or str(device) in label)
                    ] or wanted
                default = [
                    f"{kind}:{d['index']}"
                    for d in devices
                    if d["default_input" if kind == "mic" else "default_output"]
                ]
                chosen = [v for v in wanted if v in default] if device is None else []
                if chosen or wanted:
                    return (chosen or wanted)[0]
                return "null"
            is_wav = isinstance(spec, (str, os.PathLike)) and str(spec).lower().endswith(".wav")
            if is_wav and kind == "mic":
                self.wav_path.value = str(spec)
                return "wav"
            return "null"

        self.audio_input.value = pick(spec_in, kw.get("input_device"), "mic", ins)
        self.audio_output.value = pick(spec_out, kw.get("output_device"), "speaker", outs)
        if isinstance(spec_in, str) and spec_in == "mic" and self.audio_input.value == "null":
            self._say(
                "No microphone found on the kernel's machine: choose 'browser' in the audio tab "
                "to use this page's microphone, or a WAV file, or a scripted user "
                "(vk.AgentPanel(audio_in=vk.ScriptedUser([...])))."
            )

    # -- widget callbacks (kernel thread) ------------------------------------------------
    def _on_key(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if not value:
            return
        self._api_key = value.strip() or None
        self.api_key.value = ""  # never kept in widget state or the saved notebook
        self.api_key.placeholder = self._key_placeholder(None)

    def _take_token(self, url: str) -> str:
        """``url`` without its ``token`` query parameter, which is kept privately."""
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        tokens = [v for k, v in query if k == "token"]
        if not tokens:
            return url
        self._url_token = tokens[-1]
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))

    def _on_url(self, change: dict[str, Any]) -> None:
        if "token=" in change["new"]:  # never kept in widget state or the saved notebook
            self.url.value = self._take_token(change["new"])

    def _on_voice(self, _change: dict[str, Any]) -> None:
        self._describe_voice()
        running = self._running()
        changed = running and self.voice.value != self.session.config.voice
        self.restart_button.layout.display = "" if changed else "none"
        if changed:
            self._say(
                f"The voice is fixed for a session: press “Restart with this voice” to "
                f"continue as {self.voice.value!r} (a new session and log)."
            )

    def _on_greeting(self, _change: dict[str, Any]) -> None:
        if self._running():
            self._say("The greeting is fixed for a session; it applies at the next Start.")

    def _on_turn_widget(self, name: str) -> Any:
        def callback(change: dict[str, Any]) -> None:
            self._touched.add(name)
            if name == "min_silence" and self.max_silence.value < change["new"]:
                self.max_silence.value = change["new"]  # keep min <= max
            elif name == "max_silence" and self.min_silence.value > change["new"]:
                self.min_silence.value = change["new"]
            self._describe_turn()
            self._schedule_apply()

        return callback

    def _describe_voice(self) -> None:
        from voicekit.protocol.voices import get_voice

        v = get_voice(self.voice.value)
        if v is None:
            self.voice_info.value = "<i>not in voicekit's catalogue</i>"
            return
        info = html.escape(v.description or "no style notes")
        self.voice_info.value = (
            f'<span style="color:#555">{html.escape(v.name)} — {html.escape(v.accent)}, '
            f"{info} ({v.era} era)</span>"
        )

    def _describe_turn(self) -> None:
        unset = [
            n for n in ("vad_threshold", "min_silence", "max_silence") if n not in self._touched
        ]
        note = (
            f"Unset, so the agent's default applies: {', '.join(unset)}. "
            "Setting a silence turns off the hosted service's adaptive pacing."
            if unset
            else ""
        )
        self.turn_note.value = f'<span style="color:#777;font-size:12px">{note}</span>'

    # -- stored agents ---------------------------------------------------------------------
    def refresh_agents(self, start: bool = False) -> list[Any]:
        """Read the backend's stored agents into the agent dropdown; returns them.

        Never raises: a failure is a note under the dropdown. ``start=False`` (the panel's
        own calls) reads a stand-in agent only if it is running and the hosted service not
        at all (a panel is displayed without waiting on the network); the "↻ agents" button
        passes ``start=True``.
        """
        from voicekit import agents

        backend = self.backend.value
        found: list[Any] = []
        note = ""
        try:
            if backend == "url":
                address = self.url.value.strip()
                if address:
                    found = agents.list(
                        url=address, api_key=self._api_key, timeout=AGENTS_TIMEOUT_S
                    )
            elif backend == "local":
                found = agents.list(backend="local", start=start, timeout=AGENTS_TIMEOUT_S)
            elif start:
                found = agents.list(
                    backend="assemblyai", api_key=self._api_key, timeout=AGENTS_TIMEOUT_S
                )
            else:
                note = "press ↻ agents to list the hosted service's stored agents"
        except Exception as exc:  # shown, never raised: the panel stays usable inline
            note = f"stored agents not listed: {exc}"
        options = [("inline config", INLINE)]
        options += [(f"{a.name} ({a.id[:14]}…)", a.id) for a in found]
        wanted = self.stored_agent.value or self._agent_id or INLINE
        if wanted and wanted not in {v for _, v in options}:
            if self._agent_id == wanted:  # passed as agent_id=: kept even when not listed
                options.append((f"{wanted} (as given)", wanted))
            else:
                wanted = INLINE
        if list(self.stored_agent.options) != options:
            self.stored_agent.options = options  # (selects the first one for a moment)
        self.stored_agent.value = wanted
        self.stored_agent.layout.display = "" if len(options) > 1 else "none"
        if not note and len(options) == 1 and start:
            note = "no stored agents on this backend (vk.agents.create(...) makes one)"
        self.agents_note.value = (
            f'<span style="color:#777;font-size:12px">{html.escape(note)}</span>' if note else ""
        )
        self._describe_agent()
        return found

    def _on_stored_agent(self, _change: dict[str, Any]) -> None:
        self._describe_agent()
        if self._running() and (self.stored_agent.value or None) != self.session.agent_id:
            self._say("The stored agent is fixed for a session; it applies at the next Start.")

    def _describe_agent(self) -> None:
        bound = bool(self.stored_agent.value)
        self.voice.disabled = bound
        self.greeting.disabled = bound
        if bound:
            self.voice_info.value = (
                '<span style="color:#555">the stored agent\'s voice and greeting apply; '
                "prompt, keyterms, turn detection and transcription mode are sent on top"
                "</span>"
            )
        else:
            self._describe_voice()

    def _sync_visibility(self) -> None:
        self.api_key.layout.display = "none" if self.backend.value == "local" else ""
        self.url.layout.display = "" if self.backend.value == "url" else "none"
        self.wav_path.layout.display = "" if self.audio_input.value == "wav" else "none"
        if "browser" in (self.audio_input.value, self.audio_output.value):
            self.browser_box.children = (self.browser_audio(),)
        else:
            self.browser_box.children = ()

    def browser_audio(self) -> Any:
        """The panel's :class:`voicekit.BrowserAudio` (made on first use)."""
        if self._browser is None:
            from voicekit.widgets.browser_audio import BrowserAudio

            self._browser = BrowserAudio()
        return self._browser

    def _say(self, text: str, error: bool = False) -> None:
        color = "#d62728" if error else "#555"
        self.message.value = (
            f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""
        )

    def _guard(self, fn: Any) -> None:
        """Run a button's action; errors go to the panel, not to the kernel log."""
        try:
            fn()
        except Exception as exc:
            self.last_error = exc
            self._say(str(exc), error=True)

    # -- the session's configuration from the widgets ------------------------------------
    def turn_detection(self) -> Any:
        """The :class:`voicekit.TurnDetection` the widgets describe (untouched fields unset)."""
        from voicekit.protocol import TurnDetection

        values: dict[str, Any] = {
            n: getattr(self, n).value
            for n in ("vad_threshold", "min_silence", "max_silence", "interrupt_response")
            if n in self._touched
        }
        if "vad_threshold" in values:
            values["vad_threshold"] = round(float(values["vad_threshold"]), 2)
        if self._turn_extra["interruption_delay"] is not None:
            values["interruption_delay"] = self._turn_extra["interruption_delay"]
        return TurnDetection(**values)

    def _live_config(self) -> dict[str, Any]:
        return {
            "system_prompt": self.system_prompt.value or None,
            "keyterms": list(self.keyterms.value) or None,
            "turn_detection": self.turn_detection(),
            "transcription_mode": self.transcription_mode.value or None,
        }

    def session_kwargs(self) -> dict[str, Any]:
        """The arguments the next :class:`voicekit.Session` gets (without the API key)."""
        from voicekit.scripted import ScriptedUser

        kw = dict(self._kwargs)
        kw.update(self._live_config())
        if self.stored_agent.value:  # the agent fixes voice and greeting
            kw["agent_id"] = self.stored_agent.value
        else:
            kw["voice"] = self.voice.value
            kw["greeting"] = self.greeting.value or None
        kw["backend"] = "local" if self.backend.value == "url" else self.backend.value
        if self.backend.value == "url":
            if not self.url.value.strip():
                raise ConfigError(
                    "backend URL needs an address, e.g. ws://127.0.0.1:8765/v1/ws "
                    "(start one with: python -m voicekit serve)",
                    field="url",
                )
            kw["url"] = self.url.value.strip()
            if self._url_token:
                from urllib.parse import urlencode

                sep = "&" if "?" in kw["url"] else "?"
                kw["url"] += sep + urlencode({"token": self._url_token})
        choice_in = self.audio_input.value
        if choice_in == "given":
            given = self._audio_in
            kw["audio_in"] = given.copy() if isinstance(given, ScriptedUser) else given
        elif choice_in == "wav":
            path = self.wav_path.value.strip()
            if not path or not Path(path).exists():
                raise ConfigError(
                    f"WAV file ({path!r}) not found; type the path of a WAV file in the audio tab",
                    field="audio_in",
                )
            kw["audio_in"] = path
        elif choice_in == "browser":
            kw["audio_in"] = self.browser_audio()
        elif choice_in.startswith("mic:"):
            kw["audio_in"], kw["input_device"] = "mic", int(choice_in.split(":", 1)[1])
        else:
            kw["audio_in"] = "null"
        choice_out = self.audio_output.value
        if choice_out == "given":
            kw["audio_out"] = self._audio_out
        elif choice_out == "browser":
            kw["audio_out"] = self.browser_audio()
        elif choice_out.startswith("speaker:"):
            kw["audio_out"], kw["output_device"] = "speaker", int(choice_out.split(":", 1)[1])
        else:
            kw["audio_out"] = "null"
        return kw

    # -- start / stop ----------------------------------------------------------------------
    def _running(self) -> bool:
        return self.session is not None and self.session.status in ("connecting", "ready")

    def _toggle(self) -> None:
        if self._running():
            self._guard(self.stop)
        else:
            self._guard(lambda: self.start(wait=False))

    def start(self, wait: bool = True) -> Any:
        """Start a new session with the panel's settings; returns the :class:`vk.Session`.

        ``wait=True`` (from code) returns once the agent is ready and raises its errors;
        the Start button uses ``wait=False`` so the kernel never blocks.
        """
        from voicekit.session import Session

        if self._running():
            raise VoiceKitError("the panel's session is already running; press Stop first")
        kwargs = self.session_kwargs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unknown voice: shown in the panel
            session = Session(api_key=self._api_key, **kwargs)
        self.session = session
        self.state = LiveState()
        self._pending.clear()
        self._applied = self._live_config()
        self._say("")
        self.files.value = ""
        session.on("*", self._pending.append)  # observer thread: a deque append, nothing else
        self._render_status()
        self._kernel.every("tick", TICK_S, self._tick)
        try:
            session.start(wait=wait)
        except Exception as exc:
            self.last_error = exc
            self.refresh()
            raise
        self.refresh()
        return session

    def stop(self) -> Any:
        """Stop the session (idempotent); returns its :class:`vk.SessionLog` (or None)."""
        if self.session is None:
            return None
        self._kernel.flush("apply", self._apply)
        result = self.session.stop()
        self._kernel.cancel("tick")
        self.refresh()
        if self.session.log_path is not None:
            self.files.value = (
                f'<span style="color:#555">log: {html.escape(str(self.session.log_path))}</span>'
            )
        return result

    def restart(self) -> Any:
        """Stop and start again (e.g. with a new voice or greeting); a new log bundle."""
        self.stop()
        self.restart_button.layout.display = "none"
        return self.start(wait=False)

    def close(self) -> None:
        """Stop the session and close every widget of the panel (idempotent).

        ipywidgets keeps a widget (and through its observers the panel, ~1.5 MB) alive until
        it is closed, so a notebook cell that makes a new panel each run should close the
        old one. A :class:`vk.BrowserAudio` passed in by the caller is left open.
        """
        from ipywidgets import Widget

        self.stop()
        self._kernel.cancel("tick")
        self._kernel.cancel("apply")
        keep = {id(self._audio_in), id(self._audio_out)}
        seen: set[int] = set()

        def close_tree(widget: Any) -> None:
            if id(widget) in seen or id(widget) in keep:
                return
            seen.add(id(widget))
            for name in widget.keys:  # children, layout, style: widgets are traits too
                value = getattr(widget, name, None)
                for item in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(item, Widget):
                        close_tree(item)
            widget.close()

        for value in list(vars(self).values()):  # also those not shown at the moment
            if isinstance(value, Widget):
                close_tree(value)
        self._figure = None

    # -- live config -----------------------------------------------------------------------
    def _schedule_apply(self) -> None:
        if self._running():
            self._kernel.later("apply", DEBOUNCE_S, self._apply)

    def apply(self) -> None:
        """Send pending widget changes now (they are otherwise sent 300 ms after the last)."""
        self._kernel.cancel("apply")
        self._apply()

    def _apply(self) -> None:
        if not self._running() or self.session.status != "ready":
            return
        try:
            config = self._live_config()
        except ConfigError as exc:
            self.last_error = exc
            self._say(str(exc), error=True)
            return
        changes = {k: v for k, v in config.items() if self._applied.get(k) != v}
        if not changes:
            return
        try:
            self.session.update(**changes)
        except Exception as exc:
            self.last_error = exc
            self._say(f"not applied: {exc}", error=True)
            return
        self._applied.update(changes)

    # -- refreshing (kernel thread) ------------------------------------------------------
    def _tick(self) -> bool:
        self.refresh()
        return self._running() or bool(self._pending)

    def refresh(self) -> None:
        """Fold new session events into the views and redraw what changed.

        Runs by itself ten times a second in a kernel; call it when driving the panel from
        plain Python.
        """
        batch = []
        while self._pending:
            batch.append(self._pending.popleft())
        session = self.session
        if batch:
            self.state.feed(batch)
            self.metrics.value = self.state.metrics_html()
        if batch or self.state.agent_speaking:
            now = session.now() if self._running() else None
            self.transcript.value = self.state.transcript_html(now)
        if session is not None:
            level = session.input_level if session.status == "ready" else METER_FLOOR_DB
            self.level.value = max(METER_FLOOR_DB, min(0.0, level))
        self._render_status()
        self._draw_timeline()

    def _status_key(self) -> str:
        s = self.session
        if s is None:
            return "idle"
        if s.status == "ready":
            if self.state.agent_speaking:
                return "agent"
            return "user" if self.state.user_speaking else "listening"
        return str(s.status)

    def _render_status(self) -> None:
        key = self._status_key()
        color, text = _STATUS.get(key, ("#9e9e9e", key))
        detail = ""
        if self.state.restarts and key not in ("idle", "error"):
            detail = f" · restarted: {self.state.restarts[-1]}"
        if key == "error" and self.session is not None:
            err = self.session.last_error
            detail = f": {err}" if err else ""
            if isinstance(err, Exception):
                self.last_error = err
        self.status.value = (
            f'<span class="vk-status vk-status-{key}" style="font-family:sans-serif">'
            f'<span style="color:{color};font-size:18px">●</span> {html.escape(text + detail)}'
            "</span>"
        )
        running = self._running()
        self.start_button.description = "Stop" if running else "Start"
        self.start_button.icon = "stop" if running else "play"
        self.start_button.button_style = "danger" if running else "success"
        for fixed in (self.backend, self.api_key, self.url, self.audio_input, self.audio_output):
            fixed.disabled = running
        self.wav_path.disabled = running

    def _draw_timeline(self, force: bool = False) -> None:
        if self.timeline_fps <= 0:
            return
        now_wall = time.monotonic()
        if not force and now_wall - self._drawn_at < 1.0 / self.timeline_fps:
            return
        running = self._running()
        if not force and not running and self._drawn_version == self.state.version:
            return
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if self._figure is None:
            # a fixed layout: constrained layout would double the cost of every frame
            self._figure = Figure(figsize=(10, 2.3), dpi=80)
            FigureCanvasAgg(self._figure)
            self._figure.add_subplot()
            self._figure.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.97)
        ax = self._figure.axes[0]
        now = self.session.now() if running else self.state.last_t
        draw_timeline(ax, self.state, now, self.timeline_window, legend=False)
        buf = io.BytesIO()
        self._figure.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
        self.timeline.value = buf.getvalue()
        self.timeline_caption.value = self._caption(now)
        self._drawn_at = now_wall
        self._drawn_version = self.state.version

    # -- files ---------------------------------------------------------------------------
    def _caption(self, now: float) -> str:
        t0 = max(0.0, now - self.timeline_window)
        shown = [
            f"{line.text} at {line.t:.1f} s"
            for line in self.state.lines
            if line.kind == "epoch" and line.t >= t0
        ]
        epochs = "; ".join(shown) if shown else "none"
        swatch = {
            "bar": "display:inline-block;width:14px;height:8px;opacity:.45;background:{c}",
            "solid": "display:inline-block;width:14px;height:0;border-top:2px solid {c}",
            "dashed": "display:inline-block;width:14px;height:0;border-top:1px dashed {c}",
            "diamond": "display:inline-block;width:6px;height:6px;transform:rotate(45deg);"
            "background:{c}",
        }
        legend = " ".join(
            f'<span style="{swatch[kind].format(c=color)}"></span> {html.escape(label)}&nbsp;'
            for color, kind, label in legend_items(self.state)
        )
        return (
            '<div style="font-family:sans-serif;font-size:12px;color:#555">'
            f"<div>{legend}</div><div>session time {t0:.0f}-"
            f"{max(now, self.timeline_window):.0f} s; config epochs: {html.escape(epochs)}"
            "</div></div>"
        )

    def _bundle(self) -> Path:
        path = getattr(self.session, "log_path", None)
        if path is None:
            raise VoiceKitError(
                "no log yet: start a session first (and keep log_dir set; it is "
                "'voicekit-logs' by default)"
            )
        return Path(path)

    def save_log(self) -> Path:
        """Zip the session's log bundle (also mid-session: a snapshot); returns the zip."""
        import shutil

        bundle = self._bundle()
        archive = Path(shutil.make_archive(str(bundle), "zip", bundle.parent, bundle.name))
        self._link("log saved", archive)
        return archive

    def report(self) -> Path:
        """Write the HTML report of the session's log next to the bundle; returns its path."""
        from voicekit.analysis.report import report

        bundle = self._bundle()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a live bundle's last line may be incomplete
            path = report(bundle, bundle.with_suffix(".html"))
        self._link("report", path)
        return path

    def _link(self, label: str, path: Path) -> None:
        try:
            href = os.path.relpath(path)
        except ValueError:  # another drive on Windows
            href = str(path)
        self.files.value = (
            f'{html.escape(label)}: <a href="{html.escape(href)}" target="_blank">'
            f"{html.escape(path.name)}</a>"
        )
