"""Popularity baselines: what every personalised model must beat."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.evaluation.ranking import exclude_seen


def item_popularity(train: DataFrame, since=None) -> DataFrame:
    """(item_idx, score): distinct users per item, optionally only interactions from `since` on."""
    if since is not None:
        train = train.where(F.col("last_ts") >= F.lit(since))
    return train.groupBy("item_idx").agg(F.countDistinct("user_idx").cast("float").alias("score"))


def popularity_recs(train: DataFrame, users: DataFrame, k: int, since=None) -> DataFrame:
    """The most popular unseen items for each user. Candidates are the top k + (most items any
    user has seen) items, which is exactly enough for every user to keep k after exclusion."""
    pop = item_popularity(train, since)
    seen = train.select("user_idx", "item_idx").distinct()
    most_seen = seen.groupBy("user_idx").count().agg(F.max("count")).first()[0] or 0
    candidates = pop.orderBy(F.desc("score"), "item_idx").limit(k + most_seen)
    recs = exclude_seen(users.select("user_idx").distinct().crossJoin(F.broadcast(candidates)), seen)
    return recs.where(F.col("rank") <= k)
