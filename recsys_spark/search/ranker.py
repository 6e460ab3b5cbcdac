"""The personalised re-ranker: LightGBM lambdarank over the hybrid candidates of a query.

Features join what the query says (BM25 per field, vector similarity, fused score and ranks) with
what the shop knows (the item's popularity and age) and what the user does (their share of the
item's category and brand, the cosine between their history's mean embedding and the item, the
item's price against their usual price). It learns from queries whose users' history comes from
an earlier cut than the queries themselves, so no feature has seen the answer.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recsys_spark.config import RankerConf
from recsys_spark.search.index import FIELDS

log = logging.getLogger("recsys_spark")

FEATURES = ["bm25", *[f"bm25_{f}" for f in FIELDS], "vector", "fused", "bm25_rank", "vector_rank", "popularity",
            "age_days", "category_share", "brand_share", "affinity", "price_ratio"]


def user_shares(searcher, row: int) -> dict:
    """The user's history as shares of category and brand codes, mean price and mean embedding."""
    h = searcher.users.history
    items = h.indices[h.indptr[row]:h.indptr[row + 1]]
    weights = h.data[h.indptr[row]:h.indptr[row + 1]].astype(np.float64)
    total = weights.sum() or 1.0
    out: dict = {}
    for name in ("category", "brand"):
        codes = searcher.codes[name][items]
        out[name] = pd.Series(weights, index=codes).groupby(level=0).sum().div(total).to_dict()
    prices = searcher.price[items]
    ok = np.isfinite(prices)
    out["price"] = float(np.average(prices[ok], weights=weights[ok])) if ok.any() and weights[ok].sum() > 0 else np.nan
    emb = searcher.index.embeddings
    if emb is not None and len(items):
        profile = weights @ emb[items]
        norm = np.linalg.norm(profile)
        out["profile"] = profile / norm if norm > 0 else None
    else:
        out["profile"] = None
    return out


def _rank_of(ranked: np.ndarray, positions: np.ndarray) -> np.ndarray:
    where = {p: r for r, p in enumerate(ranked.tolist(), start=1)}
    return np.array([where.get(p, len(ranked) + 1) for p in positions.tolist()], dtype=np.float64)


def features(searcher, got: dict, row: int | None, positions: np.ndarray) -> np.ndarray:
    """One row per candidate position, in FEATURES order."""
    terms = got["terms"]
    fused = dict(zip(got["top"].tolist(), np.asarray(got["score"], dtype=np.float64).tolist(), strict=True))
    cols = [got["bm25"][positions]]
    cols += [searcher.bm25_scores(terms, searcher.index.field_impacts[f])[positions] for f in FIELDS]
    cols += [got["vector"][positions], np.array([fused.get(p, 0.0) for p in positions.tolist()]),
             _rank_of(got["bm25_top"], positions), _rank_of(got["vector_top"], positions),
             searcher.popularity[positions], searcher.age_days[positions]]
    n = len(positions)
    if row is None:
        cols += [np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, np.nan)]
    else:
        shares = user_shares(searcher, row)
        cols += [np.array([shares[name].get(c, 0.0) for c in searcher.codes[name][positions]])
                 for name in ("category", "brand")]
        profile = shares["profile"]
        emb = searcher.index.embeddings
        cols.append(emb[positions] @ profile if profile is not None else np.zeros(n))
        cols.append(searcher.price[positions] / shares["price"] if shares["price"] > 0 else np.full(n, np.nan))
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def rerank(searcher, got: dict, row: int | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-n fused candidates re-ordered by the ranker; ties by the fused order."""
    positions = got["top"][:n]
    scores = searcher.ranker.predict(features(searcher, got, row, positions))
    order = np.lexsort((np.arange(len(positions)), -scores))
    return positions[order], scores[order]


def training_data(searcher, queries: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Features, graded labels and group sizes over the hybrid candidates of each query whose
    wanted item is among them (a query without it teaches a ranker nothing)."""
    xs, ys, groups = [], [], []
    for q in queries.itertuples(index=False):
        terms, _ = searcher.analyse(q.query)
        if not terms:
            continue
        got = searcher.retrieve(q.query, terms, "hybrid", None, searcher.conf.candidates)
        positions = got["top"][:n]
        target = searcher.index.position.get(int(q.item_idx))
        labels = (positions == target).astype(np.float64) * q.grade
        if not labels.any():
            continue
        xs.append(features(searcher, got, searcher.user_row(int(q.user_idx)), positions))
        ys.append(labels)
        groups.append(len(positions))
    if not groups:
        return np.empty((0, len(FEATURES))), np.empty(0), []
    return np.vstack(xs), np.concatenate(ys), groups


def train(searcher, queries: pd.DataFrame, conf: RankerConf):
    """A lambdarank Booster, or None when fewer than conf.min_queries queries can teach it."""
    import lightgbm as lgb

    x, y, groups = training_data(searcher, queries, conf.candidates)
    log.info("[search] ranker: %d of %d queries have the wanted item among %d candidates", len(groups),
             len(queries), conf.candidates)
    if len(groups) < conf.min_queries:
        log.warning("[search] ranker: %d queries to learn from, fewer than search.ranker.min_queries = %d; "
                    "personalised search stays plain hybrid", len(groups), conf.min_queries)
        return None
    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=conf.n_estimators, num_leaves=conf.num_leaves,
                           learning_rate=conf.learning_rate, random_state=conf.seed, n_jobs=1, verbose=-1,
                           deterministic=True, force_row_wise=True)
    model.fit(pd.DataFrame(x, columns=FEATURES), y, group=groups)
    return model.booster_
