"""Judging policies: online against the simulated shop, offline on logged feedback in the Open
Bandit Dataset's layout. Both return records (model, metric, k, value and what qualifies them),
which the `bandit` stage writes to gold.bandit_metrics and the benchmark to its report.

Offline, with bootstrap 95% intervals: each logging policy judged on its own logs (the estimate
must equal the observed CTR); a fixed policy (the items of highest user-item affinity, in that
order); LinUCB and Thompson learned from the random logs two-fold by time (learn on one half, judge
on the other, both ways); every other logging policy judged from the random logs, against its
observed CTR. Where the Open Bandit Pipeline (`obp`) imports, its IPW, SNIPW and DR run on the
same blocks of rows and the largest gap to ours is recorded.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from recsys_spark.bandit.logs import Logs, read_logs, shown_rates
from recsys_spark.bandit.offline import action_dist, learn_from_logs
from recsys_spark.bandit.ope import ESTIMATORS, deterministic_dist, intervals, rate_by_slot, terms, value
from recsys_spark.bandit.policies import Policy, make_policy, top
from recsys_spark.bandit.simulator import Shop, simulate
from recsys_spark.config import BanditConf

Record = dict[str, Any]


def row(model: str, metric: str, value: float, k: int | None = None, **extra: Any) -> Record:
    return {"model": model, "metric": metric, "k": k, "value": value, "source": "measured", **extra}


def online(conf: BanditConf, shop: Shop, policies: dict[str, Policy], dataset: str,
           checkpoints: list[int] | None = None) -> tuple[list[Record], dict[str, dict[str, np.ndarray]]]:
    """Each policy meets the same arrivals for max(checkpoints) rounds (seeded by the config's seed
    and how many rounds the policy has already played, so a restarted policy meets new ones)."""
    sim = conf.simulator
    checkpoints = checkpoints or sim.rounds
    rows, curves = [], {}
    for name, policy in policies.items():
        before, start = policy.rounds, time.perf_counter()
        out = simulate(policy, shop, max(checkpoints), sim.batch_size, sim.candidates, tuple(sim.position_bias),
                       conf.seed + before)
        curves[name] = out
        for r in checkpoints:
            at = int(np.searchsorted(out["rounds"], before + r))
            for metric in ("cumulative_reward", "cumulative_regret"):
                rows.append(row(name, metric, float(out[metric][at]), None, rounds=r, dataset=dataset))
        rows.append(row(name, "seconds", round(time.perf_counter() - start, 1), None, rounds=max(checkpoints),
                        dataset=dataset))
    last = {p: float(c["cumulative_reward"][-1]) for p, c in curves.items()}
    for learner in ("linucb", "thompson"):
        for base in ("epsilon_greedy", "random"):
            if learner in last and base in last and last[base] > 0:
                rows.append(row(f"{learner}_vs_{base}", "cumulative_reward_ratio", round(last[learner] / last[base], 3),
                                None, rounds=max(checkpoints), dataset=dataset))
    return rows, curves


# a block of a log's rows -> the judged policy's action distribution and the reward model's q on them
Dist = Callable[[slice], tuple[np.ndarray, np.ndarray]]


def _judge(model: str, segments: list[tuple[Logs, Dist]], conf: BanditConf, dataset: str, names: list[str],
           gaps: dict[str, float] | None = None, **extra: object) -> tuple[list[Record], dict[str, float]]:
    """Each estimator over the segments' rows in order, a block of rows at a time (a full campaign's
    distributions would not fit in memory at once). With `gaps`, the Open Bandit Pipeline's
    estimators run on the same blocks, and the largest difference to ours is kept there."""
    parts: dict[str, list[np.ndarray]] = {e: [] for e in names}
    for data, dist_of in segments:
        for rows in data.blocks(data.rows_within(int(conf.logs.block_mb * 2**20))):
            dist, q = dist_of(rows)
            args = (data.reward[rows], data.action[rows], data.position[rows], data.pscore[rows], dist, q)
            for e in names:
                parts[e].append(terms(e, *args))
            if gaps is not None:
                _peer(gaps, *args)
    records, values = [], {}
    estimates = intervals({e: np.concatenate(p, axis=1) for e, p in parts.items()}, conf.bootstrap, conf.seed)
    for e, est in estimates.items():
        values[e] = est.value
        records.append(row(model, e, round(est.value, 6), None, low=round(est.low, 6), high=round(est.high, 6),
                           dataset=dataset, **extra))
    return records, values


def _each_row(a: np.ndarray, block: slice) -> np.ndarray:
    """An (items, slots) array as the same one for every row of the block, without copying it."""
    return np.broadcast_to(a, (block.stop - block.start, *a.shape))


def _fixed(dist: np.ndarray, q: np.ndarray) -> Dist:
    """The same distribution and reward model for every row."""
    return lambda block: (_each_row(dist, block), _each_row(q, block))


def _top_affinity(logs: Logs, slots: int, q: np.ndarray) -> Dist:
    """A fixed policy: the items of highest user-item affinity, ties by item id."""
    def dist_of(block: slice) -> tuple[np.ndarray, np.ndarray]:
        return deterministic_dist(top(np.log1p(logs.affinity[block]), slots), logs.n_actions), _each_row(q, block)
    return dist_of


def _learned(policy: Policy, logs: Logs, q: np.ndarray, draws: int) -> Dist:
    """A learned policy on the logs it is judged on, with the reward model of the half it learned from."""
    return lambda block: (action_dist(policy, logs, block, draws), _each_row(q, block))


def _logged(logs: Logs, slots: int, q: np.ndarray) -> Dist:
    """The logging policy itself: what it showed, with the probability it logged."""
    def dist_of(block: slice) -> tuple[np.ndarray, np.ndarray]:
        n = block.stop - block.start
        dist = np.zeros((n, logs.n_actions, slots))
        dist[np.arange(n), logs.action[block], logs.position[block]] = logs.pscore[block]
        return dist, _each_row(q, block)
    return dist_of


def offline(conf: BanditConf) -> tuple[list[Record], list[str], str]:
    lc = conf.logs
    random_logs = read_logs(lc.root, lc.random_policy, lc.campaign)
    name = f"obd-{lc.campaign}"
    dataset = f"{name} ({len(random_logs.reward):,} {lc.random_policy} impressions, {random_logs.n_actions} items)"
    everything = list(ESTIMATORS)
    weighted = [e for e in everything if e != "replay"]
    slots = random_logs.n_positions
    q_all = rate_by_slot(random_logs.reward, random_logs.action, random_logs.position, random_logs.n_actions, slots)
    uniform = np.full((random_logs.n_actions, slots), 1.0 / random_logs.n_actions)
    rows = [row(lc.random_policy, "observed_ctr", round(random_logs.ctr, 6), None, logs=lc.random_policy,
                dataset=dataset)]
    out, _ = _judge(lc.random_policy, [(random_logs, _fixed(uniform, q_all))], conf, dataset, everything,
                    logs=lc.random_policy)
    rows += out
    gaps = {"ipw": 0.0, "snipw": 0.0, "dr": 0.0} if _has_obp() else None

    out, _ = _judge("affinity_top3", [(random_logs, _top_affinity(random_logs, slots, q_all))], conf, dataset,
                    everything, gaps, logs=lc.random_policy)
    rows += out

    # LinUCB and Thompson learned on one half by time, judged on the other, both ways.
    half = len(random_logs.reward) // 2
    folds = [(np.arange(half), np.arange(half, len(random_logs.reward))),
             (np.arange(half, len(random_logs.reward)), np.arange(half))]
    learned_snipw = {}
    for learner in ("linucb", "thompson"):
        segments = []
        for train, judge in folds:
            tr, ju = random_logs.take(train), random_logs.take(judge)
            policy = learn_from_logs(make_policy(learner, tr.dim, slots, conf.seed, **conf.params()), tr)
            q = rate_by_slot(tr.reward, tr.action, tr.position, tr.n_actions, slots)
            segments.append((ju, _learned(policy, ju, q, conf.thompson_draws if learner == "thompson" else 1)))
        out, _ = _judge(learner, segments, conf, dataset, everything, gaps, logs=lc.random_policy,
                        learned="two-fold by time")
        rows += out
        learned_snipw[learner] = next(r for r in out if r["metric"] == "snipw")

    random_snipw = next(r for r in rows if r["model"] == lc.random_policy and r["metric"] == "snipw")
    for learner, r in learned_snipw.items():
        rows.append(row(f"{learner}_vs_{lc.random_policy}", "snipw_intervals_separate",
                        int(r["low"] > random_snipw["high"]), None, dataset=dataset))

    # Every other logging policy: on its own logs (sanity), and estimated from the random logs.
    for other in lc.other_policies:
        logs = read_logs(lc.root, other, lc.campaign, features=False)
        rows.append(row(other, "observed_ctr", round(logs.ctr, 6), None, logs=other, dataset=dataset))
        q_own = rate_by_slot(logs.reward, logs.action, logs.position, logs.n_actions, slots)
        out, _ = _judge(other, [(logs, _logged(logs, slots, q_own))], conf, dataset, ["ipw", "snipw"], logs=other)
        rows += out
        out, values = _judge(other, [(random_logs, _fixed(shown_rates(logs), q_all))], conf, dataset, weighted,
                             logs=lc.random_policy)
        rows += out
        for e, v in values.items():
            rows.append(row(other, f"{e}_relative_error", round(abs(v - logs.ctr) / logs.ctr, 4), None,
                            logs=lc.random_policy, dataset=dataset))
    if gaps is not None:
        rows += [row(f"obp_vs_ours_{e}", "max_abs_difference", g, None, dataset=dataset) for e, g in gaps.items()]
    notes = [
        f"offline: {random_logs.source}; DR's reward model is each (item, slot)'s click rate shrunk to the mean "
        "(from the training half for learned policies); bts's action distribution is how often its logs show "
        "each item in each slot (OBD's bts is context-free); Thompson's distribution is sampled with "
        f"{conf.thompson_draws} posterior draws; {conf.bootstrap} bootstrap resamples.",
    ]
    return rows, notes, name


def _has_obp() -> bool:
    try:
        import obp.ope  # noqa: F401
    except ImportError:
        return False
    return True


def _peer(gaps: dict[str, float], reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
          dist: np.ndarray, q: np.ndarray) -> None:
    """The Open Bandit Pipeline's estimators on one block: the largest gap to ours per estimator."""
    from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting

    peers = {"ipw": InverseProbabilityWeighting(), "snipw": SelfNormalizedInverseProbabilityWeighting(),
             "dr": DoublyRobust()}
    for e, peer in peers.items():
        kw = {"estimated_rewards_by_reg_model": np.ascontiguousarray(q)} if e == "dr" else {}
        with np.errstate(invalid="ignore"):   # SNIPW of a block the policy never agrees with: 0 / 0 for both
            theirs = peer.estimate_policy_value(reward=reward, action=action, position=position, pscore=pscore,
                                                action_dist=dist, **kw)
        ours = value(e, terms(e, reward, action, position, pscore, dist, q))
        gap = 0.0 if np.isnan(theirs) and np.isnan(ours) else abs(theirs - ours)
        gaps[e] = max(gaps[e], np.inf if np.isnan(gap) else gap)
