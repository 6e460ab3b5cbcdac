"""gold.runs: what each stage run read (Delta table ids and versions, config values), so a run can
be reproduced by time travel, and a stage whose reads are all unchanged can skip.

Nothing is declared by hand: while a stage runs, the Lakehouse records every table it reads and
the config is wrapped so that every value the stage reads is recorded with its dotted key. The
next run of the stage compares those same reads with what they are now.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from pyspark.sql import Window
from pyspark.sql import functions as F

from recsys_spark.config import Config
from recsys_spark.pipeline.context import Context

log = logging.getLogger("recsys_spark")

SCHEMA = ("run_id string, stage string, inputs string, config_read string, config string, "
          "started_at timestamp, finished_at timestamp, outputs string")
MISSING = "<missing>"


def utc_now() -> datetime:
    """Naive UTC, as Spark's session time zone (UTC) stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def _restore(obj: Any) -> Any:
    return obj


class ConfigReads:
    """A read-only view of a config section that records each value read, by dotted key. Whole
    sections handed to code that dumps or pickles them are recorded whole."""

    def __init__(self, obj: BaseModel, path: str, reads: dict[str, Any]):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_reads", reads)

    def _record(self, path: str, value: Any) -> None:
        self._reads[path] = to_jsonable_python(value)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        path = f"{self._path}.{name}" if self._path else name
        if isinstance(value, BaseModel):
            return ConfigReads(value, path, self._reads)
        if callable(value):  # model_dump, model_copy, to_dict...: the whole section is used
            self._record(self._path or "*", self._obj)
            return value
        self._record(path, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the config is read-only while a stage runs")

    def __reduce__(self):
        """Pickled (to a Spark task or a training process) as the plain section, recorded whole."""
        self._record(self._path or "*", self._obj)
        return _restore, (self._obj,)


def digest(obj: Any) -> str:
    """A short stable hash of JSON-able data: names checkpoints and caches by what made them."""
    return hashlib.sha256(json.dumps(to_jsonable_python(obj), sort_keys=True).encode()).hexdigest()[:16]


def current_value(cfg: Config, path: str) -> Any:
    obj: Any = cfg
    if path != "*":
        for part in path.split("."):
            if not hasattr(obj, part):
                return MISSING
            obj = getattr(obj, part)
    return to_jsonable_python(obj)


def last_run(ctx: Context, stage: str) -> dict | None:
    """The newest finished run of `stage` (gold.runs row as a dict), if any."""
    if not ctx.lake.exists("gold", "runs"):
        return None
    runs = ctx.lake.read("gold", "runs")
    columns = [c for c in ("run_id", "inputs", "config_read", "outputs") if c in runs.columns]  # outputs: newer
    row = runs.where(F.col("stage") == stage).orderBy(F.desc("finished_at")).select(*columns).first()
    return row.asDict() if row else None


def changed_config(cfg: Config, config_read: str) -> dict[str, tuple[Any, Any]]:
    """The config values a run read (its config_read) that differ now: key -> (then, now)."""
    then = json.loads(config_read)
    now = {key: current_value(cfg, key) for key in then}
    return {key: (value, now[key]) for key, value in then.items() if now[key] != value}


def changed_reads(ctx: Context, run: dict) -> list[str]:
    """What the run read that is different now: table identities and config values, by name; and
    a table it only wrote that has since been dropped or rebuilt (its rows are gone)."""
    tables = json.loads(run["inputs"])
    out = [f"table {name}" for name, ident in tables.items() if ctx.lake.identity(*name.split(".")) != ident]
    out += [f"table {name} (written)" for name, ident in json.loads(run.get("outputs") or "{}").items()
            if ctx.lake.table_id(*name.split(".")) != ident]
    return out + [f"config {key}" for key in changed_config(ctx.cfg, run["config_read"])]


def stale_stages(ctx: Context, stages: list[str]) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Of `stages`, those whose last run read config values that differ now, with those values:
    the tables they wrote still follow the old ones."""
    if not stages or not ctx.lake.exists("gold", "runs"):
        return {}
    newest = Window.partitionBy("stage").orderBy(F.desc("finished_at"))
    rows = (ctx.lake.read("gold", "runs").where(F.col("stage").isin(stages))
            .withColumn("_n", F.row_number().over(newest)).where("_n = 1").select("stage", "config_read").collect())
    changed = {r["stage"]: changed_config(ctx.cfg, r["config_read"]) for r in rows}
    return {stage: changed[stage] for stage in stages if changed.get(stage)}


def run_once(ctx: Context, stage: str, body) -> None:
    """Run `body(run_id)` unless the stage's last finished run read exactly what it would read now;
    record the run only once it has succeeded, so a killed run is simply redone."""
    previous = last_run(ctx, stage)
    if previous:
        changed = changed_reads(ctx, previous)
        if not changed:
            log.info("[%s] nothing it read has changed since run %s: nothing to do", stage, previous["run_id"])
            return
        log.info("[%s] changed since run %s: %s", stage, previous["run_id"], ", ".join(changed[:5]))
    started, clock, run_id, cfg = utc_now(), time.time(), uuid.uuid4().hex[:12], ctx.cfg
    config_reads: dict[str, Any] = {}
    ctx.cfg = ConfigReads(cfg, "", config_reads)
    ctx.lake.start_recording()
    try:
        body(run_id)
    finally:
        ctx.cfg = cfg
        read, wrote = ctx.lake.stop_recording()
    # identities after the run: a table the stage both reads and writes counts as it left it; one it
    # only writes, by its id alone, since other stages write their own rows there
    tables = {name: ctx.lake.identity(*name.split(".")) for name in sorted(read)}
    outputs = {name: ctx.lake.table_id(*name.split(".")) for name in sorted(wrote - read)}
    row = (run_id, stage, json.dumps(tables, sort_keys=True), json.dumps(config_reads, sort_keys=True),
           json.dumps(cfg.to_dict(), sort_keys=True), started, utc_now(), json.dumps(outputs, sort_keys=True))
    ctx.lake.append(ctx.spark.createDataFrame([row], SCHEMA), "gold", "runs")
    if cfg.tracking.mlflow:
        from recsys_spark.tracking import log_stage_run

        log_stage_run(ctx, stage, run_id, config_reads, tables, clock)
