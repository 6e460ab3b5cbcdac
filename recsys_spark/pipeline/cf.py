"""Model stages: train_als -> neighbours -> recommend -> evaluate, on the gold tables the features
stage built.

train_als fits (optionally tunes) ALS on gold.interactions and writes its factors and model;
neighbours writes similar items (from ALS factors and from co-occurrence) and similar users;
recommend writes every model's top-K lists to gold.recs; evaluate scores every model in gold.recs
against the held-out split into gold.metrics. Each run is recorded in gold.runs. Tuning reads the
tuning cut and scores validation; every list in gold.recs comes from the final cut.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import reduce

from pyspark.ml.recommendation import ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.cf.als import fit_als, tune_als
from recsys_spark.cf.als import recommend as als_recommend
from recsys_spark.cf.ease import ease_recs
from recsys_spark.cf.neighbours import (
    cooccurrence_neighbours,
    factor_neighbours,
    item_based_recs,
    transition_recs,
    user_based_recs,
)
from recsys_spark.cf.popularity import category_popularity_recs, popularity_recs
from recsys_spark.config import ALSConf
from recsys_spark.content.recs import content_neighbours, content_recs
from recsys_spark.evaluation.ranking import (
    RANKING,
    coverage_by,
    diversity_by,
    embedding_diversity_by,
    fill_to_k,
    filled_share_by,
    novelty_by,
    ranking_metrics_by,
)
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once, utc_now

log = logging.getLogger("recsys_spark")


def history(ctx: Context, table: str, cut: str = "final") -> DataFrame:
    """One cut of a gold history table (interactions, sequences, user or item features)."""
    return ctx.lake.read("gold", table).where(F.col("cut") == cut).drop("cut")


def held_out(ctx: Context, split: str) -> DataFrame:
    """Relevant (user, item) pairs of a split that the user had not interacted with in the history
    lists for it are built from: validation against the tuning cut (train), test against the
    final cut (train + validation)."""
    splits = ctx.lake.read("gold", "splits")
    seen = history(ctx, "interactions", "tuning" if split == "validation" else "final").select("user_idx", "item_idx")
    relevant = splits.where((F.col("split") == split) & F.col("event_type").isin(*ctx.cfg.cf.relevant_event_types))
    return relevant.select("user_idx", "item_idx").distinct().join(seen, ["user_idx", "item_idx"], "left_anti")


def model_path(ctx: Context, name: str) -> str:
    return ctx.lake.model_path(name)


def train_als(ctx: Context) -> None:
    run_once(ctx, "train_als", lambda run_id: _train_als(ctx, run_id))


def als_label(p: ALSConf) -> str:
    return f"als[rank={p.rank},reg_param={p.reg_param:g},alpha={p.alpha:g},max_iter={p.max_iter}]"


def _train_als(ctx: Context, run_id: str) -> None:
    """With cf.tune, every setting is fitted on the tuning cut and scored on validation; the pick
    is then fitted on both cuts: the final cut's factors serve every later stage, the tuning cut's
    model gives hybrid its validation-scored lists."""
    cf = ctx.cfg.cf
    params = cf.als
    if cf.tune:
        with ctx.progress.step("train_als", "tune on validation (tuning cut)") as step:
            params, tried = tune_als(history(ctx, "interactions", "tuning"), held_out(ctx, "validation"), cf.als,
                                     cf.tuning, cf.k)
            step.rows = len(tried)
        log.info("[train_als] best %s", als_label(params))
        append_metrics(ctx, [(run_id, als_label(p), "ndcg", cf.k, ndcg, "validation", utc_now()) for p, ndcg in tried])
    for cut, name in (("tuning", "als_tuning"), ("final", "als")):  # hybrid learns from the tuning cut's lists
        train = history(ctx, "interactions", cut)
        with ctx.progress.step("train_als", f"fit ({cut} cut)") as step:
            model = fit_als(train, params)
            step.rows = train.count()
        model.write().overwrite().save(model_path(ctx, name))
    for side in ("user", "item"):
        with ctx.progress.step("train_als", f"gold.als_{side}_factors") as step:
            ctx.lake.overwrite(getattr(model, f"{side}Factors").withColumnRenamed("id", f"{side}_idx"),
                               "gold", f"als_{side}_factors")
            step.rows = ctx.lake.last_commit_metrics("gold", f"als_{side}_factors")["numOutputRows"]


def neighbours(ctx: Context) -> None:
    run_once(ctx, "neighbours", lambda run_id: _neighbours(ctx))


def _neighbours(ctx: Context) -> None:
    """gold.item_neighbours holds one list per method: 'als_cosine' (similar items), 'cooccurrence'
    (bought together) and 'content' (similar text, cold items included); gold.user_neighbours the
    users nearest in ALS space. All from the final cut."""
    conf, block = ctx.cfg.cf.neighbours, ctx.cfg.cf.topk
    item_lists = {
        "als_cosine": lambda: factor_neighbours(ctx.lake.read("gold", "als_item_factors")
                                                .withColumnRenamed("item_idx", "id"), "item_idx", conf.n, block),
        "cooccurrence": lambda: cooccurrence_neighbours(history(ctx, "interactions"), conf),
    }
    if ctx.lake.exists("gold", "item_text_embeddings"):
        item_lists["content"] = lambda: content_neighbours(ctx.lake.read("gold", "item_text_embeddings"), conf.n, block)
    for method, build in item_lists.items():
        with ctx.progress.step("neighbours", f"gold.item_neighbours method={method}") as step:
            ctx.lake.overwrite(build().select(F.lit(method).alias("method"), "*"), "gold", "item_neighbours",
                               replace_where=f"method = '{method}'")
            step.rows = ctx.lake.last_commit_metrics("gold", "item_neighbours")["numOutputRows"]
    with ctx.progress.step("neighbours", "gold.user_neighbours") as step:
        users = ctx.lake.read("gold", "als_user_factors").withColumnRenamed("user_idx", "id")
        ctx.lake.overwrite(factor_neighbours(users, "user_idx", conf.n, block), "gold", "user_neighbours")
        step.rows = ctx.lake.last_commit_metrics("gold", "user_neighbours")["numOutputRows"]


def recommend(ctx: Context) -> None:
    run_once(ctx, "recommend", lambda run_id: _recommend(ctx, run_id))


def write_recs(ctx: Context, stage: str, run_id: str, lists: dict[str, DataFrame], fallback: DataFrame) -> None:
    """Models' final-cut lists into gold.recs, every user's filled to k from `fallback`. One commit
    for all of a stage's models: on a small shop a Delta commit costs more than a model's lists."""
    with ctx.progress.step(stage, f"gold.recs models={','.join(lists)}") as step:
        out = reduce(DataFrame.unionByName, [fill_to_k(recs, fallback, ctx.cfg.cf.k).select(
            F.lit(name).alias("model"), F.lit(run_id).alias("run_id"), F.lit("final").alias("cut"), "user_idx",
            "rank", "item_idx", F.col("score").cast("float"), "filled") for name, recs in lists.items()])
        ctx.lake.overwrite(out, "gold", "recs", replace_where=f"model IN ({_quoted(lists)})", partition_by=["model"])
        step.rows = ctx.lake.last_commit_metrics("gold", "recs")["numOutputRows"]


def _quoted(names) -> str:
    return ", ".join(f"'{n}'" for n in names)


def fallback_lists(ctx: Context, train: DataFrame) -> DataFrame:
    """Popularity for every known user, the filler of any list with fewer than k items. Cached:
    every model of a stage fills from it."""
    users = ctx.lake.read("gold", "id_map_users").select("user_idx")
    return popularity_recs(train, users, ctx.cfg.cf.k).cache()


def model_lists(ctx: Context, cut: str, depth: int,
                users: DataFrame | None = None) -> dict[str, Callable[[], DataFrame]]:
    """Each model's builder of top-`depth` lists (user_idx, rank, item_idx, score) from one cut's
    history: the final cut's are what recommend writes; the tuning cut's, judged on validation,
    are what hybrid fits its weights and ranker on. user_knn's neighbours are the final cut's
    (gold.user_neighbours) or, for the tuning cut, found in its ALS model's user factors.
    users: only these users get lists (hybrid learns from a sample); every model still learns from
    everyone's history."""
    cf = ctx.cfg.cf
    train = history(ctx, "interactions", cut)
    listed = users if users is not None else ctx.lake.read("gold", "id_map_users").select("user_idx")
    theirs = train if users is None else train.join(users, "user_idx", "left_semi")
    items = history(ctx, "item_features", cut)
    seen = theirs.select("user_idx", "item_idx")

    def cooccurrence() -> DataFrame:
        if cut == "final":
            return ctx.lake.read("gold", "item_neighbours").where(F.col("method") == "cooccurrence").drop("method")
        return cooccurrence_neighbours(train, cf.neighbours)

    def user_knn() -> DataFrame:
        if cut == "final":
            near = ctx.lake.read("gold", "user_neighbours")
            near = near if users is None else near.join(users, "user_idx", "left_semi")
        else:
            near = factor_neighbours(ALSModel.load(model_path(ctx, "als_tuning")).userFactors, "user_idx",
                                     cf.neighbours.n, cf.topk, among=users)
        return user_based_recs(train, near, depth)  # the neighbours' items come from everyone's history

    def recent() -> DataFrame:
        since = train.agg(F.max("last_ts") - F.make_dt_interval(secs=F.lit(cf.recent_days * 86400))).first()[0]
        return popularity_recs(train, listed, depth, since)

    models = {
        "als": lambda: als_recommend(ALSModel.load(model_path(ctx, "als" if cut == "final" else "als_tuning")),
                                     depth, seen, cf.topk, users),
        "ease": lambda: ease_recs(train, depth, cf.ease, cf.topk, users=users),
        "popularity": lambda: popularity_recs(train, listed, depth),
        "popularity_recent": recent,
        "popularity_category": lambda: category_popularity_recs(train, items, listed, depth, cf.category_top),
        "item_knn": lambda: item_based_recs(theirs, cooccurrence(), depth),
        "transitions": lambda: transition_recs(history(ctx, "sequences", cut), theirs, depth, users=users),
        "user_knn": user_knn,
    }
    if ctx.lake.exists("gold", "item_text_embeddings"):
        models["content"] = lambda: content_recs(theirs, ctx.lake.read("gold", "item_text_embeddings"), depth,
                                                 cf.topk)
    return models


