"""ALS finds the shop's planted tastes; our top-K equals recommendForAllUsers; popularity is right."""
from datetime import datetime

import numpy as np
import pytest
from pyspark.sql import functions as F

from recsys_spark.cf.als import fit_als
from recsys_spark.cf.ease import ease_gram, ease_recs, ease_weights
from recsys_spark.cf.popularity import popularity_recs
from recsys_spark.cf.topk import top_k_for_all_users
from recsys_spark.config import ALSConf, EASEConf
from recsys_spark.evaluation.ranking import ranking_metrics
from recsys_spark.pipeline.cf import history


@pytest.fixture(scope="module")
def data(shop):
    splits = shop.lake.read("gold", "splits")
    train = history(shop, "interactions")
    seen = train.select("user_idx", "item_idx")
    test = (splits.where("split = 'test' AND event_type IN ('click', 'add_to_cart', 'purchase')")
            .select("user_idx", "item_idx").distinct().join(seen, ["user_idx", "item_idx"], "left_anti"))
    model = fit_als(train, ALSConf(rank=16, reg_param=0.1, alpha=5.0, max_iter=10))
    return train, seen, test, model


def test_popularity_ranks_by_distinct_users_and_skips_seen(spark):
    train = spark.createDataFrame([(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 3), (4, 4)],
                                  "user_idx int, item_idx int").withColumn("last_ts", F.current_timestamp())
    recs = popularity_recs(train, train, k=2)
    got = {u: [r["item_idx"] for r in sorted(recs.where(f"user_idx = {u}").collect(), key=lambda r: r["rank"])]
           for u in (1, 3, 4)}
    assert got == {1: [3, 4], 3: [2, 4], 4: [1, 2]}


def test_popularity_on_the_shop_equals_counting_by_hand(data):
    train = data[0]
    pairs = {(r["user_idx"], r["item_idx"]) for r in train.select("user_idx", "item_idx").collect()}
    users_of: dict[int, int] = {}
    for _, item in pairs:
        users_of[item] = users_of.get(item, 0) + 1
    order = sorted(users_of, key=lambda i: (-users_of[i], i))
    k = 5
    expected = {u: [i for i in order if (u, i) not in pairs][:k] for u, _ in pairs}
    recs = popularity_recs(train, train, k)
    got: dict[int, list[int]] = {}
    for r in recs.orderBy("user_idx", "rank").collect():
        got.setdefault(r["user_idx"], []).append(r["item_idx"])
    assert got == expected


def test_recent_popularity_counts_only_the_window(spark):
    rows = [(1, 1, "2025-01-01"), (2, 1, "2025-01-02"), (3, 1, "2025-01-03"), (1, 2, "2025-03-01"),
            (2, 2, "2025-03-02"), (3, 3, "2025-03-03")]
    train = spark.createDataFrame(rows, "user_idx int, item_idx int, d string").withColumn("last_ts",
                                                                                         F.to_timestamp("d"))
    users = spark.createDataFrame([(9,)], "user_idx int")
    recs = popularity_recs(train, users, k=3, since=datetime(2025, 2, 1))
    assert [r["item_idx"] for r in recs.orderBy("rank").collect()] == [2, 3]


def test_our_top_k_equals_recommend_for_all_users(data):
    train, seen, _, model = data
    k = 10
    most_seen = seen.groupBy("user_idx").count().agg(F.max("count")).first()[0]
    theirs = (model.recommendForAllUsers(k + most_seen)
              .select("user_idx", F.posexplode("recommendations").alias("pos", "rec"))
              .select("user_idx", F.col("rec.item_idx").alias("item_idx"), F.col("pos"))
              .join(seen, ["user_idx", "item_idx"], "left_anti"))
    theirs_lists = {}
    for r in theirs.orderBy("user_idx", "pos").collect():
        lst = theirs_lists.setdefault(r["user_idx"], [])
        if len(lst) < k:
            lst.append(r["item_idx"])
    ours = top_k_for_all_users(model.userFactors, model.itemFactors, k, seen)
    ours_lists = {}
    for r in ours.orderBy("user_idx", "rank").collect():
        ours_lists.setdefault(r["user_idx"], []).append(r["item_idx"])
    assert ours_lists.keys() == theirs_lists.keys()
    same = sum(ours_lists[u] == theirs_lists[u] for u in ours_lists)
    assert same / len(ours_lists) >= 0.99  # only float near-ties may swap
    assert ours.join(seen, ["user_idx", "item_idx"]).count() == 0


def test_als_beats_popularity_on_planted_tastes(data):
    train, seen, test, model = data
    users = test.select("user_idx").distinct()
    als = ranking_metrics(top_k_for_all_users(model.userFactors, model.itemFactors, 10, seen), test, 10)
    pop = ranking_metrics(popularity_recs(train, users, 10), test, 10)
    assert als["ndcg"] > 1.3 * pop["ndcg"], (als, pop)
    assert als["recall"] > pop["recall"]


def test_ease_is_its_closed_form_over_the_most_popular_items(spark):
    had = {0: [1, 2, 3], 1: [1, 2], 2: [2, 3, 4], 3: [1, 4], 4: [2, 5]}
    pairs = spark.createDataFrame([(u, i) for u, items in had.items() for i in items], "user_idx int, item_idx int")
    x = np.zeros((5, 5))
    for u, items in had.items():
        x[u, [i - 1 for i in items]] = 1.0
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(5))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    ids, weights = ease_weights(pairs, EASEConf(l2=2.0, max_items=10))
    assert ids.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(weights, b, rtol=1e-5, atol=1e-6)
    scores = np.where(x > 0, -np.inf, x @ b)
    expected = {u: [int(c) + 1 for c in np.lexsort((np.arange(5), -scores[u]))[:2] if np.isfinite(scores[u, c])]
                for u in had}
    # a repeated pair is still one interaction; a Gram matrix summed once serves another l2
    twice = pairs.unionAll(pairs)
    for recs in (ease_recs(twice, 2, EASEConf(l2=2.0, max_items=10)),
                 ease_recs(pairs, 2, EASEConf(l2=2.0), gram=ease_gram(pairs, 10))):
        got: dict[int, list[int]] = {}
        for r in recs.orderBy("user_idx", "rank").collect():
            got.setdefault(r["user_idx"], []).append(r["item_idx"])
        assert got == expected
    # two items most users had (2: four users, 1: three); the rest are outside the model
    assert ease_weights(pairs, EASEConf(l2=2.0, max_items=2))[0].tolist() == [1, 2]
