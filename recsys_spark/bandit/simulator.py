"""A simulated shop for judging bandit policies online, built on the synthetic shop's planted tastes.

A user arrives (bestseller-heavy, as in the generator), retrieval hands over `candidates` items
drawn from the whole catalogue, the policy shows a slate, and each shown item is clicked with
probability position_bias[slot] * click(affinity of the user to the item's category) * appeal, where
click() is the generator's own click rate and appeal falls from 1 for a category's bestseller to 0.6
for its tail. The policy sees what a service would: the user's category shares from a sampled
history of 2 to 20 events (not the planted favourites) and the item's popularity.

Every policy meets the same users, candidates and click draws (common random numbers), so their
differences are theirs, not the dice's.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession

from recsys_spark.bandit.policies import Policy, top
from recsys_spark.config import SyntheticConf
from recsys_spark.data.synthetic import AFFINITY, CHOICE, funnel_probs, generate_items, user_tastes
from recsys_spark.logs import track

FEATURES = ["bias", "share", "top_category", "second_category", "popularity", "share_x_popularity"]


@dataclass(frozen=True)
class Batch:
    users: np.ndarray        # (rounds,)
    items: np.ndarray        # (rounds, candidates)
    contexts: np.ndarray     # (rounds, candidates, features)
    rates: np.ndarray        # (rounds, candidates): click probability in the first slot
    dice: np.ndarray         # (rounds, candidates): uniform draws, clicked when below the slot's rate


@dataclass(frozen=True)
class Shop:
    fav: np.ndarray          # (users,) planted favourite category
    second: np.ndarray       # (users,) planted second category
    shares: np.ndarray       # (users, categories) what the history shows
    category: np.ndarray     # (items,)
    popularity: np.ndarray   # (items,) 1 for a category's bestseller, towards 0 for its tail

    @classmethod
    def from_synthetic(cls, spark: SparkSession, conf: SyntheticConf, seed: int = 0) -> Shop:
        tastes = user_tastes(spark, conf).orderBy("user_id").toPandas()
        items = generate_items(spark, conf).select("item_id").orderBy("item_id").toPandas()
        idx = items["item_id"].str[1:].astype(int).to_numpy()
        per_cat = max(conf.n_items // conf.n_categories, 1)
        rank = idx // conf.n_categories
        return cls.planted(tastes["fav"].to_numpy(), tastes["second"].to_numpy(), idx % conf.n_categories,
                           1.0 - rank / per_cat, conf.n_categories, seed)

    @classmethod
    def planted(cls, fav: np.ndarray, second: np.ndarray, category: np.ndarray, popularity: np.ndarray,
                n_categories: int, seed: int = 0) -> Shop:
        """Observed shares from 2-20 history events per user, drawn the way the generator picks categories."""
        rng = np.random.default_rng(seed)
        n_users, longest = len(fav), 20
        u = rng.random((n_users, longest))
        cats = np.where(u < CHOICE[0], fav[:, None],
                        np.where(u < CHOICE[0] + CHOICE[1], second[:, None],
                                 rng.integers(0, n_categories, (n_users, longest))))
        length = rng.integers(2, longest + 1, n_users)
        counts = np.zeros((n_users, n_categories))
        rows, cols = np.nonzero(np.arange(longest)[None, :] < length[:, None])
        np.add.at(counts, (rows, cats[rows, cols]), 1.0)
        return cls(fav, second, counts / length[:, None], category, popularity)

    @property
    def n_users(self) -> int:
        return len(self.fav)

    @property
    def n_items(self) -> int:
        return len(self.category)

    def click_rate(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        cat = self.category[items]
        affinity = np.where(cat == self.fav[users, None], AFFINITY[0],
                            np.where(cat == self.second[users, None], AFFINITY[1], AFFINITY[2]))
        return funnel_probs(affinity)[0] * (0.6 + 0.4 * self.popularity[items])

    def contexts(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        share = np.take_along_axis(self.shares[users], self.category[items], axis=1)
        ranked = top(self.shares[users], 2)
        cat, pop = self.category[items], self.popularity[items]
        return np.stack([np.ones_like(share), share, (cat == ranked[:, :1]).astype(float),
                         (cat == ranked[:, 1:2]).astype(float), pop, share * pop], axis=-1)

    def batches(self, rounds: int, batch: int, candidates: int, seed: int) -> Iterator[Batch]:
        rng = np.random.default_rng(seed)
        for start in range(0, rounds, batch):
            n = min(batch, rounds - start)
            users = np.minimum((rng.random(n) ** 1.5 * self.n_users).astype(int), self.n_users - 1)
            items = np.argpartition(rng.random((n, self.n_items)), candidates, axis=1)[:, :candidates]
            yield Batch(users, items, self.contexts(users, items), self.click_rate(users, items),
                        rng.random((n, candidates)))


def play(policy: Policy, shop: Shop, batch: Batch, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One mini-batch: the policy shows its slates, clicks come back, the policy learns from them.
    Returns the clicks and the regret per round (the best slate's expected clicks minus the shown one's)."""
    shown = policy.choose(batch.contexts, batch.items, shop.popularity[batch.items])
    slots = shown.shape[1]
    rate = np.take_along_axis(batch.rates, shown, axis=1) * bias[None, :slots]
    clicks = (np.take_along_axis(batch.dice, shown, axis=1) < rate).astype(float)
    policy.update(batch.contexts, batch.items, shown, clicks)
    best = -np.sort(-batch.rates, axis=1)[:, :slots] @ bias[:slots]
    return clicks, best - rate.sum(axis=1)


def simulate(policy: Policy, shop: Shop, rounds: int, batch: int = 100, candidates: int = 100,
             position_bias: tuple[float, ...] = (1.0, 0.75, 0.5), seed: int = 0) -> dict[str, np.ndarray]:
    """Runs the policy for `rounds` arrivals; per batch: rounds so far, cumulative clicks and regret."""
    bias = np.asarray(position_bias)
    done, clicks, regret = [], [], []
    total_clicks = total_regret = 0.0
    arrivals = shop.batches(rounds, batch, candidates, seed)
    for b in track(arrivals, f"[bandit] {policy.name}", total=-(-rounds // batch), every_s=10.0):
        c, r = play(policy, shop, b, bias)
        total_clicks += c.sum()
        total_regret += float(r.sum())
        done.append(policy.rounds)
        clicks.append(total_clicks)
        regret.append(total_regret)
    return {"rounds": np.array(done), "cumulative_reward": np.array(clicks), "cumulative_regret": np.array(regret)}
