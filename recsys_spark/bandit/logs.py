"""Logged bandit feedback in the Open Bandit Dataset's layout: `<root>/<policy>/<campaign>/<campaign>.csv`
(timestamp, item_id, position 1.., click, propensity_score, user features, one user-item affinity
column per item) and `item_context.csv` beside it (item_feature_0 numeric, the rest hashed labels).
Any campaign and logging policy of the data set reads the same way.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ["timestamp", "item_id", "position", "click", "propensity_score"]


@dataclass(frozen=True)
class Logs:
    """One row per impression, in time order; positions from 0. A policy's features for each (row,
    item) are built a block of rows at a time (`contexts`, `rows_within`): for a full OBD campaign
    they would take tens of gigabytes at once."""

    source: str
    reward: np.ndarray
    action: np.ndarray
    position: np.ndarray
    pscore: np.ndarray
    item_feature: np.ndarray          # (items,): item_feature_0
    affinity: np.ndarray | None       # (rows, items): the user's affinity to each item; None if not read

    @property
    def n_actions(self) -> int:
        return len(self.item_feature)

    @property
    def n_positions(self) -> int:
        return int(self.position.max()) + 1

    @property
    def dim(self) -> int:
        return self.n_actions + 3

    @property
    def ctr(self) -> float:
        return float(self.reward.mean())

    def take(self, rows: np.ndarray) -> Logs:
        return Logs(self.source, self.reward[rows], self.action[rows], self.position[rows], self.pscore[rows],
                    self.item_feature, None if self.affinity is None else self.affinity[rows])

    def rows_within(self, block_bytes: int) -> int:
        """Rows whose contexts (items x features float64 each) fit in `block_bytes`."""
        return max(1, block_bytes // (8 * self.n_actions * self.dim))

    def blocks(self, size: int) -> Iterator[slice]:
        return (slice(start, min(start + size, len(self.reward))) for start in range(0, len(self.reward), size))

    def contexts(self, rows: slice) -> np.ndarray:
        """(rows, items, features) for a block of rows: every item's features for each row's user."""
        affinity = self._affinity(rows)
        return self._features(np.broadcast_to(np.arange(self.n_actions), affinity.shape), affinity)

    def shown(self, rows: slice) -> np.ndarray:
        """(rows, features): the features of the item each row's impression showed, what a policy learns from."""
        shown = self.action[rows]
        return self._features(shown, self._affinity(rows)[np.arange(len(shown)), shown])

    def _affinity(self, rows: slice) -> np.ndarray:
        if self.affinity is None:
            raise ValueError(f"bandit logs {self.source} were read without their user-item features")
        return self.affinity[rows]

    def _features(self, items: np.ndarray, affinity: np.ndarray) -> np.ndarray:
        """Item ids (any shape) and the user's affinity to each -> a bias, the item (one-hot), the
        affinity (log1p) and the item's numeric feature, on a last axis."""
        return np.concatenate([np.ones((*items.shape, 1)), np.eye(self.n_actions)[items],
                               np.log1p(affinity)[..., None], self.item_feature[items][..., None]], axis=-1)


def log_path(root: str | Path, policy: str, campaign: str) -> Path:
    return Path(root) / policy / campaign / f"{campaign}.csv"


def read_logs(root: str | Path, policy: str, campaign: str, features: bool = True) -> Logs:
    """The logs, with each user's affinity to every item where `features` (what a policy learns
    from; the estimators need only what was shown). A missing file or column is named in the error."""
    path = log_path(root, policy, campaign)
    items_path = path.with_name("item_context.csv")
    for p in (path, items_path):
        if not p.is_file():
            raise FileNotFoundError(f"bandit logs: no file {p} (logs.root={root}, policy={policy}, "
                                    f"campaign={campaign})")
    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValueError(f"bandit logs {path}: missing column {missing[0]!r}")
    items = pd.read_csv(items_path, index_col=0).set_index("item_id").sort_index()
    n_actions = len(items)
    affinities = [f"user-item_affinity_{a}" for a in range(n_actions)]
    with_affinity = features and affinities[-1] in header
    df = pd.read_csv(path, index_col=0, usecols=[header[0], *REQUIRED, *(affinities if with_affinity else [])])
    df = df.sort_values("timestamp", kind="stable")
    bad = df.index[(df["item_id"] < 0) | (df["item_id"] >= n_actions) | (df["propensity_score"] <= 0)]
    if len(bad):
        raise ValueError(f"bandit logs {path}: row {bad[0]} has an item outside item_context.csv "
                         f"or a propensity that is not positive")
    affinity = None
    if features:
        affinity = df[affinities].to_numpy(float) if with_affinity else np.zeros((len(df), n_actions))
    return Logs(str(path), df["click"].to_numpy(float), df["item_id"].to_numpy(int),
                df["position"].to_numpy(int) - 1, df["propensity_score"].to_numpy(float),
                items["item_feature_0"].to_numpy(float), affinity)


def shown_rates(logs: Logs) -> np.ndarray:
    """(items, slots): how often the logging policy put each item in each slot, over the whole log.
    For a context-free policy (OBD's Bernoulli TS) this is its action distribution averaged over time."""
    counts = np.zeros((logs.n_actions, logs.n_positions))
    np.add.at(counts, (logs.action, logs.position), 1.0)
    return counts / counts.sum(axis=0, keepdims=True)
