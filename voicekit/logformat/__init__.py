"""The ``voicekit-log/1`` log bundle: writer, reader, schema and validator; call recordings
and downloaded hosted sessions read as logs.

Format layer: imports only the standard library, numpy, soundfile (recordings, on first
use), ``voicekit.audio`` and ``voicekit.errors``; never the session, protocol, analysis or
widgets (the hosted reader places user speech with the analysis' VAD, imported lazily).
"""

from __future__ import annotations

from voicekit.logformat.hosted import HostedSession, read_hosted
from voicekit.logformat.reader import SUPPORTED_FORMATS, LogFormatWarning, SessionLog, load_log
from voicekit.logformat.recording import Recording, load_recording
from voicekit.logformat.validate import Problem, validate_log
from voicekit.logformat.writer import FORMAT, LogWriter, scrub

__all__ = [
    "FORMAT",
    "SUPPORTED_FORMATS",
    "HostedSession",
    "LogFormatWarning",
    "LogWriter",
    "Problem",
    "Recording",
    "SessionLog",
    "load_log",
    "load_recording",
    "read_hosted",
    "scrub",
    "validate_log",
]
