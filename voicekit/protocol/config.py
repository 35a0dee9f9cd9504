"""Session configuration: typed, validated, and turned into ``session.update`` patches.

Protocol layer, pure: no I/O, no asyncio. Every validation error is a
:class:`voicekit.ConfigError` (also a ``ValueError``) whose ``field`` is the wire path of
the offending value (``"input.turn_detection.min_silence"``) and whose message names the
field, the value and the limit, and says what to do.

``None`` always means *unset*: the server's default applies (protocol reference §5.1).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from voicekit.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_SILENCE_MS",
    "DEFAULT_MIN_SILENCE_MS",
    "DEFAULT_VAD_THRESHOLD",
    "ENCODING_RATES",
    "IMMUTABLE_FIELDS",
    "MAX_KEYTERMS",
    "MAX_KEYTERM_CHARS",
    "MUTABLE_FIELDS",
    "AudioFormat",
    "SessionConfig",
    "TurnDetection",
    "diff",
    "merge",
    "validate_tool",
]

ENCODING_RATES = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}
MAX_KEYTERMS = 100
MAX_KEYTERM_CHARS = 50  # not documented by the service; long phrases are not "terms"
MUTABLE_FIELDS = (
    "system_prompt",
    "tools",
    "turn_detection",
    "keyterms",
    "transcription_mode",
    "volume",
)
IMMUTABLE_FIELDS = ("voice", "greeting", "input_format", "output_format")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODES = ("balanced", "min_latency", "max_accuracy")


# What an agent does with turn-detection fields left unset: the values the protocol
# reference's quickstarts document (it lists conflicting defaults elsewhere, see §9). The
# stand-in agent uses them and the panel's sliders start at them.
DEFAULT_VAD_THRESHOLD = 0.5
DEFAULT_MIN_SILENCE_MS = 600
DEFAULT_MAX_SILENCE_MS = 1500


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclasses.dataclass(frozen=True)
class TurnDetection:
    """Turn-detection knobs (protocol reference §5.1.3, §9). ``None`` = server default.

    Parameters
    ----------
    vad_threshold : float, optional
        Speech-probability threshold in [0, 1]; lower hears more as speech.
    min_silence : int, optional
        Trailing silence in ms before a confident end of turn (a positive integer).
    max_silence : int, optional
        Trailing silence in ms after which the turn ends regardless (>= min_silence).
    interrupt_response : bool, optional
        Whether user speech may interrupt (barge in on) the agent.
    interruption_delay : int, optional
        Ms of user speech before it may cut the agent off, 0-1000.
    """

    vad_threshold: float | None = None
    min_silence: int | None = None
    max_silence: int | None = None
    interrupt_response: bool | None = None
    interruption_delay: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "turn_detection") -> None:
        """Raise ConfigError for the first invalid field."""
        v = self.vad_threshold
        if v is not None and not (_is_number(v) and 0.0 <= float(v) <= 1.0):
            raise ConfigError(
                f"vad_threshold ({v!r}) must be a number between 0 and 1; lower values hear "
                "more as speech, raise it in noisy rooms",
                field=f"{prefix}.vad_threshold",
            )
        for name in ("min_silence", "max_silence"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value > 0):
                raise ConfigError(
                    f"{name} ({value!r}) must be a positive integer number of milliseconds, "
                    "e.g. 600",
                    field=f"{prefix}.{name}",
                )
        lo, hi = self.min_silence, self.max_silence
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(
                f"min_silence ({lo} ms) must not exceed max_silence ({hi} ms); lower min_silence "
                "or raise max_silence",
                field=f"{prefix}.min_silence",
            )
        if self.interrupt_response is not None and not isinstance(self.interrupt_response, bool):
            raise ConfigError(
                f"interrupt_response ({self.interrupt_response!r}) must be True or False",
                field=f"{prefix}.interrupt_response",
            )
        d = self.interruption_delay
        if d is not None and not (_is_int(d) and 0 <= d <= 1000):
            raise ConfigError(
                f"interruption_delay ({d!r}) must be an integer from 0 to 1000 ms",
                field=f"{prefix}.interruption_delay",
            )

    def to_dict(self) -> dict[str, Any]:
        """The wire object, unset fields omitted."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, prefix: str = "turn_detection"
    ) -> TurnDetection | None:
        """Parse the wire object (unknown keys such as ``type`` are ignored); None stays None."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{prefix} must be an object, got {type(data).__name__}", field=prefix
            )
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass(frozen=True)
class AudioFormat:
    """An audio encoding on the wire: PCM16 at 24 kHz, or G.711 μ-law/A-law at 8 kHz."""

    encoding: str = "audio/pcm"
    sample_rate: int = 24000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "format") -> None:
        """Raise ConfigError unless the encoding is known and at its only supported rate."""
        if self.encoding not in ENCODING_RATES:
            raise ConfigError(
                f"{prefix}.encoding ({self.encoding!r}) must be one of {', '.join(ENCODING_RATES)}",
                field=f"{prefix}.encoding",
            )
        rate = ENCODING_RATES[self.encoding]
        if self.sample_rate != rate:
            raise ConfigError(
                f"{prefix}.sample_rate ({self.sample_rate!r}) must be {rate} for "
                f"{self.encoding}; resample your audio to {rate} Hz",
                field=f"{prefix}.sample_rate",
            )

    def to_dict(self) -> dict[str, Any]:
        """The wire object."""
        return {"encoding": self.encoding, "sample_rate": self.sample_rate}

    @classmethod
    def from_dict(cls, data: Any, prefix: str = "format") -> AudioFormat:
        """Parse the wire object; a missing sample_rate takes the encoding's rate."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{prefix} must be an object", field=prefix)
        encoding = data.get("encoding", "audio/pcm")
        if not isinstance(encoding, str):
            raise ConfigError(f"{prefix}.encoding must be a string", field=f"{prefix}.encoding")
        rate = data.get("sample_rate")
        if rate is None:
            rate = ENCODING_RATES.get(encoding, 24000)
        fmt = cls.__new__(cls)
        object.__setattr__(fmt, "encoding", encoding)
        object.__setattr__(fmt, "sample_rate", rate)
        fmt.validate(prefix)
        return fmt


