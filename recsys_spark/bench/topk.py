"""Top-K for all users from the same ALS factors: our exact blocked top-K vs recommendForAllUsers,
and our approximate (faiss IVF) path vs exact on a catalogue of over a million items.

Factors come from implicit ALS fitted on random power-law interactions of 100k users x 20k
items, and x 2M items for the approximate path (rank 32, 3 iterations: the factors' quality
does not matter here, only their shape). Every item is ranked for every user, without exclusion;
overlap is the share of identical top-10 lists, recall the share of exact top-10 items found.
"""
from __future__ import annotations

import time

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from recsys_spark.bench.data import power_law_interactions
from recsys_spark.bench.report import row, write_report
from recsys_spark.cf.als import fit_als, recommend
from recsys_spark.cf.topk import top_k_for_all_users
from recsys_spark.config import Config, load_config
from recsys_spark.spark import get_spark

N_USERS, N_ITEMS, N_PAIRS, K = 100_000, 20_000, 2_000_000, 10
# the approximate path: a catalogue over a million items (those with interactions get factors)
ANN_ITEMS, ANN_PAIRS, ANN_SAMPLE = 2_000_000, 6_000_000, 50  # every 50th user is scored exactly too


def lists(recs: DataFrame) -> DataFrame:
    """(user_idx, items): each user's list in rank order."""
    ordered = recs.groupBy("user_idx").agg(F.sort_array(F.collect_list(F.struct("rank", "item_idx"))).alias("o"))
    return ordered.select("user_idx", F.transform("o", lambda s: s["item_idx"]).alias("items"))


def agreement(a: DataFrame, b: DataFrame) -> Row:
    """Share of users with identical lists, and the mean share of b's items that a has (recall@K of
    a against b), over the users both have."""
    joined = a.withColumnRenamed("items", "a").join(b.withColumnRenamed("items", "b"), "user_idx")
    return joined.agg(F.avg((F.col("a") == F.col("b")).cast("double")).alias("lists"),
                      F.avg(F.size(F.array_intersect("a", "b")) / F.size("b")).alias("items")).first()


def timed(frame: DataFrame) -> tuple[DataFrame, float]:
    t = time.perf_counter()
    frame = frame.cache()
    frame.count()
    return frame, time.perf_counter() - t


def factors(spark: SparkSession, cfg: Config, n_items: int, n_pairs: int) -> tuple[ALSModel, int, float]:
    pairs = power_law_interactions(spark, N_USERS, n_items, n_pairs)
    n = pairs.count()
    t = time.perf_counter()
    model = fit_als(pairs, cfg.cf.als.model_copy(update=dict(rank=32, max_iter=3)))
    model.userFactors.cache().count()
    model.itemFactors.cache().count()
    pairs.unpersist()
    return model, n, time.perf_counter() - t


def exact_vs_recommend_for_all_users(spark: SparkSession, cfg: Config) -> tuple[list[dict], dict, str]:
    model, n, fit_s = factors(spark, cfg, N_ITEMS, N_PAIRS)
    first, first_s = timed(recommend(model, K, None, cfg.cf.topk))  # the first run starts the Python workers
    first.unpersist()
    warm_up = model.userFactors.limit(1000).withColumnRenamed("id", model.getUserCol())
    model.recommendForUserSubset(warm_up, K).count()  # the JVM's warm-up, in fairness
    ours, ours_s = timed(recommend(model, K, None, cfg.cf.topk))
    theirs, theirs_s = timed(model.recommendForAllUsers(K))
    theirs_lists = theirs.select("user_idx", F.transform("recommendations", lambda s: s["item_idx"]).alias("items"))
    same = agreement(lists(ours), theirs_lists)
    rows = [row("topk_blocked", "seconds", round(ours_s, 2), K),
            row("topk_blocked_first_run", "seconds", round(first_s, 2), K),
            row("recommendForAllUsers", "seconds", round(theirs_s, 2), K),
            row("topk_blocked_vs_recommendForAllUsers", "speedup", round(theirs_s / ours_s, 2), K),
            row("topk_blocked_vs_recommendForAllUsers", "overlap", round(same["lists"], 4), K),
            row("topk_blocked_vs_recommendForAllUsers", "item_overlap", round(same["items"], 4), K)]
    for frame in (ours, theirs, model.userFactors, model.itemFactors):
        frame.unpersist()
    timings = {"als_fit": round(fit_s, 1), "ours": round(ours_s, 2), "ours_first_run": round(first_s, 2),
               "recommendForAllUsers": round(theirs_s, 2)}
    return rows, timings, f"{N_USERS:,} users x {N_ITEMS:,} items, {n:,} pairs"


