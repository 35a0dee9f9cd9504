"""The default brain: intents, tool calls with arguments from words, results, paraphrase."""

from __future__ import annotations

import pytest

from voicekit.local.brain import ToolRequest, default_brain

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
