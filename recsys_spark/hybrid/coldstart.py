"""Cold start: lists for users with no history, and a way in for items with no interactions.

A new user is served popularity within the segments their context names (region, age band, part
of the day, weekday, and the category a current query points at): each segment's share of its
users who had the item, averaged over the segments given, so that a bestseller of the user's
region and of the hour beats one of neither. New items take a configurable share of every list's
last slots, chosen by the cosine between the user's content profile and the item's text embedding.
"""
from __future__ import annotations

import math

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.search.text import analyse

CONTEXTS = ["region", "age_band", "daypart", "weekday", "category"]
DAYPARTS = ["night", "morning", "afternoon", "evening"]   # 0-5, 6-11, 12-17, 18-23 h


def daypart(hour: Column) -> Column:
    return F.element_at(F.array(*[F.lit(d) for d in DAYPARTS]), (hour / 6).cast("int") + 1)


def context_popularity(events: DataFrame, users: DataFrame, items: DataFrame, depth: int) -> DataFrame:
    """(context, value, rank, item_idx, score) for every segment and for `all`: score = the share of
    the segment's users who had the item. events: (user_idx, item_idx, hour, weekday); users:
    (user_idx, region, age_band); items: (item_idx, category)."""
    seg = F.array(
        F.struct(F.lit("all").alias("context"), F.lit("all").alias("value")),
        F.struct(F.lit("region").alias("context"), F.col("region").alias("value")),
        F.struct(F.lit("age_band").alias("context"), F.col("age_band").alias("value")),
        F.struct(F.lit("daypart").alias("context"), daypart(F.col("hour")).alias("value")),
        F.struct(F.lit("weekday").alias("context"), F.col("weekday").cast("string").alias("value")),
        F.struct(F.lit("category").alias("context"), F.col("category").alias("value")))
    rows = (events.join(users, "user_idx", "left").join(items, "item_idx", "left")
            .select("user_idx", "item_idx", F.explode(seg).alias("s"))
            .select("user_idx", "item_idx", "s.context", "s.value").where(F.col("value").isNotNull()))
    per_item = rows.groupBy("context", "value", "item_idx").agg(F.countDistinct("user_idx").alias("n"))
    per_seg = rows.groupBy("context", "value").agg(F.countDistinct("user_idx").alias("users"))
    w = Window.partitionBy("context", "value").orderBy(F.desc("n"), "item_idx")
    return (per_item.join(per_seg, ["context", "value"])
            .withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= depth)
            .select("context", "value", "rank", "item_idx", (F.col("n") / F.col("users")).alias("score")))


def query_category(query: str, categories: list[str]) -> str | None:
    """The category whose name's stems all appear in the query, the longest name first."""
    terms = set(analyse(query))
    named = [c for c in sorted(categories, key=len, reverse=True) if analyse(c) and set(analyse(c)) <= terms]
    return named[0] if named else None


def cold_user_list(table: pd.DataFrame, context: dict[str, str], k: int) -> pd.DataFrame:
    """(item_idx, score, reason) for a user with no history. table: context_popularity's rows;
    context: any of CONTEXTS -> value (unknown keys and values are ignored, `all` always joins)."""
    given = {c: str(v) for c, v in context.items() if c in CONTEXTS and v not in (None, "")}
    wanted = [("all", "all"), *given.items()]
    mask = pd.Series(False, index=table.index)
    for c, v in wanted:
        mask |= (table["context"] == c) & (table["value"] == v)
    used = table[mask]
    segments = max(used[["context", "value"]].drop_duplicates().shape[0], 1)
    scores = (used.groupby("item_idx")["score"].sum() / segments).reset_index()
    top = scores.sort_values(["score", "item_idx"], ascending=[False, True]).head(k)
    where = " and ".join(f"{c} {v}" for c, v in given.items()) or "the shop"
    top["reason"] = f"popular with shoppers in {where}"
    top["rank"] = range(1, len(top) + 1)
    return top[["rank", "item_idx", "score", "reason"]]


def with_cold_items(recs: DataFrame, cold: DataFrame, share: float, k: int) -> DataFrame:
    """Each list's last ceil(share * k) slots go to its best cold candidates (user_idx, item_idx,
    score), the list's own items moving down and out; `cold` marks them. A user without cold
    candidates keeps the list unchanged."""
    slots = math.ceil(share * k) if share > 0 else 0
    own = recs.select("user_idx", "rank", "item_idx", "score", F.lit(False).alias("cold"))
    if slots == 0:
        return own
    w = Window.partitionBy("user_idx").orderBy(F.desc("score"), "item_idx")
    new = (cold.join(own.select("user_idx", "item_idx"), ["user_idx", "item_idx"], "left_anti")
           .withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= slots)
           .select("user_idx", (k - slots + F.col("_r")).alias("rank"), "item_idx",
                   F.col("score").cast("float"), F.lit(True).alias("cold")))
    n_new = new.groupBy("user_idx").agg(F.count("*").alias("_n"))
    kept = own.join(n_new, "user_idx", "left").where(F.col("rank") <= k - F.coalesce("_n", F.lit(0))).drop("_n")
    merged = kept.unionByName(new)
    order = Window.partitionBy("user_idx").orderBy("cold", "rank")
    return merged.withColumn("rank", F.row_number().over(order))
