"""Feature transforms on tiny DataFrames with hand-computed answers."""
from datetime import datetime

import pytest

from recsys_spark.config import load_config
from recsys_spark.features.build import interactions, sequences
from recsys_spark.features.idmap import extend_id_map

CONF = load_config(None, overrides=["features.sequence_length=4", "deep.max_len=4",
                                   "features.half_life_days=10"]).features


def test_id_map_extends_without_renumbering(spark):
    first = extend_id_map(None, spark.createDataFrame([("b",), ("a",), ("a",)], "id string"), "id", "idx")
    assert sorted(map(tuple, first.collect())) == [("a", 1), ("b", 2)]
    more = spark.createDataFrame([("c",), ("a",), (None,), ("0",)], "id string")
    added = extend_id_map(first, more, "id", "idx")
    assert sorted(map(tuple, added.collect())) == [("0", 3), ("c", 4)]


def test_id_map_is_dense_and_sorted_across_many_partitions(spark):
    ids = spark.createDataFrame([(f"u{i:04d}",) for i in range(1000)], "id string").repartition(7)
    first = extend_id_map(None, ids.where("id < 'u0500'"), "id", "idx").toPandas()
    assert first["idx"].tolist() == list(range(1, 501)) and first["id"].is_monotonic_increasing
    added = extend_id_map(spark.createDataFrame(first), ids, "id", "idx").toPandas()
    assert added["idx"].tolist() == list(range(501, 1001)) and added["id"].iloc[0] == "u0500"


def test_interactions_weight_and_decay(spark):
    end = datetime(2025, 1, 21)
    rows = [(1, 10, "view", datetime(2025, 1, 21), None),
            (1, 10, "purchase", datetime(2025, 1, 11), None),   # 10 days before the end: half weight
            (1, 11, "rating", datetime(2025, 1, 1), 4.0),       # 20 days: a quarter
            (2, 10, "search", datetime(2025, 1, 21), None)]
    train = spark.createDataFrame(rows, "user_idx int, item_idx int, event_type string, ts timestamp, rating double")
    got = {(r["user_idx"], r["item_idx"]): r for r in interactions(train, CONF, end).collect()}
    assert got[(1, 10)]["confidence"] == pytest.approx(1.0 + 8.0 * 0.5)
    assert got[(1, 10)]["n_events"] == 2 and got[(1, 10)]["purchased"]
    assert got[(1, 11)]["confidence"] == pytest.approx(6.0 * 0.25) and got[(1, 11)]["rating"] == 4.0
    assert got[(2, 10)]["confidence"] == pytest.approx(0.5)


def test_sequences_keep_last_items_in_order_left_padded(spark):
    rows = [(1, i, "click", datetime(2025, 1, 1 + i)) for i in (5, 3, 1, 2, 4)] + \
           [(2, 7, "purchase", datetime(2025, 1, 2)), (2, 8, "view", datetime(2025, 1, 3))]
    train = spark.createDataFrame(rows, "user_idx int, item_idx int, event_type string, ts timestamp")
    got = {r["user_idx"]: (r["items"], r["length"]) for r in sequences(train, CONF).collect()}
    assert got[1] == ([2, 3, 4, 5], 4)
    assert got[2] == ([0, 0, 0, 7], 1)   # views are not in the sequence
