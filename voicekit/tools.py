"""Plain Python callables as agent tools.

A tool is any function (sync or async) with type hints and a docstring. :func:`as_tool`
derives the protocol's flat tool definition from it: the name, the description (the
docstring's summary), and a JSON schema of the parameters from the type hints, with the
NumPy-style ``Parameters`` section of the docstring as per-parameter descriptions.
:meth:`Tool.call` runs it for a ``tool.call`` event and returns the ``tool.result`` payload.

Runtime layer: imports asyncio, the standard library and ``voicekit.errors`` only.

Threading: sync tools run in a worker thread (``asyncio.to_thread``) so a slow tool never
stalls audio; async tools run on the session's loop. Either way a per-tool timeout applies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from voicekit.errors import ToolError

__all__ = ["Tool", "ToolOutcome", "as_tool", "tool_schema"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_TIMEOUT_S = 30.0

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _json_type(hint: Any, where: str) -> tuple[dict[str, Any], bool]:
    """JSON schema for one type hint, and whether ``None`` is allowed."""
    origin = get_origin(hint)
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}, False
    if origin is Literal:
        values = list(get_args(hint))
        kinds = {type(v) for v in values}
        schema: dict[str, Any] = {"enum": values}
        if len(kinds) == 1 and next(iter(kinds)) in _SIMPLE:
            schema["type"] = _SIMPLE[next(iter(kinds))]
        return schema, False
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        optional = len(members) < len(get_args(hint))
        if len(members) == 1:
            inner, _ = _json_type(members[0], where)
            return inner, optional
        return {"anyOf": [_json_type(m, where)[0] for m in members]}, optional
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        schema = {"type": "array"}
        if args:
            schema["items"] = _json_type(args[0], where)[0]
        return schema, False
    if origin in (dict, Mapping) or hint is dict:
        return {"type": "object"}, False
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}, False
    raise ToolError(
        f"{where}: type {hint!r} has no JSON schema; use str, int, float, bool, Literal[...], "
        "Optional[...], list[...] or dict"
    )


def _param_docs(doc: str) -> dict[str, str]:
    """Per-parameter descriptions from a NumPy-style ``Parameters`` section."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    try:
        start = next(
            i
            for i, ln in enumerate(lines[:-1])
            if ln.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}
        )
    except StopIteration:
        return out
    current: str | None = None
    for ln in lines[start + 2 :]:
        if ln.strip() and set(ln.strip()) == {"-"}:  # the next section's underline
            if current:
                out.pop(current, None)
            break
        if ln and not ln[0].isspace():
            current = ln.split(":")[0].strip()
            out[current] = ""
        elif current and ln.strip():
            out[current] = (out[current] + " " + ln.strip()).strip()
    return {k: v for k, v in out.items() if v}


