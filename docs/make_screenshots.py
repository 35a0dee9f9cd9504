"""Make the README's pictures: the panel in JupyterLab, and a timeline plot.

- ``docs/panel.png``: the browser test of the quickstart notebook (real JupyterLab, Debian's
  chromium) saves screenshots; this runs it and keeps the one with a config epoch.
- ``docs/timeline.png``: ``vk.plot_timeline`` of the first example session in
  ``notebooks/example-logs/``.

Run from the repository root after a change that alters either::

    .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import voicekit as vk

    logs = sorted((ROOT / "notebooks" / "example-logs").glob("*/meta.json"))
    fig = vk.plot_timeline(vk.load_log(logs[0].parent))
    fig.savefig(ROOT / "docs" / "timeline.png", dpi=90, bbox_inches="tight")
    test = "tests/browser/test_lab.py::test_quickstart_panel_in_jupyterlab"
    subprocess.run([sys.executable, "-m", "pytest", "-q", test], cwd=ROOT, check=True)
    shutil.copy(ROOT / "tests" / "artifacts" / "lab-3-epoch.png", ROOT / "docs" / "panel.png")
    print("wrote docs/panel.png and docs/timeline.png")


if __name__ == "__main__":
    main()
