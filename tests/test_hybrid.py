"""Hybrid fusion: every method on hand-made lists (scaling, ties, Borda, RRF), NDCG as evaluate
computes it, weight fitting that finds a planted best weight, the ranker learning a planted
signal, cold start, explanations naming their evidence, and the stage's tables on the tiny shop
(lists built for a sample of users are exactly those users' lists)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from recsys_spark.config import ListModel
from recsys_spark.deep.data import local_path
from recsys_spark.hybrid.coldstart import cold_user_list, query_category, with_cold_items
from recsys_spark.hybrid.explain import explain
from recsys_spark.hybrid.fusion import fit_weights, fused_scores, ndcg_at_k, top_k
from recsys_spark.hybrid.ranker import feature_names, ranker_table, rerank, train
from recsys_spark.hybrid.serve import user_list
from recsys_spark.pipeline import run_stage
from recsys_spark.pipeline.cf import candidate_lists, held_out, learning_users, model_lists
from recsys_spark.pipeline.hybrid import fused_models
from tests.conftest import TINY

# model a lists 10, 11, 12 for user 1; model b lists 11, 13
LISTS = [("a", 1, 10, 1, 5.0), ("a", 1, 11, 2, 3.0), ("a", 1, 12, 3, 1.0),
         ("b", 1, 11, 1, 0.9), ("b", 1, 13, 2, 0.5)]
SCHEMA = "model string, user_idx int, item_idx int, rank int, score double"


def fuse(candidates, method: str, k: int, n_models: int, weights=None, depth: int = 50, rrf_k: int = 60):
    """One method's top k, as the stage takes it from the pass that scores every method."""
    return top_k(fused_scores(candidates, [method], n_models, weights, depth, rrf_k), k, method)


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


def test_a_tie_in_exact_arithmetic_goes_by_item_whatever_the_float_sum(spark):
    """Item 2 scores 0.1 + 0.2 (0.30000000000000004 in floats), item 1 scores 0.3: a tie, so item 1
    comes first, and the ranker's table (the trees' starting score) orders it the same way."""
    rows = [(m, 0, item, rank, score) for m, listed in (("m1", [(10, 1.0), (2, 0.1), (11, 0.0)]),
                                                        ("m2", [(12, 1.0), (2, 0.2), (13, 0.0)]),
                                                        ("m3", [(14, 1.0), (1, 0.3), (15, 0.0)]))
            for rank, (item, score) in enumerate(listed, 1)]
    candidates = spark.createDataFrame(rows, SCHEMA)
    weights = {"m1": 1.0, "m2": 1.0, "m3": 1.0}
    fused = fuse(candidates, "weighted", 5, 3, weights, depth=3).orderBy("rank").collect()
    assert [r["item_idx"] for r in fused] == [10, 12, 14, 1, 2]
    items = spark.createDataFrame([(i, 1) for i in range(16)], "item_idx int, n_users int")
    users = spark.createDataFrame([(0, 1)], "user_idx int, n_events int")
    table = ranker_table(candidates, list(weights), 3, items, users, weights)
    plain = top_k(table, 5, "weighted").orderBy("rank").collect()
    assert [r["item_idx"] for r in plain] == [10, 12, 14, 1, 2]


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
    """Model `good` lists the relevant item somewhere in its top 3, model `bad` lists it last and
    carries most of the weighted fusion, which therefore ranks it low: the trees learn that `good`
    knows better and put it first."""
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
    table = ranker_table(candidates, ["good", "bad"], 5, items, users, {"good": 0.2, "bad": 1.0})
    truth = spark.createDataFrame(labels, "user_idx int, item_idx int, label int")
    frame = table.join(truth, ["user_idx", "item_idx"], "left").fillna(0, ["label"]).toPandas()
    features = feature_names(["good", "bad"])
    assert frame.loc[frame["item_idx"] == 100, "bad_rank"].iloc[0] == 5      # listed last by `bad`
    assert np.allclose(frame["weighted"], 0.2 * frame["good_score"] + frame["bad_score"])  # the linear fusion
    blend_top = frame.loc[frame.groupby("user_idx")["weighted"].idxmax()]
    assert (blend_top["item_idx"] != 100 + blend_top["user_idx"]).all()   # the blend alone misses every one
    model = train(frame, features, num_leaves=4, n_estimators=30, learning_rate=0.2, seed=0)
    assert model is not None
    top = rerank(table, model, features, 1).where(F.col("rank") == 1).collect()
    assert all(r["item_idx"] == 100 + r["user_idx"] for r in top) and len(top) == 60

    # labels that no feature predicts: the held-out users stop the trees early
    draw = np.random.default_rng(7)
    picked = frame.groupby("user_idx")["item_idx"].transform(lambda s: draw.integers(len(s)))
    frame["label"] = (frame.groupby("user_idx").cumcount() == picked).astype(int)
    noise = train(frame, features, num_leaves=4, n_estimators=300, learning_rate=0.2, seed=0)
    assert noise is None or noise.num_trees() < 100

    # the blend already ranks every relevant item first: no tree can help, so there is no booster
    # (the stage then lists the weighted fusion's top k as hybrid_ranker)
    frame["label"] = (frame["weighted"] == frame.groupby("user_idx")["weighted"].transform("max")).astype(int)
    assert train(frame, features, num_leaves=4, n_estimators=30, learning_rate=0.2, seed=0) is None


