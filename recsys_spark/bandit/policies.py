"""Slate policies that learn from clicks: random, popularity, epsilon-greedy, LinUCB and linear
Thompson sampling.

Every policy sees a mini-batch of rounds at once: `contexts` is (rounds, candidates, d), one
feature vector per (round, candidate item), and `items` (rounds, candidates) names the items.
`choose` returns, per round, the candidate positions to show in slot order; `update` takes what
was shown and whether each was clicked. Parameters stay fixed inside a batch, as they do when a
service refreshes its model every few minutes.

The linear policies share one ridge regression over the pair features (a "hybrid" LinUCB without
per-arm terms), so they generalise to items never shown. Epsilon-greedy keeps a click rate per
item and ignores the context, as in the Open Bandit Pipeline.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

State = dict[str, np.ndarray]


class Policy:
    """A policy's learned numbers live in `state` (arrays), its settings in `params` (numbers)."""

    name: ClassVar[str]

    def __init__(self, dim: int, slate: int = 3, seed: int = 0, **params: float) -> None:
        self.dim, self.slate, self.seed = dim, slate, seed
        self.params = params
        self.rng = np.random.default_rng(seed)
        self.rounds = 0
        self.state: State = self.initial_state()

    def initial_state(self) -> State:
        return {}

    def scores(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def choose(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """(rounds, slate) candidate positions, the best first; ties go to the earlier candidate."""
        return top(self.scores(contexts, items, popularity), self.slate)

    def update(self, contexts: np.ndarray, items: np.ndarray, shown: np.ndarray, clicks: np.ndarray) -> None:
        """contexts/items are the batch's candidates; shown (rounds, slate) indexes them; clicks 0/1."""
        self.rounds += len(shown)
        self.learn(np.take_along_axis(contexts, shown[..., None], axis=1).reshape(-1, contexts.shape[-1]),
                   np.take_along_axis(items, shown, axis=1).ravel(), clicks.ravel().astype(float))

    def learn(self, x: np.ndarray, items: np.ndarray, r: np.ndarray) -> None:
        """One row per shown item: its features, id and click."""

    def save(self, path: str | Path) -> None:
        """Arrays, settings and the random generator's position, so a restart continues exactly."""
        meta = {"name": self.name, "dim": self.dim, "slate": self.slate, "seed": self.seed,
                "params": self.params, "rounds": self.rounds, "rng": self.rng.bit_generator.state}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, _meta=np.array(json.dumps(meta)), **self.state)
        tmp.replace(path)  # a crash mid-write leaves the previous state


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the positions of the k highest scores, the best first, ties to the earlier position:
    a stable argsort's first k, found by k passes of argmax (a slate is a few of many candidates)."""
    if k >= scores.shape[1] or not np.isfinite(scores).all():
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    left, rows = scores.astype(float), np.arange(len(scores))
    out = np.empty((len(scores), k), dtype=np.int64)
    for j in range(k):
        out[:, j] = left.argmax(axis=1)
        left[rows, out[:, j]] = -np.inf
    return out


class RandomPolicy(Policy):
    name = "random"

    def scores(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        return self.rng.random(items.shape)


class PopularityPolicy(Policy):
    """The shop's bestsellers among the candidates; learns nothing from clicks."""

    name = "popularity"

    def scores(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        return popularity


class EpsilonGreedy(Policy):
    """The items with the best click rate so far; a random slate with probability epsilon."""

    name = "epsilon_greedy"

    def initial_state(self) -> State:
        return {"items": np.zeros(0, dtype=np.int64), "shows": np.zeros(0), "clicks": np.zeros(0)}

    def _grow(self, n: int) -> None:
        have = len(self.state["shows"])
        if n > have:
            self.state["shows"] = np.concatenate([self.state["shows"], np.zeros(n - have)])
            self.state["clicks"] = np.concatenate([self.state["clicks"], np.zeros(n - have)])

    def scores(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        self._grow(int(items.max()) + 1)
        shows, clicks = self.state["shows"][items], self.state["clicks"][items]
        rate = np.divide(clicks, shows, out=np.zeros_like(clicks), where=shows > 0)
        explore = self.rng.random(len(items)) < self.params.get("epsilon", 0.1)
        return np.where(explore[:, None], self.rng.random(items.shape), rate)

    def learn(self, x: np.ndarray, items: np.ndarray, r: np.ndarray) -> None:
        self._grow(int(items.max()) + 1)
        np.add.at(self.state["shows"], items, 1.0)
        np.add.at(self.state["clicks"], items, r)


class LinearPolicy(Policy):
    """Ridge regression of the click on the pair features: A = lambda I + sum x x', b = sum r x."""

    def initial_state(self) -> State:
        return {"A": self.params.get("ridge", 1.0) * np.eye(self.dim), "b": np.zeros(self.dim)}

    def learn(self, x: np.ndarray, items: np.ndarray, r: np.ndarray) -> None:
        self.state["A"] = self.state["A"] + x.T @ x
        self.state["b"] = self.state["b"] + x.T @ r

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """theta = A^-1 b and A^-1."""
        a_inv = np.linalg.inv(self.state["A"])
        return a_inv @ self.state["b"], a_inv


class LinUCB(LinearPolicy):
    """Score = x'theta + alpha sqrt(x' A^-1 x): optimism where the features are rarely seen."""

    name = "linucb"

    def scores(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        theta, a_inv = self.posterior()
        width = np.sqrt(((contexts @ a_inv) * contexts).sum(axis=-1))
        return contexts @ theta + self.params.get("alpha", 1.0) * width


class LinearThompson(LinearPolicy):
    """Score = x'theta~ with theta~ drawn per round from N(theta, v^2 A^-1)."""

    name = "thompson"

    def scores(self, contexts: np.ndarray, items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        theta, a_inv = self.posterior()
        chol = np.linalg.cholesky((a_inv + a_inv.T) / 2)
        z = self.rng.standard_normal((len(contexts), self.dim))
        draws = theta + self.params.get("scale", 0.25) * z @ chol.T
        return np.einsum("rcd,rd->rc", contexts, draws)


POLICIES: dict[str, type[Policy]] = {p.name: p for p in
                                     (RandomPolicy, PopularityPolicy, EpsilonGreedy, LinUCB, LinearThompson)}


def make_policy(name: str, dim: int, slate: int = 3, seed: int = 0, **params: float) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown bandit policy {name!r}; policies are {', '.join(POLICIES)}")
    return POLICIES[name](dim, slate, seed, **params)


def load_policy(path: str | Path) -> Policy:
    """The policy `save` wrote, ready to continue: same arrays, round count and random stream."""
    with np.load(Path(path)) as z:
        meta: dict[str, Any] = json.loads(str(z["_meta"]))
        state = {k: z[k] for k in z.files if k != "_meta"}
    policy = make_policy(meta["name"], meta["dim"], meta["slate"], meta["seed"], **meta["params"])
    policy.state, policy.rounds = state, meta["rounds"]
    policy.rng.bit_generator.state = meta["rng"]
    return policy