def validate_tool(tool: Any, where: str = "tools[0]") -> dict[str, Any]:
    """Check one flat tool definition (§5.1.5); returns it with defaults filled in.

    Raises
    ------
    ConfigError
        Naming the field (``tools[2].parameters.properties``) and the fix.
    """
    if not isinstance(tool, Mapping):
        raise ConfigError(
            f"{where} must be an object with type, name, description, parameters", field=where
        )
    if tool.get("type", "function") != "function":
        raise ConfigError(
            f"{where}.type ({tool.get('type')!r}) must be 'function'", field=f"{where}.type"
        )
    name = tool.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise ConfigError(
            f"{where}.name ({name!r}) must be 1-64 letters, digits, '_' or '-'",
            field=f"{where}.name",
        )
    description = tool.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description must be a string", field=f"{where}.description")
    params = tool.get("parameters", {"type": "object", "properties": {}, "required": []})
    if not isinstance(params, Mapping) or params.get("type", "object") != "object":
        raise ConfigError(
            f'{where}.parameters must be a JSON schema object ({{"type": "object", '
            '"properties": {...}})',
            field=f"{where}.parameters",
        )
    if not isinstance(params.get("properties", {}), Mapping):
        raise ConfigError(
            f"'{where}.parameters.properties' must be an object",
            field=f"{where}.parameters.properties",
        )
    required = params.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ConfigError(
            f"{where}.parameters.required must be a list of names",
            field=f"{where}.parameters.required",
        )
    mode = tool.get("execution_mode", "interactive")
    if mode not in ("interactive", "hold"):
        raise ConfigError(
            f"{where}.execution_mode ({mode!r}) must be 'interactive' or 'hold'",
            field=f"{where}.execution_mode",
        )
    timeout = tool.get("timeout_seconds")
    if timeout is not None and not (_is_number(timeout) and 1 <= timeout <= 300):
        raise ConfigError(
            f"{where}.timeout_seconds ({timeout!r}) must be from 1 to 300",
            field=f"{where}.timeout_seconds",
        )
    return {"type": "function", "description": description, **dict(tool), "parameters": params}


