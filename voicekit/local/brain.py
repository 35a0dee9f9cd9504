"""The stand-in agent's brain: deterministic replies and tool calls from what it heard.

``voicekit.local`` layer, pure: no I/O, no asyncio (the word lists under ``data/`` are read
once, on first use). A brain is any callable ``brain(history, tools) -> str | ToolRequest``:

- ``history``: the conversation so far, a list of ``{"role", "content"}`` dicts with roles
  ``"system"`` (the system prompt), ``"user"`` (final user transcripts), ``"assistant"``
  (what the agent said), ``"tool"`` (a tool result, with ``"name"`` and ``"is_error"``) and
  ``"instructions"`` (one-shot guidance from ``reply.create``);
- ``tools``: the session's tool definitions (flat protocol schema dicts).

Plug in your own (a language model, a rules engine) with ``vk.local.serve(brain=...)``.

The default, :func:`default_brain`, answers greetings and a few intents (the time, its name
from the system prompt, what it heard, thanks, goodbye), calls tools, speaks an answer built
from a tool result, and otherwise paraphrases what it heard. Same input, same output.

When to call a tool: rules
--------------------------
The brain reads "when to call" rules from the system prompt and from the tools'
descriptions, the way a prompt instructs a language model. A rule is a sentence that names
a tool (or, in a tool's own description, says "call this" / "use this tool") and a
condition after ``when``, ``whenever``, ``if``, ``once``, ``as soon as``, ``any time``,
``every time`` (or ``don't call X unless ...``):

- ``"When the user gives a person's name, call lookup_person."``
- ``"Call get_order_status whenever the caller mentions an order number."``
- ``"Use get_weather if the user asks about a city."``
- ``"If the caller mentions a refund, then call start_refund."``
- a description: ``"Look up an order by its number. Call this when the user gives an
  order number."``

A rule whose sentence says ``never`` / ``do not`` (without ``unless``) is not a trigger.
The condition names what must be heard, and the kinds it names are detected so:

- a person's name ("a person's name", "their name", "who", "introduces themselves"): a
  name after "my name is", "name's", "call me" (any word); after "this is", "i'm", "it's",
  "speaking with", "for", "find", "up", "named" (a common first name, or a capitalised
  word); or a common first name anywhere; a common surname (or a capitalised word) may
  follow: "my name is john smith" -> "John Smith";
- a number ("an order number", "account number", "confirmation code", "id", "digits"):
  digits ("481529", "4 8 1") or spoken digits ("four eight one five two nine"; "oh" is 0,
  "double five" is 55, "twenty one" is 21, "four hundred" is 400), after a cue word ("order
  number seven"), else two digits or more that are no quantity ("twenty minutes", "at
  seven thirty") -> ``"481529"``;
- a city ("a city", "town", "place", "location", "where"): a city from a built-in list of
  a few hundred ("new york" -> "New York"), else a capitalised word after "in", "to",
  "from", else a word after "in", "near", "city of" ("in springfield" -> "Springfield");
- a date ("a date", "day") or a time ("a time"): "tomorrow", "next friday", "march
  third"; "seven o'clock", "six thirty", "nine am", "noon";
- an email ("an email address"): "john dot smith at example dot com", "john@example.com";
- a phone number ("a phone number", "mobile"): seven digits or more, or digits after
  "phone", "mobile" ("plus" gives a leading ``+``);
- anything else: its words ("mentions a refund" fires on the word "refund", stemmed).

If the condition also names words besides the kind ("asks about the weather in a city"),
those words decide whether the rule fires and the kind fills the arguments. A kind that no
parameter of the tool can take counts as words ("asks the time" for a tool without a time
parameter fires on the word "time").

Input is recognised speech: lower case, no punctuation, digits spelled as words, names
perhaps misheard; everything above works on such text (and on typed text with capitals).

Arguments come from the tool's parameter schema: a parameter's name or description says
which kind it takes (``name``/``person``/``customer`` -> a person, ``order_id``/
``order_number``/``number``/``id``/``code`` -> a number as a string of digits, or an int
for an integer parameter; ``city``/``location``/``place`` -> a city; ``date``, ``time``,
``email``, ``phone``); an ``enum`` parameter takes a value that was said; a required
parameter of no kind takes what the rule detected, else words as below. When a required
parameter cannot be filled the tool is not called: the brain asks for it ("What's the order
number?"), and the next user turn, if it answers ("four eight one five two nine", "it's
anna"), completes the call with the arguments heard so far. Of several rules that fire,
one is chosen (one call a turn): the one whose condition's own words were said ("refund"),
else whose kind was named in so many words ("my email is ..."), else any; then the one with
its arguments complete; then the first stated.

A tool that rules govern is called only by its rules; if its name's or description's words
are heard without its condition ("where is my order" for an order-number rule), the brain
asks for the missing piece rather than guessing.

Fallback: keywords
------------------
A tool without rules is called when the utterance contains the words of the tool's name or
description (``"weather in Paris"`` -> ``get_weather(city="Paris")``), every parameter drawn
from the words (the word after a preposition or the parameter's name, digits for a
``*_number``, an enum value said or the default).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ToolRequest", "default_brain"]

_DATA = Path(__file__).with_name("data")


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


def _best_tool(text: str, tools: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The tool whose name's and description's words the utterance holds most of, or None."""
    said = {_stem(w) for w in _words(text)}
    best: tuple[int, dict[str, Any]] | None = None
    for tool in tools:
        name_words = {_stem(w) for w in re.split(r"[_\-\s]+", str(tool.get("name", "")).lower())}
        keys = _keywords(" ".join(name_words)) | _keywords(str(tool.get("description", "")))
        keys -= {"get", "set", "current", "tool", "function"}
        score = len(keys & said)
        if score and (best is None or score > best[0]):
            best = (score, tool)
    return None if best is None else best[1]


