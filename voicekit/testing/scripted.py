"""Deprecated alias: the scripted user moved to :mod:`voicekit.scripted`."""

from voicekit.scripted import Backchannel, BargeIn, Pause, Say, ScriptedUser

__all__ = ["Backchannel", "BargeIn", "Pause", "Say", "ScriptedUser"]
