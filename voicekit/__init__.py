"""voicekit: understand and tune voice agents from a Jupyter notebook.

Public names are re-exported here; everything else is private. ``import voicekit`` loads
only the version, the errors and the sweep entry point: every other name is imported on
first use through a module ``__getattr__`` (PEP 562), so importing the package loads no
websockets, no asyncio server, no pandas or matplotlib and no speech engine. See
``docs/architecture.md`` for the layers behind these names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from voicekit._version import __version__
from voicekit.errors import (
    AudioError,
    AuthError,
    ConfigError,
    ConnectionClosed,
    ConnectionError,
    LogFormatError,
    ProtocolError,
    ServerError,
    ToolError,
    VoiceKitError,
)

# bound eagerly: importing the submodule voicekit.sweep would otherwise shadow the function
from voicekit.sweep import sweep

if TYPE_CHECKING:
    from voicekit import agents, hosted, local
    from voicekit.analysis import (
        echo_check,
        load_logs,
        plot_barge_ins,
        plot_fto,
        plot_latency,
        plot_sweep,
        plot_timeline,
        reply_table,
        report,
    )
    from voicekit.analysis.compare import compare
    from voicekit.analysis.dataset import export_dataset
    from voicekit.audio.devices import list_devices
    from voicekit.audio.sinks import Sink
    from voicekit.audio.sources import Source
    from voicekit.hosted import load_hosted
    from voicekit.logformat import Recording, SessionLog, load_log, load_recording
    from voicekit.logformat.hosted import HostedSession
    from voicekit.logformat.validate import validate_log
    from voicekit.protocol import AudioFormat, SessionConfig, TurnDetection, voices
    from voicekit.scripted import Backchannel, BargeIn, Pause, Say, ScriptedUser
    from voicekit.session import Session
    from voicekit.tools import Tool, as_tool
    from voicekit.widgets import AgentPanel
    from voicekit.widgets.browser_audio import BrowserAudio

__all__ = [
    "AgentPanel",
    "AudioError",
    "AudioFormat",
    "AuthError",
    "Backchannel",
    "BargeIn",
    "BrowserAudio",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionError",
    "HostedSession",
    "LogFormatError",
    "Pause",
    "ProtocolError",
    "Recording",
    "Say",
    "ScriptedUser",
    "ServerError",
    "Session",
    "SessionConfig",
    "SessionLog",
    "Sink",
    "Source",
    "Tool",
    "ToolError",
    "TurnDetection",
    "VoiceKitError",
    "__version__",
    "agents",
    "as_tool",
    "compare",
    "echo_check",
    "export_dataset",
    "hosted",
    "list_devices",
    "load_hosted",
    "load_log",
    "load_logs",
    "load_recording",
    "local",
    "plot_barge_ins",
    "plot_fto",
    "plot_latency",
    "plot_sweep",
    "plot_timeline",
    "reply_table",
    "report",
    "sweep",
    "validate_log",
    "voices",
]

# public name -> (module, attribute in it; None: the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "AgentPanel": ("voicekit.widgets.panel", "AgentPanel"),
    "AudioFormat": ("voicekit.protocol.config", "AudioFormat"),
    "Backchannel": ("voicekit.scripted", "Backchannel"),
    "BargeIn": ("voicekit.scripted", "BargeIn"),
    "BrowserAudio": ("voicekit.widgets.browser_audio", "BrowserAudio"),
    "HostedSession": ("voicekit.logformat.hosted", "HostedSession"),
    "Pause": ("voicekit.scripted", "Pause"),
    "Recording": ("voicekit.logformat.recording", "Recording"),
    "Say": ("voicekit.scripted", "Say"),
    "ScriptedUser": ("voicekit.scripted", "ScriptedUser"),
    "Session": ("voicekit.session", "Session"),
    "SessionConfig": ("voicekit.protocol.config", "SessionConfig"),
    "SessionLog": ("voicekit.logformat.reader", "SessionLog"),
    "Sink": ("voicekit.audio.sinks", "Sink"),
    "Source": ("voicekit.audio.sources", "Source"),
    "Tool": ("voicekit.tools", "Tool"),
    "TurnDetection": ("voicekit.protocol.config", "TurnDetection"),
    "agents": ("voicekit.agents", None),
    "as_tool": ("voicekit.tools", "as_tool"),
    "echo_check": ("voicekit.analysis.metrics", "echo_check"),
    "export_dataset": ("voicekit.analysis.dataset", "export_dataset"),
    "hosted": ("voicekit.hosted", None),
    "list_devices": ("voicekit.audio.devices", "list_devices"),
    "load_hosted": ("voicekit.hosted", "load_hosted"),
    "compare": ("voicekit.analysis.compare", "compare"),
    "load_log": ("voicekit.logformat.reader", "load_log"),
    "load_logs": ("voicekit.analysis.many", "load_logs"),
    "load_recording": ("voicekit.logformat.recording", "load_recording"),
    "local": ("voicekit.local", None),
    "plot_barge_ins": ("voicekit.analysis.plots", "plot_barge_ins"),
    "plot_fto": ("voicekit.analysis.plots", "plot_fto"),
    "plot_latency": ("voicekit.analysis.plots", "plot_latency"),
    "plot_sweep": ("voicekit.analysis.plots", "plot_sweep"),
    "plot_timeline": ("voicekit.analysis.plots", "plot_timeline"),
    "reply_table": ("voicekit.analysis.metrics", "reply_table"),
    "report": ("voicekit.analysis.report", "report"),
    "validate_log": ("voicekit.logformat.validate", "validate_log"),
    "voices": ("voicekit.protocol.voices", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'voicekit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
