"""Numpy lookups shared by the Spark tasks (top-K, EASE) and the in-memory searcher."""
from __future__ import annotations

import numpy as np


def columns_of(ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """The position of each id in the sorted `ids` (a posting list, a block's item columns), -1
    where it has none: a binary search each, no set built."""
    if not len(ids):
        return np.full(len(item_ids), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, item_ids), len(ids) - 1)
    return np.where(ids[at] == item_ids, at, -1)
