"""Every notebook runs top to bottom against the embedded stand-in agent, headless (nbclient).

Each must run with no key, no network and no sound card, show no error output, and start
with what it teaches and end with what to try next. Committed notebooks carry no outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))

# what each notebook's outputs must show, beyond "no errors"
EXPECT: dict[str, list[str]] = {
    "quickstart.ipynb": ["fto", "endpoint_delay"],
    "tools.ipynb": ["tool.call", "tool_dead_air", "get_weather"],
    "barge-in-and-echo.ipynb": ["interruption", "heard_fraction", "completed", "correlation"],
    "tuning.ipynb": ["min_silence", "premature"],
    "analysing-logs.ipynb": ["session_id", "server_first_audio", "greeting_latency", "report"],
    "production-sessions.ipynb": [
        "close_reason",
        "recording.ogg",
        "measured_from",
        "server_ttfa",
        "interrupted_at",
        "interruption",
        "is mono",
        "fto_diff",
        "hosted",
    ],
    "workshop.ipynb": [
        "✔ you took at least three turns",
        "stop_latency",
        "tool_dead_air",
        "sessions,",
        "premature",
        "a scripted user plays your part",
    ],
}
EXAMPLE_LOGS = NOTEBOOKS / "example-logs"


def _run(name: str, tmp_path: Path) -> list[Any]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    shutil.copytree(EXAMPLE_LOGS, tmp_path / "example-logs")  # where the notebook finds them
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def test_every_notebook_is_checked_and_committed_without_outputs() -> None:
    import nbformat

    metas = list(EXAMPLE_LOGS.glob("*/meta.json"))
    assert len(metas) >= 2, "run: python notebooks/make_example_logs.py"

    assert set(ALL) == set(EXPECT), "add the new notebook's expectations to EXPECT"
    for name in ALL:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.outputs or c.execution_count for c in code), f"{name}: strip outputs"
        first, last = nb.cells[0].source, nb.cells[-1].source
        assert first.startswith("# "), f"{name}: start with a title and what it teaches"
        if name != "quickstart.ipynb":
            assert "What this teaches" in first and "What to try next" in last, name


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_notebook_runs_headless(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    outputs = _run(name, tmp_path)
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors[0].get("traceback", "")[-3:]
    shown = " ".join(
        str(o.get("text", "")) + " ".join(str(v) for v in o.get("data", {}).values())
        for o in outputs
    )
    for needle in EXPECT[name]:
        assert needle in shown, f"{name}: {needle!r} not in the outputs"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name}: no plot"
    if name == "analysing-logs.ipynb":
        assert (tmp_path / "example-report.html").exists()
    else:
        assert list((tmp_path / "voicekit-logs").rglob("meta.json")), "no session was logged"
    if name == "quickstart.ipynb":
        views = [
            o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert views, "the AgentPanel cell displayed no widget"
