"""Off-policy estimates of a policy's click rate from logged feedback, with bootstrap intervals.

The inputs follow the Open Bandit Pipeline's arrays, so its estimators can be run beside ours:
per logged impression the reward (click), the shown item (`action`), its slot (`position`) and the
logging policy's probability of that item in that slot (`pscore`); for the policy under
evaluation, `action_dist` (rows, items, slots): its probability of each item in each slot;
`q` (same shape): a reward model's predicted click rate, for doubly robust.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Estimator = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    rows: int


def _target(action_dist: np.ndarray, action: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The evaluated policy's probability of what was logged."""
    return action_dist[np.arange(len(action)), action, position]


def ipw_terms(reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
              action_dist: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """(reward * weight, weight) per row: weight = target probability / logging probability."""
    w = _target(action_dist, action, position) / pscore
    return np.stack([reward * w, w])


def dr_terms(reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
             action_dist: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """The reward model's value under the policy, corrected by the weighted residual of what was logged."""
    if q is None:
        raise ValueError("doubly robust needs the reward model's predictions q")
    rows = np.arange(len(action))
    w = _target(action_dist, action, position) / pscore
    direct = (action_dist[rows, :, position] * q[rows, :, position]).sum(axis=1)
    return np.stack([direct + w * (reward - q[rows, action, position]), np.ones_like(w)])


def replay_terms(reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
                 action_dist: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """Li et al. (2011): on uniformly random logs, the rows where the policy shows what was logged."""
    match = _target(action_dist, action, position)
    return np.stack([reward * match, match])


def _mean(sums: np.ndarray, n: int) -> float:
    return float(sums[0] / n)


def _ratio(sums: np.ndarray, n: int) -> float:
    return float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")


# name -> (per-row terms, how their column sums combine over n rows): IPW and DR average, SNIPW and
# replay divide by the weights.
ESTIMATORS: dict[str, tuple[Estimator, Callable[[np.ndarray, int], float]]] = {
    "replay": (replay_terms, _ratio),
    "ipw": (ipw_terms, _mean),
    "snipw": (ipw_terms, _ratio),
    "dr": (dr_terms, _mean),
}


def terms(name: str, reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
          action_dist: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
    """(2, rows): an estimator's per-row terms, which blocks of a log give apart and `intervals` joins."""
    return ESTIMATORS[name][0](reward, action, position, pscore, action_dist, q)


def value(name: str, per_row: np.ndarray) -> float:
    """The estimate from `terms`' per-row values."""
    return ESTIMATORS[name][1](per_row.sum(axis=1), per_row.shape[1])


def intervals(per_row: dict[str, np.ndarray], n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> dict[str, Estimate]:
    """Each estimator's value from its `terms`, and the percentile interval over `n_boot` resamples of
    the rows. Every estimator sees the same resamples, each one drawn once and counted (how many times
    each row was drawn), so a resample costs one pass over the rows for all of them, not a copy each."""
    names = list(per_row)
    stacked = np.concatenate([per_row[e] for e in names])
    n = stacked.shape[1]
    rng = np.random.default_rng(seed)
    boot = np.empty((len(names), n_boot))
    for i in range(n_boot):
        sums = stacked @ np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        for j, e in enumerate(names):
            boot[j, i] = ESTIMATORS[e][1](sums[2 * j: 2 * j + 2], n)
    tail = (1 - level) / 2 * 100
    out = {}
    for j, e in enumerate(names):
        low, high = np.nanpercentile(boot[j], [tail, 100 - tail])
        out[e] = Estimate(value(e, per_row[e]), float(low), float(high), n)
    return out


def estimate(name: str, reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
             action_dist: np.ndarray, q: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
             level: float = 0.95) -> Estimate:
    per_row = terms(name, reward, action, position, pscore, action_dist, q)
    return intervals({name: per_row}, n_boot, seed, level)[name]


def rate_by_slot(reward: np.ndarray, action: np.ndarray, position: np.ndarray, n_actions: int,
                 n_positions: int, prior: float = 10.0) -> np.ndarray:
    """A reward model for DR: each (item, slot)'s click rate, shrunk to the overall rate."""
    shows = np.zeros((n_actions, n_positions))
    clicks = np.zeros((n_actions, n_positions))
    np.add.at(shows, (action, position), 1.0)
    np.add.at(clicks, (action, position), reward)
    return (clicks + prior * reward.mean()) / (shows + prior)


def deterministic_dist(slates: np.ndarray, n_actions: int) -> np.ndarray:
    """(rows, slate) item ids in slot order -> action_dist with probability 1 on each."""
    rows, slots = slates.shape
    dist = np.zeros((rows, n_actions, slots))
    dist[np.arange(rows)[:, None], slates, np.arange(slots)[None, :]] = 1.0
    return dist
