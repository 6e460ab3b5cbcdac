"""Content: the `content` model (text embeddings of what a user had, against every item's) beside
ALS, item_knn and popularity, over all test pairs and over cold items only (test items with fewer
than 5 users in train + validation), where collaborative models have little to go on.

Runs the pipeline up to recommend (what writes these models' lists) on the built-in shop with a
20k-item catalogue, or on DATASET= (any data set whose items have text), and slices gold.recs itself.
"""
from __future__ import annotations

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
COLD = 5
# The default shop's 5k items all have 5+ users; 20k items leave a long tail of cold ones.
SHOP = ["source.synthetic.n_items=20000"]
MODELS = ["content", "als", "item_knn", "popularity"]
STAGES_RUN = list(STAGES)[:list(STAGES).index("recommend") + 1]
METRICS = ["ndcg", "recall", "hit_rate"]


def run(dataset: str = "") -> None:
    name = Path(dataset).stem if dataset else "synthetic-shop"
    timings: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-content-") as root:
        ctx = Context.create(load_config(None, dataset or None, [f"lakehouse.root={root}", *([] if dataset else SHOP)]))
        for stage in STAGES_RUN:
            timings[stage] = round(run_stage(ctx, stage), 1)
        users = history(ctx, "interactions").groupBy("item_idx").agg(F.count("*").alias("n"))
        truth = held_out(ctx, "test").join(users, "item_idx", "left").fillna(0, ["n"]).cache()
        slices = {"all": truth, "cold_items": truth.where(F.col("n") < COLD)}
        sizes = {s: df.count() for s, df in slices.items()}
        recs = ctx.lake.read("gold", "recs").where(F.col("cut") == "final")
        value = {}
        for model in MODELS:
            for s, df in slices.items():
                m = ranking_metrics(recs.where(F.col("model") == model), df, K)
                for metric in METRICS:
                    value[(model, s, metric)] = m[metric]
                    rows.append(row(model, metric, round(m[metric], 4), K, slice=s, dataset=name))
        n_items = history(ctx, "item_features").count()
    for s in slices:
        base = value[("popularity", s, "ndcg")]
        rows.append(row("content_vs_popularity", "ndcg_ratio",
                        round(value[("content", s, "ndcg")] / base, 3) if base else None, K, slice=s, dataset=name))
    path = write_report(
        "content", "Content: the pipeline's final-cut lists (train + validation history) against test pairs the "
        "user had not had; 'cold_items' keeps only test pairs whose item had fewer than 5 users in train + "
        "validation; top 10", f"{name} ({n_items:,} items; {sizes['all']:,} test pairs, {sizes['cold_items']:,} "
        "on cold items)", rows, timings,
        notes=["content: the confidence-weighted mean all-MiniLM-L6-v2 embedding of a user's items, cosine "
               "against every item's embedding, seen items removed.",
               "A ratio of None means popularity scored 0 on that slice (it never recommends cold items)."])
    keep_per_dataset(path, name)
