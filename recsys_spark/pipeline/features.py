"""features: silver -> gold id maps, splits, interactions, user/item features, sequences.

The split is made first, on events; every feature after it reads training events only.
"""
from __future__ import annotations

from pyspark.sql import functions as F

from recsys_spark.features.build import interactions, item_features, sequences, user_features, with_context
from recsys_spark.features.idmap import extend_id_map
from recsys_spark.features.split import make_split
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once

STAGE = "features"


def update_id_map(ctx: Context, kind: str, ids) -> None:
    table, id_col, idx_col = f"id_map_{kind}s", f"{kind}_id", f"{kind}_idx"
    with ctx.progress.step(STAGE, f"gold.{table}") as step:
        current = ctx.lake.read("gold", table) if ctx.lake.exists("gold", table) else None
        new = extend_id_map(current, ids, id_col, idx_col).withColumn("added_at", F.current_timestamp())
        ctx.lake.merge(new, "gold", table, [id_col], update=False)
        step.rows = ctx.lake.count("gold", table)


def write(ctx: Context, df, table: str, keys: list[str]) -> None:
    """Upsert by key and drop rows that disappeared: the result equals a rebuild, but a re-run
    on the same input rewrites nothing."""
    with ctx.progress.step(STAGE, f"gold.{table}") as step:
        ctx.lake.merge(df, "gold", table, keys, delete_missing=True)
        step.rows = ctx.lake.count("gold", table)


def run(ctx: Context) -> None:
    inputs = [("silver", t) for t in ("events", "items", "users")]
    run_once(ctx, STAGE, inputs, ctx.cfg.to_dict()["features"], lambda run_id: build(ctx))


def build(ctx: Context) -> None:
    conf = ctx.cfg.features
    lake = ctx.lake
    events = lake.read("silver", "events")
    items = lake.read("silver", "items")
    users = lake.read("silver", "users") if lake.exists("silver", "users") else None
    user_ids = events.select("user_id")
    update_id_map(ctx, "user", user_ids if users is None else user_ids.union(users.select("user_id")))
    update_id_map(ctx, "item", items.select("item_id"))
    umap, imap = lake.read("gold", "id_map_users"), lake.read("gold", "id_map_items")

    indexed = (events.join(umap.select("user_id", "user_idx"), "user_id")
               .join(imap.select("item_id", "item_idx"), "item_id"))
    split = with_context(make_split(indexed, conf.split), conf.holidays).select(
        "_key", "user_idx", "item_idx", "event_type", "ts", "session_id", "quantity", "price", "rating",
        "query", "hour", "weekday", "season", "is_holiday", "split")
    write(ctx, split, "splits", ["_key"])

    train = lake.read("gold", "splits").where(F.col("split") == "train")
    end = train.agg(F.max("ts")).first()[0]
    item_rows = items.join(imap.select("item_id", "item_idx"), "item_id").drop("_key", "_batch_id", "_source",
                                                                               "_ingested_at")
    write(ctx, interactions(train, conf, end), "interactions", ["user_idx", "item_idx"])
    feats = item_features(train, item_rows, conf, end)
    write(ctx, feats, "item_features", ["item_idx"])
    user_rows = (umap.select("user_id", "user_idx") if users is None else
                 users.select("user_id", "age_band", "gender", "region").join(umap, "user_id"))
    user_rows = user_rows.drop("added_at")
    write(ctx, user_features(train, user_rows, lake.read("gold", "item_features"), conf, end),
          "user_features", ["user_idx"])
    write(ctx, sequences(train, conf), "sequences", ["user_idx"])
