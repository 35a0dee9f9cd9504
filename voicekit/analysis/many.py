"""Many log bundles at once: one turn table of many sessions.

Analysis layer: reads bundles with :mod:`voicekit.logformat` (pandas and tqdm imported when
first needed); never starts a session. Running a sweep of sessions is the runtime's
:mod:`voicekit.sweep`; its table is plotted here by :func:`voicekit.plot_sweep`.
"""

from __future__ import annotations

import concurrent.futures
import glob as globmod
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import LogFormatError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["find_logs", "load_logs", "open_log"]

PARALLEL_FROM = 16  # logs: below this, one process is faster than starting a pool


RECORDING_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")


def find_logs(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Logs from paths, globs, or parent directories of logs: voicekit bundles
    (``meta.json``), downloaded hosted sessions (``timeline.json`` and ``session.json``) and,
    named one by one, call recordings (``.wav``, ``.flac``, ``.ogg``, ``.opus``, ``.mp3``)."""
    from voicekit.logformat.hosted import is_hosted

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for item in items:
        text = str(item)
        matches = sorted(globmod.glob(text)) if globmod.has_magic(text) else [text]
        for m in matches:
            p = Path(m)
            recording = p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES
            if recording or (p / "meta.json").exists() or is_hosted(p):
                found.append(p)
            elif p.is_dir():
                inside = {d.parent for d in p.glob("*/meta.json")}
                inside |= {d.parent for d in p.glob("*/timeline.json") if is_hosted(d.parent)}
                found += sorted(inside)
            elif not globmod.has_magic(text):
                raise LogFormatError("no such log bundle or directory", text)
    return found


def open_log(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """One log of any kind :func:`find_logs` finds, and its origin: ``"voicekit"`` (a
    bundle), ``"hosted"`` (a downloaded hosted session) or ``"recording"``."""
    from voicekit.logformat import load_log, load_recording
    from voicekit.logformat.hosted import is_hosted, read_hosted

    p = Path(path)
    if p.is_file():
        return load_recording(p), "recording"
    if is_hosted(p) and not (p / "meta.json").exists():
        return read_hosted(p), "hosted"
    return load_log(p), "voicekit"


def _one(path: Path) -> tuple[Any, list[str]]:
    """Turn table of one log with its session columns, and the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log, origin = open_log(path)
        df = log.turns.copy()
    df.insert(0, "session_id", log.session_id)
    df.insert(1, "started_at", log.started_at)
    df.insert(2, "backend", log.backend)
    df.insert(3, "origin", origin)
    df.insert(4, "log", str(path))
    return df, [str(w.message) for w in caught]


def load_logs(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = "voicekit-logs",
    progress: bool = True,
    workers: int | None = None,
) -> pd.DataFrame:
    """One turn table of many sessions (session id, start time, backend, origin, log path
    columns).

    Parameters
    ----------
    paths : str, path or list of them
        Bundle directories, downloaded hosted sessions (``vk.hosted.download``), call
        recordings, their parent directories, or globs (``"voicekit-logs/*"``). The
        ``origin`` column says which each row came from: ``"voicekit"``, ``"hosted"`` or
        ``"recording"``; hosted rows have the hosted columns too (``commit``,
        ``server_ttfa``, ``measured_from``, ...; see :func:`voicekit.load_hosted`), NaN
        elsewhere.
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
    columns = ["session_id", "started_at", "backend", "origin", "log", *TURN_COLUMNS]
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