def write_candidates(ctx: Context, stage: str, cut: str, lists: dict[str, DataFrame]) -> None:
    """Models' lists of one cut into gold.candidates, which hybrid fuses, in one commit."""
    with ctx.progress.step(stage, f"gold.candidates cut={cut} models={','.join(lists)}") as step:
        out = reduce(DataFrame.unionByName, [
            recs.select(F.lit(cut).alias("cut"), F.lit(name).alias("model"), "user_idx", "rank", "item_idx",
                        F.col("score").cast("double")) for name, recs in lists.items()])
        ctx.lake.overwrite(out, "gold", "candidates", replace_where=f"cut = '{cut}' AND model IN ({_quoted(lists)})")
        step.rows = ctx.lake.last_commit_metrics("gold", "candidates")["numOutputRows"]


def learning_users(ctx: Context) -> DataFrame:
    """The up to hybrid.max_users validation users (a seeded sample) whose tuning-cut lists hybrid
    learns its weights and ranker from: only they need such lists, from any stage that writes them."""
    h = ctx.cfg.hybrid
    return (held_out(ctx, "validation").select("user_idx").distinct()
            .orderBy(F.xxhash64("user_idx", F.lit(h.ranker.seed))).limit(h.max_users))


def candidate_lists(ctx: Context, cut: str, models: list[str], depth: int, own: bool = False) -> DataFrame:
    """(model, user_idx, rank, item_idx, score): the models' lists of one cut, to `depth`; own: the
    stage's own, just written (see Lakehouse.read)."""
    return (ctx.lake.read("gold", "candidates", own=own)
            .where((F.col("cut") == cut) & F.col("model").isin(*models) & (F.col("rank") <= depth)).drop("cut"))


