"""Popularity baselines: what every personalised model must beat."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType

from recsys_spark.evaluation.ranking import exclude_seen


def item_popularity(train: DataFrame, since=None) -> DataFrame:
    """(item_idx, score): distinct users per item, optionally only interactions from `since` on."""
    if since is not None:
        train = train.where(F.col("last_ts") >= F.lit(since))
    return train.groupBy("item_idx").agg(F.countDistinct("user_idx").cast("float").alias("score"))


def popularity_recs(train: DataFrame, users: DataFrame, k: int, since=None) -> DataFrame:
    """The most popular unseen items for each user. Candidates are the top k + (most items any
    user has seen) items, which is exactly enough for every user to keep k after exclusion. A user's
    list is the first k candidate positions not among their seen ones: only seen pairs are joined
    with the candidates, never every user with every candidate."""
    pop = item_popularity(train, since)
    seen = train.select("user_idx", "item_idx").distinct()
    most_seen = seen.groupBy("user_idx").count().agg(F.max("count")).first()[0] or 0
    order = [F.desc("score"), F.asc("item_idx")]
    # k + most_seen rows, collected once: built on the driver, the two joins below share them
    # without a cache that nothing could release
    top = pop.orderBy(*order).limit(k + most_seen).collect()
    schema = StructType([*pop.schema.fields, StructField("_pos", IntegerType())])
    candidates = train.sparkSession.createDataFrame([(*row, pos) for pos, row in enumerate(top)], schema)
    hits = (seen.join(F.broadcast(candidates.select("item_idx", "_pos")), "item_idx")
            .groupBy("user_idx").agg(F.collect_list("_pos").alias("_hit")))
    hit = F.coalesce(F.col("_hit"), F.array().cast("array<int>"))
    # positions past the last candidate come last and find no candidate in the join below
    free = F.filter(F.sequence(F.lit(0), F.size(hit) + k - 1), lambda p: ~F.array_contains(hit, p))
    picked = (users.select("user_idx").distinct().join(hits, "user_idx", "left")
              .select("user_idx", F.posexplode(F.slice(free, 1, k)).alias("_r", "_pos")))
    return picked.join(F.broadcast(candidates), "_pos").select(
        "user_idx", "item_idx", "score", (F.col("_r") + 1).alias("rank"))


def category_popularity_recs(train: DataFrame, item_category: DataFrame, users: DataFrame, k: int,
                             top_categories: int = 3) -> DataFrame:
    """The most popular unseen items of the categories a user uses most: score = the user's share
    of items in the category x the item's distinct users. Users without history get none (global
    popularity serves them)."""
    seen = train.select("user_idx", "item_idx").distinct()
    cats = item_category.select("item_idx", "category").where(F.col("category").isNotNull())
    per_cat = seen.join(cats, "item_idx").groupBy("user_idx", "category").agg(F.count("*").alias("n"))
    by_user = Window.partitionBy("user_idx")
    shares = (per_cat.join(users.select("user_idx").distinct(), "user_idx")
              .withColumn("share", F.col("n") / F.sum("n").over(by_user))
              .withColumn("_r", F.row_number().over(by_user.orderBy(F.desc("n"), "category")))
              .where(F.col("_r") <= top_categories))
    # enough candidates per category that its heaviest user still keeps k after exclusion
    depth = per_cat.groupBy("category").agg((F.max("n") + k).alias("depth"))
    in_cat = Window.partitionBy("category").orderBy(F.desc("score"), "item_idx")
    candidates = (item_popularity(train).join(cats, "item_idx").join(depth, "category")
                  .withColumn("_r", F.row_number().over(in_cat)).where(F.col("_r") <= F.col("depth")))
    scored = shares.join(candidates.select("category", "item_idx", F.col("score").alias("pop")), "category")
    recs = exclude_seen(scored.select("user_idx", "item_idx", (F.col("share") * F.col("pop")).cast("float")
                                      .alias("score")), seen)
    return recs.where(F.col("rank") <= k)