def test_the_hybrid_stage_fuses_every_method_and_writes_the_final_lists(shop):
    recs = shop.lake.read("gold", "recs")
    models = {r[0] for r in recs.select("model").distinct().collect()}
    assert {f"hybrid_{m}" for m in ("average", "average_rank", "weighted", "borda", "rrf", "ranker")} <= models
    final = shop.lake.read("gold", "recs_final")
    assert {r[0] for r in final.select("model").distinct().collect()} == {f"hybrid_{shop.cfg.hybrid.method}"}
    assert final.groupBy("user_idx").count().agg(F.min("count"), F.max("count")).first()[:] == (10, 10)
    # the deep model (SASRec here) is fused like the others: it has a weight and ranker features
    fusion = json.loads((Path(local_path(shop.lake.model_path("hybrid"))) / "fusion.json").read_text())
    assert fusion["models"] == fused_models(shop) and "sasrec" in fusion["weights"]
    cuts = {r[0] for r in shop.lake.read("gold", "candidates").select("cut").distinct().collect()}
    assert cuts == {"tuning", "final"}
    metrics = {(r["model"], r["metric"]): r["value"] for r in shop.lake.read("gold", "metrics")
               .where("split = 'test' AND slice = 'all'").collect()}
    # fusion keeps what the models found: better than popularity by far on the planted tastes
    assert metrics[("hybrid_weighted", "ndcg")] > 2 * metrics[("popularity", "ndcg")]


def test_lists_for_some_users_are_those_users_lists_and_recommend_keeps_the_head_of_hybrids(shop):
    k, depth = shop.cfg.cf.k, shop.cfg.hybrid.candidates
    learners = held_out(shop, "validation").select("user_idx").distinct()
    tuning = candidate_lists(shop, "tuning", fused_models(shop), depth)
    # every validation user (fewer than hybrid.max_users here) and no one else has tuning-cut lists,
    # from every fused model, the deep one (written by train_deep) too
    assert sorted(r[0] for r in tuning.select("user_idx").distinct().collect()) == sorted(
        r[0] for r in learners.collect()) == sorted(r[0] for r in learning_users(shop).collect())
    assert {r[0] for r in tuning.select("model").distinct().collect()} == set(fused_models(shop))
    some = learners.orderBy("user_idx").limit(25).cache()
    everyone, only = model_lists(shop, "tuning", depth), model_lists(shop, "tuning", depth, some)
    assert set(only) == set(everyone) == set(get_args(ListModel))   # what hybrid.models names, but `deep`
    for name in everyone:
        mine = everyone[name]().join(some, "user_idx", "left_semi").select("user_idx", "rank", "item_idx")
        theirs = only[name]().select("user_idx", "rank", "item_idx")
        assert sorted(mine.collect()) == sorted(theirs.collect()), name
    # user_knn's neighbours for some users (found among everyone) give those users' final lists too
    final_all, final_some = (model_lists(shop, "final", depth, u)["user_knn"]().select("user_idx", "rank", "item_idx")
                             for u in (None, some))
    assert sorted(final_all.join(some, "user_idx", "left_semi").collect()) == sorted(final_some.collect())
    # recommend's (and train_deep's) lists of a fused model are the first k of its final-cut candidates
    for name in ("als", "ease", "item_knn", shop.cfg.deep.recs_name):
        recs = (shop.lake.read("gold", "recs").where((F.col("model") == name) & ~F.col("filled"))
                .select("user_idx", "rank", "item_idx"))
        head = candidate_lists(shop, "final", [name], k).select("user_idx", "rank", "item_idx")
        assert recs.count() > 0 and sorted(recs.collect()) == sorted(head.collect()), name


def test_hybrid_asked_for_deeper_lists_than_recommend_built_says_so_and_writes_nothing(shop):
    h = shop.cfg.hybrid
    deeper = shop.cfg.model_copy(update={"hybrid": h.model_copy(update={"candidates": h.candidates + 10})})
    tables = ("candidates", "recs", "recs_final", "runs")
    before = [shop.lake.version("gold", t) for t in tables]
    with pytest.raises(ValueError, match=rf"'hybrid.candidates' is {h.candidates + 10}.*depth {h.candidates}: "
                                         "run recommend first"):
        run_stage(dataclasses.replace(shop, cfg=deeper), "hybrid")
    assert [shop.lake.version("gold", t) for t in tables] == before


