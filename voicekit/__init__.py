"""voicekit: understand and tune voice agents from a Jupyter notebook.

Public names are re-exported here; everything else is private. Heavy pieces
(matplotlib, widgets, the speech engines) are imported lazily.
"""

from __future__ import annotations

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

__all__ = [
    "AudioError",
    "AuthError",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionError",
    "LogFormatError",
    "ProtocolError",
    "ServerError",
    "ToolError",
    "VoiceKitError",
    "__version__",
]
