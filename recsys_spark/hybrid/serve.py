"""A user's list as a service would give it: gold.recs_final for a known user, popularity in the
user's context for anyone else (never an error for a user never seen before)."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
from pyspark.sql import functions as F

from recsys_spark.hybrid.coldstart import DAYPARTS, cold_user_list, query_category
from recsys_spark.lakehouse import Lakehouse


def user_list(lake: Lakehouse, user_id: str, k: int, context: dict[str, str] | None = None,
              query: str | None = None, now: datetime | None = None) -> pd.DataFrame:
    """(rank, item_id, title, score, reason, evidence)."""
    for table in ("recs_final", "popularity_context"):
        if not lake.exists("gold", table):
            raise LookupError(f"no gold.{table} yet: run the hybrid stage first (recsys-spark run hybrid)")
    items = lake.read("gold", "id_map_items").join(lake.read("silver", "items"), "item_id").select(
        "item_idx", "item_id", "title", "category")
    known = lake.read("gold", "id_map_users").where(F.col("user_id") == user_id).select("user_idx")
    recs = (lake.read("gold", "recs_final").join(known, "user_idx").where(F.col("rank") <= k)
            .join(items, "item_idx").select("rank", "item_id", "title", "score", "reason", "evidence")
            .orderBy("rank").toPandas())
    if len(recs):
        return recs
    now = now or datetime.now()  # weekday as Spark's dayofweek numbers it: 1 = Sunday
    context = {"daypart": DAYPARTS[now.hour // 6], "weekday": str(now.isoweekday() % 7 + 1), **(context or {})}
    if query:
        categories = [r[0] for r in items.select("category").distinct().collect() if r[0]]
        named = query_category(query, categories)
        if named:
            context["category"] = named
    table = lake.read("gold", "popularity_context").toPandas()
    cold = cold_user_list(table, context, k).merge(items.toPandas(), on="item_idx").sort_values("rank")
    cold["evidence"] = ", ".join(f"{c}={v}" for c, v in context.items())
    return cold[["rank", "item_id", "title", "score", "reason", "evidence"]]
