"""The personalised re-ranker: LightGBM lambdarank over the hybrid candidates of a query.

Features join what the query says (BM25 per field, vector similarity, fused score and ranks) with
what the shop knows (the item's popularity and age) and what the user does (their share of the
item's category and brand, the cosine between their history's mean embedding and the item, the
item's price against their usual price). It learns from queries whose users' history comes from
an earlier cut than the queries themselves, so no feature has seen the answer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_spark.config import RankerConf
from recsys_spark.search.index import FIELDS

log = logging.getLogger("recsys_spark")

FEATURES = ["bm25", *[f"bm25_{f}" for f in FIELDS], "vector", "fused", "bm25_rank", "vector_rank", "popularity",
            "age_days", "category_share", "brand_share", "affinity", "price_ratio"]


def user_shares(searcher, row: int) -> dict:
    """The user's history as shares per category and brand code (arrays indexed by code), their
    weighted mean price and the unit-length mean embedding of what they had."""
    h = searcher.users.history
    items = h.indices[h.indptr[row]:h.indptr[row + 1]]
    weights = h.data[h.indptr[row]:h.indptr[row + 1]].astype(np.float64)
    total = weights.sum() or 1.0
    out: dict = {name: np.bincount(searcher.codes[name][items], weights, minlength=searcher.n_codes[name]) / total
                 for name in ("category", "brand")}
    prices = searcher.price[items]
    ok = np.isfinite(prices) & (weights > 0)
    out["price"] = float(np.average(prices[ok], weights=weights[ok])) if ok.any() else np.nan
    emb = searcher.index.embeddings
    profile = weights @ emb[items] if emb is not None and len(items) else None
    norm = np.linalg.norm(profile) if profile is not None else 0.0
    out["profile"] = profile / norm if norm > 0 else None
    return out


def _rank_of(ranked: np.ndarray, positions: np.ndarray) -> np.ndarray:
    where = {p: r for r, p in enumerate(ranked.tolist(), start=1)}
    return np.array([where.get(p, len(ranked) + 1) for p in positions.tolist()], dtype=np.float64)


def features(searcher, got: dict, shares: dict | None, positions: np.ndarray) -> np.ndarray:
    """One row per candidate position, in FEATURES order; shares: user_shares() or None."""
    terms = got["terms"]
    fused = dict(zip(got["top"].tolist(), np.asarray(got["score"], dtype=np.float64).tolist(), strict=True))
    cols = [got["bm25"][positions]]
    cols += [searcher.bm25_scores(terms, searcher.index.field_impacts[f])[positions] for f in FIELDS]
    cols += [got["vector"][positions], np.array([fused.get(p, 0.0) for p in positions.tolist()]),
             _rank_of(got["bm25_top"], positions), _rank_of(got["vector_top"], positions),
             searcher.popularity[positions], searcher.age_days[positions]]
    n = len(positions)
    if shares is None:
        cols += [np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, np.nan)]
    else:
        cols += [shares[name][searcher.codes[name][positions]] for name in ("category", "brand")]
        profile = shares["profile"]
        emb = searcher.index.embeddings
        cols.append(emb[positions] @ profile if profile is not None else np.zeros(n))
        cols.append(searcher.price[positions] / shares["price"] if shares["price"] > 0 else np.full(n, np.nan))
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def rerank(searcher, got: dict, shares: dict | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-n fused candidates re-ordered by the ranker; ties by the fused order."""
    positions = got["top"][:n]
    scores = searcher.ranker.predict(features(searcher, got, shares, positions))
    order = np.lexsort((np.arange(len(positions)), -scores))
    return positions[order], scores[order]


@dataclass
class Query:
    """A query with a known answer, analysed and embedded once for every pass over it."""
    text: str                   # what the embedding read: Searcher.vector_text
    terms: list[str]
    vector: np.ndarray
    target: int                 # the wanted item's position
    grade: float
    shares: dict | None


def prepare(searcher, queries: pd.DataFrame) -> list[Query]:
    """Queries with at least one term and a wanted item in the index; embedded in one batch."""
    from recsys_spark.search.embed import encode

    kept = []
    for q in queries.itertuples(index=False):
        terms, corrected = searcher.analyse(q.query)
        target = searcher.index.position.get(int(q.item_idx))
        if terms and target is not None:
            row = searcher.user_row(int(q.user_idx))
            kept.append((searcher.vector_text(q.query, corrected), terms, target, float(q.grade),
                         None if row is None else user_shares(searcher, row)))
    vectors = encode([k[0] for k in kept], searcher.conf.embedding) if kept else np.empty((0, 0))
    return [Query(text, terms, vectors[i], target, grade, shares)
            for i, (text, terms, target, grade, shares) in enumerate(kept)]


