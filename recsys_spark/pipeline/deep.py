"""train_deep: gold tables -> Petastorm-ready Parquet -> distributed PyTorch -> gold.recs.

The data is prepared in Spark and materialised once per (inputs, settings); training runs under
the configured launcher; the best epoch (validation NDCG@k) is scored for every user into
gold.recs as model `deep.model`, its item embeddings go to gold.deep_item_embeddings, and the
model is exported for serving. A killed run restarts from its last epoch's checkpoint.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.cf.topk import collect_arrow
from recsys_spark.config import SEQUENCE_MODELS
from recsys_spark.deep.data import (
    held_out_examples,
    last_items,
    local_path,
    materialise,
    next_item_examples,
    sequence_history,
    with_negatives,
)
from recsys_spark.deep.launch import launch
from recsys_spark.deep.score import export, item_embeddings, load_best, top_k
from recsys_spark.deep.train import TrainSpec
from recsys_spark.pipeline.cf import (
    fallback_lists,
    final_depth,
    held_out,
    history,
    learning_users,
    model_path,
    write_candidates,
    write_recs,
)
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import digest, run_once

log = logging.getLogger("recsys_spark")
STAGE = "train_deep"
INPUTS = [("gold", t) for t in ("interactions", "sequences", "splits", "item_features", "user_features")]


def first_held_out(splits: DataFrame, targets: DataFrame) -> DataFrame:
    """(user_idx, item_idx): of each user's held-out pairs, the one that came first: one target per
    user, as next-item evaluation wants."""
    first = splits.groupBy("user_idx", "item_idx").agg(F.min("ts").alias("ts"))
    rows = targets.join(first, ["user_idx", "item_idx"])
    w = Window.partitionBy("user_idx").orderBy("ts", "item_idx")
    return rows.withColumn("_r", F.row_number().over(w)).where("_r = 1").select("user_idx", "item_idx")


def side_features(items: DataFrame, users: DataFrame, n_items: int, n_users: int) -> dict[str, np.ndarray]:
    """Lookups by id (0 = unknown/padding): item category and price level, user's top category.
    Coded in Spark and collected through Arrow into arrays, which pickle as one buffer each."""
    cats = items.select("category").where(F.col("category").isNotNull()).distinct()
    code = cats.withColumn("code", F.row_number().over(Window.orderBy("category")))
    item_rows = collect_arrow(items.join(F.broadcast(code), "category", "left").select(
        "item_idx", F.coalesce("code", F.lit(0)).alias("c"),
        F.coalesce(F.col("price_level") + 1, F.lit(0)).alias("p")))
    user_rows = collect_arrow(users.select("user_idx", F.col("category_shares")[0]["category"].alias("category"))
                              .join(F.broadcast(code), "category", "left")
                              .select("user_idx", F.coalesce("code", F.lit(0)).alias("c")))

    def lookup(rows, key: str, value: str, size: int) -> np.ndarray:
        out = np.zeros(size + 1, dtype=np.int32)
        out[rows.column(key).to_numpy()] = rows.column(value).to_numpy()
        return out

    return {"item_category": lookup(item_rows, "item_idx", "c", n_items),
            "item_price_level": lookup(item_rows, "item_idx", "p", n_items),
            "user_category": lookup(user_rows, "user_idx", "c", n_users)}


def run(ctx: Context) -> None:
    run_once(ctx, STAGE, lambda run_id: _run(ctx, run_id))


def seen_lists(interactions: DataFrame) -> DataFrame:
    return interactions.groupBy("user_idx").agg(F.collect_list("item_idx").alias("seen"))


def _run(ctx: Context, run_id: str) -> None:
    """Trains on the tuning cut, the epoch picked by validation; scores test lists from the final
    cut: a sequence model's input ends with the user's validation item, and train + validation
    items are excluded."""
    conf, lake, k = ctx.cfg.deep, ctx.lake, ctx.cfg.cf.k
    # checkpoints and materialised data are keyed by the inputs' table ids too, so a rebuilt
    # lakehouse (versions from 0 again) never resumes another run's checkpoint
    key = digest([[lake.identity(layer, t) for layer, t in INPUTS], conf.model_dump(), k,
                  ctx.cfg.cf.relevant_event_types])
    sequence = conf.model in SEQUENCE_MODELS
    name = conf.recs_name
    train = history(ctx, "interactions", "tuning")
    seen = seen_lists(train)
    n_users = lake.read("gold", "id_map_users").agg(F.max("user_idx")).first()[0]
    n_items = lake.read("gold", "id_map_items").agg(F.max("item_idx")).first()[0]
    histories = sequence_history(history(ctx, "sequences", "tuning"))
    cache = (conf.cache_dir or f"{ctx.cfg.lakehouse.root}/_petastorm").rstrip("/") + f"/{key}"
    files = conf.num_proc * conf.files_per_proc

    with ctx.progress.step(STAGE, f"training data ({'sequences' if sequence else 'pairs with negatives'})") as step:
        if sequence:
            data, fields = next_item_examples(histories, conf.max_len), ["inputs", "targets"]
        else:
            data = with_negatives(train, history(ctx, "item_features", "tuning").select("item_idx", "n_users"),
                                  conf.negatives, conf.negative_sampling, conf.seed)
            fields = ["user_idx", "item_idx", "label"]
        step.rows = materialise(data, f"{cache}/train", files, conf.block_rows)
    with ctx.progress.step(STAGE, "validation targets") as step:
        targets = held_out(ctx, "validation")
        targets = first_held_out(lake.read("gold", "splits"), targets)
        validation = held_out_examples(histories, targets, conf.max_len).join(seen, "user_idx")
        step.rows = materialise(validation, f"{cache}/validation", conf.num_proc)

    checkpoints = local_path(f"{ctx.cfg.lakehouse.checkpoint_dir.rstrip('/')}/deep/{name}-{key}")
    spec = TrainSpec(model=conf.model, n_users=n_users, n_items=n_items, train_path=local_path(f"{cache}/train"),
                     fields=fields, validation_path=local_path(f"{cache}/validation"), checkpoint_dir=checkpoints,
                     side=side_features(history(ctx, "item_features", "tuning"),
                                        history(ctx, "user_features", "tuning"), n_items, n_users),
                     max_len=conf.max_len, dim=conf.dim, loss=conf.loss, negatives=conf.sampled_negatives,
                     hyper=conf.model_dump(include={"sasrec", "gru4rec", "ncf"}), epochs=conf.epochs,
                     batch_size=conf.batch_size, lr=conf.lr, patience=conf.patience, max_minutes=conf.max_minutes,
                     seed=conf.seed, k=k,
                     workers=conf.workers, mixed_precision=conf.mixed_precision)
    with ctx.progress.step(STAGE, f"train {name} ({conf.launcher}, {conf.num_proc} processes)") as step:
        results = launch(spec, conf.launcher, conf.num_proc, conf.use_gpu)
        step.rows = len(results[0]["history"])
    log.info("[%s] %s: best validation NDCG@%d %.4f after %d epochs", STAGE, name, k, results[0]["best_val_ndcg"],
             len(results[0]["history"]))

    model = load_best(spec)
    # the tuning cut's lists for the users hybrid learns from, the final cut's for everyone: hybrid
    # can fuse this model like any other; its gold.recs lists are the final cut's first k
    tuning_users = learning_users(ctx).join(seen, "user_idx")
    if sequence:
        tuning_users = tuning_users.join(last_items(histories, conf.max_len), "user_idx")
    write_candidates(ctx, STAGE, "tuning", {name: top_k(spec, model, tuning_users, ctx.cfg.hybrid.candidates)})
    final = history(ctx, "interactions")
    users = lake.read("gold", "id_map_users").select("user_idx").join(seen_lists(final), "user_idx")
    if sequence:
        users = users.join(last_items(sequence_history(history(ctx, "sequences")), conf.max_len), "user_idx")
    lists = top_k(spec, model, users, final_depth(k, ctx.cfg.hybrid.candidates)).cache()
    write_candidates(ctx, STAGE, "final", {name: lists})
    fallback = fallback_lists(ctx, final)
    write_recs(ctx, STAGE, run_id, {name: lists.where(F.col("rank") <= k)}, fallback)
    fallback.unpersist()
    lists.unpersist()
    with ctx.progress.step(STAGE, "gold.deep_item_embeddings") as step:
        vectors = item_embeddings(model)
        rows = [(name, i, v.tolist()) for i, v in enumerate(vectors) if i > 0]
        frame = ctx.spark.createDataFrame(rows, "model string, item_idx int, features array<float>")
        lake.overwrite(frame, "gold", "deep_item_embeddings", replace_where=f"model = '{name}'")
        step.rows = len(rows)
    maps = {kind: lake.ref("gold", f"id_map_{kind}") for kind in ("users", "items")}
    out = export(spec, model, local_path(model_path(ctx, name)), maps)
    log.info("[%s] exported %s (TorchScript) with serving.json; spec %s", STAGE, out,
             {k: v for k, v in asdict(spec).items() if k != "side"})
