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
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", req)
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
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
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
