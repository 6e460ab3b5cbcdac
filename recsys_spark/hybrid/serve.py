"""A user's list as a service would give it: gold.recs_final for a known user, popularity in the
user's context for anyone else (never an error for a user never seen before). Reads only the
user's rows, as pandas (lakehouse.frame), so a local lakehouse answers without Spark."""
from __future__ import annotations

from datetime import datetime

import pandas as pd

from recsys_spark.hybrid.coldstart import DAYPARTS, cold_user_list, query_category
from recsys_spark.lakehouse import Tables

COLUMNS = ["rank", "item_id", "title", "score", "reason", "evidence"]


def user_list(lake: Tables, user_id: str, k: int, context: dict[str, str] | None = None,
              query: str | None = None, now: datetime | None = None) -> pd.DataFrame:
    """(rank, item_id, title, score, reason, evidence)."""
    if k < 1:
        raise ValueError(f"k={k}: ask for at least 1 recommendation")
    for table in ("recs_final", "popularity_context"):
        if not lake.exists("gold", table):
            raise LookupError(f"no gold.{table} yet: run the hybrid stage first (recsys-spark run hybrid)")
    items = lake.frame("gold", "id_map_items", ["item_idx", "item_id"]).merge(
        lake.frame("silver", "items", ["item_id", "title", "category"]), on="item_id")
    known = lake.frame("gold", "id_map_users", ["user_idx"], [("user_id", "=", user_id)])["user_idx"].tolist()
    if known:
        recs = lake.frame("gold", "recs_final", ["item_idx", "rank", "score", "reason", "evidence"],
                          [("user_idx", "in", known), ("rank", "<=", k)])
        if len(recs):
            return recs.merge(items, on="item_idx").sort_values("rank")[COLUMNS].reset_index(drop=True)
    now = now or datetime.now()  # weekday as Spark's dayofweek numbers it: 1 = Sunday
    context = {"daypart": DAYPARTS[now.hour // 6], "weekday": str(now.isoweekday() % 7 + 1), **(context or {})}
    if query:
        named = query_category(query, sorted(items["category"].dropna().unique().tolist()))
        if named:
            context["category"] = named
    cold = (cold_user_list(lake.frame("gold", "popularity_context"), context, k)
            .merge(items[["item_idx", "item_id", "title"]], on="item_idx").sort_values("rank"))
    cold["evidence"] = ", ".join(f"{c}={v}" for c, v in context.items())
    return cold[COLUMNS].reset_index(drop=True)
