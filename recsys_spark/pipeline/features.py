"""features: silver -> gold id maps, splits, interactions, user/item features, sequences.

The split is made first, on events. Every history table is then built twice, one row set per
cut (column `cut`): 'tuning' from train events only (what validation scores), 'final' from
train + validation (what test scores, and what a production run with no test serves).
"""
from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame
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


CUTS = {"tuning": ["train"], "final": ["train", "validation"]}


def run(ctx: Context) -> None:
    run_once(ctx, STAGE, lambda run_id: build(ctx))


def by_cut(frames: dict[str, DataFrame]) -> DataFrame:
    """One table from one frame per cut, the cut a column."""
    tables = [df.select(F.lit(cut).alias("cut"), "*") for cut, df in frames.items()]
    return reduce(DataFrame.unionByName, tables)


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

    splits = lake.read("gold", "splits")
    history = {cut: splits.where(F.col("split").isin(*parts)) for cut, parts in CUTS.items()}
    end = {cut: df.agg(F.max("ts")).first()[0] for cut, df in history.items()}
    item_rows = items.join(imap.select("item_id", "item_idx"), "item_id").drop("_key", "_batch_id", "_source",
                                                                               "_ingested_at")
    write(ctx, by_cut({c: interactions(h, conf, end[c]) for c, h in history.items()}), "interactions",
          ["cut", "user_idx", "item_idx"])
    write(ctx, by_cut({c: item_features(h, item_rows, conf, end[c]) for c, h in history.items()}), "item_features",
          ["cut", "item_idx"])
    user_rows = (umap.select("user_id", "user_idx") if users is None else
                 users.select("user_id", "age_band", "gender", "region").join(umap, "user_id"))
    user_rows = user_rows.drop("added_at")
    item_feats = lake.read("gold", "item_features")
    write(ctx, by_cut({c: user_features(h, user_rows, item_feats.where(F.col("cut") == c).drop("cut"), conf, end[c])
                       for c, h in history.items()}), "user_features", ["cut", "user_idx"])
    write(ctx, by_cut({c: sequences(h, conf) for c, h in history.items()}), "sequences", ["cut", "user_idx"])