def tool_schema(fn: Callable[..., Any], name: str | None = None) -> dict[str, Any]:
    """The protocol's flat tool definition for a Python callable.

    Parameters
    ----------
    fn : callable
        A function with type hints on every parameter; its docstring's first paragraph
        becomes the description the agent reads to decide when to call it.
    name : str, optional
        Tool name; defaults to ``fn.__name__``.

    Returns
    -------
    dict
        ``{"type": "function", "name", "description", "parameters"}`` where parameters
        is a JSON schema object; parameters with defaults or ``Optional`` are not required.

    Raises
    ------
    ToolError
        If a parameter has no type hint or a type with no JSON equivalent.
    """
    tool_name = str(name or getattr(fn, "__name__", ""))
    if not _NAME_RE.match(tool_name):
        raise ToolError(
            f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'; name it: "
            "vk.as_tool(fn, name='lookup_order') (a lambda has no usable name)"
        )
    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # unresolvable forward references
        raise ToolError(f"tool {tool_name}: cannot resolve type hints ({exc})") from exc
    docs = _param_docs(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname not in hints:
            raise ToolError(
                f"tool {tool_name}: parameter {pname!r} has no type hint; annotate it "
                f"(e.g. {pname}: str) so the agent knows what to pass"
            )
        schema, optional = _json_type(hints[pname], f"tool {tool_name}, parameter {pname!r}")
        if pname in docs:
            schema = {**schema, "description": docs[pname]}
        if param.default is not param.empty and _jsonable(param.default):
            schema = {**schema, "default": param.default}
        properties[pname] = schema
        if param.default is param.empty and not optional:
            required.append(pname)
    return {
        "type": "function",
        "name": tool_name,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclasses.dataclass(frozen=True)
class ToolOutcome:
    """What running a tool produced: the ``tool.result`` string and timing.

    Attributes
    ----------
    result : str
        The result as the protocol wants it: a string (JSON-encoded when structured).
    is_error : bool
        Whether the tool failed (exception, timeout or bad arguments).
    start_s, end_s : float
        ``time.monotonic()`` when the call started and ended.
    """

    result: str
    is_error: bool
    start_s: float
    end_s: float


def _encode_result(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return json.dumps(str(value))


@dataclasses.dataclass(frozen=True)
class Tool:
    """A Python callable offered to the agent as a client-side tool.

    Build one with :func:`as_tool`; :class:`voicekit.Session` does it for every callable
    in ``tools=[...]``.

    Attributes
    ----------
    fn : callable
        The function to run.
    schema : dict
        The flat tool definition sent in ``session.update``.
    timeout_s : float
        Seconds before a call is abandoned with an error result.
    execution_mode : str
        ``"interactive"`` (the agent may speak a pre-amble) or ``"hold"`` (silent).
    """

    fn: Callable[..., Any]
    schema: dict[str, Any]
    timeout_s: float = DEFAULT_TIMEOUT_S
    execution_mode: str = "interactive"

    @property
    def name(self) -> str:
        """The tool's name as the agent sees it."""
        return str(self.schema["name"])

    def definition(self) -> dict[str, Any]:
        """The wire tool definition, with ``execution_mode``."""
        return {**self.schema, "execution_mode": self.execution_mode}

    def _bind(self, arguments: Mapping[str, Any]) -> inspect.BoundArguments:
        sig = inspect.signature(self.fn)
        known = {
            n for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        extra = sorted(set(arguments) - known)
        if extra and not takes_kwargs:
            raise TypeError(f"unexpected argument(s) {', '.join(extra)} for tool {self.name}")
        missing = [n for n in self.schema["parameters"].get("required", []) if n not in arguments]
        if missing:
            raise TypeError(f"missing argument(s) {', '.join(missing)} for tool {self.name}")
        return sig.bind(**arguments)

    async def call(self, arguments: Mapping[str, Any]) -> ToolOutcome:
        """Run the tool for one ``tool.call`` and return the ``tool.result`` payload.

        Never raises for a failing tool: exceptions, bad arguments and timeouts become an
        error result whose text the agent reads (``"ValueError: unknown city"``).
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            bound = self._bind(arguments)
            if inspect.iscoroutinefunction(self.fn):
                value = await asyncio.wait_for(self.fn(*bound.args, **bound.kwargs), self.timeout_s)
            else:
                value = await asyncio.wait_for(
                    asyncio.to_thread(self.fn, *bound.args, **bound.kwargs), self.timeout_s
                )
            result, is_error = _encode_result(value), False
        except TimeoutError:
            result = f"tool {self.name} timed out after {self.timeout_s:g} s"
            is_error = True
        except Exception as exc:  # a failing tool is reported to the agent, not raised
            result, is_error = f"{type(exc).__name__}: {exc}", True
        return ToolOutcome(result, is_error, start, loop.time())


def as_tool(
    fn: Callable[..., Any] | Tool,
    *,
    name: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    execution_mode: Literal["interactive", "hold"] = "interactive",
) -> Tool:
    """Turn a callable into a :class:`Tool` (a :class:`Tool` is returned unchanged).

    Parameters
    ----------
    fn : callable or Tool
        The function; see :func:`tool_schema` for what its signature may contain.
    name : str, optional
        Tool name (default: the function's name).
    timeout_s : float
        Per-call timeout in seconds (1-300, as the protocol's ``timeout_seconds``).
    execution_mode : {"interactive", "hold"}
        See the protocol reference §8.5.

    Raises
    ------
    ToolError
        If ``fn`` is not callable or its signature cannot be described.
    """
    if isinstance(fn, Tool):
        return fn
    if not callable(fn):
        raise ToolError(
            f"tools entries must be functions (or vk.as_tool(...)), got {type(fn).__name__}"
        )
    if not 0 < timeout_s <= 300:
        raise ToolError(f"timeout_s ({timeout_s}) must be in (0, 300] seconds")
    if execution_mode not in ("interactive", "hold"):
        raise ToolError(f"execution_mode ({execution_mode!r}) must be 'interactive' or 'hold'")
    return Tool(fn, tool_schema(fn, name), float(timeout_s), execution_mode)
