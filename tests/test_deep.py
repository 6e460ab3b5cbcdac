"""Deep models through the real stack: Spark-written Parquet, Petastorm shards, 2-process Horovod
(gloo) and TorchDistributor (DDP) training, resume from a checkpoint.

The tiny data has a planted order: within its group, every user walks the items in sequence
(i is followed by i + 1), and odd users like the first half of the catalog, even users the second.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.sql import functions as F

from recsys_spark.deep.data import (
    held_out_examples,
    materialise,
    next_item_examples,
    sequence_history,
    with_negatives,
)
from recsys_spark.deep.launch import launch
from recsys_spark.deep.loader import ShortEpochError, epoch_batches, shard_rows
from recsys_spark.deep.train import TrainSpec
from recsys_spark.pipeline.cf import history

N_USERS, N_ITEMS, HALF = 60, 30, 15


def walk(user: int, length: int) -> list[int]:
    base = 0 if user % 2 else HALF
    return [base + (user + step) % HALF + 1 for step in range(length)]


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("deep")
    rows = [(u, walk(u, 12)) for u in range(1, N_USERS + 1)]
    full = spark.createDataFrame(rows, "user_idx int, items array<int>")
    train_hist = full.select("user_idx", F.slice("items", 1, 11).alias("items"))
    target = full.select("user_idx", F.element_at("items", 12).alias("item_idx"))
    seqs = materialise(next_item_examples(train_hist, 8), str(root / "seq"), 4, block_rows=8)
    materialise(next_item_examples(train_hist, 8), str(root / "seq_lists"), 4)
    pairs = train_hist.select("user_idx", F.explode("items").alias("item_idx"))
    items = pairs.groupBy("item_idx").agg(F.countDistinct("user_idx").alias("n_users"))
    labelled = materialise(with_negatives(pairs, items, 2, "uniform", 7), str(root / "pairs"), 4, block_rows=16)
    seen = pairs.groupBy("user_idx").agg(F.collect_list("item_idx").alias("seen"))
    val = held_out_examples(sequence_history(train_hist), target, 8).join(seen, "user_idx")
    val.write.parquet(str(root / "val"))
    side = {"item_category": [0] + [1] * HALF + [2] * HALF, "item_price_level": [0] + [i % 3 for i in range(N_ITEMS)],
            "user_category": [0] + [1 if u % 2 else 2 for u in range(1, N_USERS + 1)]}
    return {"root": root, "seq_rows": seqs, "pair_rows": labelled, "side": side, "pairs": pairs}


def spec(data, model: str, ckpt: Path, **kw) -> TrainSpec:
    sequence = model in ("gru4rec", "sasrec")
    return TrainSpec(model=model, n_users=N_USERS, n_items=N_ITEMS,
                     train_path=str(data["root"] / ("seq" if sequence else "pairs")),
                     fields=["inputs", "targets"] if sequence else ["user_idx", "item_idx", "label"],
                     validation_path=str(data["root"] / "val"), checkpoint_dir=str(ckpt), side=data["side"],
                     max_len=8, dim=16, epochs=kw.pop("epochs", 4), batch_size=16, lr=0.01, patience=10, **kw)


def test_training_data_shapes(data, spark):
    seq = spark.read.parquet(str(data["root"] / "seq_lists")).orderBy("user_idx").first()
    assert seq["inputs"] == walk(1, 11)[2:10] and seq["targets"] == walk(1, 11)[3:]  # the last 9 of 11 items
    blocks = spark.read.parquet(str(data["root"] / "seq")).collect()
    sizes = [b["block_rows"] for b in blocks]
    assert sum(sizes) == data["seq_rows"] == N_USERS and max(sizes) == 8
    # a block's rows end to end as little-endian int32, 8 items each
    rows = {}
    for b in blocks:
        users = np.frombuffer(b["user_idx"], "<i4")
        inputs, targets = (np.frombuffer(b[c], "<i4").reshape(-1, 8).tolist() for c in ("inputs", "targets"))
        rows.update(zip(users.tolist(), zip(inputs, targets, strict=True), strict=True))
    assert rows[1] == (seq["inputs"], seq["targets"]) and sorted(rows) == list(range(1, N_USERS + 1))
    batches = list(epoch_batches(str(data["root"] / "pairs"), ["user_idx", "item_idx", "label"], 1000, 0, 1, seed=1))
    pairs = pd.DataFrame({k: torch.cat([b[k] for b in batches]).numpy() for k in ("user_idx", "item_idx", "label")})
    assert len(pairs) == data["pair_rows"] and (pairs["label"] == 1).sum() == N_USERS * 11
    assert 0 < (pairs["label"] == 0).sum() <= 2 * N_USERS * 11
    negatives = pairs.loc[pairs["label"] == 0, ["user_idx", "item_idx"]].merge(data["pairs"].toPandas())
    assert negatives.empty  # no negative is an item its user had


def test_blocked_parquet_names_the_column_it_cannot_hold(spark, tmp_path):
    ragged = spark.createDataFrame([(1, [1, 2]), (2, [3])], "user_idx int, items array<int>")
    with pytest.raises(Exception, match="column 'items' has arrays of lengths \\[1, 2\\]"):
        materialise(ragged, str(tmp_path / "ragged"), 1, block_rows=4)
    with pytest.raises(ValueError, match="column 'title' is string"):
        materialise(spark.createDataFrame([(1, "a")], "user_idx int, title string"), str(tmp_path / "text"), 1, 4)


def test_each_rank_reads_its_own_shard_and_all_rows_are_read(data):
    path = str(data["root"] / "seq")
    shards = shard_rows(path, 2)
    assert sum(shards) == data["seq_rows"] and min(shards) > 0
    users = []
    for rank in range(2):
        batches = list(epoch_batches(path, ["user_idx", "inputs"], 7, rank, 2, seed=1))
        assert sum(len(b["user_idx"]) for b in batches) == shards[rank]
        assert all(b["inputs"].shape[1] == 8 for b in batches)
        users += [int(u) for b in batches for u in b["user_idx"]]
    assert sorted(users) == list(range(1, N_USERS + 1))
    with pytest.raises(ShortEpochError, match="4 row groups cannot feed 5 ranks"):
        shard_rows(path, 5)


def test_blocked_and_list_layouts_give_the_same_batches(data):
    """The blocked layout changes how rows are stored, not which rows go where or in what order."""
    read = {layout: list(epoch_batches(str(data["root"] / layout), ["user_idx", "inputs", "targets"], 7, 1, 2, seed=3))
            for layout in ("seq", "seq_lists")}
    assert len(read["seq"]) == len(read["seq_lists"]) > 1
    for a, b in zip(read["seq"], read["seq_lists"], strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a) and a["inputs"].dtype == torch.int64


def test_shuffle_is_reproducible_per_seed_and_differs_between_seeds(data):
    def order(seed: int) -> list[int]:
        batches = epoch_batches(str(data["root"] / "seq"), ["user_idx"], 7, 0, 1, seed)
        return [int(u) for b in batches for u in b["user_idx"]]

    first = order(5)
    assert first == order(5) and sorted(first) == list(range(1, N_USERS + 1))
    assert order(6) != first


@pytest.mark.parametrize("model", ["two_tower", "ncf", "gru4rec", "sasrec"])
def test_two_process_horovod_training(data, tmp_path, model):
    results = launch(spec(data, model, tmp_path), "horovod_spark", 2)
    assert [r["rank"] for r in results] == [0, 1] and all(r["size"] == 2 for r in results)
    assert results[0]["digest"] == pytest.approx(results[1]["digest"], rel=1e-6)
    history = results[0]["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert Path(tmp_path, "best_model.pt").exists()


@pytest.mark.parametrize("loss", ["ce", "sampled"])
def test_sequence_models_learn_the_planted_order(data, tmp_path, loss):
    """Full softmax, and softmax over 8 shared negatives of 30 items (what a large catalogue uses)."""
    results = launch(spec(data, "sasrec", tmp_path, epochs=15, loss=loss, negatives=8), "horovod_spark", 2)
    assert results[0]["best_val_ndcg"] > 0.8  # the next item is determined by the last one


def test_torch_distributor_ddp(data, tmp_path):
    results = launch(spec(data, "gru4rec", tmp_path, epochs=3), "torch_distributor", 2)
    assert results[0]["digest"] == pytest.approx(results[1]["digest"], rel=1e-6)
    assert results[0]["history"][-1]["loss"] < results[0]["history"][0]["loss"]


def test_resumed_run_ends_like_an_uninterrupted_one(data, tmp_path):
    straight = launch(spec(data, "gru4rec", tmp_path / "a", epochs=3), "horovodrun", 2)
    launch(spec(data, "gru4rec", tmp_path / "b", epochs=1), "horovodrun", 2)
    resumed = launch(spec(data, "gru4rec", tmp_path / "b", epochs=3), "horovodrun", 2)
    assert [h["epoch"] for h in resumed[0]["history"]] == [1, 2, 3]
    assert resumed[0]["digest"] == pytest.approx(straight[0]["digest"], rel=1e-4)
    assert resumed[0]["history"][-1]["loss"] == pytest.approx(straight[0]["history"][-1]["loss"], rel=1e-3)


def test_train_deep_stage_scores_into_gold_and_exports(shop):
    """The pipeline's train_deep stage (SASRec under horovod.spark.run) on the tiny shop."""
    lake = shop.lake
    recs = lake.read("gold", "recs").where("model = 'sasrec'")
    seen = history(shop, "interactions").select("user_idx", "item_idx")  # train + validation
    assert recs.count() > 0 and recs.join(seen, ["user_idx", "item_idx"]).count() == 0
    assert recs.groupBy("user_idx").count().agg(F.max("count")).first()[0] == shop.cfg.cf.k
    metrics = {r["metric"]: r["value"] for r in lake.read("gold", "metrics")
               .where("model = 'sasrec' AND slice = 'all'").collect()}
    assert metrics["ndcg"] > 0
    n_items = lake.count("gold", "id_map_items")
    assert lake.read("gold", "deep_item_embeddings").where("model = 'sasrec'").count() == n_items
    exported = Path(shop.cfg.lakehouse.root, "_models", "sasrec")
    meta = json.loads((exported / "serving.json").read_text())
    scorer = torch.jit.load(str(exported / "model.pt"))
    inputs = torch.zeros(3, meta["sequence_length"], dtype=torch.long)
    inputs[:, -1] = torch.tensor([1, 2, 3])
    assert scorer(inputs).shape == (3, n_items + 1)
