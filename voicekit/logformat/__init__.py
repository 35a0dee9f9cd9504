"""The ``voicekit-log/1`` log bundle: writer, reader, schema and validator; call recordings
read as logs.

Format layer: imports only the standard library, numpy, soundfile (recordings, on first
use), ``voicekit.audio`` and ``voicekit.errors``; never the session, protocol, analysis or
widgets.
"""

from __future__ import annotations

from voicekit.logformat.reader import SUPPORTED_FORMATS, LogFormatWarning, SessionLog, load_log
from voicekit.logformat.recording import Recording, load_recording
from voicekit.logformat.validate import Problem, validate_log
from voicekit.logformat.writer import FORMAT, LogWriter, scrub

__all__ = [
    "FORMAT",
    "SUPPORTED_FORMATS",
    "LogFormatWarning",
    "LogWriter",
    "Problem",
    "Recording",
    "SessionLog",
    "load_log",
    "load_recording",
    "scrub",
    "validate_log",
]
