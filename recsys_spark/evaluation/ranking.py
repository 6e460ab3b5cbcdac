"""Ranking and beyond-accuracy metrics in Spark, for every model's top-K lists.

Conventions (those of the b1 benchmark, Microsoft Recommenders' protocol): binary relevance;
NDCG with a log2 discount and the ideal DCG over min(k, #relevant); MAP sums precision at each hit
and divides by #relevant; users are those with at least one relevant item, and a user without
recommendations scores zero.
"""
from __future__ import annotations

import math
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.vectors import unit_vectors

RANKING = ["precision", "recall", "ndcg", "map", "hit_rate", "mrr"]


def ranking_metrics(recs: DataFrame, truth: DataFrame, k: int, user: str = "user_idx",
                    item: str = "item_idx", rank: str = "rank") -> dict[str, float]:
    """recs: (user, item, rank from 1); truth: (user, item) relevant pairs."""
    return _one(ranking_metrics_by(_whole(recs), truth, k, ALL, user, item, rank), dict.fromkeys(RANKING, 0.0))


def ranking_metrics_by(recs: DataFrame, truth: DataFrame, k: int, by: str, user: str = "user_idx",
                       item: str = "item_idx", rank: str = "rank") -> dict[Any, dict[str, float]]:
    """ranking_metrics of each value of column `by` (a model) in one pass: every relevant user
    counts in every group, as a miss where the group has no list for them."""
    top = recs.where(F.col(rank) <= k).select(by, user, item, rank)
    rel = truth.select(user, item).distinct()
    n_rel = rel.groupBy(user).agg(F.count("*").alias("n_rel"))
    hits = top.join(rel, [user, item])
    w = Window.partitionBy(by, user).orderBy(rank)
    hits = hits.withColumn("hits_so_far", F.row_number().over(w))
    per_hit = hits.groupBy(by, user).agg(
        F.count("*").alias("hits"),
        F.sum(1.0 / F.log2(F.col(rank) + 1.0)).alias("dcg"),
        F.sum(F.col("hits_so_far") / F.col(rank)).alias("ap_sum"),
        F.min(rank).alias("first_hit"),
    )
    idcg = F.element_at(F.array(*[F.lit(sum(1.0 / math.log2(i + 2) for i in range(j + 1))) for j in range(k)]),
                        F.least(F.col("n_rel"), F.lit(k)).cast("int"))
    groups = F.broadcast(recs.select(by).distinct())
    per_user = (n_rel.crossJoin(groups).join(per_hit, [by, user], "left").fillna(0, ["hits", "dcg", "ap_sum"])
                .select(by,
                        (F.col("hits") / k).alias("precision"),
                        (F.col("hits") / F.col("n_rel")).alias("recall"),
                        (F.col("dcg") / idcg).alias("ndcg"),
                        (F.col("ap_sum") / F.col("n_rel")).alias("map"),
                        (F.col("hits") > 0).cast("double").alias("hit_rate"),
                        F.coalesce(1.0 / F.col("first_hit"), F.lit(0.0)).alias("mrr")))
    rows = per_user.groupBy(by).agg(*[F.avg(m).alias(m) for m in RANKING]).collect()
    return {r[by]: {m: float(r[m] or 0.0) for m in RANKING} for r in rows}


def coverage(recs: DataFrame, n_items: int, k: int, item: str = "item_idx", rank: str = "rank") -> float:
    """Share of the catalog that appears in anyone's top k."""
    return _one(coverage_by(_whole(recs), n_items, k, ALL, item, rank), 0.0)


def coverage_by(recs: DataFrame, n_items: int, k: int, by: str, item: str = "item_idx",
                rank: str = "rank") -> dict[Any, float]:
    counts = recs.where(F.col(rank) <= k).select(by, item).distinct().groupBy(by).count().collect()
    return {r[by]: r["count"] / n_items for r in counts}


def novelty(recs: DataFrame, train: DataFrame, k: int, user: str = "user_idx", item: str = "item_idx",
            rank: str = "rank") -> float:
    """Mean self-information -log2(share of training users who had the item) of recommended items;
    items nobody had count as seen by one user."""
    return _one(novelty_by(_whole(recs), train, k, ALL, user, item, rank), 0.0)


def novelty_by(recs: DataFrame, train: DataFrame, k: int, by: str, user: str = "user_idx",
               item: str = "item_idx", rank: str = "rank") -> dict[Any, float]:
    n_users = train.select(user).distinct().count()
    pop = train.groupBy(item).agg(F.countDistinct(user).alias("n"))
    top = recs.where(F.col(rank) <= k).join(pop, item, "left")
    info = -F.log2(F.coalesce(F.col("n"), F.lit(1)) / F.lit(n_users))
    return _averages(top, by, info)


def diversity(recs: DataFrame, item_category: DataFrame, k: int, user: str = "user_idx",
              item: str = "item_idx", rank: str = "rank") -> float:
    """Intra-list diversity by category: the share of pairs in a user's top k whose categories differ."""
    return _one(diversity_by(_whole(recs), item_category, k, ALL, user, item, rank), 0.0)