def final_depth(k: int, candidates: int) -> int:
    """How deep recommend builds the final cut's lists of the models hybrid fuses."""
    return max(k, candidates)


def _recommend(ctx: Context, run_id: str) -> None:
    """A model that hybrid fuses is built once, to hybrid's depth, into gold.candidates (final
    cut); its gold.recs lists are the first k of those."""
    h, k = ctx.cfg.hybrid, ctx.cfg.cf.k
    fallback = fallback_lists(ctx, history(ctx, "interactions"))
    models = model_lists(ctx, "final", k)
    models["popularity"] = lambda: fallback
    fused = [name for name in models if name in h.models]
    lists = {name: build() for name, build in models.items() if name not in fused}
    if fused:
        deep = model_lists(ctx, "final", final_depth(k, h.candidates))
        write_candidates(ctx, "recommend", "final", {name: deep[name]() for name in fused})
        written = candidate_lists(ctx, "final", fused, k, own=True)
        lists.update({name: written.where(F.col("model") == name).drop("model") for name in fused})
    write_recs(ctx, "recommend", run_id, lists, fallback)
    fallback.unpersist()


def evaluate(ctx: Context) -> None:
    run_once(ctx, "evaluate", lambda run_id: _evaluate(ctx, run_id))


def _evaluate(ctx: Context, run_id: str) -> None:
    """Every model's final-cut lists against test pairs the user had not had in train + validation;
    a test user without a list counts as a miss. Ranking metrics also on two slices: users with at
    most cf.cold_user_events events in the history and items with fewer than cf.cold_item_users."""
    cf, k = ctx.cfg.cf, ctx.cfg.cf.k
    recs_all = ctx.lake.read("gold", "recs").where(F.col("cut") == "final")
    truth = held_out(ctx, "test").cache()  # every model is scored against the same pairs
    train = history(ctx, "interactions").cache()
    items = history(ctx, "item_features")
    n_items = items.count()
    slices = cold_slices(truth, history(ctx, "user_features"), items, cf.cold_user_events, cf.cold_item_users)
    factors = (ctx.lake.read("gold", "als_item_factors").cache()
               if ctx.lake.exists("gold", "als_item_factors") else None)
    with ctx.progress.step("evaluate", "every model's lists, one pass per metric") as step:
        # each metric for all models in one job: a job per model and metric cost seconds each
        ranking = ranking_metrics_by(recs_all, truth, k, "model")
        beyond = {"coverage": coverage_by(recs_all, n_items, k, "model"),
                  "novelty": novelty_by(recs_all, train, k, "model"),
                  "diversity": diversity_by(recs_all, items, k, "model"),
                  "lists_filled": filled_share_by(recs_all, "model")}
        if factors is not None:
            beyond["diversity_embedding"] = embedding_diversity_by(recs_all, factors, k, "model")
        sliced = {label: ranking_metrics_by(recs_all, part, k, "model") for label, part in slices.items()}
        rows, missed = [], dict.fromkeys(RANKING, 0.0)  # no test user: every model scores zero
        for name in sorted(r[0] for r in recs_all.select("model").distinct().collect()):
            got = {**ranking.get(name, missed), **{metric: v.get(name, 0.0) for metric, v in beyond.items()}}
            rows += [(run_id, name, metric, k, float(v), "test", utc_now(), "all") for metric, v in got.items()]
            for label, by_model in sliced.items():
                rows += [(run_id, name, metric, k, float(v), "test", utc_now(), label)
                         for metric, v in by_model.get(name, missed).items()]
            log.info("[evaluate] %s: %s", name, ", ".join(f"{a}@{k}={b:.4f}" for a, b in got.items()))
        step.rows = len(rows)
    for frame in (truth, train, factors):
        if frame is not None:
            frame.unpersist()
    append_metrics(ctx, rows)


def cold_slices(truth: DataFrame, user_features: DataFrame, item_features: DataFrame, user_events: int,
                item_users: int) -> dict[str, DataFrame]:
    """Test pairs of users with at most `user_events` history events (none counts), and of items
    with fewer than `item_users` users in the history."""
    users = user_features.select("user_idx", "n_events")
    items = item_features.select("item_idx", "n_users")
    return {
        "cold_users": truth.join(users, "user_idx", "left")
        .where(F.coalesce("n_events", F.lit(0)) <= user_events).drop("n_events"),
        "cold_items": truth.join(items, "item_idx", "left")
        .where(F.coalesce("n_users", F.lit(0)) < item_users).drop("n_users"),
    }


def append_metrics(ctx: Context, rows: list[tuple]) -> None:
    """rows: (run_id, model, metric, k, value, split, evaluated_at[, slice]); slice defaults to all."""
    schema = ("run_id string, model string, metric string, k int, value double, split string, "
              "evaluated_at timestamp, slice string")
    rows = [r if len(r) == 8 else (*r, "all") for r in rows]
    ctx.lake.append(ctx.spark.createDataFrame(rows, schema), "gold", "metrics")
