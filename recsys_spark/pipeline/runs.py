"""gold.runs: what each stage run read (Delta versions) and with which config, so a run can be
reproduced by time travel, and a stage whose inputs and settings are unchanged can skip."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from pyspark.sql import functions as F

from recsys_spark.pipeline.context import Context


def utc_now() -> datetime:
    """Naive UTC, as Spark's session time zone (UTC) stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


log = logging.getLogger("recsys_spark")

SCHEMA = ("run_id string, stage string, signature string, inputs string, config string, "
          "started_at timestamp, finished_at timestamp")


def input_versions(ctx: Context, tables: list[tuple[str, str]]) -> dict[str, int | None]:
    return {f"{layer}.{t}": ctx.lake.version(layer, t) for layer, t in tables}


def signature(inputs: dict, settings: dict) -> str:
    return hashlib.sha256(json.dumps({"inputs": inputs, "settings": settings}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]


def last_run_with(ctx: Context, stage: str, sig: str) -> str | None:
    """The id of the newest run of `stage` with this signature, if any."""
    if not ctx.lake.exists("gold", "runs"):
        return None
    hit = (ctx.lake.read("gold", "runs").where((F.col("stage") == stage) & (F.col("signature") == sig))
           .orderBy(F.desc("finished_at")).select("run_id").first())
    return hit[0] if hit else None


def record_run(ctx: Context, run_id: str, stage: str, sig: str, inputs: dict, started: datetime) -> None:
    row = (run_id, stage, sig, json.dumps(inputs, sort_keys=True), json.dumps(ctx.cfg.to_dict(), sort_keys=True),
           started, utc_now())
    ctx.lake.append(ctx.spark.createDataFrame([row], SCHEMA), "gold", "runs")


def run_once(ctx: Context, stage: str, inputs: list[tuple[str, str]], settings: dict,
             body: Callable[[str], None]) -> None:
    """Run `body(run_id)` unless a finished run of `stage` read the same table versions with the
    same settings; record the run only once it has succeeded, so a killed run is simply redone."""
    started = utc_now()
    versions = input_versions(ctx, inputs)
    sig = signature(versions, settings)
    done = last_run_with(ctx, stage, sig)
    if done:
        log.info("[%s] inputs %s and settings unchanged since run %s: nothing to do", stage, versions, done)
        return
    run_id = uuid.uuid4().hex[:12]
    body(run_id)
    record_run(ctx, run_id, stage, sig, versions, started)
