"""B2: MovieLens-100k next item, leave-one-out, full ranking with seen items removed, top 10.

Per user in time order: the last item is the test target, the one before it validation (early
stopping), the rest training. Every model ranks all items from the training history. Popularity,
the item-to-item transition baseline, ALS and the KNN models come from the recommend stage, the
deep models from train_deep (2 Horovod processes here), the sequence models over several seeds.
"""
from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace

from pyspark.sql import functions as F

from recsys_spark.bench.report import row, write_report
from recsys_spark.config import load_config
from recsys_spark.evaluation.ranking import ranking_metrics
from recsys_spark.pipeline import STAGES, run_stage
from recsys_spark.pipeline.cf import held_out
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.deep import recs_name

K = 10
SEEDS = [1, 2, 3]
PAIRS = {"batch_size": 1024, "epochs": 20, "patience": 3}  # 5 rows per rating: bigger batches, fewer epochs
RUNS = [("sasrec", "ce", SEEDS, {}), ("gru4rec", "ce", SEEDS, {}), ("sasrec", "bce", SEEDS[:1], {}),
        ("two_tower", "ce", SEEDS[:1], PAIRS), ("ncf", "ce", SEEDS[:1], PAIRS)]
SETTINGS = ["cf.als.rank=32", "cf.als.reg_param=0.2", "cf.als.alpha=1.0",  # B1's validation pick
            "deep.epochs=80", "deep.patience=8", "deep.batch_size=32", "deep.lr=0.001", "deep.max_len=50",
            "deep.dim=64", "deep.files_per_proc=2"]
PUBLISHED = [("published:ml1m_sasrec_bce", 0.2500, 0.1341), ("published:ml1m_sasrec_full_ce", 0.3152, 0.1821),
             ("published:ml1m_recbole_gru4rec", 0.2776, 0.1545), ("published:ml1m_recbole_sasrec", 0.2468, 0.1286)]


def run() -> None:
    rows, timings, scores = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-b2-") as root:
        cfg = load_config(None, "movielens100k", [f"lakehouse.root={root}", f"lakehouse.checkpoint_dir={root}/ckpt",
                                                  *SETTINGS])
        ctx = Context.create(cfg)
        for stage in list(STAGES)[:list(STAGES).index("recommend") + 1]:
            timings[stage] = round(run_stage(ctx, stage), 1)
        truth = held_out(ctx, "test").cache()
        n_test = truth.select("user_idx").distinct().count()

        def score(name: str, seed: int | None = None, seconds: float | None = None) -> None:
            m = ranking_metrics(ctx.lake.read("gold", "recs").where(F.col("model") == name), truth, K)
            scores.setdefault(name, []).append(m)
            extra = {} if seed is None else {"seed": seed}
            rows.extend([row(name, "hit_rate", round(m["hit_rate"], 4), K, **extra),
                         row(name, "ndcg", round(m["ndcg"], 4), K, **extra)])
            if seconds is not None:
                rows.append(row(name, "train_seconds", round(seconds, 1), **extra))

        for name in ("popularity", "transitions", "als", "item_knn", "user_knn"):
            score(name)
        for model, loss, seeds, extra in RUNS:
            for seed in seeds:
                ctx.cfg = replace(cfg, deep=replace(cfg.deep, model=model, loss=loss, seed=seed, **extra))
                seconds = run_stage(ctx, "train_deep")
                timings[f"train_deep/{recs_name(model, loss)}/seed{seed}"] = round(seconds, 1)
                score(recs_name(model, loss), seed, seconds)

    summary = {}
    for name, runs in scores.items():
        for metric in ("hit_rate", "ndcg"):
            values = [m[metric] for m in runs]
            summary[(name, metric)] = (statistics.mean(values), statistics.pstdev(values))
            if len(values) > 1:
                rows.append(row(name, f"{metric}_mean", round(summary[(name, metric)][0], 4), K, seeds=len(values)))
                rows.append(row(name, f"{metric}_std", round(summary[(name, metric)][1], 4), K, seeds=len(values)))
    for a, b in (("sasrec", "als"), ("gru4rec", "popularity"), ("sasrec", "transitions"), ("gru4rec", "transitions"),
                 ("sasrec", "sasrec_bce"), ("sasrec", "gru4rec")):
        (ma, sa), (mb, sb) = summary[(a, "ndcg")], summary[(b, "ndcg")]
        rows.append(row(f"{a}_vs_{b}", "ndcg_ratio", round(ma / mb, 3), K))
        rows.append(row(f"{a}_vs_{b}", "ndcg_margin_in_std", round((ma - mb) / max(sa + sb, 1e-9), 1), K))
    for name, hr, ndcg in PUBLISHED:
        rows += [row(name, "hit_rate", hr, K, source="published"), row(name, "ndcg", ndcg, K, source="published")]
    write_report("b2", "B2: leave-one-out per user in time order (last item test, the one before validation), "
                 "rank all items, items of the user's training history removed, top 10; HR@10 and NDCG@10",
                 f"MovieLens-100k (100,000 ratings, {n_test} test users)", rows, timings,
                 notes=[f"Deep models: {', '.join(SETTINGS[3:])} (pair models: {PAIRS}); 2 Horovod processes "
                        f"(gloo, CPU); early stopping on validation NDCG@10. Sequence models: seeds {SEEDS}.",
                        "ndcg_margin_in_std = (mean a - mean b) / (std a + std b) over seeds (one seed: std 0).",
                        "'published:' rows are MovieLens-1M under the same protocol (Klenitskiy & Vasilev 2023; "
                        "RecBole): another data set, shown for scale only."])
