"""Running one function per session over many sessions: here, on a process pool, or on a
Dask cluster; logs named by local paths or by fsspec URLs (``s3://bucket/logs/*``).

Analysis layer, private. dask.distributed and fsspec belong to the ``fleet`` extra and are
imported only when a caller asks for them, with an error naming the extra when missing.
Results come back to the calling thread one by one, in completion order, tagged with their
index; the caller decides what to keep. An interrupt (Ctrl-C, a kernel interrupt) cancels
what has not started and re-raises: a pool's or cluster's running tasks finish the one item
they hold and their results are dropped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from voicekit.errors import ConfigError

ENGINES = ("local", "dask")
PARALLEL_FROM = 16  # items: below this, one process is faster than starting a pool
DASK_BATCH = 16  # items a dask task at most
FLEET_HINT = "pip install 'voicekit[fleet]'"

# what reading one log may raise for a log that is damaged or gone: a skip, not a failure
SKIPPABLE = (OSError, ValueError)


def need(module: str, what: str) -> Any:
    """Import ``module`` of the fleet extra, or fail saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module.split('.')[0]}; {FLEET_HINT}") from None


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ConfigError(
            f"engine ({engine!r}) must be one of {', '.join(map(repr, ENGINES))}", field="engine"
        )


def dask_client(client: Any) -> Any:
    """``client``, else the current default ``dask.distributed`` client, else a clear error."""
    distributed = need("distributed", "engine='dask'")
    if client is not None:
        return client
    try:
        return distributed.default_client()
    except ValueError:
        raise ConfigError(
            "engine='dask' needs a dask.distributed client and none is running; start one "
            "(from dask.distributed import Client; client = Client() for this machine's "
            "cores, or Client('tcp://scheduler:8786') for a cluster) or pass client=",
            field="client",
        ) from None


# -- where logs live ------------------------------------------------------------------------
def is_url(path: Any) -> bool:
    """A fsspec URL (``s3://...``, ``file://...``), not a local path."""
    return isinstance(path, str) and "://" in path


def find_remote(url: str) -> list[str]:
    """The logs a URL names: a bundle, a downloaded hosted session, a recording, a glob of
    them, or a directory holding them; as URLs of the same protocol, sorted."""
    from voicekit.analysis.many import RECORDING_SUFFIXES

    core = need("fsspec.core", "reading logs from a URL")
    fs, root = core.url_to_fs(url)
    matches = sorted(fs.glob(root)) if core.has_magic(root) else [root]
    found: list[str] = []
    for m in matches:
        m = m.rstrip("/")
        recording = m.lower().endswith(RECORDING_SUFFIXES) and fs.isfile(m)
        if recording or _is_log_dir(fs, m):
            found.append(m)
        elif fs.isdir(m):
            found += sorted(d.rstrip("/") for d in fs.ls(m, detail=False) if _is_log_dir(fs, d))
    return [str(fs.unstrip_protocol(m)) for m in found]


def _is_log_dir(fs: Any, path: str) -> bool:
    return bool(
        fs.exists(f"{path}/meta.json")
        or (fs.exists(f"{path}/timeline.json") and fs.exists(f"{path}/session.json"))
    )


