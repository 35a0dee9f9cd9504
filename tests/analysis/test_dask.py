"""The dask engine on a real two-worker LocalCluster: the same turn table and dataset as the
local engine, row for row; fsspec URLs; no client; an interrupt cancels what is left."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster

import voicekit as vk

from .test_dataset import TABLES, logs, read, tool_session  # noqa: F401 - the logs fixture


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


def test_load_logs_on_dask_is_the_local_table(client: Client, logs: Path) -> None:  # noqa: F811
    local = vk.load_logs(logs, progress=False)
    assert len(local) and local["session_id"].nunique() == 4
    on_dask = vk.load_logs(logs, engine="dask", client=client, progress=False)
    pd.testing.assert_frame_equal(on_dask, local)
    # the same logs named by URL: read through fsspec (copied to each worker's temp dir)
    by_url = vk.load_logs(f"file://{logs}/*", engine="dask", client=client, progress=False)
    assert by_url["log"].str.startswith("file://").all()
    pd.testing.assert_frame_equal(by_url.drop(columns="log"), local.drop(columns="log"))
    seen: list[tuple[int, int]] = []
    vk.load_logs(logs, engine="dask", client=client, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_export_on_dask_is_the_local_dataset(client: Client, logs: Path, tmp_path: Path) -> None:  # noqa: F811
    here = vk.export_dataset(logs, tmp_path / "here", progress=False)
    there = vk.export_dataset(
        logs, tmp_path / "there", engine="dask", client=client, progress=False
    )
    assert sorted(there["written"]) == sorted(here["written"])
    for table in TABLES:
        a, b = read(tmp_path / "here", table), read(tmp_path / "there", table)
        order = [c for c in ("session_id", "t", "turn", "onset", "reply_id", "call_id") if c in a]
        a = a.sort_values(order, kind="stable").reset_index(drop=True)
        b = b.sort_values(order, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def test_an_interrupt_cancels_the_rest_and_the_next_export_completes(
    client: Client,
    logs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "ds"

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vk.export_dataset(logs, out, engine="dask", client=client, progress=stop)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert len(manifest["sessions"]) == 1 and not (out / "_staging").exists()
    for table in TABLES:
        keys = {p.name.removeprefix("session=") for p in (out / table).glob("date=*/session=*")}
        assert keys == set(manifest["sessions"])
    rest = vk.export_dataset(logs, out, engine="dask", client=client, progress=False)
    assert len(rest["written"]) == 3
    assert read(out, "turns")["session_id"].nunique() == 4


def test_without_a_client_the_error_says_how_to_start_one(logs: Path) -> None:  # noqa: F811
    with pytest.raises(vk.ConfigError, match=r"Client\(\)") as err:
        vk.load_logs(logs, engine="dask", progress=False)
    assert err.value.field == "client"
