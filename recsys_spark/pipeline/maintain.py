"""maintain: OPTIMIZE and VACUUM every table.

Append-per-batch tables collect small files; compaction keeps them fast to read, and VACUUM
deletes the files no version younger than `lakehouse.vacuum_hours` needs. Neither changes a row,
so the stages that read a maintained table do not run again (see Lakehouse.identity).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

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
    if hours < 168:   # Delta refuses a shorter retention unless told: the config says so explicitly
        ctx.spark.conf.set(RETENTION_CHECK, "false")
    tables = [(layer, table) for layer, names in TABLES.items() for table in names if ctx.lake.exists(layer, table)]

    def one(layer: str, table: str) -> dict[str, int]:
        with ctx.progress.step(STAGE, f"{layer}.{table}"):   # each thread names its own Spark jobs
            return ctx.lake.maintain(layer, table, hours)

    # One table's OPTIMIZE and VACUUM are a string of small jobs, mostly driver-side waits: a few
    # tables at once keep the cores busy (different tables never conflict).
    with ThreadPoolExecutor(ctx.cfg.lakehouse.maintain_threads) as pool:
        done = pool.map(lambda t: one(*t), tables)
        for (layer, table), files in zip(tables, done, strict=True):
            if files["files_removed"]:
                log.info("[%s] %s.%s: %d files compacted into %d", STAGE, layer, table, files["files_removed"],
                         files["files_added"])
