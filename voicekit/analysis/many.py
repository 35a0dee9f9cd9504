"""Many log bundles at once: one turn table of many sessions.

Analysis layer: reads bundles with :mod:`voicekit.logformat` (pandas and tqdm imported when
first needed); never starts a session. Running a sweep of sessions is the runtime's
:mod:`voicekit.sweep`; its table is plotted here by :func:`voicekit.plot_sweep`.
"""

from __future__ import annotations

import contextlib
import glob as globmod
import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import LogFormatError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["find_any", "find_logs", "load_logs", "open_log"]


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


def find_any(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Path | str]:
    """:func:`find_logs` for local paths, and the logs fsspec URLs name (``s3://...``,
    ``file://...``; kept as URLs: who reads one copies it first)."""
    from voicekit.analysis._fleet import find_remote, is_url

    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path | str] = []
    for item in items:
        if is_url(item):
            found += find_remote(str(item))
        else:
            found += find_logs(item)
    return found


SESSION_COLUMNS = ("session_id", "started_at", "backend", "origin", "log")


Columns = dict[str, list[Any]]


def _one(path: Path | str) -> tuple[Columns, tuple[Any, ...], list[str]] | BaseException:
    """Turn table of one log as lists (column name -> values), its :data:`SESSION_COLUMNS`
    values and the warnings it raised; the exception instead when the log cannot be read.
    (The caller makes one data frame of all the logs' lists: per log, making a frame, sending
    it between processes and joining it cost more than reading the log's columnar copy.)"""
    from voicekit.analysis._fleet import SKIPPABLE, local_copy
    from voicekit.analysis.metrics import turn_columns

    try:
        with warnings.catch_warnings(record=True) as caught, local_copy(path) as local:
            warnings.simplefilter("always")
            log, origin = open_log(local)
            # a downloaded hosted session's table has the server's columns too
            columns = log.turns.to_dict("list") if origin == "hosted" else turn_columns(log)
    except (LogFormatError, *SKIPPABLE) as exc:
        return exc
    session = (log.session_id, log.started_at, log.backend, origin, str(path))
    return columns, session, [str(w.message) for w in caught]


def load_logs(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = "voicekit-logs",
    progress: bool | Callable[[int, int], None] = True,
    workers: int | None = None,
    engine: str = "local",
    client: Any = None,
) -> pd.DataFrame:
    """One turn table of many sessions (session id, start time, backend, origin, log path
    columns).

    Parameters
    ----------
    paths : str, path or list of them
        Bundle directories, downloaded hosted sessions (``vk.hosted.download``), call
        recordings, their parent directories, or globs (``"voicekit-logs/*"``); or fsspec
        URLs of them (``"s3://bucket/logs/*"``; each log is copied to a temporary
        directory where it is read). The ``origin`` column says which each row came
        from: ``"voicekit"``, ``"hosted"`` or ``"recording"``; hosted rows have the hosted
        columns too (``commit``, ``server_ttfa``, ``measured_from``, ...; see
        :func:`voicekit.load_hosted`), NaN elsewhere.
    progress : bool or callable
        Show a progress bar (tqdm: a widget in notebooks, text in terminals); or a
        function called as ``progress(done, total)`` after each log instead.
    workers : int, optional
        ``engine="local"``: processes to use; default: all cores when there are many
        logs, else one.
    engine : {"local", "dask"}
        ``"dask"``: read each log as a task on a ``dask.distributed`` cluster (``client``,
        else the current default client); the table is the same as the local engine's,
        row for row. Needs ``pip install 'voicekit[fleet]'``.
    client : dask.distributed.Client, optional
        The cluster's client for ``engine="dask"``.

    Notes
    -----
    A bundle that cannot be read is skipped with a warning naming it; damaged lines inside
    a bundle are skipped with a warning as :func:`voicekit.load_log` does. An interrupt
    (Ctrl-C, interrupting the kernel) cancels the logs not yet read, on either engine.
    """
    import numpy as np
    import pandas as pd

    from voicekit.analysis._fleet import check_engine, run
    from voicekit.analysis.metrics import TURN_COLUMNS

    check_engine(engine)
    bundles = find_any(paths)
    tables: dict[int, tuple[Columns, tuple[Any, ...]]] = {}
    with progress_of(len(bundles), progress, "logs") as step:

        def collect(i: int, result: tuple[Any, tuple[Any, ...], list[str]] | BaseException) -> None:
            if isinstance(result, BaseException):
                warnings.warn(f"{bundles[i]}: skipped ({result})", stacklevel=4)
            else:
                tables[i] = result[:2]
                for message in result[2]:
                    warnings.warn(message, stacklevel=4)
            step()

        run(_one, bundles, collect, engine=engine, client=client, workers=workers)
    ordered = [tables[i] for i in sorted(tables)]  # bundle order, whichever ended first
    names = dict.fromkeys(TURN_COLUMNS)  # then the hosted columns, as first met
    for columns, _ in ordered:
        names.update(dict.fromkeys(columns))
    lengths = [len(columns["turn"]) for columns, _ in ordered]
    joined: dict[str, Any] = {}
    for k, name in enumerate(SESSION_COLUMNS):
        values = np.array([session[k] for _, session in ordered], dtype=object)
        joined[name] = pd.Series(np.repeat(values, lengths), dtype="str")
    for name in names:
        joined[name] = [
            v
            for (columns, _), n in zip(ordered, lengths, strict=True)
            for v in columns.get(name, itertools.repeat(None, n))
        ]
    df = pd.DataFrame(joined)
    out: pd.DataFrame = df.sort_values(["started_at", "turn"], kind="stable")
    return out.reset_index(drop=True)


@contextlib.contextmanager
def progress_of(
    total: int, progress: bool | Callable[[int, int], None] | None, unit: str
) -> Iterator[Callable[[], None]]:
    """A ``step()`` to call once an item is done: it moves a tqdm bar (``progress`` True),
    calls ``progress(done, total)`` (a callable), or does nothing (False)."""
    done = 0
    if callable(progress):
        report = progress

        def step() -> None:
            nonlocal done
            done += 1
            report(done, total)

        yield step
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, disable=progress is False, unit=unit, leave=False)
    try:
        yield lambda: bar.update(1)
    finally:
        bar.close()
