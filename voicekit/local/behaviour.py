"""Where the twin follows what the hosted service was seen doing, not what its docs say.

``voicekit.local`` layer, pure: no I/O. People who recorded the running service in
September 2026 saw it deviate from its own documentation in a few ways a client must
survive. The stand-in agent reproduces them by default (``behaviour="observed"``);
``behaviour="documented"`` gives the documented behaviour, and a :class:`Behaviour` (or a
dict of its fields, applied over the observed set) switches each one on its own::

    vk.local.serve()                                        # observed, every deviation on
    vk.local.serve(behaviour="documented")                  # as the docs describe it
    vk.local.serve(behaviour={"resume_fails": False})       # observed, but resume works
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from voicekit.errors import ConfigError

__all__ = ["BEHAVIOURS", "Behaviour"]

BEHAVIOURS = ("observed", "documented")


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """Which observed deviations of the hosted service the twin reproduces.

    Attributes
    ----------
    resume_fails : bool
        ``session.resume`` answers ``session_not_found`` (fatal, 1008) whatever the session:
        live, 8 of 8 resume attempts failed so. Off: a dropped session is held 30 s and
        resumes as documented.
    merge_early_turns : bool
        A pause inside a user turn can end it early; the user's continuation is merged
        into that turn, the reply held for it stays silent, and its ``transcript.agent``
        still carries the unspoken text with ``interrupted: false`` (the hosted profile:
        speech resumed after a 0.3-0.6 s pause that followed a complete-looking phrase
        commits the first part 0.8 s after the pause began). Off: such a pause does not
        end the turn.
    reusable_tokens : bool
        A temporary token opens any number of sessions inside its window. Off: single use.
    accept_fast_audio : bool
        Input faster than real time is accepted and transcribed whole. Off: audio beyond
        real-time pace is dropped with ``audio_rate_violation``.
    """

    resume_fails: bool = True
    merge_early_turns: bool = True
    reusable_tokens: bool = True
    accept_fast_audio: bool = True

    @classmethod
    def observed(cls) -> Behaviour:
        """Every observed deviation on (the default)."""
        return cls()

    @classmethod
    def documented(cls) -> Behaviour:
        """Every deviation off: the service as its documentation describes it."""
        return cls(**{f.name: False for f in dataclasses.fields(cls)})

    @classmethod
    def resolve(cls, value: Any) -> Behaviour:
        """A :class:`Behaviour` from ``"observed"``, ``"documented"``, a dict of flags (over
        the observed set) or a :class:`Behaviour`.

        Raises
        ------
        ConfigError
            For any other value, or a dict naming an unknown flag.
        """
        if isinstance(value, Behaviour):
            return value
        if value == "observed":
            return cls.observed()
        if value == "documented":
            return cls.documented()
        names = [f.name for f in dataclasses.fields(cls)]
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ConfigError(
                    f"behaviour has unknown flag(s) {unknown}; flags are: {', '.join(names)}",
                    field="behaviour",
                )
            bad = sorted(k for k, v in value.items() if not isinstance(v, bool))
            if bad:
                raise ConfigError(
                    f"behaviour flag(s) {bad} must be True or False", field="behaviour"
                )
            return dataclasses.replace(cls.observed(), **dict(value))
        raise ConfigError(
            f"behaviour ({value!r}) must be 'observed', 'documented', a dict of flags "
            f"({', '.join(names)}) or a vk.local.Behaviour",
            field="behaviour",
        )
