"""Tools: schema from signatures and docstrings, and running calls (sync, async, failing)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Literal, Optional

import pytest

from voicekit.errors import ToolError
from voicekit.tools import Tool, as_tool, tool_schema


def get_weather(city: str, unit: Literal["c", "f"] = "c", days: Optional[int] = None) -> dict:  # noqa: UP045
    """Current weather for a city.

    Longer text that is not part of the description.

    Parameters
    ----------
    city : str
        The city name, e.g. Paris.
    unit : {"c", "f"}
        Temperature unit.

    Returns
    -------
    dict
        Not a parameter.
    """
    return {"city": city, "temp": 21, "unit": unit, "days": days}


def test_schema_from_signature_and_docstring() -> None:
    s = tool_schema(get_weather)
    assert s["name"] == "get_weather"
    assert s["description"] == "Current weather for a city."
    props = s["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "The city name, e.g. Paris."}
    assert props["unit"]["enum"] == ["c", "f"] and props["unit"]["type"] == "string"
    assert props["unit"]["default"] == "c"
    assert props["days"]["type"] == "integer"
    assert s["parameters"]["required"] == ["city"]
    assert "dict" not in json.dumps(props)  # the Returns section is not a parameter


def test_schema_types() -> None:
    def f(a: float, b: bool, c: list[str], d: dict[str, int], e: int | str, g: str | None) -> None:
        """F."""

    p = tool_schema(f)["parameters"]
    assert p["properties"]["a"] == {"type": "number"}
    assert p["properties"]["b"] == {"type": "boolean"}
    assert p["properties"]["c"] == {"type": "array", "items": {"type": "string"}}
    assert p["properties"]["d"] == {"type": "object"}
    assert p["properties"]["e"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert p["required"] == ["a", "b", "c", "d", "e"]


def test_schema_errors_name_the_parameter_and_the_fix() -> None:
    def untyped(city):  # type: ignore[no-untyped-def]
        """X."""

    with pytest.raises(ToolError, match=r"parameter 'city' has no type hint.*city: str"):
        tool_schema(untyped)

    def odd(x: complex) -> None:
        """X."""

    with pytest.raises(ToolError, match=r"parameter 'x'.*no JSON schema"):
        tool_schema(odd)
    with pytest.raises(ToolError, match="tool name"):
        tool_schema(get_weather, name="has space")
    with pytest.raises(ToolError, match="must be functions"):
        as_tool("get_weather")  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="timeout_s"):
        as_tool(get_weather, timeout_s=0)


def _run(tool: Tool, args: dict) -> tuple[str, bool]:
    outcome = asyncio.run(tool.call(args))
    assert outcome.end_s >= outcome.start_s
    return outcome.result, outcome.is_error


def test_sync_tool_runs_in_a_worker_thread_and_result_is_json() -> None:
    seen: list[str] = []

    def where(city: str) -> dict:
        """Where."""
        seen.append(threading.current_thread().name)
        return {"city": city}

    result, err = _run(as_tool(where), {"city": "Paris"})
    assert not err and json.loads(result) == {"city": "Paris"}
    assert seen and seen[0] != threading.main_thread().name


def test_async_tool_and_string_results_pass_through() -> None:
    async def hello(name: str) -> str:
        """Hello."""
        await asyncio.sleep(0)
        return f"hi {name}"

    assert _run(as_tool(hello), {"name": "Ada"}) == ("hi Ada", False)


def test_exceptions_bad_arguments_and_timeouts_become_error_results() -> None:
    def boom(city: str) -> str:
        """Boom."""
        raise ValueError(f"unknown city {city}")

    assert _run(as_tool(boom), {"city": "Atlantis"}) == ("ValueError: unknown city Atlantis", True)
    result, err = _run(as_tool(get_weather), {"town": "Paris"})
    assert err and "town" in result
    result, err = _run(as_tool(get_weather), {})
    assert err and "missing" in result and "city" in result

    async def slow(x: int) -> int:
        """Slow."""
        await asyncio.sleep(10)
        return x

    result, err = _run(as_tool(slow, timeout_s=0.05), {"x": 1})
    assert err and "timed out after 0.05 s" in result


def test_definition_carries_execution_mode() -> None:
    t = as_tool(get_weather, execution_mode="hold")
    assert t.definition()["execution_mode"] == "hold"
    assert t.name == "get_weather"
    assert as_tool(t) is t
