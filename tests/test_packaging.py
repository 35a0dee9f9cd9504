"""Packaging checks: environment.yml agrees with pyproject, public names are documented."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import voicekit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently from PyPI
CONDA_NAMES = {"python-sounddevice": "sounddevice", "soxr-python": "soxr"}


def _split(req: str) -> tuple[str, str]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*?)\s*", req)
    assert m, f"cannot parse requirement {req!r}"
    return m.group(1).lower(), m.group(2).replace(" ", "")


def _environment_deps() -> dict[str, str]:
    deps: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+\s*[<>=!~].*|[A-Za-z0-9_.\-]+)\s*$", line)
        if not m or m.group(1).strip() in ("pip:",):
            continue
        name, spec = _split(m.group(1))
        deps[CONDA_NAMES.get(name, name)] = spec
    return deps


def test_environment_yml_lists_the_runtime_dependencies_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"])
    have = _environment_deps()
    missing = {n: s for n, s in wanted.items() if n not in have}
    assert not missing, f"environment.yml lacks {missing}"
    differing = {n: (s, have[n]) for n, s in wanted.items() if have[n] != s}
    assert not differing, f"lower bounds differ (pyproject, environment.yml): {differing}"
    extra = set(have) - set(wanted) - {"python", "pip", "portaudio"}
    assert not extra, f"environment.yml has packages pyproject lacks: {extra}"


def test_dependencies_pin_lower_bounds_not_exact_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    for req in reqs:
        _, spec = _split(req)
        bound = spec.split(";")[0]
        assert bound.startswith(">="), f"{req}: pin a lower bound (>=), not an exact version"


def test_every_exported_name_exists_and_is_documented() -> None:
    assert voicekit.__all__, "voicekit.__all__ is empty"
    for name in voicekit.__all__:
        obj = getattr(voicekit, name)
        if name == "__version__":
            assert re.match(r"^\d+\.\d+", obj)
            continue
        doc = getattr(obj, "__doc__", None)
        assert doc and doc.strip(), f"voicekit.{name} has no docstring"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [c for c in ci if not c.startswith(("set ", "cd "))]
    assert commands == ["make test"], commands


def _loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    import json
    import os
    import subprocess

    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def _family(modules: set[str], prefix: str) -> set[str]:
    return {m for m in modules if m == prefix or m.startswith(prefix + ".")}


def test_import_voicekit_loads_no_network_server_speech_or_plotting() -> None:
    loaded = _loaded_after("import voicekit")
    for heavy in ("websockets", "voicekit.local.server", "voicekit.speech", "pandas", "matplotlib"):
        assert not _family(loaded, heavy), f"import voicekit loads {sorted(_family(loaded, heavy))}"


def test_import_voicekit_protocol_loads_no_asyncio_or_websockets() -> None:
    loaded = _loaded_after("import voicekit.protocol")
    for heavy in ("asyncio", "websockets"):
        assert not _family(loaded, heavy), (
            f"voicekit.protocol loads {sorted(_family(loaded, heavy))}"
        )


def test_lazy_names_resolve_and_are_listed() -> None:
    import importlib

    # the submodule voicekit.sweep must not shadow the function vk.sweep
    module = importlib.import_module("voicekit.sweep")
    assert voicekit.sweep is module.sweep and callable(voicekit.sweep)
    assert set(voicekit.__all__) <= set(dir(voicekit))
    assert voicekit.ScriptedUser is importlib.import_module("voicekit.scripted").ScriptedUser
    assert voicekit.voices is importlib.import_module("voicekit.protocol.voices")
    scripted_alias = importlib.import_module("voicekit.testing.scripted")
    assert scripted_alias.ScriptedUser is voicekit.ScriptedUser
    assert importlib.import_module("voicekit.analysis").sweep is voicekit.sweep


# -- layering: imports point down only (docs/architecture.md) ---------------------------------
PACKAGE = ROOT / "voicekit"
RUNTIME = ("session", "scripted", "sweep", "tools", "agents", "hosted", "_rest")
# layer of a module -> the voicekit parts it must never import, even lazily
FORBIDDEN = {
    "protocol": (
        "audio",
        "logformat",
        "speech",
        "analysis",
        "widgets",
        "cli",
        "local",
        "testing",
        *RUNTIME,
    ),
    "audio": (
        "protocol",
        "logformat",
        "speech",
        "analysis",
        "widgets",
        "cli",
        "local",
        "testing",
        *RUNTIME,
    ),
    "speech": ("logformat", "analysis", "widgets", "cli", "local", "testing", *RUNTIME),
    "logformat": ("protocol", "speech", "widgets", "cli", "local", "testing", *RUNTIME),
    "analysis": ("widgets", "cli", "local", "testing", *RUNTIME),
    "runtime": ("analysis", "widgets", "cli", "testing"),
    "local": ("logformat", "analysis", "widgets", "cli", "testing", *RUNTIME),
    "base": (
        "protocol",
        "audio",
        "logformat",
        "speech",
        "analysis",
        "widgets",
        "cli",
        "local",
        "testing",
        *RUNTIME,
    ),
}
# upward imports allowed inside a function only: accessors of a lower layer
LAZY_ACCESSORS = {("logformat", "analysis")}
# backward-compatible aliases of names that moved up, resolved lazily: (file, module)
LAZY_ALIASES = {("voicekit/analysis/__init__.py", "voicekit.sweep")}
# within speech/, the one piece of the protocol it may use: the voice catalogue (pure data)
SPEECH_MAY_USE = {"voicekit.protocol.voices"}
THIRD_PARTY_FORBIDDEN = {"protocol": ("asyncio", "websockets", "numpy"), "speech": ("websockets",)}


def _layer(parts: tuple[str, ...]) -> str | None:
    top = parts[0].removesuffix(".py")
    if top in ("errors", "_secrets", "_version"):
        return "base"
    if top in RUNTIME:
        return "runtime"
    if top in FORBIDDEN:
        return top
    return None


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, with whether the import is at module level."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.module, top))
                found.extend((f"{child.module}.{a.name}", top) for a in child.names)
            inner = top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, inner)

    visit(tree, True)
    return found


def test_imports_point_down_only() -> None:
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        layer = _layer(parts)
        if layer is None:
            continue
        for name, top in _imports(path):
            where = f"{path.relative_to(ROOT)} imports {name}"
            root, _, rest = name.partition(".")
            if root != "voicekit":
                if root in THIRD_PARTY_FORBIDDEN.get(layer, ()) and top:
                    wrong.append(where)
                continue
            target = rest.split(".")[0]
            if not target:  # the package root re-exports the faces: import the module itself
                wrong.append(where)
                continue
            if layer == "speech" and target == "protocol":
                if not any(name.startswith(m) for m in SPEECH_MAY_USE):
                    wrong.append(where)
                continue
            if target in FORBIDDEN[layer]:
                if (layer, target) in LAZY_ACCESSORS and not top:
                    continue
                alias = (str(path.relative_to(ROOT)), f"voicekit.{target}")
                if alias in LAZY_ALIASES and not top:
                    continue
                wrong.append(where + ("" if not top else " at module level"))
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_log_format_schemas_are_package_data(tmp_path) -> None:
    """What a wheel packs (setuptools' build_py with this pyproject) holds the schemas that
    vk.validate_log reads."""
    import subprocess

    code = (
        "import sys; from setuptools import setup; "
        f"sys.argv = ['setup.py', '-q', 'egg_info', '--egg-base', {str(tmp_path)!r}, "
        f"'build_py', '-d', {str(tmp_path / 'lib')!r}]; setup()"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    schema = tmp_path / "lib" / "voicekit" / "logformat" / "schema"
    assert sorted(p.name for p in schema.iterdir()) == ["events.schema.json", "meta.schema.json"]
