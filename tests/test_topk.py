"""The blocked top-K: exact against a full sort, seen items masked, any block size."""
import numpy as np
import pyarrow as pa
import pytest
import torch

from recsys_spark.arrays import columns_of
from recsys_spark.cf.topk import GROUP, best_k, list_column, mask, top_k_for_all_users
from recsys_spark.config import TopKConf


@pytest.mark.parametrize("n", [5, 4 * GROUP, 40 * GROUP + 7])  # fewer groups than k, whole groups, a partial one
def test_best_k_equals_a_full_sort(n):
    rng = np.random.default_rng(n)
    scores = rng.standard_normal((50, n)).astype(np.float32)
    tied = [c for c in (40, 5, 3) if c < n]
    scores[0, tied] = 10.0                          # ties at the top: lowest column first
    scores[1, -3:] = 9.0                            # winners in the partial last group
    top, values = best_k(torch.from_numpy(scores.copy()), 10)
    k = min(10, n)
    expected = np.lexsort((np.tile(np.arange(n), (50, 1)), -scores), axis=1)[:, :k]
    assert np.array_equal(top, expected)
    assert np.array_equal(values, np.take_along_axis(scores, expected, axis=1))
    assert list(top[0][:len(tied)]) == sorted(tied)
    if n > 10:
        assert list(top[1][:3]) == [n - 3, n - 2, n - 1]


def test_mask_sets_each_rows_listed_columns_and_skips_missing_items():
    column = pa.array([[0, 2], None, [], [1, -1, 3]], pa.list_(pa.int64()))
    offsets, values = list_column(column)
    assert list(offsets) == [0, 2, 2, 2, 5]
    scores = torch.zeros(2, 4)
    mask(scores, offsets[2:5], values)              # the block of rows 2 and 3
    assert scores.isinf().nonzero().tolist() == [[1, 1], [1, 3]]


def test_top_k_for_all_users_masks_seen_in_small_blocks(spark):
    items = spark.createDataFrame([(10, [1.0, 0.0]), (20, [0.9, 0.1]), (30, [0.0, 1.0]), (40, [-1.0, 0.0])],
                                  "id int, features array<float>")
    users = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.0, 1.0]), (3, [1.0, 1.0])], "id int, features array<float>")
    seen = spark.createDataFrame([(1, 10), (1, 99), (3, 30), (3, 20), (3, 10)], "user_idx int, item_idx int")
    one_user = TopKConf(block_mb=4 * 4 / 2**20)  # a block of one user; item 99 has no factors
    top = top_k_for_all_users(users, items, 2, seen, one_user)
    got = {}
    for r in top.orderBy("user_idx", "rank").collect():
        got.setdefault(r["user_idx"], []).append((r["item_idx"], round(r["score"], 4)))
    assert got == {1: [(20, 0.9), (30, 0.0)], 2: [(30, 1.0), (20, 0.1)], 3: [(40, -1.0)]}


def test_ivf_search_of_every_cell_equals_exact(spark):
    """Searching all cells makes the index exhaustive: its lists must be the exact ones."""
    rng = np.random.default_rng(7)
    items = spark.createDataFrame([(i, rng.standard_normal(8).tolist()) for i in range(300)],
                                  "id int, features array<float>")
    users = spark.createDataFrame([(u, rng.standard_normal(8).tolist()) for u in range(40)],
                                  "id int, features array<float>")
    seen = spark.createDataFrame([(u, (u * 7 + j) % 300) for u in range(40) for j in range(u % 5)],
                                 "user_idx int, item_idx int")
    lists = {}
    for name, conf in (("exact", TopKConf()), ("ivf", TopKConf(approximate_above=100, ivf_lists=4, ivf_probe=4))):
        rows = top_k_for_all_users(users, items, 5, seen, conf).orderBy("user_idx", "rank").collect()
        lists[name] = [(r["user_idx"], r["rank"], r["item_idx"], round(r["score"], 4)) for r in rows]
    assert len(lists["exact"]) == 40 * 5 and lists["ivf"] == lists["exact"]
    assert not {(u, i) for u, _, i, _ in lists["ivf"]} & {(r[0], r[1]) for r in seen.collect()}


def test_columns_of_finds_positions_in_a_sorted_array_and_minus_one_elsewhere():
    ids = np.array([2, 5, 9])
    assert columns_of(ids, np.array([9, 3, 2, 10, 5])).tolist() == [2, -1, 0, -1, 1]
    assert columns_of(np.array([], dtype=np.int64), np.array([1, 2])).tolist() == [-1, -1]
