"""The stages the jobs call, in pipeline order, and the end-of-run summary."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from pyspark.sql import functions as F

from recsys_spark.pipeline import bandit, cf, deep, features, hybrid, ingest, maintain, quality, search
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.progress import format_table
from recsys_spark.pipeline.runs import stale_stages
from recsys_spark.spark import stage_caches

log = logging.getLogger("recsys_spark")

STAGES: dict[str, Callable[[Context], None]] = {
    "ingest": ingest.run,
    "quality": quality.run,
    "features": features.run,
    "search_index": search.search_index,
    "train_als": cf.train_als,
    "neighbours": cf.neighbours,
    "recommend": cf.recommend,
    "train_ranker": search.train_ranker,
    "train_deep": deep.run,
    "hybrid": hybrid.hybrid,
    "evaluate": cf.evaluate,
    "bandit": bandit.bandit,
}
# Run on their own schedule (`recsys-spark run maintain`), not by `pipeline`.
HOUSEKEEPING: dict[str, Callable[[Context], None]] = {"maintain": maintain.maintain}
DATA_STAGES = ("ingest", "quality", "features")
TABLES = {
    "bronze": ["events", "items", "users"],
    "silver": ["events", "items", "users", "quality_report"],
    "quarantine": ["events", "items", "users"],
    "gold": ["id_map_users", "id_map_items", "splits", "interactions", "user_features", "item_features",
             "sequences", "als_user_factors", "als_item_factors", "item_neighbours", "user_neighbours", "recs",
             "deep_item_embeddings", "item_text", "search_postings", "search_fields", "search_vocabulary",
             "search_terms", "item_text_embeddings", "candidates", "recs_final", "popularity_context", "metrics",
             "bandit_metrics", "runs"],
}


def run_stage(ctx: Context, name: str) -> float:
    stages = {**STAGES, **HOUSEKEEPING}
    if name not in stages:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(stages)}")
    log.info("[%s] start", name)
    start = time.perf_counter()
    with stage_caches():
        stages[name](ctx)
    seconds = time.perf_counter() - start
    log.info("[%s] done in %.1fs", name, seconds)
    return seconds


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def warn_stale_upstream(ctx: Context, stages: list[str]) -> dict[str, dict]:
    """Before running `stages` without the stages that come before them: those earlier stages whose
    config changed since they last ran. Their tables, which `stages` read, still follow the old
    values (and a stage whose inputs are unchanged skips), so each is named with its changed keys
    and the stage to re-run. A warning, not a stop: comparing against old inputs can be meant."""
    order = list(STAGES)
    last = max((order.index(s) for s in stages if s in order), default=0)
    stale = stale_stages(ctx, [s for s in order[:last] if s not in stages])
    for stage, changed in stale.items():
        keys = "; ".join(f"{key}: {_short(then)} -> {_short(now)}" for key, (then, now) in list(changed.items())[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        log.warning("[%s] config changed since its last run (%s%s): its tables follow the old values; "
                    "run %s before %s, or run the pipeline", stage, keys, more, stage, ", ".join(stages))
    return stale


def table_summary(ctx: Context) -> str:
    rows = []
    for layer, tables in TABLES.items():
        for t in tables:
            if ctx.lake.exists(layer, t):
                rows.append([f"{layer}.{t}", ctx.lake.count(layer, t), ctx.lake.version(layer, t)])
    return format_table(["table", "rows", "version"], rows)


def metrics_summary(ctx: Context) -> str:
    """The latest evaluation: one row per model, one column per metric."""
    if not ctx.lake.exists("gold", "metrics"):
        return "(no metrics yet)"
    metrics = ctx.lake.read("gold", "metrics").where((F.col("split") == "test") & (F.col("slice") == "all"))
    latest = metrics.orderBy(F.desc("evaluated_at")).select("run_id").first()[0]
    rows = metrics.where(F.col("run_id") == latest).orderBy("model", "metric").collect()
    names = list(dict.fromkeys(r["metric"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    value = {(r["model"], r["metric"]): r["value"] for r in rows}
    k = rows[0]["k"]
    return format_table(["model", *[f"{n}@{k}" for n in names]],
                        [[m, *[f"{value[(m, n)]:.4f}" for n in names]] for m in models])


def bandit_summary(ctx: Context) -> str:
    """The latest bandit run on the simulated shop: clicks and regret per policy."""
    if not ctx.lake.exists("gold", "bandit_metrics"):
        return "(no bandit run yet)"
    metrics = (ctx.lake.read("gold", "bandit_metrics")
               .where(F.col("metric").isin("cumulative_reward", "cumulative_regret")))
    latest = metrics.orderBy(F.desc("evaluated_at")).select("run_id").first()
    if latest is None:
        return "(no simulated rounds: the source is not the synthetic shop)"
    rows = metrics.where(F.col("run_id") == latest[0]).collect()
    value = {(r["model"], r["metric"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    return format_table(["policy", "rounds", "clicks", "regret"], [
        [m, value[(m, "cumulative_reward")]["rounds"], int(value[(m, "cumulative_reward")]["value"]),
         f"{value[(m, 'cumulative_regret')]['value']:.0f}"] for m in models])


def quality_summary(ctx: Context) -> str:
    """Failed rows per table and check, over every batch checked so far (zero rows left out)."""
    if not ctx.lake.exists("silver", "quality_report"):
        return "(no quality report yet)"
    report = ctx.lake.read("silver", "quality_report")
    agg = (report.groupBy("table", "check").agg(F.sum("rows").alias("rows"))
           .where((F.col("rows") > 0) | (F.col("check") == "accepted")).orderBy("table", F.desc("rows")).collect())
    totals = {r["table"]: r["rows"] for r in report.where(F.col("check") == "accepted")
              .groupBy("table").agg(F.sum("rows_in").alias("rows")).collect()}
    rows = [[r["table"], r["check"], int(r["rows"]), f"{100.0 * r['rows'] / max(totals[r['table']], 1):.2f}%"]
            for r in agg]
    return format_table(["table", "check", "rows", "share"], rows)
