"""Neighbours: similar items, similar users, and the recommendations they give.

Cosine similarity from factors reuses the blocked top-K: unit-length factors scored block by
block against the whole (broadcast) matrix, the row itself masked, so nothing is a cross join.
Co-occurrence (SAR-style) joins each user's items with themselves; capping every user to the
most recent `max_items_per_user` items bounds that block at max_items_per_user² pairs, and
`max_pairs` bounds them all: past it, the heaviest users are sampled.
"""
from __future__ import annotations

import logging

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.cf.topk import top_k_for_all_users
from recsys_spark.config import NeighboursConf, TopKConf
from recsys_spark.evaluation.ranking import exclude_seen
from recsys_spark.spark import cache_for_stage
from recsys_spark.vectors import unit_vectors

log = logging.getLogger("recsys_spark")
NEIGHBOUR_COLUMNS = ["rank", "neighbour_idx", "score"]


def factor_neighbours(factors: DataFrame, key: str, n: int, conf: TopKConf | None = None,
                      among: DataFrame | None = None) -> DataFrame:
    """(key, rank, neighbour_idx, score): the n rows of an (id, features) matrix with the highest
    cosine similarity to each row, the row itself left out. among: (key) ids, the only rows that
    get neighbours (they are still found among every row)."""
    unit = unit_vectors(factors)
    asking = unit if among is None else unit.join(among.select(F.col(key).alias("id")), "id", "left_semi")
    itself = asking.select(F.col("id").alias("user_idx"), F.col("id").alias("item_idx"))
    top = top_k_for_all_users(asking, unit, n, itself, conf)
    return top.select(F.col("user_idx").alias(key), "rank", F.col("item_idx").alias("neighbour_idx"), "score")


def _similarity(measure: str, both: Column, n_a: Column, n_b: Column) -> Column:
    if measure == "jaccard":
        return both / (n_a + n_b - both)
    if measure == "lift":
        return both / (n_a * n_b)
    raise ValueError(f"unknown co-occurrence measure {measure!r}; use jaccard or lift")


def bounded_baskets(basket: DataFrame, max_pairs: int) -> DataFrame:
    """(user_idx, item_idx) of the users whose item pairs (m x (m - 1) for m items) fit in
    max_pairs: every user up to the basket size where the budget would run out, then each heavier
    user with the probability that fills the rest, picked by a hash of the user so re-runs agree.
    Basket sizes are capped, so their histogram is small enough to plan on the driver."""
    sizes = basket.groupBy("user_idx").agg(F.count("*").alias("m"))
    hist = sorted((r[0], r[1]) for r in sizes.groupBy("m").count().collect())
    if sum(users * m * (m - 1) for m, users in hist) <= max_pairs:
        return basket
    kept, limit = 0, 0
    for m, users in hist:
        if kept + users * m * (m - 1) > max_pairs:
            break
        kept, limit = kept + users * m * (m - 1), m
    heavy = sum(users * m * (m - 1) for m, users in hist if m > limit)
    share = (max_pairs - kept) / heavy
    log.info("co-occurrence: %d pairs over the budget of %d; users with more than %d items kept with "
             "probability %.3f", kept + heavy, max_pairs, limit, share)
    draw = F.abs(F.xxhash64("user_idx")) % 1_000_000 / 1_000_000
    keep = sizes.where((F.col("m") <= limit) | (draw < share)).select("user_idx")
    return basket.join(keep, "user_idx")


