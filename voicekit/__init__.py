"""voicekit: understand and tune voice agents from a Jupyter notebook.

Public names are re-exported here; everything else is private. Heavy pieces
(matplotlib, widgets, the speech engines) are imported lazily.
"""

from __future__ import annotations

from voicekit import local
from voicekit._version import __version__
from voicekit.analysis import (
    echo_check,
    load_logs,
    plot_barge_ins,
    plot_fto,
    plot_latency,
    plot_sweep,
    plot_timeline,
    report,
    sweep,
)
from voicekit.audio.devices import list_devices
from voicekit.audio.sinks import Sink
from voicekit.audio.sources import Source
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
from voicekit.logformat import SessionLog, load_log
from voicekit.protocol import AudioFormat, SessionConfig, TurnDetection, voices
from voicekit.session import Session
from voicekit.testing.scripted import Backchannel, BargeIn, Pause, Say, ScriptedUser
from voicekit.tools import Tool, as_tool
from voicekit.widgets import AgentPanel

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
    "LogFormatError",
    "Pause",
    "ProtocolError",
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
    "as_tool",
    "echo_check",
    "list_devices",
    "load_log",
    "load_logs",
    "local",
    "plot_barge_ins",
    "plot_fto",
    "plot_latency",
    "plot_sweep",
    "plot_timeline",
    "report",
    "sweep",
    "voices",
]


def __getattr__(name: str) -> object:
    # vk.BrowserAudio is an anywidget: imported on first use, not with voicekit
    if name == "BrowserAudio":
        from voicekit.widgets.browser_audio import BrowserAudio

        return BrowserAudio
    raise AttributeError(f"module 'voicekit' has no attribute {name!r}")
