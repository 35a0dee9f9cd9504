"""Starting over when a resume fails: the conversation so far, carried in a system prompt.

Runtime layer, private; pure (no socket, no asyncio). Live observations: the hosted service
answered every ``session.resume`` with ``session_not_found``, and a ``conversation.message``
never reached its model while a ``session.update {system_prompt}`` did. So a session that
cannot resume opens a fresh one whose system prompt is the original one followed by the
transcripts so far (:func:`carried_prompt`), kept by :class:`Conversation` from the
``transcript.user`` / ``transcript.agent`` events as they arrive.

Must not import websockets, analysis or widgets.
"""

from __future__ import annotations

import dataclasses

__all__ = ["CARRY_MAX_CHARS", "Conversation", "carried_prompt"]

CARRY_MAX_CHARS = 4000
"""At most this many characters of conversation go into a restarted session's prompt (the
newest turns are kept): about a thousand tokens, a few minutes of talk."""

HEADER = "Conversation so far:"
OMITTED = "(earlier turns omitted)"


@dataclasses.dataclass
class Conversation:
    """The final transcripts of a session, in order, as ``(speaker, text)`` pairs.

    ``speaker`` is ``"User"`` or ``"Agent"``; an interrupted reply holds the text that was
    spoken (the service trims it).
    """

    turns: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def user(self, text: str | None) -> None:
        """A ``transcript.user``."""
        if text and text.strip():
            self.turns.append(("User", text.strip()))

    def agent(self, text: str | None) -> None:
        """A ``transcript.agent``."""
        if text and text.strip():
            self.turns.append(("Agent", text.strip()))


def carried_prompt(
    base: str | None, turns: list[tuple[str, str]], max_chars: int = CARRY_MAX_CHARS
) -> str | None:
    """``base`` followed by the conversation so far, for a restarted session.

    Parameters
    ----------
    base : str or None
        The session's own system prompt (``None``: the agent's default, so only the
        conversation is sent).
    turns : list of (speaker, text)
        The transcripts so far (:class:`Conversation`).
    max_chars : int
        Most characters of conversation kept; older turns are dropped first and an
        ``(earlier turns omitted)`` line says so. A single turn longer than that keeps its
        end.

    Returns
    -------
    str or None
        ``base + "\\n\\nConversation so far:\\nUser: ...\\nAgent: ..."``; ``base`` itself
        when there is no conversation yet.

    Examples
    --------
    >>> carried_prompt("Be brief.", [("User", "hi"), ("Agent", "Hello!")])
    'Be brief.\\n\\nConversation so far:\\nUser: hi\\nAgent: Hello!'
    """
    if not turns:
        return base
    kept: list[str] = []
    used = 0
    for speaker, text in reversed(turns):
        line = f"{speaker}: {text}"
        if used + len(line) + 1 > max_chars:
            if not kept:  # one very long turn: its end, which the next reply follows
                kept.append(f"{speaker}: …{text[-(max_chars - len(speaker) - 3) :]}")
            break
        kept.append(line)
        used += len(line) + 1
    omitted = len(kept) < len(turns)
    body = "\n".join([*([OMITTED] if omitted else []), *reversed(kept)])
    lead = f"{base}\n\n" if base else ""
    return f"{lead}{HEADER}\n{body}"