def ivf_vs_exact(spark: SparkSession, cfg: Config) -> tuple[list[dict], dict, str]:
    model, n, fit_s = factors(spark, cfg, ANN_ITEMS, ANN_PAIRS)
    n_items = model.itemFactors.count()
    ivf_conf = cfg.cf.topk.model_copy(update={"approximate_above": min(n_items - 1, cfg.cf.topk.approximate_above)})
    exact_conf = ivf_conf.model_copy(update={"approximate_above": n_items, "block_mb": 256})
    sample = model.userFactors.where(F.col("id") % ANN_SAMPLE == 0)
    ivf, ivf_s = timed(recommend(model, K, None, ivf_conf))
    ivf_sample, ivf_sample_s = timed(top_k_for_all_users(sample, model.itemFactors, K, None, ivf_conf))
    exact, exact_sample_s = timed(top_k_for_all_users(sample, model.itemFactors, K, None, exact_conf))
    recall = agreement(lists(ivf.join(sample.select(F.col("id").alias("user_idx")), "user_idx")), lists(exact))
    lists_n = sample.count()
    rows = [row("topk_ivf", "seconds", round(ivf_s, 2), K, users=N_USERS),
            row("topk_ivf_sample", "seconds", round(ivf_sample_s, 2), K, users=lists_n),
            row("topk_exact_sample", "seconds", round(exact_sample_s, 2), K, users=lists_n),
            row("topk_ivf_vs_exact", "speedup", round(exact_sample_s / ivf_sample_s, 2), K, users=lists_n),
            row("topk_ivf_vs_exact", "recall", round(recall["items"], 4), K, users=lists_n),
            row("topk_ivf_vs_exact", "overlap", round(recall["lists"], 4), K, users=lists_n)]
    timings = {"als_fit_ivf": round(fit_s, 1), "ivf_all_users": round(ivf_s, 2),
               "ivf_sample": round(ivf_sample_s, 2), "exact_sample": round(exact_sample_s, 2)}
    setting = (f"{n_items:,} items with factors (of {ANN_ITEMS:,}), {n:,} pairs; IVF lists "
               f"{ivf_conf.ivf_lists or 'sqrt(items)'}, probe {ivf_conf.ivf_probe}; exact with 256 MB blocks")
    return rows, timings, setting


def run() -> None:
    cfg = load_config(None)
    spark = get_spark(cfg)
    rows, timings, exact_set = exact_vs_recommend_for_all_users(spark, cfg)
    more_rows, more_timings, ivf_set = ivf_vs_exact(spark, cfg)
    write_report("topk", "top-10 for all users from the same ALS factors (rank 32), no exclusion, local[*] on "
                 "this machine. Exact: each method timed after a warm-up (ours: a first full run, which starts the "
                 "Python workers and is reported as topk_blocked_first_run; recommendForAllUsers: 1,000 users); "
                 "overlap = share of users whose two lists are identical. Approximate: the faiss IVF path for "
                 f"catalogues over a million items, timed for all users and, with exact, for every {ANN_SAMPLE}th "
                 "user; recall = mean share of the exact top-10 that the IVF list holds",
                 f"random power-law implicit data: exact {exact_set}; approximate {ivf_set}",
                 rows + more_rows, timings | more_timings)
