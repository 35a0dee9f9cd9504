"""Call recordings read as logs: :class:`Recording` and :func:`load_recording`.

Format layer: soundfile (libsndfile), numpy and :mod:`voicekit.audio`; the turn table and
plots come from :mod:`voicekit.analysis` through the accessors a :class:`SessionLog` has.

A recording is any file libsndfile reads (WAV PCM 16/24/32-bit or float, 8 kHz mu-law or
A-law WAV from telephony, FLAC, Ogg Vorbis or Opus, MP3, ...) with one channel per party,
or two mono files, one per party. The two parties' channels become the log's ``user`` and
``agent`` tracks, resampled to 24 kHz int16 and starting at the file's first sample: time
0 of the session clock. A recording has no protocol events (only ``session.start`` at 0
and ``session.stop`` at its end), so the analysis finds the user's speech with Silero VAD
and the agent's replies by level (:mod:`voicekit.analysis.acoustic`), and leaves the
columns only the protocol knows (``endpoint_delay``, ``server_first_audio``, ...) NaN.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voicekit.errors import ConfigError, LogFormatError
from voicekit.logformat.columnar import EventTable
from voicekit.logformat.reader import SessionLog

__all__ = ["Recording", "load_recording"]

RATE = 24000

_PAIR_HINT = 'or pass the two parties\' mono files: vk.load_recording(("user.wav", "agent.wav"))'


class Recording(SessionLog):
    """A call recording read as a log: ``turns``, ``barge_ins``, ``summary()`` and the
    plots work on it as on a session's log.

    Made by :func:`load_recording`, not directly.

    Attributes
    ----------
    path : Path
        The recording (the user's file of a pair).
    meta : dict
        What the file is: ``path``, ``format`` and ``subtype`` (soundfile's names, e.g.
        ``WAV``/``ULAW``), ``channels``, ``original_rate`` (Hz), ``duration`` (s),
        ``user_channel``, ``agent_channel``, ``sample_rate`` (24000, the tracks' rate) and
        ``session_id`` (the file's name without its suffix). For a pair of files, the
        per-file fields are ``[user, agent]`` lists.
    """

    def __init__(
        self,
        path: Path,
        user: NDArray[np.int16],
        agent: NDArray[np.int16],
        meta: dict[str, Any],
    ) -> None:
        # a SessionLog without a bundle: the tracks are in memory, the events made here
        n = max(len(user), len(agent))
        self.path = path
        self.meta = meta
        self._tracks = {"user": _pad(user, n), "agent": _pad(agent, n)}
        self._raw: list[dict[str, Any]] | None = [
            {"t": 0.0, "dir": "local", "type": "session.start", "backend": "recording"},
            {"t": n / RATE, "dir": "local", "type": "session.stop", "status": "ended"},
        ]
        self._frames: dict[str, Any] = {}

    @property
    def raw_events(self) -> list[dict[str, Any]]:
        """``session.start`` at 0 and ``session.stop`` at the end: a recording has no
        protocol events."""
        assert self._raw is not None
        return self._raw

    def _read_table(self) -> EventTable:
        return EventTable.from_dicts(self.raw_events)

    def __repr__(self) -> str:
        return (
            f"<Recording {self.path.name} channels={self.meta['channels']} "
            f"rate={self.meta['original_rate']} duration={self.duration:.1f}s>"
        )

    def audio(self, track: str = "user") -> tuple[NDArray[np.int16], int]:
        """One party's channel, ``"user"`` or ``"agent"``, as (24 kHz int16 samples, 24000)."""
        if track not in self._tracks:
            raise LogFormatError(f"track ({track!r}) must be 'user' or 'agent'")
        return self._tracks[track], RATE

    def track_samples(self, track: str) -> NDArray[np.int16]:
        """One party's channel (24 kHz int16): what the analysis and plots read."""
        return self.audio(track)[0]


def _pad(x: NDArray[np.int16], n: int) -> NDArray[np.int16]:
    return x if len(x) == n else np.concatenate([x, np.zeros(n - len(x), np.int16)])


def _channel(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(
            f"{field} ({value!r}) must be a channel index, 0 for the first channel", field=field
        )
    return int(value)


def _info(path: Path) -> Any:
    import soundfile

    if path.is_dir():
        hint = "; it is a log bundle: use vk.load_log" if (path / "meta.json").exists() else ""
        raise LogFormatError(f"is a directory, not a recording{hint}", str(path))
    if not path.exists():
        raise LogFormatError("no such recording", str(path))
    try:
        return soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise LogFormatError(
            f"not an audio file libsndfile can read ({exc}); convert it to WAV or FLAC, "
            "e.g. ffmpeg -i call.mp4 -c:a flac call.flac",
            str(path),
        ) from None


def _read(path: Path, channels: list[int]) -> list[NDArray[np.int16]]:
    """The given channels of a file at 24 kHz int16."""
    import soundfile

    from voicekit.audio.pcm import float32_to_pcm16
    from voicekit.audio.resample import resample

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return [
        float32_to_pcm16(resample(np.ascontiguousarray(data[:, c]), int(rate), RATE))
        for c in channels
    ]


def _fields(path: Path, info: Any) -> dict[str, Any]:
    return {
        "path": str(path),
        "format": info.format,
        "subtype": info.subtype,
        "channels": info.channels,
        "original_rate": info.samplerate,
        "duration": info.frames / info.samplerate if info.samplerate else 0.0,
    }


def _common_name(a: Path, b: Path) -> str:
    x, y = a.stem, b.stem
    n = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
    prefix = x[:n].rstrip("-_. ")
    return prefix or f"{a.stem}+{b.stem}"


def load_recording(
    path: str | os.PathLike[str] | tuple[str | os.PathLike[str], str | os.PathLike[str]],
    user_channel: int = 0,
    agent_channel: int = 1,
) -> Recording:
    """Read a call recording (one channel per party) as a log with a turn table.

    Parameters
    ----------
    path : str, path, or (user, agent) pair of paths
        A file with two or more channels that libsndfile reads (WAV, mu-law / A-law WAV,
        FLAC, Ogg Vorbis / Opus, MP3, ...), or two mono files, the user's first.
    user_channel, agent_channel : int
        Which channel holds the user (the caller) and which the agent, counted from 0.
        If ``vk.plot_timeline(rec)`` shows the replies in the user's lane, swap them.
        Not used with a pair of files.

    Returns
    -------
    Recording
        ``rec.turns``, ``rec.barge_ins``, ``rec.summary()``; ``vk.plot_timeline(rec)``.

    Raises
    ------
    LogFormatError
        If a file is missing, unreadable or mono (a mix of both parties cannot be split).
    ConfigError
        If a channel index is not a channel of the file, or both name the same channel.
    """
    if isinstance(path, (tuple, list)):
        if len(path) != 2 or not all(isinstance(p, (str, os.PathLike)) for p in path):
            raise ConfigError(
                "path must be one recording or a (user, agent) pair of mono files",
                field="path",
            )
        if (user_channel, agent_channel) != (0, 1):
            raise ConfigError(
                "user_channel and agent_channel choose channels of one file; with a pair "
                "of files the first is the user and the second the agent",
                field="user_channel" if user_channel != 0 else "agent_channel",
            )
        files = [Path(p) for p in path]
        infos = [_info(p) for p in files]
        for p, info in zip(files, infos, strict=True):
            if info.channels != 1:
                raise LogFormatError(
                    f"has {info.channels} channels; a pair must be two mono files, one per "
                    "party; pass one multi-channel file alone with user_channel= and "
                    "agent_channel=",
                    str(p),
                )
        (user,) = _read(files[0], [0])
        (agent,) = _read(files[1], [0])
        each = [_fields(p, i) for p, i in zip(files, infos, strict=True)]
        meta: dict[str, Any] = {key: [each[0][key], each[1][key]] for key in each[0]}
        meta.update(user_channel=0, agent_channel=0, session_id=_common_name(*files))
    elif isinstance(path, (str, os.PathLike)):
        file = Path(path)
        info = _info(file)
        user_channel = _channel(user_channel, "user_channel")
        agent_channel = _channel(agent_channel, "agent_channel")
        if info.channels < 2:
            raise LogFormatError(
                "is mono: a call recording needs two channels, one per party (the user on "
                "one, the agent on the other; a mono mix cannot be split into turns); export "
                f"the call as stereo / dual-channel, {_PAIR_HINT}",
                str(file),
            )
        for field, value in (("user_channel", user_channel), ("agent_channel", agent_channel)):
            if value >= info.channels:
                raise ConfigError(
                    f"{field} ({value}) is not a channel of {file.name}, which has "
                    f"{info.channels} (0-{info.channels - 1})",
                    field=field,
                )
        if user_channel == agent_channel:
            raise ConfigError(
                f"agent_channel ({agent_channel}) must differ from user_channel: each party "
                "has its own channel",
                field="agent_channel",
            )
        user, agent = _read(file, [user_channel, agent_channel])
        meta = _fields(file, info)
        meta.update(user_channel=user_channel, agent_channel=agent_channel, session_id=file.stem)
        files = [file]
    else:
        raise ConfigError(
            f"path must be the path of a recording or a (user, agent) pair of paths, "
            f"got {type(path).__name__}",
            field="path",
        )
    meta.update(sample_rate=RATE, backend=None, started_at=None, config={})
    return Recording(files[0], user, agent, meta)
