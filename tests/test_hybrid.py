"""Hybrid fusion: every method on hand-made lists (scaling, ties, Borda, RRF), NDCG as evaluate
computes it, weight fitting that finds a planted best weight, the ranker learning a planted
signal, and the stage's tables on the tiny shop."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from recsys_spark.hybrid.fusion import fit_weights, fuse, ndcg_at_k
from recsys_spark.hybrid.ranker import feature_names, ranker_table, rerank, train

# model a lists 10, 11, 12 for user 1; model b lists 11, 13
LISTS = [("a", 1, 10, 1, 5.0), ("a", 1, 11, 2, 3.0), ("a", 1, 12, 3, 1.0),
         ("b", 1, 11, 1, 0.9), ("b", 1, 13, 2, 0.5)]
SCHEMA = "model string, user_idx int, item_idx int, rank int, score double"


def _fused(spark, method: str, **kw) -> list[tuple[int, float]]:
    out = fuse(spark.createDataFrame(LISTS, SCHEMA), method, 4, 2, depth=3, **kw).orderBy("rank").collect()
    return [(r["item_idx"], r["score"]) for r in out]


def test_each_method_on_hand_made_lists(spark):
    # min-max: a -> 10: 1, 11: .5, 12: 0; b -> 11: 1, 13: 0; averaged over 2 models
    assert _fused(spark, "average") == [(11, 0.75), (10, 0.5), (12, 0.0), (13, 0.0)]   # a tie goes by item
    # by rank: a (depth 3) -> 1, 2/3, 1/3; b (depth 2) -> 1, 1/2
    got = _fused(spark, "average_rank")
    assert [i for i, _ in got] == [11, 10, 13, 12]
    assert [s for _, s in got] == pytest.approx([5 / 6, 0.5, 0.25, 1 / 6])
    # Borda with depth 3: first place 3 points, second 2, third 1
    assert _fused(spark, "borda") == [(11, 5.0), (10, 3.0), (13, 2.0), (12, 1.0)]
    got = _fused(spark, "rrf", rrf_k=60)
    assert [i for i, _ in got] == [11, 10, 13, 12]
    assert [s for _, s in got] == pytest.approx([1 / 62 + 1 / 61, 1 / 61, 1 / 62, 1 / 63])
    assert _fused(spark, "weighted", weights={"a": 0.0, "b": 2.0}) == [(11, 2.0), (10, 0.0), (12, 0.0), (13, 0.0)]


def test_a_list_of_equal_scores_scales_to_one_and_bad_methods_are_named(spark):
    flat = spark.createDataFrame([("c", 1, 20, 1, 0.3), ("c", 1, 21, 2, 0.3)], SCHEMA)
    assert [r["score"] for r in fuse(flat, "average", 2, 1).collect()] == [1.0, 1.0]
    with pytest.raises(ValueError, match="'weighted' needs weights"):
        fuse(flat, "weighted", 2, 1)
    with pytest.raises(ValueError, match="unknown hybrid method 'mean'"):
        fuse(flat, "mean", 2, 1)


def test_ndcg_matches_a_hand_computation():
    # user 1: relevant item ranked 2nd of 2 -> 1/log2(3); user 2: 2 relevant, one at rank 1 -> 1 / (1 + 1/log2(3))
    users = np.array([1, 1, 2, 2])
    scores = np.array([0.9, 0.1, 0.8, 0.7])
    labels = np.array([0, 1, 1, 0])
    expected = (1 / np.log2(3) + 1 / (1 + 1 / np.log2(3))) / 2
    assert ndcg_at_k(users, scores, labels, {1: 1, 2: 2}, 10) == pytest.approx(expected)
    # a user with something relevant but no candidate for it counts as zero
    assert ndcg_at_k(users, scores, labels, {1: 1, 2: 2, 3: 1}, 10) == pytest.approx(expected * 2 / 3)


def _planted(seed: int = 0) -> pd.DataFrame:
    """50 users, 10 candidates each, one relevant: `good` ranks it first, `noise` is random."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(50), 10)
    label = np.zeros(500, int)
    label[np.arange(50) * 10 + rng.integers(0, 10, 50)] = 1
    good = 0.3 * label + 0.1 * rng.random(500)
    return pd.DataFrame({"user_idx": users, "item_idx": np.tile(np.arange(10), 50), "label": label,
                         "good": good, "noise": rng.random(500)})


