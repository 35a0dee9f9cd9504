"""The stand-in agent's brain: deterministic replies and tool calls from what it heard.

``voicekit.local`` layer, pure: no I/O, no asyncio. A brain is any callable
``brain(history, tools) -> str | ToolRequest``:

- ``history``: the conversation so far, a list of ``{"role", "content"}`` dicts with roles
  ``"system"`` (the system prompt), ``"user"`` (final user transcripts), ``"assistant"``
  (what the agent said), ``"tool"`` (a tool result, with ``"name"`` and ``"is_error"``) and
  ``"instructions"`` (one-shot guidance from ``reply.create``);
- ``tools``: the session's tool definitions (flat protocol schema dicts).

Plug in your own (a language model, a rules engine) with ``vk.local.serve(brain=...)``.

The default, :func:`default_brain`, answers greetings and a few intents (the time, its name
from the system prompt, what it heard, thanks, goodbye), calls a tool when the utterance
contains the words of the tool's name or description (``"weather in Paris"`` ->
``get_weather(city="Paris")``) with arguments drawn from the words, speaks an answer built
from a tool result, and otherwise paraphrases what it heard. Same input, same output.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["ToolRequest", "default_brain"]


@dataclasses.dataclass(frozen=True)
class ToolRequest:
    """A brain's decision to call a tool.

    Attributes
    ----------
    name : str
        The tool's name.
    arguments : dict
        Arguments for the call (JSON-able).
    preamble : str
        What the agent says while the tool runs ("" for a silent pre-amble).
    """

    name: str
    arguments: dict[str, Any]
    preamble: str = "Let me check."


_STOP_WORDS = (
    "a an the and or but of to in on at for from with by is are was were be been it its this "
    "that these those what which who whom whose how when where why can could would should "
    "will shall may might do does did get gets me my you your i we our us they them their "
    "please tell give find look up current some any about"
)
_STOP = set(_STOP_WORDS.split())
_GREETINGS = {"hello", "hi", "hey", "morning", "afternoon", "evening", "greetings", "howdy"}
_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBERS = {w: i for i, w in enumerate(_NUMBER_WORDS.split())}
_NUMBERS["oh"] = 0


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _keywords(text: str) -> set[str]:
    return {_stem(w) for w in _words(text) if w not in _STOP and len(w) > 2}


def _agent_name(history: Sequence[dict[str, Any]]) -> str | None:
    for msg in history:
        if msg.get("role") == "system":
            m = re.search(
                r"\b(?i:you are|your name is|you're|call yourself)\s+([A-Z][a-zA-Z]+)",
                str(msg.get("content", "")),
            )
            if m and m.group(1).lower() not in {"a", "an", "the"}:
                return m.group(1)
    return None


def _argument(schema: dict[str, Any], name: str, words: list[str], text: str) -> Any:
    """Draw one argument's value from the utterance's words."""
    kind = schema.get("type")
    if "enum" in schema:
        for value in schema["enum"]:
            if str(value).lower() in words:
                return value
        return schema.get("default", schema["enum"][0])
    if kind in ("integer", "number"):
        for w in words:
            if w.isdigit():
                return int(w)
            if w in _NUMBERS:
                return _NUMBERS[w]
        return schema.get("default", 0)
    if kind == "boolean":
        return not any(w in ("no", "not", "don't", "false") for w in words)
    if any(part in name.lower() for part in ("number", "_id", "code", "zip", "phone")):
        digits = "".join(
            w if w.isdigit() else str(_NUMBERS[w]) for w in words if w.isdigit() or w in _NUMBERS
        )
        if digits:
            return digits
    # a string: the words after a preposition ("in Paris", "for order 12"), else the
    # word after the parameter's own name ("order 481529"), else the last content word
    head = _stem(re.split(r"[_\-]", name.lower())[0])
    after_name = [
        words[i + 1] for i, w in enumerate(words[:-1]) if _stem(w) == head and words[i + 1]
    ]
    if after_name:
        return after_name[0]
    for i, w in enumerate(words[:-1]):
        if w in ("in", "for", "at", "to", "from", "about", "called", "named"):
            rest = [x for x in words[i + 1 :] if x not in _STOP]
            if rest:
                return " ".join(rest[:2]).title() if not rest[0].isdigit() else rest[0]
    content = [w for w in words if w not in _STOP]
    return content[-1].title() if content else text


def _match_tool(text: str, tools: Sequence[dict[str, Any]]) -> ToolRequest | None:
    words = _words(text)
    said = {_stem(w) for w in words}
    best: tuple[int, dict[str, Any]] | None = None
    for tool in tools:
        name_words = {_stem(w) for w in re.split(r"[_\-\s]+", str(tool.get("name", "")).lower())}
        keys = _keywords(" ".join(name_words)) | _keywords(str(tool.get("description", "")))
        keys -= {"get", "set", "current", "tool", "function"}
        score = len(keys & said)
        if score and (best is None or score > best[0]):
            best = (score, tool)
    if best is None:
        return None
    tool = best[1]
    props = (tool.get("parameters") or {}).get("properties") or {}
    arguments = {
        name: _argument(schema if isinstance(schema, dict) else {}, name, words, text)
        for name, schema in props.items()
    }
    return ToolRequest(str(tool["name"]), arguments)


def _speak_result(msg: dict[str, Any]) -> str:
    content = str(msg.get("content", ""))
    if msg.get("is_error"):
        return f"Sorry, that did not work: {content}"
    try:
        value = json.loads(content)
    except ValueError:
        return f"Here is what I found: {content}."
    if isinstance(value, dict):
        parts = [f"{str(k).replace('_', ' ')} {v}" for k, v in value.items()]
        return "Here is what I found: " + ", ".join(parts) + "."
    return f"Here is what I found: {value}."


def default_brain(history: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> Any:
    """Deterministic replies: intents, tool calls from matching words, paraphrase.

    Parameters
    ----------
    history : sequence of dict
        The conversation (see the module docstring).
    tools : sequence of dict
        Tool definitions offered by the client.

    Returns
    -------
    str or ToolRequest
        What to say, or a tool to call.
    """
    if not history:
        return "Hello! How can I help you today?"
    last = history[-1]
    role = last.get("role")
    if role == "tool":
        return _speak_result(last)
    if role == "instructions":
        text = str(last.get("content", "")).strip()
        m = re.match(r"(?i)^(?:say|tell the user|tell them)[:,]?\s+(.*)$", text)
        if m:
            return m.group(1) or "Yes?"
        return _match_tool(text, tools) or text or "Yes?"
    text = str(last.get("content", "")).strip()
    words = _words(text)
    if not words:
        return "Sorry, I didn't catch that. Could you say it again?"
    request = _match_tool(text, tools)
    if request is not None:
        return request
    wordset = set(words)
    if wordset & {"thanks", "thank"}:
        return "You're welcome! Anything else?"
    if wordset & {"bye", "goodbye"}:
        return "Goodbye! Talk to you soon."
    if "name" in wordset or {"who", "are", "you"} <= wordset:
        name = _agent_name(history)
        return f"I'm {name}." if name else "I'm the voicekit stand-in agent."
    if "time" in wordset:
        return f"It's {datetime.datetime.now():%H:%M}."
    if {"what", "did", "say"} <= wordset or "hear" in wordset or "heard" in wordset:
        earlier = [m for m in history[:-1] if m.get("role") == "user"]
        heard = earlier[-1]["content"] if earlier else text
        return f"I heard: {heard}."
    if wordset & _GREETINGS and len(words) <= 4:
        return "Hello! How can I help you today?"
    return f"You said: {text}. Tell me more."
