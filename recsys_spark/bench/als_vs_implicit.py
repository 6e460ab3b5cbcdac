"""Spark MLlib ALS vs the `implicit` package (CPU): fit time as a ratio, and the quality of both.

Same data, rank, iterations, regularisation and alpha, the same cores (Spark local[*], implicit
with as many threads). Two data sets: MovieLens-100k under B1 (quality: both models' top 10
scored by the same Spark metrics), and 100k users x 20k items of power-law events (time at a
size where Spark's per-job overhead matters less). The formulations differ, which the notes
state: Spark scales the regularisation by each user's and item's number of ratings (ALS-WR)
and uses confidence 1 + alpha*r; implicit uses an unscaled regularisation and alpha*r.
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame

from recsys_spark.bench.b1 import K, load_split
from recsys_spark.bench.data import power_law_interactions
from recsys_spark.bench.report import row, write_report
from recsys_spark.cf.als import fit_als, recommend
from recsys_spark.config import ALSConf
from recsys_spark.evaluation.ranking import ranking_metrics
from recsys_spark.spark import blas_in_use

# B1's validation picked rank 32, reg 0.2, alpha 1 for Spark (reports/b1.json)
PARAMS = ALSConf(rank=32, reg_param=0.2, alpha=1.0, max_iter=15, implicit=True, seed=42)


def _csr(pairs: pd.DataFrame, n_users: int, n_items: int):
    from scipy.sparse import csr_matrix

    return csr_matrix((pairs["confidence"].to_numpy(np.float32),
                       (pairs["user_idx"].to_numpy(), pairs["item_idx"].to_numpy())), shape=(n_users, n_items))


def fit_implicit(pairs: pd.DataFrame, p: ALSConf):
    """(model, user x item matrix, seconds) for implicit's CPU ALS (conjugate gradient)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    matrix = _csr(pairs, int(pairs["user_idx"].max()) + 1, int(pairs["item_idx"].max()) + 1)
    with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads inside them oversubscribe
        model = AlternatingLeastSquares(factors=p.rank, regularization=p.reg_param, alpha=p.alpha,
                                        iterations=p.max_iter, random_state=p.seed,
                                        num_threads=len(os.sched_getaffinity(0)))
        start = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - start
    return model, matrix, seconds


def implicit_top_k(model, matrix, users: np.ndarray, k: int) -> pd.DataFrame:
    ids, scores = model.recommend(users, matrix[users], N=k, filter_already_liked_items=True)
    return pd.DataFrame({"user_idx": np.repeat(users, ids.shape[1]).astype(np.int32),
                         "rank": np.tile(np.arange(1, ids.shape[1] + 1, dtype=np.int32), len(users)),
                         "item_idx": ids.ravel().astype(np.int32), "score": scores.ravel().astype(np.float32)})


def fit_spark(train: DataFrame, p: ALSConf):
    train = train.cache()
    train.count()
    start = time.perf_counter()
    model = fit_als(train, p)
    return model, time.perf_counter() - start


def run() -> None:
    rows, timings = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-als-") as root:
        ctx, train, test, _ = load_split(root)
        spark = ctx.spark
        pairs = train.select("user_idx", "item_idx", "confidence").toPandas()
        users = np.sort(test.select("user_idx").distinct().toPandas()["user_idx"].to_numpy())
        model, spark_s = fit_spark(train, PARAMS)
        ours = ranking_metrics(recommend(model, K, train.select("user_idx", "item_idx")), test, K)
        imp, matrix, imp_s = fit_implicit(pairs, PARAMS)
        theirs = ranking_metrics(spark.createDataFrame(implicit_top_k(imp, matrix, users, K)), test, K)
        _add(rows, timings, "movielens100k", spark_s, imp_s, ours, theirs)

    big = power_law_interactions(spark, 100_000, 20_000, 2_000_000)
    n_pairs = big.count()
    p = PARAMS.model_copy(update={"max_iter": 10})
    _, spark_s = fit_spark(big, p)
    _, _, imp_s = fit_implicit(big.toPandas(), p)
    _add(rows, timings, "power_law_100k_users", spark_s, imp_s)
    blas = blas_in_use(spark)
    write_report("als_vs_implicit", f"implicit ALS fit time, Spark MLlib vs implicit {_version('implicit')} "
                 "(CPU, conjugate gradient), same rank/iterations/regularisation/alpha and cores; quality on the "
                 "B1 split, both top-10 lists scored by the same metrics, seen items excluded",
                 f"MovieLens-100k (B1 split, rank {PARAMS.rank}, {PARAMS.max_iter} iterations); power-law "
                 f"events: 100,000 users x 20,000 items, {n_pairs:,} pairs (rank {p.rank}, {p.max_iter} iterations)",
                 rows, timings,
                 notes=[f"MLlib's BLAS: {blas} (JNIBLAS is native OpenBLAS; VectorBLAS and F2jBLAS are Java).",
                        "fit_time_ratio = Spark seconds / implicit seconds (above 1: implicit is faster).",
                        "Spark's regParam is scaled by each row's number of ratings (ALS-WR) and its confidence is "
                        "1 + alpha*r; implicit's regularisation is unscaled and its confidence alpha*r, so the same "
                        "nominal values are not the same model; quality is shown for both."])


def _add(rows: list, timings: dict, data: str, spark_s: float, imp_s: float, ours: dict | None = None,
         theirs: dict | None = None) -> None:
    timings[f"{data}/spark_als_fit"] = round(spark_s, 2)
    timings[f"{data}/implicit_fit"] = round(imp_s, 2)
    rows += [row("spark_als", "fit_seconds", round(spark_s, 2), dataset=data),
             row("implicit_als", "fit_seconds", round(imp_s, 2), dataset=data),
             row("spark_als_vs_implicit", "fit_time_ratio", round(spark_s / imp_s, 2), dataset=data)]
    for name, m in (("spark_als", ours), ("implicit_als", theirs)):
        if m:
            rows += [row(name, metric, round(m[metric], 4), K, dataset=data) for metric in ("ndcg", "precision",
                                                                                             "recall", "map")]


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)
