"""Public data sets for benchmarks, loaded the way users load them: ingest and quality stages."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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


def power_law_interactions(spark: SparkSession, n_users: int, n_items: int, n_events: int) -> DataFrame:
    """(user_idx, item_idx, confidence = events) from n_events random events: users uniform,
    items power-law (a few items take most events), as in shop data. Cached."""
    events = spark.range(n_events).select(
        F.abs(F.xxhash64("id", F.lit(1)) % n_users).cast("int").alias("user_idx"),
        F.least((F.pow(F.rand(7), 3) * n_items).cast("int"), F.lit(n_items - 1)).alias("item_idx"))
    return events.groupBy("user_idx", "item_idx").agg(F.count("*").cast("float").alias("confidence")).cache()
