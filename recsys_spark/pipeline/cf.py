"""Model stages: train_als -> recommend -> evaluate, on the gold tables the features stage built.

train_als fits (optionally tunes) ALS on gold.interactions and writes its factors and model;
recommend writes top-K lists of ALS and popularity to gold.recs; evaluate scores every model in
gold.recs against the held-out split into gold.metrics. Each run is recorded in gold.runs.
"""
from __future__ import annotations

import logging

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.cf.als import fit_als, tune_als
from recsys_spark.cf.als import recommend as als_recommend
from recsys_spark.cf.popularity import popularity_recs
from recsys_spark.evaluation.ranking import coverage, diversity, novelty, ranking_metrics
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once, utc_now

log = logging.getLogger("recsys_spark")


def held_out(ctx: Context, split: str) -> DataFrame:
    """Relevant (user, item) pairs of a split that the user had not interacted with in training."""
    splits = ctx.lake.read("gold", "splits")
    seen = ctx.lake.read("gold", "interactions").select("user_idx", "item_idx")
    relevant = splits.where((F.col("split") == split) & F.col("event_type").isin(*ctx.cfg.cf.relevant_event_types))
    return relevant.select("user_idx", "item_idx").distinct().join(seen, ["user_idx", "item_idx"], "left_anti")


def model_path(ctx: Context, name: str) -> str:
    base = ctx.cfg.lakehouse.models_dir or f"{ctx.cfg.lakehouse.root}/_models"
    return f"{base.rstrip('/')}/{name}"


def train_als(ctx: Context) -> None:
    settings = {k: v for k, v in ctx.cfg.to_dict()["cf"].items() if k in ("als", "tune", "tuning", "k")}
    run_once(ctx, "train_als", [("gold", "interactions"), ("gold", "splits")], settings,
             lambda run_id: _train_als(ctx))


def _train_als(ctx: Context) -> None:
    cf = ctx.cfg.cf
    train = ctx.lake.read("gold", "interactions")
    params = cf.als
    if cf.tune:
        with ctx.progress.step("train_als", "tune on validation") as step:
            params, tried = tune_als(train, held_out(ctx, "validation"), cf.als, cf.tuning, cf.k)
            step.rows = len(tried)
        log.info("[train_als] best %s", params)
    with ctx.progress.step("train_als", "fit") as step:
        model = fit_als(train, params)
        step.rows = train.count()
    model.write().overwrite().save(model_path(ctx, "als"))
    for side in ("user", "item"):
        with ctx.progress.step("train_als", f"gold.als_{side}_factors") as step:
            ctx.lake.overwrite(getattr(model, f"{side}Factors").withColumnRenamed("id", f"{side}_idx"),
                               "gold", f"als_{side}_factors")
            step.rows = ctx.lake.last_commit_metrics("gold", f"als_{side}_factors")["numOutputRows"]


def recommend(ctx: Context) -> None:
    run_once(ctx, "recommend", [("gold", "interactions"), ("gold", "als_user_factors")],
             {"k": ctx.cfg.cf.k, "recent_days": ctx.cfg.cf.recent_days}, lambda run_id: _recommend(ctx, run_id))


def _recommend(ctx: Context, run_id: str) -> None:
    cf = ctx.cfg.cf
    train = ctx.lake.read("gold", "interactions")
    model = ALSModel.load(model_path(ctx, "als"))
    users = ctx.lake.read("gold", "id_map_users").select("user_idx")
    since = train.agg(F.max("last_ts") - F.make_dt_interval(secs=F.lit(cf.recent_days * 86400))).first()[0]
    for name, recs in (("als", als_recommend(model, cf.k, train.select("user_idx", "item_idx"), cf.block_size)),
                       ("popularity", popularity_recs(train, users, cf.k)),
                       ("popularity_recent", popularity_recs(train, users, cf.k, since))):
        with ctx.progress.step("recommend", f"gold.recs model={name}") as step:
            out = recs.select(F.lit(name).alias("model"), F.lit(run_id).alias("run_id"), "user_idx", "rank",
                              "item_idx", F.col("score").cast("float"))
            ctx.lake.overwrite(out, "gold", "recs", replace_where=f"model = '{name}'")
            step.rows = ctx.lake.last_commit_metrics("gold", "recs")["numOutputRows"]


def evaluate(ctx: Context) -> None:
    run_once(ctx, "evaluate", [("gold", "recs"), ("gold", "splits"), ("gold", "interactions")],
             {"k": ctx.cfg.cf.k, "relevant": ctx.cfg.cf.relevant_event_types}, lambda run_id: _evaluate(ctx, run_id))


def _evaluate(ctx: Context, run_id: str) -> None:
    k = ctx.cfg.cf.k
    recs_all = ctx.lake.read("gold", "recs")
    truth = held_out(ctx, "test").cache()  # every model is scored against the same pairs
    train = ctx.lake.read("gold", "interactions").cache()
    items = ctx.lake.read("gold", "item_features")
    n_items = items.count()
    rows = []
    for name in sorted(r[0] for r in recs_all.select("model").distinct().collect()):
        with ctx.progress.step("evaluate", f"model={name}") as step:
            recs = recs_all.where(F.col("model") == name)
            m = ranking_metrics(recs, truth, k)
            m.update(coverage=coverage(recs, n_items, k), novelty=novelty(recs, train, k),
                     diversity=diversity(recs, items, k))
            rows += [(run_id, name, metric, k, float(v), "test", utc_now()) for metric, v in m.items()]
            step.rows = len(m)
            log.info("[evaluate] %s: %s", name, ", ".join(f"{a}@{k}={b:.4f}" for a, b in m.items()))
    truth.unpersist()
    train.unpersist()
    schema = "run_id string, model string, metric string, k int, value double, split string, evaluated_at timestamp"
    ctx.lake.append(ctx.spark.createDataFrame(rows, schema), "gold", "metrics")
