"""The ``voicekit-log/1`` log bundle: writer and reader.

Format layer: imports only the standard library, numpy, ``voicekit.audio.wav`` and
``voicekit.errors``; never the session, protocol, analysis or widgets.
"""

from __future__ import annotations

from voicekit.logformat.reader import SUPPORTED_FORMATS, LogFormatWarning, SessionLog, load_log
from voicekit.logformat.writer import FORMAT, LogWriter, scrub

__all__ = [
    "FORMAT",
    "SUPPORTED_FORMATS",
    "LogFormatWarning",
    "LogWriter",
    "SessionLog",
    "load_log",
    "scrub",
]
