"""maintain: OPTIMIZE and VACUUM every table.

Append-per-batch tables collect small files; compaction keeps them fast to read, and VACUUM
deletes the files no version younger than `lakehouse.vacuum_hours` needs. Neither changes a row,
so the stages that read a maintained table do not run again (see Lakehouse.identity).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from pyspark.sql import SparkSession

from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once

log = logging.getLogger("recsys_spark")
STAGE = "maintain"
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


def maintain(ctx: Context) -> None:
    run_once(ctx, STAGE, lambda run_id: _maintain(ctx))


def _maintain(ctx: Context) -> None:
    from recsys_spark.pipeline import TABLES

    hours = ctx.cfg.lakehouse.vacuum_hours
    tables = [(layer, table) for layer, names in TABLES.items() for table in names if ctx.lake.exists(layer, table)]

    def one(layer: str, table: str) -> dict[str, int]:
        with ctx.progress.step(STAGE, f"{layer}.{table}"):   # each thread names its own Spark jobs
            return ctx.lake.maintain(layer, table, hours)

    # One table's OPTIMIZE and VACUUM are a string of small jobs, mostly driver-side waits: a few
    # tables at once keep the cores busy (different tables never conflict).
    with retention_check(ctx.spark, hours >= 168), ThreadPoolExecutor(ctx.cfg.lakehouse.maintain_threads) as pool:
        done = list(pool.map(lambda t: one(*t), tables))
        for (layer, table), files in zip(tables, done, strict=True):
            if files["files_removed"]:
                log.info("[%s] %s.%s: %d files compacted into %d", STAGE, layer, table, files["files_removed"],
                         files["files_added"])


@contextmanager
def retention_check(spark: SparkSession, enabled: bool) -> Iterator[None]:
    """Delta refuses to VACUUM with under 7 days' retention unless the session says otherwise; the
    config asking for less says so for this stage only, and the session's own setting comes back
    after it (a notebook's later VACUUM keeps its safety check)."""
    before = spark.conf.get(RETENTION_CHECK, None)
    if not enabled:
        spark.conf.set(RETENTION_CHECK, "false")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(RETENTION_CHECK)
        else:
            spark.conf.set(RETENTION_CHECK, before)