def ndcg_at_10(ranked: np.ndarray, target: int) -> float:
    hit = np.flatnonzero(ranked[:10] == target)
    return 1 / np.log2(hit[0] + 2) if hit.size else 0.0


def pick_fusion(searcher, queries: list[Query]) -> dict:
    """RRF or a blend (BM25 weight 0, 0.1, ..., 0.9, 0.95, 0.99, 1; near 1 the vector mostly
    orders what BM25 cannot tell apart): whichever gives the best mean NDCG@10."""
    weights = [*np.round(np.linspace(0, 0.9, 10), 2).tolist(), 0.95, 0.99, 1.0]
    options = {"rrf": ("rrf", 0.0), **{f"blend[{w:g}]": ("blend", w) for w in weights}}
    totals = dict.fromkeys(options, 0.0)
    for q in queries:
        got = searcher.retrieve(q.text, q.terms, "hybrid", None, searcher.conf.candidates, q.vector)
        for label, (fusion, w) in options.items():
            totals[label] += ndcg_at_10(searcher.fuse(got, fusion, w)[0], q.target)
    scores = {label: round(t / max(len(queries), 1), 4) for label, t in totals.items()}
    best = max(scores, key=lambda label: (scores[label], label == "rrf"))
    return {"fusion": options[best][0], "blend": options[best][1], "validation_ndcg": scores,
            "queries": len(queries)}


def training_data(searcher, queries: list[Query], n: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Features, graded labels and group sizes over the hybrid candidates of each query whose
    wanted item is among them (a query without it teaches a ranker nothing)."""
    xs, ys, groups = [], [], []
    for q in queries:
        got = searcher.retrieve(q.text, q.terms, "hybrid", None, searcher.conf.candidates, q.vector)
        positions = got["top"][:n]
        labels = (positions == q.target).astype(np.float64) * q.grade
        if not labels.any():
            continue
        xs.append(features(searcher, got, q.shares, positions))
        ys.append(labels)
        groups.append(len(positions))
    if not groups:
        return np.empty((0, len(FEATURES))), np.empty(0), []
    return np.vstack(xs), np.concatenate(ys), groups


def lambdarank(x: pd.DataFrame | np.ndarray, y: np.ndarray, groups: list[int] | np.ndarray, num_leaves: int,
               n_estimators: int, learning_rate: float, seed: int, init_score: np.ndarray | None = None,
               held_out: tuple | None = None):
    """A LightGBM lambdarank Booster, one thread and deterministic, so a rerun learns the same trees.
    init_score: a score per row the trees correct (the booster predicts only the correction);
    held_out: (x, y, groups, init_score) of other queries; trees stop once NDCG@10 there has not
    improved for 20 rounds, and the booster keeps the best count (its best_iteration)."""
    import lightgbm as lgb

    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=n_estimators, num_leaves=num_leaves,
                           learning_rate=learning_rate, random_state=seed, n_jobs=1, verbose=-1,
                           deterministic=True, force_row_wise=True)
    if held_out is None:
        model.fit(x, y, group=groups, init_score=init_score)
    else:
        hx, hy, hg, hinit = held_out
        model.fit(x, y, group=groups, init_score=init_score, eval_set=[(hx, hy)], eval_group=[hg],
                  eval_init_score=[hinit], eval_at=[10],
                  callbacks=[lgb.early_stopping(20, first_metric_only=True, verbose=False)])
    return model.booster_


def train(searcher, queries: list[Query], conf: RankerConf):
    """A lambdarank Booster, or None when fewer than conf.min_queries queries can teach it."""
    x, y, groups = training_data(searcher, queries, conf.candidates)
    log.info("[search] ranker: %d of %d queries have the wanted item among %d candidates", len(groups),
             len(queries), conf.candidates)
    if len(groups) < conf.min_queries:
        log.warning("[search] ranker: %d queries to learn from, fewer than search.ranker.min_queries = %d; "
                    "personalised search stays plain hybrid", len(groups), conf.min_queries)
        return None
    return lambdarank(pd.DataFrame(x, columns=FEATURES), y, groups, conf.num_leaves, conf.n_estimators,
                      conf.learning_rate, conf.seed)
