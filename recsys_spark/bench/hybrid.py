"""Hybrid: every single model beside every fusion method (hybrid_average, hybrid_average_rank,
hybrid_weighted, hybrid_borda, hybrid_rrf, hybrid_ranker), NDCG@10, Recall@10 and coverage, over all
test pairs and on the cold slices (users with at most 2 history events, items with fewer than 5
users), per data set:
- the built-in shop (temporal split);
- MovieLens-100k under B1's split (per item, a seeded 75/25 of its users; validation carved from the
  75 the same way), ALS tuned on the tuning cut over conf/base.yaml's grid;
- amazon-games under B2's leave-one-out;
- Online Retail under B3's split (the last 30 days are test).
Each runs the pipeline up to evaluate on a fresh lakehouse, train_deep left out (SASRec alone takes
25 minutes on amazon-games), so `deep` is left out of the fusions with a log line. DATASET= runs one
data set: one of the four above with its protocol, or any other name or config path with its own config.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from pyspark.sql import functions as F

from recsys_spark.bench.report import keep_per_dataset, row, write_report
from recsys_spark.config import load_config
from recsys_spark.pipeline import STAGES, run_stage
from recsys_spark.pipeline.cf import history
from recsys_spark.pipeline.context import Context

K = 10
DATASETS: dict[str, tuple[str | None, list[str]]] = {
    "movielens100k": ("movielens100k", ["features.split.kind=stratified", "cf.tune=true"]),
    "amazon-games": ("amazon-games", []),
    "synthetic-shop": (None, []),
    "online_retail": ("online_retail", []),
}
SKIP = ("train_ranker", "train_deep", "bandit")
METRICS = {"all": ["ndcg", "recall", "coverage"], "cold_users": ["ndcg", "recall"], "cold_items": ["ndcg", "recall"]}


def run(dataset: str = "") -> None:
    if not dataset:
        chosen = DATASETS
    elif dataset in DATASETS:
        chosen = {dataset: DATASETS[dataset]}
    else:
        chosen = {Path(dataset).stem: (dataset, [])}
    rows: list[dict] = []
    timings: dict[str, float] = {}
    notes: list[str] = []
    for name, (conf, extra) in chosen.items():
        got, sizes = one(name, conf, extra, timings)
        rows += got
        notes.append(f"{name}: {sizes}")
        path = write_report(
            "hybrid", "Each data set's own split; the pipeline's final-cut lists (train + validation history) "
            "against test pairs the user had not had, top 10; fusion weights and the ranker learn on the tuning "
            "cut's candidate lists (50 per model) against validation", ", ".join(chosen), rows, timings,
            notes + ["best_single / best_fusion: the best NDCG@10 of each group on all test pairs; "
                     "cold_users: at most 2 history events; cold_items: fewer than 5 users in the history"])
    if dataset:
        keep_per_dataset(path, Path(dataset).stem)


def one(name: str, conf: str | None, extra: list[str], timings: dict[str, float]) -> tuple[list[dict], str]:
    with tempfile.TemporaryDirectory(prefix="bench-hybrid-") as root:
        ctx = Context.create(load_config(None, conf, [f"lakehouse.root={root}",
                                                      f"lakehouse.checkpoint_dir={root}/ckpt", *extra]))
        for stage in [s for s in STAGES if s not in SKIP]:
            timings[f"{name}/{stage}"] = round(run_stage(ctx, stage), 1)
        metrics = (ctx.lake.read("gold", "metrics").where((F.col("split") == "test") & (F.col("k") == K))
                   .collect())
        sizes = ", ".join(f"{t} {history(ctx, t).count():,}" for t in ("interactions", "item_features"))
    value = {(r["model"], r["metric"], r["slice"]): r["value"] for r in metrics}
    models = sorted({m for m, _, _ in value})
    # a slice's metrics carry its name, so that "ndcg" alone always means all test pairs
    rows = [row(m, metric if s == "all" else f"{metric}_{s}", round(value[(m, metric, s)], 4), K, slice=s,
                dataset=name)
            for m in models for s, names in METRICS.items() for metric in names if (m, metric, s) in value]
    ndcg = {m: value[(m, "ndcg", "all")] for m in models}
    singles = {m: v for m, v in ndcg.items() if not m.startswith("hybrid_")}
    fusions = {m: v for m, v in ndcg.items() if m.startswith("hybrid_")}
    best_single, best_fusion = max(singles, key=singles.get), max(fusions, key=fusions.get)
    rows += [row("best_single", "ndcg", round(singles[best_single], 4), K, slice="all", dataset=name,
                 which=best_single),
             row("best_fusion", "ndcg", round(fusions[best_fusion], 4), K, slice="all", dataset=name,
                 which=best_fusion),
             row("best_fusion_vs_best_single", "ndcg_ratio", round(fusions[best_fusion] / singles[best_single], 3),
                 K, slice="all", dataset=name)]
    return rows, sizes
