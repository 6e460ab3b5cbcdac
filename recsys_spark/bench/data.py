"""Public data sets for benchmarks, loaded the way users load them: ingest and quality stages."""
from __future__ import annotations

from pyspark.sql import DataFrame

from recsys_spark.config import load_config
from recsys_spark.features.idmap import extend_id_map
from recsys_spark.pipeline import run_stage
from recsys_spark.pipeline.context import Context


def load_events(dataset: str, root: str, *overrides: str) -> tuple[Context, DataFrame]:
    """silver.events of `dataset` with int user_idx / item_idx (a lakehouse under `root`)."""
    cfg = load_config(None, dataset, [f"lakehouse.root={root}", *overrides])
    ctx = Context.create(cfg)
    for stage in ("ingest", "quality"):
        run_stage(ctx, stage)
    events = ctx.lake.read("silver", "events")
    users = extend_id_map(None, events, "user_id", "user_idx")
    items = extend_id_map(None, events, "item_id", "item_idx")
    return ctx, events.join(users, "user_id").join(items, "item_id")
