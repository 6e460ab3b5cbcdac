"""maintain: OPTIMIZE and VACUUM every table.

Append-per-batch tables collect small files; compaction keeps them fast to read, and VACUUM
deletes the files no version younger than `lakehouse.vacuum_hours` needs. Neither changes a row,
so the stages that read a maintained table do not run again (see Lakehouse.identity).
"""
from __future__ import annotations

import logging

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
    for layer, tables in TABLES.items():
        for table in tables:
            if not ctx.lake.exists(layer, table):
                continue
            with ctx.progress.step(STAGE, f"{layer}.{table}"):
                files = ctx.lake.maintain(layer, table, hours)
            if files["files_removed"]:
                log.info("[%s] %s.%s: %d files compacted into %d", STAGE, layer, table, files["files_removed"],
                         files["files_added"])