def test_weight_fitting_recovers_the_planted_best_weight():
    table = _planted()
    n_relevant = {u: 1 for u in range(50)}
    start = ndcg_at_k(table["user_idx"].to_numpy(), (table["good"] + table["noise"]).to_numpy(),
                      table["label"].to_numpy(), n_relevant, 10)
    weights, best = fit_weights(table, ["good", "noise"], n_relevant, 10, [0.0, 0.5, 1.0, 2.0])
    assert weights["noise"] == 0.0 and weights["good"] > 0.0
    assert best == pytest.approx(1.0) and start < 0.9


def test_the_ranker_learns_a_planted_signal_and_reranks_in_spark(spark):
    """Model `good` lists the relevant item somewhere in its top 3, model `bad` lists it last: the
    learned ranker puts it first."""
    rows, labels = [], []
    rng = np.random.default_rng(1)
    for user in range(60):
        target = 100 + user
        others = [200 + user * 10 + j for j in range(4)]
        good = others[:2] + [target] if user % 2 else [target] + others[:2]
        for rank, item in enumerate(good, 1):
            rows.append(("good", user, item, rank, float(rng.random() + (5 if item == target else 0))))
        for rank, item in enumerate(others + [target], 1):
            rows.append(("bad", user, item, rank, float(10 - rank)))
        labels += [(user, target, 1)]
    candidates = spark.createDataFrame(rows, SCHEMA)
    items = spark.createDataFrame([(i, 1) for i in {r[2] for r in rows}], "item_idx int, n_users int")
    users = spark.createDataFrame([(u, 5) for u in range(60)], "user_idx int, n_events int")
    table = ranker_table(candidates, ["good", "bad"], 5, items, users)
    truth = spark.createDataFrame(labels, "user_idx int, item_idx int, label int")
    frame = table.join(truth, ["user_idx", "item_idx"], "left").fillna(0, ["label"]).toPandas()
    features = feature_names(["good", "bad"])
    assert frame.loc[frame["item_idx"] == 100, "bad_rank"].iloc[0] == 5      # listed last by `bad`
    model = train(frame, features, num_leaves=4, n_estimators=30, learning_rate=0.2, seed=0)
    top = rerank(table, model, features, 1).where(F.col("rank") == 1).collect()
    assert all(r["item_idx"] == 100 + r["user_idx"] for r in top) and len(top) == 60


def test_the_hybrid_stage_fuses_every_method_and_writes_the_final_lists(shop):
    recs = shop.lake.read("gold", "recs")
    models = {r[0] for r in recs.select("model").distinct().collect()}
    assert {f"hybrid_{m}" for m in ("average", "average_rank", "weighted", "borda", "rrf", "ranker")} <= models
    final = shop.lake.read("gold", "recs_final")
    assert {r[0] for r in final.select("model").distinct().collect()} == {f"hybrid_{shop.cfg.hybrid.method}"}
    assert final.groupBy("user_idx").count().agg(F.min("count"), F.max("count")).first()[:] == (10, 10)
    cuts = {r[0] for r in shop.lake.read("gold", "candidates").select("cut").distinct().collect()}
    assert cuts == {"tuning", "final"}
    metrics = {(r["model"], r["metric"]): r["value"] for r in shop.lake.read("gold", "metrics")
               .where("split = 'test' AND slice = 'all'").collect()}
    # fusion keeps what the models found: better than popularity by far on the planted tastes
    assert metrics[("hybrid_weighted", "ndcg")] > 2 * metrics[("popularity", "ndcg")]
