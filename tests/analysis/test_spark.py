"""The exported dataset read unchanged by Apache Spark (a local Spark session on this
machine's JVM): every table, its partition columns, and a SQL answer DuckDB gives too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from pyspark.sql import SparkSession

import voicekit as vk

from .test_dataset import TABLES, logs  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("voicekit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_reads_every_table_and_agrees_with_duckdb(
    spark: SparkSession,
    logs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "ds"
    vk.export_dataset(logs, out, progress=False)
    schemas = vk.analysis.dataset.schemas()
    for table in TABLES:
        df = spark.read.parquet(str(out / table))  # partition discovery: date=, session=
        assert df.columns == [*schemas[table].names, "date", "session"], table
        direct = duckdb.sql(
            f"select count(*) from read_parquet('{out}/{table}/**/*.parquet')"
        ).fetchall()
        assert df.count() == direct[0][0], table
    spark.read.parquet(str(out / "turns")).createOrReplaceTempView("turns")
    rows = spark.sql(
        "select session_id, cast(date as string) as day, percentile(fto, 0.9) as p90, "
        "count(*) as n from turns group by session_id, date order by session_id"
    ).collect()
    ours = duckdb.sql(
        f"select session_id, quantile_cont(fto, 0.9) as p90, count(*) as n "
        f"from read_parquet('{out}/turns/**/*.parquet') group by session_id order by session_id"
    ).fetchall()
    assert [r["session_id"] for r in rows] == [r[0] for r in ours]
    np.testing.assert_allclose([r["p90"] for r in rows], [r[1] for r in ours])
    assert [r["n"] for r in rows] == [r[2] for r in ours]
    days = {r["session_id"]: r["day"] for r in rows}
    assert days["sess_a"] == "2026-01-02" and days["sess_b"] == "2026-01-03"
    for path in sorted(logs.iterdir()):  # row for row, the local turn table's fto
        log = vk.load_log(path)
        mine = (
            spark.read.parquet(str(out / "turns"))
            .where(f"session_id = '{log.session_id}'")
            .orderBy("turn")
            .select("fto")
            .collect()  # rows, not toPandas(): pyspark warns about pandas 3
        )
        np.testing.assert_allclose([r["fto"] for r in mine], log.turns["fto"])
