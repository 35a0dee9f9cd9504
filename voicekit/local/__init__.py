"""The stand-in agent: an offline voice agent that speaks the Voice Agent protocol.

``vk.local.serve(port=0)`` starts one in a background thread (a context manager with
``.url`` and ``.stop()``); ``python -m voicekit serve --port 8765`` starts one from the
shell. It uses real voice activity detection (Silero), speech recognition (pocketsphinx)
and speech synthesis (espeak-ng), all installed with voicekit, and behaves on the wire like
the hosted service (the Voice Agent protocol reference, §14).

Layer: built on ``voicekit.protocol`` and ``voicekit.audio`` codecs only.
"""

from __future__ import annotations

from voicekit.local.behaviour import Behaviour
from voicekit.local.brain import ToolRequest, default_brain
from voicekit.local.server import AgentOptions, LocalAgent, embedded_agent, serve

__all__ = [
    "AgentOptions",
    "Behaviour",
    "LocalAgent",
    "ToolRequest",
    "default_brain",
    "embedded_agent",
    "serve",
]
