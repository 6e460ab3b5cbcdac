"""Fusing several models' candidate lists into one list per user.

Candidates are rows (model, user_idx, item_idx, rank from 1, score). Scores of different models
live on different scales, so the score-based methods first scale each (model, user) list: min-max
to [0, 1] (a list whose scores are all equal scales to 1), or by rank, (depth - rank + 1) / depth.
An item a model did not list contributes nothing. Equal fused scores are ordered by item index.
"""
from __future__ import annotations

from itertools import chain

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

METHODS = ["average", "average_rank", "weighted", "borda", "rrf"]


def scaled(candidates: DataFrame) -> DataFrame:
    """Adds `minmax` and `by_rank`, each model's list scaled per user."""
    w = Window.partitionBy("model", "user_idx")
    lo, hi, depth = F.min("score").over(w), F.max("score").over(w), F.max("rank").over(w)
    return candidates.withColumns({
        "minmax": F.when(hi > lo, (F.col("score") - lo) / (hi - lo)).otherwise(F.lit(1.0)),
        "by_rank": (depth - F.col("rank") + 1) / depth,
    })


def _weight(weights: dict[str, float]) -> Column:
    return F.coalesce(F.create_map(*chain.from_iterable((F.lit(m), F.lit(float(w))) for m, w in weights.items()))
                      [F.col("model")], F.lit(0.0))


def contribution(method: str, n_models: int, weights: dict[str, float] | None = None, depth: int = 50,
                 rrf_k: int = 60) -> Column:
    """What one candidate row adds to its item's fused score."""
    if method == "average":
        return F.col("minmax") / n_models
    if method == "average_rank":
        return F.col("by_rank") / n_models
    if method == "weighted":
        if not weights:
            raise ValueError("hybrid method 'weighted' needs weights (fit_weights fits them on the tuning cut)")
        return _weight(weights) * F.col("minmax")
    if method == "borda":
        return (depth - F.col("rank") + 1).cast("double")   # a list's first item gets depth points
    if method == "rrf":
        return 1.0 / (rrf_k + F.col("rank"))
    raise ValueError(f"unknown hybrid method {method!r}; methods are {', '.join(METHODS)} and ranker")


def fused_scores(candidates: DataFrame, methods: list[str], n_models: int, weights: dict[str, float] | None = None,
                 depth: int = 50, rrf_k: int = 60) -> DataFrame:
    """(user_idx, item_idx, a fused score column per method): every method from one pass over the
    lists."""
    return (scaled(candidates).groupBy("user_idx", "item_idx")
            .agg(*[F.sum(contribution(m, n_models, weights, depth, rrf_k)).alias(m) for m in methods]))


def top_k(scored: DataFrame, k: int, score: str = "score") -> DataFrame:
    """(user_idx, rank, item_idx, score) by the `score` column. Scores equal to 9 decimals tie and
    go by item index: a fused score is a sum whose order Spark does not fix, so 0.1 + 0.2 and 0.3
    would otherwise rank by rounding noise, differently from run to run and from the ranker's own
    sum of the same terms."""
    w = Window.partitionBy("user_idx").orderBy(F.desc(F.round(score, 9)), "item_idx")
    return (scored.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= k)
            .select("user_idx", "rank", "item_idx", F.col(score).cast("float").alias("score")))


def ndcg_at_k(users: np.ndarray, scores: np.ndarray, labels: np.ndarray, n_relevant: dict[int, int],
              k: int) -> float:
    """Mean NDCG@k over the users in `n_relevant` (those with something relevant), as evaluate
    computes it: binary relevance, ideal DCG over min(k, #relevant), a user with no hit scores 0."""
    order = np.lexsort((-scores, users))
    u, lab = users[order], labels[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]
    pos = np.arange(len(u)) - np.repeat(starts, np.diff(np.r_[starts, len(u)]))
    hit = (pos < k) & (lab > 0)
    dcg = pd.Series(hit / np.log2(pos + 2.0)).groupby(u).sum()
    ideal_table = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))
    total = sum(dcg.get(user, 0.0) / ideal_table[min(n, k) - 1] for user, n in n_relevant.items())
    return float(total / max(len(n_relevant), 1))


def fit_weights(table: pd.DataFrame, models: list[str], n_relevant: dict[int, int], k: int,
                steps: list[float], sweeps: int = 2) -> tuple[dict[str, float], float]:
    """Coordinate ascent on NDCG@k: each model's weight in turn takes the step that scores best with
    the others held, for `sweeps` rounds; ties keep the current weight. table: one row per (user,
    item) with a min-max column per model (0 where it did not list the item) and `label`."""
    x = table[models].to_numpy(float)
    users, labels = table["user_idx"].to_numpy(), table["label"].to_numpy()
    w = np.ones(len(models))
    best = ndcg_at_k(users, x @ w, labels, n_relevant, k)
    for _ in range(sweeps):
        for j in range(len(models)):
            for step in steps:
                trial = w.copy()
                trial[j] = step
                if not trial.any():
                    continue
                score = ndcg_at_k(users, x @ trial, labels, n_relevant, k)
                if score > best + 1e-12:
                    best, w = score, trial
    return dict(zip(models, w.tolist(), strict=True)), best
