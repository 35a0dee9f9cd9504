"""Many log bundles at once: one turn table, a sweep over configs.

Analysis layer (``sweep`` also runs sessions against the stand-in agent: it is the one
function here that touches the runtime).
"""

from __future__ import annotations

import concurrent.futures
import glob as globmod
import itertools
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import ConfigError, LogFormatError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["find_logs", "load_logs", "sweep"]

PARALLEL_FROM = 16  # logs: below this, one process is faster than starting a pool


def find_logs(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Log bundle directories from paths, globs, or parent directories of bundles."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for item in items:
        text = str(item)
        matches = sorted(globmod.glob(text)) if globmod.has_magic(text) else [text]
        for m in matches:
            p = Path(m)
            if (p / "meta.json").exists():
                found.append(p)
            elif p.is_dir():
                found += sorted(d.parent for d in p.glob("*/meta.json"))
            elif not globmod.has_magic(text):
                raise LogFormatError("no such log bundle or directory", text)
    return found


def _one(path: Path) -> tuple[Any, list[str]]:
    """Turn table of one bundle with its session columns, and the warnings it raised."""
    from voicekit.logformat import load_log

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = load_log(path)
        df = log.turns.copy()
    df.insert(0, "session_id", log.session_id)
    df.insert(1, "started_at", log.started_at)
    df.insert(2, "backend", log.backend)
    df.insert(3, "log", str(path))
    return df, [str(w.message) for w in caught]


def load_logs(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = "voicekit-logs",
    progress: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """One turn table of many sessions (session id, start time, backend, log path columns).

    Parameters
    ----------
    paths : str, path or list of them
        Bundle directories, their parent directories, or globs (``"voicekit-logs/*"``).
    progress : bool
        Show a progress bar (tqdm: a widget in notebooks, text in terminals).
    workers : int, optional
        Processes to use; default: all cores when there are many logs, else one.

    Notes
    -----
    A bundle that cannot be read is skipped with a warning naming it; damaged lines inside
    a bundle are skipped with a warning as :func:`voicekit.load_log` does.
    """
    import pandas as pd

    from voicekit.analysis.metrics import TURN_COLUMNS

    bundles = find_logs(paths)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(bundles) >= PARALLEL_FROM else 1
    bar = _progress(len(bundles), progress, "logs")
    frames: list[Any] = []

    def collect(path: Path, result: tuple[Any, list[str]] | BaseException) -> None:
        if isinstance(result, BaseException):
            warnings.warn(f"{path}: skipped ({result})", stacklevel=3)
        else:
            frames.append(result[0])
            for message in result[1]:
                warnings.warn(message, stacklevel=3)
        bar.update(1)

    try:
        if workers <= 1:
            for path in bundles:
                try:
                    collect(path, _one(path))
                except (LogFormatError, OSError, ValueError) as exc:
                    collect(path, exc)
        else:
            with concurrent.futures.ProcessPoolExecutor(workers) as pool:
                chunk = max(1, len(bundles) // (workers * 8))
                futures = {
                    pool.submit(_many, bundles[i : i + chunk]): i
                    for i in range(0, len(bundles), chunk)
                }
                for fut in concurrent.futures.as_completed(futures):
                    for path, result in fut.result():
                        collect(path, result)
    finally:
        bar.close()
    columns = ["session_id", "started_at", "backend", "log", *TURN_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    frames = [f for f in frames if len(f)] or frames[:1]
    df = pd.concat(frames, ignore_index=True)
    out: pd.DataFrame = df.sort_values(["started_at", "turn"], kind="stable")
    return out.reset_index(drop=True)


def _many(paths: list[Path]) -> list[tuple[Path, Any]]:
    out: list[tuple[Path, Any]] = []
    for p in paths:
        try:
            out.append((p, _one(p)))
        except (LogFormatError, OSError, ValueError) as exc:
            out.append((p, exc))
    return out


def _progress(total: int, enabled: bool, unit: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit=unit, leave=False)


def sweep(
    user: Any,
    grid: Mapping[str, Sequence[Any]],
    repeats: int = 3,
    parallel: int = 2,
    log_dir: str | os.PathLike[str] = "voicekit-logs/sweep",
    progress: bool = True,
    timeout: float = 180.0,
    **session_kwargs: Any,
) -> pd.DataFrame:
    """Run the same scripted conversation under every config of ``grid``; one turn table.

    Parameters
    ----------
    user : vk.ScriptedUser
        The conversation; each run gets a fresh copy (same steps, seed and gaps).
    grid : dict
        Turn-detection fields (``vad_threshold``, ``min_silence``, ``max_silence``,
        ``interrupt_response``) or ``voice``, each with the values to try; every
        combination is run.
    repeats : int
        Runs per combination.
    parallel : int
        Sessions at once against the embedded stand-in agent.
    log_dir : str or path
        Where the runs' log bundles go (kept).
    session_kwargs
        Passed on to :class:`voicekit.Session` (``greeting``, ``tools``, ``url``, ...).

    Returns
    -------
    DataFrame
        The turn tables of all runs, with ``run`` and ``repeat`` columns and the grid's
        values as columns.
    """
    import pandas as pd

    from voicekit.protocol import TurnDetection
    from voicekit.testing.scripted import ScriptedUser

    if not isinstance(user, ScriptedUser):
        raise ConfigError(
            f"user must be a vk.ScriptedUser, not {type(user).__name__}", field="user"
        )
    known = {"vad_threshold", "min_silence", "max_silence", "interrupt_response", "voice"}
    for key, values in grid.items():
        if key not in known:
            raise ConfigError(
                f"grid key {key!r} is not a sweepable setting; use one of {sorted(known)}",
                field="grid",
            )
        if isinstance(values, (str, bytes)) or not list(values):
            raise ConfigError(f"grid[{key!r}] must be a non-empty list of values", field="grid")
    if repeats < 1 or parallel < 1:
        raise ConfigError("repeats and parallel must be at least 1", field="repeats")
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
    for combo in combos:  # validate every config before running anything
        TurnDetection(**{k: v for k, v in combo.items() if k != "voice"})
    jobs = [(i, combo, r) for i, combo in enumerate(combos) for r in range(repeats)]
    bar = _progress(len(jobs), progress, "runs")

    def run(job: tuple[int, dict[str, Any], int]) -> Any:
        import voicekit as vk

        index, combo, rep = job
        td = {k: v for k, v in combo.items() if k != "voice"}
        kwargs = dict(session_kwargs)
        if "voice" in combo:
            kwargs["voice"] = combo["voice"]
        s = vk.Session(
            audio_in=user.copy(),
            audio_out="null",
            turn_detection=TurnDetection(**td),
            log_dir=log_dir,
            **kwargs,
        )
        s.start()
        try:
            s.wait(timeout)
        finally:
            log = s.stop()
        df = log.turns.copy()
        df.insert(0, "run", index)
        df.insert(1, "repeat", rep)
        df.insert(2, "log", str(log.path))
        for k, v in combo.items():
            df[k] = v
        bar.update(1)
        return df

    try:
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            frames = list(pool.map(run, jobs))
    finally:
        bar.close()
    table: pd.DataFrame = pd.concat(frames, ignore_index=True)
    return table