def _keyword_call(tool: dict[str, Any], text: str) -> ToolRequest:
    """A call with every parameter drawn from the words (the fallback for tools without rules)."""
    words = _words(text)
    props = (tool.get("parameters") or {}).get("properties") or {}
    arguments = {
        name: _argument(schema if isinstance(schema, dict) else {}, name, words, text)
        for name, schema in props.items()
    }
    return ToolRequest(str(tool["name"]), arguments)


def _match_tool(text: str, tools: Sequence[dict[str, Any]]) -> ToolRequest | None:
    tool = _best_tool(text, tools)
    return None if tool is None else _keyword_call(tool, text)


def _set(words: str) -> frozenset[str]:
    """The words of a space-separated list."""
    return frozenset(words.split())


# -- word lists -------------------------------------------------------------------------------
@functools.cache
def _word_list(name: str) -> tuple[str, ...]:
    """The words of a data file (whitespace-separated; ``#`` lines are comments)."""
    text = (_DATA / name).read_text(encoding="utf-8")
    return tuple(w for line in text.splitlines() if not line.startswith("#") for w in line.split())


@functools.cache
def _cities() -> dict[tuple[str, ...], str]:
    """Each listed city's words (lower case) -> its name as written."""
    text = (_DATA / "cities.txt").read_text(encoding="utf-8")
    out: dict[tuple[str, ...], str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            out.setdefault(tuple(_words(line)), line.strip())
    return out


@functools.cache
def _first_names() -> frozenset[str]:
    return frozenset(_word_list("first_names.txt"))


@functools.cache
def _surnames() -> frozenset[str]:
    return frozenset(_word_list("surnames.txt"))


_DIGIT_WORDS = "zero one two three four five six seven eight nine"
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
_UNITS = {w: i for i, w in enumerate(_DIGIT_WORDS.split())}
_TEENS = {w: 10 + i for i, w in enumerate(_NUMBER_WORDS.split()[10:20])}
_TENS = {w: 2 + i for i, w in enumerate(_TENS_WORDS.split())}
_REPEATS = {"double": 2, "triple": 3}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = _set(
    "january february march april may june july august september october november december"
)
_ORDINALS = _set(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth "
    "thirtieth"
)
_NOT_NAME = (
    _STOP
    | set(_UNITS)
    | set(_TEENS)
    | set(_TENS)
    | {"oh", "hundred", "double", "triple"}
    | set(_WEEKDAYS)
    | _set(
        "um uh er erm hmm well so yes no yeah yep okay ok just really actually here there not "
        "very quite sure fine good great back again sorry today tomorrow yesterday tonight now "
        "still also thanks thank hi hello hey name number order calling speaking looking "
        "trying wondering going ringing phoning interested happy glad afraid new sir madam "
        "someone somebody anyone person customer caller user him her them his hers"
    )
)
_NOT_PLACE = _NOT_NAME | _set(
    "trouble touch time advance general case fact line cash total stock english french spanish "
    "german minutes minute hours hour days day weeks week months month years year morning "
    "afternoon evening night store person a lot love charge mind"
)
_PERSON_STRONG = (
    ("my", "name", "is"),
    ("my", "name's"),
    ("name", "is"),
    ("name's",),
    ("call", "me"),
)
_PERSON_WEAK = (
    ("this", "is"),
    ("i'm",),
    ("i", "am"),
    ("it's",),
    ("it", "is"),
    ("speaking", "with"),
    ("speak", "to"),
    ("speak", "with"),
    ("talk", "to"),
    ("for",),
    ("find",),
    ("up",),
    ("named",),
    ("called",),
)
_PLACE_CUES = ("in", "near", "around", "of")
_NUMBER_CUES = {"number", "numbers", "id", "code", "no", "is", "it's", "its", "was"}
_PHONE_CUES = {"phone", "mobile", "cell", "telephone", "tel"}
_QUANTITY_AFTER = {"am", "pm", "o'clock", "a", "p"}


# -- what an utterance holds ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Heard:
    """One utterance: its raw tokens (case kept), words (lower case) and digit runs."""

    text: str
    raw: tuple[str, ...]
    words: tuple[str, ...]
    runs: tuple[tuple[int, int, str], ...]  # (first word, past last word, digits)
    exclude: frozenset[str]  # words never taken for a person (the agent's own name)

    @classmethod
    def of(cls, text: str, exclude: frozenset[str] = frozenset()) -> _Heard:
        raw = tuple(re.findall(r"[A-Za-z0-9']+", text))
        words = tuple(t.lower() for t in raw)
        return cls(text, raw, words, tuple(_digit_runs(words)), exclude)

    @functools.cached_property
    def stems(self) -> frozenset[str]:
        return frozenset(_stem(w) for w in self.words)

    def capitalised(self, i: int) -> bool:
        """Whether word ``i`` was written with a capital (not the first word, not "I")."""
        t = self.raw[i]
        return i > 0 and t[:1].isupper() and t != "I" and not t.isupper()


def _is_digit_word(w: str) -> bool:
    return w.isdigit() or w in _UNITS or w in _TEENS or w in _TENS


def _digit_runs(words: Sequence[str]) -> list[tuple[int, int, str]]:
    """Runs of spoken or written digits: ``four eight one`` -> ``"481"``.

    ``oh`` is 0 next to other digits, ``double five`` is ``"55"``, ``twenty one`` is
    ``"21"``, ``four hundred and two`` is ``"402"``; adjacent written groups join
    (``4815 29`` -> ``"481529"``).
    """
    runs = []
    n, i = len(words), 0
    while i < n:
        j, digits = i, ""
        while j < n:
            w = words[j]
            nxt = words[j + 1] if j + 1 < n else ""
            if w.isdigit():
                digits, j = digits + w, j + 1
            elif w in _REPEATS and (
                nxt in _UNITS or nxt in ("oh", "o") or len(nxt) == 1 == nxt.isdigit()
            ):
                digit = nxt if nxt.isdigit() else str(_UNITS.get(nxt, 0))
                digits, j = digits + digit * _REPEATS[w], j + 2
            elif w in ("oh", "o"):
                if not digits and not _is_digit_word(nxt):
                    break
                digits, j = digits + "0", j + 1
            elif w in _UNITS and nxt == "hundred":
                value, k = _UNITS[w] * 100, j + 2
                if k + 1 < n and words[k] == "and" and _is_digit_word(words[k + 1]):
                    k += 1
                rest, k = _below_hundred(words, k)
                digits, j = digits + str(value + rest), k
            elif w in _UNITS:
                digits, j = digits + str(_UNITS[w]), j + 1
            elif w in _TEENS or w in _TENS:
                rest, j = _below_hundred(words, j)
                digits += str(rest)
            else:
                break
        if digits:
            runs.append((i, j, digits))
            i = j
        else:
            i += 1
    return runs


def _below_hundred(words: Sequence[str], k: int) -> tuple[int, int]:
    """A number under 100 spelled at ``words[k]`` (teen, tens [+ unit], unit), and the index
    past it; ``(0, k)`` if none."""
    w = words[k] if k < len(words) else ""
    if w in _TEENS:
        return _TEENS[w], k + 1
    if w in _TENS:
        nxt = words[k + 1] if k + 1 < len(words) else ""
        if _UNITS.get(nxt):
            return _TENS[w] * 10 + _UNITS[nxt], k + 2
        return _TENS[w] * 10, k + 1
    if _UNITS.get(w):
        return _UNITS[w], k + 1
    return 0, k


def _starts_with(words: Sequence[str], i: int, cue: Sequence[str]) -> bool:
    return tuple(words[i : i + len(cue)]) == tuple(cue)


def _person(h: _Heard, loose: bool = False) -> str | None:
    """A person's name in the utterance (title case), or None."""
    words, names, surnames = h.words, _first_names(), _surnames()

    def ok(i: int, strong: bool) -> bool:
        w = words[i]
        if w in h.exclude or w in _NOT_NAME or _is_digit_word(w) or len(w) < 2:
            return False
        return strong or w in names or h.capitalised(i)

    def full(i: int) -> str:
        parts = [h.raw[i]]
        k = i + 1
        while k < len(words) and len(parts) < 3:
            w = words[k]
            if w in h.exclude or w in _NOT_NAME or not (w in surnames or h.capitalised(k)):
                break
            parts.append(h.raw[k])
            k += 1
        return " ".join(p[:1].upper() + p[1:] for p in parts)

    for cues, strong in ((_PERSON_STRONG, True), (_PERSON_WEAK, False)):
        for i in range(len(words)):
            for cue in cues:
                k = i + len(cue)
                if _starts_with(words, i, cue) and k < len(words):
                    while k < len(words) - 1 and words[k] in ("um", "uh", "er", "erm"):
                        k += 1
                    if ok(k, strong):
                        return full(k)
    for i, w in enumerate(words):
        if w in names and w not in h.exclude and not _city_at(words, i):
            return full(i)
    if loose:
        content = [i for i, w in enumerate(words) if w not in _NOT_NAME and not w.isdigit()]
        if content:
            return (
                full(content[0])
                if len(content) == 1
                else _title(h.raw[content[0]])
                + (" " + _title(h.raw[content[1]]) if content[1] == content[0] + 1 else "")
            )
    return None


def _title(word: str) -> str:
    return word[:1].upper() + word[1:]


def _city_at(words: Sequence[str], i: int) -> tuple[int, str] | None:
    """The longest listed city starting at word ``i``: (its length in words, its name)."""
    cities = _cities()
    for size in (4, 3, 2, 1):
        name = cities.get(tuple(words[i : i + size]))
        if name is not None and i + size <= len(words):
            return size, name
    return None


def _city(h: _Heard, loose: bool = False) -> str | None:
    """A city (or place) in the utterance, or None."""
    words = h.words
    for i in range(len(words)):
        found = _city_at(words, i)
        if found:
            return found[1]
    for i in range(1, len(words)):
        if words[i - 1] in ("in", "to", "from", "near", "around", "of", "at") and h.capitalised(i):
            parts = [h.raw[i]]
            while i + len(parts) < len(words) and h.capitalised(i + len(parts)):
                parts.append(h.raw[i + len(parts)])
            return " ".join(parts)
    for i in range(1, len(words)):
        w = words[i]
        if (
            words[i - 1] in _PLACE_CUES
            and (words[i - 1] != "of" or words[i - 2 : i - 1] == ("city",))
            and w not in _NOT_PLACE
            and not _is_digit_word(w)
            and not w.endswith(("ing", "ly"))
        ):
            return _title(w)
    if loose:
        content = [w for w in words if w not in _NOT_PLACE and not _is_digit_word(w)]
        if content:
            return " ".join(_title(w) for w in content[:2])
    return None


def _followed_by_quantity(h: _Heard, end: int) -> bool:
    nxt = h.words[end] if end < len(h.words) else ""
    return bool(nxt) and (nxt in _QUANTITY_AFTER or (nxt not in _STOP and nxt not in _NOT_NAME))


def _number(h: _Heard, label: Sequence[str] = (), loose: bool = False) -> str | None:
    """An order / account / confirmation number (digits), or None.

    A run of digits right after "number", "id", "code" or one of ``label``'s words, or after
    "is" with such a word just before ("order number is four eight"), counts at any length;
    otherwise two digits or more that are no quantity ("at seven thirty", "twenty minutes")
    and not a phone number. ``loose`` (an answer to "What's the order number?"): any digits.
    """
    words = h.words
    marks = set(label) - {"is"}
    nouns = {"number", "numbers", "id", "code", "no", "order", "account"} | marks
    for s, _e, digits in h.runs:
        before = words[max(0, s - 4) : s]
        if set(before) & _PHONE_CUES and not marks & _PHONE_CUES:
            continue
        last = before[-1] if before else ""
        if last in nouns or (last in _NUMBER_CUES and set(before) & nouns):
            return digits
    for s, e, digits in h.runs:
        if set(words[max(0, s - 4) : s]) & _PHONE_CUES or (s and words[s - 1] in ("at", "for")):
            continue
        if len(digits) >= 2 and not _followed_by_quantity(h, e):
            return digits
    if loose and h.runs:
        return h.runs[0][2]
    return None


def _phone(h: _Heard, loose: bool = False) -> str | None:
    """A phone number (digits, ``+`` if "plus" was said), or None."""
    words = h.words
    for s, _e, digits in h.runs:
        plus = "+" if s and words[s - 1] == "plus" else ""
        if set(words[max(0, s - 4) : s]) & _PHONE_CUES or len(digits) >= 7:
            return plus + digits
    if loose:
        long = [d for _s, _e, d in h.runs if len(d) >= 3]
        return long[0] if long else None
    return None


def _email(h: _Heard, loose: bool = False) -> str | None:
    """An email address, typed or spoken ("anna dot lee at example dot com"), or None."""
    m = re.search(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", h.text)
    if m:
        return m.group(0).lower()
    words = h.words
    joins = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
    for i, w in enumerate(words):
        if w != "at" or i == 0:
            continue
        domain, k = [], i + 1
        while k < len(words) and words[k] not in _STOP - {"at"} and words[k] not in joins:
            domain.append(words[k])
            if k + 2 < len(words) and words[k + 1] == "dot":
                domain.append(".")
                k += 2
                continue
            k += 1
            break
        if "." not in domain or domain[-1] == ".":
            continue
        local, k = [words[i - 1]], i - 2
        while k >= 1 and words[k] in joins and words[k - 1] not in _NOT_NAME | {"is", "email"}:
            local[:0] = [words[k - 1], joins[words[k]]]
            k -= 2
        if local[0] in _NOT_NAME:
            continue
        return "".join(local) + "@" + "".join(domain)
    return None


def _date(h: _Heard, loose: bool = False) -> str | None:
    """A date or day as heard ("tomorrow", "next friday", "march third"), or None."""
    words = h.words
    for i, w in enumerate(words):
        if w in ("today", "tomorrow", "tonight", "yesterday") or w in _WEEKDAYS:
            start = i - 1 if i and words[i - 1] in ("next", "this", "last") else i
            if i >= 3 and words[i - 3 : i] == ("the", "day", "after"):
                start = i - 3
            return " ".join(words[start : i + 1])
        if w in _MONTHS:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if _is_day(nxt):
                end = i + 2
                if nxt in _TENS and end < len(words) and words[end] in _ORDINALS:
                    end += 1  # "march twenty first"
                return " ".join(words[i:end])
            if i >= 2 and words[i - 1] == "of" and _is_day(words[i - 2]):
                start = i - 3 if i >= 3 and words[i - 3] == "the" else i - 2
                return " ".join(words[start : i + 1])
            if w not in ("may", "march"):  # everyday words too: a month only with a day
                return w
    if loose:
        return h.text.strip() or None
    return None


def _is_day(w: str) -> bool:
    return w in _ORDINALS or bool(re.fullmatch(r"\d{1,2}(st|nd|rd|th)?", w)) or w in _TENS


def _time(h: _Heard, loose: bool = False) -> str | None:
    """A time of day as heard ("seven o'clock", "six thirty", "nine am", "noon"), or None."""
    words = h.words
    for i, w in enumerate(words):
        if w in ("noon", "midnight", "midday"):
            return w
        if w in ("half", "quarter") and i + 2 < len(words) and words[i + 1] in ("past", "to"):
            return " ".join(words[i : i + 3])
    for s, e, _digits in h.runs:
        nxt = words[e] if e < len(words) else ""
        if nxt in ("o'clock", "am", "pm"):
            return " ".join(words[s : e + 1])
        if nxt in ("a", "p") and e + 1 < len(words) and words[e + 1] == "m":
            return " ".join(words[s : e + 2])
        if s and words[s - 1] == "at" and e - s <= 2:
            return " ".join(words[s:e])
    if loose and h.runs:
        s, e, _ = h.runs[0]
        return " ".join(words[s:e])
    return None


def _datetime(h: _Heard, loose: bool = False) -> str | None:
    parts = [p for p in (_date(h), _time(h)) if p]
    if parts:
        return " ".join(parts)
    return h.text.strip() or None if loose else None


_EXTRACT: dict[str, Any] = {
    "person": _person,
    "city": _city,
    "date": _date,
    "time": _time,
    "datetime": _datetime,
    "email": _email,
    "phone": _phone,
}


def _extract(kind: str, h: _Heard, label: Sequence[str] = (), loose: bool = False) -> str | None:
    """The value of one kind of entity in an utterance, or None."""
    if kind == "number":
        return _number(h, label, loose)
    found: str | None = _EXTRACT[kind](h, loose)
    return found


# -- rules ------------------------------------------------------------------------------------
_MARKER = re.compile(
    r"\b(?:whenever|when|if|once|as soon as|any ?time|every ?time|each time|unless|in case)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(?:never|not|don't|do not|avoid|shouldn't|mustn't)\b", re.IGNORECASE)
_CALL_VERB = re.compile(r"\b(?:call|calls|called|use|used|invoke|invoked|run|trigger)\b", re.I)
_OWN_MENTION = re.compile(
    r"\b(?:call|use|invoke|run|trigger)\s+(?:this(?:\s+(?:tool|function))?|it|me)\b", re.I
)
# the words of a condition that name a kind of entity, most specific first
_KIND_WORDS: tuple[tuple[str, str], ...] = (
    ("email", r"\be-?mail(?:\s+address)?(?:es)?\b"),
    ("phone", r"\b(?:(?:tele|cell)?phone|mobile|cell)(?:\s+numbers?)?\b"),
    (
        "city",
        r"\b(?:names?\s+of\s+(?:a|the|their)\s+)?(?:city|cities|town|towns|place|places|"
        r"location|locations|destination|country|somewhere|where)(?:\s+names?)?\b",
    ),
    ("datetime", r"\b(?:dates?\s+and\s+(?:a\s+)?times?|appointment\s+times?)\b"),
    ("date", r"\b(?:dates?|days?|birthday|date\s+of\s+birth)\b"),
    ("time", r"\b(?:times?|hour|o'clock)\b"),
    (
        "number",
        r"\b(?:(?:order|account|confirmation|reference|tracking|booking|reservation|ticket|"
        r"invoice|case|customer|membership|member|policy|serial|parcel|package)\s+"
        r"(?:numbers?|ids?|codes?|no)|numbers?|ids?|codes?|digits?)\b",
    ),
    (
        "person",
        r"\b(?:(?:a|the|their|his|her|your|my|someone's|somebody's|person's|persons|"
        r"customer's|caller's|user's|contact's|full|first|last)\s+)*names?\b|"
        r"\b(?:person|people|someone|somebody|who|introduces?|introduce\s+themselves)\b",
    ),
)
_CONDITION_FILLER = _set(
    "user users caller callers customer customers client clients they he she them someone "
    "somebody themselves gives give given gave giving provide provides provided providing "
    "mention mentions mentioned mentioning say says said saying tell tells told ask asks "
    "asked asking about wants want wanted need needs like would request requests requested "
    "share shares shared state states spell spells spelled type types typed enter enters "
    "entered supply supplies speak speaks talk talks bring brings brought know knows inquire "
    "inquires wonder wonders something anything specific particular valid has have had does "
    "did their his her its any some uses use using call calls calling then also only ever "
    "immediately right away soon tool function make makes made read reads offer offers let "
    "lets always one wish wishes"
)
_PARAM_KINDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("email", frozenset({"email", "mail", "e-mail"})),
    ("phone", frozenset({"phone", "mobile", "telephone", "tel", "cell", "cellphone"})),
    (
        "city",
        _set("city town location place destination origin where country region area"),
    ),
    ("datetime", frozenset({"datetime", "when", "slot", "appointment", "timestamp"})),
    ("date", frozenset({"date", "day", "birthday", "dob"})),
    ("time", frozenset({"time", "hour"})),
    (
        "number",
        _set(
            "number num no nr id code ref reference confirmation tracking zip postcode pin "
            "digits order account ticket booking reservation invoice"
        ),
    ),
    (
        "person",
        _set(
            "name person customer caller contact who patient guest client user username "
            "passenger member employee fullname firstname lastname surname"
        ),
    ),
)


@dataclasses.dataclass(frozen=True)
class _Rule:
    """When to call a tool: the kinds and words its condition names."""

    tool: str
    kinds: tuple[str, ...]
    keywords: tuple[str, ...]
    condition: str


@dataclasses.dataclass(frozen=True)
class _Ask:
    """A call held back for a missing required argument, and the question that asks it."""

    tool: str
    arguments: dict[str, Any]
    missing: tuple[str, ...]
    question: str


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[\s_\-.]+", spaced.lower()) if w]


def _param_kind(name: str, schema: dict[str, Any]) -> str | None:
    """The kind of entity a parameter takes, from its name, else its description."""
    if "enum" in schema or schema.get("type") in ("boolean", "array", "object"):
        return None
    for source in (_name_words(name), _words(str(schema.get("description", "")))):
        for kind, marks in _PARAM_KINDS:
            if set(source) & marks:
                return kind
    return None


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+|;\s*", text) if s.strip()]


def _condition_of(text: str, marker: re.Match[str]) -> str:
    cond = text[marker.end() :]
    cond = re.split(r"\bthen\b|,\s*(?:call|use|invoke|run)\b", cond, maxsplit=1)[0]
    return cond.strip(" ,.:;!?\"'`()").removesuffix(" and").removesuffix(" or").strip(" ,")


def _rules_in(text: str, names: Sequence[str], own: str | None) -> list[tuple[str, str]]:
    """(tool, condition) pairs stated in a system prompt or (``own``) a tool's description."""
    found: list[tuple[str, str]] = []
    for sentence in _sentences(text):
        mentions: list[tuple[int, int, str]] = []
        for name in names:
            pattern = r"(?<![\w])" + re.escape(name) + r"(?![\w])"
            mentions += [(m.start(), m.end(), name) for m in re.finditer(pattern, sentence, re.I)]
        if own is not None and not any(n == own for *_, n in mentions):
            m = _OWN_MENTION.search(sentence)
            if m:
                mentions.append((m.start(), m.end(), own))
            elif not mentions and _CALL_VERB.search(sentence) and _MARKER.search(sentence):
                mentions.append((0, 0, own))
        mentions.sort()
        claimed = False
        for k, (start, end, name) in enumerate(mentions):
            before = "" if claimed else sentence[mentions[k - 1][1] if k else 0 : start]
            after = sentence[end : mentions[k + 1][0] if k + 1 < len(mentions) else None]
            claimed = False
            marker = _MARKER.search(before)
            clause = before
            if marker is None:
                marker, clause = _MARKER.search(after), after
                claimed = marker is not None
            if marker is None:
                continue
            near = sentence[max(0, start - 25) : start] if clause is after else before[-25:]
            near = near + " " + sentence[max(0, start - 25) : start]
            negated = bool(_NEGATION.search(near))
            if negated != (marker.group(0).lower() == "unless"):
                continue
            condition = _condition_of(clause, marker)
            if condition:
                found.append((name, condition))
    return found


def _rule(tool: dict[str, Any], condition: str) -> _Rule:
    """The kinds and keywords of a condition, for ``tool``'s parameters."""
    props = (tool.get("parameters") or {}).get("properties") or {}
    param_kinds = {_param_kind(n, s if isinstance(s, dict) else {}) for n, s in props.items()}
    free_string = None in param_kinds and bool(props)
    text = condition.lower()
    kinds: list[str] = []
    leftovers: list[str] = []
    for kind, pattern in _KIND_WORDS:
        for m in re.finditer(pattern, text):
            usable = kind in param_kinds or free_string
            if kind in ("date", "time") and "datetime" in param_kinds:
                kind, usable = "datetime", True
            if usable:
                if kind not in kinds:
                    kinds.append(kind)
            else:
                leftovers += _words(m.group(0))
        text = re.sub(pattern, " ", text)
    keywords: list[str] = []
    for w in _words(text) + leftovers:
        s = _stem(w)
        if (
            w not in _STOP
            and w not in _CONDITION_FILLER
            and len(w) > 2
            and not w.isdigit()
            and s not in keywords
        ):
            keywords.append(s)
    return _Rule(str(tool.get("name", "")), tuple(kinds), tuple(keywords), condition)


def _rules(history: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> list[_Rule]:
    """Every rule stated in the system prompt and the tools' descriptions, in order."""
    by_name = {str(t.get("name", "")): t for t in tools if t.get("name")}
    names = sorted(by_name, key=len, reverse=True)
    pairs: list[tuple[str, str]] = []
    for msg in history:
        if msg.get("role") == "system":
            pairs += _rules_in(str(msg.get("content", "")), names, None)
    for name, tool in by_name.items():
        pairs += _rules_in(str(tool.get("description", "")), names, name)
    rules = [_rule(by_name[name], condition) for name, condition in pairs]
    return [r for r in rules if r.kinds or r.keywords]


def _fires(rule: _Rule, h: _Heard) -> bool:
    if rule.keywords:
        return any(k in h.stems for k in rule.keywords)
    return any(_extract(kind, h) is not None for kind in rule.kinds)


def _specificity(rule: _Rule, h: _Heard) -> int:
    """How closely an utterance matches a rule that fires: 2 for the words the condition
    names ("refund"), 1 for the kind named in so many words ("my email is ..."), else 0."""
    if rule.keywords:
        return 2
    said = " ".join(h.words)
    patterns = dict(_KIND_WORDS)
    return int(any(re.search(patterns[k], said) for k in rule.kinds if k in patterns))


def _typed(value: str, kind: str, schema: dict[str, Any]) -> Any:
    if kind == "number" and schema.get("type") in ("integer", "number"):
        return int(value)
    return value


def _label(name: str, kind: str | None) -> str:
    """How a question names a parameter: ``order_id`` -> "order number"."""
    words = ["number" if w in ("id", "num", "no", "nr") else w for w in _name_words(name)]
    if kind == "number" and not set(words) & {"number", "code", "digits", "pin", "zip"}:
        words.append("number")
    if kind == "person" and "name" not in words:
        words.append("name")
    if kind == "email" and not set(words) & {"address"}:
        words = [*words, "address"] if words == ["email"] else words
    return " ".join(dict.fromkeys(words))


def _question(tool: dict[str, Any], name: str) -> str:
    props = (tool.get("parameters") or {}).get("properties") or {}
    schema = props.get(name) if isinstance(props.get(name), dict) else {}
    kind = _param_kind(name, schema or {})
    label = _label(name, kind)
    if kind == "city":
        return f"Which {label}?"
    if kind == "time":
        return "What time?"
    if kind == "person" and label == "name":
        return "What's the name?"
    return f"What's the {label}?"


def _fill(
    tool: dict[str, Any],
    h: _Heard,
    rule_kinds: Sequence[str] = (),
    have: dict[str, Any] | None = None,
    loose_for: str | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Arguments for ``tool`` from an utterance (added to ``have``), and required ones missing."""
    params = tool.get("parameters") or {}
    props = params.get("properties") or {}
    required = [r for r in params.get("required") or [] if r in props]
    args = dict(have or {})
    unknown: list[str] = []
    used: set[str] = set()
    for name, raw_schema in props.items():
        if name in args:
            continue
        schema = raw_schema if isinstance(raw_schema, dict) else {}
        kind = _param_kind(name, schema)
        if kind is not None:
            value = _extract(kind, h, _name_words(name), loose=name == loose_for)
            if value is not None:
                args[name] = _typed(value, kind, schema)
                used.add(kind)
        elif "enum" in schema:
            said = [v for v in schema["enum"] if str(v).lower() in h.words]
            if said:
                args[name] = said[0]
            elif name in required:
                args[name] = schema.get("default", schema["enum"][0])
        elif name in required:
            unknown.append(name)
    for name in unknown:
        schema = props[name] if isinstance(props[name], dict) else {}
        spare = [k for k in rule_kinds if k not in used]
        value = None
        for kind in spare:
            value = _extract(kind, h, _name_words(name), loose=name == loose_for)
            if value is not None:
                used.add(kind)
                break
        if value is None and (not rule_kinds or schema.get("type") not in (None, "string")):
            value = _argument(schema, name, list(h.words), h.text)
        if value is not None:
            args[name] = value
    missing = tuple(r for r in required if r not in args)
    return args, missing


def _tool_named(tools: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((t for t in tools if t.get("name") == name), None)


def _call_or_ask(tool: dict[str, Any], args: dict[str, Any], missing: Sequence[str]) -> Any:
    if missing:
        return _Ask(str(tool["name"]), args, tuple(missing), _question(tool, missing[0]))
    return ToolRequest(str(tool["name"]), args)


def _pending(history: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> _Ask | None:
    """The call the brain's last reply asked a missing argument for, if it did."""
    if len(history) < 3 or history[-3].get("role") != "user":
        return None
    asked = history[-2]
    text = str(asked.get("content", "")).strip()
    if asked.get("role") != "assistant" or not text.endswith("?"):
        return None
    questions = {
        _question(t, r) for t in tools for r in (t.get("parameters") or {}).get("required") or []
    }
    if text not in questions:  # not a question of ours: nothing to replay
        return None
    earlier = _decide(history[:-2], tools)
    return earlier if isinstance(earlier, _Ask) and earlier.question == text else None


def _decide(history: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]) -> Any:
    """A ToolRequest, an _Ask or None for the last (user) turn: rules, then keywords."""
    agent = _agent_name(history)
    h = _Heard.of(str(history[-1].get("content", "")), frozenset({agent.lower()} if agent else ()))
    if not h.words:
        return None
    rules = _rules(history, tools)
    pending = _pending(history, tools)
    if pending is not None:
        tool = _tool_named(tools, pending.tool)
        if tool is not None:
            kinds = next((r.kinds for r in rules if r.tool == pending.tool), ())
            args, missing = _fill(tool, h, kinds, pending.arguments, pending.missing[0])
            if len(missing) < len(pending.missing):
                return _call_or_ask(tool, args, missing)
    fired: list[tuple[int, int, int, Any]] = []
    for index, rule in enumerate(rules):
        tool = _tool_named(tools, rule.tool)
        if tool is None or not _fires(rule, h):
            continue
        args, missing = _fill(tool, h, rule.kinds)
        fired.append(
            (-_specificity(rule, h), len(missing), index, _call_or_ask(tool, args, missing))
        )
    if fired:
        return min(fired, key=lambda f: f[:3])[3]
    best = _best_tool(h.text, tools)
    if best is None:
        return None
    if any(r.tool == best.get("name") for r in rules):
        kinds = next(r.kinds for r in rules if r.tool == best.get("name"))
        args, missing = _fill(best, h, kinds)
        return _call_or_ask(best, args, missing) if missing else None
    return _keyword_call(best, h.text)


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
    """Deterministic replies: intents, tool calls by rules or matching words, paraphrase.

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
    decision = _decide(history, tools)
    if isinstance(decision, _Ask):
        return decision.question
    if decision is not None:
        return decision
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
