"""Search stages: search_index builds the BM25F statistics and the item embeddings from the whole
catalogue; train_ranker fits the personalised re-ranker on the validation window's queries with
the users' tuning-cut history, so that serving (final cut) and learning (tuning cut) follow the
same two-cut protocol as every model.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from recsys_spark.deep.data import local_path
from recsys_spark.pipeline.cf import held_out
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once
from recsys_spark.search.embed import embed_items
from recsys_spark.search.index import field_lengths, field_tokens, item_text, postings, term_stats, vocabulary
from recsys_spark.search.queries import known_item_queries, logged_queries
from recsys_spark.search.ranker import pick_fusion, prepare, train
from recsys_spark.search.searcher import Searcher
from recsys_spark.search.store import FUSION, RANKER

log = logging.getLogger("recsys_spark")


def search_index(ctx: Context) -> None:
    run_once(ctx, "search_index", lambda run_id: _index(ctx))


def _write(ctx: Context, stage: str, df, table: str) -> int:
    with ctx.progress.step(stage, f"gold.{table}") as step:
        ctx.lake.overwrite(df, "gold", table)
        step.rows = ctx.lake.last_commit_metrics("gold", table)["numOutputRows"]
    return step.rows


def _index(ctx: Context) -> None:
    lake = ctx.lake
    n_items = _write(ctx, "search_index", item_text(lake.read("silver", "items"), lake.read("gold", "id_map_items")),
                     "item_text")
    text = lake.read("gold", "item_text")
    tokens = field_tokens(text).cache()
    _write(ctx, "search_index", postings(tokens), "search_postings")
    _write(ctx, "search_index", field_lengths(tokens), "search_fields")
    _write(ctx, "search_index", vocabulary(tokens), "search_vocabulary")
    tokens.unpersist()
    _write(ctx, "search_index", term_stats(lake.read("gold", "search_postings"), n_items), "search_terms")
    start = time.perf_counter()
    _write(ctx, "search_index", embed_items(text, ctx.cfg.search.embedding), "item_text_embeddings")
    seconds = time.perf_counter() - start
    log.info("[search_index] embedded %d items in %.1fs (%.0f items/s)", n_items, seconds, n_items / max(seconds, 1e-9))


def train_ranker(ctx: Context) -> None:
    run_once(ctx, "train_ranker", lambda run_id: _train_ranker(ctx))


def ranker_queries(ctx: Context, split: str) -> pd.DataFrame:
    """The split's logged searches where the shop has enough of them, else known-item queries
    made from the split's held-out items (any data set with item text)."""
    conf = ctx.cfg.search.ranker
    logged = logged_queries(ctx.lake.read("gold", "splits"), split)
    if logged.count() >= conf.min_queries:
        return logged.orderBy(F.xxhash64(F.lit(conf.seed), "user_idx", "query")).limit(conf.max_queries).toPandas()
    return known_item_queries(held_out(ctx, split), ctx.lake.read("gold", "item_text"), conf.seed,
                              max_queries=conf.max_queries)


def _save(path: str, write) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    write(tmp)
    os.replace(tmp, path)  # a killed run leaves the previous file whole


def _train_ranker(ctx: Context) -> None:
    """Picks the hybrid fusion, then fits the re-ranker over the picked fusion's candidates."""
    searcher = Searcher.load(ctx.cfg, cut="tuning", ranker=False, lake=ctx.lake)
    with ctx.progress.step("train_ranker", "analyse and embed validation queries") as step:
        queries = prepare(searcher, ranker_queries(ctx, "validation"))
        step.rows = len(queries)
    with ctx.progress.step("train_ranker", "pick the hybrid fusion on validation") as step:
        fusion = pick_fusion(searcher, queries)
        step.rows = len(fusion["validation_ndcg"])
    log.info("[train_ranker] hybrid fusion %s (BM25 weight %.1f); validation NDCG@10 %s", fusion["fusion"],
             fusion["blend"], fusion["validation_ndcg"])
    _save(local_path(ctx.lake.model_path(FUSION)), lambda p: Path(p).write_text(json.dumps(fusion, indent=2)))
    if ctx.cfg.search.fusion == "auto":
        searcher.fusion = (fusion["fusion"], fusion["blend"])
    with ctx.progress.step("train_ranker", "lambdarank on validation queries (tuning cut)") as step:
        booster = train(searcher, queries, ctx.cfg.search.ranker)
        step.rows = len(queries)
    path = local_path(ctx.lake.model_path(RANKER))
    if booster is None:
        if os.path.exists(path):
            os.remove(path)  # a stale ranker must not outlive the data it learnt from
        return
    _save(path, booster.save_model)
    log.info("[train_ranker] saved %s (%d trees)", path, booster.num_trees())