@contextlib.contextmanager
def local_copy(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A local path to read the log at ``path`` from: the path itself, or, for a URL, a
    copy in a temporary directory removed afterwards."""
    if not is_url(path):
        yield Path(path)
        return
    core = need("fsspec.core", "reading logs from a URL")
    fs, remote = core.url_to_fs(str(path))
    tmp = tempfile.mkdtemp(prefix="voicekit-log-")
    try:
        name = remote.rstrip("/").rsplit("/", 1)[-1]
        target = Path(tmp) / name
        if fs.isdir(remote):
            target.mkdir()
            for f in fs.find(remote):
                rel = f[len(remote.rstrip("/")) + 1 :]
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f, str(target / rel))
        else:
            fs.get_file(remote, str(target))
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fingerprint(path: str | os.PathLike[str]) -> str:
    """What a log's files are now (names, sizes, modification times): changes when the log
    does. Derived copies (``*.parquet``) and hidden files are left out: making a columnar
    copy on first read does not change a bundle."""
    import hashlib

    entries: list[tuple[str, int, str]] = []
    if is_url(path):
        core = need("fsspec.core", "reading logs from a URL")
        fs, remote = core.url_to_fs(str(path))
        base = remote.rstrip("/")
        infos = fs.find(base, detail=True) if fs.isdir(base) else {base: fs.info(base)}
        for name, info in infos.items():
            stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
            entries.append((name[len(base) :], int(info.get("size") or 0), str(stamp)))
    else:
        p = Path(path)
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            if f.name.startswith(".") or f.suffix == ".parquet":
                continue  # a copy being written now may be renamed before its stat
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            name = str(f.relative_to(p)) if f != p else ""
            entries.append((name, st.st_size, str(st.st_mtime_ns)))
    kept = sorted(
        e for e in entries if not e[0].endswith(".parquet") and not Path(e[0]).name.startswith(".")
    )
    return hashlib.sha256(repr(kept).encode()).hexdigest()[:16]


# -- running ----------------------------------------------------------------------------------
def run(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    on_result: Callable[[int, Any], None],
    *,
    engine: str = "local",
    client: Any = None,
    workers: int | None = None,
) -> None:
    """``fn(item)`` for every item; ``on_result(index, value)`` in this thread as each ends.

    ``fn`` returns a value or, for an item it could not read, the exception (it never
    raises for those). ``engine="local"``: here when there are few items or
    ``workers=1``, else a process pool of ``workers`` (default: all cores);
    ``engine="dask"``: one task an item on ``client`` (see :func:`dask_client`).
    """
    check_engine(engine)
    if engine == "dask":
        _run_dask(fn, items, on_result, dask_client(client))
        return
    if workers is None:
        workers = (os.cpu_count() or 1) if len(items) >= PARALLEL_FROM else 1
    if workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            on_result(i, fn(item))
        return
    pool = concurrent.futures.ProcessPoolExecutor(workers)
    try:
        chunk = max(1, min(32, len(items) // (workers * 8)))
        futures = {
            pool.submit(_chunk, fn, list(items[i : i + chunk])): i
            for i in range(0, len(items), chunk)
        }
        for fut in concurrent.futures.as_completed(futures):
            for k, value in enumerate(fut.result()):
                on_result(futures[fut] + k, value)
    finally:  # an interrupt: nothing new starts; running chunks end with their item
        pool.shutdown(wait=False, cancel_futures=True)


def _chunk(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return [fn(item) for item in items]


def _run_dask(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    on_result: Callable[[int, Any], None],
    client: Any,
) -> None:
    """One task a batch of items (a few per worker's share, at most :data:`DASK_BATCH`):
    a task costs the scheduler and the client a round trip, which for a session read from
    its columnar copy is as long as the reading. Results are gathered as they complete."""
    import functools

    distributed = need("distributed", "engine='dask'")
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    size = max(1, min(DASK_BATCH, len(items) // (workers * 8)))
    starts = list(range(0, len(items), size))
    futures = client.map(
        functools.partial(_chunk, fn), [list(items[i : i + size]) for i in starts], pure=False
    )
    first = {f.key: i for i, f in zip(starts, futures, strict=True)}
    try:
        with client.as_current():  # as_completed looks for the current client
            done = distributed.as_completed(futures, with_results=True)
            for fut, values in done:
                for k, value in enumerate(values):
                    on_result(first[fut.key] + k, value)
                fut.release()
    finally:  # an interrupt, or on_result raised: cancel what is left
        left = [f for f in futures if not f.done()]
        if left:
            client.cancel(left, force=True)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a SIGINT (Ctrl-C, a kernel interrupt) until the block ends, then raise it: a
    block of renames is done whole or not begun. Outside the main thread, no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])
        elif caught:
            raise KeyboardInterrupt
