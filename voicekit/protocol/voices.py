"""The voice catalogue of the Voice Agent API, all three eras, as data.

Protocol layer, pure: no I/O; pandas is imported lazily by :func:`voices` only.

The hosted service renamed its voices twice (protocol reference §12): the launch "claire
era", the mid-2026 "ivy era" (the ids in the quickstarts people copy; 13 were removed in June
2026) and the September 2026 "alba era" (what the service lists today; default ``alba``).
Clients accept unknown ids with a warning, since the service adds voices; the stand-in
agent accepts the ids of every era by default.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

__all__ = [
    "CATALOGUE",
    "DEFAULT_VOICE",
    "ERAS",
    "Voice",
    "check_voice",
    "get_voice",
    "voice_ids",
    "voices",
]

DEFAULT_VOICE = "alba"
ERAS = ("claire", "ivy", "alba")


@dataclasses.dataclass(frozen=True)
class Voice:
    """One voice of the catalogue.

    Attributes
    ----------
    id : str
        The exact lower-case id sent as ``output.voice``.
    name : str
        Display name.
    accent : str
        Primary accent, e.g. ``"US English"``, ``"British English"``, ``"Spanish"``.
    language : str
        BCP-47-ish code of the primary language (``"en"``, ``"es"``, ...).
    description : str
        Style labels (from the reference; empty where none are documented).
    era : {"claire", "ivy", "alba"}
        Which catalogue set the id belongs to.
    group : {"english", "multilingual"}
        How pickers group it.
    removed : bool
        Removed from the service within its era (June 2026 for 13 ivy-era voices).
    """

    id: str
    name: str
    accent: str
    language: str
    description: str
    era: str
    group: str
    removed: bool = False


def _v(era: str, spec: str, group: str = "english", removed: set[str] | None = None) -> list[Voice]:
    out = []
    for line in spec.strip().splitlines():
        vid, accent, lang, desc = (x.strip() for x in line.split("|"))
        out.append(
            Voice(vid, vid.capitalize(), accent, lang, desc, era, group, vid in (removed or set()))
        )
    return out


_CLAIRE_EN = """
dawn|US English|en|professional, deliberate
josh|US English|en|conversational, professional
claire|US English|en|lively, conversational
summer|US English|en|empathetic
michael|US English|en|deep, calming
will|British English|en|narrative
andy|US English|en|soft, young
zoe|US English|en|smooth, young
alexis|US English|en|high-pitched, chatty
pete|US English|en|direct, fast-paced
brian|US English|en|chatty, expressive
diana|US English|en|older, calming
grace|US English|en|Southern, warm
kai|US English|en|slow, ASMR
nathan|US English|en|deep, older
audrey|US English|en|older, calming
dylan|US English|en|theatrical, energetic
melissa|British English|en|clear, instructive
"""
_CLAIRE_ML = """
gautam|Hindi|hi|multilingual
luke|Mandarin|zh|multilingual
lily|Mandarin|zh|multilingual
alexei|Russian|ru|multilingual
max|German|de|multilingual
anna|German|de|multilingual
antoine|French|fr|multilingual
jennie|Korean|ko|multilingual
kevin|Korean|ko|multilingual
kenji|Japanese|ja|multilingual
yuki|Japanese|ja|multilingual
nova|Italian|it|multilingual
marco|Italian|it|multilingual
sofia|Spanish|es|multilingual
santiago|Spanish|es|multilingual
leo|Latin American Spanish|es|multilingual
"""
_IVY_EN = """
ivy|US English|en|professional, deliberate
james|US English|en|conversational, professional
tyler|US English|en|theatrical, energetic
winter|US English|en|empathetic, conversational
sam|US English|en|soft, young
mia|US English|en|smooth, young
bella|US English|en|high-pitched, chatty
david|US English|en|deep, calming
jack|US English|en|direct, fast-paced
kyle|US English|en|chatty, expressive
helen|US English|en|older, calming
martha|US English|en|Southern, warm
river|US English|en|slow, ASMR
emma|US English|en|lively, young
victor|US English|en|deep, older
eleanor|US English|en|older, calming
sophie|British English|en|clear, instructive
oliver|British English|en|narrative
"""
_IVY_ML = """
arjun|Hindi|hi|Hindi/Hinglish
ethan|Mandarin|zh|multilingual
mei|Mandarin|zh|multilingual
dmitri|Russian|ru|multilingual
lukas|German|de|multilingual
lena|German|de|multilingual
pierre|French|fr|multilingual
mina|Korean|ko|multilingual
joon|Korean|ko|multilingual
ren|Japanese|ja|multilingual
hana|Japanese|ja|multilingual
giulia|Italian|it|multilingual
luca|Italian|it|multilingual
lucia|Spanish|es|multilingual
mateo|Spanish|es|multilingual
diego|Latin American Spanish|es|Colombian
"""
_IVY_REMOVED = set(
    "sam mia jack sophie oliver ethan mei lukas lena mina joon ren hana".split()  # noqa: SIM905
)
_ALBA_EN = """
alba|US English|en|
eve|US English|en|
george|US English|en|
jane|US English|en|
jean|US English|en|
mary|US English|en|
michael|US English|en|
anna|British English|en|
charles|British English|en|
paul|British English|en|
vera|British English|en|
iris|unknown|en|accent undocumented
reid|unknown|en|accent undocumented
"""
_ALBA_ML = """
lola|Spanish|es|code-switches with English
giovanni|Italian|it|code-switches with English
juergen|German|de|code-switches with English
rafael|Portuguese|pt|code-switches with English
estelle|French|fr|code-switches with English
"""

CATALOGUE: tuple[Voice, ...] = tuple(
    _v("claire", _CLAIRE_EN)
    + _v("claire", _CLAIRE_ML, "multilingual")
    + _v("ivy", _IVY_EN, removed=_IVY_REMOVED)
    + _v("ivy", _IVY_ML, "multilingual", removed=_IVY_REMOVED)
    + _v("alba", _ALBA_EN)
    + _v("alba", _ALBA_ML, "multilingual")
)
"""Every voice of every era (an id may appear in two eras: ``michael``, ``anna``)."""


def get_voice(voice_id: str, era: str | None = None) -> Voice | None:
    """The catalogue entry of ``voice_id`` (newest era first), or None if unknown."""
    for voice in reversed(CATALOGUE):
        if voice.id == voice_id and (era is None or voice.era == era):
            return voice
    return None


def voice_ids(era: str | None = None) -> list[str]:
    """Voice ids, of one era or (default) of all, without duplicates, in catalogue order."""
    if era is not None and era not in ERAS:
        raise ValueError(f"era ({era!r}) must be one of {', '.join(ERAS)}")
    seen: dict[str, None] = {}
    for voice in CATALOGUE:
        if era is None or voice.era == era:
            seen.setdefault(voice.id)
    return list(seen)


def check_voice(voice_id: str) -> str:
    """Return ``voice_id``, warning (``UserWarning``) when the catalogue does not know it.

    The hosted service adds voices, so an unknown id is not an error on the client side.
    """
    if get_voice(voice_id) is None:
        warnings.warn(
            f"voice {voice_id!r} is not in voicekit's catalogue (the service may have added "
            f"it); known voices include {', '.join(voice_ids('alba'))}; see vk.voices()",
            UserWarning,
            stacklevel=3,
        )
    return voice_id


def voices(era: str | None = None) -> Any:
    """The catalogue as a pandas DataFrame (one row a voice), optionally of one era."""
    import pandas as pd

    rows = [dataclasses.asdict(v) for v in CATALOGUE if era is None or v.era == era]
    if era is not None and era not in ERAS:
        raise ValueError(f"era ({era!r}) must be one of {', '.join(ERAS)}")
    return pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(Voice)])
