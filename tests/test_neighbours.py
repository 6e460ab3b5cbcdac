"""Neighbours from co-occurrence and from factors, the recommendations they give, and
per-category popularity, on data small enough to check by hand."""
import pytest
from pyspark.sql import functions as F

from recsys_spark.cf.neighbours import (
    bounded_baskets,
    cooccurrence_neighbours,
    factor_neighbours,
    item_based_recs,
    transition_recs,
    user_based_recs,
)
from recsys_spark.cf.popularity import category_popularity_recs
from recsys_spark.config import NeighboursConf, TopKConf


def lists(df, key):
    out = {}
    for r in df.orderBy(key, "rank").collect():
        out.setdefault(r[key], []).append(r["neighbour_idx" if "neighbour_idx" in df.columns else "item_idx"])
    return out


@pytest.fixture
def baskets(spark):
    # items 1 and 2 go together (users 1-3), 3 and 4 together (users 4-5); user 3 also had 3
    rows = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 3), (4, 4), (5, 3), (5, 4)]
    return (spark.createDataFrame(rows, "user_idx int, item_idx int")
            .withColumns({"confidence": F.lit(1.0), "last_ts": F.current_timestamp()}))


def test_cooccurrence_jaccard_and_lift(baskets):
    jac = cooccurrence_neighbours(baskets, NeighboursConf(n=5, measure="jaccard", min_count=1))
    got = {(r["item_idx"], r["neighbour_idx"]): r["score"] for r in jac.collect()}
    assert got[(1, 2)] == pytest.approx(3 / 3)          # 3 shared of 3 + 3 - 3 users
    assert got[(3, 4)] == pytest.approx(2 / 3)          # 2 shared of 3 + 2 - 2
    assert got[(1, 3)] == pytest.approx(1 / 5)
    assert lists(jac, "item_idx")[1] == [2, 3]
    lift = cooccurrence_neighbours(baskets, NeighboursConf(n=5, measure="lift", min_count=1))
    assert {(r["item_idx"], r["neighbour_idx"]): r["score"] for r in lift.collect()}[(3, 4)] == pytest.approx(2 / 6)
    strict = cooccurrence_neighbours(baskets, NeighboursConf(n=5, min_count=2))
    assert set(lists(strict, "item_idx")) == {1, 2, 3, 4} and lists(strict, "item_idx")[1] == [2]


def test_cooccurrence_caps_each_user_to_recent_items(spark):
    rows = [(1, 1, "2025-01-01"), (1, 2, "2025-01-02"), (1, 3, "2025-01-03"), (2, 1, "2025-01-01"),
            (2, 3, "2025-01-03"), (2, 4, "2025-01-04")]
    df = spark.createDataFrame(rows, "user_idx int, item_idx int, d string").withColumn("last_ts", F.to_timestamp("d"))
    got = lists(cooccurrence_neighbours(df, NeighboursConf(n=5, min_count=1, max_items_per_user=2)), "item_idx")
    assert got == {2: [3], 3: [2, 4], 4: [3]}  # item 1 is the oldest item of both users


def test_cooccurrence_pairs_are_bounded_in_total_by_sampling_heavy_users(spark):
    # 300 light users with 2 items (600 pairs) and 400 heavy ones with 10 (36,000 pairs)
    rows = [(u, i) for u in range(300) for i in (1, 2)] + [(u, i) for u in range(300, 700) for i in range(10, 20)]
    basket = spark.createDataFrame(rows, "user_idx int, item_idx int")
    assert bounded_baskets(basket, 10**6) is basket                      # under the budget: untouched
    kept = bounded_baskets(basket, 600 + 9_000).groupBy("user_idx").count().collect()
    light = [r for r in kept if r["count"] == 2]
    heavy = [r for r in kept if r["count"] == 10]
    assert len(light) == 300 and len(kept) == len(light) + len(heavy)    # light users whole, heavy whole or out
    assert 70 <= len(heavy) <= 130                                       # a quarter of 400 fits the budget
    again = bounded_baskets(basket, 600 + 9_000).groupBy("user_idx").count().collect()
    assert sorted(r["user_idx"] for r in again) == sorted(r["user_idx"] for r in kept)


def test_factor_neighbours_are_cosine_and_skip_the_item_itself(spark):
    factors = spark.createDataFrame([(1, [1.0, 0.0]), (2, [10.0, 1.0]), (3, [0.0, 1.0]), (4, [-1.0, 0.2])],
                                    "id int, features array<float>")
    top = factor_neighbours(factors, "item_idx", 2, TopKConf(block_mb=2 * 4 * 4 / 2**20))  # two users a block
    assert lists(top, "item_idx") == {1: [2, 3], 2: [1, 3], 3: [4, 2], 4: [3, 2]}
    score = {(r["item_idx"], r["neighbour_idx"]): r["score"] for r in top.collect()}
    assert score[(1, 2)] == pytest.approx(10 / 101 ** 0.5, rel=1e-5)


def test_item_and_user_based_recs(baskets):
    neighbours = cooccurrence_neighbours(baskets, NeighboursConf(n=5, min_count=1))
    recs = lists(item_based_recs(baskets, neighbours, 2), "user_idx")
    assert recs[1] == [3]          # via items 1 and 2: 1/5 + 1/5
    assert recs[4] == [1, 2]       # via item 3, tied at 1/5, ties by item
    assert recs[3] == [4]
    users = baskets.sparkSession.createDataFrame([(4, 1, 5, 0.9), (4, 2, 3, 0.5), (1, 1, 2, 0.8)],
                                                 "user_idx int, rank int, neighbour_idx int, score float")
    by_user = lists(user_based_recs(baskets, users, 3), "user_idx")
    assert by_user == {4: [1, 2]}  # user 5 had only what 4 had; user 3 adds 1 and 2; user 2 adds nothing to 1


def test_category_popularity_prefers_the_users_categories(spark):
    rows = [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (2, 2), (9, 3), (9, 4), (8, 4), (7, 5), (5, 3)]
    train = spark.createDataFrame(rows, "user_idx int, item_idx int")
    cats = spark.createDataFrame([(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "a")], "item_idx int, category string")
    users = train.select("user_idx").distinct()
    got = lists(category_popularity_recs(train, cats, users, k=2, top_categories=1), "user_idx")
    assert got[5] == [4]            # a 'b' user gets the most popular 'b' item they lack, never 'a' ones
    assert got[3] == [2, 5]         # an 'a' user: 2 (2 users) before 5 (1 user)
    assert 9 not in got             # both 'b' items seen: nothing left in the user's category


def test_transitions_follow_the_last_items(spark):
    # 1 -> 2 three times, 1 -> 3 once, 2 -> 4 twice; 0 is padding
    seqs = spark.createDataFrame([(1, [0, 1, 2, 4]), (2, [1, 2, 4]), (3, [1, 2]), (4, [1, 3]), (5, [0, 0, 1])],
                                 "user_idx int, items array<int>")
    seen = spark.createDataFrame([(5, 1), (3, 1), (3, 2)], "user_idx int, item_idx int")
    got = {r["user_idx"]: (r["item_idx"], r["score"]) for r in
           transition_recs(seqs, seen, k=2, last=2).where("rank = 1").collect()}
    assert got[5] == (2, pytest.approx(3.0))          # after 1: 2 (3 times) before 3 (once)
    assert got[3] == (4, pytest.approx(2.0))          # after 2 (weight 1): 4 twice; after 1 (1/2): 2 seen, 3 once
    ranked = lists(transition_recs(seqs, seen, k=3, last=2), "user_idx")
    assert ranked[3] == [4, 3]