def cooccurrence_neighbours(interactions: DataFrame, conf: NeighboursConf) -> DataFrame:
    """(item_idx, rank, neighbour_idx, score) from the users two items share ('bought together').
    Pairs shared by fewer than `min_count` users are noise and dropped."""
    recent = Window.partitionBy("user_idx").orderBy(F.desc("last_ts"), "item_idx")
    basket = (interactions.withColumn("_r", F.row_number().over(recent))
              .where(F.col("_r") <= conf.max_items_per_user).select("user_idx", "item_idx"))
    basket = bounded_baskets(cache_for_stage(basket), conf.max_pairs)
    users_per_item = basket.groupBy("item_idx").agg(F.count("*").alias("n"))
    a, b = basket.alias("a"), basket.alias("b")
    pairs = (a.join(b, "user_idx").where(F.col("a.item_idx") != F.col("b.item_idx"))
             .groupBy(F.col("a.item_idx").alias("item_idx"), F.col("b.item_idx").alias("neighbour_idx"))
             .agg(F.count("*").alias("both")).where(F.col("both") >= conf.min_count))
    n_a = users_per_item.select("item_idx", F.col("n").alias("n_a"))
    n_b = users_per_item.select(F.col("item_idx").alias("neighbour_idx"), F.col("n").alias("n_b"))
    scored = pairs.join(n_a, "item_idx").join(n_b, "neighbour_idx").withColumn(
        "score", _similarity(conf.measure, F.col("both"), F.col("n_a"), F.col("n_b")).cast("float"))
    best = Window.partitionBy("item_idx").orderBy(F.desc("score"), "neighbour_idx")
    top = scored.withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= conf.n)
    return top.select("item_idx", *NEIGHBOUR_COLUMNS)


def _top_scored(scores: DataFrame, seen: DataFrame, k: int) -> DataFrame:
    recs = exclude_seen(scores, seen.select("user_idx", "item_idx"))
    return recs.where(F.col("rank") <= k).select("user_idx", "rank", "item_idx", "score")


def item_based_recs(seen: DataFrame, item_neighbours: DataFrame, k: int, weight: str = "confidence") -> DataFrame:
    """A user's unseen items scored by the similarity to what they had, weighted by their affinity
    (SAR: affinity x item similarity)."""
    scores = (seen.select("user_idx", "item_idx", weight).join(item_neighbours, "item_idx")
              .groupBy("user_idx", F.col("neighbour_idx").alias("item_idx"))
              .agg(F.sum(F.col(weight) * F.col("score")).cast("float").alias("score")))
    return _top_scored(scores, seen, k)


def user_based_recs(seen: DataFrame, user_neighbours: DataFrame, k: int) -> DataFrame:
    """A user's unseen items scored by the summed similarity of the nearest users who had them."""
    theirs = seen.select(F.col("user_idx").alias("neighbour_idx"), "item_idx")
    scores = (user_neighbours.join(theirs, "neighbour_idx").groupBy("user_idx", "item_idx")
              .agg(F.sum("score").cast("float").alias("score")))
    return _top_scored(scores, seen, k)


def transition_recs(sequences: DataFrame, seen: DataFrame, k: int, last: int = 3,
                    users: DataFrame | None = None) -> DataFrame:
    """Items scored by how often they came right after the user's last `last` items in everyone's
    training sequences, the latest item weighing most (1, 1/2, 1/3...): the first-order baseline a
    next-item model has to beat to show it learned more than the last step. users: only these
    users' lists."""
    items = F.filter("items", lambda x: x > 0)
    hist = sequences.select("user_idx", items.alias("items")).where(F.size("items") > 0)
    steps = hist.select(F.explode(F.arrays_zip(F.slice("items", 1, F.size("items") - 1).alias("prev"),
                                               F.slice("items", 2, F.size("items") - 1).alias("next"))).alias("s"))
    counts = steps.groupBy(F.col("s.prev").alias("prev"), F.col("s.next").alias("item_idx")).count()
    mine = hist if users is None else hist.join(users.select("user_idx"), "user_idx", "left_semi")
    recent = mine.select("user_idx", F.posexplode(F.slice(F.reverse("items"), 1, last)).alias("pos", "prev"))
    scores = (recent.join(counts, "prev").groupBy("user_idx", "item_idx")
              .agg(F.sum(F.col("count") / (F.col("pos") + 1)).cast("float").alias("score")))
    return _top_scored(scores, seen, k)
