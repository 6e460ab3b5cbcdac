"""Judging policies: online against the simulated shop, offline on logged feedback in the Open
Bandit Dataset's layout. Both return records (model, metric, k, value and what qualifies them),
which the `bandit` stage writes to gold.bandit_metrics and the benchmark to its report.

Offline, with bootstrap 95% intervals: each logging policy judged on its own logs (the estimate
must equal the observed CTR); a fixed policy (the items of highest user-item affinity, in that
order); LinUCB and Thompson learned from the random logs two-fold by time (learn on one half, judge
on the other, both ways); every other logging policy judged from the random logs, against its
observed CTR. Where the Open Bandit Pipeline (`obp`) imports, its IPW, SNIPW and DR run on the
same arrays and the largest gap to ours is recorded.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from recsys_spark.bandit.logs import Logs, read_logs, shown_rates
from recsys_spark.bandit.offline import action_dist, learn_from_logs
from recsys_spark.bandit.ope import ESTIMATORS, deterministic_dist, estimate, rate_by_slot
from recsys_spark.bandit.policies import Policy, make_policy
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


def _estimates(model: str, data: Logs, dist: np.ndarray, q: np.ndarray, conf: BanditConf, dataset: str,
               names: list[str], **extra: object) -> tuple[list[dict], dict[str, float]]:
    rows, values = [], {}
    for e in names:
        est = estimate(e, data.reward, data.action, data.position, data.pscore, dist, q, conf.bootstrap, conf.seed)
        values[e] = est.value
        rows.append(row(model, e, round(est.value, 6), None, low=round(est.low, 6), high=round(est.high, 6),
                        dataset=dataset, **extra))
    return rows, values


def offline(conf: BanditConf) -> tuple[list[Record], list[str], str]:
    lc = conf.logs
    random_logs = read_logs(lc.root, lc.random_policy, lc.campaign)
    name = f"obd-{lc.campaign}"
    dataset = f"{name} ({len(random_logs.reward):,} {lc.random_policy} impressions, {random_logs.n_actions} items)"
    everything = list(ESTIMATORS)
    weighted = [e for e in everything if e != "replay"]
    slots = random_logs.n_positions
    q_all = np.broadcast_to(rate_by_slot(random_logs.reward, random_logs.action, random_logs.position,
                                         random_logs.n_actions, slots), (len(random_logs.reward),
                                                                         random_logs.n_actions, slots))
    uniform = np.full((len(random_logs.reward), random_logs.n_actions, slots), 1.0 / random_logs.n_actions)
    rows = [row(lc.random_policy, "observed_ctr", round(random_logs.ctr, 6), None, logs=lc.random_policy,
                dataset=dataset)]
    out, _ = _estimates(lc.random_policy, random_logs, uniform, q_all, conf, dataset, everything,
                        logs=lc.random_policy)
    rows += out
    peer_inputs: list[tuple[Logs, np.ndarray, np.ndarray]] = []

    # A fixed policy: the items of highest user-item affinity, ties by item id.
    affinity = random_logs.contexts[:, :, -2]
    fixed = np.argsort(-affinity, axis=1, kind="stable")[:, :slots]
    dist = deterministic_dist(fixed, random_logs.n_actions)
    out, _ = _estimates("affinity_top3", random_logs, dist, q_all, conf, dataset, everything, logs=lc.random_policy)
    rows += out
    peer_inputs.append((random_logs, dist, q_all))

    # LinUCB and Thompson learned on one half by time, judged on the other, both ways.
    half = len(random_logs.reward) // 2
    folds = [(np.arange(half), np.arange(half, len(random_logs.reward))),
             (np.arange(half, len(random_logs.reward)), np.arange(half))]
    learned_snipw = {}
    for learner in ("linucb", "thompson"):
        dists, qs, order = [], [], []
        for train, judge in folds:
            tr, ju = random_logs.take(train), random_logs.take(judge)
            policy = learn_from_logs(make_policy(learner, tr.contexts.shape[-1], slots, conf.seed, **conf.params()), tr)
            dists.append(action_dist(policy, ju, conf.thompson_draws if learner == "thompson" else 1))
            qs.append(np.broadcast_to(rate_by_slot(tr.reward, tr.action, tr.position, tr.n_actions, slots),
                                      (len(judge), tr.n_actions, slots)))
            order.append(judge)
        judged = random_logs.take(np.concatenate(order))
        dist, q = np.concatenate(dists), np.concatenate(qs)
        out, _ = _estimates(learner, judged, dist, q, conf, dataset, everything, logs=lc.random_policy,
                                 learned="two-fold by time")
        rows += out
        learned_snipw[learner] = next(r for r in out if r["metric"] == "snipw")
        peer_inputs.append((judged, dist, q))

    random_snipw = next(r for r in rows if r["model"] == lc.random_policy and r["metric"] == "snipw")
    for learner, r in learned_snipw.items():
        rows.append(row(f"{learner}_vs_{lc.random_policy}", "snipw_intervals_separate",
                        int(r["low"] > random_snipw["high"]), None, dataset=dataset))

    # Every other logging policy: on its own logs (sanity), and estimated from the random logs.
    for other in lc.other_policies:
        logs = read_logs(lc.root, other, lc.campaign)
        rows.append(row(other, "observed_ctr", round(logs.ctr, 6), None, logs=other, dataset=dataset))
        own = np.zeros((len(logs.reward), logs.n_actions, slots))
        own[np.arange(len(logs.reward)), logs.action, logs.position] = logs.pscore
        q_own = np.broadcast_to(rate_by_slot(logs.reward, logs.action, logs.position, logs.n_actions, slots),
                                own.shape)
        out, _ = _estimates(other, logs, own, q_own, conf, dataset, ["ipw", "snipw"], logs=other)
        rows += out
        dist = np.broadcast_to(shown_rates(logs), (len(random_logs.reward), logs.n_actions, slots))
        out, values = _estimates(other, random_logs, dist, q_all, conf, dataset, weighted, logs=lc.random_policy)
        rows += out
        for e, v in values.items():
            rows.append(row(other, f"{e}_relative_error", round(abs(v - logs.ctr) / logs.ctr, 4), None,
                            logs=lc.random_policy, dataset=dataset))
    rows += _peer(peer_inputs, dataset)
    notes = [
        f"offline: {random_logs.source}; DR's reward model is each (item, slot)'s click rate shrunk to the mean "
        "(from the training half for learned policies); bts's action distribution is how often its logs show "
        "each item in each slot (OBD's bts is context-free); Thompson's distribution is sampled with "
        f"{conf.thompson_draws} posterior draws; {conf.bootstrap} bootstrap resamples.",
    ]
    return rows, notes, name


def _peer(inputs: list[tuple[Logs, np.ndarray, np.ndarray]], dataset: str) -> list[dict]:
    """The Open Bandit Pipeline's estimators on the same arrays: the largest gap to ours per estimator."""
    try:
        from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting
    except ImportError:
        return []
    peers = {"ipw": InverseProbabilityWeighting(), "snipw": SelfNormalizedInverseProbabilityWeighting(),
             "dr": DoublyRobust()}
    gaps = {e: 0.0 for e in peers}
    for lg, dist, q in inputs:
        for e, peer in peers.items():
            kw = {"estimated_rewards_by_reg_model": np.ascontiguousarray(q)} if e == "dr" else {}
            theirs = peer.estimate_policy_value(reward=lg.reward, action=lg.action, position=lg.position,
                                                pscore=lg.pscore, action_dist=dist, **kw)
            ours = estimate(e, lg.reward, lg.action, lg.position, lg.pscore, dist, q, n_boot=1).value
            gaps[e] = max(gaps[e], abs(theirs - ours))
    return [row(f"obp_vs_ours_{e}", "max_abs_difference", g, None, dataset=dataset) for e, g in gaps.items()]
