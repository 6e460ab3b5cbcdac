"""The hybrid stage: every configured model's top-`candidates` lists land in gold.candidates, from
the final cut for every user and from the tuning cut for the validation users it learns from;
weights (coordinate ascent on NDCG@k) and the LightGBM ranker learn from the tuning cut's lists
against validation; every method then fuses the final cut's lists into gold.recs as
hybrid_<method>. gold.recs_final holds the configured method's lists, what a service reads, with
a share of items nobody has had yet and a reason per row; gold.popularity_context serves users with
no history."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import get_args

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.config import ListModel
from recsys_spark.content.recs import content_recs
from recsys_spark.deep.data import local_path
from recsys_spark.hybrid.coldstart import context_popularity, with_cold_items
from recsys_spark.hybrid.explain import explain
from recsys_spark.hybrid.fusion import METHODS, fit_weights, fused_scores, top_k
from recsys_spark.hybrid.ranker import feature_names, ranker_table, rerank, train
from recsys_spark.pipeline.cf import (
    append_metrics,
    candidate_lists,
    fallback_lists,
    final_depth,
    held_out,
    history,
    learning_users,
    model_lists,
    write_candidates,
    write_recs,
)
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import last_run, run_once, utc_now

log = logging.getLogger("recsys_spark")
STAGE = "hybrid"


def hybrid(ctx: Context) -> None:
    run_once(ctx, STAGE, lambda run_id: _hybrid(ctx, run_id))


def fused_models(ctx: Context) -> list[str]:
    """hybrid.models with `deep` named as train_deep names the model it trains."""
    return [ctx.cfg.deep.recs_name if m == "deep" else m for m in ctx.cfg.hybrid.models]


def _candidates(ctx: Context, users: DataFrame) -> list[str]:
    """Writes the tuning cut's lists for `users`; returns the models that have some. The deep
    model's were written by train_deep, which trained it."""
    h, wanted = ctx.cfg.hybrid, fused_models(ctx)
    builders = model_lists(ctx, "tuning", h.candidates, users)
    built = [m for m in wanted if m in builders]
    if built:
        write_candidates(ctx, STAGE, "tuning", {m: builders[m]() for m in built})
    deep = [ctx.cfg.deep.recs_name] if "deep" in h.models else []
    written = ({r[0] for r in candidate_lists(ctx, "tuning", deep, h.candidates).select("model").distinct().collect()}
               if deep else set())
    _left_out(ctx, "tuning", [m for m in wanted if m not in builders and m not in written])
    return [m for m in wanted if m in builders or m in written]


def _left_out(ctx: Context, cut: str, missing: list[str]) -> None:
    for m in missing:
        by = ("search_index, from item text" if m == "content" and cut == "tuning" else
              "recommend, to hybrid.candidates" if m in get_args(ListModel) else "train_deep")
        log.info("[%s] %s has no %s-cut lists here (%s builds them): left out", STAGE, m, cut, by)


def _check_final_depth(ctx: Context) -> None:
    """Fails before any work when recommend's (or the fused deep model's) last run built the final
    cut's lists shallower than hybrid.candidates now asks: the config changed and only hybrid was re-run."""
    wanted = ctx.cfg.hybrid.candidates
    for stage in ("recommend", "train_deep") if "deep" in ctx.cfg.hybrid.models else ("recommend",):
        run = last_run(ctx, stage)
        if run is None:
            continue
        read = json.loads(run["config_read"])
        built = final_depth(read.get("cf.k", 0), read.get("hybrid.candidates", 0))
        if built < wanted:
            raise ValueError(f"config key 'hybrid.candidates' is {wanted}, but {stage}'s last run ({run['run_id']}) "
                             f"built the final cut's lists to depth {built}: run {stage} first")


def _table(ctx: Context, cut: str, models: list[str], candidates: DataFrame,
           weights: dict[str, float] | None = None) -> DataFrame:
    return ranker_table(candidates, models, ctx.cfg.hybrid.candidates, history(ctx, "item_features", cut),
                        history(ctx, "user_features", cut), weights)


def _hybrid(ctx: Context, run_id: str) -> None:
    h, k = ctx.cfg.hybrid, ctx.cfg.cf.k
    _check_final_depth(ctx)
    truth = held_out(ctx, "validation")
    users = learning_users(ctx).cache()
    tuned = _candidates(ctx, users)
    # the final cut's lists are recommend's, built to hybrid.candidates
    built = {r[0] for r in candidate_lists(ctx, "final", tuned, h.candidates).select("model").distinct().collect()}
    _left_out(ctx, "final", [m for m in tuned if m not in built])
    models = [m for m in tuned if m in built]
    if len(models) < 2:
        raise ValueError(f"config key 'hybrid.models': fewer than two of {fused_models(ctx)} have lists to fuse")
    features = feature_names(models)
    with ctx.progress.step(STAGE, f"learn weights and ranker (tuning cut, {users.count():,} users)") as step:
        truth = truth.join(users, "user_idx")
        tuning = candidate_lists(ctx, "tuning", models, h.candidates).join(users, "user_idx", "left_semi")
        table = (_table(ctx, "tuning", models, tuning)
                 .join(truth.withColumn("label", F.lit(1)), ["user_idx", "item_idx"], "left")
                 .fillna(0, ["label"]).toPandas()
                 # Spark's row order varies from run to run; tied scores and LightGBM must not
                 .sort_values(["user_idx", "item_idx"], ignore_index=True))
        n_relevant = {int(r["user_idx"]): int(r["count"]) for r in truth.groupBy("user_idx").count().collect()}
        fitted, validation_ndcg = fit_weights(table, [f"{m}_score" for m in models], n_relevant, k,
                                              h.weight_steps, h.sweeps)
        weights = {m: fitted[f"{m}_score"] for m in models}
        table["weighted"] = table[[f"{m}_score" for m in models]].to_numpy() @ np.array([weights[m] for m in models])
        ranker = train(table, features, h.ranker.num_leaves, h.ranker.n_estimators, h.ranker.learning_rate,
                       h.ranker.seed)
        step.rows = len(table)
    log.info("[%s] weights %s (validation NDCG@%d %.4f on %d users)", STAGE, weights, k, validation_ndcg,
             len(n_relevant))
    append_metrics(ctx, [(run_id, "hybrid_weighted", "ndcg", k, validation_ndcg, "validation", utc_now())])
    _save(ctx, weights, ranker, models)
    users.unpersist()

    final = candidate_lists(ctx, "final", models, h.candidates).cache()
    fallback = fallback_lists(ctx, history(ctx, "interactions"))
    fused = fused_scores(final, METHODS, len(models), weights, h.candidates, h.rrf_k).cache()
    # with no tree the ranker's lists are the weighted fusion's: its feature table is not built
    reranked = (top_k(fused, k, "weighted") if ranker is None
                else rerank(_table(ctx, "final", models, final, weights), ranker, features, k))
    write_recs(ctx, STAGE, run_id, {**{f"hybrid_{method}": top_k(fused, k, method) for method in METHODS},
                                    "hybrid_ranker": reranked}, fallback)
    fused.unpersist()
    final.unpersist()
    fallback.unpersist()
    _final_lists(ctx, run_id)
    _context_popularity(ctx)


