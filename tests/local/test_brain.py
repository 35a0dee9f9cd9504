"""The default brain: intents, tool calls with arguments from words, results, paraphrase."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import voicekit as vk
from voicekit.local.brain import ToolRequest, default_brain
from voicekit.testing import wait_for_event

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    },
}
ORDER = {
    "type": "function",
    "name": "lookup_order",
    "description": "Look up an order by its number.",
    "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}}},
}
SYSTEM = {"role": "system", "content": "You are Ivy, a friendly assistant."}


def reply(text: str, tools: list[dict] | None = None) -> object:
    return default_brain(
        [SYSTEM, {"role": "user", "content": text}], [WEATHER, ORDER] if tools is None else tools
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "what's the weather in paris",
            ToolRequest("get_weather", {"city": "Paris", "unit": "celsius"}),
        ),
        (
            "weather for new york in fahrenheit",
            ToolRequest("get_weather", {"city": "New York", "unit": "fahrenheit"}),
        ),
        (
            "where is my order four eight one five",
            ToolRequest("lookup_order", {"order_number": "4815"}),
        ),
    ],
)
def test_tool_calls_with_arguments_drawn_from_the_words(text: str, expected: ToolRequest) -> None:
    assert reply(text) == expected


def test_intents() -> None:
    assert reply("hello") == "Hello! How can I help you today?"
    assert reply("what is your name") == "I'm Ivy."
    assert reply("thank you") == "You're welcome! Anything else?"
    assert reply("goodbye") == "Goodbye! Talk to you soon."
    assert str(reply("what time is it")).startswith("It's ")
    assert reply("") == "Sorry, I didn't catch that. Could you say it again?"
    assert reply("i like trains") == "You said: i like trains. Tell me more."
    assert reply("weather in paris", tools=[]) == "You said: weather in paris. Tell me more."


def test_tool_results_and_instructions_are_spoken() -> None:
    ok = {"role": "tool", "name": "get_weather", "content": '{"temp_c": 21, "sky": "clear"}'}
    assert default_brain([ok], [WEATHER]) == "Here is what I found: temp c 21, sky clear."
    err = {
        "role": "tool",
        "name": "get_weather",
        "content": "ValueError: no city",
        "is_error": True,
    }
    assert default_brain([err], [WEATHER]) == "Sorry, that did not work: ValueError: no city"
    say = {"role": "instructions", "content": "Say: the shop closes at five."}
    assert default_brain([say], []) == "the shop closes at five."


def test_same_input_same_output() -> None:
    history = [SYSTEM, {"role": "user", "content": "what's the weather in rome"}]
    assert default_brain(history, [WEATHER]) == default_brain(list(history), [WEATHER])


# -- tools called the way the prompt says -----------------------------------------------------
def tool(tool_name: str, description: str, required: tuple[str, ...] = (), **params: dict) -> dict:
    return {
        "type": "function",
        "name": tool_name,
        "description": description,
        "parameters": {"type": "object", "properties": params, "required": list(required)},
    }


ORDER_STATUS = tool(
    "get_order_status",
    "Look up an order by its number.",
    ("order_id",),
    order_id={"type": "string", "description": "The order number."},
)
PERSON = tool("lookup_person", "Find someone in the directory.", ("name",), name={"type": "string"})
CITY_WEATHER = tool("get_weather", "Current weather.", ("city",), city={"type": "string"})
REFUND = tool(
    "start_refund", "Start a refund.", ("order_number",), order_number={"type": "integer"}
)
BOOKING = tool(
    "book_table",
    "Book a table.",
    ("name", "date"),
    name={"type": "string"},
    date={"type": "string"},
    time={"type": "string"},
)
CONTACT = tool(
    "update_contact",
    "Update the caller's details.",
    ("email",),
    email={"type": "string"},
    phone={"type": "string"},
)
RULES_TOOLS = [ORDER_STATUS, PERSON, CITY_WEATHER, REFUND, BOOKING, CONTACT]
ALL_RULES = (
    "You are Ivy, a support agent. When the user gives a person's name, call lookup_person. "
    "Call get_order_status whenever the caller mentions an order number. "
    "Use get_weather if the user asks about a city. "
    "If the caller mentions a refund, then call start_refund. "
    "When the caller wants to book a table, use book_table; "
    "call update_contact when the user gives an email address."
)


def converse(system: str, tools: list[dict], *said: str) -> object:
    """What the brain answers to the last of ``said``, each earlier answer kept as history."""
    history: list[dict] = [{"role": "system", "content": system}]
    answer: object = None
    for text in said:
        history.append({"role": "user", "content": text})
        answer = default_brain(history, tools)
        spoken = answer.preamble if isinstance(answer, ToolRequest) else answer
        history.append({"role": "assistant", "content": spoken})
    return answer


def call(tool_name: str, **arguments: object) -> ToolRequest:
    return ToolRequest(tool_name, dict(arguments))


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        # numbers: spoken digits, "oh", "double", written digits, a cue before one digit
        (
            "my order number is four eight one five two nine",
            call("get_order_status", order_id="481529"),
        ),
        ("order double five oh one please", call("get_order_status", order_id="5501")),
        ("it's order 4 8 1", call("get_order_status", order_id="481")),
        ("the number is 481529", call("get_order_status", order_id="481529")),
        ("order number seven", call("get_order_status", order_id="7")),
        ("one two three", call("get_order_status", order_id="123")),
        # names: after cues, from the list of first names, with a surname, in typed text
        ("my name is john smith", call("lookup_person", name="John Smith")),
        ("hi this is anna", call("lookup_person", name="Anna")),
        ("can you look up sarah", call("lookup_person", name="Sarah")),
        ("my name is xochitl", call("lookup_person", name="Xochitl")),
        ("I'm Maria Fernsby", call("lookup_person", name="Maria Fernsby")),
        # cities: from the list (several words), or "in <x>"
        ("what's the weather like in new york", call("get_weather", city="New York")),
        ("is it raining in rio de janeiro", call("get_weather", city="Rio de Janeiro")),
        ("how cold is it in springfield", call("get_weather", city="Springfield")),
        # words named by the condition; an integer parameter gets an int
        (
            "i want a refund for order four eight one five",
            call("start_refund", order_number=4815),
        ),
        # several parameters, one turn
        (
            "book a table for anna tomorrow at seven o'clock",
            call("book_table", name="Anna", date="tomorrow", time="seven o'clock"),
        ),
        (
            "my email is anna dot lee at example dot com",
            call("update_contact", email="anna.lee@example.com"),
        ),
    ],
)
def test_rules_in_the_system_prompt_call_tools_with_arguments_from_speech(
    said: str, expected: ToolRequest
) -> None:
    assert converse(ALL_RULES, RULES_TOOLS, said) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        # the condition does not hold: no call (words of the tool: ask for what is missing)
        ("where is my order", "What's the order number?"),
        ("i'd like a refund", "What's the order number?"),
        ("i want to book a table", "What's the name?"),
        ("i like trains", "You said: i like trains. Tell me more."),
        ("it is twenty one degrees", "You said: it is twenty one degrees. Tell me more."),
        ("i called yesterday", "You said: i called yesterday. Tell me more."),
        ("hi ivy", "Hello! How can I help you today?"),  # the agent's own name is no person
        ("i'm fine this is great", "You said: i'm fine this is great. Tell me more."),
        ("up to two of us", "You said: up to two of us. Tell me more."),
        ("I'm calling from Boston", call("get_weather", city="Boston")),  # a city, no person
        ("thank you", "You're welcome! Anything else?"),
    ],
)
def test_no_call_when_the_condition_does_not_hold(said: str, expected: str) -> None:
    assert converse(ALL_RULES, RULES_TOOLS, said) == expected


@pytest.mark.parametrize(
    ("system", "tools", "said", "expected"),
    [
        # styles of rule: condition first, tool first, "then", two rules in one sentence
        (
            "When the caller gives an order number, call get_order_status.",
            [ORDER_STATUS],
            "four eight one five two nine",
            call("get_order_status", order_id="481529"),
        ),
        (
            "When the user gives an order number, call get_order_status, and when they "
            "give a name, call lookup_person.",
            [ORDER_STATUS, PERSON],
            "my name is anna",
            call("lookup_person", name="Anna"),
        ),
        (
            "Call get_order_status whenever the caller mentions an order number, and call "
            "lookup_person when they introduce themselves.",
            [ORDER_STATUS, PERSON],
            "my order is four eight one five",
            call("get_order_status", order_id="4815"),
        ),
        (
            "The get_weather tool should be used when the user asks about the weather in a city.",
            [CITY_WEATHER],
            "weather in berlin",
            call("get_weather", city="Berlin"),
        ),
        (  # words besides the kind decide: a city alone is not enough
            "The get_weather tool should be used when the user asks about the weather in a city.",
            [CITY_WEATHER],
            "i live in berlin",
            "You said: i live in berlin. Tell me more.",
        ),
        (  # a rule in the tool's own description, the system prompt says nothing
            "You are a helpful agent.",
            [
                dict(
                    ORDER_STATUS,
                    description="Look up an order by its number. Call this when the user "
                    "gives an order number.",
                )
            ],
            "it's four eight one five two nine",
            call("get_order_status", order_id="481529"),
        ),
        (  # "don't call X unless ..." is a rule; "never call X when ..." is none
            "Don't call lookup_person unless the caller says their name.",
            [PERSON],
            "my name is anna",
            call("lookup_person", name="Anna"),
        ),
        (
            "Never call lookup_person when the user gives a name.",
            [PERSON],
            "my name is anna",
            "I'm the voicekit stand-in agent.",
        ),
        (  # a parameter described, not named, as a person; a phone number
            "If the user gives their name, call greet.",
            [
                tool(
                    "greet",
                    "Greet.",
                    ("who_to",),
                    who_to={"type": "string", "description": "A person's name."},
                )
            ],
            "this is john",
            call("greet", who_to="John"),
        ),
        (
            "Call save_phone when the caller gives a phone number.",
            [tool("save_phone", "Save.", ("phone",), phone={"type": "string"})],
            "my phone number is oh seven seven double oh one two three four five six",
            call("save_phone", phone="07700123456"),
        ),
        (  # a kind no parameter takes is a word: "the time" for a tool without a time
            "When the user asks the time, use tell_time.",
            [tool("tell_time", "Tell the time.")],
            "what time is it",
            call("tell_time"),
        ),
    ],
)
def test_rule_styles(system: str, tools: list[dict], said: str, expected: object) -> None:
    assert converse(system, tools, said) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (
            ("where is my order", "four eight one five two nine"),
            call("get_order_status", order_id="481529"),
        ),
        (("i'd like a refund", "it's one two three"), call("start_refund", order_number=123)),
        (("what's the weather like in", "paris"), call("get_weather", city="Paris")),
        (  # asked twice, the first answer kept
            ("i want to book a table", "my name is john", "next friday"),
            call("book_table", name="John", date="next friday"),
        ),
        (("i want to book a table", "john"), "What's the date?"),
        # an answer that does not answer: an ordinary turn
        (("where is my order", "i like trains"), "You said: i like trains. Tell me more."),
    ],
)
def test_a_missing_argument_is_asked_for_and_the_answer_completes_the_call(
    said: tuple[str, ...], expected: object
) -> None:
    assert converse(ALL_RULES, RULES_TOOLS, *said) == expected


def test_rules_are_deterministic_and_leave_rule_less_tools_to_keywords() -> None:
    history = [
        {"role": "system", "content": ALL_RULES},
        {"role": "user", "content": "my name is anna and my order number is four eight one"},
    ]
    first = default_brain(history, RULES_TOOLS)
    assert first == call("lookup_person", name="Anna")  # the first rule that fires
    assert all(default_brain(list(history), list(RULES_TOOLS)) == first for _ in range(3))
    # a tool no rule names keeps the keyword matching
    assert converse(ALL_RULES, [*RULES_TOOLS, WEATHER], "weather for paris in fahrenheit") == (
        call("get_weather", city="Paris")  # the rule (a city) for the rule's tool first
    )
    assert converse(ALL_RULES, [ORDER], "where is my order four eight one five") == call(
        "lookup_order", order_number="4815"
    )


VOCABULARY = (
    "my name is this i'm order number four eight oh double one twenty hundred and in new "
    "york paris anna smith at dot com phone tomorrow at seven o'clock refund table book "
    "email where weather the a for up it's"
)
SPOKEN = st.lists(st.sampled_from(VOCABULARY.split()), max_size=14).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(first=SPOKEN, second=SPOKEN)
def test_any_speech_gives_a_reply_or_a_complete_call_and_the_same_twice(
    first: str, second: str
) -> None:
    answer = converse(ALL_RULES, RULES_TOOLS, first, second)
    assert answer == converse(ALL_RULES, RULES_TOOLS, first, second)
    if isinstance(answer, ToolRequest):
        definition = next(t for t in RULES_TOOLS if t["name"] == answer.name)
        assert set(definition["parameters"]["required"]) <= set(answer.arguments)
    else:
        assert isinstance(answer, str) and answer


DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS = {**{w: i for i, w in enumerate(DIGIT_WORDS)}, "oh": 0}


@pytest.mark.slow
def test_the_twin_calls_the_tool_the_prompt_names_with_the_recognised_digits(tmp_path) -> None:
    calls: list[str] = []

    def get_order_status(order_id: str) -> dict:
        """Look up an order by its number.

        Parameters
        ----------
        order_id : str
            The order number.
        """
        calls.append(order_id)
        return {"order_id": order_id, "status": "shipped"}

    # The recogniser often mishears spoken digits (a digit, or all of them: "my order is
    # alright would like to"). A turn without digits is no call (the brain asks for the
    # number); the user says it again, up to six times, and the test ends at the first call.
    said = "my order number is four eight one five two nine"
    user = vk.ScriptedUser([vk.Say(said)] * 6)
    with vk.local.serve(profile="fast") as agent:
        s = vk.Session(
            url=agent.url,
            system_prompt="You are Ivy, a shop assistant. When the caller gives an order "
            "number, call get_order_status.",
            tools=[get_order_status],
            audio_in=user,
            audio_out="null",
            log_dir=tmp_path,
            keyterms=["order number", "four eight one five two nine"],
        )
        with s:
            wait_for_event(s, "tool.result", lambda e: e.get("dir") == "send", timeout=120)
        log = s.stop()
    assert user.error is None
    heard = log.of_type("transcript.user")
    call_lines = log.of_type("tool.call")
    assert call_lines and len(calls) >= 1
    for line, ran in zip(call_lines, calls, strict=False):
        # the call's digits are those of the transcript it answered, digit word by digit word
        transcript = [e["text"] for e in heard if e["t"] <= line["t"]][-1]
        digits = "".join(str(DIGITS[w]) for w in transcript.split() if w in DIGITS)
        assert digits, transcript
        assert line["name"] == "get_order_status"
        assert line["arguments"] == {"order_id": digits} and ran == digits, transcript
