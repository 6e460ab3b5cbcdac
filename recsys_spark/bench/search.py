"""Search: NDCG@10, MRR@10 and Recall@100 of every retrieval mode, latency and queries per second,
against the bm25s library on the same corpus and tokens.

Queries: on the built-in shop (the default), its logged searches in the test window, each judged
by the item the shopper clicked; on any data set with item text (DATASET=), known-item queries
made from each test user's held-out item by the seeded procedure of recsys_spark.search.queries.
The re-ranker learns from the validation window's queries with the tuning-cut history; test
queries are answered with the final cut's.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_spark.bench.report import keep_per_dataset, row, write_report
from recsys_spark.config import load_config
from recsys_spark.pipeline import run_stage
from recsys_spark.pipeline.cf import held_out
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.search import ranker_queries
from recsys_spark.search.index import FIELDS
from recsys_spark.search.queries import known_item_queries
from recsys_spark.search.searcher import MODES, Searcher, bm25_impacts, top

STAGES = ["ingest", "quality", "features", "search_index", "train_ranker"]
SHOP = ["source.synthetic.n_items=50000", "source.synthetic.n_users=20000", "source.synthetic.n_events=1000000"]
MAX_QUERIES = 2000
SEED = 7


def judge(ranked: list[np.ndarray], targets: list[int]) -> dict[str, float]:
    """NDCG@10, MRR@10 and Recall@100 for one wanted item per query."""
    ndcg, mrr, recall = [], [], []
    for positions, target in zip(ranked, targets, strict=True):
        hit = np.flatnonzero(positions[:100] == target)
        r = int(hit[0]) + 1 if hit.size else None
        ndcg.append(1 / np.log2(r + 1) if r and r <= 10 else 0.0)
        mrr.append(1 / r if r and r <= 10 else 0.0)
        recall.append(1.0 if r else 0.0)
    return {"ndcg": float(np.mean(ndcg)), "mrr": float(np.mean(mrr)), "recall": float(np.mean(recall))}


def latency_rows(model: str, seconds: list[float], dataset: str) -> list[dict]:
    ms = np.asarray(seconds) * 1000
    out = [row(model, f"latency_{p}_ms", round(float(np.percentile(ms, q)), 2), None, dataset=dataset)
           for p, q in (("p50", 50), ("p95", 95), ("p99", 99))]
    return out + [row(model, "queries_per_s", round(1000 / float(ms.mean()), 1), None, dataset=dataset)]


def quality_rows(model: str, m: dict[str, float], dataset: str) -> list[dict]:
    return [row(model, name, round(m[name], 4), k, dataset=dataset) for name, k in (("ndcg", 10), ("mrr", 10),
                                                                                  ("recall", 100))]


def run_modes(searcher: Searcher, queries: pd.DataFrame, name: str) -> tuple[list[dict], dict]:
    rows, scores = [], {}
    targets = [searcher.index.position.get(int(i), -1) for i in queries["item_idx"]]
    for mode in MODES:
        ranked, seconds, used = [], [], set()
        searcher.search("warm up the model", mode=mode)
        for q in queries.itertuples(index=False):
            start = time.perf_counter()
            result = searcher.search(q.query, user=int(q.user_idx), k=100, mode=mode)
            seconds.append(time.perf_counter() - start)
            ranked.append(np.array([searcher.index.position[h.item_idx] for h in result.hits], dtype=np.int64))
            used.add(result.mode)
        scores[mode] = judge(ranked, targets)
        rows += quality_rows(f"search_{mode}", scores[mode], name) + latency_rows(f"search_{mode}", seconds, name)
        rows.append(row(f"search_{mode}", "answered_as", "/".join(sorted(used)), None, dataset=name))
    return rows, scores


def peer_rows(searcher: Searcher, queries: pd.DataFrame, name: str, bm25_qps: float) -> list[dict]:
    """bm25s and our BM25 on one field made of every field's tokens (the same corpus and tokens,
    the same k1, b and idf), both answering the already analysed query."""
    import bm25s

    idx = searcher.index
    tf = sum(idx.tf[f] for f in FIELDS)
    flat = bm25_impacts({"all": tf}, {"all": sum(idx.lengths[f] for f in FIELDS)}, {"all": 1.0}, idx.idf,
                        searcher.conf.k1, searcher.conf.b)
    vocab = np.array(sorted(idx.terms, key=idx.terms.get), dtype=object)
    by_item = tf.T.tocsr()
    corpus = [[t for t, n in zip(vocab[by_item.indices[by_item.indptr[i]:by_item.indptr[i + 1]]],
                                 by_item.data[by_item.indptr[i]:by_item.indptr[i + 1]], strict=True)
               for _ in range(int(n))] for i in range(by_item.shape[0])]
    retriever = bm25s.BM25(k1=searcher.conf.k1, b=searcher.conf.b, method="lucene")
    retriever.index(corpus, show_progress=False)
    targets = [idx.position.get(int(i), -1) for i in queries["item_idx"]]
    peer, ours_flat, t_peer, t_ours = [], [], [], []
    for q in queries["query"]:
        start = time.perf_counter()
        terms = [t for t in searcher.analyse(q)[0] if t in retriever.vocab_dict]
        if terms:
            docs, scores = retriever.retrieve([terms], k=100, show_progress=False, n_threads=1)
            docs, scores = docs[0][scores[0] > 0], scores[0][scores[0] > 0]
            peer.append(docs[np.lexsort((searcher.tie[docs], -scores))])  # equal scores in our order
        else:
            peer.append(np.empty(0, dtype=np.int64))
        t_peer.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours_flat.append(top(searcher.bm25_scores(searcher.analyse(q)[0], flat), 100, searcher.tie))
        t_ours.append(time.perf_counter() - start)
    m_peer, m_flat = judge(peer, targets), judge(ours_flat, targets)
    rows = quality_rows("bm25s", m_peer, name) + latency_rows("bm25s", t_peer, name)
    rows += quality_rows("search_bm25_flat", m_flat, name) + latency_rows("search_bm25_flat", t_ours, name)
    rows += [row("search_bm25_flat_vs_bm25s", "ndcg_diff", round(m_flat["ndcg"] - m_peer["ndcg"], 4), 10,
                 dataset=name),
             row("search_bm25_flat_vs_bm25s", "qps_ratio", round(float(np.mean(t_peer) / np.mean(t_ours)), 2), None,
                 dataset=name),
             row("search_bm25_vs_bm25s", "qps_ratio", round(float(np.mean(t_peer)) * bm25_qps, 2), None,
                 dataset=name)]
    return rows


def run(dataset: str = "") -> None:
    name = Path(dataset).stem if dataset else "synthetic-shop"
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-search-") as root:
        ctx = Context.create(load_config(None, dataset or None, [f"lakehouse.root={root}",
                                                                   *([] if dataset else SHOP)]))
        for stage in STAGES:
            timings[stage] = round(run_stage(ctx, stage), 1)
        if dataset:
            queries = known_item_queries(held_out(ctx, "test"), ctx.lake.read("gold", "item_text"), SEED,
                                         max_queries=MAX_QUERIES)
            kind = "known-item queries from each sampled test user's held-out item (2-4 title words, 20% with a typo)"
        else:
            queries = ranker_queries(ctx, "test").head(MAX_QUERIES)
            kind = "the shop's logged searches in the test window, judged by the clicked item"
        start = time.perf_counter()
        searcher = Searcher.load(ctx.cfg, lake=ctx.lake)
        timings["load_searcher"] = round(time.perf_counter() - start, 1)
        n_items = len(searcher.index.items)
    rows, scores = run_modes(searcher, queries, name)
    bm25_qps = next(r["value"] for r in rows if r["model"] == "search_bm25" and r["metric"] == "queries_per_s")
    rows += peer_rows(searcher, queries, name, bm25_qps)
    best_single = max(scores["bm25"]["ndcg"], scores["vector"]["ndcg"])
    for mode in ("hybrid", "personalised"):
        rows.append(row(f"search_{mode}_vs_best_single", "ndcg_ratio",
                        round(scores[mode]["ndcg"] / best_single, 3) if best_single else None, 10, dataset=name))
    path = write_report(
        "search", f"Search: {kind}; {len(queries):,} queries, top 100 per query on one thread, one query at a "
        "time; NDCG@10 and MRR@10 of the wanted item, Recall@100", f"{name} ({n_items:,} items)", rows, timings,
        notes=["search_bm25 is BM25F over the configured field weights; search_bm25_flat is our BM25 over one field "
               "of all tokens, as bm25s indexes them, so the two can be compared (ndcg_diff) and timed (qps_ratio).",
               "search_bm25_vs_bm25s compares the full BM25 search path (analysis, typo correction, filters, facets, "
               "titles) with bm25s retrieving the analysed query.",
               "Latency is the Searcher's answer for one query on this machine after loading, embedding included.",
               "answered_as: personalised falls back to hybrid for users the ranker cannot know."])
    keep_per_dataset(path, name)
