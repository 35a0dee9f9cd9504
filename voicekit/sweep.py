"""Sweeps: the same scripted conversation run under every config of a grid.

Runtime layer: runs sessions (:class:`voicekit.Session`) with scripted users
(:mod:`voicekit.scripted`), against the embedded stand-in agent unless told otherwise, and
returns their turn tables as one DataFrame for :func:`voicekit.plot_sweep`. Module level
imports only the standard library and ``voicekit.errors`` (``vk.sweep`` is bound eagerly, so
this module stays cheap); pandas, tqdm, the session and the protocol are imported by
:func:`sweep`. Never imports analysis or widgets.

Threading: runs go to a thread pool of ``parallel`` workers; each session has its own loop
thread.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from voicekit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["sweep"]

SESSION_KEYS = ("voice", "transcription_mode")  # grid keys that are session fields


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
        ``interrupt_response``) or session fields (``voice``, ``transcription_mode``), each
        with the values to try; every combination is run. Turn-detection fields left out
        are unset (the agent's own end of turn: on the hosted service and the stand-in
        agent's hosted profile, adaptive by ``transcription_mode``).
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
    import concurrent.futures

    import pandas as pd

    from voicekit.protocol import SessionConfig, TurnDetection
    from voicekit.scripted import ScriptedUser
    from voicekit.session import Session

    if not isinstance(user, ScriptedUser):
        raise ConfigError(
            f"user must be a vk.ScriptedUser, not {type(user).__name__}", field="user"
        )
    known = {"vad_threshold", "min_silence", "max_silence", "interrupt_response", *SESSION_KEYS}
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
        TurnDetection(**{k: v for k, v in combo.items() if k not in SESSION_KEYS})
        if "transcription_mode" in combo:
            SessionConfig(transcription_mode=combo["transcription_mode"])
    jobs = [(i, combo, r) for i, combo in enumerate(combos) for r in range(repeats)]
    bar = _progress(len(jobs), progress, "runs")

    def run(job: tuple[int, dict[str, Any], int]) -> Any:
        index, combo, rep = job
        td = {k: v for k, v in combo.items() if k not in SESSION_KEYS}
        kwargs = dict(session_kwargs)
        kwargs.update({k: v for k, v in combo.items() if k in SESSION_KEYS})
        s = Session(
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
