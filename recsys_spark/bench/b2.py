"""B2: next item, leave-one-out, full ranking with seen items removed, top 10, on any data set with
an order (a conf/datasets name or a YAML path; MovieLens-100k by default).

Per user in time order: the last item is the test target, the one before it validation, the rest
training. Validation picks ALS's setting and each deep model's epoch (tuning cut); test lists
come from the final cut: histories end with the validation item, ALS and the neighbours are refit
on train + validation, and train + validation items are removed. Popularity, transitions, ALS
and the KNN models come from the recommend stage, the deep models from train_deep (2 Horovod
processes here).
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from pyspark.sql import functions as F

from recsys_spark.bench.report import keep_per_dataset, row, write_report
from recsys_spark.config import load_config
from recsys_spark.evaluation.ranking import ranking_metrics
from recsys_spark.pipeline import STAGES, run_stage
from recsys_spark.pipeline.cf import held_out, history
from recsys_spark.pipeline.context import Context

K = 10
SEEDS = [int(s) for s in os.environ.get("B2_SEEDS", "1").split(",")]
# (model, loss, extra settings): SASRec with full and sampled softmax, GRU4Rec sampled
RUNS = [("sasrec", "ce", {}), ("sasrec", "sampled", {}), ("gru4rec", "sampled", {})]
CF = ["cf.tune=true", "cf.tuning.rank=[64]", "cf.tuning.reg_param=[0.05,0.2]", "cf.tuning.alpha=[1.0,10.0]",
      "cf.tuning.max_iter=[15]"]
DEEP = {"deep.epochs": 60, "deep.patience": 5, "deep.max_minutes": 20, "deep.lr": 0.001, "deep.max_len": 50,
        "deep.dim": 64, "deep.files_per_proc": 2, "deep.sampled_negatives": 256}
PUBLISHED = [("published:ml1m_sasrec_bce", 0.2500, 0.1341), ("published:ml1m_sasrec_full_ce", 0.3152, 0.1821),
             ("published:ml1m_recbole_gru4rec", 0.2776, 0.1545), ("published:ml1m_recbole_sasrec", 0.2468, 0.1286)]


def batch_size(n_sequences: int) -> int:
    """n_sequences / 200 per process, within [32, 64]: an epoch's cost is the softmax over every
    position, whatever the batch, so small batches buy more updates per epoch. On amazon-games
    SASRec peaked at epoch 14 (validation NDCG@10 0.0695, 16 minutes) with 64, and was still
    climbing at 15 minutes (0.0665) with 252."""
    return min(64, max(32, n_sequences // 400 * 2))


def run(dataset: str = "movielens100k") -> None:
    rows, timings, scores = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-b2-") as root:
        base = [f"lakehouse.root={root}", f"lakehouse.checkpoint_dir={root}/ckpt", "features.split.kind=leave_last_out",
                *CF]
        cfg = load_config(None, dataset, base)
        if cfg.features.sequence_length < DEEP["deep.max_len"]:
            raise SystemExit(f"b2 needs features.sequence_length >= {DEEP['deep.max_len']} in {dataset}")
        ctx = Context.create(cfg)
        for stage in list(STAGES)[:list(STAGES).index("recommend") + 1]:
            timings[stage] = round(run_stage(ctx, stage), 1)
        truth = held_out(ctx, "test").cache()
        n_test = truth.select("user_idx").distinct().count()
        sizes = {"events": ctx.lake.count("silver", "events"), "users": ctx.lake.count("gold", "id_map_users"),
                 "items": ctx.lake.count("gold", "id_map_items"),
                 "sequences": history(ctx, "sequences", "tuning").count()}
        batch = batch_size(sizes["sequences"])

        def score(name: str, seed: int | None = None, extra: dict | None = None) -> None:
            m = ranking_metrics(ctx.lake.read("gold", "recs").where(F.col("model") == name), truth, K)
            scores.setdefault(name, []).append(m)
            extra = ({} if seed is None else {"seed": seed}) | (extra or {})
            rows.extend([row(name, "hit_rate", round(m["hit_rate"], 4), K, **extra),
                         row(name, "ndcg", round(m["ndcg"], 4), K, **extra)])

        for name in ("popularity", "transitions", "als", "item_knn", "user_knn"):
            score(name)
        for model, loss, extra in RUNS:
            for seed in SEEDS:
                settings = {**DEEP, "deep.batch_size": batch, **extra, "deep.model": model, "deep.loss": loss,
                            "deep.seed": seed}
                ctx.cfg = load_config(None, dataset, [*base, *[f"{k}={v}" for k, v in settings.items()]])
                name = ctx.cfg.deep.recs_name
                seconds = run_stage(ctx, "train_deep")
                timings[f"train_deep/{name}/seed{seed}"] = round(seconds, 1)
                epochs = history_of(ctx, name)
                score(name, seed, {"train_seconds": round(seconds, 1), **epochs})

    summary = {}
    for name, runs in scores.items():
        for metric in ("hit_rate", "ndcg"):
            values = [m[metric] for m in runs]
            summary[(name, metric)] = (statistics.mean(values), statistics.pstdev(values))
            if len(values) > 1:
                rows.append(row(name, f"{metric}_mean", round(summary[(name, metric)][0], 4), K, seeds=len(values)))
                rows.append(row(name, f"{metric}_std", round(summary[(name, metric)][1], 4), K, seeds=len(values)))
    for a, b in (("sasrec", "transitions"), ("sasrec_sampled", "transitions"), ("gru4rec_sampled", "transitions"),
                 ("transitions", "popularity"), ("sasrec", "als"), ("sasrec", "sasrec_sampled")):
        (ma, _), (mb, _) = summary[(a, "ndcg")], summary[(b, "ndcg")]
        rows.append(row(f"{a}_vs_{b}", "ndcg_ratio", round(ma / mb, 3) if mb else None, K))
    if dataset == "movielens100k":
        for name, hr, ndcg in PUBLISHED:
            rows += [row(name, "hit_rate", hr, K, source="published"), row(name, "ndcg", ndcg, K, source="published")]
    path = write_report("b2", "B2: leave-one-out per user in time order (last item test, the one before validation); "
                 "validation picks ALS's setting and each deep model's epoch; test lists from train + validation "
                 "(sequences end with the validation item, ALS and neighbours refit), all items ranked, the "
                 "user's train + validation items removed, top 10; HR@10 and NDCG@10 over all test users",
                 f"{dataset} ({sizes['events']:,} events, {sizes['users']:,} users, {sizes['items']:,} items, "
                 f"{n_test:,} test users)", rows, timings,
                 notes=[f"Deep models: {DEEP}, batch {batch} per process (sequences / 200 within [32, 64]), 2 Horovod "
                        f"processes (gloo, CPU); early stopping on validation NDCG@10; seeds {SEEDS} "
                        "(B2_SEEDS=1,2,3 for more); each model trains for at most 20 minutes (then the best "
                        "epoch so far is kept). sasrec is full softmax; *_sampled softmax over "
                        f"{DEEP['deep.sampled_negatives']} shared uniform negatives with logQ correction.",
                        "train_seconds include data preparation and scoring; best_epoch is the epoch validation "
                        "picked, seconds_to_best the training time up to it.",
                        *(["'published:' rows are MovieLens-1M under the same protocol (Klenitskiy & Vasilev "
                           "2023; RecBole): another data set, shown for scale only."] if dataset == "movielens100k"
                          else [])])
    keep_per_dataset(path, Path(dataset).stem)


def history_of(ctx: Context, name: str) -> dict:
    """The best epoch of the last train_deep run and the training seconds it took to reach it."""
    runs = sorted(Path(ctx.cfg.lakehouse.checkpoint_dir, "deep").glob(f"{name}-*/result-0.json"),
                  key=lambda p: p.stat().st_mtime)
    epochs = json.loads(runs[-1].read_text())["history"]
    best = max(range(len(epochs)), key=lambda i: epochs[i]["val_ndcg"])
    return {"best_epoch": best + 1, "epochs": len(epochs),
            "seconds_to_best": round(sum(e["seconds"] for e in epochs[:best + 1]), 1)}
