"""The query path: the latest index in memory, a query answered in milliseconds.

BM25F: each query term's impact on every item is precomputed at load as a sparse term x item
matrix from the index's counts, so a query is a sum of a few sparse rows. Vectors: one matrix
product with the unit-length item embeddings (exact cosine). Hybrid fuses the two lists;
personalised re-orders the hybrid candidates with the learned ranker when the user is known.
"""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recsys_spark.arrays import columns_of
from recsys_spark.config import SearchConf
from recsys_spark.search.text import TOKEN, fold, stem, words

log = logging.getLogger("recsys_spark")

MODES = ("bm25", "vector", "hybrid", "personalised")
FILTERS = ("category", "brand", "min_price", "max_price", "in_stock")


class SearchError(ValueError):
    """A query or filter the Searcher cannot answer, with what is wrong with it."""


def _check_known(name: str, wanted: list[str], known: dict[str, list[int]]) -> None:
    """A value no item has is a typo more often than a wish for nothing: say so, with the nearest.
    known: the facet's distinct values, lower-cased, each with its codes."""
    for w in wanted:
        if w not in known:
            near = difflib.get_close_matches(w, sorted(known), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise SearchError(f"filter {name}={w!r}: no item has that {name}{hint}")


def _flag(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise SearchError(f"filter {name}={value!r}: use true or false")


@dataclass
class Hit:
    rank: int
    item_idx: int
    item_id: str
    title: str
    score: float
    why: str


@dataclass
class Result:
    query: str
    terms: list[str]                        # the analysed query, after typo correction
    corrected: dict[str, str]               # misspelt word -> the word searched instead
    mode: str                               # the mode that answered (personalised falls back to hybrid)
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)  # over every text match, else the hits


def bm25_impacts(tf: dict[str, sparse.csr_matrix], lengths: dict[str, np.ndarray], weights: dict[str, float],
                 idf: np.ndarray, k1: float, b: float) -> sparse.csr_matrix:
    """BM25F: term frequencies are length-normalised per field and weighted, then saturated once:
    impact = idf * wtf / (wtf + k1), wtf = sum_f w_f * tf_f / (1 - b + b * len_f / avglen_f)."""
    wtf = None
    for name, w in weights.items():
        length = lengths[name].astype(np.float64)
        avg = length.mean() if length.size and length.mean() > 0 else 1.0
        norm = sparse.diags(w / (1.0 - b + b * length / avg))
        part = tf[name].astype(np.float64) @ norm
        wtf = part if wtf is None else wtf + part
    wtf = sparse.csr_matrix(wtf)
    rows = np.repeat(np.arange(wtf.shape[0]), np.diff(wtf.indptr))
    wtf.data = idf[rows] * wtf.data / (wtf.data + k1)
    wtf.eliminate_zeros()
    wtf.sort_indices()  # postings: the items that have the term, in order, which columns_of() searches
    return wtf.astype(np.float32)


def top(scores: np.ndarray, n: int, tie: np.ndarray, positive: bool = True) -> np.ndarray:
    """Positions of the n best scores (positive ones only, or finite ones), best first; equal
    scores in `tie` order."""
    candidates = np.flatnonzero(scores > 0 if positive else np.isfinite(scores))
    if candidates.size > n:
        kth = np.partition(scores[candidates], candidates.size - n)[candidates.size - n]
        candidates = candidates[scores[candidates] >= kth]
    return candidates[np.lexsort((tie[candidates], -scores[candidates]))][:n]


def rrf(lists: list[np.ndarray], k: int, tie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion: sum of 1 / (k + rank) over the lists an item is in."""
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked.tolist(), start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    items = np.fromiter(fused, dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    order = np.lexsort((tie[items], -scores))
    return items[order], scores[order]


def tie_order(item_ids: pd.Series) -> np.ndarray:
    """A fixed order for equal scores that knows nothing of the items (a hash of the id): id order
    can carry popularity (catalogues number their bestsellers first), and a retriever that
    breaks ties by it would be scored for what it did not find."""
    return pd.util.hash_pandas_object(item_ids.astype(str), index=False).to_numpy()


def price_bands(prices: np.ndarray, edges: list[float]) -> tuple[np.ndarray, list[str]]:
    """(band code per price, band labels): 'lo-hi' bands over the edges, the last open-ended, and
    'unknown' for a missing price."""
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip([0.0, *edges[:-1]], edges, strict=True)] + [f"{edges[-1]:g}+"]
    codes = np.where(np.isfinite(prices), np.searchsorted(np.asarray(edges), np.nan_to_num(prices), side="right"),
                     len(labels))
    return codes, [*labels, "unknown"]


def minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min() if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.ones_like(x)


@dataclass
class Index:
    """Everything a query needs, as arrays over item positions 0..n-1."""
    items: pd.DataFrame                     # item_idx, item_id, title, category, brand, price, stock
    terms: dict[str, int]                   # stem -> row of the impact matrices
    impacts: sparse.csr_matrix              # BM25F, term x item
    field_impacts: dict[str, sparse.csr_matrix]
    words: pd.DataFrame                     # word, term, df: what typos are corrected to
    embeddings: np.ndarray | None           # item x 384, unit length
    position: dict[int, int]                # item_idx -> position
    idf: np.ndarray                         # per term row
    tf: dict[str, sparse.csr_matrix]        # the index's counts: term x item per field
    lengths: dict[str, np.ndarray]          # tokens per item per field


@dataclass
class Users:
    """Each known user's weighted history (user x item positions), for the re-ranker's features."""
    history: sparse.csr_matrix
    row: dict[int, int]                     # user_idx -> row
    ids: dict[str, int]                     # user_id -> user_idx


class Searcher:
    def __init__(self, conf: SearchConf, index: Index, users: Users | None = None,
                 item_stats: pd.DataFrame | None = None, ranker: Any = None, fusion: dict | None = None):
        self.conf, self.index, self.users, self.ranker = conf, index, users, ranker
        # (method, BM25 weight): the config's, unless it says auto and train_ranker picked one
        picked = fusion if conf.fusion == "auto" and fusion else {"fusion": conf.fusion, "blend": conf.blend}
        self.fusion = ("rrf" if picked["fusion"] == "auto" else picked["fusion"], float(picked["blend"]))
        items = index.items
        self.item_idx = items["item_idx"].to_numpy(dtype=np.int64)
        self.item_id = items["item_id"].astype(str).to_numpy(dtype=object)
        self.title = items["title"].astype(str).to_numpy(dtype=object)
        self.category = items["category"].to_numpy(dtype=object)
        self.brand = items["brand"].to_numpy(dtype=object)
        self.price = items["price"].to_numpy(dtype=np.float64)
        self.stock = items["stock"].fillna(0).to_numpy(dtype=np.int64)
        self.tie = tie_order(items["item_id"])
        self.facet_codes = {name: pd.factorize(items[name].fillna(""), sort=True) for name in ("category", "brand")}
        self.facet_codes["price_band"] = price_bands(self.price, conf.price_bands)
        # the re-ranker's user shares index the same codes
        self.codes = {name: self.facet_codes[name][0] for name in ("category", "brand")}
        self.n_codes = {name: len(self.facet_codes[name][1]) for name in ("category", "brand")}
        # filters match case-insensitively: each lower-cased value -> its codes ("Kitchen", "kitchen")
        self.filter_codes: dict[str, dict[str, list[int]]] = {}
        for name in ("category", "brand"):
            self.filter_codes[name] = {}
            for code, label in enumerate(self.facet_codes[name][1]):
                self.filter_codes[name].setdefault(str(label).lower(), []).append(code)
        stats = item_stats if item_stats is not None else pd.DataFrame(index=items.index)
        self.popularity = stats.get("popularity", pd.Series(0.0, index=items.index)).to_numpy(dtype=np.float64)
        self.age_days = stats.get("age_days", pd.Series(np.nan, index=items.index)).to_numpy(dtype=np.float64)
        self._word_list = index.words["word"].tolist()
        self._word_df = index.words["df"].to_numpy()

    @classmethod
    def load(cls, cfg, spark=None, cut: str = "final", ranker: bool = True, lake=None) -> Searcher:
        """The latest index version and the users' `cut` history (final: train + validation),
        read once: through `lake` or `spark` when given, else lakehouse.serving_tables."""
        from recsys_spark.lakehouse import serving_tables
        from recsys_spark.search.store import load

        lake = lake or serving_tables(cfg, spark)
        return cls(cfg.search, *load(cfg, lake, cut, ranker))

    # -- query analysis ---------------------------------------------------------------------
    def _max_edits(self, word: str) -> int:
        return min(self.conf.typo_max_edits, 0 if len(word) < 3 else 1 if len(word) <= 5 else 2)

    def correct(self, word: str) -> str | None:
        """The indexed word nearest to a word the index lacks (fewest edits, then most items), or
        None when none is within the allowed edits."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        edits = self._max_edits(word)
        if edits == 0 or not self._word_list:
            return None
        found = process.extract(word, self._word_list, scorer=Levenshtein.distance, score_cutoff=edits,
                                limit=20)
        if not found:
            return None
        best = min(found, key=lambda m: (m[1], -self._word_df[m[2]], m[0]))
        return best[0]

    def analyse(self, query: str) -> tuple[list[str], dict[str, str]]:
        if not isinstance(query, str):
            raise SearchError(f"a query is text, not {type(query).__name__}")
        if not query.strip():
            raise SearchError("empty query: type a few words")
        if len(query) > self.conf.max_query_chars:
            raise SearchError(f"query of {len(query)} characters; at most search.max_query_chars = "
                              f"{self.conf.max_query_chars}")
        terms, corrected = [], {}
        for word in words(query):
            term = stem([word])[0]
            if term not in self.index.terms:
                better = self.correct(word)
                if better is not None:
                    corrected[word] = better
                    term = stem([better])[0]
            terms.append(term)
        return terms, corrected

    @staticmethod
    def vector_text(query: str, corrected: dict[str, str]) -> str:
        """What the embedding reads: the query with the words BM25 corrected spelled as corrected,
        so a typo costs the vector no more than it costs BM25."""
        if not corrected:
            return query
        return TOKEN.sub(lambda m: corrected.get(m.group(0), m.group(0)), fold(query))

    # -- filters and facets -----------------------------------------------------------------
    def mask(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """Items allowed by the filters (category, brand: a value or a list; min_price, max_price;
        in_stock), or None for no filter."""
        if not filters:
            return None
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise SearchError(f"unknown filter {sorted(unknown)[0]!r}; filters are {', '.join(FILTERS)}")
        keep = np.ones(len(self.price), dtype=bool)
        for name in ("category", "brand"):
            if filters.get(name) is not None:
                wanted = filters[name] if isinstance(filters[name], list | tuple | set) else [filters[name]]
                wanted = [str(w).lower() for w in wanted]
                known = self.filter_codes[name]
                _check_known(name, wanted, known)
                keep &= np.isin(self.codes[name], [c for w in wanted for c in known[w]])
        bounds = {}
        for name, op in (("min_price", np.greater_equal), ("max_price", np.less_equal)):
            if filters.get(name) is not None:
                try:
                    bounds[name] = float(filters[name])
                except (TypeError, ValueError) as e:
                    raise SearchError(f"filter {name}={filters[name]!r} is not a number") from e
                keep &= op(np.nan_to_num(self.price, nan=-1.0), bounds[name])
        if bounds.get("min_price", -np.inf) > bounds.get("max_price", np.inf):
            raise SearchError(f"filter min_price={bounds['min_price']:g} is above max_price={bounds['max_price']:g}")
        if filters.get("in_stock") is not None and _flag("in_stock", filters["in_stock"]):
            keep &= self.stock > 0
        return keep

    def facets(self, positions: np.ndarray) -> dict[str, dict[str, int]]:
        """Counts by category, brand and price band over the matching items, largest first."""
        out = {}
        for name, (codes, labels) in self.facet_codes.items():
            counts = np.bincount(codes[positions], minlength=len(labels))
            order = np.lexsort((np.arange(len(labels)), -counts))
            out[name] = {str(labels[i]): int(counts[i]) for i in order if counts[i] > 0}
        return out

    # -- retrieval ----------------------------------------------------------------------------
    def bm25_scores(self, terms: list[str], impacts: sparse.csr_matrix | None = None) -> np.ndarray:
        """Each item's summed impacts over the query's terms: the terms' postings added into one
        array, which costs their length rather than a sparse matrix's slicing."""
        impacts = self.index.impacts if impacts is None else impacts
        rows = [self.index.terms[t] for t in terms if t in self.index.terms]
        spans = [slice(impacts.indptr[r], impacts.indptr[r + 1]) for r in rows]
        if not spans:
            return np.zeros(impacts.shape[1])
        return np.bincount(np.concatenate([impacts.indices[s] for s in spans]),
                           np.concatenate([impacts.data[s] for s in spans]), minlength=impacts.shape[1])

    def embed(self, query: str) -> np.ndarray:
        """One query on one CPU thread: a few word pieces gain nothing from more, and a thread pool
        woken per query is what made the slowest answers five times the median."""
        import torch

        from recsys_spark.search.embed import encode

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return encode([query], self.conf.embedding)[0]
        finally:
            torch.set_num_threads(threads)

    def vector_scores(self, query: str, vector: np.ndarray | None = None) -> np.ndarray:
        if self.index.embeddings is None:
            raise SearchError("this index has no embeddings: use mode bm25")
        return self.index.embeddings @ (self.embed(query) if vector is None else vector)

    def retrieve(self, query: str, terms: list[str], mode: str, keep: np.ndarray | None, n: int,
                 vector: np.ndarray | None = None) -> dict[str, Any]:
        """Candidates (positions, best first) of one mode, with the per-retriever scores the
        re-ranker and the explanations use. query: the text to embed (vector_text); vector: its
        embedding, if already made."""
        out: dict[str, Any] = {"terms": terms}
        if mode in ("bm25", "hybrid", "personalised"):
            s = self.bm25_scores(terms)
            if keep is not None:
                s = np.where(keep, s, 0.0)
            out["bm25"], out["bm25_top"] = s, top(s, n, self.tie)
        if mode in ("vector", "hybrid", "personalised"):
            v = self.vector_scores(query, vector)
            if keep is not None:
                v = np.where(keep, v, -np.inf)
            out["vector"], out["vector_top"] = v, top(v, n, self.tie, positive=False)
        if mode == "bm25":
            out["top"], out["score"] = out["bm25_top"], out["bm25"][out["bm25_top"]]
        elif mode == "vector":
            out["top"], out["score"] = out["vector_top"], out["vector"][out["vector_top"]]
        else:
            out["top"], out["score"] = self.fuse(out, *self.fusion)
        return out

    def fuse(self, got: dict[str, Any], fusion: str, blend: float) -> tuple[np.ndarray, np.ndarray]:
        """The hybrid list from the two retrievers' candidates."""
        if fusion == "rrf":
            return rrf([got["bm25_top"], got["vector_top"]], self.conf.rrf_k, self.tie)
        if not got["bm25_top"].size:  # no word matched (synonyms, another language): the vector's list
            return got["vector_top"], got["vector"][got["vector_top"]]
        pool = np.union1d(got["bm25_top"], got["vector_top"])
        blended = blend * minmax(got["bm25"][pool]) + (1 - blend) * minmax(got["vector"][pool])
        order = np.lexsort((self.tie[pool], -blended))
        return pool[order], blended[order]

    def user_row(self, user: int | str | None) -> int | None:
        """The history row of a user given by user_id or user_idx; None for an unknown user."""
        if user is None or self.users is None:
            return None
        idx = self.users.ids.get(str(user))
        if idx is None and isinstance(user, int | np.integer):
            idx = int(user)
        return self.users.row.get(idx) if idx is not None else None

    def search(self, query: str, user: int | str | None = None, k: int = 10,
               filters: dict[str, Any] | None = None, mode: str | None = None) -> Result:
        mode = mode or self.conf.mode
        if mode not in MODES:
            raise SearchError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        if not 1 <= k <= 1000:
            raise SearchError(f"k={k}: ask for 1 to 1000 results")
        terms, corrected = self.analyse(query)
        if not terms:
            return Result(query, [], corrected, mode, [])
        keep = self.mask(filters)
        row = self.user_row(user)
        used = mode if mode != "personalised" or (row is not None and self.ranker is not None) else "hybrid"
        got = self.retrieve(self.vector_text(query, corrected), terms, used, keep, max(self.conf.candidates, k))
        positions, scores = got["top"], got["score"]
        shares = None
        if row is not None:
            from recsys_spark.search.ranker import user_shares

            shares = user_shares(self, row)
        if used == "personalised":
            from recsys_spark.search.ranker import rerank

            positions, scores = rerank(self, got, shares, self.conf.ranker.candidates)
        positions, scores = positions[:k], scores[:k]
        hits = [Hit(r, int(self.item_idx[p]), self.item_id[p], self.title[p], float(s), why)
                for r, (p, s, why) in enumerate(zip(positions, scores, self.why(positions, terms, shares),
                                                    strict=True), start=1)]
        matches = np.flatnonzero(got["bm25"] > 0) if "bm25" in got and got["bm25_top"].size else got["top"]
        return Result(query, terms, corrected, used, hits, self.facets(matches))

    def why(self, positions: np.ndarray, terms: list[str], shares: dict | None) -> list[str]:
        """Per hit: the query terms it matched, by field; for a known user, the brand or category
        that makes up a fifth or more of what they had. Hits that matched the same terms share
        one string, so a hundred hits cost a few."""
        known = [t for t in dict.fromkeys(terms) if t in self.index.terms]
        fields = list(self.index.field_impacts)
        matched = np.zeros((len(positions), len(fields) * len(known)), dtype=bool)
        for f, impacts in enumerate(self.index.field_impacts.values()):
            for j, t in enumerate(known):
                r = self.index.terms[t]
                matched[:, f * len(known) + j] = columns_of(
                    impacts.indices[impacts.indptr[r]:impacts.indptr[r + 1]], positions) >= 0
        patterns, which = np.unique(matched, axis=0, return_inverse=True)
        texts = []
        for pattern in patterns.reshape(len(patterns), len(fields), len(known)):
            parts = [f"{name}: {' '.join(t for t, m in zip(known, hit, strict=True) if m)}"
                     for name, hit in zip(fields, pattern, strict=True) if hit.any()]
            texts.append("matched " + "; ".join(parts) if parts else "similar meaning")
        out = np.array(texts, dtype=object)[which.ravel()]
        if shares is not None:
            brand, category = (shares[name][self.codes[name][positions]] >= 0.2 for name in ("brand", "category"))
            liked = np.where(brand, self.brand[positions], np.where(category, self.category[positions], None))
            out = np.array([o if x is None else f"{o}; you often buy {x}" for o, x in zip(out, liked, strict=True)],
                           dtype=object)
        return out.tolist()