def _validate_keyterms(keyterms: Sequence[Any]) -> None:
    if isinstance(keyterms, str) or not isinstance(keyterms, Sequence):
        raise ConfigError(
            "keyterms must be a list of strings, e.g. ['Ozempic']", field="input.keyterms"
        )
    if len(keyterms) > MAX_KEYTERMS:
        raise ConfigError(
            f"keyterms has {len(keyterms)} entries; at most {MAX_KEYTERMS}", field="input.keyterms"
        )
    for i, term in enumerate(keyterms):
        if not isinstance(term, str) or not term.strip():
            raise ConfigError(
                f"keyterms[{i}] ({term!r}) must be a non-empty string", field="input.keyterms"
            )
        if len(term) > MAX_KEYTERM_CHARS:
            raise ConfigError(
                f"keyterms[{i}] is {len(term)} characters; at most {MAX_KEYTERM_CHARS} "
                "(key terms are words or short names, not sentences)",
                field="input.keyterms",
            )


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """The configuration of a session (the ``session`` object of ``session.update``).

    Parameters
    ----------
    system_prompt : str, optional
        Persona and instructions. Mutable.
    greeting : str, optional
        Spoken verbatim right after ``session.ready``. Fixed for the session.
    voice : str, optional
        ``output.voice``. Fixed for the session.
    input_format, output_format : AudioFormat
        Wire encodings. Fixed for the session.
    turn_detection : TurnDetection, optional
        Mutable.
    keyterms : list of str, optional
        Words to boost in recognition (at most 100). Mutable.
    tools : list of dict, optional
        Flat tool definitions. Mutable (a change replaces the whole list).
    transcription_mode : {"balanced", "min_latency", "max_accuracy"}, optional
    volume : float, optional
        ``output.volume`` 0-100. Mutable.
    extra : dict
        Wire fields voicekit does not model, passed through unchanged.
    """

    system_prompt: str | None = None
    greeting: str | None = None
    voice: str | None = None
    input_format: AudioFormat = dataclasses.field(default_factory=AudioFormat)
    output_format: AudioFormat = dataclasses.field(default_factory=AudioFormat)
    turn_detection: TurnDetection | None = None
    keyterms: tuple[str, ...] | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    transcription_mode: str | None = None
    volume: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.keyterms is not None and not isinstance(self.keyterms, tuple):
            _validate_keyterms(self.keyterms)
            object.__setattr__(self, "keyterms", tuple(self.keyterms))
        if self.turn_detection is not None and isinstance(self.turn_detection, Mapping):
            object.__setattr__(self, "turn_detection", TurnDetection(**self.turn_detection))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for the first invalid field."""
        for name in ("system_prompt", "greeting"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"{name} must be a string, got {type(value).__name__}", field=name
                )
        if self.voice is not None and (not isinstance(self.voice, str) or not self.voice.strip()):
            raise ConfigError(
                f"voice ({self.voice!r}) must be a non-empty string such as "
                "'alba'; see vk.voices()",
                field="output.voice",
            )
        if not isinstance(self.input_format, AudioFormat):
            raise ConfigError("input_format must be an AudioFormat", field="input.format")
        if not isinstance(self.output_format, AudioFormat):
            raise ConfigError("output_format must be an AudioFormat", field="output.format")
        if self.turn_detection is not None:
            if not isinstance(self.turn_detection, TurnDetection):
                raise ConfigError(
                    "turn_detection must be a vk.TurnDetection(...)", field="input.turn_detection"
                )
            self.turn_detection.validate("input.turn_detection")
        if self.keyterms is not None:
            _validate_keyterms(self.keyterms)
        if self.tools is not None:
            if not isinstance(self.tools, list):
                raise ConfigError("tools must be a list of tool definitions", field="tools")
            names = []
            for i, tool in enumerate(self.tools):
                names.append(validate_tool(tool, f"tools[{i}]")["name"])
            if len(set(names)) != len(names):
                raise ConfigError(f"tool names must be unique, got {names}", field="tools")
        if self.transcription_mode is not None and self.transcription_mode not in _MODES:
            raise ConfigError(
                f"transcription_mode ({self.transcription_mode!r}) must be one of "
                f"{', '.join(_MODES)}",
                field="input.transcription_mode",
            )
        v = self.volume
        if v is not None and not (_is_number(v) and 0 <= v <= 100):
            raise ConfigError(
                f"volume ({v!r}) must be a number from 0 to 100", field="output.volume"
            )

    def to_dict(self) -> dict[str, Any]:
        """The wire ``session`` object (unset fields omitted)."""
        out: dict[str, Any] = dict(self.extra)
        if self.system_prompt is not None:
            out["system_prompt"] = self.system_prompt
        if self.greeting is not None:
            out["greeting"] = self.greeting
        inp: dict[str, Any] = {"format": self.input_format.to_dict()}
        if self.turn_detection is not None:
            inp["turn_detection"] = self.turn_detection.to_dict()
        if self.keyterms is not None:
            inp["keyterms"] = list(self.keyterms)
        if self.transcription_mode is not None:
            inp["transcription_mode"] = self.transcription_mode
        out["input"] = {**out.get("input", {}), **inp}
        outp: dict[str, Any] = {"format": self.output_format.to_dict()}
        if self.voice is not None:
            outp["voice"] = self.voice
        if self.volume is not None:
            outp["volume"] = self.volume
        out["output"] = {**out.get("output", {}), **outp}
        if self.tools is not None:
            out["tools"] = [dict(t) for t in self.tools]
        return out

    @classmethod
    def from_dict(cls, session: Mapping[str, Any]) -> SessionConfig:
        """Parse a wire ``session`` object or a ``config`` echo (nulls = unset).

        Raises
        ------
        ConfigError
            With ``field`` set to the wire path of the first invalid value.
        """
        if not isinstance(session, Mapping):
            raise ConfigError("session must be an object", field="session")
        inp = session.get("input") or {}
        outp = session.get("output") or {}
        if not isinstance(inp, Mapping):
            raise ConfigError("input must be an object", field="input")
        if not isinstance(outp, Mapping):
            raise ConfigError("output must be an object", field="output")
        voice = outp.get("voice")
        if isinstance(voice, Mapping):  # REST agents: {"voice_id": ...}
            voice = voice.get("voice_id")
        known = {"system_prompt", "greeting", "input", "output", "tools"}
        extra = {k: v for k, v in session.items() if k not in known}
        in_extra = {
            k: v
            for k, v in inp.items()
            if k not in ("format", "turn_detection", "keyterms", "transcription_mode")
        }
        out_extra = {k: v for k, v in outp.items() if k not in ("format", "voice", "volume")}
        if in_extra:
            extra["input"] = in_extra
        if out_extra:
            extra["output"] = out_extra
        tools = session.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise ConfigError("tools must be a list of tool definitions", field="tools")
        keyterms = inp.get("keyterms")
        if keyterms is not None:
            _validate_keyterms(keyterms)
        return cls(
            system_prompt=session.get("system_prompt"),
            greeting=session.get("greeting"),
            voice=voice,
            input_format=AudioFormat.from_dict(inp.get("format"), "input.format"),
            output_format=AudioFormat.from_dict(outp.get("format"), "output.format"),
            turn_detection=TurnDetection.from_dict(
                inp.get("turn_detection"), "input.turn_detection"
            ),
            keyterms=keyterms,
            tools=[dict(t) if isinstance(t, Mapping) else t for t in tools]
            if tools is not None
            else None,
            transcription_mode=inp.get("transcription_mode"),
            volume=outp.get("volume"),
            extra=extra,
        )


def diff(old: SessionConfig, new: SessionConfig) -> dict[str, Any]:
    """The minimal ``session.update`` patch turning ``old`` into ``new``.

    ``tools`` and ``turn_detection`` are sent whole when they change.

    Raises
    ------
    ConfigError
        If a field fixed for the session changed (voice, greeting, formats), saying that
        it takes a new session.
    """
    for name in IMMUTABLE_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            arg = {"voice": "voice", "greeting": "greeting"}.get(name, name)
            raise ConfigError(
                f"{name} cannot change mid-session ({a!r} -> {b!r}); stop this session and "
                f"start a new one with {arg}={b!r}",
                field={
                    "voice": "output.voice",
                    "input_format": "input.format",
                    "output_format": "output.format",
                }.get(name, name),
            )
    patch: dict[str, Any] = {}
    if old.system_prompt != new.system_prompt:
        patch["system_prompt"] = new.system_prompt if new.system_prompt is not None else ""
    if old.tools != new.tools:
        patch["tools"] = [dict(t) for t in new.tools or []]
    inp: dict[str, Any] = {}
    if old.turn_detection != new.turn_detection:
        inp["turn_detection"] = (new.turn_detection or TurnDetection()).to_dict()
    if old.keyterms != new.keyterms:
        inp["keyterms"] = list(new.keyterms or [])
    if old.transcription_mode != new.transcription_mode and new.transcription_mode:
        inp["transcription_mode"] = new.transcription_mode
    if inp:
        patch["input"] = inp
    if old.volume != new.volume and new.volume is not None:
        patch["output"] = {"volume": new.volume}
    return patch


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if key != "tools" and isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merge(config: SessionConfig, patch: Mapping[str, Any]) -> SessionConfig:
    """Apply a wire ``session.update`` patch to a config (tools replace; objects merge)."""
    for section in ("input", "output"):
        # a null or non-object section would replace the whole section, silently resetting
        # fixed fields (voice, formats) to their defaults
        if section in patch and not isinstance(patch[section], Mapping):
            raise ConfigError(
                f"{section} must be an object, got {type(patch[section]).__name__}; send only "
                f"the {section} fields to change",
                field=section,
            )
    return SessionConfig.from_dict(_deep_merge(config.to_dict(), patch))
