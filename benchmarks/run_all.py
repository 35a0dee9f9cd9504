"""Run every benchmark in this folder and print one table of figures.

Each ``bench_*.py`` module has a ``main()`` that measures, prints and returns its figures;
nothing here asserts a time. ``make bench`` runs this file.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    sys.path.insert(0, str(HERE))
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    wanted = set(sys.argv[1:])
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"== {name}")
        importlib.import_module(name).main()


if __name__ == "__main__":
    main()
