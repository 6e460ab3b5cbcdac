"""Top-K for all users from the same ALS factors: our blocked top-K vs recommendForAllUsers.

Factors come from implicit ALS fitted on random power-law interactions of 100k users x 20k
items (rank 32, 3 iterations: the factors' quality does not matter here, only their shape).
Both methods rank every item for every user, without exclusion; overlap is the share of
identical top-10 lists.
"""
from __future__ import annotations

import time

from pyspark.sql import functions as F

from recsys_spark.bench.data import power_law_interactions
from recsys_spark.bench.report import row, write_report
from recsys_spark.cf.als import fit_als, recommend
from recsys_spark.config import load_config
from recsys_spark.spark import get_spark

N_USERS, N_ITEMS, N_PAIRS, K = 100_000, 20_000, 2_000_000, 10


def run() -> None:
    cfg = load_config(None)
    spark = get_spark(cfg)
    pairs = power_law_interactions(spark, N_USERS, N_ITEMS, N_PAIRS)
    n = pairs.count()
    t = time.perf_counter()
    model = fit_als(pairs, cfg.cf.als.model_copy(update=dict(rank=32, max_iter=3)))
    model.userFactors.cache().count()
    model.itemFactors.cache().count()
    fit_s = time.perf_counter() - t

    block = cfg.cf.block_mb << 20
    t = time.perf_counter()
    first = recommend(model, K, None, block).cache()
    first.count()  # the first run starts the Python workers
    first_s = time.perf_counter() - t
    first.unpersist()
    warm_up = model.userFactors.limit(1000).withColumnRenamed("id", model.getUserCol())
    model.recommendForUserSubset(warm_up, K).count()  # the JVM's warm-up, in fairness

    t = time.perf_counter()
    ours = recommend(model, K, None, block).cache()
    ours.count()
    ours_s = time.perf_counter() - t

    t = time.perf_counter()
    theirs = model.recommendForAllUsers(K).cache()
    theirs.count()
    theirs_s = time.perf_counter() - t

    ours_lists = ours.groupBy("user_idx").agg(F.sort_array(F.collect_list(F.struct("rank", "item_idx"))).alias("o"))
    ours_lists = ours_lists.select("user_idx", F.transform("o", lambda s: s["item_idx"]).alias("o"))
    theirs_lists = theirs.select(F.col("user_idx"), F.transform("recommendations", lambda s: s["item_idx"]).alias("t"))
    joined = ours_lists.join(theirs_lists, "user_idx")
    same = joined.agg(F.avg((F.col("o") == F.col("t")).cast("double")).alias("lists"),
                      F.avg(F.size(F.array_intersect("o", "t")) / K).alias("items")).first()
    rows = [row("topk_blocked", "seconds", round(ours_s, 2), K),
            row("topk_blocked_first_run", "seconds", round(first_s, 2), K),
            row("recommendForAllUsers", "seconds", round(theirs_s, 2), K),
            row("topk_blocked_vs_recommendForAllUsers", "speedup", round(theirs_s / ours_s, 2), K),
            row("topk_blocked_vs_recommendForAllUsers", "overlap", round(same["lists"], 4), K),
            row("topk_blocked_vs_recommendForAllUsers", "item_overlap", round(same["items"], 4), K)]
    write_report("topk", "top-10 for all users from the same ALS factors (rank 32), no exclusion, local[*] on "
                 "this machine, each method timed after a warm-up (ours: a first full run, which starts the "
                 "Python workers and is reported as topk_blocked_first_run; recommendForAllUsers: 1,000 users); "
                 "overlap = share of users whose two lists are identical",
                 f"random power-law implicit data: {N_USERS:,} users x {N_ITEMS:,} items, {n:,} pairs", rows,
                 {"als_fit": round(fit_s, 1), "ours": round(ours_s, 2), "ours_first_run": round(first_s, 2),
                  "recommendForAllUsers": round(theirs_s, 2)})