def test_explanations_name_the_right_evidence_item(spark):
    recs = spark.createDataFrame([(1, 1, 5, 0.9, False), (1, 2, 6, 0.8, False), (1, 3, 9, 0.7, False),
                                  (1, 4, 7, 0.6, False), (1, 5, 8, 0.5, True)],
                                 "user_idx int, rank int, item_idx int, score float, cold boolean")
    seen = spark.createDataFrame([(1, 1, 2.0), (1, 2, 1.0)], "user_idx int, item_idx int, confidence double")
    # item 5 is reached from 1 (2.0 x 0.5 = 1.0) and from 2 (1.0 x 0.9): item 1 is the evidence
    neighbours = spark.createDataFrame([("cooccurrence", 1, 5, 0.5), ("cooccurrence", 2, 5, 0.9),
                                        ("content", 2, 6, 0.8)],
                                       "method string, item_idx int, neighbour_idx int, score double")
    items = spark.createDataFrame([(i, f"i{i}", f"title {i}", "lamps" if i == 8 else "chairs") for i in range(1, 10)],
                                  "item_idx int, item_id string, title string, category string")
    users = spark.createDataFrame([(1, "north")], "user_idx int, region string")
    searches = spark.createDataFrame([(1, "red lamp", "2025-01-01 10:00:00")], "user_idx int, query string, ts string")
    postings = spark.createDataFrame([("lamp", 9, "title", 1)], "term string, item_idx int, field string, tf int")
    got = {r["item_idx"]: (r["reason"], r["evidence"]) for r in
           explain(recs, seen, neighbours, items, users, searches, postings).collect()}
    assert got == {5: ("bought together with title 1", "i1"), 6: ("similar to title 2 you viewed", "i2"),
                   9: ("because you searched 'red lamp'", "red lamp"), 7: ("popular in chairs in north", "chairs"),
                   8: ("new in lamps", "lamps")}


def test_cold_items_take_the_last_slots_and_a_new_user_gets_context_popularity(spark):
    recs = spark.createDataFrame([(1, r, 10 + r, 1.0 / r) for r in range(1, 5)],
                                 "user_idx int, rank int, item_idx int, score float")
    cold = spark.createDataFrame([(1, 90, 0.2), (1, 91, 0.9), (2, 92, 0.5)], "user_idx int, item_idx int, score float")
    out = with_cold_items(recs, cold, 0.5, 4).where("user_idx = 1").orderBy("rank").collect()
    assert [(r["item_idx"], r["cold"]) for r in out] == [(11, False), (12, False), (91, True), (90, True)]
    table = pd.DataFrame({"context": ["all", "all", "region", "region"], "value": ["all", "all", "north", "north"],
                          "rank": [1, 2, 1, 2], "item_idx": [1, 2, 2, 3], "score": [0.5, 0.4, 0.6, 0.3]})
    north = cold_user_list(table, {"region": "north", "unknown": "x"}, 3)
    # (all + region) / 2: item 2 (0.4 + 0.6) / 2 = 0.5, item 1 0.25, item 3 0.15
    assert north["item_idx"].tolist() == [2, 1, 3] and north["score"].tolist() == pytest.approx([0.5, 0.25, 0.15])
    assert cold_user_list(table, {}, 2)["item_idx"].tolist() == [1, 2]
    assert query_category("a comfy office chairs", ["chairs", "lamps"]) == "chairs"


def test_a_user_never_seen_before_gets_a_list_and_a_known_user_reasons(shop):
    new = user_list(shop.lake, "u-never-seen", 5, {"region": "north"}, query="shoes")
    assert len(new) == 5 and new["reason"].str.startswith("popular with shoppers in").all()
    known_id = shop.lake.read("gold", "id_map_users").join(shop.lake.read("gold", "recs_final"), "user_idx").first()
    mine = user_list(shop.lake, known_id["user_id"], 10)
    assert len(mine) == 10 and mine["reason"].notna().all() and mine["evidence"].notna().all()
    with pytest.raises(ValueError, match="k=0: ask for at least 1"):
        user_list(shop.lake, known_id["user_id"], 0)


def test_cli_recommend_says_when_fewer_are_served_than_asked(shop):
    from tests.test_cli import BIN, run

    who = shop.lake.read("gold", "id_map_users").join(shop.lake.read("gold", "recs_final"), "user_idx").first()
    sets = [a for s in [*TINY, f"lakehouse.root={shop.cfg.lakehouse.root}"] for a in ("--set", s)]
    out = run(str(BIN / "recsys-spark"), "recommend", "--user", who["user_id"], "--k", "25", *sets)
    assert out.returncode == 0, out.stderr[-2000:]
    held = shop.cfg.cf.k
    assert f"{held} of the 25 asked for" in out.stderr and f"cf.k = {held} per known user" in out.stderr
    rows = out.stdout.splitlines()
    assert len(rows) - rows.index(next(r for r in rows if r.split()[:2] == ["rank", "item_id"])) - 2 == held
    out = run(str(BIN / "recsys-spark"), "recommend", "--user", who["user_id"], "--k", str(held), *sets)
    assert out.returncode == 0 and "asked for" not in out.stderr
