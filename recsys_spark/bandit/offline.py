"""Policies against logged feedback: learn from what a logging policy showed, and turn a policy into
the action distribution the off-policy estimators need."""
from __future__ import annotations

import numpy as np

from recsys_spark.bandit.logs import Logs
from recsys_spark.bandit.policies import Policy


def learn_from_logs(policy: Policy, logs: Logs, batch: int = 1000) -> Policy:
    """Each logged impression is one (features of the shown item, click) example, fed in time order
    in mini-batches, the way the policy would have been refreshed."""
    for rows in logs.blocks(batch):
        policy.learn(logs.shown(rows), logs.action[rows], logs.reward[rows])
        policy.rounds += rows.stop - rows.start
    return policy


def action_dist(policy: Policy, logs: Logs, rows: slice, draws: int = 1) -> np.ndarray:
    """(rows, items, slots) for a block of rows: the share of `draws` choices that put each item in
    each slot. One draw for a deterministic policy; more for a randomised one (Thompson), whose
    distribution they sample."""
    contexts = logs.contexts(rows)
    n = len(contexts)
    items = np.broadcast_to(np.arange(logs.n_actions), (n, logs.n_actions))
    dist = np.zeros((n, logs.n_actions, policy.slate))
    for _ in range(draws):
        shown = policy.choose(contexts, items, np.zeros(items.shape))
        dist[np.arange(n)[:, None], shown, np.arange(policy.slate)[None, :]] += 1.0 / draws
    return dist
