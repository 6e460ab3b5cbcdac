"""Logged bandit feedback in the Open Bandit Dataset's layout: `<root>/<policy>/<campaign>/<campaign>.csv`
(timestamp, item_id, position 1.., click, propensity_score, user features, one user-item affinity
column per item) and `item_context.csv` beside it (item_feature_0 numeric, the rest hashed labels).
Any campaign and logging policy of the data set reads the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED = ["timestamp", "item_id", "position", "click", "propensity_score"]


@dataclass(frozen=True)
class Logs:
    """One row per impression, in time order; positions from 0."""

    source: str
    reward: np.ndarray
    action: np.ndarray
    position: np.ndarray
    pscore: np.ndarray
    contexts: np.ndarray     # (rows, items, features): what a policy sees for each item it could show

    @property
    def n_actions(self) -> int:
        return self.contexts.shape[1]

    @property
    def n_positions(self) -> int:
        return int(self.position.max()) + 1

    @property
    def ctr(self) -> float:
        return float(self.reward.mean())

    def take(self, rows: np.ndarray) -> Logs:
        return Logs(self.source, self.reward[rows], self.action[rows], self.position[rows], self.pscore[rows],
                    self.contexts[rows])


def log_path(root: str | Path, policy: str, campaign: str) -> Path:
    return Path(root) / policy / campaign / f"{campaign}.csv"


def read_logs(root: str | Path, policy: str, campaign: str) -> Logs:
    """The logs with pair features per (row, item): a bias, the item (one-hot), the user's affinity
    to it and its numeric feature. A missing file or column is named in the error."""
    path = log_path(root, policy, campaign)
    items_path = path.with_name("item_context.csv")
    for p in (path, items_path):
        if not p.is_file():
            raise FileNotFoundError(f"bandit logs: no file {p} (logs.root={root}, policy={policy}, "
                                    f"campaign={campaign})")
    df = pd.read_csv(path, index_col=0)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"bandit logs {path}: missing column {missing[0]!r}")
    df = df.sort_values("timestamp", kind="stable")
    items = pd.read_csv(items_path, index_col=0).set_index("item_id").sort_index()
    n_actions = len(items)
    bad = df.index[(df["item_id"] < 0) | (df["item_id"] >= n_actions) | (df["propensity_score"] <= 0)]
    if len(bad):
        raise ValueError(f"bandit logs {path}: row {bad[0]} has an item outside item_context.csv "
                         f"or a propensity that is not positive")
    affinity = df[[f"user-item_affinity_{a}" for a in range(n_actions)]].to_numpy(float) \
        if f"user-item_affinity_{n_actions - 1}" in df.columns else np.zeros((len(df), n_actions))
    rows = len(df)
    feature0 = items["item_feature_0"].to_numpy(float)
    contexts = np.concatenate([
        np.ones((rows, n_actions, 1)),
        np.broadcast_to(np.eye(n_actions), (rows, n_actions, n_actions)),
        np.log1p(affinity)[..., None],
        np.broadcast_to(feature0[None, :, None], (rows, n_actions, 1)),
    ], axis=-1)
    return Logs(str(path), df["click"].to_numpy(float), df["item_id"].to_numpy(int),
                df["position"].to_numpy(int) - 1, df["propensity_score"].to_numpy(float), contexts)


def shown_rates(logs: Logs) -> np.ndarray:
    """(items, slots): how often the logging policy put each item in each slot, over the whole log.
    For a context-free policy (OBD's Bernoulli TS) this is its action distribution averaged over time."""
    counts = np.zeros((logs.n_actions, logs.n_positions))
    np.add.at(counts, (logs.action, logs.position), 1.0)
    return counts / counts.sum(axis=0, keepdims=True)
