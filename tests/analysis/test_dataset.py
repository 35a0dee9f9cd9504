"""export_dataset: the tables read back unchanged by DuckDB, Polars and pandas; incremental
exports; an interrupted export leaves whole partitions and the next one completes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

import voicekit as vk

from .test_metrics import Bundle, config, tone

EXAMPLES = Path(__file__).parents[2] / "notebooks" / "example-logs"
TABLES = ("turns", "barge_ins", "replies", "tool_calls", "events")


def tool_session(root: Path, sid: str, day: str, prompt: str, label: str | None = None) -> Path:
    """A session at known times: user 2.0-3.0 s; the server commits at 3.5 s; a tool call
    at 3.55 s runs 3.56-3.86 s and times out; the reply's first audio arrives at 3.6 s with
    0.1 s of lead silence, so fto = 3.7 - 3.0 = 0.7 s. No barge-in."""
    b = Bundle(root, session_id=sid)
    b.ev(0.0, "local", "session.start", backend="local")
    b.ev(0.0, "local", "config.epoch", epoch=0, config=config(600))
    b.ev(0.1, "recv", "session.ready", session_id=sid)
    b.ev(2.1, "recv", "input.speech.started")
    b.ev(3.0, "local", "user.utterance", start=2.0, end=3.0, text="weather", kind="turn", turn=0)
    b.ev(3.5, "recv", "input.speech.stopped")
    b.ev(3.55, "recv", "tool.call", call_id="c1", name="get_weather", arguments={"city": "Oslo"})
    b.ev(
        3.86, "local", "tool.exec", call_id="c1", name="get_weather", start=3.56, end=3.86, ok=False
    )
    b.ev(
        3.87,
        "send",
        "tool.result",
        call_id="c1",
        result="tool get_weather timed out after 0.3 s",
        is_error=True,
    )
    b.reply("r1", 3.52, 3.6, tone(1.0, lead=0.1), text="Sorry.")
    log = b.close()
    meta = json.loads((log.path / "meta.json").read_text())
    meta["started_at"] = f"{day}T10:00:00Z"
    meta["config"] = {"system_prompt": prompt, "output": {"voice": "ivy"}}
    if label is not None:
        meta["prompt_version"] = label
    (log.path / "meta.json").write_text(json.dumps(meta))
    return log.path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Two recorded conversations (the notebooks' example logs: the stand-in agent, a
    scripted user, a tool call, a barge-in) and two constructed sessions on other days."""
    root = tmp_path / "logs"
    for bundle in EXAMPLES.iterdir():
        shutil.copytree(bundle, root / bundle.name)
    tool_session(root, "sess_a", "2026-01-02", "be brief")
    tool_session(root, "sess_b", "2026-01-03", "be kind", label="v2")
    return root


def read(out: Path, table: str, engine: str = "duckdb") -> pd.DataFrame:
    glob = f"{out}/{table}/**/*.parquet"
    if engine == "duckdb":
        return duckdb.sql(f"select * from read_parquet('{glob}', hive_partitioning = true)").df()
    if engine == "polars":
        return pl.read_parquet(glob, hive_partitioning=True).to_pandas()
    return pd.read_parquet(out / table)