def diversity_by(recs: DataFrame, item_category: DataFrame, k: int, by: str, user: str = "user_idx",
                 item: str = "item_idx", rank: str = "rank") -> dict[Any, float]:
    top = recs.where(F.col(rank) <= k).join(item_category.select(item, "category"), item)
    per_cat = top.groupBy(by, user, "category").agg(F.count("*").alias("c"))
    per_user = per_cat.groupBy(by, user).agg(F.sum("c").alias("n"),
                                              F.sum(F.col("c") * (F.col("c") - 1) / 2).alias("same"))
    ild = 1.0 - F.col("same") / (F.col("n") * (F.col("n") - 1) / 2)
    return _averages(per_user.where(F.col("n") > 1), by, ild)


def embedding_diversity(recs: DataFrame, item_vectors: DataFrame, k: int, user: str = "user_idx",
                        item: str = "item_idx", rank: str = "rank") -> float:
    """Intra-list diversity by embedding: the mean cosine distance over the pairs of a user's top k.
    With unit vectors, the n(n-1) ordered pairs' cosines sum to |sum of vectors|^2 - n, so no
    pairwise join is needed. item_vectors: (item, features)."""
    return _one(embedding_diversity_by(_whole(recs), item_vectors, k, ALL, user, item, rank), 0.0)


def embedding_diversity_by(recs: DataFrame, item_vectors: DataFrame, k: int, by: str, user: str = "user_idx",
                           item: str = "item_idx", rank: str = "rank") -> dict[Any, float]:
    unit = unit_vectors(item_vectors.select(item, "features"))
    top = recs.where(F.col(rank) <= k).join(unit, item)
    sums = (top.select(by, user, F.posexplode("features").alias("d", "x")).groupBy(by, user, "d")
            .agg(F.sum("x").alias("s")))
    sq = sums.groupBy(by, user).agg(F.sum(F.col("s") * F.col("s")).alias("sq"))
    n = top.groupBy(by, user).agg(F.count("*").alias("n")).where(F.col("n") > 1)
    ild = 1.0 - (F.col("sq") - F.col("n")) / (F.col("n") * (F.col("n") - 1))
    return _averages(n.join(sq, [by, user]), by, ild)


def rating_errors(pred: DataFrame, label: str = "rating", prediction: str = "prediction") -> dict[str, float]:
    row = pred.agg(F.sqrt(F.avg(F.pow(F.col(label) - F.col(prediction), 2))).alias("rmse"),
                   F.avg(F.abs(F.col(label) - F.col(prediction))).alias("mae")).first()
    return {"rmse": float(row["rmse"]), "mae": float(row["mae"])}


def exclude_seen(recs: DataFrame, seen: DataFrame, user: str = "user_idx", item: str = "item_idx",
                 score: str = "score") -> DataFrame:
    """Drop seen pairs and re-rank by score (ties by item), ranks from 1."""
    w = Window.partitionBy(user).orderBy(F.desc(score), F.asc(item))
    return recs.join(seen.select(user, item), [user, item], "left_anti").withColumn("rank", F.row_number().over(w))


def fill_to_k(recs: DataFrame, fallback: DataFrame, k: int, user: str = "user_idx", item: str = "item_idx",
              rank: str = "rank") -> DataFrame:
    """Every fallback user's list topped up to k: the model's own items first, in its order, then
    fallback items it did not give (flag `filled`). A model with no candidates for a user still
    returns k items, so no user is left without a list. fallback: (user, rank, item, score)."""
    own = recs.select(user, rank, item, "score", F.lit(False).alias("filled"))
    extra = (fallback.select(user, rank, item, "score").join(own.select(user, item), [user, item], "left_anti")
             .withColumn("filled", F.lit(True)))
    w = Window.partitionBy(user).orderBy("filled", rank, item)
    return (own.unionByName(extra).withColumn(rank, F.row_number().over(w)).where(F.col(rank) <= k))


def filled_share(recs: DataFrame, user: str = "user_idx") -> float:
    """Share of lists that needed at least one fallback item."""
    return _one(filled_share_by(_whole(recs), ALL, user), 0.0)


def filled_share_by(recs: DataFrame, by: str, user: str = "user_idx") -> dict[Any, float]:
    per_list = recs.groupBy(by, user).agg(F.max(F.col("filled").cast("int")).alias("f"))
    return _averages(per_list, by, F.col("f"))


ALL = "_all"  # the one group of the single-list forms


def _whole(recs: DataFrame) -> DataFrame:
    return recs.withColumn(ALL, F.lit(0))


def _one(by_group: dict, empty: Any) -> Any:
    """A single-list form's answer: its one group's, or `empty` when there was nothing to group."""
    return next(iter(by_group.values()), empty)


def _averages(frame: DataFrame, by: str, value: Column) -> dict[Any, float]:
    return {r[by]: float(r["v"] or 0.0) for r in frame.groupBy(by).agg(F.avg(value).alias("v")).collect()}
