"""The one exception hierarchy of voicekit.

Every error voicekit raises on purpose derives from :class:`VoiceKitError`, so
``except vk.VoiceKitError`` catches them all. The tree::

    VoiceKitError
    ├── ConfigError            (also a ValueError) bad configuration; names field, value, limit
    ├── ProtocolError          a malformed or out-of-sequence protocol message
    ├── ConnectionError        the socket could not be opened or was lost
    │   ├── AuthError          credentials refused (session.error unauthorized, close 1008)
    │   └── ConnectionClosed   the server closed the socket (carries code and reason)
    ├── ServerError            a session.error from the server (carries code, param)
    ├── AudioError             devices, PortAudio, audio sources and sinks
    ├── ToolError              a tool could not be described or run
    └── LogFormatError         a log bundle could not be read (names file and line)

Messages are lowercase, factual, and say what to do. No message ever contains an
API key, a temporary token or a resume token.

This module imports nothing from voicekit.
"""

from __future__ import annotations

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
]

_builtin_connection_error = ConnectionError


class VoiceKitError(Exception):
    """Base class of every error voicekit raises on purpose."""


class ConfigError(VoiceKitError, ValueError):
    """A configuration value is invalid.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    field : str, optional
        Dotted name of the offending field, e.g. ``"turn_detection.min_silence"``.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ProtocolError(VoiceKitError):
    """A protocol message is malformed or arrives out of sequence."""


class ConnectionError(VoiceKitError, _builtin_connection_error):
    """The connection to the agent could not be opened or was lost."""


class AuthError(ConnectionError):
    """The agent refused the credentials (``unauthorized``, close 1008)."""


class ConnectionClosed(ConnectionError):
    """The server closed the socket.

    Parameters
    ----------
    code : int or None
        WebSocket close code (1000 normal, 1008 policy, 1011 internal error).
    reason : str
        Close reason sent by the server, if any.
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ServerError(VoiceKitError):
    """A ``session.error`` sent by the server.

    Parameters
    ----------
    message : str
        The server's message.
    code : str
        The protocol error code, lower-cased (e.g. ``"invalid_value"``).
    param : str or None
        The configuration field the error refers to, when the server names one.
    fatal : bool
        Whether the server closed the session after the error.
    """

    def __init__(
        self, message: str, code: str = "", param: str | None = None, fatal: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code.lower()
        self.param = param
        self.fatal = fatal
        self.server_message = message


class AudioError(VoiceKitError):
    """An audio device, source or sink failed or is missing."""


class ToolError(VoiceKitError):
    """A tool could not be described from its signature, or failed to run."""


class LogFormatError(VoiceKitError):
    """A log bundle could not be read.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str, optional
        The file that could not be read.
    line : int, optional
        1-based line number inside ``path``.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = path or ""
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
