"""Ranking metrics against hand-computed values and a plain-Python reference."""
import math
import random

import pytest

from recsys_spark.evaluation.ranking import (
    coverage,
    coverage_by,
    diversity,
    diversity_by,
    embedding_diversity,
    embedding_diversity_by,
    filled_share,
    filled_share_by,
    novelty,
    novelty_by,
    ranking_metrics,
    ranking_metrics_by,
    rating_errors,
)


def frame(spark, rows, schema="user_idx int, item_idx int, rank int"):
    return spark.createDataFrame(rows, schema)


def test_hand_computed(spark):
    recs = frame(spark, [(1, 10, 1), (1, 11, 2), (1, 12, 3), (1, 13, 4), (2, 13, 1), (2, 14, 2), (2, 15, 3)])
    truth = frame(spark, [(1, 10), (1, 12), (1, 13), (2, 15), (3, 10)], "user_idx int, item_idx int")
    m = ranking_metrics(recs, truth, k=3)
    idcg3 = 1 + 1 / math.log2(3) + 0.5
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["ndcg"] == pytest.approx(((1 + 0.5) / idcg3 + 0.5) / 3)
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 3 + 1 / 3) / 3)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 3)


def reference(recs, truth, k):
    """The metric definitions written out over Python lists."""
    out = {m: [] for m in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")}
    for u, rel in truth.items():
        ranked = [i for i, _ in sorted(recs.get(u, []), key=lambda x: x[1])][:k]
        hits = [r for r, i in enumerate(ranked, 1) if i in rel]
        out["precision"].append(len(hits) / k)
        out["recall"].append(len(hits) / len(rel))
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(k, len(rel)) + 1))
        out["ndcg"].append(sum(1 / math.log2(r + 1) for r in hits) / idcg)
        out["map"].append(sum((n + 1) / r for n, r in enumerate(hits)) / len(rel))
        out["hit_rate"].append(1.0 if hits else 0.0)
        out["mrr"].append(1 / hits[0] if hits else 0.0)
    return {m: sum(v) / len(v) for m, v in out.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_reference_on_random_inputs(spark, seed):
    rng = random.Random(seed)
    recs, truth = {}, {}
    for u in range(30):
        recs[u] = [(i, r) for r, i in enumerate(rng.sample(range(40), rng.randint(0, 12)), 1)]
        truth[u] = set(rng.sample(range(40), rng.randint(1, 8)))
    rec_df = frame(spark, [(u, i, r) for u, lst in recs.items() for i, r in lst])
    truth_df = frame(spark, [(u, i) for u, s in truth.items() for i in s], "user_idx int, item_idx int")
    got = ranking_metrics(rec_df, truth_df, k=10)
    want = reference(recs, truth, 10)
    for m, v in want.items():
        assert got[m] == pytest.approx(v), m


def test_beyond_accuracy(spark):
    recs = frame(spark, [(1, 1, 1), (1, 2, 2), (2, 1, 1), (2, 3, 2)])
    train = frame(spark, [(1, 1), (2, 1), (3, 1), (4, 2)], "user_idx int, item_idx int")
    cats = spark.createDataFrame([(1, "a"), (2, "a"), (3, "b")], "item_idx int, category string")
    assert coverage(recs, n_items=6, k=2) == pytest.approx(3 / 6)
    # item 1: 3 of 4 users, item 2: 1 of 4, item 3: nobody (counted as one)
    expected = (2 * -math.log2(3 / 4) + -math.log2(1 / 4) + -math.log2(1 / 4)) / 4
    assert novelty(recs, train, k=2) == pytest.approx(expected)
    assert diversity(recs, cats, k=2) == pytest.approx((0.0 + 1.0) / 2)


def test_embedding_diversity_is_the_mean_pairwise_cosine_distance(spark):
    vectors = spark.createDataFrame([(1, [1.0, 0.0]), (2, [3.0, 0.0]), (3, [0.0, 2.0]), (4, [-1.0, 0.0])],
                                    "item_idx int, features array<float>")
    recs = frame(spark, [(1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 1), (2, 4, 2), (3, 1, 1)])
    # user 1: pairs (1,2) same direction, (1,3) and (2,3) orthogonal -> (0 + 1 + 1) / 3;
    # user 2: opposite vectors -> 2; user 3 has one item and no pairs
    assert embedding_diversity(recs, vectors, k=3) == pytest.approx((2 / 3 + 2.0) / 2)


def test_rating_errors(spark):
    pred = spark.createDataFrame([(4.0, 3.0), (2.0, 2.5)], "rating double, prediction double")
    got = rating_errors(pred)
    assert got["rmse"] == pytest.approx(math.sqrt((1 + 0.25) / 2)) and got["mae"] == pytest.approx(0.75)


def test_every_model_in_one_pass_scores_each_as_if_alone(spark):
    """The pipeline scores all models' lists in one job per metric; each model must get what it
    gets alone, including a model with no list for a relevant user (a miss, not a smaller
    denominator) and a model whose lists fill nobody's."""
    rows = [("a", 1, 10, 1, False), ("a", 1, 11, 2, False), ("a", 2, 12, 1, True), ("a", 2, 13, 2, True),
            ("b", 1, 11, 1, False), ("b", 1, 13, 2, False), ("b", 1, 10, 3, False)]
    recs = spark.createDataFrame(rows, "model string, user_idx int, item_idx int, rank int, filled boolean")
    truth = frame(spark, [(1, 10), (2, 12), (2, 14)], "user_idx int, item_idx int")
    train = frame(spark, [(1, 11), (2, 11), (3, 13)], "user_idx int, item_idx int")
    cats = spark.createDataFrame([(10, "x"), (11, "x"), (12, "y"), (13, "z")], "item_idx int, category string")
    vectors = spark.createDataFrame([(10, [1.0, 0.0]), (11, [0.0, 1.0]), (12, [1.0, 1.0]), (13, [-1.0, 0.0])],
                                    "item_idx int, features array<float>")
    grouped = {"ranking": ranking_metrics_by(recs, truth, 2, "model"), "coverage": coverage_by(recs, 8, 2, "model"),
               "novelty": novelty_by(recs, train, 2, "model"), "diversity": diversity_by(recs, cats, 2, "model"),
               "embedding": embedding_diversity_by(recs, vectors, 2, "model"),
               "filled": filled_share_by(recs, "model")}
    # b: user 1 hits item 10 at rank 3, outside k = 2; user 2 has no list from b: both misses
    assert grouped["ranking"]["b"] == dict.fromkeys(["precision", "recall", "ndcg", "map", "hit_rate", "mrr"], 0.0)
    # a: user 1 hits at rank 1 (1 of 1 relevant), user 2 at rank 1 (1 of 2)
    assert grouped["ranking"]["a"]["recall"] == pytest.approx((1 + 0.5) / 2)
    assert grouped["coverage"] == pytest.approx({"a": 4 / 8, "b": 2 / 8})
    assert grouped["filled"] == pytest.approx({"a": 0.5, "b": 0.0})
    for name in ("a", "b"):
        alone = recs.where(f"model = '{name}'").drop("model")
        assert grouped["ranking"][name] == pytest.approx(ranking_metrics(alone, truth, 2))
        assert grouped["coverage"][name] == pytest.approx(coverage(alone, 8, 2))
        assert grouped["novelty"][name] == pytest.approx(novelty(alone, train, 2))
        assert grouped["diversity"][name] == pytest.approx(diversity(alone, cats, 2))
        assert grouped["embedding"][name] == pytest.approx(embedding_diversity(alone, vectors, 2))
        assert grouped["filled"][name] == pytest.approx(filled_share(alone))