def test_the_tables_read_back_in_duckdb_polars_and_pandas(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    done = vk.export_dataset(logs, out, progress=False)
    assert len(done["written"]) == 4 and not done["skipped"]
    # every partition: one file, the table's schema, whatever the session lacked
    schemas = vk.analysis.dataset.schemas()
    for table in TABLES:
        parts = sorted((out / table).glob("date=*/session=*/part-0.parquet"))
        assert len(parts) == 4, table
        for part in parts:
            assert pq.read_schema(part).remove_metadata() == schemas[table].remove_metadata()
    for engine in ("duckdb", "polars", "pandas"):
        turns = read(out, "turns", engine)
        assert len(turns) == sum(len(vk.load_log(p).turns) for p in sorted(logs.iterdir()))
        for path in sorted(logs.iterdir()):
            log = vk.load_log(path)
            mine = turns[turns["session_id"] == log.session_id].sort_values("turn")
            assert (mine["session"].astype(str) == log.session_id).all()
            np.testing.assert_allclose(mine["fto"], log.turns["fto"])
            assert mine["text"].tolist() == log.turns["text"].tolist()
            events = read(out, "events", engine)
            assert (events["session_id"] == log.session_id).sum() == len(log.raw_events)
    a = read(out, "turns").set_index("session_id")
    assert a.loc["sess_a", "fto"] == pytest.approx(0.7)
    assert a.loc["sess_a", "tool"] == "get_weather"
    assert str(a.loc["sess_a", "date"])[:10] == "2026-01-02"  # DuckDB: a DATE
    # prompt versions: the meta's label where there is one, else a hash of the prompt
    assert a.loc["sess_b", "prompt_version"] == "v2" and a.loc["sess_b", "prompt_label"] == "v2"
    assert a.loc["sess_a", "prompt_version"] == a.loc["sess_a", "prompt_hash"]
    assert len(a.loc["sess_a", "prompt_hash"]) == 12
    assert a.loc["sess_a", "prompt_hash"] != a.loc["sess_b", "prompt_hash"]
    assert a.loc["sess_a", "voice"] == "ivy"
    calls = read(out, "tool_calls").set_index("session_id")
    assert calls.loc["sess_a", "timed_out"] and calls.loc["sess_a", "is_error"]
    assert calls.loc["sess_a", "exec_s"] == pytest.approx(0.3)
    assert json.loads(calls.loc["sess_a", "arguments"]) == {"city": "Oslo"}
    recorded = calls.drop(index=["sess_a", "sess_b"])
    assert len(recorded) == 2 and not recorded["timed_out"].any()
    # the recorded barge-ins and replies, as the per-session tables have them
    barge = read(out, "barge_ins", "polars")
    replies = read(out, "replies", "pandas")
    for path in EXAMPLES.iterdir():
        log = vk.load_log(path)
        assert (barge["session_id"] == log.session_id).sum() == len(log.barge_ins) > 0
        mine = replies[replies["session_id"] == log.session_id]
        assert mine["reply_id"].tolist() == log.replies["reply_id"].tolist()
    assert not (barge["session_id"] == "sess_a").any()


def test_a_second_export_writes_only_new_and_changed_sessions(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = vk.export_dataset(logs, out, progress=False)
    parts = {p: p.stat().st_mtime_ns for p in out.rglob("part-0.parquet")}
    tool_session(logs, "sess_c", "2026-01-03", "be kind")  # the directory grew
    second = vk.export_dataset(logs, out, progress=False)
    assert second["written"] == ["sess_c"]
    assert sorted(second["unchanged"]) == sorted(first["written"])
    assert all(p.stat().st_mtime_ns == t for p, t in parts.items())
    assert len(read(out, "turns").query("session_id == 'sess_c'")) == 1
    manifest = json.loads((out / "_manifest.json").read_text())
    assert sorted(manifest["sessions"]) == sorted([*first["written"], "sess_c"])
    # a bundle that changed is written again, its old partition replaced
    bundle = next(logs.glob("*sess_a"))
    meta = json.loads((bundle / "meta.json").read_text())
    meta["started_at"] = "2026-02-01T00:00:00Z"
    (bundle / "meta.json").write_text(json.dumps(meta))
    third = vk.export_dataset(logs, out, progress=False)
    assert third["written"] == ["sess_a"]
    days = read(out, "turns").query("session_id == 'sess_a'")["date"].astype(str).str[:10]
    assert days.tolist() == ["2026-02-01"]
    assert not list(out.glob("*/date=2026-01-02"))  # sess_a was that day's only session


def test_an_interrupted_export_leaves_whole_partitions(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vk.export_dataset(logs, out, progress=stop_after_two, workers=1)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert len(manifest["sessions"]) == 2
    assert not (out / "_staging").exists()
    for table in TABLES:  # only the finished sessions, each partition complete
        keys = {p.name.removeprefix("session=") for p in (out / table).glob("date=*/session=*")}
        assert keys == set(manifest["sessions"]), table
        for part in (out / table).glob("date=*/session=*"):
            assert [f.name for f in part.iterdir()] == ["part-0.parquet"]
            pq.read_table(part / "part-0.parquet")
    rest = vk.export_dataset(logs, out, progress=False)
    assert len(rest["written"]) == 2 and sorted(rest["unchanged"]) == sorted(manifest["sessions"])
    assert read(out, "turns")["session_id"].nunique() == 4


def test_bad_arguments_name_the_field(logs: Path, tmp_path: Path) -> None:
    with pytest.raises(vk.ConfigError, match="engine") as err:
        vk.export_dataset(logs, tmp_path / "ds", engine="spark")
    assert err.value.field == "engine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(vk.ConfigError, match="out_dir"):
        vk.export_dataset(logs, tmp_path / "file")
    with pytest.raises(vk.ConfigError, match="engine"):
        vk.load_logs(logs, engine="ray")
