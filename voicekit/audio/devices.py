"""Sound devices through PortAudio (sounddevice), imported lazily and failing clearly.

Runtime layer. ``sounddevice`` is imported only when a device is used, so voicekit works
on machines with no PortAudio library (workshop servers, CI) as long as no device is asked
for. Every PortAudio failure becomes :class:`voicekit.AudioError` saying what to do.
"""

from __future__ import annotations

from typing import Any

from voicekit.errors import AudioError

__all__ = ["list_devices", "resolve_device", "sounddevice"]

NO_PORTAUDIO = (
    "the PortAudio library is not installed; install it (Debian/Ubuntu: "
    "'sudo apt-get install libportaudio2', macOS: 'brew install portaudio', conda: "
    "'conda install portaudio'), or pass audio_in=\"null\", a WAV path or vk.ScriptedUser([...])"
)


def sounddevice() -> Any:
    """Import and return the ``sounddevice`` module, or raise AudioError saying what to install."""
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise AudioError(NO_PORTAUDIO) from exc
    except ImportError as exc:
        raise AudioError("sounddevice is not installed; run 'pip install sounddevice'") from exc
    return sd


def list_devices() -> list[dict[str, Any]]:
    """The sound devices PortAudio sees.

    Returns
    -------
    list of dict
        One dict a device: ``index``, ``name``, ``hostapi``, ``max_input_channels``,
        ``max_output_channels``, ``default_samplerate``, ``default_input`` and
        ``default_output`` (bools). Empty when there is no sound device.

    Raises
    ------
    AudioError
        If PortAudio is not installed.
    """
    sd = sounddevice()
    try:
        devices = sd.query_devices()
        default_in, default_out = sd.default.device
    except Exception as exc:
        raise AudioError(f"cannot list sound devices: {exc}") from exc
    hostapis = sd.query_hostapis()
    out = []
    for index, dev in enumerate(devices):
        out.append(
            {
                "index": index,
                "name": dev["name"],
                "hostapi": hostapis[dev["hostapi"]]["name"],
                "max_input_channels": dev["max_input_channels"],
                "max_output_channels": dev["max_output_channels"],
                "default_samplerate": dev["default_samplerate"],
                "default_input": index == default_in,
                "default_output": index == default_out,
            }
        )
    return out


def resolve_device(device: int | str | None, kind: str) -> int | None:
    """Find a device index by index or (part of) its name.

    Parameters
    ----------
    device : int, str or None
        ``None`` picks PortAudio's default for ``kind``.
    kind : {"input", "output"}
        Which direction the device must support.

    Raises
    ------
    AudioError
        If no device matches, naming the devices there are and the alternatives.
    """
    devices = list_devices()
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in devices if d[channels] > 0]
    alternative = (
        'pass audio_in="null", a WAV path or vk.ScriptedUser([...])'
        if kind == "input"
        else 'pass audio_out="null" or a WAV path'
    )
    if not usable:
        asked = "" if device is None else f"no {kind} device matches {device!r}: "
        raise AudioError(f"{asked}no audio {kind} device found; {alternative}")
    if device is None:
        default = [d for d in usable if d[f"default_{kind}"]]
        return int((default or usable)[0]["index"])
    if isinstance(device, int):
        if any(d["index"] == device for d in usable):
            return device
    else:
        matches = [d for d in usable if str(device).lower() in str(d["name"]).lower()]
        if matches:
            return int(matches[0]["index"])
    names = ", ".join(f"{d['index']}: {d['name']}" for d in usable)
    raise AudioError(f"no {kind} device matches {device!r}; {kind} devices are: {names}")
