"""Spark MLlib ALS on interactions: implicit (confidence) or explicit (ratings), tuned for ranking."""
from __future__ import annotations

import itertools
import logging

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.cf.topk import top_k_for_all_users
from recsys_spark.config import ALSConf, TopKConf, TuningConf
from recsys_spark.evaluation.ranking import ranking_metrics

log = logging.getLogger("recsys_spark")


def fit_als(interactions: DataFrame, p: ALSConf, rating_col: str | None = None) -> ALSModel:
    """Implicit mode reads `confidence` (alpha scales it), explicit mode `rating`. The session must
    have a checkpoint directory, or checkpointInterval is silently ignored (get_spark sets one)."""
    col = rating_col or ("confidence" if p.implicit else "rating")
    blocks = p.blocks or interactions.sparkSession.sparkContext.defaultParallelism
    als = ALS(userCol="user_idx", itemCol="item_idx", ratingCol=col, implicitPrefs=p.implicit, rank=p.rank,
              regParam=p.reg_param, alpha=p.alpha, maxIter=p.max_iter, seed=p.seed,
              checkpointInterval=p.checkpoint_interval, coldStartStrategy="drop", numUserBlocks=blocks,
              numItemBlocks=blocks)
    data = interactions if p.implicit else interactions.where(f"{col} IS NOT NULL")
    return als.fit(data.select("user_idx", "item_idx", col))


def recommend(model: ALSModel, k: int, seen: DataFrame | None, conf: TopKConf | None = None,
              users: DataFrame | None = None) -> DataFrame:
    """Every user's top k, or only those in `users` (user_idx)."""
    factors = model.userFactors
    if users is not None:
        factors = factors.join(users.select(F.col("user_idx").alias("id")), "id", "left_semi")
    return top_k_for_all_users(factors, model.itemFactors, k, seen, conf)


def tune_als(train: DataFrame, validation: DataFrame, base: ALSConf, grid: TuningConf, k: int,
             rating_col: str | None = None) -> tuple[ALSConf, list[tuple[ALSConf, float]]]:
    """Fit every combination of the grid on `train`; the best NDCG@k on `validation` wins. RMSE
    would pick models that predict ratings well and rank poorly."""
    seen = train.select("user_idx", "item_idx")
    tried = []
    for rank, reg, alpha, iters in itertools.product(grid.rank, grid.reg_param, grid.alpha, grid.max_iter):
        p = base.model_copy(update=dict(rank=rank, reg_param=reg, alpha=alpha, max_iter=iters))
        model = fit_als(train, p, rating_col)
        ndcg = ranking_metrics(recommend(model, k, seen), validation, k)["ndcg"]
        log.info("[tune] rank=%d reg=%g alpha=%g iters=%d -> ndcg@%d %.4f", rank, reg, alpha, iters, k, ndcg)
        tried.append((p, ndcg))
    return max(tried, key=lambda t: t[1])[0], tried
