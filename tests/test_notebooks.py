"""The notebooks run top to bottom against the embedded stand-in agent."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


@pytest.mark.slow
def test_quickstart_runs_and_shows_the_turn_table(tmp_path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = " ".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "the AgentPanel cell displayed no widget"
    assert "fto" in html and "endpoint_delay" in html  # the turn table was shown
    assert any("image/png" in o.get("data", {}) for o in outputs)  # and the timeline
    assert list((tmp_path / "voicekit-logs").iterdir())  # the session was logged
