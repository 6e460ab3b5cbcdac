"""The learned fusion: LightGBM lambdarank over each model's scaled score and rank for a candidate,
how many models listed it, the item's popularity, the user's activity and the weighted fusion's
score (stacking: the trees start from the linear blend's score and learn where it is wrong). It learns on
the tuning cut's candidates labelled by validation, and scores the final cut's candidates in Spark."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import lightgbm as lgb
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.hybrid.fusion import ndcg_at_k, scaled, top_k
from recsys_spark.search.ranker import lambdarank

log = logging.getLogger("recsys_spark")


def feature_names(models: list[str]) -> list[str]:
    return ([f"{m}_{part}" for m in models for part in ("score", "rank")]
            + ["n_lists", "item_users", "user_events", "weighted"])


def ranker_table(candidates: DataFrame, models: list[str], depth: int, item_features: DataFrame,
                 user_features: DataFrame, weights: dict[str, float] | None = None) -> DataFrame:
    """One row per (user, item) any model listed. A model that did not list the item: score 0,
    rank depth + 1. item_features: (item_idx, n_users); user_features: (user_idx, n_events);
    weights: the weighted fusion's, per model, fitted on the tuning cut (`weighted` = its score;
    without them the column is left for the caller, who fits them on this table)."""
    wide = (scaled(candidates).groupBy("user_idx", "item_idx").pivot("model", models)
            .agg(F.first("minmax").alias("score"), F.first("rank").alias("rank")))
    listed = sum((F.col(f"{m}_score").isNotNull().cast("int") for m in models), F.lit(0))
    wide = wide.withColumn("n_lists", listed.cast("double"))
    wide = wide.fillna(0.0, [f"{m}_score" for m in models]).fillna(depth + 1, [f"{m}_rank" for m in models])
    if weights is not None:
        wide = wide.withColumn("weighted", sum((weights[m] * F.col(f"{m}_score") for m in models), F.lit(0.0)))
    items = item_features.select("item_idx", F.log1p(F.coalesce("n_users", F.lit(0))).alias("item_users"))
    users = user_features.select("user_idx", F.log1p(F.coalesce("n_events", F.lit(0))).alias("user_events"))
    return (wide.join(items, "item_idx", "left").join(users, "user_idx", "left")
            .fillna(0.0, ["item_users", "user_events"]))


def train(table: pd.DataFrame, features: list[str], num_leaves: int, n_estimators: int, learning_rate: float,
          seed: int, held_out: float = 0.2) -> lgb.Booster | None:
    """table: ranker rows with `label`; one group per user, users without a relevant candidate left out
    (lambdarank learns nothing from them). The trees start from the weighted fusion's score
    (LightGBM's init_score) and learn only its corrections; a seeded `held_out` share of the users
    decides how many corrections help (early stopping on their NDCG@10), and the booster is refitted
    on every user with that many. None when even the best count does not beat the blend alone on
    those users (early stopping cannot choose zero trees): the ranker's lists are then the blend's."""
    keep = table.groupby("user_idx")["label"].transform("max") > 0
    table = table[keep].sort_values("user_idx", kind="stable")
    if table.empty:
        raise ValueError("hybrid ranker: no tuning-cut user has a validation item among the candidates")

    def part(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (rows[features].to_numpy(np.float32), rows["label"].to_numpy(),
                rows.groupby("user_idx", sort=False).size().to_numpy(), rows["weighted"].to_numpy())

    users = table["user_idx"].unique()
    check = np.random.default_rng(seed).permutation(users)[:int(len(users) * held_out)]
    trees = n_estimators
    if len(check) >= 2:
        held = table["user_idx"].isin(check)
        x, y, groups, base = part(table[~held])
        rows = table[held]
        checked = part(rows)
        booster = lambdarank(x, y, groups, num_leaves, n_estimators, learning_rate, seed, base, held_out=checked)
        trees = max(booster.best_iteration, 1)
        hx, hy, _, hbase = checked
        n_relevant = rows.groupby("user_idx")["label"].sum().to_dict()
        blend, corrected = (ndcg_at_k(rows["user_idx"].to_numpy(), score, hy, n_relevant, 10)
                            for score in (hbase, hbase + booster.predict(hx, num_iteration=trees)))
        log.info("[hybrid] ranker: %d of at most %d trees; held-out users' NDCG@10 %.5f (blend alone %.5f, %d users)",
                 trees, n_estimators, corrected, blend, len(check))
        if corrected <= blend:
            return None
    x, y, groups, base = part(table)
    return lambdarank(x, y, groups, num_leaves, trees, learning_rate, seed, base)


def rerank(table: DataFrame, model: lgb.Booster, features: list[str], k: int) -> DataFrame:
    """(user_idx, rank, item_idx, score): the final cut's candidates by the weighted fusion's score
    plus the trees' correction."""
    booster = table.sparkSession.sparkContext.broadcast(model.model_to_string())

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer = lgb.Booster(model_str=booster.value)
        for f in frames:
            correction = scorer.predict(f[features].to_numpy(np.float32), num_threads=1)
            yield pd.DataFrame({"user_idx": f["user_idx"], "item_idx": f["item_idx"],
                                "score": f["weighted"] + correction})

    scored = table.select("user_idx", "item_idx", *features).mapInPandas(
        score, "user_idx int, item_idx int, score double")
    return top_k(scored, k)
