"""Spark MLlib ALS on gold.interactions: implicit (confidence) or explicit (ratings)."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame


@dataclass(frozen=True)
class ALSParams:
    rank: int = 64
    reg_param: float = 0.05
    alpha: float = 10.0
    max_iter: int = 15
    implicit: bool = True
    seed: int = 42
    checkpoint_interval: int = 5


def fit_als(interactions: DataFrame, p: ALSParams, rating_col: str | None = None) -> ALSModel:
    """Implicit mode reads `confidence` (alpha scales it), explicit mode `rating`. The session must
    have a checkpoint directory, or checkpointInterval is silently ignored (get_spark sets one)."""
    col = rating_col or ("confidence" if p.implicit else "rating")
    als = ALS(userCol="user_idx", itemCol="item_idx", ratingCol=col, implicitPrefs=p.implicit, rank=p.rank,
              regParam=p.reg_param, alpha=p.alpha, maxIter=p.max_iter, seed=p.seed,
              checkpointInterval=p.checkpoint_interval, coldStartStrategy="drop")
    data = interactions if p.implicit else interactions.where(f"{col} IS NOT NULL")
    return als.fit(data.select("user_idx", "item_idx", col))