def _final_lists(ctx: Context, run_id: str) -> None:
    """The configured method's lists, a share of cold items, a reason per row: gold.recs_final."""
    h, k, lake = ctx.cfg.hybrid, ctx.cfg.cf.k, ctx.lake
    chosen = lake.read("gold", "recs").where(F.col("model") == f"hybrid_{h.method}")
    train = history(ctx, "interactions")
    cold = ctx.spark.createDataFrame([], "user_idx int, item_idx int, score float")
    if lake.exists("gold", "item_text_embeddings") and h.cold_item_share > 0:
        embeddings = lake.read("gold", "item_text_embeddings")
        new_items = embeddings.join(train.select("item_idx").distinct(), "item_idx", "left_anti")
        if not new_items.isEmpty():
            cold = content_recs(train, embeddings, math.ceil(h.cold_item_share * k), ctx.cfg.cf.topk,
                                among=new_items)
    lists = with_cold_items(chosen, cold, h.cold_item_share, k)
    items = (lake.read("gold", "item_text").select("item_idx", "item_id", "title", "category")
             if lake.exists("gold", "item_text") else
             lake.read("gold", "id_map_items").join(lake.read("silver", "items"), "item_id")
             .select("item_idx", "item_id", "title", "category"))
    users = _user_segments(ctx).select("user_idx", "region")
    splits = lake.read("gold", "splits").where(F.col("split").isin("train", "validation"))
    searches = splits.where(F.col("event_type") == "search").select("user_idx", "query", "ts")
    postings = lake.read("gold", "search_postings") if lake.exists("gold", "search_postings") else None
    explained = explain(lists, train, lake.read("gold", "item_neighbours"), items, users, searches, postings)
    with ctx.progress.step(STAGE, f"gold.recs_final (hybrid_{h.method}, reasons)") as step:
        lake.overwrite(explained.select(F.lit(f"hybrid_{h.method}").alias("model"), F.lit(run_id).alias("run_id"),
                                        "*"), "gold", "recs_final")
        step.rows = lake.last_commit_metrics("gold", "recs_final")["numOutputRows"]


def _user_segments(ctx: Context) -> DataFrame:
    """(user_idx, region, age_band); both null for a data set with no users table (events only)."""
    ids = ctx.lake.read("gold", "id_map_users")
    if not ctx.lake.exists("silver", "users"):
        return ids.select("user_idx", F.lit(None).cast("string").alias("region"),
                          F.lit(None).cast("string").alias("age_band"))
    return ids.join(ctx.lake.read("silver", "users"), "user_id").select("user_idx", "region", "age_band")


def _context_popularity(ctx: Context) -> None:
    """Popularity per region, age band, part of the day, weekday and category: lists for users with
    no history (gold.popularity_context)."""
    lake = ctx.lake
    events = (lake.read("gold", "splits").where(F.col("split").isin("train", "validation"))
              .select("user_idx", "item_idx", "hour", "weekday"))
    users = _user_segments(ctx)
    items = history(ctx, "item_features").select("item_idx", "category")
    with ctx.progress.step(STAGE, "gold.popularity_context") as step:
        lake.overwrite(context_popularity(events, users, items, ctx.cfg.hybrid.candidates), "gold",
                       "popularity_context")
        step.rows = lake.last_commit_metrics("gold", "popularity_context")["numOutputRows"]


def _save(ctx: Context, weights: dict[str, float], ranker, models: list[str]) -> None:
    out = Path(local_path(ctx.lake.model_path("hybrid")))
    out.mkdir(parents=True, exist_ok=True)
    trees = out / "ranker.txt"
    # the trees learned corrections to the weighted fusion (init_score): a reader adds the two
    if ranker is None:
        trees.unlink(missing_ok=True)
        score = "weighted fusion score (no tree improved the held-out users' NDCG@10)"
    else:
        ranker.save_model(str(trees))
        score = "weighted fusion score + ranker.txt prediction"
    (out / "fusion.json").write_text(json.dumps({"models": models, "weights": weights, "ranker_score": score},
                                                indent=2) + "\n")
