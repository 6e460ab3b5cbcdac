"""Reads the latest search index and the users' history from the lakehouse into the arrays the
Searcher holds. One read per table (delta-rs on a local lakehouse, else Spark: lakehouse.frame),
then everything is numpy and scipy."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pandas as pd
from scipy import sparse

from recsys_spark.deep.data import local_path
from recsys_spark.lakehouse import Tables
from recsys_spark.search.index import FIELDS
from recsys_spark.search.searcher import Index, SearchError, Users, bm25_impacts

log = logging.getLogger("recsys_spark")

RANKER = "search_ranker.txt"
FUSION = "search_fusion.json"


def _csr(rows, cols, values, shape) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.asarray(values, dtype=np.float32), (np.asarray(rows), np.asarray(cols))), shape=shape)


def load_index(cfg, lake: Tables) -> Index:
    if not lake.exists("gold", "search_postings"):
        raise SearchError("no search index yet: run `recsys-spark run search_index` first")
    conf = cfg.search
    columns = ["item_idx", "item_id", "title", "category", "brand", "price", "stock"]
    items = lake.frame("gold", "item_text", columns).sort_values("item_idx").reset_index(drop=True)
    position = dict(zip(items["item_idx"].tolist(), range(len(items)), strict=True))
    terms = lake.frame("gold", "search_terms").sort_values("term").reset_index(drop=True)
    term_row = dict(zip(terms["term"].tolist(), range(len(terms)), strict=True))
    post = lake.frame("gold", "search_postings")
    lengths_pdf = lake.frame("gold", "search_fields")
    shape = (len(terms), len(items))
    tf, lengths = {}, {}
    for name in FIELDS:
        p = post[post["field"] == name]
        tf[name] = _csr(p["term"].map(term_row), p["item_idx"].map(position), p["tf"], shape)
        ln = lengths_pdf[lengths_pdf["field"] == name]
        lengths[name] = np.zeros(len(items))
        lengths[name][ln["item_idx"].map(position).to_numpy()] = ln["length"].to_numpy()
    idf = terms["idf"].to_numpy()
    impacts = bm25_impacts(tf, lengths, dict(conf.fields), idf, conf.k1, conf.b)
    field_impacts = {name: bm25_impacts({name: tf[name]}, {name: lengths[name]}, {name: 1.0}, idf, conf.k1, conf.b)
                     for name in FIELDS}
    words = lake.frame("gold", "search_vocabulary", ["word", "df"]).groupby("word", as_index=False)["df"].max()
    embeddings = None
    if lake.exists("gold", "item_text_embeddings"):
        e = lake.frame("gold", "item_text_embeddings")
        embeddings = np.zeros((len(items), len(e["embedding"].iat[0]) if len(e) else 0), dtype=np.float32)
        embeddings[e["item_idx"].map(position).to_numpy()] = np.stack(e["embedding"].to_numpy())
    return Index(items, term_row, impacts, field_impacts, words, embeddings, position, idf, tf, lengths)


def load_users(lake: Tables, index: Index, cut: str) -> tuple[Users, pd.DataFrame]:
    """Each user's weighted history in the cut, and per item its popularity (log of distinct
    users) and the days since its last interaction."""
    inter = lake.frame("gold", "interactions", ["user_idx", "item_idx", "confidence", "last_ts"], [("cut", "=", cut)])
    inter = inter[inter["item_idx"].isin(index.position.keys())]
    users = np.sort(inter["user_idx"].unique())
    row = dict(zip(users.tolist(), range(len(users)), strict=True))
    cols = inter["item_idx"].map(index.position).to_numpy()
    history = _csr(inter["user_idx"].map(row), cols, inter["confidence"], (len(users), len(index.items)))
    ids = lake.frame("gold", "id_map_users", ["user_id", "user_idx"])
    n = len(index.items)
    end = inter["last_ts"].max()
    per_item = inter.assign(pos=cols).groupby("pos").agg(users=("user_idx", "nunique"), last=("last_ts", "max"))
    stats = pd.DataFrame({"popularity": np.zeros(n), "age_days": np.full(n, np.nan)})
    stats.loc[per_item.index, "popularity"] = np.log1p(per_item["users"].to_numpy())
    stats.loc[per_item.index, "age_days"] = ((end - per_item["last"]).dt.total_seconds() / 86400).to_numpy()
    return Users(history, row, dict(zip(ids["user_id"].astype(str), ids["user_idx"].astype(int), strict=True))), stats


def load_ranker(lake: Tables):
    path = local_path(lake.model_path(RANKER))
    if not os.path.exists(path):
        return None
    import lightgbm as lgb

    return lgb.Booster(model_file=path)


def load_fusion(lake: Tables) -> dict | None:
    path = local_path(lake.model_path(FUSION))
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load(cfg, lake: Tables, cut: str, ranker: bool) -> tuple:
    """(index, users, item stats, ranker or None, fusion): the Searcher's arguments after its config."""
    index = load_index(cfg, lake)
    users, stats = load_users(lake, index, cut) if lake.exists("gold", "interactions") else (None, None)
    log.info("[search] index: %d items, %d terms, embeddings %s, %d users", len(index.items), len(index.terms),
             "yes" if index.embeddings is not None else "no", 0 if users is None else len(users.row))
    return index, users, stats, load_ranker(lake) if ranker else None, load_fusion(lake) if ranker else None
